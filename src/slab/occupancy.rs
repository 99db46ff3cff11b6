//! Which slots of a slab are in use as far as the slab knows — handed out
//! and not given back, whether a user holds them or a magazine rests them —
//! for `for_each_slab`.
//!
//! Builds without checks recompute a bitmap of them into the room reserved
//! for the checked builds' bitmap. Checked builds cannot: that room holds
//! the live bitmap of the slots in a user's hands (see `checks`), which
//! magazines flip without the cache's lock, and which leaves out the slots
//! resting in magazines. There the view walks the slab's free list, frozen
//! by the cache's lock, for each slot asked about: a walk per question,
//! but exact and in the same terms as other builds, for diagnostics that
//! checked builds alone pay for.

use core::marker::PhantomData;
use core::ptr::NonNull;

use super::geometry::WORD_BITS as BITS;
use super::{Slab, SlabGeometry, bitmap_of};
use crate::checked::{CHECKED, poison};
use crate::intrusive::FreeStack;

/// The slots of one slab in use, as `SlabOccupancy` shows them; valid
/// while the cache's lock is held (`'a`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct UsedSlots<'a>(Used<'a>);

#[derive(Debug, Clone, Copy)]
enum Used<'a> {
    /// One bit per slot, set if it is in use (builds without checks).
    Bits(&'a [usize]),
    /// The slab's free list and never-used run (checked builds): a slot is
    /// in use unless it is on one of them.
    FreeList {
        /// The first slot on the free list.
        head: Option<NonNull<u8>>,
        /// Slots before the never-used run.
        touched: usize,
        /// Slots in use.
        count: usize,
        /// The address of slot 0, and the slot size: a slot's index.
        start: usize,
        slot_size: usize,
        _locked: PhantomData<&'a ()>,
    },
}

// SAFETY: the view only reads the slab's free list, which the cache's lock,
// held for `'a`, keeps unchanged; reads from several threads at once race
// with no write.
unsafe impl Send for UsedSlots<'_> {}
// SAFETY: as above.
unsafe impl Sync for UsedSlots<'_> {}

impl UsedSlots<'_> {
    /// Slots in use.
    pub(crate) fn count(&self) -> usize {
        match self.0 {
            Used::Bits(bits) => bits.iter().map(|w| w.count_ones() as usize).sum(),
            Used::FreeList { count, .. } => count,
        }
    }

    /// Whether slot `index` (below the slab's slot count) is in use.
    pub(crate) fn contains(&self, index: usize) -> bool {
        match self.0 {
            Used::Bits(bits) => bits[index / BITS] & (1 << (index % BITS)) != 0,
            Used::FreeList {
                head,
                touched,
                start,
                slot_size,
                ..
            } => {
                if index >= touched {
                    return false; // never handed out
                }
                let mut cursor = head;
                while let Some(slot) = cursor {
                    if (slot.as_ptr().addr() - start) / slot_size == index {
                        return false;
                    }
                    // Its link is read now; the sanitizer must let us.
                    poison::allow(slot, slot_size);
                    // SAFETY: a slot on the free list of a slab whose cache
                    // is locked for `'a` holds its link in its first word.
                    cursor = unsafe { FreeStack::next_returned(slot) };
                    poison::forbid(slot, slot_size);
                }
                true
            }
        }
    }
}

impl Slab {
    /// Which slots are in use as far as the slab knows: handed out and not
    /// given back (see the module doc).
    ///
    /// # Safety
    ///
    /// The shared contract on [`Slab`]; the view must not outlive the
    /// exclusive access.
    pub(crate) unsafe fn occupancy<'a>(self, geo: &SlabGeometry) -> UsedSlots<'a> {
        // SAFETY: the caller upholds the shared contract.
        let fresh = unsafe { self.fresh_offset(geo) };
        // SAFETY: as above.
        let state = unsafe { self.state() };
        if CHECKED {
            return UsedSlots(Used::FreeList {
                head: state.free.returned_head(),
                touched: state.free.fresh(),
                count: state.free.out(),
                start: self.page().as_ptr().addr() + geo.first_slot,
                slot_size: geo.slot_size,
                _locked: PhantomData,
            });
        }
        // SAFETY: a live slab's page is a slab page.
        let bitmap = unsafe { bitmap_of(self.page()) };
        // SAFETY: the bitmap room holds a bit for every slot, right after the
        // header; we hold the slab, and builds without checks use the room
        // for nothing else.
        let bits = unsafe { core::slice::from_raw_parts_mut(bitmap.as_ptr(), geo.bitmap_words()) };
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
            // SAFETY: slots on the free list hold their link in their first
            // word.
            cursor = unsafe { FreeStack::next_returned(slot) };
            poison::forbid(slot, geo.slot_size);
            let index = self.index_of(slot, geo);
            bits[index / BITS] &= !(1 << (index % BITS));
        }
        UsedSlots(Used::Bits(bits))
    }
}
