//! What checked builds verify on a slab: the owner and slot size of a slab
//! found from a pointer, double frees (a bitmap of the slots in a user's
//! hands), and the poison of free slots. Every function is `Ok` at once in
//! other builds, where `CHECKED` is a `false` constant and the code
//! compiles away.
//!
//! # The bitmap: which slots are in a user's hands
//!
//! Bit `i` of a slab's bitmap is set iff slot `i` is in a user's hands:
//! handed out to a caller and not freed since. A slot on the slab's free
//! list, in its never-used run, or resting in a magazine (a per-thread
//! cache, a `LocalCache`, a `LocalAllocator`, or an exited thread's
//! orphans) has its bit clear. So every free, wherever it lands, clears a
//! set bit, and a second free of the slot finds it clear: a double free,
//! however far apart the two frees are — two threads' magazines, or a
//! magazine and then the slab after a flush.
//!
//! Who flips it:
//!
//! - the cache, under its lock: [`check_free`](Slab::check_free) clears
//!   the bit of a slot freed straight to its slab, and
//!   [`set_held`](Slab::set_held) sets it for a slot handed straight to a
//!   caller; slots that leave the slab for a magazine (a refill) or come
//!   back from one (a drain, orphans) keep their bit clear: they are in no
//!   user's hands on either side;
//! - a magazine front, with no lock: [`clear_held`](Slab::clear_held) when
//!   a user frees a slot into a magazine, and `set_held` when a magazine
//!   hands a slot to a user (the first slot of a refill included).
//!
//! The lock-free side is why the words are atomics: two threads may flip
//! bits of one word at once (each its own slot), and the clear is a
//! read-modify-write whose old value decides: of two frees of one slot,
//! racing or not, exactly one finds the bit set. The locked side uses the
//! same atomics, since a magazine may flip another bit of the word while
//! the lock is held. `Relaxed` suffices: the bit carries no data, and the
//! read-modify-writes of one word are totally ordered whatever the
//! ordering. Nothing else is ever read to decide: a user's bytes are not
//! ours to read, and marks left in them go stale.
//!
//! What a bit cannot tell is *which* user holds the slot: a stale pointer
//! freed after its slot went to a new user frees the new user's object,
//! and the new user's own free is the one reported as a double free.
//! Slots that a cache forgets when it goes (other threads' magazines, a
//! retired ticket's orphans) keep their bits clear, and their pages go
//! back with the cache (or stay leaked with it) unread.
//!
//! Only checked builds touch the bitmap, through [`PageAtomicUsize`] viewed
//! in place; other builds reserve its room (so that the geometry is the
//! same) and use it only to answer `occupancy`.

use core::mem::size_of;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::Relaxed;

use super::geometry::WORD_BITS as BITS;
use super::{Slab, SlabGeometry, bitmap_of};
use crate::checked::{CHECKED, Misuse, poison};
use crate::intrusive::FreeStack;
use crate::sync::PageAtomicUsize;

impl Slab {
    /// Checks, in checked builds, that the slot the next `pop_slots` hands out
    /// from the free list was left alone while it was free: its link still
    /// leads to a slot of this slab in no user's hands (or nowhere), and its
    /// poison fill is intact. Returns the slot and the misuse otherwise.
    /// Nothing in other builds. (A link changed to a slot resting in a
    /// magazine passes the link check; its poison check still runs.)
    ///
    /// # Safety
    ///
    /// The shared contract on [`Slab`].
    pub(crate) unsafe fn check_reuse(
        self,
        geo: &SlabGeometry,
    ) -> Result<(), (Misuse, NonNull<u8>)> {
        if !CHECKED {
            return Ok(());
        }
        // SAFETY: the caller upholds the shared contract.
        let fresh = unsafe { self.fresh_offset(geo) };
        // SAFETY: as above.
        let state = unsafe { self.state() };
        let Some(slot) = state.free.returned_head() else {
            return Ok(());
        };
        // It is handed out next, if it passes: the sanitizer may let us read.
        poison::allow(slot, geo.slot_size);
        let corrupt = |offset| Err((Misuse::WriteAfterFree { offset }, slot));
        // SAFETY: a free slot's first word is its link, written by `push_slot`.
        if let Some(next) = unsafe { FreeStack::next_returned(slot) } {
            let base = self.page().as_ptr().addr();
            let offset = next.as_ptr().addr().wrapping_sub(base);
            let in_slab = offset >= geo.first_slot
                && offset < fresh
                && (offset - geo.first_slot).is_multiple_of(geo.slot_size);
            // SAFETY: a slot of this live slab, as just checked.
            if !in_slab || unsafe { self.is_held(next, geo) } {
                return corrupt(0);
            }
        }
        let link = size_of::<NonNull<u8>>();
        let after_link = slot.as_ptr().wrapping_add(link);
        // SAFETY: the bytes after the link are inside the free slot, which
        // nothing else may use while we hold the slab.
        match unsafe { poison::first_changed(after_link, geo.slot_size - link) } {
            Some(changed) => corrupt(link + changed),
            None => Ok(()),
        }
    }

    /// Offset of the first never-used slot (`geo.end()` once all were used).
    ///
    /// # Safety
    ///
    /// The shared contract on [`Slab`].
    pub(super) unsafe fn fresh_offset(self, geo: &SlabGeometry) -> usize {
        // SAFETY: the caller upholds the shared contract.
        let fresh = unsafe { self.state() }.free.fresh();
        geo.first_slot + fresh * geo.slot_size
    }

    /// Checks, before a free straight to this slab, that `slot` is a slot of
    /// this slab in a user's hands, owned by the cache tagged `owner`, of the
    /// expected geometry, and takes it out of the user's hands (clears its
    /// bit). Changes nothing when it returns the misuse. Meaningful in
    /// checked builds; always `Ok` otherwise.
    ///
    /// # Safety
    ///
    /// As for [`check_slot`](Self::check_slot).
    pub(crate) unsafe fn check_free(
        self,
        slot: NonNull<u8>,
        geo: &SlabGeometry,
        owner: u32,
    ) -> Result<(), Misuse> {
        if !CHECKED {
            return Ok(());
        }
        // SAFETY: the caller's guarantees.
        unsafe { self.check_slot(slot, geo, owner) }?;
        // The read-modify-write decides, not a read before it: a magazine
        // on another thread may be freeing the same slot right now.
        // SAFETY: `slot` is a slot of this live slab (checked just above).
        if !unsafe { self.clear_held(slot, geo) } {
            return Err(Misuse::DoubleFree);
        }
        Ok(())
    }

    /// Checks that `slot` is a slot of this slab, owned by the cache tagged
    /// `owner`, of the expected geometry, and was handed out at some point
    /// (it lies before the never-used run): everything about a freed slot
    /// its slab can tell, short of whether a user holds it now. Reads only.
    /// Meaningful in checked builds; always `Ok` otherwise.
    ///
    /// # Safety
    ///
    /// The caller has exclusive access to the cache that `geo` belongs to,
    /// and `self` was computed by [`Slab::containing`] from `slot`. The page
    /// need not be a slab of that cache — finding out is the point — but it
    /// must be readable memory: a pointer into no page at all cannot be
    /// checked without a fault. Likewise a slot whose slab has already gone
    /// back to the page source (a double free of a slab's last object,
    /// say) is beyond checking: its header is gone. This is a best-effort
    /// diagnostic for bugs, not a licence to free arbitrary pointers.
    pub(crate) unsafe fn check_slot(
        self,
        slot: NonNull<u8>,
        geo: &SlabGeometry,
        owner: u32,
    ) -> Result<(), Misuse> {
        if !CHECKED {
            return Ok(());
        }
        // Only fields fixed when the slab was made are read until the slab
        // is known to be ours: another cache's slab may be changing under
        // its own lock.
        // SAFETY: the caller's guarantees are `check_owner`'s.
        unsafe { self.check_owner(slot, geo, owner) }?;
        let offset = slot.as_ptr().addr() - self.page().as_ptr().addr();
        // SAFETY: ours, so the caller's exclusive access covers its state.
        if offset >= unsafe { self.fresh_offset(geo) } {
            return Err(Misuse::ForeignPointer); // never handed out
        }
        Ok(())
    }

    /// Checks, without exclusive access, that `slot` is a slot of this slab
    /// owned by the cache tagged `owner` with `geo`'s slot size: the checks of
    /// [`check_free`](Self::check_free) that read only header fields fixed
    /// when the slab was made (owner, slot size), for a magazine front that
    /// takes no lock to free. Whether a user holds the slot is the bitmap's
    /// to say ([`clear_held`](Self::clear_held)). Meaningful in checked
    /// builds; always `Ok` otherwise.
    ///
    /// # Safety
    ///
    /// `self` was computed by [`Slab::containing`] from `slot`, and the page
    /// is readable memory (the same best-effort terms as `check_free`).
    pub(crate) unsafe fn check_owner(
        self,
        slot: NonNull<u8>,
        geo: &SlabGeometry,
        owner: u32,
    ) -> Result<(), Misuse> {
        if !CHECKED {
            return Ok(());
        }
        // SAFETY: the caller's guarantees.
        let (slab_owner, slot_size) = unsafe { self.fixed_fields() };
        self.check_identity(slot, geo, (slab_owner, owner), slot_size, geo.end())
    }

    /// The owner tag and slot size in the header, read in place.
    ///
    /// # Safety
    ///
    /// The header's memory is readable (as for `check_owner`).
    unsafe fn fixed_fields(self) -> (u32, usize) {
        let header = self.0.as_ptr();
        // SAFETY: a field of the header in place; nothing is read yet.
        let owner_field = unsafe { &raw const (*header).owner };
        // SAFETY: readable per the contract; the owner is written only when
        // the slab is made, so reading it races with nothing.
        let slab_owner = unsafe { owner_field.read() };
        // SAFETY: as above.
        let size_field = unsafe { &raw const (*header).slot_size };
        // SAFETY: as above: the slot size is fixed when the slab is made.
        let slot_size = unsafe { size_field.read() } as usize;
        (slab_owner, slot_size)
    }

    /// The checks shared by [`check_slot`](Self::check_slot) and
    /// [`check_owner`](Self::check_owner), on header fields already read:
    /// the slab belongs to the expected owner (`owners`: the slab's, the
    /// expected), its slots have the expected size, and `slot` is a slot
    /// boundary below `limit`.
    fn check_identity(
        self,
        slot: NonNull<u8>,
        geo: &SlabGeometry,
        (slab_owner, owner): (u32, u32),
        slot_size: usize,
        limit: usize,
    ) -> Result<(), Misuse> {
        if slab_owner != owner {
            return Err(Misuse::ForeignPointer);
        }
        if slot_size != geo.slot_size {
            return Err(Misuse::WrongSizeClass {
                actual: slot_size,
                claimed: geo.slot_size,
            });
        }
        let offset = slot.as_ptr().addr() - self.page().as_ptr().addr();
        if offset < geo.first_slot
            || offset >= limit
            || !(offset - geo.first_slot).is_multiple_of(slot_size)
        {
            return Err(Misuse::ForeignPointer);
        }
        Ok(())
    }

    /// The index of `slot`, a slot of this slab.
    pub(super) fn index_of(self, slot: NonNull<u8>, geo: &SlabGeometry) -> usize {
        (slot.as_ptr().addr() - self.page().as_ptr().addr() - geo.first_slot) / geo.slot_size
    }

    /// Whether `slot`'s bit says a user holds it.
    ///
    /// # Safety
    ///
    /// As for [`bit_of`](Self::bit_of).
    unsafe fn is_held(self, slot: NonNull<u8>, geo: &SlabGeometry) -> bool {
        // SAFETY: forwarded from the caller.
        let (word, mask) = unsafe { self.bit_of(slot, geo) };
        word.load(Relaxed) & mask != 0
    }

    /// Notes that `slot` is now in a user's hands: handed straight from the
    /// slab (under the cache's lock) or from a magazine (without it). The
    /// bit was clear, unless the caches' books are broken. No lock needed.
    ///
    /// # Safety
    ///
    /// As for [`bit_of`](Self::bit_of); `slot` is in no user's hands and
    /// is being handed to one.
    pub(crate) unsafe fn set_held(self, slot: NonNull<u8>, geo: &SlabGeometry) {
        if !CHECKED {
            return;
        }
        // SAFETY: forwarded from the caller.
        let (word, mask) = unsafe { self.bit_of(slot, geo) };
        let before = word.fetch_or(mask, Relaxed);
        debug_assert_eq!(before & mask, 0, "a slot handed out was in no one's hands");
    }

    /// Takes `slot` out of its user's hands, for a free; `false`, changing
    /// nothing, if no user held it (a double free, or a slot never handed
    /// out). No lock needed: of two frees of one slot, however they race,
    /// one clears the bit and the other finds it clear.
    ///
    /// # Safety
    ///
    /// As for [`bit_of`](Self::bit_of).
    pub(crate) unsafe fn clear_held(self, slot: NonNull<u8>, geo: &SlabGeometry) -> bool {
        if !CHECKED {
            return true;
        }
        // SAFETY: forwarded from the caller.
        let (word, mask) = unsafe { self.bit_of(slot, geo) };
        word.fetch_and(!mask, Relaxed) & mask != 0
    }

    /// The bitmap word of `slot`, as the atomic it is read and written
    /// through, and its bit mask.
    ///
    /// # Safety
    ///
    /// Checked builds only; `slot` is a slot of this slab (a slot boundary
    /// below `geo.end()`), which is live for `'a`.
    unsafe fn bit_of<'a>(
        self,
        slot: NonNull<u8>,
        geo: &SlabGeometry,
    ) -> (&'a PageAtomicUsize, usize) {
        let index = self.index_of(slot, geo);
        // SAFETY: a live slab's page is a slab page.
        let bitmap = unsafe { bitmap_of(self.page()) };
        // SAFETY: the bitmap has a bit for every slot index below the count.
        let word = unsafe { bitmap.add(index / BITS) };
        // The word follows the header, whose size is a multiple of its
        // alignment (at least an atomic word's); `init` wrote it before the
        // slab handed out any slot, and every access since is atomic.
        // SAFETY: in the page's bitmap, initialised, aligned, live for `'a`.
        let word = unsafe { PageAtomicUsize::from_ptr(word.as_ptr()) };
        (word, 1 << (index % BITS))
    }
}
