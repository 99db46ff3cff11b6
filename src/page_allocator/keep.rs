//! A page source whose pages the caches keep once they have taken them.

use core::fmt;
use core::ops::Deref;
use core::ptr::NonNull;

use super::PageAllocator;
use crate::error::PageAllocError;

/// The pages of `P`, kept by the caches that take them: a free never gives
/// a page back. The slabs that frees empty stay with their cache, ready for
/// its next allocations, as a fixed pool (heapless's `box_pool!`) keeps its
/// blocks; only [`shrink`](crate::SlabCache::shrink) and dropping the cache
/// give pages back to `P`.
///
/// It is a compile-time policy, for firmware code size: the code that
/// decides when an emptied slab's page goes back — the reserve, the decay
/// window of [`CacheConfig`](crate::CacheConfig) — is not linked, and
/// neither are the counts the fast paths keep for it (the slabs' own counts
/// are walked instead when `stats`, `shrink` or `set_config` need them).
/// `bash scripts/size` measures what it saves. The configuration's
/// `reserve` and `decay` have no effect under it (every empty slab is kept);
/// its `page_limit` still caps the pages a cache takes.
///
/// For a cache that has its region to itself, or whose peak is what it
/// needs anyway; where several caches share a small region and should hand
/// each other pages, give the caches the region itself and configure them
/// with [`eager`](crate::CacheConfig::eager) instead.
///
/// ```
/// use core::mem::MaybeUninit;
/// use minimal_slab::typenum::U1024;
/// use minimal_slab::{KeepPages, RegionPages, SlabCache};
///
/// static mut MEMORY: [MaybeUninit<u8>; 4 * 1024] = [MaybeUninit::uninit(); 4 * 1024];
/// // Taking the address of a `static mut` is safe.
/// const BYTES: *mut [MaybeUninit<u8>; 4 * 1024] = &raw mut MEMORY;
/// // SAFETY: nothing else names `MEMORY`: this is the one reference to it,
/// // given up to the region.
/// static PAGES: KeepPages<RegionPages<U1024>> =
///     KeepPages::new(RegionPages::with_memory(unsafe { &mut *BYTES }));
/// static READINGS: SlabCache<[u32; 8], &KeepPages<RegionPages<U1024>>> =
///     SlabCache::new_in(&PAGES);
///
/// let burst: Vec<_> = (0..60).map(|i| READINGS.alloc([i; 8]).ok().unwrap()).collect();
/// assert_eq!(READINGS.stats().pages, 2); // 30 readings to a 1 KiB slab
/// drop(burst);
/// READINGS.flush_thread_cache(); // feature `std`: this thread's cached slots
/// assert_eq!(READINGS.stats().objects_in_use, 0);
/// assert_eq!(READINGS.stats().pages, 2); // both kept, empty
/// assert_eq!(READINGS.shrink(), 2); // given back on request
/// assert_eq!(PAGES.available(), PAGES.capacity());
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct KeepPages<P> {
    pages: P,
}

impl<P> KeepPages<P> {
    /// The pages of `pages`, kept by the caches that take them. `const`, so
    /// a `static` can hold it.
    pub const fn new(pages: P) -> Self {
        Self { pages }
    }

    /// The page source the pages come from.
    pub const fn get_ref(&self) -> &P {
        &self.pages
    }

    /// The page source, unwrapped.
    pub fn into_inner(self) -> P {
        self.pages
    }
}

/// The wrapped page source's own methods (`capacity`, `available` of a
/// region), as on the source itself.
impl<P> Deref for KeepPages<P> {
    type Target = P;

    fn deref(&self) -> &P {
        &self.pages
    }
}

impl<P: fmt::Debug> fmt::Debug for KeepPages<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("KeepPages").field(&self.pages).finish()
    }
}

// SAFETY: forwards both methods to `P`, which upholds the contract, and
// promises alignment exactly when `P` does; `KEEP_PAGES` changes only when
// the caches call `deallocate_page`, not what a page is.
unsafe impl<P: PageAllocator> PageAllocator for KeepPages<P> {
    type PageSize = P::PageSize;
    const PAGES_ALIGNED: bool = P::PAGES_ALIGNED;
    const KEEP_PAGES: bool = true;

    #[inline]
    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        self.pages.allocate_page()
    }

    #[inline]
    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        // SAFETY: the caller's guarantees, for the same pages.
        unsafe { self.pages.deallocate_page(page) }
    }

    #[inline]
    fn trim(&self) {
        self.pages.trim()
    }
}
