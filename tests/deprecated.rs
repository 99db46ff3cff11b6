//! The former names still work, and mean what the new ones mean, for the
//! 0.1 series (see CHANGELOG.md, "Renamed").
#![allow(deprecated)]

use core::alloc::Layout;
use core::pin::Pin;

use minimal_slab::{CacheConfig, SlabAllocator, SlabBox, SlabCache};

#[test]
fn the_former_constants_are_the_slot_numbers() {
    type Cache = SlabCache<[u8; 61]>;
    assert_eq!(Cache::OBJECT_SIZE, Cache::SLOT_SIZE);
    assert_eq!(Cache::OBJECTS_PER_SLAB, Cache::SLOTS_PER_SLAB);
    assert_eq!(
        minimal_slab::slab_cache::DEFAULT_RESERVE,
        CacheConfig::DEFAULT_RESERVE
    );
    assert_eq!(
        minimal_slab::slab_allocator::MIN_CLASS,
        <SlabAllocator>::MIN_CLASS
    );
}

#[test]
fn the_former_stats_names_are_filled() {
    let cache: SlabCache<[u8; 61]> = SlabCache::new();
    let held = cache.alloc([7; 61]).unwrap();
    let stats = cache.stats();
    assert_eq!(
        (stats.object_size, stats.objects_per_slab),
        (stats.slot_size, stats.slots_per_slab)
    );
    let mut seen = 0;
    cache.for_each_slab(|slab| seen = slab.capacity());
    assert_eq!(seen, stats.slots_per_slab);
    drop(held);
}

#[test]
fn the_former_getters_read_the_fields() {
    let config = CacheConfig::new().page_limit(3).reserve(1);
    assert_eq!(config.get_page_limit(), config.page_limit);
    assert_eq!(config.get_reserve(), config.reserve);
}

#[test]
fn the_former_shrink_and_pin_still_work() {
    let heap = SlabAllocator::new();
    let layout = Layout::new::<u64>();
    let p = heap.allocate(layout).unwrap();
    // SAFETY: allocated just above with `layout`, not used again.
    unsafe { heap.deallocate(p, layout) };
    assert_eq!(heap.shrink(), 1);
    assert_eq!(heap.stats().pages(), 0);

    static CACHE: SlabCache<u32> = SlabCache::new();
    let pinned: Pin<SlabBox<'static, u32>> = CACHE.pin(5).unwrap();
    assert_eq!(*pinned, 5);
}
