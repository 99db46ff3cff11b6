//! The default path's `pair` as a bare loop, outside Criterion: a `static`
//! `SlabCache` of 64-byte objects, `CACHE.alloc(value)` and the handle
//! dropped at once, and the same through a `static` `SlabAllocator`
//! (`allocate`, `deallocate`); prints the best of five runs in ns per pair.
//!
//! ```sh
//! cargo run -p minimal_slab_perf --release --bin pair_loop
//! PAIRS=100000 valgrind --tool=cachegrind target/release/pair_loop typed
//! ```
//!
//! With `typed` or `raw`, only that front runs.
//!
//! Under cachegrind, whose counts do not vary from run to run, the
//! instructions per pair compare two builds on a machine too busy to time
//! them (`PAIRS` shortens the run; subtract a run with `PAIRS=0` for the
//! start-up).

use std::alloc::Layout;
use std::hint::black_box;
use std::time::Instant;

use minimal_slab::{SlabAllocator, SlabCache};

const PAIRS: usize = 20_000_000;
const RUNS: usize = 5;

static CACHE: SlabCache<[u64; 8]> = SlabCache::new();
static HEAP: SlabAllocator = SlabAllocator::new();

fn pairs() -> usize {
    std::env::var("PAIRS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(PAIRS)
}

/// The best of `RUNS` runs of `pairs()` calls of `pair`, in ns per call.
fn best(mut pair: impl FnMut(u64) -> u64) -> f64 {
    let n = pairs();
    let mut best = f64::MAX;
    let mut sum = 0u64;
    for _ in 0..RUNS {
        let start = Instant::now();
        for key in 0..n as u64 {
            sum = sum.wrapping_add(pair(black_box(key)));
        }
        best = best.min(start.elapsed().as_nanos() as f64 / n.max(1) as f64);
    }
    black_box(sum);
    best
}

fn main() {
    let only = std::env::args().nth(1);
    let runs = |front: &str| only.as_deref().is_none_or(|only| only == front);
    let typed = runs("typed").then(|| {
        best(|key| match CACHE.alloc([key; 8]) {
            Ok(object) => object[7],
            Err(_) => panic!("out of memory"),
        })
    });
    let layout = Layout::new::<[u64; 8]>();
    let raw = runs("raw").then(|| {
        best(|key| {
            let Ok(block) = HEAP.allocate(layout) else {
                panic!("out of memory")
            };
            let word = block.cast::<u64>();
            // SAFETY: a fresh block of 64 bytes, aligned to 8.
            unsafe { word.write(key) };
            // SAFETY: written just above.
            let read = unsafe { word.read() };
            // SAFETY: from `HEAP.allocate(layout)`, freed once, not used again.
            unsafe { HEAP.deallocate(block, layout) };
            read
        })
    });
    println!(
        "pair as a bare loop (best of {RUNS} runs of {} pairs, 64 B), ns per pair",
        pairs()
    );
    if let Some(typed) = typed {
        println!("slabcache (static, default path)      {typed:6.2}");
    }
    if let Some(raw) = raw {
        println!("slaballocator (static, default path)  {raw:6.2}");
    }
}
