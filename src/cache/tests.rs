//! The cache core's list and reserve policy, and the hysteresis of its
//! page give-back, one core at a time; batches (a magazine's refill and
//! overflow) in `batches`.

use core::cell::Cell;
use core::ptr::NonNull;
use std::vec::Vec;

use super::cache_core::{AllocFault, CacheCore};
use super::*;
use crate::checked::OwnerTag;
use crate::error::{AllocError, PageAllocError};
use crate::page_allocator::{GlobalPages, PageAllocator};
use crate::slab::SlabGeometry;

mod batches;

/// Objects in a burst of 64-byte ones (63 slots a slab), and rounds of
/// bursts: fewer under Miri, which interprets every step.
const BURST: usize = if cfg!(miri) { 630 } else { 10_000 };
const ROUNDS: usize = if cfg!(miri) { 3 } else { 50 };

/// The pages a burst of `n` 64-byte objects fills.
const fn pages_for(n: usize) -> usize {
    n.div_ceil(63)
}

/// Global pages, counted as they come and go.
#[derive(Default)]
struct Counted {
    inner: GlobalPages,
    taken: Cell<usize>,
    given_back: Cell<usize>,
}

// SAFETY: forwards both methods to `GlobalPages`, which upholds the contract.
unsafe impl PageAllocator for Counted {
    type PageSize = <GlobalPages as PageAllocator>::PageSize;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        self.taken.set(self.taken.get() + 1);
        self.inner.allocate_page()
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        self.given_back.set(self.given_back.get() + 1);
        // SAFETY: the caller's guarantees, forwarded.
        unsafe { self.inner.deallocate_page(page) }
    }
}

/// A core plus the page source it must always be given, with safe calls.
struct Harness {
    core: CacheCore,
    /// The core's geometry, which the core does not store.
    geometry: SlabGeometry,
    pages: Counted,
    owner: OwnerTag,
}

impl Harness {
    fn new(size: usize, config: CacheConfig) -> Self {
        let geometry = SlabGeometry::new(4096, size, 8).unwrap();
        Self {
            core: CacheCore::new(config, false),
            geometry,
            pages: Counted::default(),
            owner: OwnerTag::new(),
        }
    }

    fn alloc(&mut self) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: `self.pages` is the only page source this core sees.
        match unsafe {
            self.core
                .alloc(&self.pages, &self.owner, &self.geometry, None)
        } {
            Ok(slot) => Ok(slot),
            Err(AllocFault::Refused(error)) => Err(error),
            Err(AllocFault::Misuse(misuse, slot)) => misuse.report(slot),
        }
    }

    /// Callers pass only slots from `alloc` not yet freed.
    fn free(&mut self, slot: NonNull<u8>) {
        // SAFETY: as for `alloc`; the slot is handed out (callers' promise).
        unsafe {
            self.core.free(
                &self.pages,
                &self.owner,
                slot,
                SlotReach::Page,
                &self.geometry,
            )
        }
        .unwrap()
    }

    fn shrink(&mut self) -> usize {
        // SAFETY: as for `alloc`.
        unsafe { self.core.shrink(&self.pages, &self.geometry) }
    }

    fn set_config(&mut self, config: CacheConfig) {
        // SAFETY: as for `alloc`.
        unsafe { self.core.set_config(&self.pages, &self.geometry, config) }
    }

    /// Allocates `n` objects, then frees them oldest first.
    fn fill_and_free(&mut self, n: usize) {
        let slots: Vec<_> = (0..n).map(|_| self.alloc().unwrap()).collect();
        for slot in slots {
            self.free(slot);
        }
    }

    /// Pages taken from the source and given back to it so far.
    fn traffic(&self) -> (usize, usize) {
        (self.pages.taken.get(), self.pages.given_back.get())
    }

    fn stats(&mut self, name: &'static str) -> crate::stats::CacheStats {
        self.core.stats(name, &self.geometry, false)
    }

    fn lists(&mut self) -> (usize, usize, usize) {
        let s = self.stats("test");
        (s.full_slabs, s.partial_slabs, s.empty_slabs)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shrink();
    }
}

#[test]
fn slabs_move_between_lists_as_they_fill_and_empty() {
    let mut h = Harness::new(64, CacheConfig::new());
    let per_slab = 63;
    let first: Vec<_> = (0..per_slab).map(|_| h.alloc().unwrap()).collect();
    assert_eq!(h.lists(), (1, 0, 0), "one full slab");
    let extra = h.alloc().unwrap();
    assert_eq!(h.lists(), (1, 1, 0), "growth by one slab");
    h.free(first[0]);
    assert_eq!(h.lists(), (0, 2, 0), "full -> partial on the first free");
    h.free(extra);
    assert_eq!(h.lists(), (0, 1, 1), "the last free empties a slab");
    for &slot in &first[1..] {
        h.free(slot);
    }
    assert_eq!(h.lists(), (0, 0, 2));
    assert_eq!(h.stats("test").objects_in_use, 0);
}

#[test]
fn eager_empty_slabs_beyond_the_reserve_are_given_back_at_once() {
    let mut h = Harness::new(2048, CacheConfig::new().reserve(1).eager());
    // One object per slab, so every free empties a slab.
    let slots: Vec<_> = (0..5).map(|_| h.alloc().unwrap()).collect();
    assert_eq!(h.core.pages_held(), 5);
    for (i, slot) in slots.into_iter().enumerate() {
        h.free(slot);
        // The first emptied slab is the reserve; each later one goes back
        // with its free.
        assert_eq!(h.core.pages_held(), 5 - i);
        assert_eq!(h.traffic(), (5, i), "free {i}");
    }
    assert_eq!(h.core.pages_held(), 1, "only the reserve is kept");
    assert_eq!(h.shrink(), 1, "shrink gives back the reserve too");
    assert_eq!(h.core.pages_held(), 0);
    assert_eq!(h.traffic(), (5, 5));
}

#[test]
fn eager_fill_free_loop_gives_pages_back_every_round() {
    let mut h = Harness::new(64, CacheConfig::new().eager());
    for round in 1..=ROUNDS.min(5) {
        h.fill_and_free(BURST);
        assert_eq!(h.core.pages_held(), CacheConfig::DEFAULT_RESERVE);
        let (taken, given_back) = h.traffic();
        assert_eq!(taken - given_back, CacheConfig::DEFAULT_RESERVE);
        let pages = pages_for(BURST);
        assert_eq!(given_back, round * (pages - CacheConfig::DEFAULT_RESERVE));
    }
}

#[test]
fn a_fill_free_loop_keeps_its_pages_across_rounds() {
    let mut h = Harness::new(64, CacheConfig::new());
    h.fill_and_free(BURST);
    let pages = h.core.pages_held();
    assert_eq!(pages, pages_for(BURST), "63 slots a slab");
    assert_eq!(h.traffic(), (pages, 0), "nothing given back in round 1");
    for round in 2..=ROUNDS {
        h.fill_and_free(BURST);
        assert_eq!(h.core.pages_held(), pages, "round {round}");
        assert_eq!(h.traffic(), (pages, 0), "round {round}: no page traffic");
    }
    let s = h.stats("t");
    assert_eq!(
        (s.objects_in_use, s.empty_slabs, s.pages),
        (0, pages, pages)
    );
    assert_eq!(h.shrink(), pages, "shrink gives back every one");
    assert_eq!(h.core.pages_held(), 0);
    assert_eq!(h.traffic(), (pages, pages));
}

#[test]
fn a_loop_longer_than_the_decay_keeps_its_pages_too() {
    // Windows of at least 100 frees; a round frees many times as many, and
    // the window stretches to the peak's slots.
    let mut h = Harness::new(64, CacheConfig::new().reserve(0).decay(100));
    let n = 3_000.min(BURST);
    h.fill_and_free(n);
    let pages = h.core.pages_held();
    assert_eq!(pages, pages_for(n));
    for round in 2..=ROUNDS {
        h.fill_and_free(n);
        assert_eq!(h.traffic(), (pages, 0), "round {round}");
    }
}

#[test]
fn pages_go_back_within_two_windows_once_the_workload_shrinks() {
    let decay = 1_000;
    let mut h = Harness::new(64, CacheConfig::new().reserve(0).decay(decay));
    h.fill_and_free(BURST);
    let peak = h.core.pages_held();
    assert_eq!(h.traffic(), (peak, 0), "kept for the next burst");
    // The documented bound: two windows of frees after the last free that
    // needed the pages (at the latest, the last of the burst's), each
    // window `decay` frees or as many as the peak's slots if more.
    let window = decay.max(peak * h.geometry.slots_per_slab);
    // Now one object live for good, and another coming and going in its
    // slab: no retained slab is ever taken again, so only the end of a
    // window gives them back.
    let anchor = h.alloc().unwrap();
    let mut frees = 0;
    while h.core.pages_held() > 1 {
        let slot = h.alloc().unwrap();
        h.free(slot);
        frees += 1;
        assert!(
            frees <= 2 * window,
            "{} pages after {frees} frees",
            h.core.pages_held()
        );
    }
    assert_eq!(h.traffic(), (peak, peak - 1));
    // And it stays small.
    for _ in 0..2 * window {
        let slot = h.alloc().unwrap();
        h.free(slot);
    }
    assert_eq!(h.core.pages_held(), 1);
    assert_eq!(h.traffic(), (peak, peak - 1));
    h.free(anchor);
}

#[test]
fn a_smaller_workload_keeps_only_its_own_peak() {
    let mut h = Harness::new(64, CacheConfig::new().reserve(0).decay(1_000));
    h.fill_and_free(BURST);
    let peak = pages_for(BURST);
    assert_eq!(h.core.pages_held(), peak);
    // Rounds of a third of the size: after two windows, the cache holds
    // what they need and no more.
    let third = BURST / 3;
    for _ in 0..10 {
        h.fill_and_free(third);
    }
    assert_eq!(h.core.pages_held(), pages_for(third));
    let traffic = h.traffic();
    assert_eq!(traffic, (peak, peak - pages_for(third)));
    for _ in 0..10 {
        h.fill_and_free(third);
    }
    assert_eq!(h.traffic(), traffic, "the smaller rounds keep theirs");
}

#[test]
fn retained_slabs_are_taken_after_partial_ones_and_before_new_pages() {
    let mut h = Harness::new(1024, CacheConfig::new().reserve(0));
    assert_eq!(h.geometry.slots_per_slab, 3);
    let slots: Vec<_> = (0..9).map(|_| h.alloc().unwrap()).collect();
    // Empty the first two slabs (retained: the peak was 3), leave the last
    // one with a slot free.
    for &i in &[0, 1, 2, 3, 4, 5, 8] {
        h.free(slots[i]);
    }
    assert_eq!(h.lists(), (0, 1, 2));
    let again = h.alloc().unwrap();
    assert_eq!(again, slots[8], "the partial slab first");
    assert_eq!(h.lists(), (1, 0, 2));
    let more: Vec<_> = (0..6).map(|_| h.alloc().unwrap()).collect();
    assert_eq!(h.lists(), (3, 0, 0));
    assert_eq!(h.traffic(), (3, 0), "no new page while one was retained");
    for slot in more.into_iter().chain([again, slots[6], slots[7]]) {
        h.free(slot);
    }
}

#[test]
fn retained_pages_count_against_the_page_limit_and_serve_under_it() {
    let mut h = Harness::new(2048, CacheConfig::new().reserve(0).page_limit(3));
    // One slot a slab.
    let slots: Vec<_> = (0..3).map(|_| h.alloc().unwrap()).collect();
    assert_eq!(h.alloc(), Err(AllocError::PageLimit { limit: 3 }));
    for slot in slots {
        h.free(slot);
    }
    assert_eq!(h.core.pages_held(), 3, "retained");
    let again: Vec<_> = (0..3).map(|_| h.alloc().unwrap()).collect();
    assert_eq!(h.traffic(), (3, 0));
    assert_eq!(h.alloc(), Err(AllocError::PageLimit { limit: 3 }));
    for slot in again {
        h.free(slot);
    }
}

#[test]
fn a_new_config_gives_back_what_it_does_not_keep() {
    let mut h = Harness::new(64, CacheConfig::new());
    h.fill_and_free(1_000);
    assert_eq!(h.core.pages_held(), 16);
    h.set_config(CacheConfig::new().reserve(5));
    assert_eq!(h.lists(), (0, 0, 5), "retained slabs join the reserve");
    assert_eq!(h.traffic(), (16, 11));
    h.set_config(CacheConfig::new().reserve(0).eager());
    assert_eq!(h.core.pages_held(), 0);
    h.fill_and_free(1_000);
    assert_eq!(h.core.pages_held(), 0, "eager now");
}

#[test]
fn the_reserve_is_reused_before_new_pages() {
    let mut h = Harness::new(2048, CacheConfig::new());
    let a = h.alloc().unwrap();
    h.free(a);
    assert_eq!(h.lists(), (0, 0, 1));
    let b = h.alloc().unwrap();
    assert_eq!(a, b, "the empty slab's slot comes back");
    assert_eq!(h.core.pages_held(), 1);
    h.free(b);
}

#[test]
fn shrink_and_a_lower_reserve_find_empty_slabs_among_partial_ones() {
    let mut h = Harness::new(1024, CacheConfig::new().reserve(3));
    assert_eq!(h.geometry.slots_per_slab, 3);
    let slots: Vec<_> = (0..9).map(|_| h.alloc().unwrap()).collect();
    assert_eq!(h.lists(), (3, 0, 0));
    // Empty the first and last slab, leave the middle one partial.
    for &i in &[0, 1, 2, 6, 7, 8, 4] {
        h.free(slots[i]);
    }
    assert_eq!(h.lists(), (0, 1, 2));
    // SAFETY: `h.pages` is the core's page source.
    unsafe {
        h.core
            .set_config(&h.pages, &h.geometry, CacheConfig::new().reserve(1))
    };
    assert_eq!(h.lists(), (0, 1, 1), "a lower reserve gives back at once");
    assert_eq!(h.shrink(), 1);
    assert_eq!(h.lists(), (0, 1, 0));
    h.free(slots[3]);
    h.free(slots[5]);
    assert_eq!(
        h.lists(),
        (0, 0, 1),
        "the reserve of one keeps the last slab"
    );
}

#[test]
fn the_page_limit_stops_growth_with_an_error() {
    let mut h = Harness::new(2048, CacheConfig::new().page_limit(2));
    let a = h.alloc().unwrap();
    let b = h.alloc().unwrap();
    assert_eq!(h.alloc(), Err(AllocError::PageLimit { limit: 2 }));
    h.free(a);
    let c = h
        .alloc()
        .expect("a freed slot is usable again under the cap");
    h.free(b);
    h.free(c);
}

#[test]
fn stats_balance() {
    let mut h = Harness::new(24, CacheConfig::new());
    let slots: Vec<_> = (0..1000).map(|_| h.alloc().unwrap()).collect();
    let s = h.stats("t");
    assert_eq!(s.objects_in_use, 1000);
    assert_eq!(s.objects_in_use + s.free_slots, s.pages * s.slots_per_slab);
    let first_slot = h.geometry.first_slot;
    // 48 bytes of header, 24 of bitmap (168 slots), no padding.
    assert!(
        first_slot <= 72,
        "header (and checked bitmap) within 72 bytes"
    );
    assert_eq!(s.header_bytes, s.pages * first_slot);
    let pages = s.pages;
    for slot in slots {
        h.free(slot);
    }
    let s = h.stats("t");
    assert_eq!(
        (s.objects_in_use, s.empty_slabs, s.pages),
        (0, pages, pages),
        "every page kept for the recent peak"
    );
    assert_eq!(s.objects_in_use + s.free_slots, s.pages * s.slots_per_slab);
}

#[test]
fn a_core_under_the_default_configuration_is_all_zeros() {
    // What lets a `static` typed cache live in a firmware's zeroed RAM
    // (`.bss`): the core `new` builds is the one zeroed memory holds.
    // SAFETY: every field of a core is an integer, a bool or an `Option`
    // of a slab pointer: all zeros is a valid core.
    let zeroed: CacheCore = unsafe { core::mem::zeroed() };
    let built = CacheCore::new(CacheConfig::new(), false);
    assert_eq!(std::format!("{zeroed:?}"), std::format!("{built:?}"));
    assert_eq!(zeroed.config(), CacheConfig::new());
    // And it works as one: the hysteresis's clock included.
    let mut h = Harness::new(64, CacheConfig::new());
    h.core = zeroed;
    h.fill_and_free(3 * 63);
    assert_eq!(
        h.core.pages_held(),
        3,
        "the burst's pages kept for the next"
    );
    h.fill_and_free(3 * 63);
    assert_eq!(h.traffic(), (3, 0));
}
