//! Pages kept through bursts: the caches' give-back hysteresis seen from
//! the public API, down to the page source and the chunk source's own
//! source (`CacheConfig::decay`).
//!
//! - A loop that fills a cache and empties it again takes pages, and chunks,
//!   in its first round only, and gives none back, on the typed and the raw
//!   API and through a per-thread front; `shrink` then gives back every page
//!   and every chunk.
//! - The eager configuration gives pages back every round, as before.
//! - A workload that shrinks for good gives its pages back within the
//!   documented number of frees.
//! - A page source that panics while a window's end gives pages back
//!   leaves the counts right, and `shrink` gives back the rest later.

mod common;

use std::alloc::Layout;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{CountingPages, flush_allocator_thread_cache, flush_thread_cache};
use minimal_slab::typenum::U262144;
use minimal_slab::{
    CacheConfig, CacheStats, ChunkedPages, GlobalPages, NoFallback, PageAllocError, PageAllocator,
    SlabAllocator, SlabCache,
};

/// Objects per burst, and bursts: fewer under Miri, the same geometry.
const BURST: usize = if cfg!(miri) { 300 } else { 10_000 };
const ROUNDS: usize = if cfg!(miri) { 3 } else { 20 };

/// The default page source's layout, its chunks counted.
type Chunks = CountingPages<GlobalPages<U262144>>;

/// Fills `cache` with a burst and frees it oldest first.
fn burst<P: PageAllocator>(cache: &SlabCache<[u64; 8], P>) {
    let objects: Vec<_> = (0..BURST as u64)
        .map(|i| cache.alloc([i; 8]).unwrap())
        .collect();
    for (i, object) in objects.into_iter().enumerate() {
        assert_eq!(object[7], i as u64);
    }
    // The last frees rest in this thread's cache (`std`): the burst is over
    // once they are back in their slabs.
    flush_thread_cache(cache);
}

fn assert_balanced(s: &CacheStats) {
    assert_eq!(s.full_slabs + s.partial_slabs + s.empty_slabs, s.pages);
    assert_eq!(
        s.pages * s.slots_per_slab,
        s.objects_in_use + s.cached_slots + s.free_slots
    );
}

#[test]
fn a_typed_burst_loop_takes_pages_and_chunks_once() {
    let source = Chunks::new(GlobalPages::with_page_size());
    let pages = ChunkedPages::new(&source);
    let cache = SlabCache::<[u64; 8], _>::new_in(&pages);
    burst(&cache);
    let held = cache.stats().pages;
    let chunks = source.handed_out();
    assert_eq!(held, BURST.div_ceil(cache.stats().slots_per_slab));
    assert_eq!(pages.pages_out(), held);
    for round in 2..=ROUNDS {
        burst(&cache);
        let s = cache.stats();
        assert_balanced(&s);
        assert_eq!((s.pages, s.empty_slabs), (held, held), "round {round}");
        assert_eq!(pages.pages_out(), held, "round {round}: no page went back");
        assert_eq!(
            (source.handed_out(), source.given_back()),
            (chunks, 0),
            "round {round}: no chunk came or went"
        );
    }
    assert_eq!(cache.shrink(), held, "shrink gives back every page");
    assert_eq!((pages.pages_out(), pages.chunks()), (0, 0));
    assert_eq!(source.outstanding(), 0, "and every chunk");
}

#[test]
fn an_eager_burst_loop_gives_pages_and_chunks_back_every_round() {
    let source = Chunks::new(GlobalPages::with_page_size());
    let pages = ChunkedPages::new(&source);
    let cache = SlabCache::<[u64; 8], _>::with_config(&pages, CacheConfig::new().eager());
    let reserve = CacheConfig::DEFAULT_RESERVE;
    let mut chunks = 0;
    for round in 1..=ROUNDS {
        burst(&cache);
        assert_eq!(
            cache.stats().pages,
            reserve,
            "round {round}: the reserve only"
        );
        assert_eq!(pages.pages_out(), reserve);
        if !cfg!(miri) {
            // 159 pages, three chunks of 63: the chunk source keeps one
            // spare and hands the other emptied one back.
            assert!(source.handed_out() > chunks, "round {round}: a chunk came");
            assert!(source.given_back() > 0);
        }
        chunks = source.handed_out();
    }
    cache.shrink();
    assert_eq!(source.outstanding(), 0);
}

#[test]
fn a_raw_burst_loop_keeps_its_pages_directly_and_through_a_front() {
    let pages = CountingPages::new(GlobalPages::new());
    let heap = SlabAllocator::with_config(&pages, NoFallback, CacheConfig::new());
    let layout = Layout::new::<[u64; 8]>();
    let direct = |round: usize| {
        let blocks: Vec<_> = (0..BURST).map(|_| heap.allocate(layout).unwrap()).collect();
        for block in blocks {
            // SAFETY: allocated just above with `layout`, freed once.
            unsafe { heap.deallocate(block, layout) };
        }
        flush_allocator_thread_cache(&heap);
        round
    };
    direct(1);
    let held = pages.handed_out();
    assert_eq!(heap.stats().pages(), held);
    for round in 2..=ROUNDS {
        direct(round);
        assert_eq!(
            (pages.handed_out(), pages.given_back()),
            (held, 0),
            "round {round}"
        );
    }
    // A per-thread front, dropped (flushed) every round: its magazines go
    // back in batches that let no page go until the end of the flush.
    for round in 1..=ROUNDS {
        let front = heap.local();
        let blocks: Vec<_> = (0..BURST)
            .map(|_| front.allocate(layout).unwrap())
            .collect();
        for block in blocks {
            // SAFETY: allocated just above with `layout`, freed once.
            unsafe { front.deallocate(block, layout) };
        }
        drop(front);
        assert_eq!(
            (pages.handed_out(), pages.given_back()),
            (held, 0),
            "front round {round}"
        );
    }
    assert_eq!(heap.shrink_to_fit(), held);
    assert_eq!(pages.outstanding(), 0);
}

#[test]
fn pages_of_a_past_peak_go_back_within_two_windows() {
    let decay = 1_000;
    let pages = CountingPages::new(GlobalPages::new());
    let cache =
        SlabCache::<[u64; 8], _>::with_config(&pages, CacheConfig::new().reserve(0).decay(decay));
    burst(&cache);
    let s = cache.stats();
    let peak = s.pages;
    assert_eq!(s.empty_slabs, peak, "kept for the next burst");
    // The pages go back within two windows of frees after the last free
    // that needed them (at the latest, the burst's last); a window is
    // `decay` frees, or the peak's slots if more.
    let window = decay.max(peak * s.slots_per_slab);
    // One object live for good, another coming and going in its slab: no
    // kept page is taken again, so only a window's end gives them back.
    let anchor = cache.alloc([1; 8]).unwrap();
    let mut frees = 0;
    while cache.stats().pages > 1 {
        drop(cache.alloc([0; 8]).unwrap());
        // Every free to the slabs: the clock counts frees that reach the
        // cache, and a free resting in a thread's cache does not (`std`).
        flush_thread_cache(&cache);
        frees += 1;
        assert!(frees <= 2 * window, "{frees} frees and still {s:?}");
    }
    assert_eq!(pages.given_back(), peak - 1);
    drop(anchor);
    // The memory went back; a new burst takes it again.
    burst(&cache);
    assert_eq!(pages.handed_out(), 2 * peak - 1);
}

#[test]
fn an_eager_configuration_gives_the_kept_pages_back_at_once() {
    let pages = CountingPages::new(GlobalPages::new());
    let cache = SlabCache::<[u64; 8], _>::new_in(&pages);
    burst(&cache);
    let held = cache.stats().pages;
    assert_eq!(pages.outstanding(), held);
    cache.set_config(CacheConfig::new().eager());
    assert_eq!(cache.stats().pages, CacheConfig::DEFAULT_RESERVE);
    assert_eq!(pages.outstanding(), CacheConfig::DEFAULT_RESERVE);
    cache.set_config(CacheConfig::new().reserve(0).eager());
    assert_eq!(pages.outstanding(), 0);
}

/// Pages from the global allocator; `deallocate_page` panics once when
/// armed.
struct Flaky {
    pages: CountingPages,
    armed: AtomicBool,
}

// SAFETY: forwards to `CountingPages`, which upholds the contract; a panic
// in `deallocate_page` is allowed (the page counts as given back).
unsafe impl PageAllocator for Flaky {
    type PageSize = <GlobalPages as PageAllocator>::PageSize;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        self.pages.allocate_page()
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        // SAFETY: the caller's guarantees, forwarded.
        unsafe { self.pages.deallocate_page(page) };
        if self.armed.swap(false, Ordering::SeqCst) {
            panic!("the page source panics");
        }
    }
}

#[test]
fn a_window_end_whose_page_source_panics_keeps_the_counts() {
    let pages = Flaky {
        pages: CountingPages::new(GlobalPages::new()),
        armed: AtomicBool::new(false),
    };
    // Two kilobytes: one object a slab.
    let cache =
        SlabCache::<[u8; 2048], _>::with_config(&pages, CacheConfig::new().reserve(0).decay(8));
    let objects: Vec<_> = (0..6).map(|_| cache.alloc([1; 2048]).unwrap()).collect();
    drop(objects);
    flush_thread_cache(&cache);
    assert_eq!(cache.stats().empty_slabs, 6, "kept for the peak");

    pages.armed.store(true, Ordering::SeqCst);
    let mut panicked = false;
    for _ in 0..100 {
        let pair = catch_unwind(AssertUnwindSafe(|| {
            drop(cache.alloc([2; 2048]).unwrap());
            flush_thread_cache(&cache); // to the slabs: see above
        }));
        if pair.is_err() {
            panicked = true;
            break;
        }
    }
    assert!(panicked, "a window ended and gave pages back");
    let s = cache.stats();
    assert_balanced(&s);
    assert_eq!(s.objects_in_use, 0);
    assert_eq!(
        s.pages,
        pages.pages.outstanding(),
        "the cache holds the pages out, the one that panicked given back"
    );
    assert!(s.pages < 6);
    // The cache still works, and `shrink` gives back the rest.
    drop(cache.alloc([3; 2048]).unwrap());
    cache.shrink();
    assert_eq!(pages.pages.outstanding(), 0);
}
