//! Where requests go that no size class can serve.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use super::{SizeClassLimit, SlabAllocator};
use crate::checked::Misuse;
use crate::error::AllocError;
use crate::page_allocator::PageAllocator;

/// Where a [`SlabAllocator`](crate::SlabAllocator) sends requests that no size class can serve.
///
/// # Safety
///
/// `allocate` must return memory valid for reads and writes of
/// `layout.size()` bytes, aligned to `layout.align()`, not handed out to
/// anyone else until it is passed to `deallocate` or `reallocate`.
/// `reallocate` must keep the first `min(old, new)` bytes. Zero-sized
/// layouts must be handled too (`SlabAllocator` never sends them, but the
/// methods are public).
pub unsafe trait Fallback {
    /// Allocates `layout` (never zero-sized).
    fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, AllocError>;

    /// Frees `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` came from `allocate` (or `reallocate`) on this fallback with this
    /// `layout`, has not been freed since (no double free), and is not used
    /// after this call (no use after free).
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout);

    /// Resizes `ptr` to `new_size` bytes, keeping its contents.
    ///
    /// # Safety
    ///
    /// As for [`deallocate`](Self::deallocate); `new_size` is non-zero and,
    /// rounded up to `layout.align()`, does not overflow `isize`. On success
    /// the old pointer must not be used again.
    unsafe fn reallocate(
        &self,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Result<NonNull<u8>, AllocError>;
}

/// The default fallback: no fallback. Requests beyond the size classes fail
/// with [`AllocError::UnsupportedLayout`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoFallback;

// SAFETY: never hands out memory.
unsafe impl Fallback for NoFallback {
    fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        Err(unsupported(layout))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, _layout: Layout) {
        // Nothing was ever allocated here: the pointer is foreign, or the
        // layout is not the one it was allocated with.
        report_in_allocator(Misuse::ForeignPointer, ptr)
    }

    unsafe fn reallocate(
        &self,
        _ptr: NonNull<u8>,
        layout: Layout,
        _new_size: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        Err(unsupported(layout))
    }
}

// SAFETY: forwards to `A`, whose `GlobalAlloc` contract gives the guarantees;
// zero-sized layouts, which `GlobalAlloc` must never see, are answered here.
unsafe impl<A: GlobalAlloc> Fallback for A {
    fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        if layout.size() == 0 {
            return Ok(dangling(layout));
        }
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { self.alloc(layout) };
        NonNull::new(ptr).ok_or(AllocError::FallbackFailed {
            size: layout.size(),
            align: layout.align(),
        })
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() == 0 {
            return; // a dangling pointer from `allocate`
        }
        // SAFETY: the caller's guarantees are `GlobalAlloc::dealloc`'s.
        unsafe { self.dealloc(ptr.as_ptr(), layout) }
    }

    unsafe fn reallocate(
        &self,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        if layout.size() == 0 {
            return self.allocate(
                Layout::from_size_align(new_size, layout.align())
                    .map_err(|_| unsupported(layout))?,
            );
        }
        // SAFETY: the caller's guarantees are `GlobalAlloc::realloc`'s (a
        // non-zero old size, and a non-zero new size that does not overflow).
        let new = unsafe { self.realloc(ptr.as_ptr(), layout, new_size) };
        NonNull::new(new).ok_or(AllocError::FallbackFailed {
            size: new_size,
            align: layout.align(),
        })
    }
}

/// The error for a layout nothing here can serve.
pub(crate) fn unsupported(layout: Layout) -> AllocError {
    AllocError::UnsupportedLayout {
        size: layout.size(),
        align: layout.align(),
    }
}

/// Reports a misuse found inside an allocator entry point. Allocator methods
/// must not unwind, and a `GlobalAlloc` certainly not: the panic message is
/// printed, and an `extern "C"` function cannot unwind, so the process aborts.
#[cold]
#[allow(improper_ctypes_definitions)] // never called from outside Rust
pub(crate) extern "C" fn report_in_allocator(misuse: Misuse, ptr: NonNull<u8>) -> ! {
    misuse.report(ptr)
}

/// `layout` with its size changed to `new_size`, or the error a reallocation
/// to an impossible size (one that overflows `isize` once aligned) returns.
pub(crate) fn resized(layout: Layout, new_size: usize) -> Result<Layout, AllocError> {
    Layout::from_size_align(new_size, layout.align()).map_err(|_| AllocError::UnsupportedLayout {
        size: new_size,
        align: layout.align(),
    })
}

/// A non-null pointer aligned to `layout.align()` that points at nothing: the
/// answer to a zero-sized request.
pub(crate) fn dangling(layout: Layout) -> NonNull<u8> {
    NonNull::new(ptr::without_provenance_mut(layout.align())).unwrap_or(NonNull::dangling())
}

/// [`report_in_allocator`] as a [`Report`](crate::checked::Report): how the
/// `GlobalAlloc` entry points report a misuse.
pub(crate) fn abort_on_misuse(misuse: Misuse, ptr: NonNull<u8>) -> ! {
    report_in_allocator(misuse, ptr)
}

impl<P: PageAllocator, F: Fallback, M: SizeClassLimit> SlabAllocator<P, F, M> {
    /// Counts a block of the fallback's in (`allocated`) or out.
    pub(super) fn count_fallback(&self, bytes: usize, allocated: bool) {
        self.fallback_counts.count(bytes, allocated);
    }

    /// Resizes a block of the fallback's, counting it.
    ///
    /// # Safety
    ///
    /// As for [`Fallback::reallocate`].
    pub(crate) unsafe fn fallback_reallocate(
        &self,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: the caller's guarantees.
        let new = unsafe { self.fallback.reallocate(ptr, layout, new_size) }?;
        self.count_fallback(layout.size(), false);
        self.count_fallback(new_size, true);
        Ok(new)
    }
}
