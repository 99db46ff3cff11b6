//! A per-thread refill that needs a new page lets its cache's lock go while
//! the page source runs and the page becomes a slab, then takes the lock
//! again to list it (feature `std`). What may happen meanwhile: another
//! thread wanting the same page, a page source that panics, or one that
//! uses the cache itself, and `shrink`, `set_config` and `stats` from other
//! threads. None of it may lose a slot or a page, count one twice, or fail
//! an allocation that a locked grow would have served.

#![cfg(feature = "std")]

mod common;

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::thread;
use std::time::Duration;

use common::CountingPages;
use minimal_slab::{
    CacheConfig, CacheStats, GlobalPages, PageAllocError, PageAllocator, SlabBox, SlabCache,
};

/// Counters that add up: every slot of every page held is in use, cached
/// or free.
fn assert_consistent(s: &CacheStats) {
    assert_eq!(
        s.objects_in_use + s.cached_slots + s.free_slots,
        s.pages * s.slots_per_slab,
        "{s:?}"
    );
}

/// Runs `work` on a thread of its own and waits for it at most a minute:
/// a lock left held would otherwise hang the suite.
fn with_deadline(work: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let worker = thread::spawn(move || {
        work();
        done.send(()).unwrap();
    });
    match finished.recv_timeout(Duration::from_secs(60)) {
        Ok(()) => worker.join().unwrap(),
        // The worker panicked: its panic fails the test.
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("a cache's lock was left held"),
    }
}

/// One page to hand out, whose hand-over waits (a second at most) until
/// the test lets it go: a page source slow to answer, such as one whose
/// page faults in.
struct LastPage {
    inner: GlobalPages,
    left: AtomicUsize,
    taken: Mutex<Option<mpsc::Sender<()>>>,
    go: Mutex<Option<mpsc::Receiver<()>>>,
}

// SAFETY: forwards both methods to `GlobalPages`, which upholds the
// contract; refusing a page breaks none of it.
unsafe impl PageAllocator for LastPage {
    type PageSize = <GlobalPages as PageAllocator>::PageSize;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        self.left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .map_err(|_| PageAllocError::RegionExhausted)?;
        let page = self.inner.allocate_page()?;
        if let Some(taken) = self.taken.lock().unwrap().take() {
            taken.send(()).unwrap();
            let go = self.go.lock().unwrap().take().unwrap();
            let _ = go.recv_timeout(Duration::from_secs(1));
        }
        Ok(page)
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        // SAFETY: the caller's guarantees, forwarded.
        unsafe { self.inner.deallocate_page(page) }
    }
}

/// Two threads want a page of a cache with none to spare, and the page
/// source has one left: the one whose request finds it gone must be served
/// from the page the other is being handed (63 slots for two objects), as
/// it is when a grow holds the lock, not refused.
#[test]
fn a_refill_that_finds_the_last_page_taken_is_served_from_it() {
    let (taken, was_taken) = mpsc::channel();
    let (go, gone) = mpsc::channel();
    let pages = LastPage {
        inner: GlobalPages::new(),
        left: AtomicUsize::new(1),
        taken: Mutex::new(Some(taken)),
        go: Mutex::new(Some(gone)),
    };
    let cache: SlabCache<[u64; 8], &LastPage> = SlabCache::new_in(&pages);
    let second = thread::scope(|scope| {
        let first = scope.spawn(|| cache.alloc([1; 8]).is_ok());
        was_taken.recv().unwrap();
        // The first thread holds the last page, not yet a slab.
        let second = cache.alloc([2; 8]).map(|b| *b).map_err(|e| e.error());
        let _ = go.send(());
        assert!(first.join().unwrap(), "the first thread got the page");
        second
    });
    assert_eq!(second, Ok([2; 8]), "a slot of the only page");
    cache.flush_thread_cache();
    assert_eq!(cache.stats().pages, 1);
}

/// A page source that panics on the page it is asked for while `ARMED`.
struct Panicking {
    inner: CountingPages<GlobalPages>,
    armed: AtomicBool,
}

static PANICKING: Panicking = Panicking {
    inner: CountingPages::new(GlobalPages::new()),
    armed: AtomicBool::new(false),
};
static PANICKED: SlabCache<[u64; 8], &Panicking> = SlabCache::new_in(&PANICKING);

// SAFETY: forwards both methods to `CountingPages`, which upholds the
// contract; a panic hands out nothing.
unsafe impl PageAllocator for Panicking {
    type PageSize = <GlobalPages as PageAllocator>::PageSize;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            panic!("no page today");
        }
        self.inner.allocate_page()
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        // SAFETY: the caller's guarantees, forwarded.
        unsafe { self.inner.deallocate_page(page) }
    }
}

/// A page source that panics while the lock is let go leaves the cache
/// unlocked and whole: the slots already held stay held, the counts add
/// up, and the next refill gets its page.
#[test]
fn a_page_source_that_panics_while_the_lock_is_let_go_leaves_the_cache_whole() {
    with_deadline(|| {
        // One slab's worth, so that the magazine and the slab run dry
        // together (batches of 32 and 31), and the next refill grows.
        let held: Vec<_> = (0..63u64)
            .map(|i| PANICKED.alloc([i; 8]).unwrap())
            .collect();
        let s = PANICKED.stats();
        assert_eq!(
            (s.pages, s.cached_slots, s.objects_in_use),
            (1, 0, 63),
            "{s:?}"
        );
        PANICKING.armed.store(true, Ordering::SeqCst);
        let caught = catch_unwind(AssertUnwindSafe(|| PANICKED.alloc([7; 8])));
        assert!(caught.is_err(), "the page source's panic comes through");
        // Another thread takes the lock: it was let go.
        let s = thread::spawn(|| PANICKED.stats()).join().unwrap();
        assert_eq!((s.pages, s.objects_in_use), (1, 63), "{s:?}");
        assert_consistent(&s);
        assert_eq!(PANICKING.inner.outstanding(), 1);
        let next = PANICKED.alloc([8; 8]).unwrap();
        assert_eq!(PANICKED.stats().pages, 2);
        drop(next);
        drop(held);
        PANICKED.flush_thread_cache();
        PANICKED.shrink();
        assert_eq!(PANICKED.stats().pages, 0);
        assert_eq!(PANICKING.inner.outstanding(), 0);
    });
}

/// A page source that, asked for a page while `ARMED`, drops the handles
/// its thread parked in `PARKED`: frees into the very magazine whose
/// refill is asking.
struct Freeing {
    inner: CountingPages<GlobalPages>,
    armed: AtomicBool,
}

static FREEING: Freeing = Freeing {
    inner: CountingPages::new(GlobalPages::new()),
    armed: AtomicBool::new(false),
};
static FREED: SlabCache<[u64; 8], &Freeing> = SlabCache::new_in(&FREEING);

thread_local! {
    static PARKED: RefCell<Vec<SlabBox<'static, [u64; 8], &'static Freeing>>> =
        const { RefCell::new(Vec::new()) };
}

// SAFETY: forwards both methods to `CountingPages`, which upholds the
// contract.
unsafe impl PageAllocator for Freeing {
    type PageSize = <GlobalPages as PageAllocator>::PageSize;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            let parked = PARKED.with(|parked| parked.take());
            drop(parked);
        }
        self.inner.allocate_page()
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        // SAFETY: the caller's guarantees, forwarded.
        unsafe { self.inner.deallocate_page(page) }
    }
}

/// Frees into a magazine while its refill grows the cache with the lock
/// let go fill it to one slot short of full: the refill keeps what fits
/// and gives the rest straight back, losing none and counting none twice.
#[test]
fn a_magazine_filled_while_its_refill_grows_keeps_what_fits_and_gives_back_the_rest() {
    with_deadline(|| {
        // A slab's worth: the magazine and the slab run dry together.
        let held: Vec<_> = (0..63u64).map(|i| FREED.alloc([i; 8]).unwrap()).collect();
        let s = FREED.stats();
        assert_eq!(
            (s.pages, s.cached_slots, s.objects_in_use),
            (1, 0, 63),
            "{s:?}"
        );
        PARKED.with(|parked| parked.borrow_mut().extend(held));
        FREEING.armed.store(true, Ordering::SeqCst);
        // Its refill takes 32 of a new slab; meanwhile the 63 parked come
        // back to the magazine (of 64): one of the 31 left fits.
        let one = FREED.alloc([99; 8]).unwrap();
        assert_eq!(*one, [99; 8]);
        let s = FREED.stats();
        assert_eq!(
            (s.pages, s.objects_in_use, s.cached_slots),
            (2, 1, 64),
            "{s:?}"
        );
        assert_consistent(&s);
        // Every slot is handed out once: 65 distinct ones, the cached first.
        let again: Vec<_> = (0..64u64).map(|i| FREED.alloc([i; 8]).unwrap()).collect();
        let mut addresses: Vec<_> = again.iter().map(|b| SlabBox::as_ptr(b).addr()).collect();
        addresses.push(SlabBox::as_ptr(&one).addr());
        addresses.sort_unstable();
        addresses.dedup();
        assert_eq!(addresses.len(), 65);
        assert_eq!(FREED.stats().pages, 2);
        drop((one, again));
        FREED.flush_thread_cache();
        let s = FREED.stats();
        assert_eq!((s.objects_in_use, s.cached_slots), (0, 0), "{s:?}");
        FREED.shrink();
        assert_eq!(FREEING.inner.outstanding(), 0);
    });
}

/// Growth outside the lock races `shrink`, `set_config` (a page limit set
/// and lifted, so that grows both take the unlocked path and find a limit
/// set when they list their page) and `stats`, on a cache that is not a
/// `static`: its handles find it through the address its slabs record,
/// which a slab made outside the lock must hold too. Every page comes back
/// in the end, and the counts add up.
#[test]
fn growth_outside_the_lock_races_shrink_set_config_and_stats() {
    const THREADS: usize = 2;
    let rounds = if cfg!(miri) { 3 } else { 300 };
    let burst = if cfg!(miri) { 70 } else { 300 };
    let pages = CountingPages::new(GlobalPages::new());
    let config = CacheConfig::new().reserve(0).eager();
    let cache: SlabCache<[u64; 8], &CountingPages<GlobalPages>> =
        SlabCache::with_config(&pages, config);
    let stop = AtomicBool::new(false);
    let refused = AtomicUsize::new(0);
    thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS as u64)
            .map(|t| {
                let (cache, refused) = (&cache, &refused);
                scope.spawn(move || {
                    for round in 0..rounds {
                        let mut boxes = Vec::with_capacity(burst);
                        for i in 0..burst as u64 {
                            match cache.alloc([t ^ i; 8]) {
                                Ok(b) => boxes.push(b),
                                Err(_) => {
                                    refused.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                        assert!(boxes.iter().all(|b| b[7] == b[0]), "values intact");
                        // Half of them freed on another thread: their
                        // handles find the cache through their slabs.
                        let other: Vec<_> = boxes.split_off(boxes.len() / 2);
                        thread::scope(|inner| {
                            inner.spawn(move || drop(other));
                        });
                        drop(boxes);
                        if round % 16 == 0 {
                            cache.flush_thread_cache();
                        }
                    }
                    cache.flush_thread_cache();
                })
            })
            .collect();
        scope.spawn(|| {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                match i % 4 {
                    0 => drop(cache.shrink()),
                    1 => cache.set_config(config.page_limit(2 + i % 7)),
                    2 => cache.set_config(config),
                    _ => drop(cache.stats()),
                }
                i += 1;
                thread::yield_now();
            }
            cache.set_config(config);
        });
        for worker in workers {
            worker.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
    });
    // A scoped thread's caches give up their slots as its thread-local
    // destructors run, which may end a moment after its scope: until then
    // a slot on its way out of a magazine counts as in use, and one still
    // in the magazine as cached (a page `shrink` must leave alone).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let settled =
        |s: &minimal_slab::CacheStats| s.objects_in_use == 0 && s.cached_slots == s.depot_slots;
    while !settled(&cache.stats()) && std::time::Instant::now() < deadline {
        thread::yield_now();
    }
    let s = cache.stats();
    assert_eq!(s.objects_in_use, 0, "{s:?}");
    assert_consistent(&s);
    assert_eq!(pages.outstanding(), s.pages, "every page held is counted");
    cache.shrink();
    assert_eq!(cache.stats().pages, 0);
    assert_eq!(pages.outstanding(), 0);
}
