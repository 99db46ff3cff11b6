//! The `allocator_api2::alloc::Allocator` impls (feature `allocator-api2`):
//! collections of `allocator_api2` and `hashbrown` in a `SlabAllocator` and a
//! typed `SlabCache`, checked against the allocators' own counters, and the
//! trait's contract for zero sizes, resizing and alignment changes. With the
//! `nightly` feature, std's `Box` and `Vec` as well.

#![cfg(feature = "allocator-api2")]
#![cfg_attr(feature = "nightly", feature(allocator_api))]

use core::alloc::Layout;
use core::mem::MaybeUninit;
use core::ops::Range;
use core::ptr::NonNull;
use std::alloc::System;
use std::slice;

use allocator_api2::alloc::Allocator;
use allocator_api2::boxed::Box;
use allocator_api2::vec::Vec;
use minimal_slab::{CacheConfig, GlobalPages, SlabAllocator, SlabCache};

type Heap = SlabAllocator<GlobalPages, System>;

fn heap() -> Heap {
    SlabAllocator::new_in(GlobalPages::new(), System)
}

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

/// Objects in the size classes and blocks at the fallback.
fn live(heap: &Heap) -> (usize, usize) {
    let stats = heap.stats();
    (stats.objects_in_use(), stats.fallback_allocations)
}

/// Fills the first `len` bytes of a block with a pattern derived from `seed`.
fn fill(block: NonNull<[u8]>, len: usize, seed: u8) {
    assert!(block.len() >= len);
    // SAFETY: the block is valid for writes of its length, at least `len`
    // (asserted), and nothing else refers to it during the call.
    let bytes = unsafe { slice::from_raw_parts_mut(block.cast::<MaybeUninit<u8>>().as_ptr(), len) };
    for (i, byte) in bytes.iter_mut().enumerate() {
        byte.write(seed.wrapping_add(i as u8));
    }
}

/// A copy of the bytes `range` of a block; the callers have written or
/// zeroed them.
fn bytes(block: NonNull<[u8]>, range: Range<usize>) -> std::vec::Vec<u8> {
    assert!(block.len() >= range.end);
    // SAFETY: the block is valid for reads of its length, at least
    // `range.end` (asserted), initialised there by the callers, and not
    // written while the slice is in use.
    let all = unsafe { slice::from_raw_parts(block.cast::<u8>().as_ptr(), range.end) };
    all[range].to_vec()
}

/// Whether the first `len` bytes of a block still hold `fill`'s pattern.
fn holds_pattern(block: NonNull<[u8]>, len: usize, seed: u8) -> bool {
    bytes(block, 0..len)
        .iter()
        .enumerate()
        .all(|(i, &byte)| byte == seed.wrapping_add(i as u8))
}

/// Whether the bytes `range` of a block are all zero.
fn zeroed(block: NonNull<[u8]>, range: Range<usize>) -> bool {
    bytes(block, range).iter().all(|&byte| byte == 0)
}

fn is_aligned(block: NonNull<[u8]>, align: usize) -> bool {
    block.cast::<u8>().as_ptr().addr().is_multiple_of(align)
}

#[test]
fn a_vec_grows_through_the_classes_into_the_fallback_and_shrinks_back() {
    let heap = heap();
    let mut v: Vec<u64, &Heap> = Vec::new_in(&heap);
    let mut classes_seen = std::vec::Vec::new();
    for i in 0..100u64 {
        v.push(i * 3);
        let bytes = v.capacity() * 8;
        match Heap::size_class(Layout::array::<u64>(v.capacity()).unwrap()) {
            Some(class) => {
                assert_eq!(live(&heap), (1, 0), "{bytes} bytes live in one slot");
                assert_eq!(
                    heap.stats().classes()[class.trailing_zeros() as usize - 3].objects_in_use,
                    1
                );
                if classes_seen.last() != Some(&class) {
                    classes_seen.push(class);
                }
            }
            None => assert_eq!(live(&heap), (0, 1), "{bytes} bytes live at the fallback"),
        }
    }
    assert_eq!(classes_seen, [32, 64, 128, 256], "4, 8, 16, 32 elements");
    assert_eq!(heap.stats().fallback_bytes, v.capacity() * 8);
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64 * 3));

    v.truncate(20);
    v.shrink_to_fit();
    assert_eq!(v.capacity(), 20);
    assert_eq!(live(&heap), (1, 0), "160 bytes: back in the 256-byte class");
    assert_eq!(heap.stats().classes()[5].objects_in_use, 1);
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64 * 3));

    drop(v);
    assert_eq!(live(&heap), (0, 0));
    assert_eq!(heap.stats().fallback_bytes, 0);
}

#[test]
fn a_hashmap_with_many_entries_lives_in_the_slabs_and_leaves_nothing() {
    let heap = heap();
    let n: u32 = if cfg!(miri) { 300 } else { 20_000 };
    assert_eq!(live(&heap), (0, 0));
    {
        // Keys with small vectors as values: the table goes to the fallback,
        // every value to a size class.
        let mut map = hashbrown::HashMap::new_in(&heap);
        for key in 0..n {
            let mut value = Vec::with_capacity_in(3, &heap);
            value.extend([key, key * 2, key * 3]);
            map.insert(key, value);
        }
        let (objects, fallback) = live(&heap);
        assert_eq!(objects, n as usize, "one 16-byte slot per value");
        assert_eq!(heap.stats().classes()[1].objects_in_use, n as usize);
        assert_eq!(fallback, 1, "the table itself");
        assert!(heap.stats().fallback_bytes >= n as usize * 32);
        assert!((0..n).all(|key| map[&key][..] == [key, key * 2, key * 3]));

        map.retain(|key, _| key % 4 == 0);
        assert_eq!(live(&heap).0, n.div_ceil(4) as usize);
        map.clear();
        assert_eq!(live(&heap), (0, 1), "the table is kept until shrunk");
        map.shrink_to_fit();
        assert_eq!(live(&heap), (0, 0), "an empty map holds no table");

        map.insert(7, Vec::new_in(&heap));
        assert!(live(&heap).0 + live(&heap).1 > 0);
    }
    assert_eq!(live(&heap), (0, 0));
    assert_eq!(heap.stats().fallback_bytes, 0);
    heap.shrink_to_fit();
    assert_eq!(heap.stats().pages(), 0);
}

#[test]
fn box_new_in_uses_a_slot_or_the_fallback() {
    let heap = heap();
    let three = Box::new_in([1u64, 2, 3], &heap);
    assert_eq!(
        heap.stats().classes()[2].objects_in_use,
        1,
        "24 bytes: 32-byte class"
    );
    let big = Box::new_in([7u8; 1000], &heap);
    assert_eq!(live(&heap), (1, 1));
    assert_eq!(three.iter().sum::<u64>(), 6);
    assert!(big.iter().all(|&b| b == 7));

    let byte = Box::new_in(9u8, &heap);
    assert_eq!(*byte, 9);
    assert_eq!(live(&heap), (2, 1));
    drop((three, big, byte));
    assert_eq!(live(&heap), (0, 0));

    // A boxed slice made by a vector, freed through the box.
    let mut v = Vec::new_in(&heap);
    v.extend(0..10u32);
    let slice = v.into_boxed_slice();
    assert_eq!(slice.len(), 10);
    assert_eq!(live(&heap), (1, 0));
    drop(slice);
    assert_eq!(live(&heap), (0, 0));
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Entity {
    position: [f32; 2],
    velocity: [f32; 2],
    health: u32,
}

#[test]
fn box_new_in_on_a_typed_cache() {
    let cache: SlabCache<Entity> = SlabCache::new();
    let slot = SlabCache::<Entity>::slot_layout();
    // 20 bytes, rounded up to hold a pointer-aligned free-list link: 24 on
    // 64-bit targets, 20 on 32-bit ones.
    assert_eq!(
        (slot.size(), slot.align()),
        (20usize.next_multiple_of(size_of::<usize>()), 4)
    );

    let hero = Entity {
        position: [1.0, 2.0],
        velocity: [0.5, 0.0],
        health: 100,
    };
    let boxes: std::vec::Vec<_> = (0..100)
        .map(|i| Box::new_in(Entity { health: i, ..hero }, &cache))
        .collect();
    assert_eq!(cache.stats().objects_in_use, 100);
    assert!(
        boxes
            .iter()
            .enumerate()
            .all(|(i, e)| e.health == i as u32 && e.position == hero.position)
    );

    // Anything a slot holds fits, not only `Entity`.
    let pair = Box::new_in((3u32, 4u32), &cache);
    assert_eq!(pair.0 + pair.1, 7);
    assert_eq!(cache.stats().objects_in_use, 101);

    drop(boxes);
    drop(pair);
    assert_eq!(cache.stats().objects_in_use, 0);
}

#[test]
fn a_typed_cache_refuses_layouts_its_slot_cannot_hold() {
    let cache: SlabCache<Entity> = SlabCache::new();
    let c = &cache;
    let slot = SlabCache::<Entity>::SLOT_SIZE;
    assert!(
        Allocator::allocate(&c, layout(slot + 1, 1)).is_err(),
        "one byte too large"
    );
    assert!(
        Allocator::allocate(&c, layout(8, 32)).is_err(),
        "aligned beyond the slot"
    );
    assert!(Allocator::allocate(&c, layout(4096, 4)).is_err());
    assert_eq!(cache.stats().objects_in_use, 0);
    assert_eq!(cache.stats().pages, 0, "a refusal takes no page");

    // A vector outgrowing the slot fails cleanly and keeps what it has.
    let fits = (slot / 4) as u32; // u32s in one slot
    let mut v: Vec<u32, &SlabCache<Entity>> = Vec::new_in(&cache);
    v.try_reserve_exact(fits as usize).unwrap();
    v.extend(0..fits);
    assert!(v.try_reserve_exact(1).is_err(), "one u32 more does not fit");
    assert!(v.iter().copied().eq(0..fits));
    assert_eq!(cache.stats().objects_in_use, 1);
    drop(v);
    assert_eq!(cache.stats().objects_in_use, 0);
}

#[test]
fn requests_nothing_can_serve_are_errors() {
    let no_fallback = SlabAllocator::new();
    let a = &no_fallback;
    assert!(Allocator::allocate(&a, layout(257, 8)).is_err());
    assert!(Allocator::allocate(&a, layout(8, 512)).is_err());
    let mut v: Vec<u8, _> = Vec::new_in(&no_fallback);
    assert!(v.try_reserve_exact(1000).is_err());
    v.try_reserve_exact(200).unwrap();
    assert_eq!(no_fallback.stats().objects_in_use(), 1);

    let capped =
        SlabAllocator::with_config(GlobalPages::new(), System, CacheConfig::new().page_limit(0));
    assert!(
        Box::try_new_in(1u64, &capped).is_err(),
        "no page may be taken"
    );
    let big = Box::try_new_in([1u8; 300], &capped).expect("the fallback still serves");
    assert_eq!(big[299], 1);
}

#[test]
fn blocks_are_whole_slots_and_free_with_any_size_up_to_them() {
    let heap = heap();
    let a = &heap;
    for (size, align, class) in [
        (1, 1, 8),
        (20, 4, 32),
        (33, 1, 64),
        (8, 128, 128),
        (200, 8, 256),
    ] {
        let block = Allocator::allocate(&a, layout(size, align)).unwrap();
        assert_eq!(block.len(), class, "{size} bytes aligned to {align}");
        assert!(is_aligned(block, align));
        fill(block, class, 1);
        // Any size from the one asked up to the length returned frees it
        // (checked builds panic on a wrong class).
        let free_with = if size % 2 == 0 { class } else { size };
        // SAFETY: allocated just above; the layout fits the block.
        unsafe { Allocator::deallocate(&a, block.cast(), layout(free_with, align)) };
    }
    assert_eq!(live(&heap), (0, 0));

    let beyond = Allocator::allocate(&a, layout(300, 8)).unwrap();
    assert_eq!(
        beyond.len(),
        300,
        "the fallback answers exactly the size asked"
    );
    // SAFETY: allocated just above with this layout.
    unsafe { Allocator::deallocate(&a, beyond.cast(), layout(300, 8)) };

    let clean = Allocator::allocate_zeroed(&a, layout(40, 8)).unwrap();
    assert!(zeroed(clean, 0..64), "the whole slot");
    // SAFETY: allocated just above with this layout.
    unsafe { Allocator::deallocate(&a, clean.cast(), layout(40, 8)) };
    assert_eq!(live(&heap), (0, 0));
}

#[test]
fn zero_sized_layouts_take_nothing() {
    let heap = heap();
    let a = &heap;
    let cache: SlabCache<u64> = SlabCache::new();
    let c = &cache;
    for align in [1, 8, 64, 4096] {
        let from_heap = Allocator::allocate(&a, layout(0, align)).unwrap();
        let from_cache = Allocator::allocate(&c, layout(0, align)).unwrap();
        for block in [from_heap, from_cache] {
            assert_eq!(block.len(), 0);
            assert!(is_aligned(block, align));
        }
        // SAFETY: zero-sized blocks just allocated with these layouts.
        unsafe { Allocator::deallocate(&a, from_heap.cast(), layout(0, align)) };
        // SAFETY: as above.
        unsafe { Allocator::deallocate(&c, from_cache.cast(), layout(0, align)) };
    }
    let unit = Box::new_in((), &heap);
    let mut units = Vec::new_in(&heap);
    units.extend(core::iter::repeat_n((), 1000));
    assert_eq!(units.len(), 1000);
    drop((unit, units));
    assert_eq!((live(&heap), heap.stats().pages()), ((0, 0), 0));
    assert_eq!(cache.stats().pages, 0);

    // From zero-sized to real and back.
    let empty = Allocator::allocate(&a, layout(0, 8)).unwrap();
    // SAFETY: `empty` is a zero-sized block of this allocator.
    let grown =
        unsafe { Allocator::grow_zeroed(&a, empty.cast(), layout(0, 8), layout(12, 8)) }.unwrap();
    assert_eq!(grown.len(), 16);
    assert!(zeroed(grown, 0..16));
    assert_eq!(live(&heap), (1, 0));
    // SAFETY: `grown` is a 12-byte block of this allocator.
    let gone = unsafe { Allocator::shrink(&a, grown.cast(), layout(12, 8), layout(0, 8)) }.unwrap();
    assert_eq!(gone.len(), 0);
    assert_eq!(live(&heap), (0, 0));
}

#[test]
fn grow_and_shrink_keep_contents_across_classes_the_fallback_and_alignments() {
    let heap = heap();
    let a = &heap;
    let mut current = layout(24, 8);
    let mut block = Allocator::allocate(&a, current).unwrap();
    fill(block, 24, 10);
    // Each step: new size, new alignment, where it must live.
    let steps = [
        (30, 8, Some(32)),    // same class: in place
        (100, 64, Some(128)), // alignment change: moved
        (16, 16, Some(16)),   // shrink with alignment change
        (16, 8, Some(16)),    // a smaller alignment, same size: moved (class of (16, 8) is 16)
        (1000, 8, None),      // into the fallback
        (2000, 8, None),      // within the fallback
        (3000, 4096, None),   // the fallback, another alignment
        (50, 8, Some(64)),    // back into a class
    ];
    let mut kept = 24;
    for (size, align, class) in steps {
        let new = layout(size, align);
        let before = block.cast::<u8>();
        let resized = if size >= current.size() {
            // SAFETY: `block` is live with layout `current`, and `new` is no
            // smaller.
            unsafe { Allocator::grow(&a, block.cast(), current, new) }
        } else {
            // SAFETY: `block` is live with layout `current`, and `new` is
            // smaller.
            unsafe { Allocator::shrink(&a, block.cast(), current, new) }
        };
        block = resized.unwrap();
        kept = kept.min(size);
        assert!(holds_pattern(block, kept, 10), "to {size} aligned {align}");
        assert!(is_aligned(block, align), "to {size} aligned {align}");
        assert_eq!(block.len(), class.unwrap_or(size));
        assert_eq!(live(a), if class.is_some() { (1, 0) } else { (0, 1) });
        if size == 30 {
            assert_eq!(block.cast::<u8>(), before, "the same class stays in place");
        }
        fill(block, size, 10);
        kept = size;
        current = new;
    }

    // grow_zeroed zeroes everything beyond the old size, to the block's end.
    // SAFETY: `block` is live with layout `current` (50, 8).
    let grown =
        unsafe { Allocator::grow_zeroed(&a, block.cast(), current, layout(60, 32)) }.unwrap();
    assert!(holds_pattern(grown, 50, 10));
    assert!(zeroed(grown, 50..64));
    // SAFETY: `grown` is live with this layout.
    unsafe { Allocator::deallocate(&a, grown.cast(), layout(60, 32)) };
    assert_eq!(live(a), (0, 0));
    assert_eq!(heap.stats().fallback_bytes, 0);
}

#[test]
fn a_failed_grow_keeps_the_block() {
    let no_fallback = SlabAllocator::new();
    let a = &no_fallback;
    let block = Allocator::allocate(&a, layout(100, 8)).unwrap();
    fill(block, 100, 3);
    // SAFETY: `block` is live with layout (100, 8).
    assert!(unsafe { Allocator::grow(&a, block.cast(), layout(100, 8), layout(500, 8)) }.is_err());
    let overaligned = layout(200, 512);
    // SAFETY: as above; the failure left the block live.
    assert!(unsafe { Allocator::grow(&a, block.cast(), layout(100, 8), overaligned) }.is_err());
    assert!(holds_pattern(block, 100, 3));
    assert_eq!(no_fallback.stats().objects_in_use(), 1);
    // SAFETY: still live with layout (100, 8).
    unsafe { Allocator::deallocate(&a, block.cast(), layout(100, 8)) };
    assert_eq!(no_fallback.stats().objects_in_use(), 0);
}

#[test]
fn a_typed_cache_resizes_within_its_slot() {
    /// 32 bytes aligned to 8 on every target (`[u64; 4]` is aligned to 4 on
    /// i686).
    #[repr(C, align(8))]
    struct Block([u8; 32]);
    let cache: SlabCache<Block> = SlabCache::new();
    let c = &cache;
    let block = Allocator::allocate(&c, layout(8, 8)).unwrap();
    assert_eq!(block.len(), 32, "the whole slot");
    fill(block, 8, 5);
    // SAFETY: `block` is live with layout (8, 8).
    let grown =
        unsafe { Allocator::grow_zeroed(&c, block.cast(), layout(8, 8), layout(32, 4)) }.unwrap();
    assert_eq!(grown.cast::<u8>(), block.cast::<u8>(), "in place");
    assert!(holds_pattern(grown, 8, 5));
    assert!(zeroed(grown, 8..32));
    // SAFETY: `grown` is live with layout (32, 4).
    assert!(unsafe { Allocator::grow(&c, grown.cast(), layout(32, 4), layout(33, 4)) }.is_err());
    // SAFETY: as above; the failure left it live.
    assert!(unsafe { Allocator::shrink(&c, grown.cast(), layout(32, 4), layout(16, 64)) }.is_err());
    assert!(holds_pattern(grown, 8, 5));
    assert_eq!(cache.stats().objects_in_use, 1);
    // SAFETY: as above.
    let shrunk =
        unsafe { Allocator::shrink(&c, grown.cast(), layout(32, 4), layout(16, 2)) }.unwrap();
    assert_eq!(shrunk.cast::<u8>(), block.cast::<u8>());
    // SAFETY: `shrunk` is live with layout (16, 2); shrinking to nothing frees it.
    let gone =
        unsafe { Allocator::shrink(&c, shrunk.cast(), layout(16, 2), layout(0, 1)) }.unwrap();
    assert_eq!(gone.len(), 0);
    assert_eq!(cache.stats().objects_in_use, 0);
}

#[cfg(feature = "nightly")]
mod nightly {
    use super::{Entity, Heap, SlabCache, heap, live};

    #[test]
    fn std_box_and_vec_live_in_the_size_classes() {
        let heap = heap();
        let boxed = std::boxed::Box::new_in(5u16, &heap);
        let mut list: std::vec::Vec<u32, &Heap> = std::vec::Vec::new_in(&heap);
        list.extend(0..10);
        assert_eq!(live(&heap), (2, 0));
        list.extend(0..100);
        assert_eq!(live(&heap), (1, 1), "440 bytes: the fallback");
        list.truncate(5);
        list.shrink_to_fit();
        assert_eq!(live(&heap), (2, 0));
        assert_eq!(list, [0, 1, 2, 3, 4]);
        let slice = list.into_boxed_slice();
        assert_eq!(*boxed + slice[4] as u16, 9);
        drop((boxed, slice));
        assert_eq!(live(&heap), (0, 0));
    }

    #[test]
    fn std_box_lives_in_a_typed_cache() {
        let cache: SlabCache<Entity> = SlabCache::new();
        let entity = Entity {
            position: [0.0; 2],
            velocity: [1.0; 2],
            health: 3,
        };
        let boxes: std::vec::Vec<_> = (0..10)
            .map(|health| std::boxed::Box::new_in(Entity { health, ..entity }, &cache))
            .collect();
        assert_eq!(cache.stats().objects_in_use, 10);
        assert!(boxes.iter().enumerate().all(|(i, e)| e.health == i as u32));
        assert!(std::boxed::Box::try_new_in([0u64; 4], &cache).is_err());
        drop(boxes);
        assert_eq!(cache.stats().objects_in_use, 0);
    }
}
