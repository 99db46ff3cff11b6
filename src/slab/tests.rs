//! The slab's own invariants, one page at a time.

use core::mem::size_of;
use core::ptr::NonNull;

use super::*;
use crate::checked::Misuse;
use crate::page_allocator::{GlobalPages, PageAllocator};

const PAGE: usize = 4096;
const OWNER: u32 = 0x5EED_0001;

/// A slab on its own page, alive for one test, with safe accessors.
struct Live {
    slab: Slab,
    geo: SlabGeometry,
    pages: GlobalPages,
}

impl Live {
    fn new(geo: SlabGeometry) -> Self {
        let pages = GlobalPages::new();
        let page = pages.allocate_page().unwrap();
        // SAFETY: a fresh 4 KiB page, aligned to its size, used by no one else.
        let slab = unsafe { Slab::init(page, &geo, OWNER) };
        Self { slab, geo, pages }
    }

    /// A slot handed to a user, as the cache hands one out.
    fn pop(&self) -> Option<NonNull<u8>> {
        // SAFETY: the slab is live until `drop`, and `&self` is the only user.
        let slot = unsafe { self.slab.pop_slot(&self.geo) }?;
        // SAFETY: a slot of this live slab, handed to a user now.
        unsafe { self.slab.set_held(slot, &self.geo) };
        Some(slot)
    }

    /// Whether a user held `slot`, which leaves their hands now (a free
    /// into a magazine).
    fn let_go(&self, slot: NonNull<u8>) -> bool {
        // SAFETY: a slot of this live slab in every test.
        unsafe { self.slab.clear_held(slot, &self.geo) }
    }

    /// A user's free of `slot`, straight to the slab, as the cache frees one.
    fn free(&self, slot: NonNull<u8>) {
        assert_eq!(self.check(slot, &self.geo), Ok(()));
        self.push(slot);
    }

    /// Callers pass only slots they popped and did not push back, out of
    /// their user's hands (`check`, `let_go`) in checked builds.
    fn push(&self, slot: NonNull<u8>) {
        // SAFETY: as for `pop`; the slot is handed out (callers' promise).
        unsafe { self.slab.push_slot(slot, &self.geo, usize::MAX) }
    }

    fn in_use(&self) -> usize {
        // SAFETY: as for `pop`.
        unsafe { self.slab.in_use() }
    }

    fn check(&self, slot: NonNull<u8>, geo: &SlabGeometry) -> Result<(), Misuse> {
        // SAFETY: the page is readable, and `slot` lies in it in every test.
        unsafe { Slab::containing(slot, PAGE).check_free(slot, geo, OWNER) }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // SAFETY: the page came from `pages` and the slab is done with.
        unsafe { self.pages.deallocate_page(self.slab.page()) };
    }
}

#[test]
fn header_is_small() {
    assert!(size_of::<SlabHeader>() <= 48);
    let geo = SlabGeometry::new(PAGE, 64, 64).unwrap();
    assert_eq!(geo.first_slot, 64);
    assert_eq!(
        geo.slots_per_slab, 63,
        "at 64-byte objects 63 of 64 slots hold objects"
    );
}

#[test]
fn geometry_rounds_slots_to_alignment_and_pointer_size() {
    let tiny = SlabGeometry::new(PAGE, 1, 1).unwrap();
    assert_eq!(tiny.slot_size, size_of::<usize>());
    let odd = SlabGeometry::new(PAGE, 24, 8).unwrap();
    assert_eq!(odd.slot_size, 24);
    assert_eq!(odd.first_slot % 8, 0);
    let aligned = SlabGeometry::new(PAGE, 8, 256).unwrap();
    assert_eq!(aligned.slot_size, 256);
    assert_eq!(aligned.first_slot % 256, 0);
    assert_eq!(aligned.slots_per_slab, 15);
    for size in [8, 16, 24, 100, 1000, 2000, 4000] {
        let g = SlabGeometry::new(PAGE, size, 8).unwrap();
        assert!(g.first_slot >= size_of::<SlabHeader>());
        assert!(
            g.end() <= PAGE,
            "slots stay inside the page for size {size}"
        );
        assert!(g.slots_per_slab >= 1);
    }
}

#[test]
fn geometry_rejects_what_cannot_fit() {
    assert_eq!(
        SlabGeometry::new(PAGE, PAGE, 8),
        Err(GeometryError::TooLarge)
    );
    assert_eq!(
        SlabGeometry::new(PAGE, PAGE - 8, 8),
        Err(GeometryError::TooLarge)
    );
    assert_eq!(
        SlabGeometry::new(PAGE, 8, 2 * PAGE),
        Err(GeometryError::AlignTooLarge)
    );
    // One object aligned to half the page: the header takes the first half.
    assert_eq!(
        SlabGeometry::new(PAGE, 8, PAGE / 2).unwrap().slots_per_slab,
        1
    );
}

#[test]
fn slots_come_in_address_order_then_lifo() {
    let live = Live::new(SlabGeometry::new(PAGE, 32, 8).unwrap());
    let a = live.pop().unwrap();
    let b = live.pop().unwrap();
    let base = live.slab.page().as_ptr().addr();
    assert_eq!(a.as_ptr().addr() - base, live.geo.first_slot);
    assert_eq!(b.as_ptr().addr() - a.as_ptr().addr(), 32);
    assert_eq!(live.in_use(), 2);
    live.free(a);
    assert_eq!(live.in_use(), 1);
    assert_eq!(
        live.pop(),
        Some(a),
        "the slot freed last is handed out first"
    );
}

#[test]
fn a_slab_hands_out_each_slot_once_until_full() {
    let live = Live::new(SlabGeometry::new(PAGE, 64, 64).unwrap());
    let mut seen = std::collections::BTreeSet::new();
    while let Some(slot) = live.pop() {
        assert_eq!(slot.as_ptr().addr() % 64, 0);
        assert!(seen.insert(slot.as_ptr().addr()), "slot handed out twice");
        assert_eq!(Slab::containing(slot, PAGE), live.slab);
    }
    assert_eq!(seen.len(), live.geo.slots_per_slab);
    assert_eq!(live.in_use(), live.geo.slots_per_slab);
}

#[test]
#[cfg_attr(
    not(any(debug_assertions, feature = "checked")),
    ignore = "checked builds only"
)]
fn check_free_names_each_misuse() {
    let live = Live::new(SlabGeometry::new(PAGE, 32, 8).unwrap());
    let geo = live.geo;
    let a = live.pop().unwrap();
    let inside = a.map_addr(|x| x.checked_add(8).unwrap());
    assert_eq!(
        live.check(inside, &geo),
        Err(Misuse::ForeignPointer),
        "not a slot start"
    );
    let later = a.map_addr(|x| x.checked_add(64).unwrap());
    assert_eq!(
        live.check(later, &geo),
        Err(Misuse::ForeignPointer),
        "never handed out"
    );
    let other = SlabGeometry::new(PAGE, 64, 8).unwrap();
    assert_eq!(
        live.check(a, &other),
        Err(Misuse::WrongSizeClass {
            actual: 32,
            claimed: 64
        })
    );
    // The misuses above changed nothing: the free goes through, once.
    assert_eq!(live.check(a, &geo), Ok(()));
    live.push(a);
    assert_eq!(live.check(a, &geo), Err(Misuse::DoubleFree));
}

#[test]
#[cfg_attr(
    not(any(debug_assertions, feature = "checked")),
    ignore = "checked builds only"
)]
fn the_bitmap_catches_a_second_free_wherever_the_first_went() {
    let live = Live::new(SlabGeometry::new(PAGE, 32, 8).unwrap());
    let geo = live.geo;
    let (a, b) = (live.pop().unwrap(), live.pop().unwrap());
    // `a` freed into a magazine (no lock): out of its user's hands once.
    assert!(live.let_go(a));
    assert!(!live.let_go(a), "a second free into a magazine");
    assert_eq!(
        live.check(a, &geo),
        Err(Misuse::DoubleFree),
        "a second free straight to the slab"
    );
    // Handed from the magazine to a user again, then freed to the slab.
    // SAFETY: a slot of this live slab, in no user's hands.
    unsafe { live.slab.set_held(a, &geo) };
    assert_eq!(live.check(a, &geo), Ok(()));
    live.push(a);
    assert!(
        !live.let_go(a),
        "a second free into a magazine, after the slab"
    );
    // `b` rests in a magazine: in use as far as the slab knows.
    assert!(live.let_go(b));
    // SAFETY: the slab is live and `&live` its only user.
    let used = unsafe { live.slab.occupancy(&geo) };
    assert_eq!(used.count(), 1);
    assert!(!used.contains(0), "back on the free list");
    assert!(used.contains(1), "resting in a magazine");
    assert!(!used.contains(2), "never handed out");
}
