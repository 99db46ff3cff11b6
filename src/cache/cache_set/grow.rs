//! A batch's new page, made into a slab with the core's lock let go, by
//! one thread at a time per core (`std` builds; see
//! `cache_core::unlocked` for why and for the core's side).
//!
//! One thread at a time: the grower holds the class's `grow` lock while it
//! asks the page source, and another refill that needs a page waits on it,
//! then finds the slab made (or, if the first grower failed, asks the page
//! source itself). A lock rather than a flag and a wait loop: the waiter
//! blocks on something the grower releases — also when the page source
//! unwinds, as the guard drops — and loom sees a blocked thread, not one
//! spinning.

use super::{CacheSet, Shapes};
use crate::cache::cache_core::CacheCore;
use crate::error::AllocError;
use crate::page_allocator::PageAllocator;
use generic_array::ArrayLength;

impl<P: PageAllocator, C: ArrayLength, S: Shapes> CacheSet<P, C, S> {
    /// Gives cache `class` a slab to take from, if it still wants a new
    /// page once no other thread is making one for it: made by this thread
    /// with the core's lock let go. Nothing is held on return; the caller
    /// takes the core's lock again, and may find the slab taken meanwhile
    /// (then it grows under the lock, as without `std`).
    #[cold]
    #[inline(never)]
    pub(super) fn grow_unlocked(&self, class: usize) -> Result<(), AllocError> {
        let _one_grower = self.classes[class].grow.lock();
        let core = self.classes[class].core.lock();
        if !core.wants_new_page::<P>() {
            return Ok(());
        }
        let expose = core.exposes_pages();
        drop(core);
        let geometry = self.geometry(class);
        // SAFETY: the set's page source and owner, the core's geometry and
        // exposure, as `adopt` needs them.
        let slab = unsafe { CacheCore::new_slab(&self.pages, &self.owner, &geometry, expose) }?;
        // SAFETY: just made for this core, on no list.
        unsafe { self.classes[class].core.lock().adopt(&self.pages, slab) };
        Ok(())
    }
}
