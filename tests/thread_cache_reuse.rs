//! A local `SlabAllocator` dropped
//! (every page given back) while other threads still cache its blocks, then
//! those threads use other allocators whose tickets land on the same table
//! entries, or exit. Nothing may touch the dropped allocator's pages (Miri
//! reports a use after free if anything does).

#![cfg(feature = "std")]

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;

use minimal_slab::SlabAllocator;

/// Allocates and frees `n` blocks of each size in `sizes` from `heap`, so
/// that the calling thread's cache keeps some.
fn churn(heap: &SlabAllocator, sizes: &[usize], n: usize) {
    for &size in sizes {
        let layout = Layout::from_size_align(size, 8).unwrap();
        let blocks: Vec<NonNull<u8>> = (0..n).map(|_| heap.allocate(layout).unwrap()).collect();
        for &b in &blocks {
            // SAFETY: `b` is valid for `size` bytes.
            unsafe { b.as_ptr().write_bytes(0x5A, size) };
        }
        for b in blocks {
            // SAFETY: allocated above with `layout`, freed once.
            unsafe { heap.deallocate(b, layout) };
        }
    }
}

const SIZES: [usize; 6] = [8, 16, 32, 64, 128, 256];

/// Thread B caches blocks of `a` in every class; `a` is dropped on the main
/// thread (its pages given back); B then uses 20 fresh allocators, one
/// after another, so that every entry of its table changes hands, and reads
/// their counters; a third thread reads the counters meanwhile; then B
/// exits holding cached blocks of the fresh ones.
#[test]
fn allocator_dropped_while_another_thread_caches_its_blocks() {
    let fresh_count = if cfg!(miri) { 18 } else { 40 };
    let a = Arc::new(SlabAllocator::new());
    let (cached_tx, cached_rx) = mpsc::channel();
    let (dropped_tx, dropped_rx) = mpsc::channel::<()>();
    let b = {
        let a = a.clone();
        thread::spawn(move || {
            churn(&a, &SIZES, 40);
            drop(a);
            cached_tx.send(()).unwrap();
            dropped_rx.recv().unwrap();
            let fresh: Vec<SlabAllocator> =
                (0..fresh_count).map(|_| SlabAllocator::new()).collect();
            for heap in &fresh {
                churn(heap, &SIZES, 20);
            }
            for heap in &fresh {
                let s = heap.stats();
                assert_eq!(s.objects_in_use(), 0, "{s}");
            }
            // Exits holding blocks of `fresh` in its cache; `fresh` is
            // dropped first (its blocks in this thread's cache go back).
            drop(fresh);
            let last = SlabAllocator::new();
            churn(&last, &SIZES, 20);
            last
        })
    };
    cached_rx.recv().unwrap();
    let s = a.stats();
    assert!(
        s.classes().iter().map(|c| c.cached_slots).sum::<usize>() > 0,
        "B caches blocks of `a`: {s}"
    );
    // The last reference: `a`'s drop runs here, on the main thread.
    drop(Arc::into_inner(a).expect("B dropped its clone"));
    dropped_tx.send(()).unwrap();
    // Another thread's counters meanwhile.
    let reader = thread::spawn(|| {
        let mine = SlabAllocator::new();
        for _ in 0..if cfg!(miri) { 2 } else { 50 } {
            churn(&mine, &[64], 10);
            let _ = mine.stats();
            mine.shrink_to_fit();
        }
    });
    let last = b.join().unwrap();
    reader.join().unwrap();
    // B exited: its blocks of `last` came back as orphans.
    let s = last.stats();
    assert_eq!(s.objects_in_use(), 0, "{s}");
    assert_eq!(
        s.classes().iter().map(|c| c.cached_slots).sum::<usize>(),
        0,
        "{s}"
    );
}

/// Several threads cache blocks of one allocator and exit while it is being
/// dropped and while fresh allocators reuse registry places.
#[test]
fn threads_exit_while_the_allocator_they_cached_is_dropped() {
    let rounds = if cfg!(miri) { 2 } else { 50 };
    for _ in 0..rounds {
        let a = Arc::new(SlabAllocator::new());
        let ready = Arc::new(Barrier::new(4));
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let a = a.clone();
                let ready = ready.clone();
                thread::spawn(move || {
                    churn(&a, &SIZES[..3], 20);
                    drop(a);
                    ready.wait();
                    // Exit now, racing with the drop and with new tickets.
                    let other = SlabAllocator::new();
                    churn(&other, &SIZES[..3], 5);
                })
            })
            .collect();
        ready.wait();
        // The workers dropped their clones before `wait`.
        let a = Arc::into_inner(a).expect("sole owner");
        drop(a);
        for w in workers {
            w.join().unwrap();
        }
    }
}
