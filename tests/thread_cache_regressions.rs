//! Adversarial tests of the per-thread caches (feature `std`): a cache
//! dropped while another thread still caches its slots, entries that change
//! hands, page sources that use other caches, counts across threads, double
//! frees across threads.
//!
//! Tests named `fixed_*` reproduce a bug a cold review found in the first
//! version (each failed then; `fixed_under_miri_*` failed only under Miri);
//! the others held from the start.

#![cfg(feature = "std")]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use common::{CountingPages, panics_naming};
use minimal_slab::typenum::U4096;
use minimal_slab::{CacheStats, GlobalPages, PageAllocError, PageAllocator, SlabBox, SlabCache};

const PAGE: usize = 4096;

/// Whether misuse checks are on (as in the crate: `checked` or debug).
const CHECKED: bool = cfg!(any(feature = "checked", debug_assertions));

/// 4 KiB pages from `System` that are never really freed while the page
/// source lives: a page given back is recorded but kept, untouched, so that a
/// test can see a slot of a page given back being handed out again without
/// corrupting the heap. Everything is freed when the page source drops.
struct Keeper {
    /// (page address, given back?)
    pages: Mutex<Vec<(usize, bool)>>,
    /// Pages given back that were not out, or twice.
    foreign: AtomicUsize,
}

impl Keeper {
    const fn new() -> Self {
        Self {
            pages: Mutex::new(Vec::new()),
            foreign: AtomicUsize::new(0),
        }
    }

    /// Whether `addr` lies in a page this source handed out and that was
    /// given back since.
    fn in_given_back_page(&self, addr: usize) -> bool {
        self.pages
            .lock()
            .unwrap()
            .iter()
            .any(|&(page, back)| back && (page..page + PAGE).contains(&addr))
    }

    /// Whether `addr` lies in any page this source handed out.
    fn in_any_page(&self, addr: usize) -> bool {
        self.pages
            .lock()
            .unwrap()
            .iter()
            .any(|&(page, _)| (page..page + PAGE).contains(&addr))
    }

    fn outstanding(&self) -> usize {
        self.pages.lock().unwrap().iter().filter(|p| !p.1).count()
    }

    const LAYOUT: Layout = match Layout::from_size_align(PAGE, PAGE) {
        Ok(l) => l,
        Err(_) => panic!(),
    };
}

impl Drop for Keeper {
    fn drop(&mut self) {
        for &(page, _) in self.pages.get_mut().unwrap().iter() {
            // SAFETY: allocated below with this layout, freed once.
            unsafe { System.dealloc(page as *mut u8, Self::LAYOUT) };
        }
    }
}

// SAFETY: pages are distinct `System` allocations of a page, aligned to it,
// and stay valid until the page source drops (after every cache using it).
unsafe impl PageAllocator for Keeper {
    type PageSize = U4096;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        // SAFETY: non-zero size.
        let page = NonNull::new(unsafe { System.alloc(Self::LAYOUT) })
            .ok_or(PageAllocError::OutOfMemory)?;
        self.pages
            .lock()
            .unwrap()
            .push((page.as_ptr() as usize, false));
        Ok(page)
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        let mut pages = self.pages.lock().unwrap();
        match pages
            .iter_mut()
            .find(|p| p.0 == page.as_ptr() as usize && !p.1)
        {
            Some(p) => p.1 = true,
            None => {
                self.foreign.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Counters that add up: every slot of every page held is in use, cached
/// or free.
fn assert_consistent(s: &CacheStats) {
    assert_eq!(
        s.objects_in_use + s.cached_slots + s.free_slots,
        s.pages * s.slots_per_slab,
        "{s:?}"
    );
}

/// How many caches a thread makes to be sure one of them lands on the
/// entry another cache used: tickets are handed out in turn (other tests of
/// this binary register too, hence the margin).
const COLLIDERS: usize = if cfg!(miri) { 40 } else { 200 };

/// Was a bug (use after free, every build): a cache is dropped while another
/// thread still caches its slots; that thread later uses a cache whose
/// entry is the same. `Entry::give_up` passes the magazine's slots to
/// `registry::give_up` as a *lazy* iterator, which returns without
/// consuming it when the ticket is retired: the slots stay in the magazine,
/// the key is cleared, and the new cache's `take` pops the dropped cache's
/// slots out of pages already given back.
#[test]
fn fixed_slots_of_a_dropped_cache_are_handed_out_by_the_next_cache_on_their_entry() {
    let keeper: &'static Keeper = Box::leak(Box::new(Keeper::new()));
    let dropped = Arc::new(SlabCache::<u64, &'static Keeper>::new_in(keeper));
    let (to_worker, from_main) = mpsc::channel::<()>();
    let (to_main, from_worker) = mpsc::channel::<()>();
    let worker = {
        let dropped = Arc::clone(&dropped);
        thread::spawn(move || {
            // A refill: one slot in use, the rest of the batch cached here.
            drop(dropped.alloc(1).unwrap());
            assert!(dropped.stats().cached_slots > 0);
            drop(dropped);
            to_main.send(()).unwrap();
            from_main.recv().unwrap(); // the cache is gone now
            let fresh: Vec<SlabCache<u64>> = (0..COLLIDERS).map(|_| SlabCache::new()).collect();
            let mut stale = 0;
            let mut boxes = Vec::new();
            for cache in &fresh {
                let b = cache.alloc(7).unwrap();
                if keeper.in_given_back_page(SlabBox::as_ptr(&b) as usize) {
                    stale += 1;
                }
                boxes.push(b);
            }
            // Do not give the stale slots to the fresh caches' slabs.
            boxes.into_iter().for_each(|b| {
                SlabBox::into_raw(b);
            });
            std::mem::forget(fresh);
            stale
        })
    };
    from_worker.recv().unwrap();
    drop(Arc::into_inner(dropped).expect("the worker let go of it"));
    assert_eq!(keeper.outstanding(), 0, "every page went back");
    to_worker.send(()).unwrap();
    let stale = worker.join().unwrap();
    assert_eq!(
        stale, 0,
        "a fresh cache handed out {stale} slot(s) of a page the dropped cache gave back"
    );
}

/// Caches that a page source uses for its own bookkeeping: other caches than
/// the one it serves, which the `PageAllocator` contract allows.
static LOG_CACHES: Mutex<Vec<&'static SlabCache<u64>>> = Mutex::new(Vec::new());

/// A `Keeper` that, for each page it hands out, allocates (and frees) one
/// `u64` from every cache of `LOG_CACHES` — as a page source that logs into
/// typed caches would.
struct Logging(Keeper);

// SAFETY: forwards to `Keeper`; the logging touches only other caches.
unsafe impl PageAllocator for Logging {
    type PageSize = U4096;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        let caches = LOG_CACHES.lock().unwrap().clone();
        for cache in caches {
            drop(cache.alloc(0xFEED).unwrap());
        }
        self.0.allocate_page()
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        // SAFETY: the caller's guarantees.
        unsafe { self.0.deallocate_page(page) }
    }
}

/// Was a bug (two caches share a slot, every build): a refill calls the page
/// source, which may use another cache; if that cache's entry in this
/// thread's table is the refilling cache's, it claims the entry (and fills
/// it with its own slots) in the middle of the refill. `MagazineFront::refill`
/// then pushes the refilling cache's batch into the entry, now keyed by the
/// other cache: the other cache hands out slots of the first cache's pages
/// (and, freed, would put them in its own slabs).
#[test]
fn fixed_a_page_source_using_another_cache_mid_refill_mixes_their_slots() {
    // Enough log caches, registered now, to cover every entry of a table.
    {
        let mut caches = LOG_CACHES.lock().unwrap();
        if caches.is_empty() {
            for _ in 0..if cfg!(miri) { 20 } else { 48 } {
                let cache: &'static SlabCache<u64> = Box::leak(Box::new(SlabCache::new()));
                drop(cache.alloc(0).unwrap());
                caches.push(cache);
            }
        }
    }
    let pages: &'static Logging = Box::leak(Box::new(Logging(Keeper::new())));
    let result = thread::spawn(move || {
        let cache: SlabCache<u64, &'static Logging> = SlabCache::new_in(pages);
        let first = cache.alloc(1).unwrap(); // a refill: a page, and the log
        let mut foreign = 0;
        // Checked builds may catch the mix-up when a foreign slot reaches
        // a log cache's slabs (as orphans): that panic is the bug too.
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for log in LOG_CACHES.lock().unwrap().iter() {
                for _ in 0..40 {
                    let b = log.alloc(2).unwrap();
                    if pages.0.in_any_page(SlabBox::as_ptr(&b) as usize) {
                        foreign += 1;
                    }
                    // Never freed: a foreign slot must not reach a log
                    // cache's slabs.
                    SlabBox::into_raw(b);
                }
            }
        }))
        .err()
        .map(|payload| {
            payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "<panic>".into())
        });
        drop(first);
        std::mem::forget(cache); // its slots are in another cache's hands
        (foreign, caught)
    })
    .join()
    .unwrap();
    assert_eq!(
        result,
        (0, None),
        "slot(s) of the refilled cache's page were handed out by (or freed into) another cache"
    );
}

// ---------------------------------------------------------------------------
// A page source that the cache owns, whose memory is gone when it drops (as
// the `PageAllocator` contract allows: pages stay valid "until ... the page
// source is dropped"). To see a write after that without corrupting the heap,
// it keeps the memory and takes a snapshot of every page still out when it
// drops; `written_after_drop` compares.

/// Pages by address, with their bytes.
type PageBytes = Vec<(usize, Vec<u8>)>;

#[derive(Default)]
struct OwnedState {
    /// (page address, given back?)
    pages: Mutex<Vec<(usize, bool)>>,
    panic_on_deallocate: std::sync::atomic::AtomicBool,
    /// The pages still out when the page source dropped, and their bytes.
    snapshot: Mutex<Option<PageBytes>>,
}

impl OwnedState {
    /// Bytes of pages still out at the page source's drop that changed since.
    fn written_after_drop(&self) -> usize {
        let snapshot = self.snapshot.lock().unwrap();
        let snapshot = snapshot.as_ref().expect("the page source dropped");
        snapshot
            .iter()
            .map(|(page, bytes)| {
                // SAFETY: the page is still allocated (freed in `drop` below).
                let now = unsafe { std::slice::from_raw_parts(*page as *const u8, PAGE) };
                now.iter().zip(bytes).filter(|(a, b)| a != b).count()
            })
            .sum()
    }
}

impl Drop for OwnedState {
    fn drop(&mut self) {
        for &(page, _) in self.pages.get_mut().unwrap().iter() {
            // SAFETY: allocated with this layout, freed once.
            unsafe { System.dealloc(page as *mut u8, Keeper::LAYOUT) };
        }
    }
}

struct Owned(Arc<OwnedState>);

impl Drop for Owned {
    fn drop(&mut self) {
        let pages = self.0.pages.lock().unwrap();
        let out = pages
            .iter()
            .filter(|p| !p.1)
            .map(|&(page, _)| {
                // SAFETY: a page still out: allocated, a page long.
                let bytes = unsafe { std::slice::from_raw_parts(page as *const u8, PAGE) };
                (page, bytes.to_vec())
            })
            .collect();
        *self.0.snapshot.lock().unwrap() = Some(out);
    }
}

#[derive(Debug)]
struct PagePanic;

// SAFETY: distinct `System` pages, valid until given back or until the page
// source drops (longer, in fact: `OwnedState` frees them).
unsafe impl PageAllocator for Owned {
    type PageSize = U4096;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        // SAFETY: non-zero size. Zeroed: the test compares whole pages.
        let page = NonNull::new(unsafe { System.alloc_zeroed(Keeper::LAYOUT) })
            .ok_or(PageAllocError::OutOfMemory)?;
        self.0
            .pages
            .lock()
            .unwrap()
            .push((page.as_ptr() as usize, false));
        Ok(page)
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        if let Some(p) = self
            .0
            .pages
            .lock()
            .unwrap()
            .iter_mut()
            .find(|p| p.0 == page.as_ptr() as usize && !p.1)
        {
            p.1 = true;
        }
        if self.0.panic_on_deallocate.swap(false, Ordering::SeqCst) {
            std::panic::panic_any(PagePanic);
        }
    }
}

/// Was a bug (use after free, every build): `ThreadCache::retire` puts the
/// orphans back (a `free_batch` that gives emptied pages back, so calls the
/// page source) *before* it retires the ticket. A page source that panics
/// there unwinds out of the cache's `Drop` with the ticket still live: the
/// cache and its page source go, and a thread that still caches its slots
/// later gives them up as orphans of a live ticket, writing the link into
/// each slot — into memory of a page source already dropped. (The registry
/// place also stays live for good.)
#[test]
fn fixed_a_page_source_panicking_in_the_drop_leaves_the_ticket_live() {
    type Block = [u8; 1024]; // three a page
    let state = Arc::new(OwnedState::default());
    let cache = Arc::new(SlabCache::<Block, Owned>::with_config(
        Owned(Arc::clone(&state)),
        minimal_slab::CacheConfig::new().reserve(0),
    ));
    // A live thread caches slots of its own.
    let (to_worker, from_main) = mpsc::channel::<()>();
    let (to_main, from_worker) = mpsc::channel::<()>();
    let worker = {
        let cache = Arc::clone(&cache);
        thread::spawn(move || {
            drop(cache.alloc([2; 1024]).unwrap());
            assert!(cache.stats().cached_slots > 0);
            drop(cache);
            to_main.send(()).unwrap();
            from_main.recv().unwrap();
            // Exits now: the table gives its slots up.
        })
    };
    from_worker.recv().unwrap();
    // An exited thread leaves orphans, enough to empty pages
    // (after the live one took its slots, or its refill would adopt them).
    {
        let cache = Arc::clone(&cache);
        thread::spawn(move || {
            let boxes: Vec<_> = (0..6).map(|_| cache.alloc([1; 1024]).unwrap()).collect();
            drop(boxes);
            assert!(cache.stats().cached_slots > 0);
        })
        .join()
        .unwrap();
    }
    let cache = Arc::into_inner(cache).unwrap();
    state.panic_on_deallocate.store(true, Ordering::SeqCst);
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(cache)));
    std::panic::set_hook(quiet);
    assert!(dropped.is_err(), "the page source panicked in the drop");
    to_worker.send(()).unwrap();
    worker.join().unwrap();
    let written = state.written_after_drop();
    assert_eq!(
        written, 0,
        "{written} byte(s) of pages written after their page source was dropped"
    );
}

// ---------------------------------------------------------------------------
// Double frees across threads (checked builds).

/// A slot's pointer, sent to other threads (for the misuse under test).
#[derive(Clone, Copy)]
struct SendPtr(NonNull<[u64; 2]>);
// SAFETY: only a pointer; the tests say who uses it when.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

/// A slot freed on two threads, the first free gone back to the slab: the
/// second free is reported by that very free, though it lands in the
/// second thread's magazine (its slab's bitmap says no user holds the slot).
#[test]
fn a_double_free_across_two_threads_is_reported_by_the_second_free() {
    if !CHECKED {
        return; // checked builds only
    }
    let cache: SlabCache<[u64; 2]> = SlabCache::new();
    let ptr = SlabBox::into_raw(cache.alloc([1, 2]).unwrap());
    let addr = SendPtr(ptr);
    thread::scope(|s| {
        s.spawn(|| {
            let ptr = { addr }.0;
            // SAFETY: the first free of the slot, as the handle it was.
            drop(unsafe { SlabBox::from_raw(&cache, ptr) });
            cache.shrink(); // into the slab
        })
        .join()
        .unwrap();
        let second = s
            .spawn(|| {
                let ptr = { addr }.0;
                panics_naming("double free", || {
                    // SAFETY: none: the misuse under test (checked builds
                    // catch it before changing anything).
                    drop(unsafe { SlabBox::from_raw(&cache, ptr) });
                })
            })
            .join()
            .unwrap();
        assert!(second, "the second free was not reported");
    });
    let s = cache.stats();
    assert_consistent(&s);
}

/// Was a bug (diagnostic, checked builds): a slot freed on two threads, both
/// frees resting in magazines at once; the first thread flushes, then the
/// second. The slab wrote its free-list link into the slot meanwhile, so the
/// second drain's poison check reported a *write after free* (and dropped
/// the slot), never a double free. The second free is now reported by that
/// very free, as a double free, and never rests in a magazine; the flushes
/// find nothing wrong.
#[test]
fn fixed_a_double_free_resting_in_two_magazines_is_reported_as_a_write_after_free() {
    if !CHECKED {
        return;
    }
    let cache: SlabCache<[u64; 2]> = SlabCache::new();
    let ptr = SlabBox::into_raw(cache.alloc([1, 2]).unwrap());
    let addr = SendPtr(ptr);
    let (a_freed_tx, a_freed_rx) = mpsc::channel::<()>();
    let (b_freed_tx, b_freed_rx) = mpsc::channel::<()>();
    let (a_flushed_tx, a_flushed_rx) = mpsc::channel::<()>();
    let reported = thread::scope(|s| {
        let cache = &cache;
        s.spawn(move || {
            let ptr = { addr }.0;
            // SAFETY: the first free.
            drop(unsafe { SlabBox::from_raw(cache, ptr) });
            a_freed_tx.send(()).unwrap();
            b_freed_rx.recv().unwrap();
            cache.flush_thread_cache();
            a_flushed_tx.send(()).unwrap();
        });
        s.spawn(move || {
            a_freed_rx.recv().unwrap();
            let ptr = { addr }.0;
            let reported = panics_naming("double free", || {
                // SAFETY: none: the misuse under test.
                drop(unsafe { SlabBox::from_raw(cache, ptr) });
            });
            b_freed_tx.send(()).unwrap();
            a_flushed_rx.recv().unwrap();
            cache.flush_thread_cache(); // nothing wrong rests here
            reported
        })
        .join()
        .unwrap()
    });
    assert!(reported, "the second free was not reported");
    let s = cache.stats();
    assert_consistent(&s);
    assert_eq!(s.objects_in_use, 0, "the slot went back once");
}

/// Was a bug (checked builds: no report, a corrupt orphan list; release: the
/// same, looping): a slot freed on two threads that both *exit*. The first
/// gives it up as an orphan (its link written into the slot); the second
/// free poisons the slot again, over the link, so the second thread's exit
/// finds it intact and links it again: the orphan list is `X -> X`, a cycle
/// with `len` 2. `put_back` pops until a batch is full, not until `len` is
/// 0, so `Orphans::pop` underflows `len` (a debug build's overflow panic;
/// with `--features checked` in release, `len` wraps and `put_back` frees
/// the same slot for ever). Run in a child process; the double free must be
/// reported as such (now by the second thread's free itself).
#[test]
fn fixed_a_double_free_across_two_exiting_threads_corrupts_the_orphan_list() {
    if !CHECKED || cfg!(miri) {
        return;
    }
    const CHILD: &str = "THREAD_CACHE_ATTACK_CHILD";
    if std::env::var_os(CHILD).is_some() {
        static CACHE: SlabCache<[u64; 2]> = SlabCache::new();
        let ptr = SlabBox::into_raw(CACHE.alloc([1, 2]).unwrap());
        let addr = SendPtr(ptr);
        for _ in 0..2 {
            thread::spawn(move || {
                let ptr = { addr }.0;
                // SAFETY: none on the second thread: the misuse under test.
                drop(unsafe { SlabBox::from_raw(&CACHE, ptr) });
            })
            .join()
            .unwrap();
        }
        let _ = CACHE.stats(); // adopts the orphans
        CACHE.shrink();
        println!("CHILD-SURVIVED");
        return;
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "fixed_a_double_free_across_two_exiting_threads_corrupts_the_orphan_list",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A corrupt orphan list may make the child loop for ever.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut hung = false;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            hung = true;
            break;
        }
        thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !hung,
        "the child hung (a cycle in the orphan list?):\n{text}"
    );
    assert!(
        !text.contains("CHILD-SURVIVED"),
        "the double free went unnoticed:\n{text}"
    );
    assert!(
        text.contains("minimal_slab: double free"),
        "the double free was not reported as one:\n{text}"
    );
}

// ---------------------------------------------------------------------------
// Regression tests that hold.

type Counted = CountingPages<GlobalPages>;

/// Scoped threads' thread-local destructors may run after `thread::scope`
/// returns; a non-static cache dropped right after the scope gives every
/// page back, and the late destructors touch nothing (Miri checks that).
#[test]
fn a_cache_dropped_right_after_a_scope_gives_every_page_back() {
    let rounds = if cfg!(miri) { 2 } else { 50 };
    for _ in 0..rounds {
        let pages = Counted::new(GlobalPages::new());
        let cache: SlabCache<[u64; 3], &Counted> = SlabCache::new_in(&pages);
        thread::scope(|s| {
            for t in 0..2u64 {
                let cache = &cache;
                s.spawn(move || {
                    let boxes: Vec<_> = (0..40).map(|i| cache.alloc([t, i, 0]).unwrap()).collect();
                    drop(boxes);
                });
            }
        });
        drop(cache);
        assert_eq!(pages.outstanding(), 0);
    }
}

/// A cache moved (to another address) while a live thread caches its
/// slots; that thread exits afterwards, and the moved cache takes its slots
/// back as orphans.
#[test]
fn a_cache_moved_while_another_thread_caches_its_slots() {
    static PAGES: Counted = Counted::new(GlobalPages::new());
    let pages = &PAGES;
    let cache = Arc::new(SlabCache::<u64, &'static Counted>::new_in(pages));
    let (to_worker, from_main) = mpsc::channel::<()>();
    let (to_main, from_worker) = mpsc::channel::<()>();
    let worker = {
        let cache = Arc::clone(&cache);
        thread::spawn(move || {
            let boxes: Vec<_> = (0..20).map(|i| cache.alloc(i).unwrap()).collect();
            drop(boxes);
            drop(cache);
            to_main.send(()).unwrap();
            from_main.recv().unwrap();
        })
    };
    from_worker.recv().unwrap();
    let cache = Arc::into_inner(cache).unwrap();
    let s = cache.stats();
    assert!(s.cached_slots > 0, "{s:?}");
    assert_consistent(&s);
    let moved = Box::new(cache); // a new address
    to_worker.send(()).unwrap();
    worker.join().unwrap();
    let s = moved.stats(); // adopts the orphans
    assert_eq!((s.objects_in_use, s.cached_slots), (0, 0), "{s:?}");
    assert_consistent(&s);
    let kept: Vec<_> = (0..50).map(|i| moved.alloc(i).unwrap()).collect();
    assert!(kept.iter().enumerate().all(|(i, b)| **b == i as u64));
    drop(kept);
    drop(moved);
    assert_eq!(pages.outstanding(), 0);
}

/// `stats()` read while other threads allocate and free: the counts always
/// add up, and once the threads are gone nothing is in use or cached.
#[test]
fn stats_add_up_while_other_threads_work() {
    let pages = Counted::new(GlobalPages::new());
    let cache: SlabCache<[u64; 2], &Counted> = SlabCache::new_in(&pages);
    let ops = if cfg!(miri) { 60 } else { 20_000 };
    let done = AtomicUsize::new(0);
    thread::scope(|s| {
        for t in 0..2u64 {
            let (cache, done) = (&cache, &done);
            s.spawn(move || {
                let mut rng = common::XorShift::new(t + 1);
                let mut live = Vec::new();
                for i in 0..ops {
                    if rng.percent(55) || live.is_empty() {
                        live.push(cache.alloc([t, i as u64]).unwrap());
                    } else {
                        let b = live.swap_remove(rng.below(live.len()));
                        assert_eq!(b[0], t);
                    }
                }
                drop(live);
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        while done.load(Ordering::SeqCst) < 2 {
            let s = cache.stats();
            assert_consistent(&s);
            thread::yield_now();
        }
    });
    // The scoped threads' tables may still be going: joined threads are
    // not yet exited threads. Flushing here gives back only ours.
    let s = cache.stats();
    assert_consistent(&s);
    assert!(s.objects_in_use <= s.total_slots());
    drop(cache);
    assert_eq!(pages.outstanding(), 0);
}

/// Threads that exit (joined, so their tables are gone) leave nothing in
/// use nor cached, and a shrink gives every page back.
#[test]
fn exited_threads_leave_nothing_cached() {
    static PAGES: Counted = Counted::new(GlobalPages::new());
    static CACHE: SlabCache<[u64; 5], &'static Counted> = SlabCache::new_in(&PAGES);
    let (pages, cache) = (&PAGES, &CACHE);
    let n = if cfg!(miri) { 30 } else { 500 };
    let handles: Vec<_> = (0..3u64)
        .map(|t| {
            thread::spawn(move || {
                let boxes: Vec<_> = (0..n)
                    .map(|i| cache.alloc([t, i, 0, 0, 0]).unwrap())
                    .collect();
                drop(boxes);
                assert!(cache.stats().cached_slots > 0);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let s = cache.stats();
    // Nothing in any thread's cache; whole batches their caches gave back
    // may wait in the cache's depot (release builds), for the next thread.
    assert_eq!(s.objects_in_use, 0, "{s:?}");
    assert_eq!(s.cached_slots, s.depot_slots, "{s:?}");
    assert_consistent(&s);
    cache.shrink();
    assert_eq!(cache.stats().cached_slots, 0);
    assert_eq!(pages.outstanding(), 0);
}

/// A cache in a `thread_local!`: dropped in the thread's teardown, before
/// or after the table, it gives every page back.
#[test]
fn a_cache_in_a_thread_local() {
    static PAGES: Counted = Counted::new(GlobalPages::new());
    thread_local! {
        static LOCAL: SlabCache<[u64; 4], &'static Counted> = SlabCache::new_in(&PAGES);
    }
    let threads = if cfg!(miri) { 1 } else { 8 };
    for t in 0..threads {
        thread::spawn(move || {
            LOCAL.with(|cache| {
                let boxes: Vec<_> = (0..50)
                    .map(|i| cache.alloc([t, i, 0, 0]).unwrap())
                    .collect();
                drop(boxes);
                assert!(cache.stats().cached_slots > 0);
            });
        })
        .join()
        .unwrap();
    }
    assert_eq!(PAGES.outstanding(), 0);
}

/// A handle dropped by another thread-local's destructor, before or after
/// the table's: the slot goes back (to the table or, once the table is
/// gone, to the slab), and the counts say so.
#[test]
fn a_handle_dropped_in_thread_teardown() {
    static CACHE: SlabCache<[u64; 6]> = SlabCache::new();
    struct Holder(std::cell::RefCell<Vec<SlabBox<'static, [u64; 6]>>>);
    impl Drop for Holder {
        fn drop(&mut self) {
            // Frees, then allocates and frees again, during teardown.
            self.0.borrow_mut().clear();
            drop(CACHE.alloc([9; 6]).unwrap());
        }
    }
    thread_local! {
        static EARLY: Holder = Holder(Default::default());
    }
    thread::spawn(|| {
        // EARLY registered before the table, then the table, then LATE.
        EARLY.with(|h| h.0.borrow_mut().push(CACHE.alloc([1; 6]).unwrap()));
        drop(CACHE.alloc([2; 6]).unwrap());
        thread_local! {
            static LATE: Holder = Holder(Default::default());
        }
        LATE.with(|h| h.0.borrow_mut().push(CACHE.alloc([3; 6]).unwrap()));
    })
    .join()
    .unwrap();
    let s = CACHE.stats();
    assert_eq!((s.objects_in_use, s.cached_slots), (0, 0), "{s:?}");
    assert_consistent(&s);
}

/// A value whose `Drop` panics still gives its slot back, into the
/// thread's magazine.
#[test]
fn a_panicking_drop_gives_the_slot_back() {
    struct Bomb(#[allow(dead_code)] u64);
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("boom");
        }
    }
    let pages = Counted::new(GlobalPages::new());
    let cache: SlabCache<Bomb, &Counted> = SlabCache::new_in(&pages);
    for i in 0..40 {
        let b = cache.alloc(Bomb(i)).unwrap_or_else(|_| unreachable!());
        assert!(panics_naming("boom", || drop(b)));
    }
    let s = cache.stats();
    assert_eq!(s.objects_in_use, 0, "{s:?}");
    assert_consistent(&s);
    cache.flush_thread_cache();
    cache.shrink();
    assert_eq!(pages.outstanding(), 0);
}

/// More caches alive at once than registry places: the rest take the
/// locked path; entries change hands constantly; counts hold and every
/// page goes back.
#[test]
fn more_caches_than_registry_places_interleaved() {
    if cfg!(miri) {
        return;
    }
    let pages = Counted::new(GlobalPages::new());
    let caches: Vec<SlabCache<u64, &Counted>> =
        (0..1100).map(|_| SlabCache::new_in(&pages)).collect();
    let mut live = Vec::new();
    for round in 0..3u64 {
        for (i, cache) in caches.iter().enumerate() {
            live.push(cache.alloc(round * 10_000 + i as u64).unwrap());
            if (i + round as usize).is_multiple_of(3) {
                live.pop();
            }
        }
    }
    for (i, cache) in caches.iter().enumerate().step_by(97) {
        let s = cache.stats();
        assert_consistent(&s);
        let _ = i;
    }
    drop(live);
    drop(caches);
    assert_eq!(pages.outstanding(), 0);
}

/// Was a bug (undefined behaviour, seen by Miri): a table's destructor is
/// `Drop::drop(&mut self)`, so the thread-local machinery makes a `&mut
/// Table` — a claim of exclusive access to the whole table — while the table
/// is still on `TABLES`, where other threads may write its `prev`/`next`
/// (unlinking or linking themselves, under the list's lock, which the
/// `&mut` does not wait for) and read its entries (`stats()`). Miri reports
/// a data race between a neighbour's `(*prev).next.set(next)` and the retag
/// of the `&mut Table`. Natively the test passes; run it under Miri.
#[test]
fn fixed_under_miri_two_threads_exiting_together_race_on_their_tables() {
    static CACHE: SlabCache<u64> = SlabCache::new();
    let rounds = if cfg!(miri) { 4 } else { 20 };
    for _ in 0..rounds {
        let threads: Vec<_> = (0..3)
            .map(|i| {
                thread::spawn(move || {
                    drop(CACHE.alloc(i).unwrap()); // lists this thread's table
                })
            })
            .collect();
        for _ in 0..3 {
            let _ = CACHE.stats(); // reads the tables being dropped
        }
        for t in threads {
            t.join().unwrap();
        }
    }
}

/// Was a bug (use after free from safe code, every build): a leaked cache
/// (`mem::forget`, safe) never retires its ticket, so a thread that still
/// caches its slots gives them up, when it exits, as orphans of a live
/// ticket: it writes a link into each slot. Before per-thread caching a
/// leaked cache's pages were never touched again, so the page source could
/// go (the contract keeps pages valid only "until ... the page source is
/// dropped"); now they are written after it went. A scoped thread's
/// thread-local destructors run after the scope returns: one of them waits
/// until the cache is forgotten and its page source dropped; the table's
/// destructor runs next.
#[test]
fn fixed_a_forgotten_cache_has_its_slots_written_after_its_page_source_went() {
    use std::sync::mpsc::{Receiver, Sender};
    struct Wait(std::cell::RefCell<Option<Receiver<()>>>);
    impl Drop for Wait {
        fn drop(&mut self) {
            if let Some(rx) = self.0.borrow_mut().take() {
                let _ = rx.recv();
            }
        }
    }
    struct Notify(std::cell::RefCell<Option<Sender<()>>>);
    impl Drop for Notify {
        fn drop(&mut self) {
            if let Some(tx) = self.0.borrow_mut().take() {
                let _ = tx.send(());
            }
        }
    }
    thread_local! {
        static WAIT: Wait = Wait(Default::default());
        static NOTIFY: Notify = Notify(Default::default());
    }
    let state = Arc::new(OwnedState::default());
    let owned = Owned(Arc::clone(&state));
    let cache: SlabCache<[u64; 2], &Owned> = SlabCache::new_in(&owned);
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    thread::scope(|s| {
        let cache = &cache;
        s.spawn(move || {
            // Thread-local destructors run last registered first: WAIT,
            // then the table, then NOTIFY.
            NOTIFY.with(|n| *n.0.borrow_mut() = Some(done_tx));
            drop(cache.alloc([1, 2]).unwrap()); // the table, with slots
            WAIT.with(|w| *w.0.borrow_mut() = Some(go_rx));
        });
    });
    std::mem::forget(cache); // safe: a leak
    drop(owned); // the page source goes: its pages are no longer valid
    go_tx.send(()).unwrap();
    done_rx.recv().unwrap(); // the thread's table has given its slots up
    let written = state.written_after_drop();
    assert_eq!(
        written, 0,
        "{written} byte(s) of a leaked cache's pages written after its page source was dropped"
    );
}
