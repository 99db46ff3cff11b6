//! The `threads` pair workload as a bare loop, outside Criterion: one
//! thread, then two, doing alloc/free pairs of 64-byte objects, and the
//! speed-up — a second harness for the figure `cargo bench --bench
//! threads` prints.
//!
//! ```sh
//! cargo run -p minimal_slab_perf --release --bin threads_loop [RUNS]
//! ```
//!
//! Contenders: a `static` `SlabCache` shared by both threads (the default
//! path); two `SlabCache`s, one per thread; mimalloc's `Box`; and a private
//! `Vec` free list per thread, which shares nothing and so shows what this
//! machine gives a loop this short from a second core. Each run times
//! every contender once, in turn; the table holds each one's best run
//! (default 15 runs) in million pairs per second.

use std::hint::black_box;
use std::time::Instant;

use mimalloc::MiMalloc;
use minimal_slab::SlabCache;

type Object = [u64; 8];

static SHARED: SlabCache<Object> = SlabCache::new();
static ONE_EACH: [SlabCache<Object>; 2] = [SlabCache::new(), SlabCache::new()];

/// Pairs per thread and run.
const PAIRS: u64 = 20_000_000;

/// One thread's pairs on `cache`; returns a checksum.
fn cache_pairs(cache: &SlabCache<Object>) -> u64 {
    let mut sum = 0u64;
    for key in 0..PAIRS {
        let object = cache.alloc([key; 8]).unwrap();
        black_box(&*object as *const Object);
        sum = sum.wrapping_add(object[0]);
    }
    sum
}

/// One thread's pairs on mimalloc, called directly (not as the process's
/// allocator).
fn mimalloc_pairs() -> u64 {
    use std::alloc::{GlobalAlloc, Layout};
    let layout = Layout::new::<Object>();
    let mut sum = 0u64;
    for key in 0..PAIRS {
        // SAFETY: a non-zero size.
        let ptr = unsafe { MiMalloc.alloc(layout) }.cast::<Object>();
        assert!(!ptr.is_null());
        // SAFETY: fresh memory for one `Object`.
        unsafe { ptr.write([key; 8]) };
        black_box(ptr);
        // SAFETY: written just above.
        sum = sum.wrapping_add(unsafe { ptr.read() }[0]);
        // SAFETY: from `alloc(layout)`, freed once.
        unsafe { MiMalloc.dealloc(ptr.cast(), layout) };
    }
    sum
}

/// One thread's pairs on a free list of its own: a `Vec` of boxes.
fn private_pairs() -> u64 {
    let mut free: Vec<Box<Object>> = (0..64).map(|_| Box::new([0; 8])).collect();
    let mut sum = 0u64;
    for key in 0..PAIRS {
        let mut object = free.pop().unwrap();
        *object = [key; 8];
        black_box(&*object as *const Object);
        sum = sum.wrapping_add(object[0]);
        free.push(object);
    }
    sum
}

/// Runs `work(thread)` on `threads` threads at once; million pairs a second.
fn rate(threads: usize, work: impl Fn(usize) -> u64 + Sync) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for thread in 0..threads {
            let work = &work;
            s.spawn(move || black_box(work(thread)));
        }
    });
    (threads as u64 * PAIRS) as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    let mut best = [0f64; 8];
    for _ in 0..runs {
        let figures = [
            rate(1, |_| cache_pairs(&SHARED)),
            rate(2, |_| cache_pairs(&SHARED)),
            rate(1, |t| cache_pairs(&ONE_EACH[t])),
            rate(2, |t| cache_pairs(&ONE_EACH[t])),
            rate(1, |_| mimalloc_pairs()),
            rate(2, |_| mimalloc_pairs()),
            rate(1, |_| private_pairs()),
            rate(2, |_| private_pairs()),
        ];
        for (best, figure) in best.iter_mut().zip(figures) {
            *best = best.max(figure);
        }
    }
    println!("alloc/free pairs of 64 B, M pairs/s, best of {runs} runs");
    println!(
        "{:<26} {:>9} {:>9} {:>9}",
        "contender", "1 thread", "2 threads", "speed-up"
    );
    let names = [
        "slabcache (static, shared)",
        "slabcache (one per thread)",
        "box-mimalloc",
        "private free list",
    ];
    for (name, pair) in names.iter().zip(best.chunks(2)) {
        println!(
            "{name:<26} {:>9.0} {:>9.0} {:>8.2}x",
            pair[0],
            pair[1],
            pair[1] / pair[0]
        );
    }
}
