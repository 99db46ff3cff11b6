//! A magazine: a small stack of free slots owned by one thread.
//!
//! Bonwick and Adams's answer to lock contention in a slab allocator (2001)
//! is to put, in front of each shared cache, a per-CPU stack of free objects
//! — a magazine — that the CPU pops and pushes without any lock, and to
//! touch the shared cache only to refill an empty magazine or to empty a
//! full one, a batch of objects under one lock. [`LocalCache`] and
//! [`LocalAllocator`] are those per-thread (or per-core) fronts; this module
//! is the stack itself.
//!
//! # What a magazine owns
//!
//! Slots that its shared cache has handed out (they count as in use there)
//! and that no user holds. A slot is in at most one magazine, and is either
//! in a magazine or in a user's hands, never both.
//!
//! # Invariants
//!
//! - `slots[..len]` are initialised; `len <= N`.
//! - In checked builds every slot in a magazine is filled with the poison
//!   byte, verified when it is handed out; in AddressSanitizer builds it is
//!   marked off limits (see `poison`).
//!
//! The capacity `N` is a type-level number (`typenum`), so the stack is a
//! `GenericArray` of exactly that length inside the front, with no heap and
//! no const-generic arithmetic.
//!
//! [`LocalCache`]: crate::LocalCache
//! [`LocalAllocator`]: crate::LocalAllocator

use core::mem::MaybeUninit;
use core::ptr::NonNull;

use generic_array::{ArrayLength, GenericArray};

use crate::misuse::{CHECKED, Misuse};
use crate::poison;

/// A fixed-capacity stack of slot pointers.
pub(crate) struct Magazine<N: ArrayLength> {
    slots: GenericArray<MaybeUninit<NonNull<u8>>, N>,
    len: usize,
}

impl<N: ArrayLength> Magazine<N> {
    /// How many slots a refill takes, or a flush gives back, at once: half a
    /// magazine, so that a thread alternating allocations and frees around a
    /// boundary does not refill and flush on every call.
    pub(crate) const BATCH: usize = if N::USIZE / 2 == 0 { 1 } else { N::USIZE / 2 };

    /// Rejects, at compile time, a magazine that can hold nothing.
    pub(crate) const NOT_EMPTY: () = assert!(N::USIZE > 0, "a magazine holds at least one slot");

    /// An empty magazine.
    pub(crate) const fn new() -> Self {
        Self {
            slots: GenericArray::uninit(),
            len: 0,
        }
    }

    /// Slots held.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The most recently pushed slot, if any.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<NonNull<u8>> {
        let top = self.len.checked_sub(1)?;
        self.len = top;
        // SAFETY: `top < len <= N`: in bounds.
        let slot = unsafe { self.slots.get_unchecked(top) };
        // SAFETY: `slots[..len]` are initialised, and `top < len`.
        Some(unsafe { slot.assume_init() })
    }

    /// Pushes `slot`, or hands it back if the magazine is full.
    #[inline]
    pub(crate) fn push(&mut self, slot: NonNull<u8>) -> Result<(), NonNull<u8>> {
        match self.slots.get_mut(self.len) {
            Some(free) => {
                *free = MaybeUninit::new(slot);
                self.len += 1;
                Ok(())
            }
            None => Err(slot),
        }
    }

    /// The `count` most recently pushed slots (all of them if fewer), left
    /// in place, most recent first: the order `pop` takes them in.
    #[inline]
    pub(crate) fn top(&self, count: usize) -> impl Iterator<Item = NonNull<u8>> + '_ {
        let start = self.len.saturating_sub(count);
        self.slots[start..self.len]
            .iter()
            .rev()
            // SAFETY: `slots[..len]` are initialised.
            .map(|held| unsafe { held.assume_init() })
    }

    /// Whether `slot` is in the magazine (a linear scan: checked builds
    /// only, to catch a double free before it is parked).
    pub(crate) fn contains(&self, slot: NonNull<u8>) -> bool {
        self.slots[..self.len]
            .iter()
            // SAFETY: `slots[..len]` are initialised.
            .any(|held| unsafe { held.assume_init() } == slot)
    }
}

/// Readies a slot of `size` bytes to rest in a magazine: poisoned in checked
/// builds, off limits for AddressSanitizer.
///
/// # Safety
///
/// `slot` is `size` bytes that its cache handed out and no one uses.
#[inline]
pub(crate) unsafe fn park(slot: NonNull<u8>, size: usize) {
    if CHECKED {
        // SAFETY: the caller's guarantees.
        unsafe { poison::fill(slot.as_ptr(), size) };
    }
    poison::forbid(slot, size);
}

/// Takes a slot out of a magazine for use: checked builds verify that no
/// one wrote to it while it rested there.
///
/// # Safety
///
/// `slot` was readied by [`park`] with the same `size`, and no one else
/// holds it.
#[inline]
pub(crate) unsafe fn unpark(slot: NonNull<u8>, size: usize) -> Result<NonNull<u8>, Misuse> {
    poison::allow(slot, size);
    if CHECKED {
        // SAFETY: the caller's guarantees.
        if let Some(offset) = unsafe { poison::first_changed(slot.as_ptr(), size) } {
            return Err(Misuse::WriteAfterFree { offset });
        }
    }
    Ok(slot)
}
