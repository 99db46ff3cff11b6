//! A new page made into a slab outside the cache's lock (`std` builds).
//!
//! # Why
//!
//! A page fresh from the page source is usually fresh from the operating
//! system too: the first write to it, the slab's header, takes a page
//! fault, a microsecond or more in the kernel. Under the cache's lock,
//! every other thread that needs that cache meanwhile spins: two threads
//! building maps through the global allocator spent 9 % of their time
//! spinning on a size class's lock, mostly while the other grew it (`perf
//! record` of `cargo run -p minimal_slab_perf --release --bin
//! global_slab`). So a batch that would take a new page lets the lock go,
//! has the page source's page made into a slab, and takes the lock again
//! to list it: the page source's call, its fault and the header's writes
//! happen with no lock of the cache held.
//!
//! # Who may call what
//!
//! `CacheSet::alloc_batch` (through `cache_set::grow`), under the lock:
//! [`wants_new_page`] (the cold path ahead); then without it [`new_slab`];
//! then under it again [`adopt`]. One thread grows a core at a time (the
//! set's grow lock): another refill that needs a page waits for that slab
//! instead of asking the page source too — which, near the end of a
//! region, would refuse it while a page with free slots is on its way. Between the two locks, other threads may have freed slots: the
//! adopted slab is then one empty slab more, which the hysteresis gives
//! back like any other. A core with a page limit does not take this path
//! (the limit is checked under the lock, in `grow`); a limit set while a
//! page is being made sends that page back.
//!
//! This is a matter of speed, not a licence: a page source still must not
//! call into the cache it serves, which single allocations, caches with a
//! page limit and builds without `std` grow with the lock held.
//!
//! [`wants_new_page`]: CacheCore::wants_new_page
//! [`new_slab`]: CacheCore::new_slab
//! [`adopt`]: CacheCore::adopt

use super::CacheCore;
use crate::page_allocator::PageAllocator;
use crate::slab::Slab;

impl CacheCore {
    /// Whether the next batch would ask the page source for a page: no
    /// slab with a free slot, none retained, and no page limit to check.
    #[inline]
    pub(crate) fn wants_new_page<P: PageAllocator + ?Sized>(&self) -> bool {
        self.available.head().is_none()
            && (P::KEEP_PAGES || self.retained.head().is_none())
            && self.config.page_limit().is_none()
    }

    /// Whether this core exposes its pages' provenance (see
    /// `SlotReach::Object`): what [`new_slab`](Self::new_slab) needs to
    /// know of it, read under the lock.
    pub(crate) fn exposes_pages(&self) -> bool {
        self.expose_pages
    }

    /// Lists `slab`, made by [`new_slab`](Self::new_slab) for this core,
    /// on `available`, empty; notes it in the recent peak as a slab about
    /// to be in use (as `refill` does). If a page limit was set meanwhile
    /// (`set_config`) and the core is at it, the page goes back instead.
    ///
    /// # Safety
    ///
    /// `slab` came from [`new_slab`](Self::new_slab) with `pages`, this
    /// core's page source, and its owner and geometry, and is on no list.
    pub(crate) unsafe fn adopt<P: PageAllocator + ?Sized>(&mut self, pages: &P, slab: Slab) {
        if let Some(limit) = self.config.page_limit()
            && self.pages_held() >= limit
        {
            // SAFETY: the caller's guarantees: the page came from `pages`,
            // and no one uses it.
            unsafe { Self::give_back_page(pages, slab.page()) };
            return;
        }
        let busy = self.busy() + 1;
        // SAFETY: the caller's guarantees.
        unsafe { self.list_new::<P>(slab) };
        if !P::KEEP_PAGES {
            self.decay.note_busy(busy);
        }
    }
}
