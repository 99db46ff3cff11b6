//! The shape of every slab of one cache: slot size, where slot 0 starts,
//! how many slots.
//!
//! # Slot placement
//!
//! Slot 0 starts after the header and the checked builds' bitmap, rounded
//! up to the slot's alignment *and* to the largest power of two that
//! divides the slot size, up to a cache line ([`CACHE_LINE`]). So a 64-byte
//! slot starts on a line and never straddles two (it started at offset 48
//! before, and every 64-byte object touched two lines: measured in the
//! README, "Slot placement"), a 32-byte slot sits in one half-line, and a
//! 48-byte slot (16 × 3) on a 16-byte boundary. For power-of-two slots this
//! costs no slot per page: the header rounds up to at most one slot, which
//! the division of the page by the slot size leaves over anyway.
//!
//! Colouring (shifting slot 0 by a different multiple of the line in each
//! slab, so that slot `i` of every slab does not map to the same cache set)
//! was considered and left out: a 4 KiB page cut into power-of-two slots
//! leaves no spare line to shift by, and slabs of other sizes already start
//! their slots at different line offsets.

use core::mem::{align_of, size_of};
use core::ptr::NonNull;

use super::SlabHeader;

/// Bits in a word of the handed-out bitmap.
pub(super) const WORD_BITS: usize = usize::BITS as usize;

/// The shape of every slab in one cache, computed once (at compile time for
/// the typed front) and passed to each slab operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlabGeometry {
    /// Bytes in a page; a power of two.
    pub(crate) page_size: usize,
    /// Bytes from one slot to the next; a multiple of the slot alignment.
    pub(crate) slot_size: usize,
    /// Offset of slot 0 from the page base: header, bitmap and padding.
    pub(crate) first_slot: usize,
    /// Slots per slab; at least 1.
    pub(crate) slots_per_slab: usize,
}

/// Why a geometry cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GeometryError {
    /// The object's alignment exceeds the page size.
    AlignTooLarge,
    /// Not one object fits in a page after the header.
    TooLarge,
}

impl SlabGeometry {
    /// The geometry for objects of `size` bytes aligned to `align` (a power
    /// of two) in pages of `page_size` bytes.
    pub(crate) const fn new(
        page_size: usize,
        size: usize,
        align: usize,
    ) -> Result<Self, GeometryError> {
        let slot_align = max(align, align_of::<NonNull<u8>>());
        if slot_align > page_size {
            return Err(GeometryError::AlignTooLarge);
        }
        let slot_size = round_up(max(size, size_of::<NonNull<u8>>()), slot_align);
        if slot_size > page_size {
            return Err(GeometryError::TooLarge);
        }
        // The bitmap is sized for the most slots that could follow a bare
        // header; the real count can only be smaller. Its room is reserved in
        // every build, so that the geometry — and whether a type fits at
        // all — is the same with and without checks; only checked builds
        // write to it.
        let most_slots = (page_size - size_of::<SlabHeader>()) / slot_size;
        let bitmap = most_slots.div_ceil(WORD_BITS) * size_of::<usize>();
        // The largest power of two dividing the slot size, up to a line.
        let placement = max(
            slot_align,
            min(slot_size & slot_size.wrapping_neg(), CACHE_LINE),
        );
        let first_slot = round_up(size_of::<SlabHeader>() + bitmap, placement);
        if first_slot >= page_size {
            // Only an alignment of at least half the page pushes slot 0 out.
            return Err(GeometryError::AlignTooLarge);
        }
        if first_slot + slot_size > page_size {
            return Err(GeometryError::TooLarge);
        }
        Ok(Self {
            page_size,
            slot_size,
            first_slot,
            slots_per_slab: (page_size - first_slot) / slot_size,
        })
    }

    /// Offset just past the last slot.
    pub(crate) const fn end(&self) -> usize {
        self.first_slot + self.slots_per_slab * self.slot_size
    }

    /// Words of the handed-out bitmap.
    pub(crate) const fn bitmap_words(&self) -> usize {
        self.slots_per_slab.div_ceil(WORD_BITS)
    }
}

/// The cache line slots are placed against (64 bytes on the x86-64 and
/// Arm cores this crate is measured on).
pub(crate) const CACHE_LINE: usize = 64;

const fn min(a: usize, b: usize) -> usize {
    if a < b { a } else { b }
}

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

const fn round_up(n: usize, align: usize) -> usize {
    (n + align - 1) & !(align - 1)
}
