//! The depot's shelf: its batches, last in first out, in one buffer from
//! the system allocator, grown by doubling up to the limit its caller
//! states, and freed when the depot is emptied for good (`release`, or the
//! shelf's drop).
//!
//! # Why a buffer of its own
//!
//! A depot sized for the largest burst it may absorb would make every
//! cache that large, used or not (a typed cache on the stack included);
//! one sized for the common case sends a long burst of frees to the slabs
//! (a link write per slot), then the allocations after it back through
//! them (a link read per slot). A shelf that grows with the burst costs
//! nothing to a cache that never overflows a magazine, and its growth is
//! amortised over the batches it holds.
//!
//! # Why the system allocator
//!
//! The depot serves `SlabAllocator`, which may be the global allocator
//! itself: memory from the global allocator would call back into the
//! allocator that is storing a batch. The buffer is a [`SystemVec`], whose
//! memory comes from `std::alloc::System`, which never does.
//!
//! The shelf never reads or writes through a batch's slot pointers.

use core::ptr::NonNull;

use super::BATCH_MAX;
use crate::system_vec::SystemVec;

/// One batch: `slots[..len]` are its slots.
#[derive(Clone, Copy)]
struct Batch {
    len: usize,
    slots: [NonNull<u8>; BATCH_MAX],
}

/// The fewest batches a shelf holds once it holds any: one growth step
/// of a magazine's worth of overflow.
const FIRST_CAPACITY: usize = 4;

/// Batches, last in first out, in a buffer from `System`.
pub(super) struct Shelf {
    batches: SystemVec<Batch>,
}

impl Shelf {
    /// An empty shelf, with no buffer.
    pub(super) const fn new() -> Self {
        Self {
            batches: SystemVec::new(),
        }
    }

    /// How many batches it holds.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.batches.len()
    }

    /// Keeps a copy of `batch` (at most [`BATCH_MAX`] slots) on top, or
    /// returns `false` if it holds `limit` batches already or the system
    /// allocator has no memory to grow it.
    pub(super) fn push(&mut self, batch: &[NonNull<u8>], limit: usize) -> bool {
        debug_assert!(batch.len() <= BATCH_MAX);
        let mut stored = Batch {
            len: batch.len(),
            slots: [NonNull::dangling(); BATCH_MAX],
        };
        stored.slots[..batch.len()].copy_from_slice(batch);
        self.batches.push(stored, FIRST_CAPACITY, limit).is_ok()
    }

    /// Moves the top batch into the start of `out`, if there is one and it
    /// fits, and returns how many slots it held (0 if none moved).
    pub(super) fn pop_into(&mut self, out: &mut [NonNull<u8>]) -> usize {
        // Read in place: a batch is 264 bytes.
        let Some(batch) = self.batches.last() else {
            return 0;
        };
        let len = batch.len;
        if len > out.len() {
            return 0;
        }
        out[..len].copy_from_slice(&batch.slots[..len]);
        self.batches.truncate(self.batches.len() - 1);
        len
    }

    /// Moves the `count` batches at the bottom (the oldest; all of them if
    /// it holds fewer) to the top, in their order, so that the next `count`
    /// pops take them: a surplus goes back oldest first, the batches that
    /// sat untouched the longest, and the ones moved last stay.
    pub(super) fn raise_oldest(&mut self, count: usize) {
        let batches = self.batches.as_mut_slice();
        batches.rotate_left(count.min(batches.len()));
    }

    /// Slots held, over every batch.
    pub(super) fn slots(&self) -> usize {
        self.batches.as_slice().iter().map(|batch| batch.len).sum()
    }

    /// How many batches the buffer has room for.
    pub(super) fn capacity(&self) -> usize {
        self.batches.capacity()
    }

    /// Shrinks the buffer to room for `capacity` batches, if that is less
    /// than it has and no fewer than it holds (nor than a first buffer);
    /// keeps it as it is if the system allocator cannot move it.
    pub(super) fn shrink_to(&mut self, capacity: usize) {
        self.batches.shrink_to(capacity.max(FIRST_CAPACITY));
    }

    /// Forgets every batch, reading no slot, and gives the buffer back.
    pub(super) fn release(&mut self) {
        self.batches.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(i: usize) -> NonNull<u8> {
        NonNull::<u64>::dangling()
            .map_addr(|a| a.saturating_add(i * 8))
            .cast()
    }

    #[test]
    fn grows_by_doubling_up_to_the_limit_and_gives_its_buffer_back() {
        let slots: std::vec::Vec<NonNull<u8>> = (0..40).map(slot).collect();
        let mut shelf = Shelf::new();
        for (i, batch) in slots.chunks(3).take(10).enumerate() {
            assert!(shelf.push(batch, 10), "batch {i} fits");
        }
        assert_eq!((shelf.len(), shelf.capacity()), (10, 10), "4, 8, then 10");
        assert!(!shelf.push(&slots[..1], 10), "the limit is reached");
        assert_eq!(shelf.slots(), 30);
        let mut out = [NonNull::dangling(); BATCH_MAX];
        assert_eq!(shelf.pop_into(&mut out[..2]), 0, "3 slots do not fit 2");
        for batch in slots.chunks(3).take(10).rev() {
            assert_eq!(shelf.pop_into(&mut out), 3);
            assert_eq!(&out[..3], batch);
        }
        assert_eq!(shelf.pop_into(&mut out), 0);
        for batch in slots.chunks(3).take(5) {
            assert!(shelf.push(batch, 10));
        }
        shelf.raise_oldest(2);
        for batch in slots.chunks(3).take(2).rev() {
            assert_eq!(shelf.pop_into(&mut out), 3);
            assert_eq!(&out[..3], batch, "the oldest two come out first");
        }
        for batch in slots.chunks(3).skip(2).take(3).rev() {
            assert_eq!(shelf.pop_into(&mut out), 3);
            assert_eq!(&out[..3], batch, "then the rest, last in first out");
        }
        shelf.raise_oldest(1);
        assert!(shelf.push(&slots[..BATCH_MAX], 10));
        assert!(shelf.push(&slots[..3], 10));
        shelf.shrink_to(1);
        assert_eq!(shelf.capacity(), FIRST_CAPACITY, "never below the first");
        assert_eq!(shelf.pop_into(&mut out), 3, "the batches moved with it");
        assert_eq!(&out[..3], &slots[..3]);
        assert_eq!(shelf.slots(), BATCH_MAX);
        shelf.raise_oldest(7);
        assert_eq!(shelf.len(), 1, "no more than it holds");
        shelf.release();
        assert_eq!((shelf.len(), shelf.capacity(), shelf.slots()), (0, 0, 0));
        assert!(shelf.push(&slots[..2], 1), "a released shelf grows again");
        assert_eq!(shelf.capacity(), 1, "never beyond the limit");
    }
}
