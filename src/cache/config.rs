//! How a cache grows and gives memory back.

/// How a cache grows and gives memory back.
///
/// Built with `const` setters, so a configured cache can still be a
/// `static`; read through its public fields.
///
/// ```
/// use minimal_slab::{CacheConfig, ChunkedGlobalPages, SlabCache};
///
/// // At most 4 pages, and no empty slab kept around.
/// static POINTS: SlabCache<(f32, f32)> = SlabCache::with_config(
///     ChunkedGlobalPages::global(),
///     CacheConfig::new().page_limit(4).reserve(0),
/// );
/// assert_eq!(POINTS.config().page_limit, Some(4));
/// let p = POINTS.alloc((1.0, 2.0)).unwrap();
/// assert_eq!(POINTS.stats().pages, 1);
/// drop(p); // the slot rests in this thread's cache (feature `std`)...
/// POINTS.flush_thread_cache(); // ...until it goes back to its slab:
/// assert_eq!(POINTS.stats().pages, 0); // reserve 0: the page went back at once
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct CacheConfig {
    /// The most pages the cache may hold, if capped: an allocation that
    /// would need one more fails with
    /// [`AllocError::PageLimit`](crate::AllocError::PageLimit).
    pub page_limit: Option<usize>,
    /// How many empty slabs the cache keeps instead of giving their pages
    /// back.
    pub reserve: usize,
}

impl CacheConfig {
    /// Empty slabs a cache keeps by default instead of giving their pages
    /// back: enough to absorb alloc/free ping-pong at a slab boundary.
    pub const DEFAULT_RESERVE: usize = 2;

    /// No page limit, and a reserve of
    /// [`DEFAULT_RESERVE`](Self::DEFAULT_RESERVE) empty slabs.
    pub const fn new() -> Self {
        Self {
            page_limit: None,
            reserve: Self::DEFAULT_RESERVE,
        }
    }

    /// Caps the pages the cache may hold, for memory use known in advance.
    /// An allocation that would need one more page fails with
    /// [`AllocError::PageLimit`](crate::AllocError::PageLimit).
    pub const fn page_limit(mut self, pages: usize) -> Self {
        self.page_limit = Some(pages);
        self
    }

    /// Removes the page cap.
    pub const fn unlimited(mut self) -> Self {
        self.page_limit = None;
        self
    }

    /// How many empty slabs to keep instead of giving their pages back.
    pub const fn reserve(mut self, slabs: usize) -> Self {
        self.reserve = slabs;
        self
    }

    /// The page cap, if any.
    #[deprecated(since = "0.1.1", note = "read the `page_limit` field")]
    pub const fn get_page_limit(&self) -> Option<usize> {
        self.page_limit
    }

    /// The number of empty slabs kept.
    #[deprecated(since = "0.1.1", note = "read the `reserve` field")]
    pub const fn get_reserve(&self) -> usize {
        self.reserve
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self::new()
    }
}
