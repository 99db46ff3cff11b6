//! Pages from the global allocator.

use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

use typenum::U4096;

use super::{PageAllocator, PageSize, page_layout};
use crate::error::PageAllocError;

/// Pages from `alloc::alloc`, the program's global allocator. The default page
/// source: nothing to set up.
///
/// Do not use it under a `SlabAllocator` that is itself the
/// `#[global_allocator]`: the pages would be asked of the allocator that is
/// asking for them. Use [`GlobalAllocPages`](super::GlobalAllocPages) there.
///
/// ```
/// use minimal_slab::page_allocator::{GlobalPages, PageAllocator};
///
/// let pages = GlobalPages::<minimal_slab::typenum::U8192>::with_page_size();
/// let page = pages.allocate_page().unwrap();
/// assert_eq!(page.as_ptr() as usize % 8192, 0);
/// // SAFETY: the page came from `pages` and is not used again.
/// unsafe { pages.deallocate_page(page) };
/// ```
pub struct GlobalPages<S: PageSize = U4096> {
    _size: PhantomData<S>,
}

impl GlobalPages {
    /// The global allocator as a source of 4 KiB pages.
    pub const fn new() -> Self {
        Self::with_page_size()
    }
}

impl<S: PageSize> GlobalPages<S> {
    /// The global allocator as a source of pages of `S` bytes, named by the
    /// type: `GlobalPages::<U65536>::with_page_size()`.
    pub const fn with_page_size() -> Self {
        Self { _size: PhantomData }
    }
}

impl<S: PageSize> Default for GlobalPages<S> {
    fn default() -> Self {
        Self::with_page_size()
    }
}

impl<S: PageSize> Clone for GlobalPages<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S: PageSize> Copy for GlobalPages<S> {}

impl<S: PageSize> fmt::Debug for GlobalPages<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GlobalPages<{}>", S::USIZE)
    }
}

// SAFETY: each page is a fresh allocation of `page_layout::<S>()` from the
// global allocator: `S` bytes, aligned to `S`, exclusively ours until freed.
unsafe impl<S: PageSize> PageAllocator for GlobalPages<S> {
    type PageSize = S;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        // SAFETY: the layout has a non-zero size (a page is at least 256 bytes).
        let page = unsafe { alloc::alloc::alloc(page_layout::<S>()) };
        NonNull::new(page).ok_or(PageAllocError::OutOfMemory)
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        // SAFETY: the caller guarantees `page` came from `allocate_page`, which
        // allocated it from the global allocator with this same layout.
        unsafe { alloc::alloc::dealloc(page.as_ptr(), page_layout::<S>()) }
    }
}
