//! The per-thread front of a size-class allocator: one magazine front per
//! class.

use core::alloc::Layout;
use core::fmt;
use core::ptr::NonNull;

use generic_array::{ArrayLength, GenericArray, sequence::GenericSequence};
use typenum::U32;

use crate::cache::{SlotReach, class_size};
use crate::error::AllocError;
use crate::magazine::MagazineFront;
use crate::page_allocator::{DefaultPages, PageAllocator};
use crate::raw::{Blocks, Fallback, NoFallback, SizeClassLimit, SlabAllocator, resize};

/// A per-thread front of a [`SlabAllocator`]: a magazine of up to `N` free
/// slots (32 by default) per size class, used without a lock. Requests
/// beyond the classes go straight to the allocator's fallback.
///
/// ```
/// use core::alloc::Layout;
/// use minimal_slab::SlabAllocator;
///
/// static HEAP: SlabAllocator = SlabAllocator::new();
///
/// let local = HEAP.local();
/// let layout = Layout::new::<[u8; 64]>();
/// let p = local.allocate(layout).unwrap();
/// // SAFETY: `p` came from `local.allocate(layout)` and is not used again.
/// unsafe { local.deallocate(p, layout) };
/// drop(local); // gives the cached slots back
/// assert_eq!(HEAP.stats().objects_in_use(), 0);
/// ```
pub struct LocalAllocator<
    'a,
    P: PageAllocator = DefaultPages,
    F: Fallback = NoFallback,
    M: SizeClassLimit = typenum::U256,
    N: ArrayLength = U32,
> {
    heap: &'a SlabAllocator<P, F, M>,
    fronts: GenericArray<MagazineFront<N>, M::Classes>,
}

impl<P: PageAllocator, F: Fallback, M: SizeClassLimit> SlabAllocator<P, F, M> {
    /// A per-thread front of this allocator, with a magazine of 32 slots per
    /// size class (see [`LocalAllocator::new`] for another capacity).
    pub fn local(&self) -> LocalAllocator<'_, P, F, M> {
        LocalAllocator::new(self)
    }
}

impl<'a, P: PageAllocator, F: Fallback, M: SizeClassLimit, N: ArrayLength>
    LocalAllocator<'a, P, F, M, N>
{
    /// A front of `heap` with magazines of `N` slots.
    pub fn new(heap: &'a SlabAllocator<P, F, M>) -> Self {
        Self {
            heap,
            fronts: GenericArray::generate(|_| MagazineFront::new()),
        }
    }

    /// Allocates memory for `layout`, as [`SlabAllocator::allocate`] does,
    /// from the size class's magazine when it can.
    ///
    /// # Errors
    ///
    /// As for [`SlabAllocator::allocate`].
    #[inline]
    pub fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        match SlabAllocator::<P, F, M>::class_index(layout) {
            Some(class) => self.fronts[class].take(self.heap.set(), class, class_size(class)),
            // Zero-sized, or the fallback's.
            None => self.heap.allocate(layout),
        }
    }

    /// Frees memory from [`allocate`](Self::allocate) into the size class's
    /// magazine (half of a full one goes back to the allocator first).
    ///
    /// # Safety
    ///
    /// As for [`SlabAllocator::deallocate`]: `ptr` came from `allocate` on
    /// this front, another front of the same allocator, or the allocator
    /// itself, with this same `layout`; it is that pointer or one derived
    /// from it by pointer arithmetic; it is not freed twice (no double
    /// free) and not used after this call (no use after free).
    ///
    /// Checked builds catch, at once, a pointer of another allocator or
    /// size class and a second free, wherever the first went (this
    /// magazine, another front's or thread's, the slab). Each panics naming
    /// the misuse.
    #[inline]
    pub unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        let Some(class) = SlabAllocator::<P, F, M>::class_index(layout) else {
            // SAFETY: the caller's guarantees.
            return unsafe { self.heap.deallocate(ptr, layout) };
        };
        // SAFETY: the caller's guarantees; checked builds verify the owner
        // and size class at once.
        unsafe {
            self.fronts[class].give(
                self.heap.set(),
                class,
                class_size(class),
                ptr,
                SlotReach::Page,
            )
        };
    }

    /// Resizes memory from [`allocate`](Self::allocate), keeping the first
    /// `min(layout.size(), new_size)` bytes; in place when the new size falls
    /// in the same size class.
    ///
    /// # Errors
    ///
    /// As for [`SlabAllocator::reallocate`]; on error `ptr` is untouched and
    /// still owned by the caller.
    ///
    /// # Safety
    ///
    /// As for [`deallocate`](Self::deallocate). On success the old pointer
    /// must not be used again.
    pub unsafe fn reallocate(
        &self,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: the caller's guarantees.
        unsafe { resize(self, ptr, layout, new_size) }
    }

    /// Slots resting in the magazines, all classes together.
    pub fn cached(&self) -> usize {
        self.fronts.iter().map(MagazineFront::cached).sum()
    }

    /// Gives every slot in every magazine back to the allocator.
    ///
    /// Every slot goes back before the first page does: should the page
    /// source panic, no class's slots are left behind in a front about to
    /// be dropped.
    pub fn flush(&self) {
        let set = self.heap.set();
        for (class, front) in self.fronts.iter().enumerate() {
            front.flush(set, class, class_size(class), false);
        }
        for class in 0..self.fronts.len() {
            set.trim(class);
        }
    }

    /// The shared allocator behind this front.
    pub fn allocator(&self) -> &'a SlabAllocator<P, F, M> {
        self.heap
    }
}

impl<P: PageAllocator, F: Fallback, M: SizeClassLimit, N: ArrayLength> Blocks
    for LocalAllocator<'_, P, F, M, N>
{
    const LARGEST_CLASS: usize = M::USIZE;

    fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        LocalAllocator::allocate(self, layout)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's guarantees.
        unsafe { LocalAllocator::deallocate(self, ptr, layout) }
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

    fn in_place(&self, ptr: NonNull<u8>, _: Layout, _: usize) -> Option<NonNull<u8>> {
        Some(ptr)
    }
}

impl<P: PageAllocator, F: Fallback, M: SizeClassLimit, N: ArrayLength> Drop
    for LocalAllocator<'_, P, F, M, N>
{
    fn drop(&mut self) {
        self.flush();
    }
}

impl<P: PageAllocator, F: Fallback, M: SizeClassLimit, N: ArrayLength> fmt::Debug
    for LocalAllocator<'_, P, F, M, N>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalAllocator")
            .field("cached", &self.cached())
            .field("capacity", &N::USIZE)
            .finish_non_exhaustive()
    }
}

// SAFETY: the front holds a shared reference to the allocator (usable from
// any thread: it is `Sync` whenever its pages and fallback are) and pointers
// to free slots; moving it moves their ownership. It is not `Sync`.
unsafe impl<P, F, M, N> Send for LocalAllocator<'_, P, F, M, N>
where
    P: PageAllocator + Sync,
    F: Fallback + Sync,
    M: SizeClassLimit,
    N: ArrayLength,
{
}
