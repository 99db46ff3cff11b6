//! A page source with no pages.

use core::ptr::NonNull;

use typenum::U4096;

use super::PageAllocator;
use crate::error::PageAllocError;

/// A page source that never has a page: every request fails with
/// [`PageAllocError::OutOfMemory`].
///
/// The default page source of builds without the `alloc` feature, and a handy
/// way to see how code copes with an allocator that is out of memory.
///
/// ```
/// use minimal_slab::{SlabCache, page_allocator::NoPages};
///
/// let cache = SlabCache::<u32, _>::new_in(NoPages);
/// let failed = cache.alloc(7).unwrap_err();
/// assert_eq!(failed.into_value(), 7);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoPages;

// SAFETY: never hands out a page, so there is no page to break a promise about.
unsafe impl PageAllocator for NoPages {
    type PageSize = U4096;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        Err(PageAllocError::OutOfMemory)
    }

    unsafe fn deallocate_page(&self, _page: NonNull<u8>) {
        unreachable!("NoPages never hands out a page, so none can come back")
    }
}
