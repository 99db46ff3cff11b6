//! A core whose page source keeps its pages (`PageAllocator::KEEP_PAGES`,
//! `KeepPages`): no free gives a page back, so nothing on the fast paths
//! needs the counts that decide when one goes — `empty` (the reserve's)
//! and `freed` (the decay's clock). Those paths leave both alone, which a
//! firmware's code size feels (an update at each allocation, free and new
//! slab); the paths that read `empty`, all cold (`stats`, `shrink`,
//! `set_config`, a cache's drop), recount it from the slabs first, here.
//! (`freed` only times windows, which such a core has none of.)
//!
//! The count is derived, not lost: a slab's own count of slots out is
//! kept by every path, and under such a source no slab is ever retained
//! (nothing is given back, so there is no hysteresis to serve). The cost
//! moves to the cold paths: a walk of the slabs with a free slot.

use super::CacheCore;

impl CacheCore {
    /// Restores `empty` from the slabs, when the fast paths do not keep it
    /// (`keep`, the page source's `KEEP_PAGES`); nothing otherwise. Every
    /// path that reads it calls this first, and keeps it from then on as
    /// the other cores do, until it returns. O(slabs with a free slot).
    pub(super) fn recount(&mut self, keep: bool) {
        if !keep {
            return;
        }
        debug_assert_eq!(self.retained.len(), 0, "nothing is retained");
        let mut empty = 0;
        let mut cursor = self.available.head();
        while let Some(slab) = cursor {
            // SAFETY: slabs on our lists are live, and `&mut self` is
            // exclusive access to them.
            cursor = unsafe { self.available.next_of(slab) };
            // SAFETY: as above.
            empty += usize::from(unsafe { slab.in_use() } == 0);
        }
        self.empty = empty;
    }
}
