//! Batches of slots, as a magazine's refill takes them and its overflow
//! gives them back: runs of one slab's slots, slabs emptied and given back,
//! cores that keep their pages.

use core::ptr::NonNull;
use std::vec::Vec;

use super::*;

impl Harness {
    /// Up to `n` slots for a magazine, taken in batches as a refill takes
    /// them.
    fn take(&mut self, n: usize) -> Vec<NonNull<u8>> {
        let mut slots = Vec::new();
        while slots.len() < n {
            let mut batch = [NonNull::dangling(); 32];
            let want = (n - slots.len()).min(batch.len());
            // SAFETY: as for `alloc`.
            let taken = match unsafe {
                self.core
                    .alloc_batch(&self.pages, &self.owner, &self.geometry, &mut batch[..want])
            } {
                Ok(taken) => taken,
                Err(fault) => panic!("{fault:?}"),
            };
            slots.extend_from_slice(&batch[..taken]);
        }
        slots
    }

    /// Gives `slots`, taken by `take` and not given back since, back in
    /// one batch, as a magazine's overflow does.
    fn give(&mut self, slots: &[NonNull<u8>]) {
        // SAFETY: as for `alloc`; the slots rest with the caller, each once.
        unsafe {
            self.core
                .free_batch(&self.pages, &self.owner, &self.geometry, slots, true)
        }
        .unwrap();
    }
}

#[test]
fn a_batch_in_runs_of_several_slabs_goes_back_with_each_slab_right() {
    let mut h = Harness::new(64, CacheConfig::new().reserve(3));
    let slots = h.take(3 * 63);
    assert_eq!(h.lists(), (3, 0, 0));
    let (a, rest) = slots.split_at(63);
    let (b, c) = rest.split_at(63);
    let slab_of = |slot: &NonNull<u8>| slot.addr().get() & !4095;
    assert!(
        a.iter().all(|s| slab_of(s) == slab_of(&a[0])),
        "a slab's slots"
    );
    // Three runs, one slab's split by another's: A, B, then A again.
    let batch: Vec<_> = [&a[..10], &b[..5], &a[10..15]].concat();
    h.give(&batch);
    assert_eq!(h.lists(), (1, 2, 0), "A and B partial, C still full");
    assert_eq!(h.stats("t").objects_in_use, 3 * 63 - 20);
    // The slots handed out next are exactly the ones given back.
    let mut again = h.take(20);
    let mut given = batch.clone();
    again.sort();
    given.sort();
    assert_eq!(again, given);
    assert_eq!(h.lists(), (3, 0, 0));
    // Everything back, in batches of 16 that interleave the three slabs.
    let mut mixed = Vec::new();
    for i in 0..63 {
        mixed.extend([a[i], b[i], c[i]]);
    }
    for chunk in mixed.chunks(16) {
        h.give(chunk);
    }
    let s = h.stats("t");
    assert_eq!((s.objects_in_use, s.empty_slabs, s.pages), (0, 3, 3));
    // An emptied slab starts over from its first slot, in address order
    // (checked builds keep the free list, whose poison they verify).
    let fresh = h.take(63);
    assert!(
        crate::checked::CHECKED
            || fresh
                .windows(2)
                .all(|w| w[1].addr().get() == w[0].addr().get() + 64),
        "one slab's slots, in address order"
    );
    h.give(&fresh);
}

#[test]
fn a_batch_that_empties_slabs_gives_back_those_beyond_the_reserve() {
    let mut h = Harness::new(64, CacheConfig::new().eager());
    let slots = h.take(4 * 63);
    for chunk in slots.chunks(16) {
        h.give(chunk);
    }
    let s = h.stats("t");
    assert_eq!(s.objects_in_use, 0);
    let (taken, given_back) = h.traffic();
    assert_eq!(taken, 4);
    assert_eq!(
        s.pages,
        taken - given_back,
        "what is held is what was not given back"
    );
    assert!(given_back >= 2, "eager: beyond the reserve, back at once");
}

/// Up to `n` slots of `core` for a magazine, in batches of up to 32 as a
/// per-thread refill takes them: any page source, unlike [`Harness`]'s.
fn take_batches<P: PageAllocator>(
    core: &mut CacheCore,
    pages: &P,
    owner: &OwnerTag,
    geometry: &SlabGeometry,
    n: usize,
) -> Vec<NonNull<u8>> {
    let mut slots = Vec::new();
    while slots.len() < n {
        let mut batch = [NonNull::dangling(); 32];
        let want = (n - slots.len()).min(batch.len());
        // SAFETY: `pages` is the only page source the caller gives `core`.
        match unsafe { core.alloc_batch(pages, owner, geometry, &mut batch[..want]) } {
            Ok(taken) => slots.extend_from_slice(&batch[..taken]),
            Err(fault) => panic!("{fault:?}"),
        }
    }
    slots
}

/// Gives `slots` (from [`take_batches`] on `core`, each once, not given
/// back since) back in one batch, as a magazine's overflow does.
fn give_batch<P: PageAllocator>(
    core: &mut CacheCore,
    pages: &P,
    owner: &OwnerTag,
    geometry: &SlabGeometry,
    slots: &[NonNull<u8>],
    release: bool,
) {
    // SAFETY: as in `take_batches`; the slots rest with the caller.
    unsafe { core.free_batch(pages, owner, geometry, slots, release) }.unwrap();
}

/// A core whose page source keeps its pages counts nothing on its fast
/// paths, and recounts from the slabs' own counts when asked: batches that
/// go back in runs — one slab's split by another's, one emptying a slab,
/// one emptying a full slab at once — must leave each slab's count and
/// list right, and no page may go back before `shrink`.
#[test]
fn a_keep_pages_core_counts_right_after_batches_in_runs() {
    use crate::page_allocator::KeepPages;
    let geometry = SlabGeometry::new(4096, 64, 8).unwrap();
    let pages = KeepPages::new(Counted::default());
    let owner = OwnerTag::new();
    let config = CacheConfig::new().reserve(0).eager();
    let mut core = CacheCore::new(config, false);
    let slots = take_batches(&mut core, &pages, &owner, &geometry, 3 * 63);
    let (a, rest) = slots.split_at(63);
    let (b, c) = rest.split_at(63);
    // A in two runs around a run of B: A ends empty, B partial, C full.
    let batch: Vec<_> = [&a[..10], &b[..5], &a[10..]].concat();
    give_batch(&mut core, &pages, &owner, &geometry, &batch, true);
    let s = core.stats("t", &geometry, true);
    assert_eq!(
        (s.full_slabs, s.partial_slabs, s.empty_slabs),
        (1, 1, 1),
        "{s:?}"
    );
    assert_eq!(s.objects_in_use, 3 * 63 - 68, "{s:?}");
    // C, full, empties in one run; then the rest of B.
    give_batch(&mut core, &pages, &owner, &geometry, c, true);
    give_batch(&mut core, &pages, &owner, &geometry, &b[5..], true);
    let s = core.stats("t", &geometry, true);
    assert_eq!(
        (s.objects_in_use, s.empty_slabs, s.pages),
        (0, 3, 3),
        "{s:?}"
    );
    assert_eq!(pages.get_ref().given_back.get(), 0, "kept, every one");
    // The kept pages serve the next batches: no new page.
    let again = take_batches(&mut core, &pages, &owner, &geometry, 3 * 63);
    assert_eq!(pages.get_ref().taken.get(), 3);
    let s = core.stats("t", &geometry, true);
    assert_eq!((s.full_slabs, s.objects_in_use), (3, 3 * 63), "{s:?}");
    for chunk in again.chunks(32) {
        give_batch(&mut core, &pages, &owner, &geometry, chunk, true);
    }
    // SAFETY: `pages` is the only page source this core sees.
    assert_eq!(unsafe { core.shrink(&pages, &geometry) }, 3);
    assert_eq!(pages.get_ref().given_back.get(), 3);
}

/// Slabs of one slot each: every run of a batch both leaves `full` and
/// empties its slab. Beyond the reserve, each goes straight back.
#[test]
fn a_batch_of_one_slot_slabs_gives_back_all_but_the_reserve() {
    let mut h = Harness::new(2048, CacheConfig::new().reserve(1).eager());
    let slots = h.take(5);
    assert_eq!(h.lists(), (5, 0, 0), "one slot a slab");
    h.give(&slots);
    let s = h.stats("t");
    assert_eq!(
        (s.objects_in_use, s.empty_slabs, s.pages),
        (0, 1, 1),
        "{s:?}"
    );
    assert_eq!(h.traffic(), (5, 4));
}

/// A batch that empties slabs without leave to give pages back lists them
/// as empty, counted; the trim that follows gives back those beyond the
/// reserve.
#[test]
fn a_batch_without_release_keeps_emptied_slabs_counted_until_a_trim() {
    let mut h = Harness::new(64, CacheConfig::new().reserve(1).eager());
    let slots = h.take(3 * 63);
    // Interleaved: each slab's slots in runs of one.
    let mut mixed = Vec::new();
    for i in 0..63 {
        mixed.extend([slots[i], slots[63 + i], slots[126 + i]]);
    }
    for chunk in mixed.chunks(32) {
        give_batch(&mut h.core, &h.pages, &h.owner, &h.geometry, chunk, false);
    }
    let s = h.stats("t");
    assert_eq!(
        (s.objects_in_use, s.empty_slabs, s.pages),
        (0, 3, 3),
        "{s:?}"
    );
    assert_eq!(h.traffic(), (3, 0), "no page back without release");
    // SAFETY: `h.pages` is the only page source this core sees.
    unsafe { h.core.release_empty(&h.pages, 1) };
    let s = h.stats("t");
    assert_eq!((s.empty_slabs, s.pages), (1, 1), "{s:?}");
    assert_eq!(h.traffic(), (3, 2));
}
