//! The list of slots a thread gave up to a cache without the cache at hand
//! (see `registry`), kept by address, in memory from the system allocator;
//! and `put_back`, which returns them to the cache when it adopts them.
//!
//! # Why not a `Vec`
//!
//! A `Vec` grows through the global allocator, and `SlabAllocator` may be
//! that allocator: a thread giving up its slots (under a registry place's
//! lock) would call into the very allocator, whose slow path takes the
//! same lock to adopt orphans — a deadlock, or a recursion at thread exit.
//! The list therefore takes its memory from [`System`], which never calls
//! back into this crate.

use core::alloc::Layout;
use core::ptr::NonNull;
use std::alloc::{GlobalAlloc, System};

use generic_array::ArrayLength;

use crate::cache::{CacheSet, Shapes};
use crate::checked::Misuse;
use crate::magazine::check_cached;
use crate::page_allocator::PageAllocator;

/// One listed slot: its address and its size class.
type Orphan = (NonNull<u8>, usize);

/// Resting slots of one cache, by address: never written into, so that a
/// thread may give slots up to a cache whose pages it cannot vouch for (a
/// cache forgotten with `mem::forget` keeps its ticket live for ever, while
/// its page source may be gone).
///
/// # Invariants
///
/// `buf` is dangling with `cap == 0`, or a [`System`] block of
/// `layout(cap)` whose first `len` elements are initialised.
pub(crate) struct Orphans {
    buf: NonNull<Orphan>,
    len: usize,
    cap: usize,
}

// SAFETY: the listed slots are resting slots of one cache that nothing else
// uses; whoever holds the list holds them (it moves between threads under a
// place's lock), and the list itself never reads or writes them. Its buffer
// is owned by the list alone.
unsafe impl Send for Orphans {}

impl Orphans {
    pub(crate) const fn new() -> Self {
        Self {
            buf: NonNull::dangling(),
            len: 0,
            cap: 0,
        }
    }

    /// How many slots are listed.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// How many slots of size class `class` are listed.
    pub(crate) fn len_of(&self, class: usize) -> usize {
        self.as_slice().iter().filter(|&&(_, c)| c == class).count()
    }

    fn as_slice(&self) -> &[Orphan] {
        // SAFETY: the first `len` elements are initialised (invariant); a
        // dangling, aligned pointer is valid for an empty slice.
        unsafe { core::slice::from_raw_parts(self.buf.as_ptr(), self.len) }
    }

    /// Lists `slot` of size class `class` (a resting slot of the place's
    /// cache, that nothing else uses until it is popped). Never touches the
    /// slot. If the system allocator refuses to grow the list, the slot is
    /// forgotten: it stays counted in use, a leak of one slot rather than a
    /// failure at thread exit.
    pub(crate) fn push(&mut self, slot: NonNull<u8>, class: usize) {
        if self.len == self.cap && !self.grow() {
            return;
        }
        // SAFETY: `len < cap` now, so the element is inside the block.
        let end = unsafe { self.buf.as_ptr().add(self.len) };
        // SAFETY: as just said; the element is not initialised yet.
        unsafe { end.write((slot, class)) };
        self.len += 1;
    }

    /// Takes a listed slot off, with its class.
    pub(crate) fn pop(&mut self) -> Option<Orphan> {
        self.len = self.len.checked_sub(1)?;
        // SAFETY: the old last index is inside the block.
        let last = unsafe { self.buf.as_ptr().add(self.len) };
        // SAFETY: the element there was initialised, and is now off the list.
        Some(unsafe { last.read() })
    }

    /// Doubles the capacity (at least 32 elements); `false` if the system
    /// allocator refused.
    #[cold]
    fn grow(&mut self) -> bool {
        let cap = (self.cap * 2).max(32);
        let Some(new_layout) = layout(cap) else {
            return false;
        };
        let block = if self.cap == 0 {
            // SAFETY: the layout's size is not zero.
            unsafe { System.alloc(new_layout) }
        } else {
            // SAFETY: `buf` is a `System` block of `layout(self.cap)`
            // (invariant), and the new size is not zero and fits `isize`
            // (`layout` checked it).
            unsafe {
                System.realloc(
                    self.buf.as_ptr().cast(),
                    current(self.cap),
                    new_layout.size(),
                )
            }
        };
        let Some(block) = NonNull::new(block) else {
            return false;
        };
        self.buf = block.cast();
        self.cap = cap;
        true
    }
}

impl Drop for Orphans {
    fn drop(&mut self) {
        if self.cap > 0 {
            // SAFETY: `buf` is a `System` block of `layout(cap)` (invariant);
            // the elements need no drop.
            unsafe { System.dealloc(self.buf.as_ptr().cast(), current(self.cap)) };
        }
    }
}

/// The layout of a buffer of `cap` orphans, if it has one.
fn layout(cap: usize) -> Option<Layout> {
    Layout::array::<Orphan>(cap).ok()
}

/// The layout of the buffer the list already has, of capacity `cap`.
fn current(cap: usize) -> Layout {
    // The list reached `cap` through `layout`, which accepted it.
    layout(cap).unwrap_or_else(|| unreachable!("a capacity the list has is a valid layout"))
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
