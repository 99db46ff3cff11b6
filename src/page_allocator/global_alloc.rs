//! Pages from any `GlobalAlloc`.

use core::alloc::GlobalAlloc;
use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

use typenum::U4096;

use super::{PageAllocator, PageSize, page_layout};
use crate::error::PageAllocError;

/// Pages from a [`GlobalAlloc`] of your choice, such as `std::alloc::System`.
///
/// This is the page source for a `SlabAllocator` installed as the
/// `#[global_allocator]`: its pages come from an allocator that is not itself,
/// so there is no recursion.
///
/// ```
/// use minimal_slab::page_allocator::{GlobalAllocPages, PageAllocator};
/// use std::alloc::System;
///
/// let pages = GlobalAllocPages::new(System);
/// let page = pages.allocate_page().unwrap();
/// assert_eq!(page.as_ptr() as usize % 4096, 0);
/// // SAFETY: the page came from `pages` and is not used again.
/// unsafe { pages.deallocate_page(page) };
/// ```
pub struct GlobalAllocPages<A, S: PageSize = U4096> {
    alloc: A,
    _size: PhantomData<S>,
}

impl<A: Clone, S: PageSize> Clone for GlobalAllocPages<A, S> {
    fn clone(&self) -> Self {
        Self {
            alloc: self.alloc.clone(),
            _size: PhantomData,
        }
    }
}

impl<A: Copy, S: PageSize> Copy for GlobalAllocPages<A, S> {}

impl<A: GlobalAlloc> GlobalAllocPages<A> {
    /// Takes 4 KiB pages from `alloc`.
    pub const fn new(alloc: A) -> Self {
        Self::with_page_size(alloc)
    }
}

impl<A: GlobalAlloc, S: PageSize> GlobalAllocPages<A, S> {
    /// Takes pages of `S` bytes from `alloc`, the size named by the type:
    /// `GlobalAllocPages::<_, U16384>::with_page_size(System)`.
    pub const fn with_page_size(alloc: A) -> Self {
        Self {
            alloc,
            _size: PhantomData,
        }
    }

    /// The allocator the pages come from.
    pub const fn inner(&self) -> &A {
        &self.alloc
    }
}

impl<A: fmt::Debug, S: PageSize> fmt::Debug for GlobalAllocPages<A, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlobalAllocPages")
            .field("alloc", &self.alloc)
            .field("page_size", &S::USIZE)
            .finish()
    }
}

// SAFETY: each page is a fresh allocation of `page_layout::<S>()` from `A`,
// whose own `GlobalAlloc` contract makes it `S` bytes, aligned to `S`, and ours
// until deallocated with the same layout.
unsafe impl<A: GlobalAlloc, S: PageSize> PageAllocator for GlobalAllocPages<A, S> {
    type PageSize = S;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        // SAFETY: the layout has a non-zero size (a page is at least 256 bytes).
        let page = unsafe { self.alloc.alloc(page_layout::<S>()) };
        NonNull::new(page).ok_or(PageAllocError::OutOfMemory)
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        // SAFETY: the caller guarantees `page` came from `allocate_page`, which
        // allocated it from `self.alloc` with this same layout.
        unsafe { self.alloc.dealloc(page.as_ptr(), page_layout::<S>()) }
    }
}
