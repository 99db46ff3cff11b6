//! Reallocation, written once for every raw entry point: the allocator's
//! own methods, its `GlobalAlloc` methods, and the per-thread front.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use super::fallback::resized;
use super::size_class::class_of;
use super::{Fallback, SizeClassLimit, SlabAllocator};
use crate::cache::{self, SlotReach};
use crate::checked::Report;
use crate::error::AllocError;
use crate::page_allocator::PageAllocator;

/// What a raw entry point offers [`resize`]: where blocks come from and go.
pub(crate) trait Blocks {
    /// The largest size class, in bytes.
    const LARGEST_CLASS: usize;

    /// A block for `layout`.
    fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, AllocError>;

    /// Frees a block of `layout`.
    ///
    /// # Safety
    ///
    /// As for `SlabAllocator::deallocate`, with what the entry point accepts
    /// of the pointer's provenance.
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout);

    /// Resizes a block of the fallback's.
    ///
    /// # Safety
    ///
    /// As for `Fallback::reallocate`.
    unsafe fn fallback_reallocate(
        &self,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Result<NonNull<u8>, AllocError>;

    /// The pointer to hand back for a block resized in place to `new_size`
    /// bytes: `ptr`, or `None` where the block must move instead (see the
    /// `GlobalAlloc` entry's).
    fn in_place(&self, ptr: NonNull<u8>, layout: Layout, new_size: usize) -> Option<NonNull<u8>>;
}

/// Resizes the block at `ptr` from `layout` to `new_size` bytes, keeping the
/// first `min(layout.size(), new_size)`: in place within one size class,
/// through the fallback when both sizes are the fallback's, else a new
/// block, a copy and a free. On error `ptr` is untouched.
///
/// # Safety
///
/// `ptr` is a live block of `blocks` with `layout` (as for
/// [`Blocks::deallocate`]); on success it must not be used again.
pub(crate) unsafe fn resize<B: Blocks>(
    blocks: &B,
    ptr: NonNull<u8>,
    layout: Layout,
    new_size: usize,
) -> Result<NonNull<u8>, AllocError> {
    let new_layout = resized(layout, new_size)?;
    let class = |layout: Layout| match layout.size() {
        0 => None,
        _ => class_of(layout, B::LARGEST_CLASS),
    };
    let (old_class, new_class) = (class(layout), class(new_layout));
    if layout.size() != 0 && new_size != 0 {
        if old_class.is_some()
            && old_class == new_class
            && let Some(same) = blocks.in_place(ptr, layout, new_size)
        {
            return Ok(same);
        }
        if old_class.is_none() && new_class.is_none() {
            // SAFETY: both layouts belong to the fallback; the caller's
            // guarantees cover the rest.
            return unsafe { blocks.fallback_reallocate(ptr, layout, new_size) };
        }
    }
    let new = blocks.allocate(new_layout)?;
    let keep = layout.size().min(new_size);
    // SAFETY: both blocks are valid for `keep` bytes and distinct (the old
    // one is still allocated while the new one is handed out).
    unsafe { ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), keep) };
    // SAFETY: the caller's guarantees for `ptr` and `layout`.
    unsafe { blocks.deallocate(ptr, layout) };
    Ok(new)
}

/// One raw entry point of a `SlabAllocator`: what its pointers reach, and
/// how it reports a misuse.
pub(crate) struct Entry<'a, P: PageAllocator, F, M: SizeClassLimit> {
    pub(crate) heap: &'a SlabAllocator<P, F, M>,
    pub(crate) reach: SlotReach,
    pub(crate) report: Report,
    /// Whether the entry point goes through the per-thread caches (the
    /// inherent methods do; `GlobalAlloc` does where the compiler allows,
    /// see `global_alloc`).
    pub(crate) per_thread: bool,
    /// Whether a block that grows within its class stays where it is with
    /// a narrowed pointer (see `in_place`): the `Allocator` impls hand out
    /// whole slots, whose users own them; `GlobalAlloc` moves it.
    pub(crate) grow_in_place: bool,
}

impl<P: PageAllocator, F: Fallback, M: SizeClassLimit> Blocks for Entry<'_, P, F, M> {
    const LARGEST_CLASS: usize = M::USIZE;

    fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        if self.per_thread {
            return self.heap.allocate(layout);
        }
        self.heap.allocate_with(layout, self.report)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if self.per_thread {
            // SAFETY: the caller's guarantees; `reach` is true of the entry
            // point's pointers. A fallback block keeps its own pointer: it
            // has no page provenance to swap in.
            unsafe {
                self.heap
                    .deallocate_per_thread(ptr, layout, self.reach, self.report)
            };
            return;
        }
        // SAFETY: the caller's guarantees; `reach` is true of the entry
        // point's pointers.
        unsafe {
            self.heap
                .deallocate_with(ptr, layout, self.reach, self.report)
        }
    }

    unsafe fn fallback_reallocate(
        &self,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: the caller's guarantees.
        unsafe { self.heap.fallback_reallocate(ptr, layout, new_size) }
    }

    fn in_place(&self, ptr: NonNull<u8>, layout: Layout, new_size: usize) -> Option<NonNull<u8>> {
        match self.reach {
            SlotReach::Page => Some(ptr),
            // A pointer entitled to the old size only (a `Box`'s borrow)
            // still covers a smaller block. For a larger one, `ptr` reaches
            // too little, and a pointer with the page's exposed provenance
            // is refused the old bytes while a `Box` in the caller's frame
            // still guards them (Stacked and Tree Borrows alike): under
            // `GlobalAlloc` the block moves. The `Allocator` impls, whose
            // blocks are whole slots, keep it in place.
            SlotReach::Object(_) if new_size <= layout.size() => Some(ptr),
            SlotReach::Object(_) if self.grow_in_place => {
                Some(cache::with_exposed_page_provenance(ptr))
            }
            SlotReach::Object(_) => None,
        }
    }
}
