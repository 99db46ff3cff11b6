//! What checked builds verify on a slab: the owner and slot size of a slab
//! found from a pointer, double frees (a bitmap of handed-out slots), and
//! the poison of free slots. Every function is `Ok` at once in other builds,
//! where `CHECKED` is a `false` constant and the code compiles away.

use core::mem::size_of;
use core::ptr::NonNull;

use super::geometry::WORD_BITS as BITS;
use super::{Slab, SlabGeometry, bitmap_of};
use crate::checked::{CHECKED, Misuse, poison};
use crate::intrusive::FreeStack;

impl Slab {
    /// Checks, in checked builds, that the slot the next `pop_slot` hands out
    /// from the free list was left alone while it was free: its link still
    /// leads to a free slot of this slab (or nowhere), and its poison fill is
    /// intact. Returns the slot and the misuse otherwise. Nothing in other
    /// builds.
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
            if !in_slab || unsafe { self.is_handed_out(next, geo) } {
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
    unsafe fn fresh_offset(self, geo: &SlabGeometry) -> usize {
        // SAFETY: the caller upholds the shared contract.
        let fresh = unsafe { self.state() }.free.fresh();
        geo.first_slot + fresh * geo.slot_size
    }

    /// Checks, before a free, that `slot` is a handed-out slot of this slab,
    /// owned by the cache tagged `owner`, of the expected geometry. Meaningful
    /// in checked builds; always `Ok` otherwise.
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
    pub(crate) unsafe fn check_free(
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
        // SAFETY: `slot` is a slot of this live slab (checked just above).
        if !unsafe { self.is_handed_out(slot, geo) } {
            return Err(Misuse::DoubleFree);
        }
        Ok(())
    }

    /// Checks, without exclusive access, that `slot` is a slot of this slab
    /// owned by the cache tagged `owner` with `geo`'s slot size: the checks of
    /// [`check_free`](Self::check_free) that read only header fields fixed
    /// when the slab was made (owner, slot size), for a local front that
    /// takes no lock to free. Whether the slot is handed out is checked later,
    /// when it goes back under the lock. Meaningful in checked builds;
    /// always `Ok` otherwise.
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

    /// The checks shared by [`check_free`](Self::check_free) and
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

    /// Which slots are handed out, as a bitmap of `geo.slots_per_slab` bits
    /// (bit `i % usize::BITS` of word `i / usize::BITS` for slot `i`).
    /// Checked builds maintain that bitmap; other builds recompute it here,
    /// from the free list and the fresh run, into the room the geometry
    /// reserves for it in every build.
    ///
    /// # Safety
    ///
    /// The shared contract on [`Slab`]; the slice must not outlive the
    /// exclusive access.
    pub(crate) unsafe fn occupancy<'a>(self, geo: &SlabGeometry) -> &'a [usize] {
        // SAFETY: the caller upholds the shared contract.
        let fresh = unsafe { self.fresh_offset(geo) };
        // SAFETY: as above.
        let state = unsafe { self.state() };
        // SAFETY: a live slab's page is a slab page.
        let bitmap = unsafe { bitmap_of(self.page()) };
        // SAFETY: the bitmap room holds a bit for every slot, right after the
        // header; we hold the slab, so no one else touches it.
        let bits = unsafe { core::slice::from_raw_parts_mut(bitmap.as_ptr(), geo.bitmap_words()) };
        if !CHECKED {
            let touched = (fresh - geo.first_slot) / geo.slot_size;
            for (i, word) in bits.iter_mut().enumerate() {
                let below = touched.saturating_sub(i * BITS).min(BITS);
                *word = if below == BITS {
                    usize::MAX
                } else {
                    (1 << below) - 1
                };
            }
            let mut cursor = state.free.returned_head();
            while let Some(slot) = cursor {
                poison::allow(slot, geo.slot_size);
                // SAFETY: slots on the free list hold their link in their
                // first word.
                cursor = unsafe { FreeStack::next_returned(slot) };
                poison::forbid(slot, geo.slot_size);
                let index = self.index_of(slot, geo);
                bits[index / BITS] &= !(1 << (index % BITS));
            }
        }
        debug_assert_eq!(
            bits.iter().map(|w| w.count_ones() as usize).sum::<usize>(),
            state.free.out(),
            "the bitmap agrees with the count of slots in use"
        );
        bits
    }

    /// The index of `slot`, a slot of this slab.
    fn index_of(self, slot: NonNull<u8>, geo: &SlabGeometry) -> usize {
        (slot.as_ptr().addr() - self.page().as_ptr().addr() - geo.first_slot) / geo.slot_size
    }

    /// Whether `slot`'s bit says it is handed out.
    ///
    /// # Safety
    ///
    /// As for [`bit_of`](Self::bit_of).
    unsafe fn is_handed_out(self, slot: NonNull<u8>, geo: &SlabGeometry) -> bool {
        // SAFETY: forwarded from the caller.
        let (word, mask) = unsafe { self.bit_of(slot, geo) };
        // SAFETY: the word is inside the page's bitmap, initialised by `init`.
        let bits = unsafe { word.read() };
        bits & mask != 0
    }

    /// The bitmap word and bit mask of `slot`.
    ///
    /// # Safety
    ///
    /// Checked builds only; `slot` is a slot of this live slab.
    unsafe fn bit_of(self, slot: NonNull<u8>, geo: &SlabGeometry) -> (NonNull<usize>, usize) {
        let index = self.index_of(slot, geo);
        // SAFETY: a live slab's page is a slab page.
        let bitmap = unsafe { bitmap_of(self.page()) };
        // SAFETY: the bitmap has a bit for every slot index below the count.
        let word = unsafe { bitmap.add(index / BITS) };
        (word, 1 << (index % BITS))
    }

    /// Toggles the handed-out bit of `slot`.
    ///
    /// # Safety
    ///
    /// As for [`bit_of`](Self::bit_of), plus exclusive access to the slab.
    pub(super) unsafe fn flip_bit(self, slot: NonNull<u8>, geo: &SlabGeometry) {
        // SAFETY: forwarded from the caller.
        let (word, mask) = unsafe { self.bit_of(slot, geo) };
        // SAFETY: the word is inside the page's bitmap, initialised by `init`.
        let bits = unsafe { word.read() };
        // SAFETY: as above, and we have exclusive access to it.
        unsafe { word.write(bits ^ mask) };
    }
}
