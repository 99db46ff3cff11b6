//! The cache core's list and reserve policy, one core at a time.

use core::ptr::NonNull;
use std::vec::Vec;

use super::cache_core::{AllocFault, CacheCore};
use super::*;
use crate::checked::OwnerTag;
use crate::error::AllocError;
use crate::page_allocator::GlobalPages;
use crate::slab::SlabGeometry;

/// A core plus the page source it must always be given, with safe calls.
struct Harness {
    core: CacheCore,
    pages: GlobalPages,
    owner: OwnerTag,
}

impl Harness {
    fn new(size: usize, config: CacheConfig) -> Self {
        let geometry = SlabGeometry::new(4096, size, 8).unwrap();
        Self {
            core: CacheCore::new(geometry, config, false),
            pages: GlobalPages::new(),
            owner: OwnerTag::new(),
        }
    }

    fn alloc(&mut self) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: `self.pages` is the only page source this core sees.
        match unsafe { self.core.alloc(&self.pages, &self.owner) } {
            Ok(slot) => Ok(slot),
            Err(AllocFault::Refused(error)) => Err(error),
            Err(AllocFault::Misuse(misuse, slot)) => misuse.report(slot),
        }
    }

    /// Callers pass only slots from `alloc` not yet freed.
    fn free(&mut self, slot: NonNull<u8>) {
        // SAFETY: as for `alloc`; the slot is handed out (callers' promise).
        unsafe {
            self.core
                .free(&self.pages, &self.owner, slot, SlotReach::Page)
        }
        .unwrap()
    }

    fn shrink(&mut self) -> usize {
        // SAFETY: as for `alloc`.
        unsafe { self.core.shrink(&self.pages) }
    }

    fn lists(&self) -> (usize, usize, usize) {
        let s = self.core.stats("test");
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
    assert_eq!(h.core.stats("test").objects_in_use, 0);
}

#[test]
fn empty_slabs_beyond_the_reserve_are_given_back() {
    let mut h = Harness::new(2048, CacheConfig::new().reserve(1));
    // One object per slab, so every free empties a slab.
    let slots: Vec<_> = (0..5).map(|_| h.alloc().unwrap()).collect();
    assert_eq!(h.core.pages_held(), 5);
    for slot in slots {
        h.free(slot);
    }
    assert_eq!(h.core.pages_held(), 1, "only the reserve is kept");
    assert_eq!(h.shrink(), 1, "shrink gives back the reserve too");
    assert_eq!(h.core.pages_held(), 0);
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
    assert_eq!(h.core.geometry().slots_per_slab, 3);
    let slots: Vec<_> = (0..9).map(|_| h.alloc().unwrap()).collect();
    assert_eq!(h.lists(), (3, 0, 0));
    // Empty the first and last slab, leave the middle one partial.
    for &i in &[0, 1, 2, 6, 7, 8, 4] {
        h.free(slots[i]);
    }
    assert_eq!(h.lists(), (0, 1, 2));
    // SAFETY: `h.pages` is the core's page source.
    unsafe { h.core.set_config(&h.pages, CacheConfig::new().reserve(1)) };
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
    let s = h.core.stats("t");
    assert_eq!(s.objects_in_use, 1000);
    assert_eq!(s.objects_in_use + s.free_slots, s.pages * s.slots_per_slab);
    let first_slot = h.core.geometry().first_slot;
    assert!(
        first_slot <= 64,
        "header (and checked bitmap) within 64 bytes"
    );
    assert_eq!(s.header_bytes, s.pages * first_slot);
    for slot in slots {
        h.free(slot);
    }
    let s = h.core.stats("t");
    assert_eq!(
        (s.objects_in_use, s.empty_slabs),
        (0, CacheConfig::DEFAULT_RESERVE)
    );
}
