//! `SlabAllocator` as a program's `#[global_allocator]`: std collections,
//! `Box`es whose pointers carry narrowed provenance, and threads, all served
//! by the size classes (and `System` beyond them); the counters must balance.
//!
//! No test harness: the harness itself would allocate through the allocator
//! under test while the counters are read.

use std::alloc::System;
use std::collections::BTreeMap;

use minimal_slab::{GlobalAllocPages, SlabAllocator};

#[global_allocator]
static HEAP: SlabAllocator<GlobalAllocPages<System>, System> =
    SlabAllocator::new_in(GlobalAllocPages::new(System), System);

const SCALE: usize = if cfg!(miri) { 20 } else { 20_000 };

fn boxes_come_back() {
    let before = HEAP.stats().objects_in_use();
    // A `Box` narrows its pointer's borrow to the object: freeing it must
    // still reach the slab header soundly.
    let boxes: Vec<Box<[u64; 3]>> = (0..SCALE as u64).map(|i| Box::new([i; 3])).collect();
    for (i, b) in boxes.iter().enumerate() {
        assert_eq!(**b, [i as u64; 3]);
    }
    let leaked: &mut [u64; 3] = Box::leak(Box::new([7; 3]));
    leaked[0] = 8;
    // SAFETY: `leaked` came from `Box::leak` just above and is not used again.
    drop(unsafe { Box::from_raw(leaked as *mut [u64; 3]) });
    drop(boxes);
    assert_eq!(
        HEAP.stats().objects_in_use(),
        before,
        "every Box returned its slot"
    );
}

fn small_boxes_and_in_place_growth() {
    // Objects smaller than a free-list link: the link's bytes beyond the
    // object lie outside the `Box`'s borrow.
    for i in 0..SCALE as u32 {
        let b = Box::new(i as u8);
        assert_eq!(*b, i as u8);
        drop(b);
        drop(Box::new(i));
    }
    // Growing within a size class returns a pointer valid for the new size,
    // even when the old one came from a `Box` covering the old size only.
    let boxed: Box<[u8]> = vec![1_u8; 9].into_boxed_slice(); // the 16-byte class
    let mut v = boxed.into_vec();
    v.reserve_exact(7);
    for i in 0..7 {
        v.push(i);
    }
    assert_eq!(v, [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 2, 3, 4, 5, 6]);
}

fn collections_work() {
    let mut words: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..SCALE {
        *words.entry(format!("w{}", i % 97)).or_default() += 1;
    }
    assert_eq!(words.len(), 97.min(SCALE));
    assert_eq!(words.values().sum::<usize>(), SCALE);
    let mut v: Vec<u32> = Vec::new();
    for i in 0..SCALE as u32 {
        v.push(i); // grows through every size class, then the fallback
    }
    assert_eq!(
        v.iter().map(|&x| x as u64).sum::<u64>(),
        (SCALE as u64) * (SCALE as u64 - 1) / 2
    );
}

fn threads_share_it() {
    let totals: Vec<usize> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|t| {
                s.spawn(move || {
                    let mut strings = Vec::new();
                    for i in 0..SCALE / 2 {
                        strings.push(format!("thread {t} item {i}"));
                    }
                    strings.iter().map(String::len).sum::<usize>()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert_eq!(totals[0], totals[1]);
}

fn main() {
    // Warm up what std allocates once and keeps (the stdout buffer, the
    // main thread's bookkeeping, a first spawned thread's), so that the
    // counters below see the tests alone.
    println!("running 4 tests on SlabAllocator as the global allocator");
    std::thread::spawn(|| ()).join().unwrap();
    let start = HEAP.stats();
    let mut passed = 0;
    for (name, test) in [
        ("boxes_come_back", boxes_come_back as fn()),
        (
            "small_boxes_and_in_place_growth",
            small_boxes_and_in_place_growth,
        ),
        ("collections_work", collections_work),
        ("threads_share_it", threads_share_it),
    ] {
        test();
        println!("test {name} ... ok");
        passed += 1;
    }
    let end = HEAP.stats();
    assert_eq!(
        end.fallback_allocations, start.fallback_allocations,
        "the fallback's live allocations balance"
    );
    assert!(end.pages() > 0, "the size classes served the program");
    println!("{end}");
    println!("as_global_allocator: {passed} passed, 0 failed");
}
