//! `KeepPages`: caches that keep every page they take, the compile-time
//! policy for firmware code size, seen from the public API.
//!
//! - A fill-and-empty loop takes its pages once and gives none back,
//!   whatever the configuration's reserve and decay (the typed cache, the
//!   size-class allocator, a local front's flush); `shrink` and a cache's
//!   drop give them all back.
//! - The counts the fast paths no longer keep come out right: a random
//!   workload reads the same `stats` as a cache that gives nothing back by
//!   configuration (`reserve(usize::MAX)`), step after step.
//! - `set_config` keeps the pages too; the page limit still caps them.
//! - The promises pass through the wrappers: `KEEP_PAGES` and
//!   `PAGES_ALIGNED`, on the source, behind `&`, inside `KeepPages`.

mod common;

use std::alloc::Layout;
use std::mem::MaybeUninit;

use common::{CountingPages, XorShift, flush_allocator_thread_cache, flush_thread_cache};
use minimal_slab::typenum::U1024;
use minimal_slab::{
    AllocError, CacheConfig, CacheStats, GlobalPages, KeepPages, NoFallback, PageAllocator,
    RegionPages, SlabAllocator, SlabCache,
};

/// Objects per burst, and bursts: fewer under Miri.
const BURST: usize = if cfg!(miri) { 200 } else { 2_000 };
const ROUNDS: usize = if cfg!(miri) { 2 } else { 5 };

/// 64-byte objects: 63 to a 4 KiB slab.
type Object = [u64; 8];

fn pages_for(objects: usize) -> usize {
    objects.div_ceil(SlabCache::<Object>::SLOTS_PER_SLAB)
}

/// The counts two caches are compared on.
fn counts(s: &CacheStats) -> [usize; 6] {
    [
        s.objects_in_use,
        s.pages,
        s.full_slabs,
        s.partial_slabs,
        s.empty_slabs,
        s.free_slots,
    ]
}

#[test]
fn a_kept_cache_takes_its_pages_once_and_gives_none_back() {
    let source = CountingPages::new(GlobalPages::new());
    // Reserve and decay say "give everything back at once": they do not
    // apply under `KeepPages`.
    let cache: SlabCache<Object, KeepPages<&CountingPages>> = SlabCache::with_config(
        KeepPages::new(&source),
        CacheConfig::new().reserve(0).eager(),
    );
    for round in 0..ROUNDS {
        let objects: Vec<_> = (0..BURST as u64)
            .map(|i| cache.alloc([i; 8]).unwrap())
            .collect();
        let s = cache.stats();
        assert_eq!(s.objects_in_use, BURST, "round {round}");
        assert_eq!(s.pages, pages_for(BURST));
        for (i, object) in objects.into_iter().enumerate() {
            assert_eq!(object[7], i as u64);
        }
        flush_thread_cache(&cache);
        let s = cache.stats();
        assert_eq!(s.objects_in_use, 0);
        assert_eq!(
            (s.pages, s.empty_slabs),
            (pages_for(BURST), pages_for(BURST))
        );
        assert_eq!(
            source.handed_out(),
            pages_for(BURST),
            "taken in round 0 only"
        );
        assert_eq!(source.given_back(), 0, "none given back, round {round}");
    }
    assert_eq!(cache.shrink(), pages_for(BURST));
    assert_eq!(source.outstanding(), 0);
    assert_eq!(cache.stats().pages, 0);

    // A drop gives back every page, partly used ones included.
    let one = cache.alloc([1; 8]).unwrap();
    let many: Vec<_> = (0..BURST as u64)
        .map(|i| cache.alloc([i; 8]).unwrap())
        .collect();
    drop(many);
    std::mem::forget(one); // leaked: its page goes back with the cache
    drop(cache);
    assert_eq!(source.outstanding(), 0);
}

#[test]
fn its_counts_match_a_cache_that_gives_nothing_back() {
    let kept_source = CountingPages::new(GlobalPages::new());
    let kept = SlabCache::<Object, _>::new_in(KeepPages::new(&kept_source));
    let source = CountingPages::new(GlobalPages::new());
    let reference =
        SlabCache::<Object, _>::with_config(&source, CacheConfig::new().reserve(usize::MAX));
    let mut rng = XorShift::new(0x6b65_6570);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let steps = if cfg!(miri) { 300 } else { 20_000 };
    for step in 0..steps {
        // Grow for a while, then shrink, then grow again: slabs fill, empty
        // and fill in every order.
        let grow = (step / 2_000) % 2 == 0;
        if ours.is_empty() || rng.percent(if grow { 70 } else { 30 }) {
            let value = [step as u64; 8];
            ours.push(kept.alloc(value).unwrap());
            theirs.push(reference.alloc(value).unwrap());
        } else {
            let at = rng.below(ours.len());
            let (a, b) = (ours.swap_remove(at), theirs.swap_remove(at));
            assert_eq!(*a, *b);
        }
        if step % 97 == 0 {
            flush_thread_cache(&kept);
            flush_thread_cache(&reference);
            assert_eq!(
                counts(&kept.stats()),
                counts(&reference.stats()),
                "step {step}"
            );
        }
    }
    drop((ours, theirs));
    flush_thread_cache(&kept);
    flush_thread_cache(&reference);
    assert_eq!(counts(&kept.stats()), counts(&reference.stats()));
    assert_eq!(kept_source.given_back(), 0);
    assert_eq!(kept.shrink(), reference.shrink());
    assert_eq!(kept_source.outstanding(), 0);
}

#[test]
fn set_config_keeps_the_pages_and_the_page_limit_still_caps() {
    let source = CountingPages::new(GlobalPages::new());
    let cache = SlabCache::<Object, _>::new_in(KeepPages::new(&source));
    let objects: Vec<_> = (0..3 * 63).map(|i| cache.alloc([i; 8]).unwrap()).collect();
    drop(objects);
    flush_thread_cache(&cache);
    cache.set_config(CacheConfig::new().reserve(0).page_limit(3));
    assert_eq!(cache.stats().pages, 3, "a lower reserve gives nothing back");
    assert_eq!(source.given_back(), 0);
    let objects: Vec<_> = (0..3 * 63).map(|i| cache.alloc([i; 8]).unwrap()).collect();
    let refused = cache.alloc([0; 8]).unwrap_err();
    assert_eq!(refused.error(), AllocError::PageLimit { limit: 3 });
    assert_eq!(source.handed_out(), 3);
    drop(objects);
    flush_thread_cache(&cache);
    assert_eq!(cache.shrink(), 3);
}

#[test]
fn a_size_class_allocator_and_its_local_front_keep_their_pages() {
    let source = CountingPages::new(GlobalPages::new());
    let heap = SlabAllocator::new_in(KeepPages::new(&source), NoFallback);
    let layouts = [Layout::new::<[u8; 24]>(), Layout::new::<[u8; 200]>()];
    for _round in 0..ROUNDS {
        let blocks: Vec<_> = (0..BURST)
            .map(|i| {
                let layout = layouts[i % 2];
                (heap.allocate(layout).unwrap(), layout)
            })
            .collect();
        for (block, layout) in blocks {
            // SAFETY: allocated just above with `layout`, freed once.
            unsafe { heap.deallocate(block, layout) };
        }
        flush_allocator_thread_cache(&heap);
        assert_eq!(heap.stats().objects_in_use(), 0);
        assert_eq!(source.given_back(), 0);
    }
    assert_eq!(heap.stats().pages(), source.outstanding());

    let local = heap.local();
    let blocks: Vec<_> = (0..2 * BURST)
        .map(|_| local.allocate(layouts[0]).unwrap())
        .collect();
    for block in blocks {
        // SAFETY: allocated just above with this layout, freed once.
        unsafe { local.deallocate(block, layouts[0]) };
    }
    local.flush(); // its magazine's slots back, and no page with them
    drop(local);
    flush_allocator_thread_cache(&heap);
    assert_eq!(source.given_back(), 0);
    let held = source.outstanding();
    assert_eq!(heap.stats().pages(), held);
    assert_eq!(heap.stats().objects_in_use(), 0);
    assert_eq!(heap.shrink_to_fit(), held);
    assert_eq!(source.outstanding(), 0);
}

#[test]
fn a_kept_region_in_a_static() {
    static mut MEMORY: [MaybeUninit<u8>; 4 * 1024] = [MaybeUninit::uninit(); 4 * 1024];
    const BYTES: *mut [MaybeUninit<u8>; 4 * 1024] = &raw mut MEMORY;
    // SAFETY: nothing else names `MEMORY`: this is the one reference to it.
    static PAGES: KeepPages<RegionPages<U1024>> =
        KeepPages::new(RegionPages::with_memory(unsafe { &mut *BYTES }));
    static CACHE: SlabCache<[u32; 8], &KeepPages<RegionPages<U1024>>> = SlabCache::new_in(&PAGES);

    let capacity = PAGES.capacity();
    assert!(capacity >= 3, "whole aligned pages only: {capacity}");
    let slots = SlabCache::<[u32; 8], &KeepPages<RegionPages<U1024>>>::SLOTS_PER_SLAB;
    let all: Vec<_> = (0..capacity * slots)
        .map(|i| CACHE.alloc([i as u32; 8]).ok().unwrap())
        .collect();
    assert!(CACHE.alloc([0; 8]).is_err(), "the region is exhausted");
    assert_eq!(PAGES.available(), 0);
    drop(all);
    flush_thread_cache(&CACHE);
    assert_eq!(PAGES.available(), 0, "kept by the cache");
    assert_eq!(CACHE.stats().empty_slabs, capacity);
    assert!(format!("{CACHE:?}").contains("empty_slabs"));
    assert!(format!("{PAGES:?}").starts_with("KeepPages(RegionPages"));
    assert_eq!(CACHE.shrink(), capacity);
    assert_eq!(PAGES.available(), capacity);
}

#[test]
fn the_promises_pass_through_the_wrappers() {
    type Region = RegionPages;
    const {
        assert!(Region::PAGES_ALIGNED && !Region::KEEP_PAGES);
        assert!(<&Region>::PAGES_ALIGNED && !<&Region>::KEEP_PAGES);
        assert!(KeepPages::<Region>::PAGES_ALIGNED && KeepPages::<Region>::KEEP_PAGES);
        assert!(<&KeepPages<&Region>>::PAGES_ALIGNED && <&KeepPages<&Region>>::KEEP_PAGES);
        assert!(!<GlobalPages>::PAGES_ALIGNED && !<GlobalPages>::KEEP_PAGES);
        assert!(!KeepPages::<GlobalPages>::PAGES_ALIGNED);
    }
    let kept = KeepPages::new(RegionPages::empty());
    assert_eq!(kept.get_ref().capacity(), 0);
    assert_eq!(kept.into_inner().capacity(), 0);
}
