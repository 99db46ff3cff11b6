//! The depot (feature `std`, builds without checks): whole batches of free
//! slots that a thread's cache overflowed with, kept by the cache for the
//! next thread's cache that runs dry. What it must do: hand slots from a
//! freeing thread to an allocating one intact, count them in `stats()`,
//! give them back to their slabs on `shrink()` and `flush_thread_cache()`,
//! and never keep a page once its cache is gone. Checked builds send every
//! batch to the slabs instead; the same tests then check that the depot
//! stays empty.

#![cfg(feature = "std")]

mod common;

use std::sync::mpsc;
use std::thread;

use common::CountingPages;
use minimal_slab::{GlobalPages, SlabAllocator, SlabBox, SlabCache};

type Pages = CountingPages<GlobalPages>;

/// Whether this build keeps batches in the depot (checked builds do not).
const DEPOT: bool = !cfg!(any(debug_assertions, feature = "checked"));

const OBJECTS: u64 = if cfg!(miri) { 300 } else { 20_000 };
const CHUNK: usize = if cfg!(miri) { 50 } else { 256 };

/// One thread allocates `OBJECTS` handles and sends them in chunks; the
/// other checks and drops them. Returns the values' checksum.
fn hand_off(cache: &SlabCache<[u64; 8], &Pages>) -> u64 {
    let (tx, rx) = mpsc::sync_channel::<Vec<SlabBox<'_, [u64; 8], &Pages>>>(4);
    let sum = thread::scope(|s| {
        s.spawn(move || {
            let mut chunk = Vec::with_capacity(CHUNK);
            for i in 0..OBJECTS {
                chunk.push(cache.alloc([i; 8]).unwrap());
                if chunk.len() == CHUNK {
                    tx.send(std::mem::take(&mut chunk)).unwrap();
                }
            }
            tx.send(chunk).unwrap();
        });
        let consumer = s.spawn(move || {
            let mut sum = 0u64;
            for chunk in rx {
                for b in chunk {
                    assert!(b.iter().all(|&w| w == b[0]), "a value intact: {:?}", *b);
                    sum += b[0];
                }
            }
            sum
        });
        consumer.join().unwrap()
    });
    // A scoped thread's caches give up their slots as its thread-local
    // destructors run, which may end a moment after the scope: wait for
    // them, so that what is left out of the slabs is the depot's.
    while cache.stats().cached_slots != cache.stats().depot_slots {
        thread::yield_now();
    }
    sum
}

#[test]
fn handles_freed_on_another_thread_come_back_whole() {
    let pages = Pages::new(GlobalPages::new());
    let cache: SlabCache<[u64; 8], &Pages> = SlabCache::new_in(&pages);
    for _ in 0..3 {
        assert_eq!(hand_off(&cache), OBJECTS * (OBJECTS - 1) / 2);
    }
    // Both threads have exited: their caches gave everything up; what is
    // left out of the slabs waits in the depot.
    let s = cache.stats();
    assert_eq!(s.objects_in_use, 0, "{s:?}");
    assert_eq!(s.cached_slots, s.depot_slots, "{s:?}");
    assert!(
        s.depot_slots * s.slot_size <= 4 << 20,
        "the depot keeps 4 MiB of slots at most: {s:?}"
    );
    assert_eq!(s.depot_slots > 0, DEPOT, "{s:?}");
    assert_eq!(
        s.objects_in_use + s.cached_slots + s.free_slots,
        s.pages * s.slots_per_slab
    );
    // A third thread that runs dry takes a whole batch from the depot.
    if DEPOT {
        let before = s.depot_slots;
        thread::scope(|scope| {
            scope.spawn(|| {
                let b = cache.alloc([7; 8]).unwrap();
                let after = cache.stats();
                assert_eq!(
                    after.depot_slots,
                    before - 32,
                    "a batch is half a magazine of 64: {after:?}"
                );
                drop(b);
            });
        });
        // A scoped thread's caches give up their slots as its thread-local
        // destructors run, which may end a moment after the scope.
        while cache.stats().cached_slots != cache.stats().depot_slots {
            thread::yield_now();
        }
    }
    cache.shrink();
    let s = cache.stats();
    assert_eq!((s.pages, s.cached_slots, s.depot_slots), (0, 0, 0), "{s:?}");
    drop(cache);
    assert_eq!(pages.outstanding(), 0);
}

#[test]
fn flushing_puts_the_depot_back_into_the_slabs() {
    let pages = Pages::new(GlobalPages::new());
    let cache: SlabCache<[u64; 8], &Pages> = SlabCache::new_in(&pages);
    hand_off(&cache);
    cache.flush_thread_cache();
    let s = cache.stats();
    assert_eq!((s.objects_in_use, s.cached_slots, s.depot_slots), (0, 0, 0));
    assert_eq!(s.free_slots, s.pages * s.slots_per_slab, "{s:?}");
    assert_eq!(s.empty_slabs, s.pages, "{s:?}");
}

#[test]
fn a_cache_dropped_with_a_full_depot_gives_every_page_back() {
    let pages = Pages::new(GlobalPages::new());
    {
        let cache: SlabCache<[u64; 8], &Pages> = SlabCache::new_in(&pages);
        hand_off(&cache);
        assert_eq!(cache.stats().depot_slots > 0, DEPOT);
    }
    assert_eq!(pages.outstanding(), 0);
}

#[test]
fn a_raw_allocator_hands_blocks_between_threads_through_its_depot() {
    use core::alloc::Layout;
    use core::ptr::NonNull;

    struct Block(NonNull<u8>);
    // SAFETY: a block of the allocator, used by one thread at a time.
    unsafe impl Send for Block {}

    let pages = Pages::new(GlobalPages::new());
    {
        let heap = SlabAllocator::new_in(&pages, minimal_slab::NoFallback);
        let layout = Layout::new::<[u8; 48]>();
        let (tx, rx) = mpsc::sync_channel::<Vec<Block>>(4);
        thread::scope(|s| {
            s.spawn(|| {
                for round in 0..(OBJECTS as usize / CHUNK) {
                    let chunk = (0..CHUNK)
                        .map(|i| {
                            let p = heap.allocate(layout).unwrap().cast::<u8>();
                            // SAFETY: 48 bytes just allocated.
                            unsafe { p.write_bytes((round + i) as u8, 48) };
                            Block(p)
                        })
                        .collect();
                    tx.send(chunk).unwrap();
                }
                drop(tx);
            });
            s.spawn(|| {
                for (round, chunk) in rx.into_iter().enumerate() {
                    for (i, Block(p)) in chunk.into_iter().enumerate() {
                        // SAFETY: written by the producer, handed over whole.
                        let bytes = unsafe { core::slice::from_raw_parts(p.as_ptr(), 48) };
                        assert!(bytes.iter().all(|&b| b == (round + i) as u8));
                        // SAFETY: allocated with `layout`, freed once.
                        unsafe { heap.deallocate(p, layout) };
                    }
                }
            });
        });
        let s = heap.stats();
        assert_eq!(s.objects_in_use(), 0, "{s}");
        let class = s.classes().iter().find(|c| c.slot_size == 64).unwrap();
        assert_eq!(class.depot_slots > 0, DEPOT, "{class:?}");
    }
    assert_eq!(
        pages.outstanding(),
        0,
        "the allocator's drop gave every page back"
    );
}

#[test]
fn flushing_empties_the_depot_of_a_cache_used_through_local_fronts_only() {
    use minimal_slab::LocalCache;
    use minimal_slab::typenum::U4;

    let pages = Pages::new(GlobalPages::new());
    let cache: SlabCache<[u64; 8], &Pages> = SlabCache::new_in(&pages);
    {
        // No handle of the per-thread caches: the cache never registers.
        let local = LocalCache::<_, _, U4>::new(&cache);
        let objects: Vec<_> = (0..40).map(|i| local.alloc([i; 8]).unwrap()).collect();
        // Magazines of four: every other free overflows, two slots a batch.
        drop(objects);
    }
    assert_eq!(cache.stats().depot_slots > 0, DEPOT, "{:?}", cache.stats());
    cache.flush_thread_cache();
    let s = cache.stats();
    assert_eq!(
        (s.objects_in_use, s.cached_slots, s.depot_slots),
        (0, 0, 0),
        "flush_thread_cache puts the depot back: {s:?}"
    );
    assert_eq!(s.empty_slabs, s.pages, "every slab empty: {s:?}");
}

/// Pages from `GlobalPages`, whose next `deallocate_page` panics once armed
/// (after the page is back, so none is lost).
struct PanickyPages {
    inner: Pages,
    armed: std::sync::atomic::AtomicBool,
}

// SAFETY: every page comes from `inner` and goes back to it unchanged; the
// panic comes after the page went back.
unsafe impl minimal_slab::PageAllocator for PanickyPages {
    type PageSize = <Pages as minimal_slab::PageAllocator>::PageSize;

    fn allocate_page(&self) -> Result<core::ptr::NonNull<u8>, minimal_slab::PageAllocError> {
        self.inner.allocate_page()
    }

    unsafe fn deallocate_page(&self, page: core::ptr::NonNull<u8>) {
        // SAFETY: the caller's guarantees, passed on.
        unsafe { self.inner.deallocate_page(page) };
        if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            std::panic::panic_any("deallocate_page");
        }
    }
}

#[test]
fn a_page_source_panicking_while_the_depot_is_emptied_loses_no_slot() {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    let pages = PanickyPages {
        inner: Pages::new(GlobalPages::new()),
        armed: false.into(),
    };
    // Slots of a kilobyte (three to a slab), slabs given back as soon as
    // they empty: a batch of 32 empties several.
    let config = minimal_slab::CacheConfig::new().reserve(0).eager();
    let cache: SlabCache<[u8; 1024], &PanickyPages> = SlabCache::with_config(&pages, config);
    // Another thread allocates and frees: its overflow fills the depot, its
    // magazine's rest goes back when it exits, and `stats` takes those
    // orphans back, leaving only the depot out of the slabs.
    thread::scope(|s| {
        s.spawn(|| {
            let objects: Vec<_> = (0..200).map(|_| cache.alloc([1; 1024]).unwrap()).collect();
            drop(objects);
        });
    });
    while cache.stats().cached_slots != cache.stats().depot_slots {
        thread::yield_now();
    }
    let before = cache.stats();
    assert_eq!(before.objects_in_use, 0, "{before:?}");
    assert_eq!(
        before.depot_slots > 32,
        DEPOT,
        "several batches: {before:?}"
    );
    if !DEPOT {
        return;
    }
    pages.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let caught = catch_unwind(AssertUnwindSafe(|| cache.flush_thread_cache()));
    assert!(caught.is_err(), "the page source panicked");
    let s = cache.stats();
    assert_eq!(
        (s.objects_in_use, s.cached_slots, s.depot_slots),
        (0, 0, 0),
        "every slot of the depot is back in its slab: {s:?}"
    );
    cache.shrink();
    assert_eq!(cache.stats().pages, 0, "{:?}", cache.stats());
    drop(cache);
    assert_eq!(pages.inner.outstanding(), 0);
}

/// A burst, then a small steady workload whose frees and allocations pass
/// through the depot and never reach the slabs: the decay's clock must run
/// all the same, or the burst's empty pages would be kept for ever.
#[test]
fn pages_of_an_old_peak_go_back_while_the_workload_lives_on_the_depot() {
    let pages = Pages::new(GlobalPages::new());
    let cache: SlabCache<[u64; 8], &Pages> = SlabCache::new_in(&pages);
    cache.set_config(minimal_slab::CacheConfig::new().reserve(0).decay(1_000));
    let burst: Vec<_> = (0..5_000).map(|i| cache.alloc([i; 8]).unwrap()).collect();
    let peak = cache.stats().pages;
    drop(burst);
    let rounds = if cfg!(miri) { 20 } else { 300 };
    thread::scope(|s| {
        // Two threads, so that what one frees the other takes back through
        // the depot; each keeps a hundred objects at a time.
        for t in 0..2 {
            let cache = &cache;
            s.spawn(move || {
                for round in 0..rounds {
                    let some: Vec<_> = (0..100)
                        .map(|i| cache.alloc([t + round + i; 8]).unwrap())
                        .collect();
                    drop(some);
                }
            });
        }
    });
    if cfg!(miri) {
        return; // too few rounds for a window of 5 000 frees
    }
    let s = cache.stats();
    // Live: nothing; resting: two magazines' worth and what the depot's
    // last windows needed (8 batches of 32 at least, oldest given back
    // first), scattered over a few pages each, and the empty slabs the
    // slabs' own decay still retains. The peak's 80 went back, all but a
    // third at most (8-22 pages over 30 runs; the clock stopped: 80).
    assert!(s.pages <= peak / 3, "peak {peak} pages, now {s:?}");
    assert!(peak >= 80);
}

/// `objects_in_use + cached_slots + free_slots` covers every slab's slots
/// exactly, and the slots the cache counts as in use are exactly `held`:
/// the live handles and the slots resting in the explicit fronts'
/// magazines, which the cache cannot tell from handed-out ones.
fn assert_accounted(s: &minimal_slab::CacheStats, held: usize, when: &str) {
    assert_eq!(
        s.objects_in_use + s.cached_slots + s.free_slots,
        s.pages * s.slots_per_slab,
        "{when}: every slot counted once: {s:?}"
    );
    assert_eq!(
        s.objects_in_use, held,
        "{when}: in use = live handles + magazines: {s:?}"
    );
    assert_eq!(
        s.cached_slots, s.depot_slots,
        "{when}: no thread cache holds a slot: {s:?}"
    );
}

/// Takes every slot the cache has free or in its depot (and as many more as
/// new pages bring), and asserts that no address comes out twice: a slot
/// both in the depot and on its slab's free list would.
fn assert_no_slot_twice(cache: &SlabCache<[u8; 1024], &PanickyPages>, when: &str) {
    use minimal_slab::LocalCache;
    use minimal_slab::typenum::U64;

    let s = cache.stats();
    let front = LocalCache::<_, _, U64>::new(cache);
    let all: Vec<_> = (0..s.free_slots + s.depot_slots + 64)
        .map(|i| front.alloc_shared([i as u8; 1024]).unwrap())
        .collect();
    let mut seen = std::collections::HashSet::new();
    for (i, b) in all.iter().enumerate() {
        assert!(
            seen.insert(&**b as *const [u8; 1024] as usize),
            "{when}: slot {:p} handed out twice",
            &**b
        );
        // Its ends only: Miri runs this too.
        assert_eq!(
            (b[0], b[1023]),
            (i as u8, i as u8),
            "{when}: slot {i} intact"
        );
    }
    for b in all {
        front.recycle(b);
    }
}

/// Allocates a batch of 32 objects and frees them one by one, round after
/// round (at most `rounds`), until a free panics; then returns the round,
/// the stats taken just before that free, and the objects not yet freed.
fn until_a_free_panics<B>(
    rounds: usize,
    mut alloc: impl FnMut() -> B,
    mut free: impl FnMut(B),
    stats: impl Fn() -> minimal_slab::CacheStats,
) -> Option<(usize, minimal_slab::CacheStats, Vec<B>)> {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    for round in 0..rounds {
        let mut objects: Vec<B> = (0..32).map(|_| alloc()).collect();
        while let Some(b) = objects.pop() {
            let before = stats();
            if catch_unwind(AssertUnwindSafe(|| free(b))).is_err() {
                return Some((round, before, objects));
            }
        }
    }
    None
}

/// A window of the depot's decay that ends with a surplus hands that many
/// batches to the slabs from inside the free that ended it, pages given
/// back as their slabs empty. A page source that panics there must leave
/// every slot in exactly one place — the depot, a magazine or its slab —
/// and every page must come back once the cache shrinks.
#[test]
fn a_page_source_panicking_while_the_depot_gives_its_surplus_back_loses_no_slot() {
    use minimal_slab::LocalCache;
    use minimal_slab::typenum::U64;
    use std::sync::atomic::Ordering::SeqCst;

    if !DEPOT {
        return;
    }
    let pages = PanickyPages {
        inner: Pages::new(GlobalPages::new()),
        armed: false.into(),
    };
    // Slots of a kilobyte (three to a slab, a depot of 128 batches), slabs
    // given back as soon as they empty.
    let config = minimal_slab::CacheConfig::new().reserve(0).eager();
    let cache: SlabCache<[u8; 1024], &PanickyPages> = SlabCache::with_config(&pages, config);
    // Magazines of 64, so batches of 32: `taker` allocates, `freer` frees.
    let taker = LocalCache::<_, _, U64>::new(&cache);
    let freer = LocalCache::<_, _, U64>::new(&cache);
    let held = |live: usize| live + taker.cached() + freer.cached();
    // Twenty batches deep.
    let deep = 20;
    let burst: Vec<_> = (0..deep * 32 + 64)
        .map(|_| taker.alloc_shared([1; 1024]).unwrap())
        .collect();
    for b in burst {
        freer.recycle(b);
    }
    let s = cache.stats();
    assert_eq!(s.depot_slots, deep * 32, "{s:?}");
    assert_accounted(&s, held(0), "after the burst");
    // Then one batch out of the depot and one back in, round after round:
    // the level never falls below `deep - 1`, so a window's end finds
    // `deep - 1 - 8` batches surplus and frees them, emptying slabs.
    pages.armed.store(true, SeqCst);
    let caught = until_a_free_panics(
        1_000,
        || taker.alloc_shared([2; 1024]).unwrap(),
        |b| freer.recycle(b),
        || cache.stats(),
    );
    let (round, before, objects) = caught.expect("a surplus was given back");
    assert!(!pages.armed.load(SeqCst));
    let s = cache.stats();
    // The overflow went into a depot with room, and one batch came out
    // again before the panic: the surplus's first.
    assert!(before.depot_slots < 32 * 32, "room: {before:?}");
    assert_eq!(
        (s.depot_slots, s.objects_in_use + 32),
        (before.depot_slots, before.objects_in_use),
        "the panic came from the surplus's give-back (round {round}): {before:?} -> {s:?}"
    );
    assert_accounted(&s, held(objects.len()), "after the panic");
    assert_no_slot_twice(&cache, "after the panic");
    for b in objects {
        freer.recycle(b);
    }
    // The rest of the surplus goes back at later windows' ends (two of
    // them at least: at most 4 * 32 moves each, two a round).
    let rounds = if cfg!(miri) { 140 } else { 200 };
    for _ in 0..rounds {
        let objects: Vec<_> = (0..32)
            .map(|_| taker.alloc_shared([3; 1024]).unwrap())
            .collect();
        for b in objects {
            freer.recycle(b);
        }
    }
    let s = cache.stats();
    assert!(
        s.depot_slots <= (8 + 1) * 32,
        "the surplus went back: {s:?}"
    );
    assert_accounted(&s, held(0), "after more windows");
    assert_no_slot_twice(&cache, "after more windows");
    drop((taker, freer));
    cache.shrink();
    let s = cache.stats();
    assert_eq!(
        (s.pages, s.objects_in_use, s.depot_slots),
        (0, 0, 0),
        "{s:?}"
    );
    drop(cache);
    assert_eq!(pages.inner.outstanding(), 0);
}

/// The depot reports the slots that pass through it to the slabs' decay
/// clock from inside the free whose batch it kept; a window of the slabs
/// that ends there gives the pages of an old peak back. A page source that
/// panics there must leave the batch in the depot, and in the depot only.
#[test]
fn a_page_source_panicking_while_the_depot_reports_to_the_clock_loses_no_slot() {
    use minimal_slab::LocalCache;
    use minimal_slab::typenum::U64;
    use std::sync::atomic::Ordering::SeqCst;

    if !DEPOT {
        return;
    }
    let pages = PanickyPages {
        inner: Pages::new(GlobalPages::new()),
        armed: false.into(),
    };
    // Empty slabs kept while a recent peak needs them, over windows of a
    // few hundred frees.
    let config = minimal_slab::CacheConfig::new().reserve(0).decay(64);
    let cache: SlabCache<[u8; 1024], &PanickyPages> = SlabCache::with_config(&pages, config);
    let taker = LocalCache::<_, _, U64>::new(&cache);
    let freer = LocalCache::<_, _, U64>::new(&cache);
    let held = |live: usize| live + taker.cached() + freer.cached();
    // A peak of a hundred pages, freed straight to the slabs (flushed a
    // magazine at a time, so nothing overflows into the depot): its empty
    // slabs are retained.
    let mut peak: Vec<_> = (0..300)
        .map(|_| taker.alloc_shared([1; 1024]).unwrap())
        .collect();
    taker.flush();
    while !peak.is_empty() {
        for b in peak.drain(peak.len().saturating_sub(64)..) {
            freer.recycle(b);
        }
        freer.flush();
    }
    drop(peak);
    let s = cache.stats();
    assert_eq!((s.objects_in_use, s.depot_slots), (0, 0), "{s:?}");
    assert!(s.pages >= 100, "{s:?}");
    // Then a batch through the depot and back, round after round: only the
    // depot's reports move the slabs' clock, and a window's end gives the
    // old peak's pages back from inside a free.
    pages.armed.store(true, SeqCst);
    let caught = until_a_free_panics(
        10_000,
        || taker.alloc_shared([2; 1024]).unwrap(),
        |b| freer.recycle(b),
        || cache.stats(),
    );
    let (round, before, objects) = caught.expect("a window of the slabs ended");
    let s = cache.stats();
    // The overflow is in the depot, and a page went back before the panic.
    assert_eq!(
        (s.depot_slots, s.objects_in_use + 32, s.pages + 1),
        (before.depot_slots + 32, before.objects_in_use, before.pages),
        "the panic came from the clock's window (round {round}): {before:?} -> {s:?}"
    );
    assert_accounted(&s, held(objects.len()), "after the panic");
    assert_no_slot_twice(&cache, "after the panic");
    for b in objects {
        freer.recycle(b);
    }
    drop((taker, freer));
    cache.shrink();
    let s = cache.stats();
    assert_eq!(
        (s.pages, s.objects_in_use, s.depot_slots),
        (0, 0, 0),
        "{s:?}"
    );
    drop(cache);
    assert_eq!(pages.inner.outstanding(), 0);
}

/// One thread allocates chunks of varying size and sends them, another
/// checks and frees them, a third shrinks the cache now and then: the
/// depot's level wanders, so windows end with a surplus that the freeing
/// thread hands to the slabs while the allocating one takes batches out,
/// and `shrink` empties the depot (and frees its shelf) while both push
/// and pop. Every object must come through intact — a slot handed to two
/// owners would be written by both — and every page must come back.
#[test]
fn surplus_give_backs_and_shrinks_racing_with_the_hand_off_keep_every_object_intact() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

    let pages = Pages::new(GlobalPages::new());
    let cache: SlabCache<[u64; 8], &Pages> = SlabCache::new_in(&pages);
    // Checked builds keep no depot: a few chunks show the slabs' path.
    let chunks = if cfg!(miri) {
        30
    } else if DEPOT {
        3_000
    } else {
        200
    };
    let largest = if cfg!(miri) { 100 } else { 4_000 };
    let done = AtomicBool::new(false);
    let (tx, rx) = mpsc::sync_channel::<Vec<(u64, SlabBox<'_, [u64; 8], &Pages>)>>(2);
    thread::scope(|s| {
        let (cache, done) = (&cache, &done);
        s.spawn(move || {
            let mut rng = common::XorShift::new(0x5eed);
            let mut id = 0u64;
            for _ in 0..chunks {
                let chunk = (0..rng.range(1, largest))
                    .map(|_| {
                        id += 1;
                        (id, cache.alloc([id; 8]).unwrap())
                    })
                    .collect();
                tx.send(chunk).unwrap();
            }
        });
        s.spawn(move || {
            let mut expected = 1;
            for chunk in rx {
                for (id, b) in chunk {
                    assert_eq!(id, expected, "ids in order");
                    assert_eq!(*b, [id; 8], "object {id} intact");
                    expected += 1;
                }
            }
            done.store(true, SeqCst);
        });
        s.spawn(move || {
            while !done.load(SeqCst) {
                cache.shrink();
                thread::yield_now();
            }
        });
    });
    while cache.stats().cached_slots != cache.stats().depot_slots {
        thread::yield_now();
    }
    let s = cache.stats();
    assert_eq!(s.objects_in_use, 0, "{s:?}");
    assert_eq!(
        s.objects_in_use + s.cached_slots + s.free_slots,
        s.pages * s.slots_per_slab,
        "{s:?}"
    );
    cache.shrink();
    let s = cache.stats();
    assert_eq!((s.pages, s.cached_slots), (0, 0), "{s:?}");
    drop(cache);
    assert_eq!(pages.outstanding(), 0);
}
