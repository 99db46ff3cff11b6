//! Pages from the global allocator: [`GlobalAllocPages`] over a handle to
//! `alloc::alloc`, with constructors that need no argument.

use core::alloc::{GlobalAlloc, Layout};
use core::fmt;
use core::ptr::NonNull;

use typenum::U4096;

use super::{GlobalAllocPages, PageAllocator, PageSize};
use crate::error::PageAllocError;

/// The program's global allocator as a `GlobalAlloc` value.
#[derive(Clone, Copy, Default)]
struct GlobalHeap;

// SAFETY: forwards to `alloc::alloc`, the global allocator, whose contract
// is this one.
unsafe impl GlobalAlloc for GlobalHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees are `alloc::alloc::alloc`'s.
        unsafe { alloc::alloc::alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's guarantees are `alloc::alloc::dealloc`'s.
        unsafe { alloc::alloc::dealloc(ptr, layout) }
    }
}

/// Pages from `alloc::alloc`, the program's global allocator: one global
/// allocation per page. (The default page source, [`ChunkedGlobalPages`],
/// cuts 256 KiB pages of this source into 4 KiB ones.) It is
/// [`GlobalAllocPages`] over the global allocator, with constructors that
/// take no argument.
///
/// Do not use it under a `SlabAllocator` that is itself the
/// `#[global_allocator]`: the pages would be asked of the allocator that is
/// asking for them. Use [`GlobalAllocPages`] there.
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
///
/// [`ChunkedGlobalPages`]: super::ChunkedGlobalPages
#[derive(Clone, Copy)]
pub struct GlobalPages<S: PageSize = U4096>(GlobalAllocPages<GlobalHeap, S>);

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
        Self(GlobalAllocPages::with_page_size(GlobalHeap))
    }
}

impl<S: PageSize> Default for GlobalPages<S> {
    fn default() -> Self {
        Self::with_page_size()
    }
}

impl<S: PageSize> fmt::Debug for GlobalPages<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GlobalPages<{}>", S::USIZE)
    }
}

// SAFETY: forwards to `GlobalAllocPages`, which upholds the contract.
unsafe impl<S: PageSize> PageAllocator for GlobalPages<S> {
    type PageSize = S;

    #[inline]
    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        self.0.allocate_page()
    }

    #[inline]
    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        // SAFETY: the caller's guarantees, for the same pages.
        unsafe { self.0.deallocate_page(page) }
    }
}
