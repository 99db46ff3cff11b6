//! Marking free slots, so that a write after free is caught.
//!
//! Two independent mechanisms, both off in plain release builds:
//!
//! - **Checked builds** (feature `checked`, or `debug_assertions`) fill every
//!   freed slot, past its free-list link, with [`POISON`]. When the slot is
//!   about to be handed out again, the slab verifies that the fill is intact
//!   and that the link still points at a free slot of the same slab; a
//!   changed byte is reported as a write after free, with the slot's address
//!   and the offset of the first changed byte. Like SLUB's poisoning, this
//!   catches a stray write late (at reuse) but surely, and costs a fill per
//!   free and a scan per reuse: a debugging aid, not a release-build cost.
//! - **AddressSanitizer builds** (`RUSTFLAGS=-Zsanitizer=address` on
//!   nightly; the build script notices and sets `cfg(minimal_slab_asan)`)
//!   tell the sanitizer that slots not handed out are off limits, so the
//!   first read or write of a freed object is reported on the spot, with a
//!   stack trace, instead of silently reaching a recycled slot. The crate
//!   lifts the mark around its own accesses (handing a slot out) and before
//!   a page goes back to its page source.

use core::ptr::NonNull;

/// The byte a freed slot is filled with in checked builds. Odd, and unlikely
/// as a pointer, a length or a small integer, so stale reads through a
/// dangling pointer stand out in a debugger too.
pub(crate) const POISON: u8 = 0xA5;

/// Tells AddressSanitizer that `len` bytes at `ptr` must not be touched until
/// [`allow`] lifts the mark. Nothing in other builds.
#[inline(always)]
pub(crate) fn forbid(ptr: NonNull<u8>, len: usize) {
    #[cfg(minimal_slab_asan)]
    // SAFETY: marking memory only changes what the sanitizer reports; the
    // range lies in a page this crate owns (every caller passes a slot or a
    // page of its own).
    unsafe {
        asan::__asan_poison_memory_region(ptr.as_ptr().cast_const(), len)
    };
    #[cfg(not(minimal_slab_asan))]
    let _ = (ptr, len);
}

/// Lifts the mark [`forbid`] set on `len` bytes at `ptr`. Nothing in other
/// builds.
#[inline(always)]
pub(crate) fn allow(ptr: NonNull<u8>, len: usize) {
    #[cfg(minimal_slab_asan)]
    // SAFETY: as for `forbid`.
    unsafe {
        asan::__asan_unpoison_memory_region(ptr.as_ptr().cast_const(), len)
    };
    #[cfg(not(minimal_slab_asan))]
    let _ = (ptr, len);
}

#[cfg(minimal_slab_asan)]
mod asan {
    // The sanitizer runtime's public interface (sanitizer/asan_interface.h),
    // linked in by `-Zsanitizer=address`.
    unsafe extern "C" {
        pub(super) fn __asan_poison_memory_region(addr: *const u8, size: usize);
        pub(super) fn __asan_unpoison_memory_region(addr: *const u8, size: usize);
    }
}

/// Fills `len` bytes at `ptr` with [`POISON`].
///
/// # Safety
///
/// The bytes are valid for writes through `ptr` and used by no one else.
#[inline]
pub(crate) unsafe fn fill(ptr: *mut u8, len: usize) {
    // SAFETY: the caller's guarantees.
    unsafe { ptr.write_bytes(POISON, len) }
}

/// The offset of the first of `len` bytes at `ptr` that is not [`POISON`].
///
/// # Safety
///
/// The bytes are valid for reads through `ptr`, and no one writes them
/// meanwhile.
#[inline]
pub(crate) unsafe fn first_changed(ptr: *const u8, len: usize) -> Option<usize> {
    // A word at a time, then the changed word's bytes: a slot is checked at
    // every reuse, and a byte loop is what made debug builds (and Miri)
    // slow there.
    const WORD: usize = size_of::<usize>();
    const POISON_WORD: usize = usize::from_ne_bytes([POISON; WORD]);
    let mut offset = 0;
    while offset + WORD <= len {
        // SAFETY: the caller's guarantees; `offset + WORD <= len`, and the
        // read does not assume alignment.
        let word = unsafe { ptr.wrapping_add(offset).cast::<usize>().read_unaligned() };
        if word != POISON_WORD {
            break;
        }
        offset += WORD;
    }
    // SAFETY: the caller's guarantees; `offset <= len`.
    let rest = unsafe { core::slice::from_raw_parts(ptr.wrapping_add(offset), len - offset) };
    rest.iter()
        .position(|&byte| byte != POISON)
        .map(|at| offset + at)
}

#[cfg(test)]
mod tests {
    use super::{POISON, first_changed};

    #[test]
    fn the_first_changed_byte_is_found_at_every_offset_and_length() {
        let mut bytes = [POISON; 67];
        for len in 0..bytes.len() {
            // SAFETY: `len` bytes of the array, read only.
            assert_eq!(unsafe { first_changed(bytes.as_ptr(), len) }, None);
        }
        // Under Miri, every fifth offset: the same words and tails.
        let step = if cfg!(miri) { 5 } else { 1 };
        for changed in (0..bytes.len()).step_by(step) {
            bytes[changed] = 0;
            for second in (changed + 1..bytes.len().min(changed + 10)).step_by(step) {
                bytes[second] = 1;
                for len in (0..=bytes.len()).step_by(step) {
                    let want = (changed < len).then_some(changed);
                    // SAFETY: as above.
                    assert_eq!(unsafe { first_changed(bytes.as_ptr(), len) }, want);
                }
                bytes[second] = POISON;
            }
            // Unaligned starts too.
            for start in 1..8.min(changed + 1) {
                // SAFETY: the array's bytes from `start` on, read only.
                let got = unsafe {
                    first_changed(bytes.as_ptr().wrapping_add(start), bytes.len() - start)
                };
                assert_eq!(got, Some(changed - start));
            }
            bytes[changed] = POISON;
        }
    }
}
