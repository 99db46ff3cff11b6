//! The `batch-fifo` workload as a bare loop, outside Criterion, with the
//! page traffic it causes: how often the cache gives pages back and the
//! chunk source gives chunks back to the global allocator, and the minor
//! page faults of the process.
//!
//! ```sh
//! cargo run -p minimal_slab_perf --release --bin fifo_loop [CONTENDER]
//! ```
//!
//! The `slab` crate runs too, as the peer to compare with, and `Box`'s
//! alloc/free on mimalloc (its `GlobalAlloc` methods), the nearest peer
//! that, like a `static` cache, serves any thread.
//!
//! `FIFO_ROUNDS=20` shortens the run, for `valgrind --tool=cachegrind`.
//!
//! With a contender's name (`default`, `eager` or `keep`), only that
//! contender runs after the free list: the run to profile.
//!
//! Each contender: 10 000 objects of 64 bytes allocated, then freed oldest
//! first, 2 000 rounds; one warm-up round untimed. Prints the best of five
//! runs in ns per alloc + free, its ratio to the free list, and per round
//! the chunks taken from the global allocator and the minor faults.
//!
//! glibc keeps freed 256 KiB chunks in its heap once its dynamic `mmap`
//! threshold has risen past them; to see what a chunk handed back costs
//! where it is unmapped (a fixed threshold, or another allocator), run
//! with `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072`.

use std::hint::black_box;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use minimal_slab::page_allocator::{ChunkedPages, GlobalPages, PageAllocator};
use minimal_slab::typenum::U262144;
use minimal_slab::{CacheConfig, PageAllocError, SlabCache};
use minimal_slab_perf::contenders::{MimallocBox, SharedPool};
use minimal_slab_perf::free_list::FreeList;

const OBJECTS: usize = 10_000;
const ROUNDS: usize = 2_000;
const RUNS: usize = 5;

/// Rounds per run: `ROUNDS`, or `FIFO_ROUNDS` from the environment (a
/// short run under `valgrind --tool=cachegrind`, whose counts of
/// instructions and misses do not vary from run to run).
fn rounds() -> usize {
    std::env::var("FIFO_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS)
}

type Object = [u64; 8];

/// The default chunk source's source, counting the chunks it hands out.
#[derive(Default)]
struct CountedChunks {
    inner: GlobalPages<U262144>,
    taken: AtomicUsize,
}

// SAFETY: forwards every call to `GlobalPages`, which upholds the contract.
unsafe impl PageAllocator for CountedChunks {
    type PageSize = U262144;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        self.taken.fetch_add(1, Ordering::Relaxed);
        self.inner.allocate_page()
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        // SAFETY: the caller's guarantees, forwarded.
        unsafe { self.inner.deallocate_page(page) }
    }
}

/// Minor page faults of the process so far.
fn minor_faults() -> i64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `getrusage` writes a `rusage` through the pointer.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: initialised by the successful call (and zeroed before).
    unsafe { usage.assume_init() }.ru_minflt
}

/// What one contender measured.
struct Figure {
    ns: f64,
    chunks_per_round: f64,
    faults_per_round: f64,
}

/// `rounds()` rounds of `round` after one warm-up round, best of `RUNS`.
fn measure(mut round: impl FnMut() -> u64, chunks: &dyn Fn() -> usize) -> Figure {
    let rounds = rounds();
    let mut best = f64::MAX;
    let mut sum = round();
    let chunks_before = chunks();
    let faults_before = minor_faults();
    for _ in 0..RUNS {
        let start = Instant::now();
        for _ in 0..rounds {
            sum = sum.wrapping_add(round());
        }
        let ns = start.elapsed().as_nanos() as f64 / (rounds * OBJECTS) as f64;
        best = best.min(ns);
    }
    black_box(sum);
    let rounds = (rounds * RUNS) as f64;
    Figure {
        ns: best,
        chunks_per_round: (chunks() - chunks_before) as f64 / rounds,
        faults_per_round: (minor_faults() - faults_before) as f64 / rounds,
    }
}

fn free_list() -> Figure {
    let mut list = FreeList::<Object>::new();
    let mut handles = Vec::with_capacity(OBJECTS);
    measure(
        || {
            handles.extend((0..OBJECTS as u64).map(|key| list.alloc([key; 8])));
            handles.drain(..).map(|h| list.free(h)[0]).sum()
        },
        &|| 0,
    )
}

/// The `slab` crate: a `Vec` of entries with a free list of indices.
fn slab_crate() -> Figure {
    let mut slab = slab::Slab::<Object>::new();
    let mut keys = Vec::with_capacity(OBJECTS);
    measure(
        || {
            keys.extend((0..OBJECTS as u64).map(|key| slab.insert([key; 8])));
            keys.drain(..).map(|key| slab.remove(key)[0]).sum()
        },
        &|| 0,
    )
}

/// `Box` on mimalloc, spelled out on its `GlobalAlloc` methods.
fn mimalloc_box() -> Figure {
    let pool = MimallocBox;
    let mut handles = Vec::with_capacity(OBJECTS);
    measure(
        || {
            handles.extend(
                (0..OBJECTS as u64).map(|key| SharedPool::<Object>::alloc(&pool, [key; 8])),
            );
            handles
                .drain(..)
                .map(|h| SharedPool::<Object>::free(&pool, h))
                .sum()
        },
        &|| 0,
    )
}

fn slab_cache(config: CacheConfig) -> Figure {
    let pages = ChunkedPages::new(CountedChunks::default());
    let cache = SlabCache::<Object, _>::with_config(&pages, config);
    let mut handles = Vec::with_capacity(OBJECTS);
    measure(
        || {
            handles.extend((0..OBJECTS as u64).map(|key| cache.alloc([key; 8]).unwrap()));
            handles.drain(..).map(|object| object[0]).sum()
        },
        &|| pages.source().taken.load(Ordering::Relaxed),
    )
}

fn main() {
    println!(
        "batch-fifo as a bare loop: {OBJECTS} objects of 64 B, {} rounds, best of {RUNS} runs",
        rounds()
    );
    println!(
        "{:<22} {:>9} {:>7} {:>14} {:>14}",
        "contender", "ns/pair", "ratio", "chunks/round", "faults/round"
    );
    let only = std::env::args().nth(1);
    let contenders = [
        ("default", CacheConfig::new()),
        ("eager", CacheConfig::new().eager()),
        ("keep", CacheConfig::new().reserve(usize::MAX)),
    ];
    let base = free_list();
    let base_ns = base.ns;
    let mut rows = vec![("freelist".to_string(), base)];
    if only.is_none() {
        rows.push(("slab crate".to_string(), slab_crate()));
        rows.push(("box-mimalloc".to_string(), mimalloc_box()));
    }
    for (name, config) in contenders {
        if only.as_deref().is_none_or(|only| only == name) {
            rows.push((format!("slabcache ({name})"), slab_cache(config)));
        }
    }
    for (name, figure) in rows {
        println!(
            "{:<22} {:>9.2} {:>6.2}x {:>14.2} {:>14.2}",
            name,
            figure.ns,
            figure.ns / base_ns,
            figure.chunks_per_round,
            figure.faults_per_round
        );
    }
}
