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

fn cached<N: minimal_slab::generic_array::ArrayLength>(
    stats: &minimal_slab::AllocatorStats<N>,
) -> usize {
    stats.classes().iter().map(|c| c.cached_slots).sum()
}

/// Runs `work(t)` on four threads, `t` in `0..4`, waits until they have
/// exited, and checks that every block they allocated came back.
fn on_four_threads_every_block_comes_back(work: fn(usize)) {
    let before = HEAP.stats().objects_in_use();
    // Spawned and joined, not scoped: `join` waits until the thread has
    // run its thread-local destructors (a scope may end before they run).
    let threads: Vec<_> = (0..4)
        .map(|t| std::thread::spawn(move || work(t)))
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let after = HEAP.stats();
    assert_eq!(
        after.objects_in_use(),
        before,
        "every block came back: {after}"
    );
}

/// Threads that free blocks keep them in their per-thread caches (where the
/// global allocator has them); when they exit, the blocks go back, and every
/// count balances.
fn threads_exit_holding_cached_blocks() {
    on_four_threads_every_block_comes_back(|t| {
        let blocks: Vec<Vec<u8>> = (0..SCALE / 10)
            .map(|i| vec![t as u8; 1 + (i * 7) % 250])
            .collect();
        assert!(blocks.iter().all(|b| b.iter().all(|&x| x == t as u8)));
        drop(blocks);
        // Some may rest in this thread's cache now; exiting gives them up.
    });
}

struct AllocatesWhenDropped(Vec<u64>);

impl Drop for AllocatesWhenDropped {
    fn drop(&mut self) {
        // Runs while the thread tears its storage down, before or after the
        // allocator's own exit guard: both must work.
        let copy: Vec<u64> = self.0.iter().map(|x| x + 1).collect();
        let text = format!("{copy:?}");
        assert!(text.len() > 2);
    }
}

std::thread_local! {
    static TORN_DOWN_LATE: std::cell::RefCell<Option<AllocatesWhenDropped>> =
        const { std::cell::RefCell::new(None) };
}

/// Thread-local destructors allocate and free while the thread exits.
fn thread_local_destructors_allocate() {
    on_four_threads_every_block_comes_back(|t| {
        let late = || {
            TORN_DOWN_LATE.with(|slot| {
                *slot.borrow_mut() = Some(AllocatesWhenDropped(vec![t as u64; 40]));
            });
        };
        if t % 2 == 0 {
            late(); // registered before the allocator's guard...
        }
        let warm: Vec<Box<u64>> = (0..100).map(Box::new).collect();
        drop(warm);
        if t % 2 == 1 {
            late(); // ...or after it
        }
    });
}

/// The calling thread's cache, counted apart, goes back on `shrink_to_fit`.
fn the_calling_threads_cache_is_counted_and_flushed() {
    let blocks: Vec<Box<[u64; 4]>> = (0..200).map(|i| Box::new([i; 4])).collect();
    drop(blocks);
    let resting = cached(&HEAP.stats());
    if SlabAllocator::<GlobalAllocPages<System>, System>::GLOBAL_ALLOC_PER_THREAD {
        assert!(resting > 0, "freed blocks rest in this thread's cache");
    } else {
        assert_eq!(resting, 0, "the locked path caches nothing");
        println!("(this compiler's global allocator takes the locked path)");
    }
    HEAP.flush_thread_cache();
    assert_eq!(cached(&HEAP.stats()), 0, "flushed");
}

fn main() {
    // Warm up what std allocates once and keeps (the stdout buffer, the
    // main thread's bookkeeping, a first spawned thread's), so that the
    // counters below see the tests alone.
    println!("running 7 tests on SlabAllocator as the global allocator");
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
        (
            "threads_exit_holding_cached_blocks",
            threads_exit_holding_cached_blocks,
        ),
        (
            "thread_local_destructors_allocate",
            thread_local_destructors_allocate,
        ),
        (
            "the_calling_threads_cache_is_counted_and_flushed",
            the_calling_threads_cache_is_counted_and_flushed,
        ),
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
