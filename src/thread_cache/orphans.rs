//! The list of slots a thread gave up to a cache without the cache at hand
//! (see `registry`), kept by address, in memory from the system allocator;
//! and `put_back`, which returns them to the cache when it adopts them.
//!
//! The list lives in a [`SystemVec`]: a thread giving up its slots (under a
//! registry place's lock) must not call into the global allocator, which
//! may be `SlabAllocator`, whose slow path takes the same lock to adopt
//! orphans.

use core::ptr::NonNull;

use generic_array::ArrayLength;

use crate::cache::{CacheSet, Shapes};
use crate::checked::Misuse;
use crate::magazine::check_cached;
use crate::page_allocator::PageAllocator;
use crate::system_vec::SystemVec;

/// One listed slot: its address and its size class.
type Orphan = (NonNull<u8>, usize);

/// The first buffer's room, in slots: half a magazine's.
const FIRST_CAPACITY: usize = 32;

/// Resting slots of one cache, by address: never written into, so that a
/// thread may give slots up to a cache whose pages it cannot vouch for (a
/// cache forgotten with `mem::forget` keeps its ticket live for ever, while
/// its page source may be gone).
pub(crate) struct Orphans {
    slots: SystemVec<Orphan>,
}

// SAFETY: the listed slots are resting slots of one cache that nothing else
// uses; whoever holds the list holds them (it moves between threads under a
// place's lock), and the list itself never reads or writes them. Its buffer
// is owned by the list alone.
unsafe impl Send for Orphans {}

impl Orphans {
    pub(crate) const fn new() -> Self {
        Self {
            slots: SystemVec::new(),
        }
    }

    /// How many slots are listed.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// How many slots of size class `class` are listed.
    pub(crate) fn len_of(&self, class: usize) -> usize {
        let listed = self.slots.as_slice().iter();
        listed.filter(|&&(_, c)| c == class).count()
    }

    /// Lists `slot` of size class `class` (a resting slot of the place's
    /// cache, that nothing else uses until it is popped). Never touches the
    /// slot. If the system allocator refuses to grow the list, the slot is
    /// forgotten: it stays counted in use, a leak of one slot rather than a
    /// failure at thread exit.
    pub(crate) fn push(&mut self, slot: NonNull<u8>, class: usize) {
        let _forgotten = self.slots.push((slot, class), FIRST_CAPACITY, usize::MAX);
    }

    /// Takes a listed slot off, with its class.
    pub(crate) fn pop(&mut self) -> Option<Orphan> {
        self.slots.pop()
    }
}

/// Returns every slot of `orphans` to its cache of `set`, a batch per lock.
/// Each is checked first, as a slot leaving a magazine is: one written to
/// while it rested (checked builds) is kept by no one, and the first is
/// reported once the others are back.
pub(super) fn put_back<P: PageAllocator, C: ArrayLength, S: Shapes>(
    set: &CacheSet<P, C, S>,
    mut orphans: Orphans,
) {
    const BATCH: usize = 32;
    let mut damaged = None;
    let mut next = orphans.pop();
    while let Some((_, class)) = next {
        let size = set.geometry(class).slot_size;
        let mut batch = [NonNull::dangling(); BATCH];
        let mut len = 0;
        // A batch of one class: an entry's orphans are listed together.
        while len < BATCH
            && let Some((slot, _)) = next.filter(|&(_, c)| c == class)
        {
            next = orphans.pop();
            // SAFETY: an orphan is a resting slot of this set's cache
            // `class`, which is alive (the caller is it), so its page is.
            match unsafe { check_cached(slot, size) } {
                Ok(()) => {
                    batch[len] = slot;
                    len += 1;
                }
                Err(misuse) => {
                    damaged.get_or_insert((misuse, slot, class));
                }
            }
        }
        // SAFETY: orphans are resting slots of this cache's class, handed
        // out through pointers that reach their page, used by no one.
        unsafe { set.free_batch(class, &batch[..len], Misuse::report, true) };
    }
    if let Some((misuse, slot, class)) = damaged {
        // SAFETY: the slot is in one of this set's pages.
        let misuse = unsafe { set.diagnose(class, slot) }.unwrap_or(misuse);
        misuse.report(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::Orphans;
    use core::ptr::NonNull;
    use std::vec::Vec;

    #[test]
    fn grows_lists_and_gives_back_in_reverse() {
        let mut orphans = Orphans::new();
        let slots: Vec<NonNull<u8>> = (1..=100_usize)
            .map(|i| {
                NonNull::<u64>::dangling()
                    .map_addr(|a| a.saturating_add(i * 8))
                    .cast()
            })
            .collect();
        for (i, &slot) in slots.iter().enumerate() {
            orphans.push(slot, i % 3);
        }
        assert_eq!(orphans.len(), 100);
        assert_eq!(orphans.len_of(0), 34);
        assert_eq!(orphans.len_of(2), 33);
        for (i, &slot) in slots.iter().enumerate().rev() {
            assert_eq!(orphans.pop(), Some((slot, i % 3)));
        }
        assert_eq!(orphans.pop(), None);
        orphans.push(slots[0], 1);
        assert_eq!(orphans.len(), 1);
    }
}
