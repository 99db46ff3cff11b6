//! A quick, dependency-free benchmark of `minimal_slab` against the system
//! allocator.
//!
//! Run it with:
//!
//! ```text
//! cargo bench --bench quick
//! ```
//!
//! For objects of 16, 64 and 256 bytes it times:
//!
//! - `pair`: allocate, then free at once, 10 M times — the hot path when a
//!   free slot is always at hand;
//! - `batch`: 10 000 objects allocated, then all freed in allocation order
//!   (FIFO), repeated — slabs fill up, empty out, and pages come and go.
//!   With the default `CacheConfig` a cache keeps only two empty slabs, so
//!   every round gives most of its pages back to the global allocator and
//!   takes them again in the next; the extra `keep all pages` rows use
//!   `CacheConfig::new().reserve(usize::MAX)` to show the cost without that
//!   page traffic.
//!
//! Typed: `Box::new` (the global allocator, here the system's) against
//! `SlabCache<T>::alloc`. Raw: `std::alloc::System.alloc/dealloc` against
//! `SlabAllocator::allocate/deallocate`. One op is one allocation plus one
//! free. Each row is the best of 5 runs. The numbers are for this machine
//! only; compare the ratios, not the nanoseconds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use minimal_slab::{
    CacheConfig, ChunkedGlobalPages, NoFallback, SlabAllocator, SlabBox, SlabCache,
};

/// Allocate/free pairs per `pair` run.
const PAIRS: usize = 10_000_000;
/// Live objects per `batch` round.
const BATCH: usize = 10_000;
/// `batch` rounds per run: 200 × 10 000 = 2 M ops.
const ROUNDS: usize = 200;
/// Runs per row; the fastest is reported.
const RUNS: usize = 5;

/// Runs `f` (which performs `ops` operations) `RUNS` times and returns the
/// best time per operation, in nanoseconds.
fn best_ns_per_op(ops: usize, mut f: impl FnMut()) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..RUNS {
        let start = Instant::now();
        f();
        best = best.min(start.elapsed());
    }
    best.as_secs_f64() * 1e9 / ops as f64
}

// ---------------------------------------------------------------- typed --

fn pair_box<T: Copy>(value: T) {
    for _ in 0..PAIRS {
        let b = Box::new(black_box(value));
        // The address escapes, so the allocation cannot be optimised away.
        // (Only the address: `black_box(&b)` of a two-word `SlabBox` costs a
        // store-forwarding stall that would be measured as allocator time.)
        black_box(&raw const *b);
        drop(b);
    }
}

fn pair_cache<T: Copy>(cache: &SlabCache<T>, value: T) {
    for _ in 0..PAIRS {
        let b = cache.alloc(black_box(value)).unwrap_or_else(|_| oom());
        black_box(SlabBox::as_ptr(&b));
        drop(b);
    }
}

fn batch_box<T: Copy>(value: T, live: &mut Vec<Box<T>>) {
    for _ in 0..ROUNDS {
        for _ in 0..BATCH {
            let b = Box::new(black_box(value));
            black_box(&raw const *b);
            live.push(b);
        }
        // `drain(..)` drops in allocation order: FIFO.
        for b in live.drain(..) {
            drop(b);
        }
    }
}

fn batch_cache<'a, T: Copy>(cache: &'a SlabCache<T>, value: T, live: &mut Vec<SlabBox<'a, T>>) {
    for _ in 0..ROUNDS {
        for _ in 0..BATCH {
            let b = cache.alloc(black_box(value)).unwrap_or_else(|_| oom());
            black_box(SlabBox::as_ptr(&b));
            live.push(b);
        }
        for b in live.drain(..) {
            drop(b);
        }
    }
}

// ------------------------------------------------------------------ raw --

fn pair_system(layout: Layout) {
    for _ in 0..PAIRS {
        // SAFETY: every layout benchmarked has a non-zero size.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            oom();
        }
        black_box(p);
        // SAFETY: `p` came from `System.alloc(layout)` just above.
        unsafe { System.dealloc(p, layout) };
    }
}

fn pair_slab(heap: &SlabAllocator, layout: Layout) {
    for _ in 0..PAIRS {
        let p = heap.allocate(layout).unwrap_or_else(|_| oom());
        black_box(p);
        // SAFETY: `p` came from `heap.allocate(layout)` just above.
        unsafe { heap.deallocate(p, layout) };
    }
}

fn batch_system(layout: Layout, live: &mut Vec<*mut u8>) {
    for _ in 0..ROUNDS {
        for _ in 0..BATCH {
            // SAFETY: every layout benchmarked has a non-zero size.
            let p = unsafe { System.alloc(layout) };
            if p.is_null() {
                oom();
            }
            live.push(black_box(p));
        }
        for p in live.drain(..) {
            // SAFETY: each `p` came from `System.alloc(layout)`, freed once.
            unsafe { System.dealloc(p, layout) };
        }
    }
}

fn batch_slab(heap: &SlabAllocator, layout: Layout, live: &mut Vec<NonNull<u8>>) {
    for _ in 0..ROUNDS {
        for _ in 0..BATCH {
            live.push(black_box(heap.allocate(layout).unwrap_or_else(|_| oom())));
        }
        for p in live.drain(..) {
            // SAFETY: each `p` came from `heap.allocate(layout)`, freed once.
            unsafe { heap.deallocate(p, layout) };
        }
    }
}

#[cold]
fn oom() -> ! {
    eprintln!("out of memory");
    std::process::exit(1)
}

// ---------------------------------------------------------------- table --

fn row(size: usize, test: &str, what: &str, ns: f64, baseline: Option<f64>) {
    let ratio = match baseline {
        Some(base) => format!("{:>6.2}x", ns / base),
        None => format!("{:>7}", "1.00x"),
    };
    println!("  {size:>4}  {test:<6} {what:<36} {ns:>8.2}  {ratio}");
}

/// Benchmarks one object size. `T` is `size` bytes, aligned to 8.
fn bench_size<T: Copy>(value: T) {
    let size = size_of::<T>();
    let layout = Layout::new::<T>();
    let cache: SlabCache<T> = SlabCache::new();
    let heap = SlabAllocator::new();

    // pair
    let base = best_ns_per_op(PAIRS, || pair_box(value));
    row(size, "pair", "Box::new + drop", base, None);
    let ns = best_ns_per_op(PAIRS, || pair_cache(&cache, value));
    row(size, "pair", "SlabCache alloc + drop", ns, Some(base));
    let base = best_ns_per_op(PAIRS, || pair_system(layout));
    row(size, "pair", "System alloc + dealloc", base, None);
    let ns = best_ns_per_op(PAIRS, || pair_slab(&heap, layout));
    row(
        size,
        "pair",
        "SlabAllocator allocate + deallocate",
        ns,
        Some(base),
    );

    // batch: the vectors holding the live objects are allocated outside the
    // timed loops.
    let ops = ROUNDS * BATCH;
    let keep_all = CacheConfig::new().reserve(usize::MAX);
    let kept_cache: SlabCache<T> = SlabCache::with_config(ChunkedGlobalPages::default(), keep_all);
    let kept_heap = SlabAllocator::with_config(ChunkedGlobalPages::default(), NoFallback, keep_all);

    let mut boxes = Vec::with_capacity(BATCH);
    let base = best_ns_per_op(ops, || batch_box(value, &mut boxes));
    row(size, "batch", "Box::new + drop", base, None);
    let mut handles = Vec::with_capacity(BATCH);
    let ns = best_ns_per_op(ops, || batch_cache(&cache, value, &mut handles));
    row(size, "batch", "SlabCache alloc + drop", ns, Some(base));
    let mut handles = Vec::with_capacity(BATCH);
    let ns = best_ns_per_op(ops, || batch_cache(&kept_cache, value, &mut handles));
    row(size, "batch", "  same, keeping all pages", ns, Some(base));

    let mut ptrs = Vec::with_capacity(BATCH);
    let base = best_ns_per_op(ops, || batch_system(layout, &mut ptrs));
    row(size, "batch", "System alloc + dealloc", base, None);
    let mut ptrs = Vec::with_capacity(BATCH);
    let ns = best_ns_per_op(ops, || batch_slab(&heap, layout, &mut ptrs));
    row(
        size,
        "batch",
        "SlabAllocator allocate + deallocate",
        ns,
        Some(base),
    );
    let ns = best_ns_per_op(ops, || batch_slab(&kept_heap, layout, &mut ptrs));
    row(size, "batch", "  same, keeping all pages", ns, Some(base));
}

/// Memory held for `BATCH` live 64-byte objects.
fn footprint() {
    let cache: SlabCache<[u64; 8]> = SlabCache::new();
    let live: Vec<_> = (0..BATCH)
        .map(|i| cache.alloc([i as u64; 8]).unwrap_or_else(|_| oom()))
        .collect();
    let stats = cache.stats();
    let payload = BATCH * 64;
    println!(
        "{BATCH} live 64-byte objects in a SlabCache<[u64; 8]>: {} pages of {} bytes = {} bytes \
         for {payload} bytes of objects ({:.1}% overhead; {} objects per slab, {} header bytes)",
        stats.pages,
        stats.page_size,
        stats.bytes_held(),
        (stats.bytes_held() - payload) as f64 * 100.0 / payload as f64,
        stats.slots_per_slab,
        stats.header_bytes,
    );
    drop(live);

    let heap = SlabAllocator::new();
    let layout = Layout::new::<[u64; 8]>();
    let live: Vec<_> = (0..BATCH)
        .map(|_| heap.allocate(layout).unwrap_or_else(|_| oom()))
        .collect();
    let stats = heap.stats();
    println!(
        "{BATCH} live 64-byte blocks in a SlabAllocator: {} pages ({} bytes)",
        stats.pages(),
        stats.bytes_held()
    );
    for p in live {
        // SAFETY: each `p` came from `heap.allocate(layout)`, freed once.
        unsafe { heap.deallocate(p, layout) };
    }
}

fn main() {
    println!("minimal_slab quick benchmark — run with: cargo bench --bench quick");
    println!(
        "pair: {PAIRS} alloc+free pairs; batch: {ROUNDS} rounds of {BATCH} live objects, freed FIFO; \
         best of {RUNS} runs"
    );
    println!(
        "ratio: time / baseline (Box for SlabCache, System for SlabAllocator); below 1 is faster"
    );
    println!(
        "'same, keeping all pages': CacheConfig::new().reserve(usize::MAX), so no page goes \
         back to the global allocator between rounds"
    );
    println!();
    println!(
        "  {:>4}  {:<6} {:<36} {:>8}  {:>7}",
        "size", "test", "what", "ns/op", "ratio"
    );
    let start = Instant::now();
    // Warm up (CPU clock, allocator state) before the first timed row.
    pair_box([0u64; 2]);
    bench_size([0u64; 2]);
    bench_size([0u64; 8]);
    bench_size([0u64; 32]);
    println!();
    footprint();
    println!("total time: {:.1} s", start.elapsed().as_secs_f64());
}
