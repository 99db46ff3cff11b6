//! How a slot rests in a magazine, and what checked builds learn from it.
//!
//! # The resting pattern (checked builds)
//!
//! A slot that rests in a magazine — any thread's, or the orphans of an
//! exited one — holds in its first word its *mark*, its own address mixed
//! with [`MARK_KEY`], and [`POISON`] in every byte after it. A slot free in
//! its slab holds instead its free-list link, then poison (see `slab`).
//! Slots in a user's hands hold the user's bytes.
//!
//! That makes a double free visible at the free, whichever thread made the
//! first one:
//!
//! - a slot that bears its mark and poison rests in some magazine: freeing
//!   it again is a double free. A value of the user's would have to hold its
//!   own address mixed with the key, then poison to the last byte, to be
//!   taken for one; no realistic value does.
//! - a slot whose bytes after the first word are poison and whose first
//!   word could be a link (null, or an address in its own page) may be free
//!   in its slab: the slab's bitmap, under the lock, says for sure (and only
//!   then is the lock taken).
//!
//! Both reads need the whole slot: a free through `GlobalAlloc`, whose
//! pointer may reach only the object (a `Box` being freed), is not checked
//! this way.
//!
//! When the slot leaves the magazine, a changed mark or poison is a write
//! after free, reported with the offset of the first changed byte; then the
//! mark is cleared, so that a slot freed untouched (a constructor that
//! panicked) or a value that writes only part of the first word is never
//! taken for a resting slot.
//!
//! [`POISON`]: crate::checked::poison::POISON

use core::mem::size_of;
use core::ptr::NonNull;

use crate::checked::poison;
use crate::checked::{CHECKED, Misuse};
use crate::slab::split_at_guard;

/// Mixed into a resting slot's address to make its mark: odd bytes, none of
/// them the poison byte, so a mark is neither poison nor a plausible link.
const MARK_KEY: usize = usize::MAX / 0xFF * 0x3D;

const WORD: usize = size_of::<usize>();

/// The mark of the slot at `slot`.
#[inline]
fn mark_of(slot: NonNull<u8>) -> [u8; WORD] {
    (slot.as_ptr().addr() ^ MARK_KEY).to_ne_bytes()
}

/// Readies a slot of `size` bytes to rest in a magazine: marked and
/// poisoned in checked builds, off limits for AddressSanitizer.
///
/// # Safety
///
/// `slot` is `size` bytes that its cache handed out and no one uses.
#[inline]
pub(crate) unsafe fn poison_cached(slot: NonNull<u8>, size: usize) {
    // SAFETY: the caller's guarantees; the whole slot through `slot`.
    unsafe { poison_freed(slot, slot, size, usize::MAX) };
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
        let mark = mark_of(paged);
        let mut offset = 0;
        for (start, count) in split_at_guard(object, paged, guarded, 0, size) {
            let marked = WORD.saturating_sub(offset).min(count);
            let from = mark[offset.min(WORD)..].as_ptr();
            // SAFETY: both pieces lie inside the slot, which is ours again,
            // each reached through a pointer entitled to it (the caller's
            // guarantees); the first `marked` bytes of the piece are below
            // `WORD`, and `from` has that many left.
            unsafe { start.copy_from_nonoverlapping(from, marked) };
            // SAFETY: as above: the rest of the piece.
            unsafe { poison::fill(start.wrapping_add(marked), count - marked) };
            offset += count;
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
        if let Some(offset) = unsafe { first_unlike_rest(slot, size) } {
            return Err(Misuse::WriteAfterFree { offset });
        }
        // The mark goes, so that a slot freed untouched (a constructor that
        // panicked) or a value that writes part of the first word is never
        // taken for a resting slot.
        // SAFETY: the caller's guarantees: ours, at least a word, aligned.
        unsafe { slot.cast::<usize>().write(0) };
    }
    Ok(())
}

/// Whether a slot being freed through a pointer to all of it already rests
/// in a magazine (checked builds; `false` otherwise): a double free.
///
/// # Safety
///
/// `slot` is `size` bytes of a slab's slot, readable.
#[inline]
pub(crate) unsafe fn rests_cached(slot: NonNull<u8>, size: usize) -> bool {
    // SAFETY: the caller's guarantees.
    CHECKED && unsafe { first_unlike_rest(slot, size) }.is_none()
}

/// Whether a slot being freed through a pointer to all of it may be free in
/// its slab (checked builds; `false` otherwise): poison after its first
/// word, and a first word that could be a free-list link (null, or in the
/// slot's own page of `page_size` bytes). Only a hint: the slab's bitmap
/// decides.
///
/// # Safety
///
/// As for [`rests_cached`].
#[inline]
pub(crate) unsafe fn may_be_free_in_slab(slot: NonNull<u8>, size: usize, page_size: usize) -> bool {
    if !CHECKED {
        return false;
    }
    // SAFETY: the caller's guarantees: a slot is at least a word, aligned.
    let link = unsafe { slot.cast::<usize>().read() };
    let page = slot.as_ptr().addr() & !(page_size - 1);
    (link == 0 || link & !(page_size - 1) == page)
        // SAFETY: as above; the rest of the slot.
        && unsafe { poison::first_changed(slot.as_ptr().wrapping_add(WORD), size - WORD) }.is_none()
}

/// The offset of the first byte of the slot that differs from the resting
/// pattern (mark, then poison), if any.
///
/// # Safety
///
/// As for [`rests_cached`].
unsafe fn first_unlike_rest(slot: NonNull<u8>, size: usize) -> Option<usize> {
    let mark = mark_of(slot);
    // SAFETY: the caller's guarantees: a slot is at least a word.
    let first = unsafe { slot.cast::<[u8; WORD]>().read() };
    if let Some(at) = first.iter().zip(mark).position(|(&b, m)| b != m) {
        return Some(at);
    }
    // SAFETY: as above; the rest of the slot.
    unsafe { poison::first_changed(slot.as_ptr().wrapping_add(WORD), size - WORD) }
        .map(|at| at + WORD)
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;

    #[test]
    fn a_resting_slot_is_recognised_and_a_change_named_at_its_offset() {
        if !CHECKED {
            return;
        }
        let mut words = [0usize; 9];
        let slot = NonNull::from(&mut words).cast::<u8>();
        let size = 9 * WORD;
        // SAFETY: the array is ours, `size` bytes, aligned.
        unsafe { poison_cached(slot, size) };
        // SAFETY: as above.
        assert!(unsafe { rests_cached(slot, size) });
        // SAFETY: as above.
        assert!(!unsafe { may_be_free_in_slab(slot, size, 4096) });
        let step = if cfg!(miri) { 7 } else { 1 };
        for offset in (0..size).step_by(step) {
            // SAFETY: inside the array.
            let byte = unsafe { slot.add(offset) };
            // SAFETY: as above.
            let old = unsafe { byte.read() };
            // SAFETY: as above.
            unsafe { byte.write(old ^ 1) };
            // SAFETY: as above.
            assert_eq!(unsafe { first_unlike_rest(slot, size) }, Some(offset));
            // SAFETY: as above.
            assert!(!unsafe { rests_cached(slot, size) });
            // SAFETY: as above.
            unsafe { byte.write(old) };
        }
        // A free-list link then poison: free in the slab, maybe.
        // SAFETY: as above.
        unsafe { slot.cast::<usize>().write(0) };
        // SAFETY: as above.
        assert!(unsafe { may_be_free_in_slab(slot, size, 4096) });
    }

    #[test]
    fn a_guarded_free_writes_the_same_pattern_in_two_pieces() {
        if !CHECKED {
            return;
        }
        for guarded in [1, 3, WORD, WORD + 5, usize::MAX] {
            let mut words = [0usize; 4];
            let slot = NonNull::from(&mut words).cast::<u8>();
            // SAFETY: the array is ours, 32 bytes, aligned; one pointer.
            unsafe { poison_freed(slot, slot, 4 * WORD, guarded) };
            // SAFETY: as above.
            assert!(unsafe { rests_cached(slot, 4 * WORD) }, "guarded {guarded}");
        }
    }
}
