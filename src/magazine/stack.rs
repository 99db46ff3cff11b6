//! A magazine: a small stack of free slots owned by one thread.
//!
//! # What a magazine owns
//!
//! Slots that its cache has handed out (they count as in use there) and that
//! no user holds. A slot is in at most one magazine, and is either in a
//! magazine or in a user's hands, never both.
//!
//! # Invariants
//!
//! - `slots[..len]` hold slots; `len <= N`.
//! - In checked builds every slot in a magazine is filled with the poison
//!   byte, verified when it leaves; in AddressSanitizer builds it is marked
//!   off limits (see `checked::poison`).
//! - In checked builds every slot in a magazine has its bit clear in its
//!   slab's bitmap of slots in a user's hands (see `slab::checks`), and
//!   keeps it clear wherever it goes next without a user: back to the slab
//!   (a drain), to an exited thread's orphans, or nowhere (forgotten with a
//!   cache that is gone, its pages given back or leaked). The front above
//!   flips the bit, with no lock, at the two crossings: a slot freed into
//!   the magazine has it cleared by an atomic read-modify-write — finding
//!   it clear already is the double free, reported before the slot is
//!   touched, however the first free went (another thread's magazine, this
//!   one, the slab after a flush) — and a slot handed from the magazine to
//!   a user has it set. So no scan of this magazine is needed to catch a
//!   second free into it, and none of the other magazines could be made:
//!   they belong to other threads. A slot's bytes are never read to decide
//!   (they are the user's, and may be uninitialised).
//!
//! # Cells, not `&mut`
//!
//! Every field is a cell (the stack one [`UnsafeCell`] over the whole
//! array, the length an atomic), and every operation a short sequence of
//! loads and stores through raw pointers that calls nothing outside this
//! file. So no reference to a magazine's contents ever exists for longer
//! than a load or a store:
//! whatever runs while a front is in the middle of an operation — a page
//! source called for a refill, a panic hook run because that page source
//! panicked, a destructor — may use the same front again without aliasing
//! anything. (An earlier design lent out `&mut Magazine` for the length of
//! a refill; a panic hook that used the front then re-borrowed it, which
//! Miri reports as undefined behaviour.) These compile to plain loads and
//! stores, the same code as through `&mut`. One cell over the array rather
//! than a `Cell` per slot: the same code, but a reference to a table of
//! magazines (`thread_cache`) then holds a few cells, not hundreds, and
//! Miri, which visits every cell of a shared reference's target each time
//! one is made, ran the per-thread path ten times slower with a cell per
//! slot.
//!
//! The capacity `N` is a type-level number (`typenum`), so the stack is a
//! `GenericArray` of exactly that length inside the front, with no heap and
//! no const-generic arithmetic.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use core::sync::atomic::AtomicUsize;
use core::sync::atomic::Ordering::Relaxed;

use generic_array::{ArrayLength, GenericArray};

use crate::checked::{CHECKED, Misuse, poison};
use crate::slab::split_at_guard;

/// A fixed-capacity stack of slot pointers, used through `&self`.
pub(crate) struct Magazine<N: ArrayLength> {
    /// `slots[..len]` hold slots; read and written only through raw
    /// pointers, one element at a time, by the thread that owns the
    /// magazine.
    slots: UnsafeCell<GenericArray<MaybeUninit<NonNull<u8>>, N>>,
    /// An atomic only so that `stats()` on another thread may read it (the
    /// per-thread caches): this thread alone writes it, with plain loads and
    /// stores, never a read-modify-write.
    len: AtomicUsize,
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
            slots: UnsafeCell::new(GenericArray::uninit()),
            len: AtomicUsize::new(0),
        }
    }

    /// Slots held.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    /// Forgets every slot, without reading any.
    #[cfg(feature = "std")]
    pub(crate) fn clear(&self) {
        self.len.store(0, Relaxed);
    }

    /// The most recently pushed slot, if any.
    #[inline]
    pub(crate) fn pop(&self) -> Option<NonNull<u8>> {
        let top = self.len.load(Relaxed).checked_sub(1)?;
        self.len.store(top, Relaxed);
        // SAFETY: `top < len <= N`, in bounds of the array (a
        // `GenericArray` is laid out as `[T; N]`); no reference to it exists
        // (see "Cells").
        let held = unsafe { self.slot(top).read() };
        // SAFETY: `slots[..len]` hold slots, and `top` was below `len`.
        Some(unsafe { held.assume_init() })
    }

    /// Pushes `slot`, or hands it back if the magazine is full.
    #[inline]
    pub(crate) fn push(&self, slot: NonNull<u8>) -> Result<(), NonNull<u8>> {
        let len = self.len.load(Relaxed);
        if len == N::USIZE {
            return Err(slot);
        }
        // SAFETY: `len < N`, in bounds; no reference to the array exists
        // (see "Cells").
        unsafe { self.slot(len).write(MaybeUninit::new(slot)) };
        self.len.store(len + 1, Relaxed);
        Ok(())
    }

    /// Pushes `slots` last first (so that `slots[0]` is popped first), as
    /// many as fit, and returns how many of the *first* ones did not: the
    /// magazine keeps the tail. One load and one store of the length for
    /// the lot: the length is an atomic, whose accesses the compiler does
    /// not merge, so a loop of [`push`](Self::push) paid both per slot.
    #[inline]
    pub(crate) fn push_all(&self, slots: &[NonNull<u8>]) -> usize {
        let len = self.len.load(Relaxed);
        let fit = slots.len().min(N::USIZE - len);
        let left = slots.len() - fit;
        for (i, &slot) in slots[left..].iter().rev().enumerate() {
            // SAFETY: `len + i < len + fit <= N`, in bounds; no reference to
            // the array exists (see "Cells").
            unsafe { self.slot(len + i).write(MaybeUninit::new(slot)) };
        }
        self.len.store(len + fit, Relaxed);
        left
    }

    /// Pops up to `out.len()` slots into `out`, the most recent first, and
    /// returns how many: [`push_all`](Self::push_all)'s counterpart.
    #[inline]
    pub(crate) fn pop_into(&self, out: &mut [NonNull<u8>]) -> usize {
        let len = self.len.load(Relaxed);
        let count = out.len().min(len);
        let rest = len - count;
        self.len.store(rest, Relaxed);
        for (i, place) in out[..count].iter_mut().enumerate() {
            // SAFETY: `rest <= len - 1 - i < len <= N`, in bounds, and
            // `slots[..len]` hold slots; no reference to the array exists.
            let held = unsafe { self.slot(len - 1 - i).read() };
            // SAFETY: as just said, below the old `len`.
            *place = unsafe { held.assume_init() };
        }
        count
    }

    /// A pointer to the array's element at `index`, made without a
    /// reference to the array.
    #[inline(always)]
    fn slot(&self, index: usize) -> *mut MaybeUninit<NonNull<u8>> {
        debug_assert!(index < N::USIZE, "a magazine's slot in bounds");
        // `GenericArray<T, N>` has the layout of `[T; N]`: its elements
        // start at its address, one after another.
        self.slots
            .get()
            .cast::<MaybeUninit<NonNull<u8>>>()
            .wrapping_add(index)
    }
}

/// Readies a slot of `size` bytes to rest in a magazine: poisoned in checked
/// builds, off limits for AddressSanitizer.
///
/// # Safety
///
/// `slot` is `size` bytes that its cache handed out and no one uses.
#[inline]
pub(crate) unsafe fn poison_cached(slot: NonNull<u8>, size: usize) {
    if CHECKED {
        // SAFETY: the caller's guarantees.
        unsafe { poison::fill(slot.as_ptr(), size) };
    }
    poison::forbid(slot, size);
}

/// [`poison_cached`] for a slot being freed, written through the pointer
/// entitled to each byte (see `SlotReach::resolve`): the first `guarded`
/// bytes through `object` (a `Box` being freed may still guard them), the
/// rest through `paged`, the same address with the page's provenance.
///
/// # Safety
///
/// As for [`poison_cached`], with `object` and `paged` the same address and
/// each entitled to the bytes written through it.
#[inline]
pub(crate) unsafe fn poison_freed(
    object: NonNull<u8>,
    paged: NonNull<u8>,
    size: usize,
    guarded: usize,
) {
    if CHECKED {
        for (start, count) in split_at_guard(object, paged, guarded, 0, size) {
            // SAFETY: both pieces lie inside the slot, which is ours again,
            // each reached through a pointer entitled to it (the caller's
            // guarantees).
            unsafe { poison::fill(start, count) };
        }
    }
    poison::forbid(paged, size);
}

/// Takes a slot out of a magazine for use: checked builds verify that no
/// one wrote to it while it rested there.
///
/// # Safety
///
/// `slot` was readied by [`poison_cached`] with the same `size`, and no one
/// else holds it.
#[inline]
pub(crate) unsafe fn check_cached(slot: NonNull<u8>, size: usize) -> Result<(), Misuse> {
    poison::allow(slot, size);
    if CHECKED {
        // SAFETY: the caller's guarantees.
        if let Some(offset) = unsafe { poison::first_changed(slot.as_ptr(), size) } {
            return Err(Misuse::WriteAfterFree { offset });
        }
    }
    Ok(())
}
