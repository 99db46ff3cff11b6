//! Slots out of a slab and back: one at a time (a user's allocation and
//! free), or a batch at a time (a magazine's refill and overflow), with the
//! link of each free slot and the sanitizer's marks kept right.

use core::ptr::NonNull;

use super::{Slab, SlabGeometry};
use crate::checked::{CHECKED, poison};

impl Slab {
    /// Hands out a free slot, or `None` if the slab is full: for tests
    /// that walk a slab slot by slot.
    ///
    /// # Safety
    ///
    /// The shared contract on [`Slab`].
    #[cfg(test)]
    pub(crate) unsafe fn pop_slot(self, geo: &SlabGeometry) -> Option<NonNull<u8>> {
        // SAFETY: the caller upholds the shared contract.
        if unsafe { self.in_use() } == geo.slots_per_slab {
            return None;
        }
        let mut slot = [NonNull::dangling()];
        // SAFETY: as above; the slab has a free slot.
        unsafe { self.pop_slots(geo, &mut slot) };
        Some(slot[0])
    }

    /// Hands out free slots into `out`, as many as it holds and the slab
    /// has: the slots given back last first, then never-used ones in
    /// address order (`FreeStack::pop_into`). Returns how many: at least
    /// one.
    ///
    /// # Safety
    ///
    /// The shared contract on [`Slab`]; the slab has a free slot.
    #[inline]
    pub(crate) unsafe fn pop_slots(self, geo: &SlabGeometry, out: &mut [NonNull<u8>]) -> usize {
        // SAFETY: the caller upholds the shared contract: the slab is live.
        let run = unsafe { self.run(geo) };
        // SAFETY: the caller upholds the shared contract.
        let state = unsafe { self.state() };
        if let [only] = out {
            // One slot (an allocation that is not a refill): `pop`'s one
            // branch is shorter code than the loop, for a firmware.
            if let Some(head) = state.free.returned_head() {
                // Its link is read now; the sanitizer must let us.
                poison::allow(head, geo.slot_size);
            }
            // SAFETY: we have the slab (shared contract); returned slots
            // hold the links `push_slot` wrote, readable as just arranged.
            let Some(slot) = (unsafe { state.free.pop(run) }) else {
                debug_assert!(false, "the caller vouched for a free slot");
                // SAFETY: the caller's guarantee: the slab has a free slot.
                // Stated, so that a single allocation links no path for a
                // full slab.
                unsafe { core::hint::unreachable_unchecked() }
            };
            poison::allow(slot, geo.slot_size);
            *only = slot;
            return 1;
        }
        // SAFETY: we have the slab (shared contract); returned slots hold
        // the links `push_slot` wrote, each made readable before it is read.
        let count = unsafe {
            state
                .free
                .pop_into(run, out, |slot| poison::allow(slot, geo.slot_size))
        };
        debug_assert!(count > 0, "the caller vouched for a free slot");
        if count == 0 {
            // SAFETY: the caller's guarantee: the slab has a free slot.
            // Stated, so that a single allocation links no path for a full
            // slab.
            unsafe { core::hint::unreachable_unchecked() }
        }
        count
    }

    /// Puts `slot` back on the free list.
    ///
    /// The link is written through `slot` itself for the first `guarded`
    /// bytes — the caller's pointer is the one entitled to them right now (a
    /// `Box` being freed still guards its object) — and through the slab's
    /// own pointer for the rest of the word, which a small object's borrow
    /// does not cover. The pointer kept on the list is rebuilt from the
    /// slab's own, so the slot's next owner gets the page's provenance, not
    /// whatever the last owner's pointer had.
    ///
    /// # Safety
    ///
    /// The shared contract on [`Slab`]; `slot` is a slot of this slab that is
    /// handed out (checked builds verify it first with
    /// [`check_free`](Self::check_free), or [`check_slot`](Self::check_slot)
    /// for a slot back from a magazine), and no one uses it after this call.
    /// `guarded` is the size of the object the caller's borrow covers
    /// (`usize::MAX` when the pointer reaches the whole page).
    #[inline]
    pub(crate) unsafe fn push_slot(self, slot: NonNull<u8>, geo: &SlabGeometry, guarded: usize) {
        // SAFETY: the caller upholds the shared contract.
        let state = unsafe { self.state() };
        let paged = self.0.with_addr(slot.addr()).cast::<u8>();
        if !CHECKED && state.free.out() == 1 {
            // The last slot back: the slab starts over from its run, in
            // address order, with no link to follow (see
            // `FreeStack::take_back_last`). Checked builds keep the list,
            // whose poison tells of a write after free when a slot is reused.
            poison::forbid(paged, geo.slot_size);
            state.free.take_back_last();
            return;
        }
        let value = state.free.link_for_push();
        let len = size_of_val(&value);
        let [(near, near_len), (far, far_len)] = split_at_guard(slot, paged, guarded, 0, len);
        let bytes = (&raw const value).cast::<u8>();
        // SAFETY: the slot is ours again and at least a pointer in size; the
        // near part lies inside the caller's borrow.
        unsafe { core::ptr::copy_nonoverlapping(bytes, near, near_len) };
        // SAFETY: the far part is the rest of the word, in the same slot,
        // reached through the slab's page provenance; `near_len + far_len`
        // is the size of `value`.
        unsafe { core::ptr::copy_nonoverlapping(bytes.wrapping_add(near_len), far, far_len) };
        if CHECKED {
            let pieces = split_at_guard(slot, paged, guarded, len, geo.slot_size);
            for (start, count) in pieces {
                // SAFETY: both pieces lie inside the slot, which is ours
                // again, each reached through a pointer entitled to it.
                unsafe { poison::fill(start, count) };
            }
        }
        poison::forbid(paged, geo.slot_size);
        // SAFETY: the slot holds the link just written, and is free.
        unsafe { state.free.push_linked(paged) };
    }

    /// Puts every slot of `slots` back on the free list, with the header's
    /// books updated once for the lot: a magazine's batch, whose slots come
    /// in runs from one slab. Unchecked builds only (checked ones check and
    /// poison each slot: [`push_slot`](Self::push_slot)).
    ///
    /// # Safety
    ///
    /// The shared contract on [`Slab`]; every slot of `slots` is a slot of
    /// this slab that is handed out, each once, reached through a pointer
    /// to the whole page, and no one uses any of them after this call.
    #[inline]
    pub(crate) unsafe fn push_run(self, slots: &[NonNull<u8>], geo: &SlabGeometry) {
        // SAFETY: the caller upholds the shared contract.
        let state = unsafe { self.state() };
        if state.free.out() == slots.len() {
            // The last slots back: as in `push_slot`, the slab starts over
            // from its run, with no link written or followed.
            for &slot in slots {
                poison::forbid(self.0.with_addr(slot.addr()).cast::<u8>(), geo.slot_size);
            }
            state.free.take_back_rest(slots.len());
            return;
        }
        let paged = |slot: &NonNull<u8>| self.0.with_addr(slot.addr()).cast::<u8>();
        // SAFETY: each slot is ours again, at least a pointer in size and
        // aligned for one (slots are), reached with the page's provenance,
        // each once; no one uses them.
        unsafe { state.free.push_each(slots.iter().map(paged)) };
        // Off limits once their links are written (sanitizer builds).
        for slot in slots {
            poison::forbid(paged(slot), geo.slot_size);
        }
    }
}

/// The byte range `start..end` of a slot being freed, as two pieces (a
/// slab's link and poison, a magazine's poison): the
/// part below `guarded` through `slot` (the caller's pointer, entitled to
/// its object's bytes and the only one allowed to touch them while a `Box`
/// is being freed), the rest through `paged` (the same address with the
/// page's provenance). Computes pointers only.
///
/// Inlined so that the copies in [`Slab::push_slot`] see constant lengths
/// when the caller's pointer reaches the whole page: out of line, each free
/// paid a call here and two calls to `memcpy` for one word.
#[inline]
pub(crate) fn split_at_guard(
    slot: NonNull<u8>,
    paged: NonNull<u8>,
    guarded: usize,
    start: usize,
    end: usize,
) -> [(*mut u8, usize); 2] {
    let mid = guarded.clamp(start, end);
    [
        (slot.as_ptr().wrapping_add(start), mid - start),
        (paged.as_ptr().wrapping_add(mid), end - mid),
    ]
}
