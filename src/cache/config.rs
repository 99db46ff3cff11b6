//! How a cache grows and gives memory back.

/// How a cache grows and gives memory back.
///
/// Built with `const` setters, so a configured cache can still be a
/// `static`; read through its public fields.
///
/// # Giving pages back
///
/// A cache gives the page of an emptied slab back to its page source — not
/// at once, but with hysteresis counted in frees (there is no clock in
/// `no_std`):
///
/// - [`reserve`](field@Self::reserve) empty slabs are always kept;
/// - more empty slabs are kept while the cache holds no more pages than it
///   had in use at its peak over a recent window of frees (its
///   [`decay`](field@Self::decay)), so a loop that fills the cache and
///   empties it again keeps its pages from round to round instead of
///   handing them to the page source (and the page source to the operating
///   system) every time;
/// - once the peak is out of the window — the workload has shrunk for good
///   — the pages beyond it go back, at most two windows of frees after the
///   last time they were needed (a cache that neither frees nor calls
///   `shrink` keeps them);
/// - [`shrink`](crate::SlabCache::shrink) gives back every empty slab, the
///   reserve and the recent peak's included, at once.
///
/// [`eager`](Self::eager) turns the hysteresis off: every slab emptied
/// beyond the reserve gives its page back at once, for firmware that
/// shares a small region of pages between caches.
///
/// ```
/// use minimal_slab::{CacheConfig, ChunkedGlobalPages, SlabCache};
///
/// // At most 4 pages, no empty slab kept around, pages given back at once.
/// static POINTS: SlabCache<(f32, f32)> = SlabCache::with_config(
///     ChunkedGlobalPages::global(),
///     CacheConfig::new().page_limit(4).reserve(0).eager(),
/// );
/// assert_eq!(POINTS.config().page_limit, Some(4));
/// let p = POINTS.alloc((1.0, 2.0)).unwrap();
/// assert_eq!(POINTS.stats().pages, 1);
/// drop(p); // the slot rests in this thread's cache (feature `std`)...
/// POINTS.flush_thread_cache(); // ...until it goes back to its slab:
/// assert_eq!(POINTS.stats().pages, 0); // eager, reserve 0: the page went back at once
/// ```
///
/// # On a microcontroller
///
/// With a few KiB of RAM, every page counts: the default keeps
/// [`DEFAULT_RESERVE`](Self::DEFAULT_RESERVE) empty slabs and the recent
/// peak's pages, out of reach of the other caches sharing the region. For
/// a `static` cache on a small region, state all three knobs:
///
/// - `reserve(0)`: no empty slab kept, or `reserve(1)` if the cache
///   crosses a slab boundary back and forth often (each emptied slab
///   would otherwise go back and come again at once);
/// - `eager()`: no hysteresis, an emptied slab's page goes back at once;
/// - `page_limit(n)`: a cap, so that one cache cannot take the pages the
///   others need; its allocations fail with
///   [`AllocError::PageLimit`](crate::AllocError::PageLimit) past it.
///
/// Pair it with small pages (`RegionPages<U1024>` or `<U2048>`): a cache
/// takes a whole page before its first object. `cargo run --example
/// page_overhead` prints what a page of each size costs per slot size.
///
/// A cache that has its region to itself needs no give-back at all: on a
/// [`KeepPages`](crate::KeepPages) source it keeps every page it takes,
/// and the code that decides when one goes back is not linked (the
/// smallest firmware; `reserve` and `decay` then have no effect).
///
/// ```
/// use core::mem::MaybeUninit;
/// use minimal_slab::typenum::U1024;
/// use minimal_slab::{AllocError, CacheConfig, RegionPages, SlabCache};
///
/// /// A reading: 32 bytes, 30 to a 1 KiB slab.
/// struct Reading([u32; 8]);
///
/// static mut MEMORY: [MaybeUninit<u8>; 4 * 1024] = [MaybeUninit::uninit(); 4 * 1024];
/// // Taking the address of a `static mut` is safe.
/// const BYTES: *mut [MaybeUninit<u8>; 4 * 1024] = &raw mut MEMORY;
/// // SAFETY: nothing else names `MEMORY`: this is the one reference to it,
/// // given up to the region.
/// static PAGES: RegionPages<U1024> = RegionPages::with_memory(unsafe { &mut *BYTES });
/// // At most 2 of the region's pages, none kept once empty.
/// static READINGS: SlabCache<Reading, &RegionPages<U1024>> = SlabCache::with_config(
///     &PAGES,
///     CacheConfig::new().reserve(0).eager().page_limit(2),
/// );
///
/// let first = READINGS.alloc(Reading([7; 8])).ok().unwrap();
/// assert_eq!(READINGS.stats().pages, 1);
/// let more: Vec<_> = (0..59).map(|i| READINGS.alloc(Reading([i; 8])).ok().unwrap()).collect();
/// assert_eq!(READINGS.stats().pages, 2); // 60 readings fill the cap
/// let refused = READINGS.alloc(Reading([0; 8])).err().unwrap();
/// assert_eq!(refused.error(), AllocError::PageLimit { limit: 2 });
/// drop((first, more));
/// READINGS.flush_thread_cache(); // feature `std`: this thread's cached slots
/// assert_eq!(READINGS.stats().pages, 0); // both pages back in the region
/// ```
///
/// With the default configuration, a burst keeps its pages for the next
/// one, and `shrink` gives them all back:
///
/// ```
/// use minimal_slab::SlabCache;
///
/// let cache: SlabCache<[u8; 64]> = SlabCache::new();
/// for _round in 0..3 {
///     let burst: Vec<_> = (0..10_000).map(|_| cache.alloc([0; 64]).unwrap()).collect();
///     drop(burst);
///     cache.flush_thread_cache(); // this thread's cached slots, back to their slabs
///     // 159 pages were in use at the peak: all kept, empty, for the next round.
///     assert_eq!(cache.stats().pages, 159);
///     assert_eq!(cache.stats().empty_slabs, 159);
/// }
/// cache.shrink();
/// assert_eq!(cache.stats().pages, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct CacheConfig {
    /// The most pages the cache may hold, if capped: an allocation that
    /// would need one more fails with
    /// [`AllocError::PageLimit`](crate::AllocError::PageLimit).
    pub page_limit: Option<usize>,
    /// How many empty slabs the cache always keeps instead of giving their
    /// pages back.
    pub reserve: usize,
    /// The hysteresis of giving pages back, counted in frees (a batch
    /// counts as its length): empty slabs beyond the reserve are kept while
    /// the cache holds no more pages than it had in use at once in the
    /// current or the previous window of frees. A window lasts `decay`
    /// frees, or as many as the peak's pages have slots if that is more —
    /// enough for a loop to empty its peak, whatever its size. So pages no
    /// longer needed go back at most two windows of frees after the last
    /// time they were. Allocations are not counted: they take kept pages
    /// back into use. `0` turns the hysteresis off
    /// ([`eager`](Self::eager)). The name and the idea are jemalloc's
    /// `dirty_decay_ms`, counted in frees instead of milliseconds.
    pub decay: usize,
}

impl CacheConfig {
    /// Empty slabs a cache keeps by default instead of giving their pages
    /// back: enough to absorb alloc/free ping-pong at a slab boundary.
    pub const DEFAULT_RESERVE: usize = 2;

    /// The shortest window of frees over which a cache remembers its peak
    /// by default: 16 384 (see [`decay`](field@Self::decay)).
    pub const DEFAULT_DECAY: usize = 1 << 14;

    /// No page limit, a reserve of
    /// [`DEFAULT_RESERVE`](Self::DEFAULT_RESERVE) empty slabs, and the
    /// pages of the recent peak kept over windows of at least
    /// [`DEFAULT_DECAY`](Self::DEFAULT_DECAY) frees.
    pub const fn new() -> Self {
        Self {
            page_limit: None,
            reserve: Self::DEFAULT_RESERVE,
            decay: Self::DEFAULT_DECAY,
        }
    }

    /// Caps the pages the cache may hold, for memory use known in advance.
    /// An allocation that would need one more page fails with
    /// [`AllocError::PageLimit`](crate::AllocError::PageLimit).
    ///
    /// Free slots resting in other threads' caches (feature `std`: up to 64
    /// a thread, and the cache's depot) or in explicit fronts are not free
    /// to this thread: under a tight limit an allocation can fail while
    /// `stats().cached_slots` is not zero. Size the limit with that slack,
    /// or call `shrink()` (which takes the calling thread's and exited
    /// threads' slots back) before retrying.
    pub const fn page_limit(mut self, pages: usize) -> Self {
        self.page_limit = Some(pages);
        self
    }

    /// Removes the page cap.
    pub const fn unlimited(mut self) -> Self {
        self.page_limit = None;
        self
    }

    /// How many empty slabs to keep always instead of giving their pages
    /// back.
    pub const fn reserve(mut self, slabs: usize) -> Self {
        self.reserve = slabs;
        self
    }

    /// Keeps the pages of the recent peak over windows of at least `frees`
    /// frees; `0` is [`eager`](Self::eager). See the
    /// [`decay`](field@Self::decay) field.
    ///
    /// ```
    /// use minimal_slab::{CacheConfig, SlabCache};
    ///
    /// let cache: SlabCache<u64> = SlabCache::new();
    /// cache.set_config(CacheConfig::new().reserve(0).decay(1_000));
    /// let burst: Vec<_> = (0..5_000).map(|i| cache.alloc(i).unwrap()).collect();
    /// let peak = cache.stats().pages;
    /// drop(burst);
    /// cache.flush_thread_cache(); // this thread's cached slots, to their slabs
    /// assert_eq!(cache.stats().pages, peak); // kept for the next burst
    /// // The workload shrinks for good: a hundred objects at a time. A
    /// // window is 1 000 frees, or the peak's slots (5 000 and some) if
    /// // more: within two, the peak has decayed and its pages have gone
    /// // back. (The frees that count are those that reach the cache: a
    /// // thread's cache absorbs up to 64 before it gives half back.)
    /// for _ in 0..300 {
    ///     let some: Vec<_> = (0..100).map(|i| cache.alloc(i).unwrap()).collect();
    ///     drop(some);
    /// }
    /// assert!(cache.stats().pages <= 2);
    /// ```
    pub const fn decay(mut self, frees: usize) -> Self {
        self.decay = frees;
        self
    }

    /// Gives the page of every slab emptied beyond the reserve back at
    /// once, with no hysteresis: the behaviour of earlier versions, for
    /// memory that other caches are waiting for. Same as `decay(0)`.
    pub const fn eager(self) -> Self {
        self.decay(0)
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

/// A [`CacheConfig`] as a cache core keeps it: each field stored as its
/// difference from the default (`page_limit` plus one, 0 for none;
/// `reserve` and `decay` exclusive-ored with their defaults), so that the
/// default configuration is stored as zeros. With the rest of a default
/// core, a `static` typed cache is then all zeros and lands in a
/// firmware's zeroed RAM (`.bss`) instead of its initialised data
/// (`.data`, which costs its flash too). Each read costs an add or an
/// exclusive or with a constant, on the cold paths that read them.
///
/// A page limit of `usize::MAX` pages is stored as none: no cache can hold
/// that many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoredConfig {
    page_limit: usize,
    reserve: Biased<{ CacheConfig::DEFAULT_RESERVE }>,
    decay: Biased<{ CacheConfig::DEFAULT_DECAY }>,
}

/// A count stored as its exclusive or with `DEFAULT`, so that the default
/// is stored as zero: how a cache core keeps the values whose defaults are
/// not zero (its configuration's, its decay's), so that a default core is
/// all zeros. Reading one costs an exclusive or with a constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::cache) struct Biased<const DEFAULT: usize>(usize);

impl<const DEFAULT: usize> Biased<DEFAULT> {
    /// `value`, stored.
    #[inline(always)]
    pub(in crate::cache) const fn of(value: usize) -> Self {
        Self(value ^ DEFAULT)
    }

    /// The value stored.
    #[inline(always)]
    pub(in crate::cache) const fn get(self) -> usize {
        self.0 ^ DEFAULT
    }
}

impl StoredConfig {
    /// `config`, stored.
    pub(crate) const fn of(config: &CacheConfig) -> Self {
        Self {
            page_limit: match config.page_limit {
                Some(limit) => limit.wrapping_add(1),
                None => 0,
            },
            reserve: Biased::of(config.reserve),
            decay: Biased::of(config.decay),
        }
    }

    /// The page cap, if any.
    #[inline]
    pub(crate) fn page_limit(&self) -> Option<usize> {
        self.page_limit.checked_sub(1)
    }

    /// The empty slabs kept.
    #[inline]
    pub(crate) fn reserve(&self) -> usize {
        self.reserve.get()
    }

    /// The configuration stored.
    pub(crate) fn get(&self) -> CacheConfig {
        CacheConfig {
            page_limit: self.page_limit(),
            reserve: self.reserve(),
            decay: self.decay.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Biased, CacheConfig, StoredConfig};

    #[test]
    fn the_default_is_stored_as_zeros_and_every_config_reads_back() {
        let zeros = StoredConfig {
            page_limit: 0,
            reserve: Biased(0),
            decay: Biased(0),
        };
        assert_eq!(StoredConfig::of(&CacheConfig::new()), zeros);
        assert_eq!(zeros.get(), CacheConfig::new());
        for config in [
            CacheConfig::new().page_limit(0),
            CacheConfig::new().page_limit(7).reserve(0).eager(),
            CacheConfig::new().reserve(usize::MAX).decay(usize::MAX),
            CacheConfig::new().page_limit(usize::MAX - 1).decay(3),
        ] {
            assert_eq!(StoredConfig::of(&config).get(), config);
        }
        let unlimited = StoredConfig::of(&CacheConfig::new().page_limit(usize::MAX));
        assert_eq!(unlimited.get().page_limit, None, "no cache holds that many");
    }
}
