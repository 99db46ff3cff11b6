//! Model checks with [loom]: every interleaving of a few threads sharing one
//! cache or allocator, up to a bound on preemptions, is run, and each must
//! keep every value intact, never hand one slot to two owners, never give a
//! page back while an object in it is live, and leave the counters
//! balanced.
//!
//! Built only with `--cfg loom`, which puts loom's mutex and atomics under
//! the crate (see `src/sync.rs`):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release --test loom -- --nocapture
//! RUSTFLAGS="--cfg loom" cargo test --release --features checked --test loom
//! RUSTFLAGS="--cfg loom" cargo test --release --no-default-features --features alloc --test loom
//! ```
//!
//! The second run adds misuse detection, which compares every freed slot's
//! owner tag: it is what notices two threads assigning an allocator two
//! different tags. The third, without `std`, has no per-thread caches:
//! every call takes the shared caches' locked path (the models of the
//! per-thread caches and the depot are left out there).
//!
//! `--nocapture` shows how many interleavings each model explored. The models
//! with two threads at work are searched exhaustively, or up to four
//! preemptions per execution where that would take minutes; those with
//! three, up to two. `LOOM_MAX_PREEMPTIONS` sets one bound for all.
//!
//! Slabs are kept tiny so that a handful of operations crosses every slab
//! boundary: two objects per typed slab, one per slab in the raw
//! allocator's largest class. `alloc` and a handle's drop (and the raw
//! allocator's `allocate` and `deallocate`) go through the per-thread
//! caches, as with `std` outside loom; under loom a thread's magazine holds
//! two slots, so a refill takes one and the third free in a row overflows.
//!
//! # The per-thread caches
//!
//! Each loom thread has its own table of magazines, and gives it back when
//! it ends (its exit guard is a loom thread-local). Three models are about
//! them:
//!
//! - a thread exits holding cached slots (and a live object it hands to
//!   the main thread), racing the main thread's alloc, free and `shrink`:
//!   the slots it gave up come back at the next `stats`/`shrink`, none is
//!   lost or handed out twice, every page comes back;
//! - a cache is dropped while another thread's table caches its slots: its
//!   pages go back at once, and that thread — whose next cache may take the
//!   dropped cache's registry place (a generation on) and so its table
//!   entry — forgets those slots without touching them (both endings, a
//!   new place and none, are checked to be explored);
//! - handles sent to another thread and dropped there while the sender
//!   keeps allocating: the receiver's overflow reaches the depot and a
//!   refill of the sender's may take it (both endings explored, in builds
//!   without `checked`).
//!
//! Every page given back stays in quarantine until the end of its execution,
//! filled with [`GIVEN_BACK`]: a write to it after it was given back fails
//! the model (as, in checked builds, does a check of a slot in it).
//!
//! Loom's `join` returns before the joined thread's thread-locals are
//! dropped, where `std`'s waits for them: the models call
//! `minimal_slab::wait_for_thread_exits` (loom builds only) after their
//! joins, and `explore` at the end of every execution, so that no thread is
//! still giving its table back when loom drops the execution's statics.
//!
//! [loom]: https://docs.rs/loom
#![cfg(loom)]

mod common;

use std::alloc::Layout;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::ptr::NonNull;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{fill, verify};
use loom::sync::Arc;
use loom::thread;
#[cfg(feature = "std")]
use minimal_slab::LocalCache;
#[cfg(feature = "std")]
use minimal_slab::typenum::U2;
use minimal_slab::typenum::{U128, U256, U1024, Unsigned};
use minimal_slab::{
    AllocatorStats, CacheConfig, CacheStats, ChunkedPages, GlobalPages, NoFallback, PageAllocError,
    PageAllocator, SlabAllocator, SlabBox, SlabCache,
};

/// How far a model's search goes, unless `LOOM_MAX_PREEMPTIONS` says.
#[derive(Clone, Copy)]
enum Search {
    /// Every interleaving: for models small enough to finish in a second.
    Exhaustive,
    /// Interleavings with at most this many preemptions each, which finds
    /// most bugs that any interleaving finds, at a fraction of the cost.
    Preemptions(usize),
}

/// Runs `model` in every interleaving `search` allows, and prints how many
/// that was.
fn explore(name: &str, search: Search, model: impl Fn() + Send + Sync + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none()
        && let Search::Preemptions(bound) = search
    {
        builder.preemption_bound = Some(bound);
    }
    let interleavings = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = interleavings.clone();
    // Left over by a model that failed on this thread.
    QUARANTINE.with(|pages| pages.borrow_mut().clear());
    builder.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        model();
        // No thread may still be giving its per-thread cache back when the
        // execution ends (see `wait_for_thread_exits`).
        minimal_slab::wait_for_thread_exits();
        end_quarantine();
    });
    let bound = match builder.preemption_bound {
        Some(bound) => format!("at most {bound} preemptions"),
        None => "exhaustive".to_owned(),
    };
    println!(
        "loom model `{name}`: explored {} interleavings ({bound})",
        interleavings.load(Ordering::Relaxed)
    );
}

/// What a page given back is filled with, until the end of the execution.
const GIVEN_BACK: u8 = 0xDB;

/// A page given back during the current execution, and how to free it.
struct Quarantined {
    page: NonNull<u8>,
    size: usize,
    free: Box<dyn FnOnce(NonNull<u8>)>,
}

std::thread_local! {
    /// The pages given back in the current execution (a model runs on one
    /// thread of the test harness, its loom threads included).
    static QUARANTINE: RefCell<Vec<Quarantined>> = const { RefCell::new(Vec::new()) };
}

/// At the end of an execution: every page given back in it must still be
/// filled with [`GIVEN_BACK`] — no thread wrote to it after its cache gave
/// it back (a thread that still cached slots of a dropped cache, say) —
/// and only now goes back to the global allocator.
fn end_quarantine() {
    let pages = QUARANTINE.with(|pages| std::mem::take(&mut *pages.borrow_mut()));
    for Quarantined { page, size, free } in pages {
        // SAFETY: a page of `size` bytes, given back to `WatchedPages` and
        // kept by it, freed only below.
        let bytes = unsafe { std::slice::from_raw_parts(page.as_ptr(), size) };
        if let Some(at) = bytes.iter().position(|&byte| byte != GIVEN_BACK) {
            panic!("page {page:p} written at offset {at} after it was given back");
        }
        free(page);
    }
}

/// Pages from `P`, and the addresses of the objects the test holds: a slot
/// claimed twice, or a page given back with a claimed object in it, fails
/// the model on the spot.
///
/// Objects are claimed after they are allocated and released before they are
/// freed, so the set never holds an address that is not in use.
///
/// A page given back is kept, filled with [`GIVEN_BACK`], until the end of
/// the execution ([`end_quarantine`]): a write to it after that fails the
/// model, and in checked builds so does a read that checks a resting slot's
/// poison (the cache reports the slot as damaged).
struct WatchedPages<P> {
    inner: P,
    live: StdMutex<BTreeSet<usize>>,
    outstanding: AtomicUsize,
}

impl<P: PageAllocator> WatchedPages<P> {
    fn new(inner: P) -> Self {
        Self {
            inner,
            live: StdMutex::new(BTreeSet::new()),
            outstanding: AtomicUsize::new(0),
        }
    }

    fn claim(&self, addr: usize) {
        assert!(
            self.live.lock().unwrap().insert(addr),
            "slot {addr:#x} handed out while live"
        );
    }

    fn release(&self, addr: usize) {
        assert!(
            self.live.lock().unwrap().remove(&addr),
            "slot {addr:#x} was not live"
        );
    }

    /// Pages handed out and not given back.
    fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }
}

// SAFETY: every page comes from `P` and goes back to it, at the end of the
// execution at the latest; watching adds no way to break the contract.
unsafe impl<P: PageAllocator + Clone + 'static> PageAllocator for WatchedPages<P> {
    type PageSize = P::PageSize;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        let page = self.inner.allocate_page()?;
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        Ok(page)
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        let start = page.as_ptr().addr();
        let end = start + <P::PageSize as Unsigned>::USIZE;
        if let Some(addr) = self.live.lock().unwrap().range(start..end).next() {
            panic!("page {start:#x} given back while the object at {addr:#x} is live");
        }
        self.outstanding.fetch_sub(1, Ordering::Relaxed);
        let size = <P::PageSize as Unsigned>::USIZE;
        // SAFETY: the page is ours again (the caller gives it back), `size`
        // bytes long.
        unsafe { page.as_ptr().write_bytes(GIVEN_BACK, size) };
        let inner = self.inner.clone();
        let free = Box::new(move |page| {
            // SAFETY: the caller's guarantees for `self` are those for `P`,
            // and no one has used the page since; a clone of the source
            // takes it back (the only source watched here is `GlobalPages`,
            // a handle on the global allocator).
            unsafe { inner.deallocate_page(page) }
        });
        QUARANTINE.with(|pages| pages.borrow_mut().push(Quarantined { page, size, free }));
    }

    fn trim(&self) {
        self.inner.trim();
    }
}

/// A pointer handed to another thread, which becomes its only owner.
struct InFlight<T>(NonNull<T>);

// SAFETY: the sender gives the pointer up; the receiver is then the only
// thread that uses it, and the cache and allocator it belongs to are `Sync`.
unsafe impl<T: Send> Send for InFlight<T> {}

// ---------------------------------------------------------------------------
// The typed cache

/// 448 bytes: two to a 1 KiB slab.
type Object = [u64; 56];
type Cache = SlabCache<Object, WatchedPages<GlobalPages<U1024>>>;

/// The value that owner `owner` stores as its object `seq`: every word
/// differs between objects, so a slot shared by two owners shows.
fn stamp(owner: u64, seq: u64) -> Object {
    core::array::from_fn(|i| (owner << 48) ^ (seq << 32) ^ (i as u64).wrapping_mul(0x9E37_79B9))
}

fn new_cache(config: CacheConfig) -> Arc<Cache> {
    assert_eq!(Cache::SLOTS_PER_SLAB, 2);
    Arc::new(Cache::with_config(
        WatchedPages::new(GlobalPages::with_page_size()),
        config,
    ))
}

fn alloc_claimed(
    cache: &Cache,
    owner: u64,
    seq: u64,
) -> SlabBox<'_, Object, WatchedPages<GlobalPages<U1024>>> {
    let object = cache.alloc(stamp(owner, seq)).unwrap();
    cache
        .page_allocator()
        .claim(SlabBox::as_ptr(&object).addr());
    object
}

fn free_checked(
    object: SlabBox<'_, Object, WatchedPages<GlobalPages<U1024>>>,
    owner: u64,
    seq: u64,
) {
    assert_eq!(
        *object,
        stamp(owner, seq),
        "object {seq} of owner {owner} changed"
    );
    let cache = SlabBox::cache(&object);
    cache
        .page_allocator()
        .release(SlabBox::as_ptr(&object).addr());
    drop(object);
}

/// Two objects — a full slab when alone — freed in the order allocated.
fn churn(cache: &Cache, owner: u64) {
    let first = alloc_claimed(cache, owner, 0);
    let second = alloc_claimed(cache, owner, 1);
    free_checked(first, owner, 0);
    free_checked(second, owner, 1);
}

/// Called once every other thread has been joined: every slot is free in its
/// slab or cached (in this thread's magazine, the depot, or given up by an
/// exited thread, which `stats` takes back first), and `shrink` — which puts
/// all of them back — leaves no page behind.
fn assert_cache_balanced(cache: &Cache) {
    // Loom's `join` returns before the thread's exit has run; `std`'s waits
    // for it.
    minimal_slab::wait_for_thread_exits();
    let stats: CacheStats = cache.stats();
    assert_eq!(stats.objects_in_use, 0, "{stats:?}");
    assert_eq!(
        stats.free_slots + stats.cached_slots,
        stats.pages * stats.slots_per_slab,
        "{stats:?}"
    );
    cache.shrink();
    let stats = cache.stats();
    assert_eq!((stats.cached_slots, stats.pages), (0, 0), "{stats:?}");
    assert_eq!(cache.page_allocator().outstanding(), 0);
}

#[test]
fn typed_threads_racing_alloc_and_free() {
    explore(
        "typed: 3 threads alloc/free",
        Search::Preemptions(2),
        || {
            // No reserve, eager: every slab that empties gives its page back at once,
            // racing the other threads' growth.
            let cache = new_cache(CacheConfig::new().reserve(0).eager());
            let workers: Vec<_> = (1..=2)
                .map(|owner| {
                    let cache = cache.clone();
                    thread::spawn(move || churn(&cache, owner))
                })
                .collect();
            let mine = alloc_claimed(&cache, 0, 0);
            free_checked(mine, 0, 0);
            for worker in workers {
                worker.join().unwrap();
            }
            assert_cache_balanced(&cache);
        },
    );
}

#[test]
fn typed_object_freed_on_another_thread() {
    explore("typed: free on another thread", Search::Exhaustive, || {
        let cache = new_cache(CacheConfig::new().reserve(0).eager());
        let sent = InFlight(SlabBox::into_raw(alloc_claimed(&cache, 0, 0)));
        let receiver = {
            let cache = cache.clone();
            thread::spawn(move || {
                let sent = sent;
                // SAFETY: `sent` came from `into_raw` on this cache, and the
                // sender gave it up.
                let object = unsafe { SlabBox::from_raw(&*cache, sent.0) };
                free_checked(object, 0, 0);
                churn(&cache, 1);
            })
        };
        churn(&cache, 0);
        receiver.join().unwrap();
        assert_cache_balanced(&cache);
    });
}

#[test]
fn typed_shrink_racing_alloc_and_free() {
    explore("typed: shrink vs alloc/free", Search::Exhaustive, || {
        // The default reserve keeps emptied slabs for `shrink` to take.
        let cache = new_cache(CacheConfig::new());
        let survivor = alloc_claimed(&cache, 0, 0);
        let worker = {
            let cache = cache.clone();
            thread::spawn(move || churn(&cache, 1))
        };
        let shrinker = {
            let cache = cache.clone();
            thread::spawn(move || {
                cache.shrink();
            })
        };
        worker.join().unwrap();
        shrinker.join().unwrap();
        free_checked(survivor, 0, 0);
        assert_cache_balanced(&cache);
    });
}

/// How many executions of the depot model ended with its batch taken by a
/// refill (0) or still in the depot (1).
#[cfg(feature = "std")]
static ENDINGS: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// Batches that one thread's front gives back reach another thread's front
/// whole, through the cache's depot (builds without checks; with `checked`,
/// through the slabs): magazines of two slots give one back at a time, so
/// each overflow is a batch of one, and each refill may take it.
// The per-thread caches and the depot exist with `std` only.
#[cfg(feature = "std")]
#[test]
fn typed_batches_handed_between_fronts_through_the_depot() {
    explore(
        "typed: fronts hand batches over",
        Search::Preemptions(2),
        || {
            let cache = new_cache(CacheConfig::new().reserve(0).eager());
            let (tx, rx) = loom::sync::mpsc::channel::<InFlight<Object>>();
            let receiver = {
                let cache = cache.clone();
                thread::spawn(move || {
                    let front = LocalCache::<_, _, U2>::new(&*cache);
                    for seq in 0..3 {
                        let sent = rx.recv().unwrap();
                        // SAFETY: `sent` came from `into_raw` on this cache,
                        // and the sender gave it up.
                        let object = unsafe { SlabBox::from_raw(&*cache, sent.0) };
                        assert_eq!(*object, stamp(0, seq), "object {seq} changed");
                        cache
                            .page_allocator()
                            .release(SlabBox::as_ptr(&object).addr());
                        // The third overflows the magazine: a batch of one.
                        front.recycle(object);
                    }
                })
            };
            {
                let front = LocalCache::<_, _, U2>::new(&*cache);
                for seq in 0..3 {
                    let object = front.alloc_shared(stamp(0, seq)).unwrap();
                    cache
                        .page_allocator()
                        .claim(SlabBox::as_ptr(&object).addr());
                    tx.send(InFlight(SlabBox::into_raw(object))).unwrap();
                }
                // Refills that may take what the receiver gave back.
                let mine: Vec<_> = (3..5)
                    .map(|seq| {
                        let object = front.alloc_shared(stamp(1, seq)).unwrap();
                        cache
                            .page_allocator()
                            .claim(SlabBox::as_ptr(&object).addr());
                        (seq, object)
                    })
                    .collect();
                for (seq, object) in mine {
                    free_checked(object, 1, seq);
                }
            }
            receiver.join().unwrap();
            // What the depot still holds is free, and `shrink` takes it back;
            // the sender's last two frees rest in its own per-thread cache
            // (a magazine of two under loom).
            let stats = cache.stats();
            assert_eq!(stats.objects_in_use, 0, "{stats:?}");
            assert_eq!(stats.cached_slots, stats.depot_slots + 2, "{stats:?}");
            // The receiver's overflow always reaches the depot; it is still
            // there unless a refill of the sender took it.
            ENDINGS[stats.depot_slots.min(1)].fetch_add(1, Ordering::Relaxed);
            cache.shrink();
            assert_eq!(cache.stats().depot_slots, 0);
            assert_cache_balanced(&cache);
        },
    );
    let [taken, kept] = ENDINGS.each_ref().map(|n| n.load(Ordering::Relaxed));
    if cfg!(feature = "checked") {
        // Checked builds send every batch to the slabs.
        assert_eq!(kept, 0);
    } else {
        assert!(
            taken > 0 && kept > 0,
            "both endings explored: {taken} taken, {kept} kept"
        );
    }
}

// ---------------------------------------------------------------------------
// The per-thread caches behind `alloc` and a handle's drop

/// A thread exits with free slots in its per-thread cache, racing the main
/// thread's allocation, free and `shrink`: its exit gives them up to the
/// cache, which takes them back (and checks them) at its next `stats` or
/// `shrink`; none is lost, none handed out twice, and every page comes back.
#[test]
fn typed_thread_exits_holding_cached_slots() {
    explore(
        "typed: a thread exits holding cached slots",
        Search::Preemptions(4),
        || {
            let cache = new_cache(CacheConfig::new().reserve(0).eager());
            let worker = {
                let cache = cache.clone();
                thread::spawn(move || {
                    // Each allocation refills the empty magazine (one slot at
                    // a time under loom); two slabs' worth.
                    let kept = alloc_claimed(&cache, 1, 0);
                    let first = alloc_claimed(&cache, 1, 1);
                    let second = alloc_claimed(&cache, 1, 2);
                    // Both frees stay in the magazine (two under loom): the
                    // thread ends with them cached, and with `kept`'s slab
                    // busy.
                    free_checked(first, 1, 1);
                    free_checked(second, 1, 2);
                    InFlight(SlabBox::into_raw(kept))
                })
            };
            let mine = alloc_claimed(&cache, 0, 0);
            free_checked(mine, 0, 0);
            cache.shrink();
            let kept = worker.join().unwrap();
            // SAFETY: from `into_raw` on this cache; the worker gave it up.
            let kept = unsafe { SlabBox::from_raw(&*cache, kept.0) };
            free_checked(kept, 1, 0);
            assert_cache_balanced(&cache);
        },
    );
}

/// How many executions of the dropped-cache model gave the cache made last
/// the dropped cache's place (1: its slots cached) or no place (0: the
/// locked path, the dropped cache still registered when it asked).
#[cfg(feature = "std")]
static PLACE_ENDINGS: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// A cache is dropped while another thread's table still caches its slots:
/// its pages go back at once (the drop never waits for that thread), and
/// the thread — using a cache that may have taken the dropped one's place
/// in the registry, a generation on, and so the same entry of its table —
/// and then its exit forget those slots without touching them: a write to
/// a page after it was given back fails the model (see `WatchedPages`),
/// and so, in checked builds, does a check of a slot in it.
// The per-thread caches and the depot exist with `std` only.
#[cfg(feature = "std")]
#[test]
fn typed_cache_dropped_while_another_thread_caches_its_slots() {
    explore(
        "typed: a cache dropped while another thread caches its slots",
        Search::Exhaustive,
        || {
            // Two places under loom: `held` takes the first, `dropped` the
            // second, and `later` the first free one after them: none while
            // `dropped` is registered, its place once it is retired.
            let held = new_cache(CacheConfig::new().reserve(0).eager());
            let dropped = new_cache(CacheConfig::new().reserve(0).eager());
            let later = new_cache(CacheConfig::new().reserve(0).eager());
            free_checked(alloc_claimed(&held, 0, 0), 0, 0);
            let (done, dropped_by_worker) = loom::sync::mpsc::channel::<()>();
            let worker = {
                let dropped = dropped.clone();
                let later = later.clone();
                thread::spawn(move || {
                    let first = alloc_claimed(&dropped, 1, 0);
                    let second = alloc_claimed(&dropped, 1, 1);
                    free_checked(first, 1, 0);
                    free_checked(second, 1, 1);
                    // The main thread drops the cache, while this thread's
                    // table still holds those two slots.
                    drop(dropped);
                    done.send(()).unwrap();
                    let object = alloc_claimed(&later, 2, 0);
                    free_checked(object, 2, 0);
                    let cached = later.stats().cached_slots;
                    assert!(cached <= 1, "{cached} slots cached");
                    PLACE_ENDINGS[cached].fetch_add(1, Ordering::Relaxed);
                })
            };
            dropped_by_worker.recv().unwrap();
            assert_eq!(Arc::strong_count(&dropped), 1);
            drop(dropped);
            worker.join().unwrap();
            assert_cache_balanced(&later);
            assert_cache_balanced(&held);
        },
    );
    let [locked, placed] = PLACE_ENDINGS.each_ref().map(|n| n.load(Ordering::Relaxed));
    assert!(
        locked > 0 && placed > 0,
        "both endings explored: {placed} with the dropped cache's place, {locked} with none"
    );
}

/// How many executions of the hand-off model ended with the receiver's
/// overflow taken by a refill of the sender (0) or still in the depot (1).
#[cfg(feature = "std")]
static HANDOFF_ENDINGS: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// Handles sent to another thread and dropped there, while the sender keeps
/// allocating: the receiver's frees fill its per-thread cache, the third
/// overflows it — one slot to the cache's depot (to the slabs in checked
/// builds) — and the sender's refills may take that slot from the depot.
// The per-thread caches and the depot exist with `std` only.
#[cfg(feature = "std")]
#[test]
fn typed_handles_dropped_on_another_thread() {
    explore(
        "typed: handles dropped on another thread",
        Search::Preemptions(4),
        || {
            let cache = new_cache(CacheConfig::new().reserve(0).eager());
            let (tx, rx) = loom::sync::mpsc::channel::<InFlight<Object>>();
            let receiver = {
                let cache = cache.clone();
                thread::spawn(move || {
                    for seq in 0..3 {
                        let sent = rx.recv().unwrap();
                        // SAFETY: `sent` came from `into_raw` on this cache,
                        // and the sender gave it up.
                        let object = unsafe { SlabBox::from_raw(&*cache, sent.0) };
                        free_checked(object, 0, seq);
                    }
                })
            };
            for seq in 0..3 {
                let object = alloc_claimed(&cache, 0, seq);
                tx.send(InFlight(SlabBox::into_raw(object))).unwrap();
            }
            // Refills, which look in the depot first.
            let mine = [3, 4].map(|seq| (seq, alloc_claimed(&cache, 1, seq)));
            for (seq, object) in mine {
                free_checked(object, 1, seq);
            }
            receiver.join().unwrap();
            let depot = cache.stats().depot_slots;
            assert!(depot <= 1, "{depot} slots in the depot");
            HANDOFF_ENDINGS[depot].fetch_add(1, Ordering::Relaxed);
            assert_cache_balanced(&cache);
        },
    );
    let [taken, kept] = HANDOFF_ENDINGS
        .each_ref()
        .map(|n| n.load(Ordering::Relaxed));
    if cfg!(feature = "checked") {
        // Checked builds send every batch to the slabs.
        assert_eq!(kept, 0);
    } else {
        assert!(
            taken > 0 && kept > 0,
            "both endings explored: {taken} taken, {kept} kept"
        );
    }
}

// ---------------------------------------------------------------------------
// The raw allocator

/// Classes of 8 to 128 bytes on 256-byte pages: one 128-byte block per slab.
type Heap = SlabAllocator<WatchedPages<GlobalPages<U256>>, NoFallback, U128>;

/// A block that fills its slab alone.
const LARGE: Layout = match Layout::from_size_align(128, 8) {
    Ok(layout) => layout,
    Err(_) => panic!("valid layout"),
};
/// A block of the 16-byte class, many to a slab.
const SMALL: Layout = match Layout::from_size_align(12, 4) {
    Ok(layout) => layout,
    Err(_) => panic!("valid layout"),
};

fn new_heap(config: CacheConfig) -> Arc<Heap> {
    let heap = Heap::with_size_classes(
        WatchedPages::new(GlobalPages::with_page_size()),
        NoFallback,
        config,
    );
    let stats = heap.stats();
    assert_eq!(stats.classes().last().unwrap().slots_per_slab, 1);
    Arc::new(heap)
}

fn allocate_filled(heap: &Heap, layout: Layout, id: u64) -> NonNull<u8> {
    let block = heap.allocate(layout).unwrap();
    heap.page_allocator().claim(block.as_ptr().addr());
    // SAFETY: just allocated for `layout`, ours alone.
    unsafe { fill(block, layout.size(), id) };
    block
}

/// # Safety
///
/// `block` came from `allocate_filled(heap, layout, id)` and is not used
/// again.
unsafe fn deallocate_checked(heap: &Heap, block: NonNull<u8>, layout: Layout, id: u64) {
    // SAFETY: live and filled for `id`, per the caller.
    unsafe { verify(block, layout.size(), id) };
    heap.page_allocator().release(block.as_ptr().addr());
    // SAFETY: allocated from `heap` with `layout`, not used again.
    unsafe { heap.deallocate(block, layout) };
}

/// A large and a small block, the large one freed first.
fn raw_churn(heap: &Heap, owner: u64) {
    let large = allocate_filled(heap, LARGE, owner << 8);
    let small = allocate_filled(heap, SMALL, (owner << 8) | 1);
    // SAFETY: each block came from `allocate_filled` with these arguments.
    unsafe { deallocate_checked(heap, large, LARGE, owner << 8) };
    // SAFETY: as above.
    unsafe { deallocate_checked(heap, small, SMALL, (owner << 8) | 1) };
}

fn assert_heap_balanced(heap: &Heap) {
    // As in `assert_cache_balanced`.
    minimal_slab::wait_for_thread_exits();
    let stats: AllocatorStats<_> = heap.stats();
    assert_eq!(stats.objects_in_use(), 0, "{stats:?}");
    for class in stats.classes() {
        assert_eq!(
            class.free_slots + class.cached_slots,
            class.pages * class.slots_per_slab,
            "{class:?}"
        );
    }
    heap.shrink_to_fit();
    let stats = heap.stats();
    assert_eq!(stats.pages(), 0, "{stats:?}");
    for class in stats.classes() {
        assert_eq!(class.cached_slots, 0, "{class:?}");
    }
    assert_eq!(heap.page_allocator().outstanding(), 0);
}

#[test]
fn raw_threads_racing_allocate_and_deallocate() {
    explore(
        "raw: 3 threads allocate/deallocate",
        Search::Preemptions(2),
        || {
            let heap = new_heap(CacheConfig::new().reserve(0).eager());
            let workers: Vec<_> = (1..=2)
                .map(|owner| {
                    let heap = heap.clone();
                    thread::spawn(move || raw_churn(&heap, owner))
                })
                .collect();
            // Another class than the workers' first: two classes grow at once
            // and race to assign the allocator's owner tag.
            let mine = allocate_filled(&heap, SMALL, 0);
            // SAFETY: allocated just above with these arguments.
            unsafe { deallocate_checked(&heap, mine, SMALL, 0) };
            for worker in workers {
                worker.join().unwrap();
            }
            assert_heap_balanced(&heap);
        },
    );
}

#[test]
fn raw_block_freed_on_another_thread() {
    explore("raw: free on another thread", Search::Exhaustive, || {
        let heap = new_heap(CacheConfig::new().reserve(0).eager());
        let sent = InFlight(allocate_filled(&heap, LARGE, 7));
        let receiver = {
            let heap = heap.clone();
            thread::spawn(move || {
                let sent = sent;
                // SAFETY: allocated with these arguments by the sender, which
                // gave it up.
                unsafe { deallocate_checked(&heap, sent.0, LARGE, 7) };
                raw_churn(&heap, 1);
            })
        };
        raw_churn(&heap, 0);
        receiver.join().unwrap();
        assert_heap_balanced(&heap);
    });
}

#[test]
fn raw_shrink_racing_allocate_and_deallocate() {
    explore(
        "raw: shrink vs allocate/deallocate",
        Search::Exhaustive,
        || {
            let heap = new_heap(CacheConfig::new());
            let survivor = allocate_filled(&heap, LARGE, 7);
            let worker = {
                let heap = heap.clone();
                thread::spawn(move || raw_churn(&heap, 1))
            };
            let shrinker = {
                let heap = heap.clone();
                thread::spawn(move || {
                    heap.shrink_to_fit();
                })
            };
            worker.join().unwrap();
            shrinker.join().unwrap();
            // SAFETY: allocated above with these arguments, not used again.
            unsafe { deallocate_checked(&heap, survivor, LARGE, 7) };
            assert_heap_balanced(&heap);
        },
    );
}

// ------------------------------------------------------------ chunked pages --

/// Four-page chunks of 256-byte pages: three pages to hand out per chunk, so
/// that a few requests cross every chunk state (partial, full, spare, given
/// back).
type Chunked = ChunkedPages<WatchedPages<GlobalPages<U1024>>, U256>;

fn new_chunked() -> Arc<Chunked> {
    Arc::new(ChunkedPages::with_page_size(WatchedPages::new(
        GlobalPages::with_page_size(),
    )))
}

/// Marks both ends of `page` with `id`.
fn stamp_page(page: NonNull<u8>, id: u8) {
    // SAFETY: a page of 256 bytes handed out to the caller alone.
    unsafe { page.as_ptr().write(id) };
    // SAFETY: as above; byte 255 is the page's last.
    let last = unsafe { page.byte_add(255) };
    // SAFETY: as above.
    unsafe { last.as_ptr().write(id) };
}

/// Checks the marks `stamp_page` left.
fn check_page(page: NonNull<u8>, id: u8) {
    // SAFETY: a page of 256 bytes still held by the caller.
    let first = unsafe { page.as_ptr().read() };
    // SAFETY: as above; byte 255 is the page's last.
    let last = unsafe { page.byte_add(255) };
    // SAFETY: as above.
    let ends = (first, unsafe { last.as_ptr().read() });
    assert_eq!(ends, (id, id), "page {page:p} written by someone else");
}

/// Takes a page, marks it, lets the other threads run, checks the mark and
/// gives the page back; twice.
fn page_round_trips(pages: &Chunked, id: u8) {
    for round in 0..2 {
        let page = pages.allocate_page().unwrap();
        stamp_page(page, id + round);
        thread::yield_now();
        check_page(page, id + round);
        // SAFETY: from `pages`, not used again.
        unsafe { pages.deallocate_page(page) };
    }
}

/// No page out, at most the one spare chunk held, and nothing held once
/// trimmed.
fn assert_chunks_balanced(pages: &Chunked) {
    assert_eq!(pages.pages_out(), 0);
    assert!(pages.chunks() <= 1, "{} chunks kept", pages.chunks());
    assert_eq!(pages.chunks(), pages.source().outstanding());
    pages.trim();
    assert_eq!(pages.source().outstanding(), 0);
}

#[test]
fn chunked_pages_two_threads_taking_and_giving_back() {
    explore(
        "chunked pages: two threads take and give back",
        Search::Exhaustive,
        || {
            let pages = new_chunked();
            let other = {
                let pages = pages.clone();
                thread::spawn(move || page_round_trips(&pages, 10))
            };
            page_round_trips(&pages, 20);
            other.join().unwrap();
            assert_chunks_balanced(&pages);
        },
    );
}

#[test]
fn chunked_pages_emptying_a_chunk_races_new_requests() {
    /// A page handed to another thread, which becomes its only owner.
    struct Sent(NonNull<u8>);
    // SAFETY: the sender gives the page up.
    unsafe impl Send for Sent {}

    explore(
        "chunked pages: a chunk empties while new requests come",
        Search::Exhaustive,
        || {
            let pages = new_chunked();
            let full: Vec<Sent> = (0..3)
                .map(|id| {
                    let page = pages.allocate_page().unwrap();
                    stamp_page(page, id);
                    Sent(page)
                })
                .collect();
            let freer = {
                let pages = pages.clone();
                thread::spawn(move || {
                    for (id, Sent(page)) in (0..).zip(full) {
                        check_page(page, id);
                        // SAFETY: from `pages`, handed over, not used again.
                        unsafe { pages.deallocate_page(page) };
                    }
                })
            };
            let mine: Vec<NonNull<u8>> = (50..52)
                .map(|id| {
                    let page = pages.allocate_page().unwrap();
                    stamp_page(page, id);
                    page
                })
                .collect();
            freer.join().unwrap();
            for (id, page) in (50..).zip(mine) {
                check_page(page, id);
                // SAFETY: from `pages`, not used again.
                unsafe { pages.deallocate_page(page) };
            }
            assert_chunks_balanced(&pages);
        },
    );
}

/// A source of one chunk of four 256-byte pages, ever: a second request is
/// refused.
struct OneChunk {
    inner: GlobalPages<U1024>,
    asked: loom::sync::atomic::AtomicUsize,
}

// SAFETY: forwards to `GlobalPages`, which upholds the contract; refusing a
// request breaks no promise.
unsafe impl PageAllocator for OneChunk {
    type PageSize = U1024;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        if self.asked.fetch_add(1, Ordering::SeqCst) > 0 {
            return Err(PageAllocError::OutOfMemory);
        }
        self.inner.allocate_page()
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        // SAFETY: the caller's guarantees for `self` are those for the inner
        // source, which handed the page out.
        unsafe { self.inner.deallocate_page(page) }
    }
}

#[test]
fn chunked_pages_a_refused_request_waits_for_the_chunk_being_fetched() {
    explore(
        "chunked pages: two threads race for the source's last chunk",
        Search::Exhaustive,
        || {
            let pages: Arc<ChunkedPages<OneChunk, U256>> =
                Arc::new(ChunkedPages::with_page_size(OneChunk {
                    inner: GlobalPages::with_page_size(),
                    asked: loom::sync::atomic::AtomicUsize::new(0),
                }));
            let other = {
                let pages = pages.clone();
                thread::spawn(move || {
                    let page = pages
                        .allocate_page()
                        .expect("the chunk has a page for each");
                    stamp_page(page, 1);
                    InFlight(page)
                })
            };
            let mine = pages
                .allocate_page()
                .expect("the chunk has a page for each");
            stamp_page(mine, 2);
            let InFlight(theirs) = other.join().unwrap();
            assert_ne!(theirs, mine);
            check_page(mine, 2);
            check_page(theirs, 1);
            assert_eq!((pages.chunks(), pages.pages_out()), (1, 2));
            for page in [mine, theirs] {
                // SAFETY: from `pages`, not used again.
                unsafe { pages.deallocate_page(page) };
            }
            pages.trim();
            assert_eq!(pages.chunks(), 0);
        },
    );
}
