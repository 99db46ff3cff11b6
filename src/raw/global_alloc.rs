//! `SlabAllocator` as a `GlobalAlloc`, and the entry points for pointers
//! whose borrow covers the object alone (see the module docs, Provenance).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use super::{Entry, Fallback, SizeClassLimit, SlabAllocator, abort_on_misuse, resize};
use crate::cache::SlotReach;
use crate::error::AllocError;
use crate::page_allocator::PageAllocator;

impl<P: PageAllocator, F: Fallback, M: SizeClassLimit> SlabAllocator<P, F, M> {
    /// The entry point for pointers whose borrow may cover the object alone
    /// (a `Box`'s), as the `GlobalAlloc` methods take them; a misuse aborts.
    fn narrowed(&self, layout: Layout) -> Entry<'_, P, F, M> {
        Entry {
            heap: self,
            reach: SlotReach::Object(layout.size()),
            report: abort_on_misuse,
            per_thread: false,
        }
    }

    /// [`deallocate`](Self::deallocate) for a pointer whose borrow may cover
    /// the object alone (a `Box`'s), as the `GlobalAlloc` methods take it. A
    /// misuse aborts.
    ///
    /// # Safety
    ///
    /// As for `deallocate`, except that `ptr` may be re-derived from a
    /// reference or a `Box` to the object.
    #[inline]
    pub(crate) unsafe fn deallocate_narrowed(&self, ptr: NonNull<u8>, layout: Layout) {
        let reach = SlotReach::Object(layout.size());
        // SAFETY: the caller's guarantees; `reach` says what `ptr` covers.
        unsafe { self.deallocate_with(ptr, layout, reach, abort_on_misuse) }
    }

    /// [`reallocate`](Self::reallocate) for a pointer whose borrow may cover
    /// the object alone, as `GlobalAlloc::realloc` takes it. A misuse aborts.
    ///
    /// # Safety
    ///
    /// As for [`deallocate_narrowed`](Self::deallocate_narrowed), and
    /// `new_size` is as for `reallocate`.
    pub(crate) unsafe fn reallocate_narrowed(
        &self,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: the caller's guarantees; the entry point knows what `ptr`
        // covers.
        unsafe { resize(&self.narrowed(layout), ptr, layout, new_size) }
    }
}

/// Runs `body`, and aborts the process should it unwind: a `GlobalAlloc`
/// must not unwind, and a page source (user code) may panic. An `extern
/// "C"` function cannot unwind: a panic reaching its end aborts, after the
/// panic message is printed. Inlined, it costs nothing until then.
#[inline(always)]
#[allow(improper_ctypes_definitions)] // never called from outside Rust
extern "C" fn abort_on_unwind<R>(body: impl FnOnce() -> R) -> R {
    body()
}

// SAFETY: `allocate` returns memory valid for the layout (a class slot at
// least as large and as aligned, or the fallback's), never handed out twice
// (each class core's invariants), and `deallocate` routes by layout to where
// `alloc` got it. None unwinds: a misuse aborts, and a page source that
// panics aborts too (`abort_on_unwind`).
unsafe impl<P, F, M> GlobalAlloc for SlabAllocator<P, F, M>
where
    P: PageAllocator,
    F: Fallback,
    M: SizeClassLimit,
{
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        abort_on_unwind(|| {
            self.allocate_with(layout, abort_on_misuse)
                .map_or(ptr::null_mut(), NonNull::as_ptr)
        })
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(ptr) = NonNull::new(ptr) {
            // SAFETY: `GlobalAlloc::dealloc`'s contract is
            // `deallocate_narrowed`'s.
            abort_on_unwind(|| unsafe { self.deallocate_narrowed(ptr, layout) })
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(ptr) = NonNull::new(ptr) else {
            return ptr::null_mut();
        };
        // SAFETY: `GlobalAlloc::realloc`'s contract is `reallocate_narrowed`'s.
        let moved = abort_on_unwind(|| unsafe { self.reallocate_narrowed(ptr, layout, new_size) });
        moved.map_or(ptr::null_mut(), NonNull::as_ptr)
    }
}
