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
//! allocator that is storing a batch. `std::alloc::System` never does.
//!
//! # Invariants
//!
//! `buf` is dangling iff `capacity == 0`; otherwise it is `System`'s
//! allocation for `Layout::array::<Batch>(capacity)`. The batches
//! `buf[..len]` are initialised, `len <= capacity`. The shelf never reads
//! or writes through a batch's slot pointers.

use core::alloc::Layout;
use core::ptr::NonNull;
use std::alloc::{GlobalAlloc, System};

use super::BATCH_MAX;

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
    buf: NonNull<Batch>,
    capacity: usize,
    len: usize,
}

impl Shelf {
    /// An empty shelf, with no buffer.
    pub(super) const fn new() -> Self {
        Self {
            buf: NonNull::dangling(),
            capacity: 0,
            len: 0,
        }
    }

    /// How many batches it holds.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Keeps a copy of `batch` (at most [`BATCH_MAX`] slots) on top, or
    /// returns `false` if it holds `limit` batches already or the system
    /// allocator has no memory to grow it.
    pub(super) fn push(&mut self, batch: &[NonNull<u8>], limit: usize) -> bool {
        debug_assert!(batch.len() <= BATCH_MAX);
        if self.len == self.capacity && !self.grow(limit) {
            return false;
        }
        let mut stored = Batch {
            len: batch.len(),
            slots: [NonNull::dangling(); BATCH_MAX],
        };
        stored.slots[..batch.len()].copy_from_slice(batch);
        // SAFETY: `len < capacity` (just checked or grown): the element is
        // inside the buffer.
        let end = unsafe { self.buf.add(self.len) };
        // SAFETY: an element of the buffer, which `&mut self` holds alone.
        unsafe { end.write(stored) };
        self.len += 1;
        true
    }

    /// Moves the top batch into the start of `out`, if there is one and it
    /// fits, and returns how many slots it held (0 if none moved).
    pub(super) fn pop_into(&mut self, out: &mut [NonNull<u8>]) -> usize {
        let Some(top) = self.len.checked_sub(1) else {
            return 0;
        };
        // SAFETY: `top < len <= capacity`: inside the buffer.
        let top_batch = unsafe { self.buf.add(top) };
        // SAFETY: `top < len`: an initialised batch, which nothing else
        // reads or writes while `&mut self` lasts (read in place: a batch
        // is 264 bytes).
        let batch = unsafe { top_batch.as_ref() };
        if batch.len > out.len() {
            return 0;
        }
        out[..batch.len].copy_from_slice(&batch.slots[..batch.len]);
        self.len = top;
        batch.len
    }

    /// Moves the `count` batches at the bottom (the oldest; all of them if
    /// it holds fewer) to the top, in their order, so that the next `count`
    /// pops take them: a surplus goes back oldest first, the batches that
    /// sat untouched the longest, and the ones moved last stay.
    pub(super) fn raise_oldest(&mut self, count: usize) {
        // SAFETY: `buf[..len]` are initialised batches inside the buffer (a
        // dangling, aligned pointer if `len == 0`), which `&mut self` holds
        // alone.
        let batches = unsafe { core::slice::from_raw_parts_mut(self.buf.as_ptr(), self.len) };
        batches.rotate_left(count.min(self.len));
    }

    /// Slots held, over every batch.
    pub(super) fn slots(&self) -> usize {
        (0..self.len)
            .map(|i| {
                // SAFETY: `i < len <= capacity`: inside the buffer.
                let batch = unsafe { self.buf.add(i) };
                // SAFETY: `i < len`: an initialised batch, which no one
                // writes while `&self` lasts.
                unsafe { batch.as_ref() }.len
            })
            .sum()
    }

    /// How many batches the buffer has room for.
    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Shrinks the buffer to room for `capacity` batches, if that is less
    /// than it has and no fewer than it holds; keeps it as it is if the
    /// system allocator cannot move it.
    pub(super) fn shrink_to(&mut self, capacity: usize) {
        let capacity = capacity.max(self.len).max(FIRST_CAPACITY);
        if capacity >= self.capacity {
            return;
        }
        // SAFETY: `buf` is `System`'s allocation for the current capacity's
        // layout (the invariant, `capacity > 0` here since a smaller one was
        // found), and the new size is not zero.
        let buf = unsafe {
            System.realloc(
                self.buf.as_ptr().cast(),
                Self::layout(self.capacity),
                Self::layout(capacity).size(),
            )
        };
        if let Some(buf) = NonNull::new(buf) {
            // The first `len <= capacity` batches moved with the buffer.
            self.buf = buf.cast();
            self.capacity = capacity;
        }
    }

    /// Forgets every batch, reading no slot, and gives the buffer back.
    pub(super) fn release(&mut self) {
        self.len = 0;
        if self.capacity == 0 {
            return;
        }
        let layout = Self::layout(self.capacity);
        self.capacity = 0;
        let buf = core::mem::replace(&mut self.buf, NonNull::dangling());
        // SAFETY: `buf` is `System`'s allocation for this layout (the
        // invariant), and the shelf no longer refers to it.
        unsafe { System.dealloc(buf.as_ptr().cast(), layout) };
    }

    /// Doubles the buffer (or makes the first), up to `limit` batches;
    /// `false` if it holds `limit` already or `System` has no memory (the
    /// shelf is then unchanged).
    #[cold]
    fn grow(&mut self, limit: usize) -> bool {
        if self.capacity >= limit {
            return false;
        }
        let capacity = self
            .capacity
            .saturating_mul(2)
            .max(FIRST_CAPACITY)
            .min(limit);
        let layout = Self::layout(capacity);
        let buf = if self.capacity == 0 {
            // SAFETY: the layout's size is not zero (a batch is not, and
            // `capacity >= 1`).
            unsafe { System.alloc(layout) }
        } else {
            // SAFETY: `buf` is `System`'s allocation for the old capacity's
            // layout (the invariant); the new size, a multiple of the same
            // alignment, does not overflow `isize` (`layout` checked it).
            unsafe {
                System.realloc(
                    self.buf.as_ptr().cast(),
                    Self::layout(self.capacity),
                    layout.size(),
                )
            }
        };
        let Some(buf) = NonNull::new(buf) else {
            return false;
        };
        self.buf = buf.cast();
        self.capacity = capacity;
        true
    }

    /// The layout of a buffer of `capacity` batches. The depot's limits
    /// keep it far below `isize::MAX` bytes: a failure here is a bug.
    fn layout(capacity: usize) -> Layout {
        Layout::array::<Batch>(capacity).expect("a depot's shelf fits the address space")
    }
}

impl Drop for Shelf {
    fn drop(&mut self) {
        self.release();
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
        assert_eq!((shelf.len(), shelf.capacity), (10, 10), "4, 8, then 10");
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
        assert_eq!(shelf.capacity, FIRST_CAPACITY, "never below the first");
        assert_eq!(shelf.pop_into(&mut out), 3, "the batches moved with it");
        assert_eq!(&out[..3], &slots[..3]);
        assert_eq!(shelf.slots(), BATCH_MAX);
        shelf.raise_oldest(7);
        assert_eq!(shelf.len(), 1, "no more than it holds");
        shelf.release();
        assert_eq!((shelf.len(), shelf.capacity, shelf.slots()), (0, 0, 0));
        assert!(shelf.push(&slots[..2], 1), "a released shelf grows again");
        assert_eq!(shelf.capacity, 1, "never beyond the limit");
    }
}
