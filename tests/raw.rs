//! The raw size-class allocator, `SlabAllocator`: each layout goes to the
//! smallest class covering its size and alignment, zero-sized requests touch
//! nothing, what no class serves is an error without a fallback and served
//! with one, resizing keeps contents, the `GlobalAlloc` methods behave, the
//! stats table names its classes, and the class table follows the size-class
//! limit type.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeSet;
use std::ptr::NonNull;

use common::{CountingPages, fill, flush_allocator_thread_cache, verify};
use minimal_slab::typenum::{U512, U1024, U4096, U16384};
use minimal_slab::{
    AllocError, CacheConfig, ChunkedGlobalPages, GlobalPages, NoFallback, PageAllocator,
    SlabAllocator,
};

type Heap = SlabAllocator;

const CLASSES: [usize; 6] = [8, 16, 32, 64, 128, 256];

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

fn index_of(class: usize) -> usize {
    CLASSES.iter().position(|&c| c == class).unwrap()
}

#[test]
fn every_class_serves_every_alignment_up_to_its_size() {
    let heap = Heap::new();
    for class in CLASSES {
        let index = index_of(class);
        let smallest = if class == 8 { 1 } else { class / 2 + 1 };
        let mut align = 1;
        while align <= class {
            for size in [smallest, (smallest + class) / 2, class] {
                let l = layout(size, align);
                assert_eq!(Heap::size_class(l), Some(class), "{l:?}");
                let ptrs: Vec<NonNull<u8>> = (0..4).map(|_| heap.allocate(l).unwrap()).collect();
                let mut addrs = BTreeSet::new();
                for (i, &p) in ptrs.iter().enumerate() {
                    let addr = p.as_ptr().addr();
                    assert_eq!(addr % align, 0, "{l:?} at {addr:#x}");
                    assert_eq!(addr % class, 0, "slots are aligned to their class size");
                    // SAFETY: just allocated for `l`, ours alone.
                    unsafe { fill(p, size, i as u64) };
                    addrs.insert(addr);
                }
                let addrs: Vec<usize> = addrs.into_iter().collect();
                assert!(
                    addrs.windows(2).all(|w| w[1] - w[0] >= class),
                    "slots overlap"
                );
                let s = heap.stats();
                assert_eq!(
                    s.classes()[index].objects_in_use,
                    4,
                    "{l:?} went to class {class}"
                );
                assert_eq!(s.objects_in_use(), 4, "and to no other class");
                for (i, &p) in ptrs.iter().enumerate() {
                    // SAFETY: filled above, still ours.
                    unsafe { verify(p, size, i as u64) };
                    // SAFETY: allocated from `heap` with `l`, not used again.
                    unsafe { heap.deallocate(p, l) };
                }
            }
            align *= 2;
        }
        // A small size aligned to the class goes to that class too.
        let l = layout(1, class);
        assert_eq!(Heap::size_class(l), Some(class));
        let p = heap.allocate(l).unwrap();
        assert_eq!(p.as_ptr().addr() % class, 0);
        assert_eq!(heap.stats().classes()[index].objects_in_use, 1);
        // SAFETY: allocated from `heap` with `l`, not used again.
        unsafe { heap.deallocate(p, l) };
    }
    assert_eq!(heap.stats().objects_in_use(), 0);
}

#[test]
fn size_class_is_the_smallest_class_covering_size_and_alignment() {
    for size in 1..=300_usize {
        let mut align = 1;
        while align <= 1024 {
            let expected = Some(size.max(align).max(8).next_power_of_two()).filter(|&c| c <= 256);
            assert_eq!(
                Heap::size_class(layout(size, align)),
                expected,
                "size {size} align {align}"
            );
            align *= 2;
        }
    }
    type Big = SlabAllocator<GlobalPages<U16384>, NoFallback, U4096>;
    assert_eq!(Big::size_class(layout(3000, 8)), Some(4096));
    assert_eq!(Big::size_class(layout(300, 1)), Some(512));
    assert_eq!(Big::size_class(layout(4097, 1)), None);
}

#[test]
fn zero_sized_requests_are_aligned_and_touch_nothing() {
    let heap = Heap::new();
    let mut align = 1;
    while align <= 1 << 20 {
        let l = layout(0, align);
        let p = heap
            .allocate(l)
            .expect("zero-sized requests always succeed");
        assert_eq!(p.as_ptr().addr() % align, 0, "align {align}");
        let q = heap.allocate(l).unwrap();
        assert_eq!(q.as_ptr().addr() % align, 0);
        // SAFETY: allocated from `heap` with `l`; zero-sized, so nothing to free.
        unsafe { heap.deallocate(p, l) };
        // SAFETY: another zero-sized allocation from `heap` with `l`, not
        // used again.
        unsafe { heap.deallocate(q, l) };
        align *= 2;
    }
    let s = heap.stats();
    assert_eq!(
        (s.pages(), s.objects_in_use(), s.fallback_allocations),
        (0, 0, 0)
    );
}

#[test]
fn layouts_beyond_the_classes_fail_without_a_fallback() {
    let heap = Heap::new();
    for (size, align) in [
        (257, 1),
        (257, 8),
        (8, 512),
        (1, 4096),
        (4096, 4096),
        (1 << 20, 8),
    ] {
        let err = heap.allocate(layout(size, align)).unwrap_err();
        assert_eq!(err, AllocError::UnsupportedLayout { size, align });
        assert!(err.to_string().contains("no fallback"), "{err}");
    }
    let s = heap.stats();
    assert_eq!(
        (s.pages(), s.fallback_allocations, s.fallback_bytes),
        (0, 0, 0)
    );
    // The classes still work.
    let l = layout(256, 256);
    let p = heap.allocate(l).unwrap();
    // SAFETY: allocated from `heap` with `l`, not used again.
    unsafe { heap.deallocate(p, l) };
}

#[test]
fn layouts_beyond_the_classes_go_to_the_fallback() {
    let heap = SlabAllocator::new_in(GlobalPages::new(), System);
    let requests = [(257, 1), (300, 8), (8, 512), (100, 4096), (5000, 64)];
    let mut live = Vec::new();
    for (id, (size, align)) in requests.into_iter().enumerate() {
        let l = layout(size, align);
        assert_eq!(SlabAllocator::<GlobalPages, System>::size_class(l), None);
        let p = heap.allocate(l).expect("the fallback serves it");
        assert_eq!(p.as_ptr().addr() % align, 0);
        // SAFETY: just allocated for `l`, ours alone.
        unsafe { fill(p, size, id as u64) };
        live.push((p, l, id as u64));
        let s = heap.stats();
        assert_eq!(s.fallback_allocations, live.len());
        assert_eq!(
            s.fallback_bytes,
            live.iter().map(|(_, l, _)| l.size()).sum::<usize>()
        );
        assert_eq!(s.pages(), 0, "no size class was used");
    }
    assert!(heap.stats().to_string().contains("fallback: 5 allocations"));
    for (p, l, id) in live {
        // SAFETY: filled above, still ours.
        unsafe { verify(p, l.size(), id) };
        // SAFETY: allocated from `heap` with `l`, not used again.
        unsafe { heap.deallocate(p, l) };
    }
    let s = heap.stats();
    assert_eq!((s.fallback_allocations, s.fallback_bytes), (0, 0));
}

#[test]
fn resizing_within_a_class_stays_in_place() {
    let heap = Heap::new();
    let p = heap.allocate(layout(20, 4)).unwrap();
    // SAFETY: just allocated for 20 bytes, ours alone.
    unsafe { fill(p, 20, 1) };
    // SAFETY: allocated from `heap` with this layout; replaced by the result.
    let q = unsafe { heap.reallocate(p, layout(20, 4), 32) }.unwrap();
    assert_eq!(q, p, "20 -> 32 bytes: both in the 32-byte class");
    // SAFETY: the first 20 bytes were kept.
    unsafe { verify(q, 20, 1) };
    // SAFETY: allocated (resized) to 32 bytes; replaced by the result.
    let r = unsafe { heap.reallocate(q, layout(32, 4), 17) }.unwrap();
    assert_eq!(r, p);
    // SAFETY: the first 17 bytes were kept.
    unsafe { verify(r, 17, 1) };
    assert_eq!(heap.stats().classes()[index_of(32)].objects_in_use, 1);
    // SAFETY: resized to 17 bytes, not used again.
    unsafe { heap.deallocate(r, layout(17, 4)) };
    assert_eq!(heap.stats().objects_in_use(), 0);
}

#[test]
fn resizing_across_classes_keeps_the_contents() {
    let heap = Heap::new();
    let p = heap.allocate(layout(16, 8)).unwrap();
    // SAFETY: just allocated for 16 bytes, ours alone.
    unsafe { fill(p, 16, 7) };
    // SAFETY: allocated from `heap` with this layout; replaced by the result.
    let q = unsafe { heap.reallocate(p, layout(16, 8), 200) }.unwrap();
    // SAFETY: the first 16 bytes were kept.
    unsafe { verify(q, 16, 7) };
    let s = heap.stats();
    assert_eq!(
        s.classes()[index_of(16)].objects_in_use,
        0,
        "the old slot was freed"
    );
    assert_eq!(s.classes()[index_of(256)].objects_in_use, 1);
    // SAFETY: the new block is valid for 200 bytes and ours.
    unsafe { fill(q, 200, 8) };
    // SAFETY: resized to 200 bytes; replaced by the result.
    let r = unsafe { heap.reallocate(q, layout(200, 8), 10) }.unwrap();
    // SAFETY: the first 10 bytes were kept.
    unsafe { verify(r, 10, 8) };
    let s = heap.stats();
    assert_eq!(s.classes()[index_of(256)].objects_in_use, 0);
    assert_eq!(s.classes()[index_of(16)].objects_in_use, 1);
    // SAFETY: resized to 10 bytes, not used again.
    unsafe { heap.deallocate(r, layout(10, 8)) };
    assert_eq!(heap.stats().objects_in_use(), 0);
}

#[test]
fn resizing_between_a_class_and_the_fallback_keeps_the_contents() {
    let heap = SlabAllocator::new_in(GlobalPages::new(), System);
    let p = heap.allocate(layout(100, 8)).unwrap();
    // SAFETY: just allocated for 100 bytes, ours alone.
    unsafe { fill(p, 100, 1) };
    // SAFETY: allocated from `heap` with this layout; replaced by the result.
    let q = unsafe { heap.reallocate(p, layout(100, 8), 1000) }.unwrap();
    // SAFETY: the first 100 bytes were kept.
    unsafe { verify(q, 100, 1) };
    let s = heap.stats();
    assert_eq!((s.fallback_allocations, s.fallback_bytes), (1, 1000));
    assert_eq!(s.objects_in_use(), 0, "the class slot was freed");
    // SAFETY: valid for 1000 bytes and ours.
    unsafe { fill(q, 1000, 2) };
    // SAFETY: resized to 1000 bytes; replaced by the result.
    let r = unsafe { heap.reallocate(q, layout(1000, 8), 3000) }.unwrap();
    // SAFETY: the first 1000 bytes were kept.
    unsafe { verify(r, 1000, 2) };
    assert_eq!(
        (
            heap.stats().fallback_allocations,
            heap.stats().fallback_bytes
        ),
        (1, 3000)
    );
    // SAFETY: resized to 3000 bytes; replaced by the result.
    let t = unsafe { heap.reallocate(r, layout(3000, 8), 50) }.unwrap();
    // SAFETY: the first 50 bytes were kept.
    unsafe { verify(t, 50, 2) };
    let s = heap.stats();
    assert_eq!((s.fallback_allocations, s.fallback_bytes), (0, 0));
    assert_eq!(s.classes()[index_of(64)].objects_in_use, 1);
    // SAFETY: resized to 50 bytes, not used again.
    unsafe { heap.deallocate(t, layout(50, 8)) };
    assert_eq!(heap.stats().objects_in_use(), 0);
}

#[test]
fn a_failed_resize_leaves_the_block_untouched() {
    let heap = Heap::new();
    let p = heap.allocate(layout(64, 8)).unwrap();
    // SAFETY: just allocated for 64 bytes, ours alone.
    unsafe { fill(p, 64, 3) };
    // SAFETY: allocated from `heap` with this layout; on failure still ours.
    let err = unsafe { heap.reallocate(p, layout(64, 8), 1000) }.unwrap_err();
    assert_eq!(
        err,
        AllocError::UnsupportedLayout {
            size: 1000,
            align: 8
        }
    );
    // SAFETY: the failed resize left the block valid and ours.
    unsafe { verify(p, 64, 3) };
    assert_eq!(
        heap.stats().objects_in_use(),
        1,
        "the block is still allocated"
    );
    // SAFETY: allocated with this layout, not used again.
    unsafe { heap.deallocate(p, layout(64, 8)) };
    assert_eq!(heap.stats().objects_in_use(), 0);
}

#[test]
fn resizing_from_and_to_zero_bytes() {
    let heap = Heap::new();
    let z = heap.allocate(layout(0, 8)).unwrap();
    // SAFETY: a zero-sized allocation from `heap`; replaced by the result.
    let p = unsafe { heap.reallocate(z, layout(0, 8), 24) }.unwrap();
    assert_eq!(p.as_ptr().addr() % 8, 0);
    assert_eq!(heap.stats().classes()[index_of(32)].objects_in_use, 1);
    // SAFETY: valid for 24 bytes and ours.
    unsafe { fill(p, 24, 9) };
    // SAFETY: resized to 24 bytes; replaced by the result.
    let e = unsafe { heap.reallocate(p, layout(24, 8), 0) }.unwrap();
    assert_eq!(e.as_ptr().addr() % 8, 0);
    assert_eq!(
        heap.stats().objects_in_use(),
        0,
        "resizing to zero frees the slot"
    );
    // SAFETY: a zero-sized allocation; a no-op.
    unsafe { heap.deallocate(e, layout(0, 8)) };
}

#[test]
fn global_alloc_methods_work_on_a_local_instance() {
    let heap = Heap::new();
    let l = layout(48, 16);
    // SAFETY: `l` has a non-zero size.
    let p = unsafe { GlobalAlloc::alloc(&heap, l) };
    let p = NonNull::new(p).expect("48 bytes are served");
    assert_eq!(p.as_ptr().addr() % 16, 0);
    // SAFETY: just allocated for 48 bytes, ours alone.
    unsafe { fill(p, 48, 4) };
    // SAFETY: allocated from `heap` with `l`; 100 is non-zero; replaced below.
    let q = unsafe { GlobalAlloc::realloc(&heap, p.as_ptr(), l, 100) };
    let q = NonNull::new(q).expect("100 bytes are served");
    // SAFETY: the first 48 bytes were kept.
    unsafe { verify(q, 48, 4) };
    assert_eq!(heap.stats().classes()[index_of(128)].objects_in_use, 1);
    // SAFETY: resized to 100 bytes, not used again.
    unsafe { GlobalAlloc::dealloc(&heap, q.as_ptr(), layout(100, 16)) };

    // alloc_zeroed zeroes a slot that held data before.
    let l = layout(64, 8);
    // SAFETY: non-zero size.
    let dirty = NonNull::new(unsafe { GlobalAlloc::alloc(&heap, l) }).unwrap();
    // SAFETY: valid for 64 bytes and ours.
    unsafe { dirty.as_ptr().write_bytes(0xFF, 64) };
    // SAFETY: allocated with `l`, not used again.
    unsafe { GlobalAlloc::dealloc(&heap, dirty.as_ptr(), l) };
    // SAFETY: non-zero size.
    let zeroed = NonNull::new(unsafe { GlobalAlloc::alloc_zeroed(&heap, l) }).unwrap();
    assert_eq!(zeroed, dirty, "the freed slot is reused");
    // SAFETY: valid for 64 initialised (zeroed) bytes.
    let bytes = unsafe { std::slice::from_raw_parts(zeroed.as_ptr(), 64) };
    assert!(bytes.iter().all(|&b| b == 0));
    // SAFETY: allocated with `l`, not used again.
    unsafe { GlobalAlloc::dealloc(&heap, zeroed.as_ptr(), l) };

    // What no class serves is a null pointer, not a panic.
    // SAFETY: non-zero size.
    assert!(unsafe { GlobalAlloc::alloc(&heap, layout(1000, 8)) }.is_null());
    let small = layout(8, 8);
    // SAFETY: non-zero size.
    let s = unsafe { GlobalAlloc::alloc(&heap, small) };
    assert!(!s.is_null());
    // SAFETY: allocated with `small`; on failure (null) it stays ours.
    let grown = unsafe { GlobalAlloc::realloc(&heap, s, small, 1000) };
    assert!(grown.is_null());
    // SAFETY: still allocated with `small`, not used again.
    unsafe { GlobalAlloc::dealloc(&heap, s, small) };
    assert_eq!(heap.stats().objects_in_use(), 0);
}

/// The `active_objs` column of the row named `name` in a stats table.
fn active_objs(table: &str, name: &str) -> usize {
    let row = table
        .lines()
        .find(|line| line.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in\n{table}"));
    row.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn the_stats_table_has_a_row_per_class() {
    let heap = Heap::new();
    let l64 = layout(64, 8);
    let l8 = layout(3, 1);
    let a: Vec<_> = (0..3).map(|_| heap.allocate(l64).unwrap()).collect();
    let b = heap.allocate(l8).unwrap();
    let stats = heap.stats();
    let table = stats.to_string();
    assert!(table.starts_with('#'), "a header line first:\n{table}");
    for class in CLASSES {
        assert!(
            table.contains(&format!("size-{class} ")),
            "no row for {class}:\n{table}"
        );
    }
    assert_eq!(active_objs(&table, "size-64"), 3);
    assert_eq!(active_objs(&table, "size-8"), 1);
    assert_eq!(active_objs(&table, "size-256"), 0);
    assert!(table.contains("fallback: 0 allocations, 0 bytes"));
    let one = stats.classes()[index_of(64)].to_string();
    assert_eq!(active_objs(&one, "size-64"), 3);
    assert_eq!(stats.classes()[index_of(64)].name, "size-64");
    assert_eq!(
        stats.header_bytes(),
        stats.classes().iter().map(|c| c.header_bytes).sum()
    );
    assert_eq!(stats.bytes_held(), stats.pages() * 4096);
    for p in a {
        // SAFETY: allocated with `l64`, not used again.
        unsafe { heap.deallocate(p, l64) };
    }
    // SAFETY: allocated with `l8`, not used again.
    unsafe { heap.deallocate(b, l8) };
}

#[test]
fn the_class_table_follows_the_size_class_limit() {
    type Big = SlabAllocator<GlobalPages<U16384>, NoFallback, U4096>;
    let heap: Big = SlabAllocator::with_size_classes(
        GlobalPages::with_page_size(),
        NoFallback,
        CacheConfig::new(),
    );
    let s = heap.stats();
    assert_eq!(s.classes().len(), 10);
    for (i, c) in s.classes().iter().enumerate() {
        assert_eq!(c.slot_size, 8 << i);
        assert_eq!(c.name, format!("size-{}", 8 << i));
        assert_eq!(c.page_size, 16384);
    }

    let page = layout(4096, 4096);
    let ptrs: Vec<_> = (0..5).map(|_| heap.allocate(page).unwrap()).collect();
    let distinct: BTreeSet<_> = ptrs.iter().map(|p| p.as_ptr().addr()).collect();
    assert_eq!(distinct.len(), 5);
    assert!(distinct.iter().all(|a| a % 4096 == 0));
    let mid = heap.allocate(layout(3000, 8)).unwrap();
    let small = heap.allocate(layout(1025, 1)).unwrap();
    let s = heap.stats();
    assert_eq!(s.classes()[9].objects_in_use, 6);
    assert_eq!(
        s.classes()[8].objects_in_use,
        1,
        "1025 bytes: the 2048 class"
    );
    assert_eq!(
        heap.allocate(layout(4097, 1)).unwrap_err(),
        AllocError::UnsupportedLayout {
            size: 4097,
            align: 1
        }
    );
    assert!(heap.allocate(layout(8, 8192)).is_err());
    for p in ptrs {
        // SAFETY: allocated with `page`, not used again.
        unsafe { heap.deallocate(p, page) };
    }
    // SAFETY: allocated with these layouts, not used again.
    unsafe { heap.deallocate(mid, layout(3000, 8)) };
    // SAFETY: as above.
    unsafe { heap.deallocate(small, layout(1025, 1)) };
    assert_eq!(heap.stats().objects_in_use(), 0);

    let seven: SlabAllocator<GlobalPages, NoFallback, U512> =
        SlabAllocator::with_size_classes(GlobalPages::new(), NoFallback, CacheConfig::new());
    assert_eq!(seven.stats().classes().len(), 7);
    let eight: SlabAllocator<GlobalPages, NoFallback, U1024> =
        SlabAllocator::with_size_classes(GlobalPages::new(), NoFallback, CacheConfig::new());
    assert_eq!(eight.stats().classes().len(), 8);
    let p = eight.allocate(layout(1024, 1024)).unwrap();
    assert_eq!(p.as_ptr().addr() % 1024, 0);
    // SAFETY: allocated with this layout, not used again.
    unsafe { eight.deallocate(p, layout(1024, 1024)) };
}

#[test]
fn shrink_gives_back_every_empty_page() {
    let heap = Heap::new();
    let mut live = Vec::new();
    for class in CLASSES {
        for _ in 0..200 {
            live.push((
                heap.allocate(layout(class, class)).unwrap(),
                layout(class, class),
            ));
        }
    }
    let held = heap.stats().pages();
    assert!(held >= 6);
    for (p, l) in live {
        // SAFETY: allocated with `l`, not used again.
        unsafe { heap.deallocate(p, l) };
    }
    flush_allocator_thread_cache(&heap);
    let s = heap.stats();
    assert_eq!(s.objects_in_use(), 0);
    assert!(s.classes().iter().all(|c| c.pages == c.empty_slabs));
    assert_eq!(s.pages(), held, "every page kept for the recent peak");
    assert_eq!(heap.shrink_to_fit(), s.pages());
    assert_eq!(heap.stats().pages(), 0);
}

/// `shrink` while exactly one block is live on the allocator's one page, in
/// a fresh page (one block allocated) and in a full page emptied but for
/// one: the page stays, and the block keeps its contents and stays usable.
/// Once it is freed, the page goes back (at once when the allocator's
/// `reserve` is 0 and it gives pages back eagerly, else at the next
/// `shrink`).
fn shrink_keeps_the_page_of_one_live_block<P: PageAllocator>(
    heap: &SlabAllocator<P>,
    config: CacheConfig,
) {
    let l = layout(64, 8);
    let per_slab = heap.stats().classes()[index_of(64)].slots_per_slab;
    for allocated in [1, per_slab] {
        let mut all: Vec<_> = (0..allocated).map(|_| heap.allocate(l).unwrap()).collect();
        assert_eq!(heap.stats().pages(), 1, "{allocated} blocks fill one page");
        let survivor = all.swap_remove(allocated / 2);
        for p in all {
            // SAFETY: allocated with `l`, not used again.
            unsafe { heap.deallocate(p, l) };
        }
        // SAFETY: the survivor is live, 64 bytes, ours alone.
        unsafe { fill(survivor, 64, 1) };

        assert_eq!(heap.shrink_to_fit(), 0, "no empty page to give back");
        let s = heap.stats();
        assert_eq!(
            (s.pages(), s.objects_in_use()),
            (1, 1),
            "the page of the live block stays"
        );
        // SAFETY: filled above, still live.
        unsafe { verify(survivor, 64, 1) };
        // SAFETY: still live and ours: usable for writes after the shrink.
        unsafe { fill(survivor, 64, 2) };
        let neighbour = heap.allocate(l).unwrap();
        // SAFETY: a fresh 64-byte block, ours alone.
        unsafe { fill(neighbour, 64, 3) };
        // SAFETY: both filled above; neither write reached the other.
        unsafe { verify(survivor, 64, 2) };
        // SAFETY: as above.
        unsafe { verify(neighbour, 64, 3) };
        assert_eq!(heap.stats().pages(), 1);
        // SAFETY: allocated with `l`, not used again.
        unsafe { heap.deallocate(neighbour, l) };
        // SAFETY: allocated with `l`, not used again.
        unsafe { heap.deallocate(survivor, l) };
        flush_allocator_thread_cache(heap);

        let kept = heap.stats().pages();
        assert_eq!(
            kept,
            usize::from(config.reserve > 0 || config.decay > 0),
            "the empty page, kept only for a reserve or the recent peak"
        );
        assert_eq!(heap.shrink_to_fit(), kept);
        let s = heap.stats();
        assert_eq!(
            (s.pages(), s.objects_in_use()),
            (0, 0),
            "the page went back"
        );
    }
}

#[test]
fn shrink_keeps_a_page_with_one_live_block_and_the_block_intact() {
    shrink_keeps_the_page_of_one_live_block(&SlabAllocator::new(), CacheConfig::new());
    let eager = CacheConfig::new().reserve(0).eager();
    let no_reserve = SlabAllocator::with_config(ChunkedGlobalPages::global(), NoFallback, eager);
    shrink_keeps_the_page_of_one_live_block(&no_reserve, eager);
    // Straight from the global allocator, with the page source counting.
    let default_reserve = CacheConfig::new().reserve;
    for config in [
        eager,
        CacheConfig::new().reserve(0),
        CacheConfig::new().reserve(default_reserve),
    ] {
        let reserve = config.reserve;
        let pages = CountingPages::new(GlobalPages::new());
        let heap = SlabAllocator::with_config(&pages, NoFallback, config);
        shrink_keeps_the_page_of_one_live_block(&heap, config);
        assert_eq!(pages.outstanding(), 0, "reserve {reserve}");
        assert_eq!(
            pages.handed_out(),
            2,
            "reserve {reserve}: one page per round"
        );
    }
}

#[test]
fn a_page_limit_applies_to_each_class() {
    let heap = SlabAllocator::with_config(
        GlobalPages::new(),
        NoFallback,
        CacheConfig::new().page_limit(1),
    );
    let l = layout(256, 8);
    let per_slab = heap.stats().classes()[index_of(256)].slots_per_slab;
    let full: Vec<_> = (0..per_slab).map(|_| heap.allocate(l).unwrap()).collect();
    assert_eq!(
        heap.allocate(l).unwrap_err(),
        AllocError::PageLimit { limit: 1 }
    );
    let other = heap
        .allocate(layout(8, 8))
        .expect("another class has its own page");
    for p in full {
        // SAFETY: allocated with `l`, not used again.
        unsafe { heap.deallocate(p, l) };
    }
    // SAFETY: allocated with this layout, not used again.
    unsafe { heap.deallocate(other, layout(8, 8)) };
}

static SHARED: SlabAllocator = SlabAllocator::new();

#[test]
fn an_allocator_can_be_a_static_without_being_the_global_one() {
    let l = layout(40, 8);
    let p = SHARED.allocate(l).unwrap();
    // SAFETY: just allocated for 40 bytes, ours alone.
    unsafe { fill(p, 40, 11) };
    // SAFETY: filled above.
    unsafe { verify(p, 40, 11) };
    assert!(SHARED.stats().classes()[index_of(64)].objects_in_use >= 1);
    // SAFETY: allocated with `l`, not used again.
    unsafe { SHARED.deallocate(p, l) };
    // A static is never dropped; give its reserve back so that leak checkers
    // (Miri) see every page returned.
    SHARED.shrink_to_fit();
}

#[test]
fn occupancy_lists_each_class_and_its_used_slots() {
    let heap = SlabAllocator::new();
    let small = Layout::new::<[u8; 8]>();
    let large = Layout::new::<[u8; 200]>();
    let blocks: Vec<_> = (0..5).map(|_| heap.allocate(small).unwrap()).collect();
    let big = heap.allocate(large).unwrap();
    // SAFETY: allocated above with `small`, freed once.
    unsafe { heap.deallocate(blocks[1], small) };
    // Blocks resting in this thread's cache are used, as far as slabs know.
    flush_allocator_thread_cache(&heap);
    let mut rows = Vec::new();
    heap.for_each_slab(|class, slab| rows.push((class, slab.in_use(), slab.to_string())));
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].0, rows[0].1), (8, 4));
    assert!(rows[0].2.starts_with("#.###."), "{}", rows[0].2);
    assert_eq!((rows[1].0, rows[1].1), (256, 1));
    for (i, &p) in blocks.iter().enumerate() {
        if i != 1 {
            // SAFETY: allocated above with `small`, freed once.
            unsafe { heap.deallocate(p, small) };
        }
    }
    // SAFETY: allocated above with `large`.
    unsafe { heap.deallocate(big, large) };
}
