//! The per-thread caches behind `SlabCache::alloc` and `SlabBox`'s drop
//! (feature `std`): slots that rest in a thread's cache are counted apart,
//! go back when the thread exits or calls `shrink`, and are never touched
//! again once their cache is gone — whether it was dropped, moved, or used
//! from more caches than a thread's table has entries for.

#![cfg(feature = "std")]

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;

use common::CountingPages;
use minimal_slab::{CacheStats, GlobalPages, SlabBox, SlabCache};

type Pages = CountingPages<GlobalPages>;

/// Counters that add up: every slot of every page held is in use, cached
/// or free.
fn assert_consistent(s: &CacheStats) {
    assert_eq!(
        s.objects_in_use + s.cached_slots + s.free_slots,
        s.pages * s.slots_per_slab,
        "{s:?}"
    );
}

#[test]
fn freed_slots_rest_in_the_thread_cache_and_shrink_gives_them_back() {
    let pages = Pages::new(GlobalPages::new());
    let cache: SlabCache<[u64; 8], _> = SlabCache::new_in(&pages);
    let boxes: Vec<_> = (0..100).map(|i| cache.alloc([i; 8]).unwrap()).collect();
    drop(boxes);
    let s = cache.stats();
    assert_eq!(s.objects_in_use, 0);
    assert!(
        s.cached_slots > 0,
        "frees rest in this thread's cache: {s:?}"
    );
    assert_consistent(&s);
    let pages_before = s.pages;
    assert_eq!(
        cache.shrink(),
        pages_before,
        "every page was empty or cached"
    );
    let s = cache.stats();
    assert_eq!((s.pages, s.cached_slots), (0, 0));
    assert_eq!(pages.outstanding(), 0);
}

#[test]
fn the_same_slot_comes_back_without_touching_the_slabs() {
    let cache: SlabCache<u64> = SlabCache::new();
    let first = SlabBox::as_ptr(&cache.alloc(1).unwrap());
    for i in 0..1000 {
        let b = cache.alloc(i).unwrap();
        assert_eq!(SlabBox::as_ptr(&b), first, "last freed, first reused");
    }
}

#[test]
fn a_thread_that_exits_gives_its_cached_slots_back() {
    static CACHE: SlabCache<[u64; 4]> = SlabCache::new();
    let worker = thread::spawn(|| {
        let boxes: Vec<_> = (0..500).map(|i| CACHE.alloc([i; 4]).unwrap()).collect();
        drop(boxes);
        CACHE.stats().cached_slots
    });
    let cached_there = worker.join().unwrap();
    assert!(cached_there > 0);
    // A joined thread has run its thread-local destructors: its table gave
    // the slots up, and `stats` took them back into the slabs. Batches its
    // magazine overflowed with wait in the cache's depot (release builds),
    // for the next thread to run dry.
    let s = CACHE.stats();
    assert_eq!(s.objects_in_use, 0, "{s:?}");
    assert_eq!(s.cached_slots, s.depot_slots, "{s:?}");
    assert!(
        s.depot_slots * s.slot_size <= 4 << 20,
        "the depot keeps 4 MiB of slots at most: {s:?}"
    );
    assert_consistent(&s);
    CACHE.shrink();
    assert_eq!(CACHE.stats().pages, 0);
}

#[test]
fn stats_count_the_slots_other_threads_cache() {
    let cache: SlabCache<[u64; 4]> = SlabCache::new();
    let (cached, done) = (Barrier::new(2), Barrier::new(2));
    thread::scope(|s| {
        s.spawn(|| {
            let boxes: Vec<_> = (0..40).map(|i| cache.alloc([i; 4]).unwrap()).collect();
            drop(boxes);
            cached.wait();
            done.wait(); // keep the slots cached while the main thread looks
        });
        cached.wait();
        let seen = cache.stats();
        // `shrink` here gives back this thread's slots only: the other
        // thread's keep their slabs.
        cache.shrink();
        let after_shrink = cache.stats();
        done.wait(); // before any assertion, so that a failure cannot hang
        assert_eq!(seen.objects_in_use, 0, "{seen:?}");
        assert!(seen.cached_slots >= 1, "{seen:?}");
        assert_consistent(&seen);
        assert!(after_shrink.pages >= 1, "{after_shrink:?}");
    });
}

#[test]
fn a_cache_dropped_while_another_thread_caches_its_slots_frees_every_page() {
    type Cache = SlabCache<[u64; 4], &'static Pages>;
    /// The cache's address, for the worker: a reference would live as long
    /// as the worker's closure, past the cache's drop.
    struct Shared(*const Cache);
    // SAFETY: the cache is `Sync`; the test orders every use of the pointer
    // before the cache's drop.
    unsafe impl Send for Shared {}

    let pages_box = Box::into_raw(Box::new(Pages::new(GlobalPages::new())));
    // SAFETY: from `Box::into_raw`; freed at the end, once nothing uses it.
    let pages: &'static Pages = unsafe { &*pages_box };
    let cache = Box::into_raw(Box::new(Cache::new_in(pages)));
    let (used, dropped) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let worker = {
        let (used, dropped) = (Arc::clone(&used), Arc::clone(&dropped));
        let shared = Shared(cache);
        thread::spawn(move || {
            let shared = shared; // the whole wrapper, not its field
            {
                // SAFETY: the main thread drops the cache only after `used`.
                let cache = unsafe { &*shared.0 };
                let boxes: Vec<_> = (0..100).map(|i| cache.alloc([i; 4]).unwrap()).collect();
                drop(boxes);
                assert!(cache.stats().cached_slots > 0);
            }
            used.wait();
            // The cache is dropped now; this thread's table still holds its
            // slots, and gives them up (to no one) when the thread exits.
            dropped.wait();
            // A new cache, whose entry may be the dropped one's.
            let other: SlabCache<[u64; 4]> = SlabCache::new();
            for i in 0..100 {
                drop(other.alloc([i; 4]).unwrap());
            }
        })
    };
    used.wait();
    // SAFETY: from `Box::into_raw` above; the worker no longer uses it.
    drop(unsafe { Box::from_raw(cache) });
    assert_eq!(pages.outstanding(), 0, "the drop gave back every page");
    dropped.wait();
    worker.join().unwrap();
    assert_eq!(pages.outstanding(), 0);
    // SAFETY: from `Box::into_raw` above; the cache that used it is gone.
    drop(unsafe { Box::from_raw(pages_box) });
}

#[test]
fn a_cache_moved_after_use_keeps_working_and_gives_everything_back() {
    let pages = Pages::new(GlobalPages::new());
    let cache: SlabCache<u64, &Pages> = SlabCache::new_in(&pages);
    drop((0..50).map(|i| cache.alloc(i).unwrap()).collect::<Vec<_>>());
    let moved = Box::new(cache);
    let kept: Vec<_> = (0..50).map(|i| moved.alloc(i).unwrap()).collect();
    assert!(kept.iter().enumerate().all(|(i, b)| **b == i as u64));
    let s = moved.stats();
    assert_eq!(s.objects_in_use, 50);
    assert_consistent(&s);
    drop(kept);
    drop(moved);
    assert_eq!(pages.outstanding(), 0);
}

#[test]
fn more_caches_than_table_entries_in_one_thread() {
    let pages = Pages::new(GlobalPages::new());
    let caches: Vec<SlabCache<[u64; 2], &Pages>> =
        (0..40).map(|_| SlabCache::new_in(&pages)).collect();
    let mut live = Vec::new();
    for round in 0..20_u64 {
        for (i, cache) in caches.iter().enumerate() {
            live.push((i, round, cache.alloc([round, i as u64]).unwrap()));
        }
        // Free every other one, so that entries change hands with slots in
        // them.
        live.retain(|(i, r, _)| (i + *r as usize).is_multiple_of(2));
    }
    for (i, round, b) in &live {
        assert_eq!(**b, [*round, *i as u64], "object of cache {i} intact");
    }
    for (i, cache) in caches.iter().enumerate() {
        let s = cache.stats();
        let mine = live.iter().filter(|(j, ..)| *j == i).count();
        assert_eq!(s.objects_in_use, mine, "cache {i}: {s:?}");
        assert_consistent(&s);
    }
    drop(live);
    drop(caches);
    assert_eq!(pages.outstanding(), 0);
}

#[test]
fn handles_sent_to_another_thread_are_freed_there() {
    static CACHE: SlabCache<[u64; 8]> = SlabCache::new();
    const BATCH: usize = 256;
    const ROUNDS: usize = if cfg!(miri) { 2 } else { 20 };
    let (tx, rx) = mpsc::sync_channel::<Vec<SlabBox<'static, [u64; 8]>>>(4);
    let consumer = thread::spawn(move || {
        let mut freed = 0;
        for batch in rx {
            for (i, b) in batch.into_iter().enumerate() {
                assert_eq!(b[0], i as u64);
                freed += 1;
            }
        }
        freed
    });
    for _ in 0..ROUNDS {
        let batch = (0..BATCH)
            .map(|i| CACHE.alloc([i as u64; 8]).unwrap())
            .collect();
        tx.send(batch).unwrap();
    }
    drop(tx);
    assert_eq!(consumer.join().unwrap(), ROUNDS * BATCH);
    let s = CACHE.stats();
    assert_eq!(s.objects_in_use, 0, "{s:?}");
    assert_consistent(&s);
}

#[test]
fn a_handle_dropped_by_a_thread_local_destructor_is_freed() {
    static CACHE: SlabCache<u64> = SlabCache::new();
    struct Holder(std::cell::RefCell<Vec<SlabBox<'static, u64>>>);
    thread_local! {
        static HELD: Holder = const { Holder(std::cell::RefCell::new(Vec::new())) };
    }
    thread::spawn(|| {
        // Registered after the table or before it: either way the handles
        // are freed, into the table or, once it is gone, through the lock.
        HELD.with(|h| {
            h.0.borrow_mut()
                .extend((0..10).map(|i| CACHE.alloc(i).unwrap()))
        });
        drop(CACHE.alloc(99).unwrap());
    })
    .join()
    .unwrap();
    let s = CACHE.stats();
    assert_eq!((s.objects_in_use, s.cached_slots), (0, 0), "{s:?}");
}

#[test]
fn zero_sized_values_take_no_slot_and_no_entry() {
    let cache: SlabCache<()> = SlabCache::new();
    let boxes: Vec<_> = (0..100).map(|_| cache.alloc(()).unwrap()).collect();
    drop(boxes);
    let s = cache.stats();
    assert_eq!((s.pages, s.cached_slots), (0, 0));
}

/// A page source that asks the cache it serves for its `stats()` (which
/// take the cache's lock) each time it hands out a page.
struct Peeking {
    inner: GlobalPages,
    peeks: std::sync::atomic::AtomicUsize,
}

static PEEKING: Peeking = Peeking {
    inner: GlobalPages::new(),
    peeks: std::sync::atomic::AtomicUsize::new(0),
};
static PEEKED: SlabCache<[u64; 8], &Peeking> = SlabCache::new_in(&PEEKING);

// SAFETY: forwards both methods to `GlobalPages`, which upholds the contract.
unsafe impl minimal_slab::PageAllocator for Peeking {
    type PageSize = <GlobalPages as minimal_slab::PageAllocator>::PageSize;

    fn allocate_page(&self) -> Result<std::ptr::NonNull<u8>, minimal_slab::PageAllocError> {
        let s = PEEKED.stats();
        assert_consistent(&s);
        self.peeks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.allocate_page()
    }

    unsafe fn deallocate_page(&self, page: std::ptr::NonNull<u8>) {
        // SAFETY: the caller's guarantees, forwarded.
        unsafe { self.inner.deallocate_page(page) }
    }
}

/// A refill that needs a new page asks for it with the cache's lock let
/// go: a page source that takes that lock (here through `stats()`) does
/// not deadlock. (Run on a thread of its own, with a deadline: a deadlock
/// would otherwise hang the suite.)
#[test]
fn a_refill_asks_for_a_new_page_with_the_cache_lock_let_go() {
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        let objects: Vec<_> = (0..500u64).map(|i| PEEKED.alloc([i; 8]).unwrap()).collect();
        assert!(objects.iter().enumerate().all(|(i, o)| o[7] == i as u64));
        drop(objects);
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the page source waited on the cache's lock");
    assert!(
        PEEKING.peeks.load(std::sync::atomic::Ordering::Relaxed) >= 8,
        "500 objects take 8 pages"
    );
    PEEKED.shrink();
}

/// A page source that, handing out its third page, sets a limit of two
/// pages on the cache it serves: as if another thread had set it while the
/// page was being made.
struct Limiting {
    inner: GlobalPages,
    handed_out: std::sync::atomic::AtomicUsize,
    given_back: std::sync::atomic::AtomicUsize,
}

static LIMITING: Limiting = Limiting {
    inner: GlobalPages::new(),
    handed_out: std::sync::atomic::AtomicUsize::new(0),
    given_back: std::sync::atomic::AtomicUsize::new(0),
};
static LIMITED: SlabCache<[u64; 8], &Limiting> = SlabCache::new_in(&LIMITING);

// SAFETY: forwards both methods to `GlobalPages`, which upholds the contract.
unsafe impl minimal_slab::PageAllocator for Limiting {
    type PageSize = <GlobalPages as minimal_slab::PageAllocator>::PageSize;

    fn allocate_page(&self) -> Result<std::ptr::NonNull<u8>, minimal_slab::PageAllocError> {
        let taken = self
            .handed_out
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if taken == 2 {
            LIMITED.set_config(minimal_slab::CacheConfig::new().page_limit(2));
        }
        self.inner.allocate_page()
    }

    unsafe fn deallocate_page(&self, page: std::ptr::NonNull<u8>) {
        self.given_back
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the caller's guarantees, forwarded.
        unsafe { self.inner.deallocate_page(page) }
    }
}

/// A page limit set while a refill made its new page outside the lock is
/// kept: that page goes back, and the allocation fails with the limit.
#[test]
fn a_page_limit_set_while_a_page_is_made_holds() {
    let objects: Vec<_> = (0..200u64)
        .map_while(|i| LIMITED.alloc([i; 8]).ok())
        .collect();
    assert_eq!(objects.len(), 2 * 63, "two pages' worth, then the limit");
    let err = LIMITED.alloc([0; 8]).unwrap_err();
    assert_eq!(*err.value(), [0; 8], "the value comes back with the error");
    assert_eq!(LIMITED.stats().pages, 2);
    let back = |s: &Limiting| s.given_back.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(back(&LIMITING), 1, "the third page went straight back");
    drop(objects);
    LIMITED.shrink();
    assert_eq!(back(&LIMITING), 3);
}

#[test]
fn debug_shows_the_counts_stats_does() {
    let cache: SlabCache<u64> = SlabCache::new();
    drop(cache.alloc(1).unwrap());
    let stats = cache.stats();
    assert_eq!(stats.objects_in_use, 0);
    assert!(stats.cached_slots > 0, "{stats:?}");
    let shown = format!("{cache:?}");
    assert!(shown.contains("objects_in_use: 0,"), "{shown}");
    assert!(
        shown.contains(&format!("cached_slots: {},", stats.cached_slots)),
        "{shown}"
    );
}
