//! The fallback's counts when blocks beyond the size classes are allocated
//! on some threads and freed on others: exact once the threads are done,
//! and while they run never below zero (a block freed on another thread
//! than it came from must not show as the top of `usize`). A sum taken
//! while others count may include blocks that came in while it was under
//! way, and so is bounded here by all the blocks the test allocates.

use std::alloc::{Layout, System};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use minimal_slab::{GlobalPages, SlabAllocator};

type Heap = SlabAllocator<GlobalPages, System>;

/// Beyond the largest class (256 bytes): the fallback's.
const SIZE: usize = 700;

/// Blocks each producer may have sent and its consumer not yet freed.
const BOUND: usize = 8;

/// A block on its way from one thread to another.
struct Block(NonNull<u8>);

// SAFETY: a block of the heap's fallback is plain memory, freed by whoever
// receives it.
unsafe impl Send for Block {}

#[test]
fn blocks_freed_on_other_threads_are_counted_exactly_and_never_below_zero() {
    let heap = Heap::new_in(GlobalPages::new(), System);
    let layout = Layout::from_size_align(SIZE, 8).unwrap();
    assert_eq!(Heap::size_class(layout), None);
    let pairs = 3;
    let rounds = if cfg!(miri) { 20 } else { 20_000 };
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let mut workers = Vec::new();
        for _ in 0..pairs {
            let (send, receive) = mpsc::sync_channel::<Block>(BOUND);
            let heap = &heap;
            workers.push(s.spawn(move || {
                for _ in 0..rounds {
                    let block = heap.allocate(layout).expect("the fallback serves it");
                    send.send(Block(block)).unwrap();
                }
            }));
            workers.push(s.spawn(move || {
                for Block(block) in receive {
                    // SAFETY: allocated from `heap` with `layout` on the
                    // producer, not used again.
                    unsafe { heap.deallocate(block, layout) };
                }
            }));
        }
        let done = &done;
        let heap = &heap;
        let watcher = s.spawn(move || {
            let most = pairs * rounds;
            while !done.load(Ordering::Relaxed) {
                let stats = heap.stats();
                assert!(
                    stats.fallback_allocations <= most && stats.fallback_bytes <= most * SIZE,
                    "{} blocks, {} bytes in the fallback, of {most} blocks allocated in all",
                    stats.fallback_allocations,
                    stats.fallback_bytes,
                );
                std::thread::yield_now();
            }
        });
        for worker in workers {
            worker.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        watcher.join().unwrap();
    });
    let stats = heap.stats();
    assert_eq!((stats.fallback_allocations, stats.fallback_bytes), (0, 0));
}
