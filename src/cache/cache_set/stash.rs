//! The set's side of the depot (feature `std`): a magazine's overflow kept
//! whole for the next magazine that runs dry, and emptied back into the
//! slabs before `shrink`, a flush and the set's drop (see `cache::depot`).

use core::ptr::NonNull;

use generic_array::ArrayLength;

use super::{CacheSet, Shapes};
use crate::cache::depot::BATCH_MAX;
use crate::checked::{CHECKED, Misuse, poison};
use crate::page_allocator::PageAllocator;

impl<P: PageAllocator, C: ArrayLength, S: Shapes> CacheSet<P, C, S> {
    /// Keeps `slots`, a magazine's overflow of cache `index`, whole in the
    /// cache's depot for the next magazine that runs dry (see `depot`), and
    /// returns `true`; or `false`, the slots still the caller's, when the
    /// depot is full, the batch is longer than the depot's, or the build is
    /// checked (its slots must reach the slabs, where the checks are). When
    /// the depot's window ends with a surplus, that many batches go to the
    /// slabs here.
    ///
    /// # Safety
    ///
    /// As for [`free_batch`](Self::free_batch): each slot was handed out by
    /// cache `index` of this set, through a pointer that reaches its page,
    /// appears once, and no one uses it. (`unstash` hands the slots out
    /// again as if the slabs had: a double free here is a slot handed to two
    /// users there.)
    pub(crate) unsafe fn stash(&self, index: usize, slots: &[NonNull<u8>]) -> bool {
        let geometry = self.geometry(index);
        let class = &self.classes[index];
        if CHECKED
            || slots.is_empty()
            || slots.len() > BATCH_MAX
            || class.depot.looks_full(geometry.slot_size)
        {
            return false;
        }
        let size = geometry.slot_size;
        // Off limits for AddressSanitizer before another thread can take
        // them, and back within limits if they stay ours.
        for &slot in slots {
            poison::forbid(slot, size);
        }
        let Some(pushed) = class.depot.push(slots, size) else {
            for &slot in slots {
                poison::allow(slot, size);
            }
            return false;
        };
        if pushed.passed > 0 {
            let mut core = class.core.lock();
            // SAFETY: `self.pages` is the only page source any core sees.
            unsafe { core.note_passed(&self.pages, &geometry, pushed.passed) };
        }
        if pushed.surplus > 0 {
            self.give_back_surplus(index, pushed.surplus);
        }
        true
    }

    /// Takes `batches` batches out of the depot of cache `class` (fewer if
    /// other threads took some meanwhile) and gives their slots to the
    /// slabs, whose decay decides about their pages.
    #[cold]
    #[inline(never)]
    fn give_back_surplus(&self, class: usize, batches: usize) {
        self.unstash_to_slabs(class, batches, true);
    }

    /// Takes up to `most` batches out of the depot of cache `class` and
    /// gives their slots to the slabs, a batch per lock (with `release`,
    /// slabs emptied beyond the reserve give their pages back at once);
    /// returns whether any went.
    fn unstash_to_slabs(&self, class: usize, most: usize, release: bool) -> bool {
        let mut batch = [NonNull::dangling(); BATCH_MAX];
        let mut moved = false;
        for _ in 0..most {
            let taken = self.unstash(class, &mut batch);
            if taken == 0 {
                break;
            }
            // SAFETY: slots `stash` took from a magazine of this cache, whose
            // guarantees they carry; taking them made them ours alone.
            unsafe { self.free_batch(class, &batch[..taken], Misuse::report, release) };
            moved = true;
        }
        moved
    }

    /// Fills the start of `out` with a batch from the depot of cache
    /// `class`, if it holds one that fits; returns how many (0 if none, as
    /// always in checked builds, which stash nothing). The slots are the
    /// caller's, as if `alloc_batch` had handed them out.
    pub(crate) fn unstash(&self, class: usize, out: &mut [NonNull<u8>]) -> usize {
        let size = self.geometry(class).slot_size;
        let taken = self.classes[class].depot.pop_into(out);
        for &slot in &out[..taken] {
            poison::allow(slot, size);
        }
        taken
    }

    /// Puts every slot in the depot of cache `class` back into its slabs;
    /// with `release`, slabs emptied beyond the reserve give their pages
    /// back at once.
    ///
    /// Every batch is back in the slabs before the page source is called:
    /// a batch is out of the depot once taken, so a page source that
    /// panicked between two of them would lose the slots of the rest.
    pub(crate) fn empty_depot(&self, class: usize, release: bool) {
        let freed = self.unstash_to_slabs(class, usize::MAX, false);
        self.classes[class].depot.emptied();
        // Slabs the batches emptied beyond the reserve are listed as empty:
        // their pages go back now (should the page source panic, those not
        // yet given back stay listed).
        if release && freed {
            self.trim(class);
        }
    }
}
