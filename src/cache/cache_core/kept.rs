//! A core whose page source keeps its pages (`PageAllocator::KEEP_PAGES`,
//! `KeepPages`): no free gives a page back, so nothing on the fast paths
//! needs the counts that decide when one goes — `empty` (the reserve's),
//! `freed` (the decay's clock) and `allocated` (with `freed`, the slots in
//! use). Those paths leave the three alone, which a firmware's code size
//! feels (about 36 bytes of `scripts/size`'s program: an update at each
//! allocation, free and new slab); the paths that read them, all cold
//! (`stats`, `shrink`, `set_config`, a cache's drop), recount them from
//! the slabs first, here.
//!
//! The counts are derived, not lost: a slab's own count of slots out is
//! kept by every path, a full slab has all of its slots out, and under
//! such a source no slab is ever retained (nothing is given back, so there
//! is no hysteresis to serve). The cost moves to the cold paths: a walk of
//! the slabs with a free slot.

use super::CacheCore;
use crate::slab::SlabGeometry;

impl CacheCore {
    /// Restores `empty`, and the slots in use (`allocated - freed`), from
    /// the slabs, when the fast paths do not keep them (`keep`, the page
    /// source's `KEEP_PAGES`); nothing otherwise. Every path that reads
    /// those counts calls it first, and keeps them from then on as the
    /// other cores do, until it returns. O(slabs with a free slot).
    /// `geometry` is the core's.
    pub(super) fn recount(&mut self, geometry: &SlabGeometry, keep: bool) {
        if !keep {
            return;
        }
        debug_assert_eq!(self.retained.len(), 0, "nothing is retained");
        let mut in_use = self.full.len() * geometry.slots_per_slab;
        let mut empty = 0;
        let mut cursor = self.available.head();
        while let Some(slab) = cursor {
            // SAFETY: slabs on our lists are live, and `&mut self` is
            // exclusive access to them.
            cursor = unsafe { self.available.next_of(slab) };
            // SAFETY: as above.
            let used = unsafe { slab.in_use() };
            in_use += used;
            empty += usize::from(used == 0);
        }
        self.empty = empty;
        // `allocated` is whatever it was; the difference is what counts.
        self.freed = self.allocated.wrapping_sub(in_use);
    }
}
