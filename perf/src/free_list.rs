//! The baselines: the least an object pool can do.
//!
//! [`FreeList`] keeps objects in a `Vec` of slots and threads the free ones
//! on an intrusive list of indices: a free slot holds the index of the next
//! free slot, in the bytes the object occupied. Allocation pops the head (or
//! pushes a new slot), free pushes it back. There is no page, no header, no
//! lock and no memory ever given back, so every other contender is measured
//! as a ratio to it. [`SpinFreeList`] is the same behind an uncontended spin
//! lock: the price of being shareable at all.

use crate::Value;

/// The end of the free list.
const NONE: usize = usize::MAX;

/// One slot: a live value, or the index of the next free slot.
#[derive(Clone, Copy)]
union Slot<T: Copy> {
    value: T,
    next: usize,
}

/// A slot index handed out by [`FreeList::alloc`]; give it back to
/// [`FreeList::free`] once. Not `Clone`, so one allocation yields one free.
#[derive(Debug, PartialEq, Eq)]
pub struct SlotIndex(usize);

impl SlotIndex {
    /// The slot's position, for `black_box`.
    pub fn get(&self) -> usize {
        self.0
    }
}

/// An unsynchronised intrusive free list over a `Vec` of slots.
pub struct FreeList<T: Value> {
    slots: Vec<Slot<T>>,
    head: usize,
}

impl<T: Value> FreeList<T> {
    /// An empty list; slots are added as allocations need them.
    pub fn new() -> Self {
        Self {
            slots: Vec::new(),
            head: NONE,
        }
    }

    /// Stores `value` in a free slot (the last one freed) or a new one.
    #[inline]
    pub fn alloc(&mut self, value: T) -> SlotIndex {
        if self.head == NONE {
            self.slots.push(Slot { value });
            return SlotIndex(self.slots.len() - 1);
        }
        let index = self.head;
        let slot = &mut self.slots[index];
        // SAFETY: `head` names a free slot, and a free slot holds `next`.
        self.head = unsafe { slot.next };
        slot.value = value;
        SlotIndex(index)
    }

    /// Frees the slot and returns the value it held.
    ///
    /// An index of another list is caught only if it is out of bounds; in
    /// bounds it corrupts this list's free chain (a logic error, never
    /// undefined behaviour: every slot's bytes are a valid `T` and a valid
    /// index, and indices are bounds-checked).
    #[inline]
    pub fn free(&mut self, index: SlotIndex) -> T {
        let slot = &mut self.slots[index.0];
        // SAFETY: every slot's bytes are initialised (it was created holding
        // a value, and writing `next` overwrites initialised bytes), and
        // `Value` promises any initialised bytes are a valid `T`.
        let value = unsafe { slot.value };
        slot.next = self.head;
        self.head = index.0;
        value
    }

    /// Slots held, free or not: the list never gives memory back.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}

impl<T: Value> Default for FreeList<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// A [`FreeList`] behind a `spin` mutex, shareable between threads.
pub struct SpinFreeList<T: Value> {
    list: spin::Mutex<FreeList<T>>,
}

impl<T: Value> SpinFreeList<T> {
    /// An empty list.
    pub fn new() -> Self {
        Self {
            list: spin::Mutex::new(FreeList::new()),
        }
    }

    /// [`FreeList::alloc`] under the lock.
    #[inline]
    pub fn alloc(&self, value: T) -> SlotIndex {
        self.list.lock().alloc(value)
    }

    /// [`FreeList::free`] under the lock.
    #[inline]
    pub fn free(&self, index: SlotIndex) -> T {
        self.list.lock().free(index)
    }
}

impl<T: Value> Default for SpinFreeList<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_the_last_freed_slot_first() {
        let mut list = FreeList::<[u64; 2]>::new();
        let a = list.alloc([1; 2]);
        let b = list.alloc([2; 2]);
        let c = list.alloc([3; 2]);
        assert_eq!((a.get(), b.get(), c.get()), (0, 1, 2));
        assert_eq!(list.free(b), [2; 2]);
        assert_eq!(list.free(a), [1; 2]);
        let d = list.alloc([4; 2]);
        let e = list.alloc([5; 2]);
        let f = list.alloc([6; 2]);
        assert_eq!((d.get(), e.get(), f.get()), (0, 1, 3));
        assert_eq!(list.capacity(), 4);
        for (index, expected) in [(c, 3), (d, 4), (e, 5), (f, 6)] {
            assert_eq!(list.free(index), [expected; 2]);
        }
    }

    #[test]
    fn spin_list_is_shared_by_threads() {
        let list = SpinFreeList::<[u64; 8]>::new();
        std::thread::scope(|s| {
            for t in 0..2u64 {
                let list = &list;
                s.spawn(move || {
                    for i in 0..1_000 {
                        let index = list.alloc([t * 10_000 + i; 8]);
                        assert_eq!(list.free(index), [t * 10_000 + i; 8]);
                    }
                });
            }
        });
        assert!(list.list.lock().capacity() <= 2);
    }
}
