//! A batch's new page, made into a slab with the core's lock let go, by
//! one thread at a time per core (`std` builds; see
//! `cache_core::unlocked` for why and for the core's side).

use super::{CacheSet, Shapes};
use crate::cache::cache_core::CacheCore;
use crate::error::AllocError;
use crate::page_allocator::PageAllocator;
use generic_array::ArrayLength;

/// Lets another thread make progress while this one waits for a grower: a
/// yield, for a wait that lasts a page fault.
fn wait_for_grower() {
    #[cfg(not(loom))]
    std::thread::yield_now();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Ends a grow of cache `class` of `set` that unwound (a page source that
/// panicked): the core is no longer growing, so that other refills do not
/// wait for ever.
struct Growing<'a, P: PageAllocator, C: ArrayLength, S: Shapes> {
    set: &'a CacheSet<P, C, S>,
    class: usize,
}

impl<P: PageAllocator, C: ArrayLength, S: Shapes> Drop for Growing<'_, P, C, S> {
    fn drop(&mut self) {
        self.set.classes[self.class].core.lock().set_growing(false);
    }
}

impl<P: PageAllocator, C: ArrayLength, S: Shapes> CacheSet<P, C, S> {
    /// Gives cache `class` a slab to take from, if it wants a new page:
    /// made by this thread with the lock let go, or, if another thread is
    /// making one, by that thread (this one waits). Nothing is held on
    /// return; the caller takes the lock again, and may find the slab
    /// taken meanwhile (then it grows under the lock, as without `std`).
    #[cold]
    #[inline(never)]
    pub(super) fn grow_unlocked(&self, class: usize) -> Result<(), AllocError> {
        let mut core = self.classes[class].core.lock();
        loop {
            if !core.wants_new_page::<P>() {
                return Ok(());
            }
            if !core.growing() {
                break;
            }
            drop(core);
            wait_for_grower();
            core = self.classes[class].core.lock();
        }
        core.set_growing(true);
        let expose = core.exposes_pages();
        drop(core);
        let growing = Growing { set: self, class };
        let geometry = self.geometry(class);
        // SAFETY: the set's page source and owner, the core's geometry and
        // exposure, as `adopt` needs them.
        let slab = unsafe { CacheCore::new_slab(&self.pages, &self.owner, &geometry, expose) };
        let mut core = self.classes[class].core.lock();
        // Done growing, under the lock that lists the slab: no other
        // refill starts a grow of its own in between.
        core::mem::forget(growing);
        core.set_growing(false);
        // SAFETY: just made for this core, on no list.
        unsafe { core.adopt(&self.pages, slab?) };
        Ok(())
    }
}
