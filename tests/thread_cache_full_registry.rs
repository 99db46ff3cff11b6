//! More caches alive at once than the registry of per-thread caches has
//! places for: the rest take the locked path. In a test binary of its own,
//! since the registry is per process and the other tests want places.

#![cfg(feature = "std")]

mod common;

use common::{CountingPages, flush_thread_cache};
use minimal_slab::{GlobalPages, SlabCache};

type Pages = CountingPages<GlobalPages>;

#[test]
#[cfg_attr(miri, ignore = "a thousand caches: too slow under Miri")]
fn more_caches_than_registry_places_take_the_locked_path() {
    let pages = Pages::new(GlobalPages::new());
    let caches: Vec<SlabCache<u64, &Pages>> =
        (0..1100).map(|_| SlabCache::new_in(&pages)).collect();
    let boxes: Vec<_> = caches
        .iter()
        .enumerate()
        .map(|(i, c)| c.alloc(i as u64).unwrap())
        .collect();
    assert!(boxes.iter().enumerate().all(|(i, b)| **b == i as u64));
    drop(boxes);
    for cache in &caches {
        flush_thread_cache(cache);
        let s = cache.stats();
        assert_eq!((s.objects_in_use, s.cached_slots), (0, 0));
    }
    drop(caches);
    assert_eq!(pages.outstanding(), 0);
}
