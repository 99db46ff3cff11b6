//! A growable array in memory from the system allocator, for the crate's
//! own bookkeeping under `std`: the depot's shelf of batches, and the slots
//! a thread gave up to a cache it could not reach (its orphans).
//!
//! # Why not a `Vec`
//!
//! A `Vec` grows through the global allocator, and `SlabAllocator` may be
//! that allocator. Storing a batch in a depot, or listing a thread's slots
//! under a registry place's lock, would then call back into the allocator
//! doing it: a recursion, or a deadlock on a lock its slow path takes.
//! [`System`] never calls back into this crate.
//!
//! # What it does not do
//!
//! Its elements are `Copy` (slot addresses and counts), so nothing is
//! dropped, and it never reads or writes through a pointer it stores.
//! Running out of memory is an answer (`push` hands the value back), not
//! an abort: each caller has somewhere else to put what does not fit.
//!
//! # Invariants
//!
//! `buf` is dangling iff `cap == 0`; otherwise it is `System`'s allocation
//! for `Layout::array::<T>(cap)`, a layout that exists. `buf[..len]` are
//! initialised and `len <= cap`.

use core::alloc::Layout;
use core::ptr::NonNull;
use std::alloc::{GlobalAlloc, System};

/// A growable array of `Copy` values in a buffer from [`System`].
pub(crate) struct SystemVec<T: Copy> {
    buf: NonNull<T>,
    len: usize,
    cap: usize,
}

impl<T: Copy> SystemVec<T> {
    /// An empty array, with no buffer.
    pub(crate) const fn new() -> Self {
        const {
            assert!(size_of::<T>() > 0, "elements take room");
        }
        Self {
            buf: NonNull::dangling(),
            len: 0,
            cap: 0,
        }
    }

    /// How many values it holds.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// How many values its buffer has room for.
    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }

    /// The values, oldest first.
    pub(crate) fn as_slice(&self) -> &[T] {
        // SAFETY: `buf[..len]` are initialised (the invariant), and `&self`
        // keeps them from being written; a dangling, aligned pointer is valid
        // for an empty slice.
        unsafe { core::slice::from_raw_parts(self.buf.as_ptr(), self.len) }
    }

    /// The values, oldest first, to rearrange.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as in `as_slice`, and `&mut self` holds them alone.
        unsafe { core::slice::from_raw_parts_mut(self.buf.as_ptr(), self.len) }
    }

    /// The newest value, read in place.
    #[inline]
    pub(crate) fn last(&self) -> Option<&T> {
        self.as_slice().last()
    }

    /// Appends `value`, first growing the buffer (to `first` values, then by
    /// doubling) if it is full; hands `value` back if that would take more
    /// than `limit` values or `System` has no memory (the array is then
    /// unchanged).
    #[inline]
    pub(crate) fn push(&mut self, value: T, first: usize, limit: usize) -> Result<(), T> {
        if self.len == self.cap && !self.grow(first, limit) {
            return Err(value);
        }
        // SAFETY: `len < cap` (just checked or grown): the element is inside
        // the buffer.
        let end = unsafe { self.buf.add(self.len) };
        // SAFETY: an element of the buffer, not initialised yet, which
        // `&mut self` holds alone.
        unsafe { end.write(value) };
        self.len += 1;
        Ok(())
    }

    /// Takes the newest value off.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<T> {
        let value = *self.last()?;
        self.len -= 1;
        Some(value)
    }

    /// Keeps the oldest `len` values (all of them if it holds fewer).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Shrinks the buffer to room for `cap` values (never fewer than it
    /// holds; none at all frees it), if that is less than it has; keeps it
    /// as it is if `System` cannot move it.
    pub(crate) fn shrink_to(&mut self, cap: usize) {
        let cap = cap.max(self.len);
        if cap >= self.cap {
            return;
        }
        if cap == 0 {
            self.release();
            return;
        }
        let Some(new) = Self::layout(cap) else {
            unreachable!("a smaller array than one that exists has a layout")
        };
        let old = self.current_layout();
        // SAFETY: `buf` is `System`'s allocation for `old` (the invariant;
        // `self.cap > cap > 0`), and the new size is not zero and fits
        // `isize` (the layout exists).
        let buf = unsafe { System.realloc(self.buf.as_ptr().cast(), old, new.size()) };
        if let Some(buf) = NonNull::new(buf) {
            // The first `len <= cap` values moved with the buffer.
            self.buf = buf.cast();
            self.cap = cap;
        }
    }

    /// Forgets every value and gives the buffer back.
    pub(crate) fn release(&mut self) {
        self.len = 0;
        if self.cap == 0 {
            return;
        }
        let layout = self.current_layout();
        self.cap = 0;
        let buf = core::mem::replace(&mut self.buf, NonNull::dangling());
        // SAFETY: `buf` was `System`'s allocation for this layout (the
        // invariant), and the array no longer refers to it.
        unsafe { System.dealloc(buf.as_ptr().cast(), layout) };
    }

    /// Makes the first buffer (of `first` values) or doubles it, never
    /// beyond `limit` values; `false` if it holds `limit` already, or the
    /// layout or `System`'s memory is not there (the array is then
    /// unchanged).
    #[cold]
    fn grow(&mut self, first: usize, limit: usize) -> bool {
        if self.cap >= limit {
            return false;
        }
        let cap = self.cap.saturating_mul(2).max(first).max(1).min(limit);
        let Some(new) = Self::layout(cap) else {
            return false;
        };
        let buf = if self.cap == 0 {
            // SAFETY: the layout's size is not zero (`T` takes room, checked
            // in `new`, and `cap >= 1`).
            unsafe { System.alloc(new) }
        } else {
            // SAFETY: `buf` is `System`'s allocation for `layout(self.cap)`
            // (the invariant); the new size is not zero and fits `isize`
            // (the layout exists).
            unsafe { System.realloc(self.buf.as_ptr().cast(), self.current_layout(), new.size()) }
        };
        let Some(buf) = NonNull::new(buf) else {
            return false;
        };
        self.buf = buf.cast();
        self.cap = cap;
        true
    }

    /// The layout of a buffer of `cap` values, if one can exist.
    fn layout(cap: usize) -> Option<Layout> {
        Layout::array::<T>(cap).ok()
    }

    /// The layout of the buffer it has.
    fn current_layout(&self) -> Layout {
        // The array reached `cap` through `layout`, which accepted it.
        Self::layout(self.cap)
            .unwrap_or_else(|| unreachable!("the capacity an array has is a valid layout"))
    }
}

impl<T: Copy> Drop for SystemVec<T> {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::SystemVec;

    #[test]
    fn grows_from_first_by_doubling_up_to_the_limit() {
        let mut values = SystemVec::<u32>::new();
        assert_eq!((values.len(), values.capacity()), (0, 0));
        for i in 0..10 {
            assert_eq!(values.push(i, 4, 10), Ok(()), "value {i} fits");
        }
        assert_eq!(values.capacity(), 10, "4, 8, then the limit");
        assert_eq!(values.push(10, 4, 10), Err(10), "full: handed back");
        assert_eq!(values.as_slice(), &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(values.last(), Some(&9));
        assert_eq!(values.pop(), Some(9));
        values.as_mut_slice().rotate_left(2);
        assert_eq!(values.as_slice(), &[2, 3, 4, 5, 6, 7, 8, 0, 1]);
        values.truncate(3);
        assert_eq!(values.as_slice(), &[2, 3, 4]);
        values.truncate(7);
        assert_eq!(values.len(), 3, "truncating never lengthens");
    }

    #[test]
    fn shrinks_no_lower_than_it_holds_and_keeps_its_values() {
        let mut values = SystemVec::<u64>::new();
        for i in 0..33 {
            values.push(i, 1, usize::MAX).unwrap();
        }
        assert_eq!(values.capacity(), 64);
        values.truncate(5);
        values.shrink_to(2);
        assert_eq!(values.capacity(), 5, "never below what it holds");
        assert_eq!(values.as_slice(), &[0, 1, 2, 3, 4]);
        values.shrink_to(40);
        assert_eq!(values.capacity(), 5, "shrinking never grows");
        while values.pop().is_some() {}
        values.shrink_to(0);
        assert_eq!((values.len(), values.capacity()), (0, 0), "freed");
        assert_eq!(values.push(7, 1, 1), Ok(()), "a freed array grows again");
        assert_eq!(values.pop(), Some(7));
        assert_eq!(values.pop(), None);
        values.release();
        assert_eq!(values.capacity(), 0);
    }

    #[test]
    fn a_layout_past_the_address_space_is_refused_not_a_panic() {
        let mut values = SystemVec::<[u8; 4096]>::new();
        let first = usize::MAX >> 11;
        assert!(values.push([0; 4096], first, usize::MAX).is_err());
        assert_eq!((values.len(), values.capacity()), (0, 0));
    }
}
