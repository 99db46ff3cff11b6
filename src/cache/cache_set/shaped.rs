//! The set's entry points for the typed cache in builds without per-thread
//! caches: an allocation that records the front's address in its slab as
//! it goes (see `CacheCore::alloc`), and a free. The cache's geometry is a
//! constant of the typed cache's shape (see `shapes`), so the slot
//! arithmetic folds to constants, which a firmware's code size feels.

use core::ptr::NonNull;

use generic_array::ArrayLength;

use super::{CacheSet, Shapes, refused_or_reported};
use crate::checked::Report;
use crate::error::AllocError;
use crate::page_allocator::PageAllocator;

impl<P: PageAllocator, C: ArrayLength, S: Shapes> CacheSet<P, C, S> {
    /// One slot of cache `class`, its slab recording `home` (see
    /// `CacheCore::alloc`).
    #[inline]
    pub(crate) fn alloc_shaped(
        &self,
        class: usize,
        home: usize,
        report: Report,
    ) -> Result<NonNull<u8>, AllocError> {
        let outcome = {
            let mut core = self.classes[class].core.lock();
            // SAFETY: as in `alloc`.
            unsafe { core.alloc(&self.pages, &self.owner, &self.geometry(class), Some(home)) }
        };
        refused_or_reported(outcome, report)
    }
}
