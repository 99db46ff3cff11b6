//! Randomized workloads: over a million allocations and frees each through
//! the typed API (`SlabCache<T>`) and the raw API (`SlabAllocator`), checking
//! the promises every user relies on: a live value is never disturbed, no two
//! live objects overlap, every pointer is aligned as asked, and the counters
//! balance — during the run and after everything is freed and shrunk.

mod common;

use std::alloc::{Layout, System};
use std::mem::{align_of, size_of};
use std::ptr::NonNull;

use common::{Ranges, XorShift, fill, verify};
use minimal_slab::{GlobalPages, SlabAllocator, SlabBox, SlabCache};

/// Allocations plus frees per test (Miri runs a small sample).
const OPS: usize = if cfg!(miri) { 2_000 } else { 1_000_000 };
/// Operations per phase; phases alternate between growing and shrinking the
/// live set, so slabs fill, empty, are given back and taken again.
/// (Miri's short run uses longer phases, so its live set still grows past
/// a slab.)
const PHASE: usize = if cfg!(miri) { OPS / 4 } else { OPS / 20 };
/// Operations between full checks of every live value and of the counters.
const CHECK_EVERY: usize = if cfg!(miri) { 250 } else { 50_000 };

/// Chance in percent that an operation allocates, by phase.
fn alloc_percent(op: usize) -> usize {
    if (op / PHASE).is_multiple_of(2) {
        65
    } else {
        35
    }
}

// ---------------------------------------------------------------- typed API

type Payload = [u64; 3];

/// The value stored for object `id`: every word depends on the id, so a value
/// overwritten by any other object is noticed.
fn payload(id: u64) -> Payload {
    [id, id.wrapping_mul(0x9E37_79B9_7F4A_7C15), !id]
}

/// `max_live`: the most objects live at once so far, a bound on the slabs
/// that were in use at once, and so on the pages a cache may keep for its
/// recent peak.
fn check_typed_stats(cache: &SlabCache<Payload>, live: usize, max_live: usize) {
    let s = cache.stats();
    assert_eq!(
        s.objects_in_use, live,
        "objects_in_use counts the live handles"
    );
    assert_eq!(s.slot_size, SlabCache::<Payload>::SLOT_SIZE);
    assert_eq!(s.slots_per_slab, SlabCache::<Payload>::SLOTS_PER_SLAB);
    assert_eq!(
        s.free_slots + s.cached_slots + s.objects_in_use,
        s.pages * s.slots_per_slab,
        "every slot of every page held is free, cached or in use: {s:?}"
    );
    assert_eq!(s.full_slabs + s.partial_slabs + s.empty_slabs, s.pages);
    assert!(
        s.empty_slabs <= 2 || s.pages <= max_live,
        "empty slabs beyond the reserve, and more pages than a past peak: {s:?}"
    );
    assert!(s.pages * s.slots_per_slab >= live);
}

#[test]
fn typed_cache_keeps_values_intact_through_a_million_random_operations() {
    let cache: SlabCache<Payload> = SlabCache::new();
    let mut rng = XorShift::new(0x7E57_0001);
    let mut live: Vec<(u64, SlabBox<'_, Payload>)> = Vec::new();
    let mut ranges = Ranges::default();
    let mut next_id = 0_u64;
    let mut max_live = 0;

    for op in 0..OPS {
        if live.is_empty() || rng.percent(alloc_percent(op)) {
            let id = next_id;
            next_id += 1;
            let b = cache
                .alloc(payload(id))
                .expect("global pages do not run out");
            let addr = SlabBox::as_ptr(&b).addr();
            assert_eq!(addr % align_of::<Payload>(), 0, "misaligned object");
            ranges.insert(addr, size_of::<Payload>(), id);
            live.push((id, b));
            max_live = max_live.max(live.len());
        } else {
            let (id, b) = live.swap_remove(rng.below(live.len()));
            assert_eq!(*b, payload(id), "value of object {id} changed while live");
            ranges.remove(SlabBox::as_ptr(&b).addr(), id);
            if id % 2 == 0 {
                drop(b);
            } else {
                assert_eq!(SlabBox::into_inner(b), payload(id));
            }
        }

        // Now and then, rewrite a live value in place (DerefMut).
        if !live.is_empty() && rng.percent(5) {
            let i = rng.below(live.len());
            let (id, b) = &mut live[i];
            assert_eq!(**b, payload(*id));
            let new_id = next_id;
            next_id += 1;
            ranges.remove(SlabBox::as_ptr(b).addr(), *id);
            ranges.insert(SlabBox::as_ptr(b).addr(), size_of::<Payload>(), new_id);
            **b = payload(new_id);
            *id = new_id;
        }

        if op % CHECK_EVERY == 0 {
            for (id, b) in &live {
                assert_eq!(**b, payload(*id), "value of object {id} changed while live");
            }
            check_typed_stats(&cache, live.len(), max_live);
        }
    }
    assert!(max_live > 100, "the workload should build up a live set");
    check_typed_stats(&cache, live.len(), max_live);

    // Free everything, in random order.
    while !live.is_empty() {
        let (id, b) = live.swap_remove(rng.below(live.len()));
        assert_eq!(*b, payload(id));
        ranges.remove(SlabBox::as_ptr(&b).addr(), id);
    }
    assert_eq!(ranges.len(), 0);
    let s = cache.stats();
    assert_eq!(s.objects_in_use, 0);
    assert_eq!(s.free_slots + s.cached_slots, s.pages * s.slots_per_slab);
    // Every page kept is empty but for the slots this thread caches (`std`).
    assert!(
        s.pages - s.empty_slabs <= s.cached_slots,
        "every page kept once all is free is empty: {s:?}"
    );
    assert_eq!(cache.shrink(), s.pages);
    assert_eq!(cache.stats().pages, 0, "shrink gives back every page");
}

// ------------------------------------------------------------------ raw API

type Heap = SlabAllocator<GlobalPages, System>;

/// One live raw block.
struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
    id: u64,
}

/// A random layout: mostly 1..=256 bytes aligned to anything up to their size
/// class, with a few beyond the classes (large, or aligned beyond 256).
fn random_layout(rng: &mut XorShift) -> Layout {
    let roll = rng.below(1000);
    let (size, align) = if roll < 15 {
        (rng.range(257, 4096), 1 << rng.below(7))
    } else if roll < 20 {
        (rng.range(1, 256), 1 << rng.range(9, 12))
    } else {
        let size = if rng.percent(50) {
            rng.range(1, 64)
        } else {
            rng.range(1, 256)
        };
        let class = size.max(8).next_power_of_two();
        (size, 1 << rng.below(class.trailing_zeros() as usize + 1))
    };
    Layout::from_size_align(size, align).unwrap()
}

fn class_index(class: usize) -> usize {
    (class.trailing_zeros() - 3) as usize
}

/// `max_live`: as for `check_typed_stats`, all classes together.
fn check_raw_stats(heap: &Heap, live: &[Block], max_live: usize) {
    let stats = heap.stats();
    let mut per_class = [0_usize; 6];
    let (mut fallback, mut fallback_bytes) = (0, 0);
    for b in live {
        match Heap::size_class(b.layout) {
            Some(class) => per_class[class_index(class)] += 1,
            None => {
                fallback += 1;
                fallback_bytes += b.layout.size();
            }
        }
    }
    assert_eq!(stats.classes().len(), 6);
    for (i, c) in stats.classes().iter().enumerate() {
        assert_eq!(c.slot_size, 8 << i);
        assert_eq!(c.objects_in_use, per_class[i], "class {}: {c:?}", c.name);
        assert_eq!(
            c.free_slots + c.cached_slots + c.objects_in_use,
            c.pages * c.slots_per_slab
        );
        assert_eq!(c.full_slabs + c.partial_slabs + c.empty_slabs, c.pages);
        assert!(
            c.empty_slabs <= 2 || c.pages <= max_live,
            "empty slabs beyond the reserve, and more pages than a past peak: {c:?}"
        );
    }
    assert_eq!(stats.objects_in_use(), live.len() - fallback);
    assert_eq!(stats.fallback_allocations, fallback);
    assert_eq!(stats.fallback_bytes, fallback_bytes);
}

fn free_block(heap: &Heap, ranges: &mut Ranges, b: Block) {
    // SAFETY: `b` is live and filled; it is ours alone.
    unsafe { verify(b.ptr, b.layout.size(), b.id) };
    ranges.remove(b.ptr.as_ptr().addr(), b.id);
    // SAFETY: `b` was allocated from `heap` with `b.layout` and is dropped here.
    unsafe { heap.deallocate(b.ptr, b.layout) };
}

#[test]
fn raw_allocator_keeps_blocks_intact_through_a_million_random_operations() {
    let heap: Heap = SlabAllocator::new_in(GlobalPages::new(), System);
    let mut rng = XorShift::new(0x7E57_0002);
    let mut live: Vec<Block> = Vec::new();
    let mut ranges = Ranges::default();
    let mut next_id = 0_u64;
    let (mut fallback_seen, mut reallocs) = (0, 0);
    let mut max_live = 0;

    for op in 0..OPS {
        if live.is_empty() || rng.percent(alloc_percent(op)) {
            let layout = random_layout(&mut rng);
            let id = next_id;
            next_id += 1;
            let ptr = heap.allocate(layout).expect("every layout is served");
            assert_eq!(
                ptr.as_ptr().addr() % layout.align(),
                0,
                "misaligned for {layout:?}"
            );
            match Heap::size_class(layout) {
                Some(class) => {
                    assert_eq!(
                        ptr.as_ptr().addr() % class,
                        0,
                        "slot not aligned to its class"
                    );
                }
                None => fallback_seen += 1,
            }
            ranges.insert(ptr.as_ptr().addr(), layout.size(), id);
            // SAFETY: just allocated for `layout`: valid and ours alone.
            unsafe { fill(ptr, layout.size(), id) };
            live.push(Block { ptr, layout, id });
            max_live = max_live.max(live.len());
        } else {
            let b = live.swap_remove(rng.below(live.len()));
            free_block(&heap, &mut ranges, b);
        }

        // Now and then, resize a live block (not counted as an alloc/free).
        if !live.is_empty() && rng.percent(5) {
            reallocs += 1;
            let i = rng.below(live.len());
            let old = &live[i];
            let new_size = if rng.percent(50) {
                old.layout
                    .size()
                    .saturating_add(rng.below(33))
                    .saturating_sub(16)
                    .max(1)
            } else {
                rng.range(1, 512)
            };
            let new_layout = Layout::from_size_align(new_size, old.layout.align()).unwrap();
            ranges.remove(old.ptr.as_ptr().addr(), old.id);
            // SAFETY: `old` is live, was allocated from `heap` with
            // `old.layout`, and is replaced by the result below.
            let new = unsafe { heap.reallocate(old.ptr, old.layout, new_size) }
                .expect("every layout is served");
            let same_class = Heap::size_class(old.layout);
            if same_class.is_some() && same_class == Heap::size_class(new_layout) {
                assert_eq!(
                    new, old.ptr,
                    "a resize within the size class stays in place"
                );
            }
            assert_eq!(new.as_ptr().addr() % new_layout.align(), 0);
            // SAFETY: `reallocate` kept the first min(old, new) bytes, which
            // the old block's pattern filled; the new block is ours alone.
            unsafe { verify(new, old.layout.size().min(new_size), old.id) };
            let id = next_id;
            next_id += 1;
            ranges.insert(new.as_ptr().addr(), new_size, id);
            // SAFETY: the new block is valid for `new_size` bytes and ours.
            unsafe { fill(new, new_size, id) };
            live[i] = Block {
                ptr: new,
                layout: new_layout,
                id,
            };
        }

        if op % CHECK_EVERY == 0 {
            for b in &live {
                // SAFETY: every live block is filled and ours alone.
                unsafe { verify(b.ptr, b.layout.size(), b.id) };
            }
            check_raw_stats(&heap, &live, max_live);
        }
    }
    assert!(
        fallback_seen > 0 && reallocs > 0,
        "the workload covers the fallback and resizes"
    );
    check_raw_stats(&heap, &live, max_live);

    while !live.is_empty() {
        let b = live.swap_remove(rng.below(live.len()));
        free_block(&heap, &mut ranges, b);
    }
    assert_eq!(ranges.len(), 0);
    check_raw_stats(&heap, &live, max_live);
    let stats = heap.stats();
    assert_eq!(stats.objects_in_use(), 0);
    assert_eq!((stats.fallback_allocations, stats.fallback_bytes), (0, 0));
    for c in stats.classes() {
        // Every page kept is empty but for the blocks this thread caches.
        assert!(
            c.pages - c.empty_slabs <= c.cached_slots,
            "every page kept once all is free is empty: {c:?}"
        );
    }
    assert_eq!(heap.shrink_to_fit(), stats.pages());
    assert_eq!(heap.stats().pages(), 0, "shrink gives back every page");
}
