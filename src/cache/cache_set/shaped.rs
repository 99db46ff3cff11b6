//! The set's entry points for a front that knows its cache's geometry at
//! compile time (the typed cache, in builds without per-thread caches):
//! the slot arithmetic folds to constants, which a firmware's code size
//! feels (see `CacheCore::alloc_shaped`).

use core::ptr::NonNull;

use generic_array::ArrayLength;

use super::{CacheSet, refused_or_reported};
use crate::cache::cache_core::SlotReach;
use crate::checked::Report;
use crate::error::AllocError;
use crate::page_allocator::PageAllocator;
use crate::slab::SlabGeometry;

impl<P: PageAllocator, C: ArrayLength> CacheSet<P, C> {
    /// One slot of cache `class`, whose geometry the caller knows at
    /// compile time, its slab recording `home` (see
    /// `CacheCore::alloc_shaped`).
    ///
    /// # Safety
    ///
    /// `geometry` is that of cache `class`.
    #[inline]
    pub(crate) unsafe fn alloc_shaped(
        &self,
        class: usize,
        geometry: &SlabGeometry,
        home: usize,
        report: Report,
    ) -> Result<NonNull<u8>, AllocError> {
        let outcome = {
            let mut core = self.classes[class].core.lock();
            // SAFETY: as in `alloc`; the caller's guarantee for `geometry`.
            unsafe { core.alloc_shaped(&self.pages, &self.owner, geometry, Some(home)) }
        };
        refused_or_reported(outcome, report)
    }

    /// [`free`](Self::free), for a caller that knows the geometry of cache
    /// `class` at compile time (see `CacheCore::alloc_shaped`).
    ///
    /// # Safety
    ///
    /// As for [`free`](Self::free); `geometry` is that of cache `class`.
    #[inline]
    pub(crate) unsafe fn free_shaped(
        &self,
        class: usize,
        slot: NonNull<u8>,
        reach: SlotReach,
        geometry: &SlabGeometry,
        report: Report,
    ) {
        let outcome = {
            let mut core = self.classes[class].core.lock();
            // SAFETY: as in `free`; the caller's guarantee for `geometry`.
            unsafe { core.free_shaped(&self.pages, &self.owner, slot, reach, geometry) }
        };
        if let Err(misuse) = outcome {
            report(misuse, slot);
        }
    }
}
