//! `stats()` against what is known without the cache's counters: the slabs
//! `for_each_slab` walks, the pages the page source has out, and the objects
//! the test holds — after every step of random allocations, frees, flushes,
//! shrinks and configuration changes (the eager configuration, no reserve,
//! an unbounded reserve, short windows, page limits), on a page source that
//! gets pages back and on one that keeps them (`KeepPages`), for slabs of
//! many slots, two, and one. Without `std` every free is a single free
//! into the cache, the path whose list moves, page given back and window
//! end share one call.

mod common;

use common::{CountingPages, XorShift};
use minimal_slab::{CacheConfig, CacheStats, KeepPages, PageAllocator, SlabBox, SlabCache};

/// The configurations the steps switch between.
fn config(choice: usize) -> CacheConfig {
    match choice {
        0 => CacheConfig::new(),
        1 => CacheConfig::new().eager(),
        2 => CacheConfig::new().reserve(0),
        3 => CacheConfig::new().reserve(usize::MAX),
        4 => CacheConfig::new().reserve(0).decay(3),
        5 => CacheConfig::new().reserve(1).decay(1),
        6 => CacheConfig::new().page_limit(3),
        _ => CacheConfig::new().eager().reserve(0).page_limit(5),
    }
}

/// Checks the counters of `cache`, whose objects the test holds `held` of,
/// and whose page source has `outstanding` pages out.
fn assert_consistent<T, P: PageAllocator>(
    cache: &SlabCache<T, P>,
    held: usize,
    outstanding: usize,
    when: &str,
) -> CacheStats {
    let stats = cache.stats();
    let mut slabs = Vec::new();
    cache.for_each_slab(|slab| slabs.push(slab.in_use()));
    let per = stats.slots_per_slab;
    let count = |keep: &dyn Fn(usize) -> bool| slabs.iter().filter(|&&n| keep(n)).count();
    assert_eq!(
        stats.pages,
        slabs.len(),
        "{when}: pages against slabs walked"
    );
    assert_eq!(stats.pages, outstanding, "{when}: pages against pages out");
    assert_eq!(stats.empty_slabs, count(&|n| n == 0), "{when}: empty slabs");
    assert_eq!(stats.full_slabs, count(&|n| n == per), "{when}: full slabs");
    assert_eq!(
        stats.partial_slabs,
        count(&|n| n > 0 && n < per),
        "{when}: partial slabs"
    );
    assert_eq!(stats.objects_in_use, held, "{when}: objects in use");
    assert_eq!(
        stats.objects_in_use + stats.cached_slots,
        slabs.iter().sum::<usize>(),
        "{when}: objects in use and cached against the slabs' own counts"
    );
    assert_eq!(
        stats.free_slots + stats.objects_in_use + stats.cached_slots,
        stats.pages * per,
        "{when}: free slots"
    );
    stats
}

/// Random steps on a cache of `T` over `pages`, whose pages out
/// `counting` counts.
fn walk<T, P: PageAllocator>(
    pages: P,
    counting: impl Fn(&P) -> &CountingPages,
    make: fn() -> T,
    seed: u64,
) {
    let steps = if cfg!(miri) { 120 } else { 6_000 };
    let mut rng = XorShift::new(seed);
    let cache: SlabCache<T, P> = SlabCache::with_config(pages, config(rng.below(8)));
    let outstanding = || counting(cache.page_allocator()).outstanding();
    let mut held: Vec<SlabBox<'_, T, P>> = Vec::new();
    for step in 0..steps {
        let roll = rng.below(1000);
        let what;
        if roll < 520 {
            what = "alloc";
            if let Ok(object) = cache.alloc(make()) {
                held.push(object);
            }
        } else if roll < 960 {
            what = "free";
            if !held.is_empty() {
                let i = rng.below(held.len());
                drop(held.swap_remove(i));
            }
        } else if roll < 975 {
            what = "flush";
            cache.flush_thread_cache();
        } else if roll < 985 {
            what = "shrink";
            cache.shrink();
        } else {
            what = "set_config";
            cache.set_config(config(rng.below(8)));
        }
        let when = format!("seed {seed}, step {step} ({what})");
        assert_consistent(&cache, held.len(), outstanding(), &when);
        // Now and then everything goes: every page must come back.
        if rng.below(400) == 0 {
            held.clear();
            cache.shrink();
            let stats = assert_consistent(&cache, 0, outstanding(), &when);
            assert_eq!(stats.pages, 0, "{when}: after freeing all and shrinking");
            assert_eq!(outstanding(), 0, "{when}: pages out after shrinking");
        }
    }
    held.clear();
    cache.shrink();
    let stats = assert_consistent(&cache, 0, outstanding(), "at the end");
    assert_eq!(
        (stats.pages, outstanding()),
        (0, 0),
        "seed {seed}: 100 % back"
    );
}

/// Runs `walk` for objects of `T` on a page source that gets pages back, and
/// on one that keeps them.
fn both_sources<T>(make: fn() -> T) {
    for seed in 1..=if cfg!(miri) { 1 } else { 6 } {
        walk::<T, _>(
            CountingPages::new(Default::default()),
            |pages| pages,
            make,
            seed,
        );
        walk::<T, _>(
            KeepPages::new(CountingPages::new(Default::default())),
            |pages| pages,
            make,
            seed,
        );
    }
}

#[test]
fn stats_match_the_slabs_for_many_slots_a_slab() {
    both_sources(|| [0u64; 25]);
}

#[test]
fn stats_match_the_slabs_for_two_slots_a_slab() {
    both_sources(|| [0u64; 200]);
}

#[test]
fn stats_match_the_slabs_for_one_slot_a_slab() {
    both_sources(|| [0u64; 400]);
}
