//! The `churn` workload as a bare loop, outside Criterion: a second harness
//! for the same numbers (a figure that holds in one harness only is a
//! placement cliff, not a property of the allocator).
//!
//! ```sh
//! cargo run -p minimal_slab_perf --release --bin churn_loop
//! ```
//!
//! For each object size and front: 100 000 live objects, then 1 000 000
//! random allocations and frees (kept within ±5 000 of the start; each
//! object written on allocation and read back before its free), five
//! rounds; prints the best round in ns per operation, and its ratio to the
//! unsynchronised free list's (the baseline of Criterion's `churn`).
//!
//! `CHURN_SIZE=64` runs one size (16, 64 or 256), `CHURN_ONLY=slabcache`
//! one contender (`freelist`, `slaballocator` or `slabcache`): a run to
//! profile, or to count under `valgrind --tool=cachegrind`.

use std::alloc::Layout;
use std::hint::black_box;
use std::ptr::NonNull;
use std::time::Instant;

use minimal_slab::{SlabAllocator, SlabCache};
use minimal_slab_perf::Value;
use minimal_slab_perf::free_list::FreeList;
use minimal_slab_perf::workloads::SplitMix64;

const LIVE: usize = 100_000;
const SPREAD: usize = 5_000;
const OPS: usize = 1_000_000;
const ROUNDS: usize = 5;
/// The same sequence in every run, and for every front.
const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// Whether the next operation allocates, keeping the live count in bounds.
fn allocates(rng: &mut SplitMix64, live: usize) -> bool {
    if live >= LIVE + SPREAD {
        false
    } else if live <= LIVE - SPREAD {
        true
    } else {
        rng.next_u64() & 1 == 0
    }
}

fn raw<const N: usize>() -> f64 {
    let heap = SlabAllocator::new();
    let layout = Layout::new::<[u64; N]>();
    let mut rng = SplitMix64::new(SEED);
    let mut best = f64::MAX;
    let mut sum = 0u64;
    for _ in 0..ROUNDS {
        let mut live: Vec<NonNull<[u64; N]>> = Vec::with_capacity(LIVE + SPREAD);
        for key in 0..LIVE as u64 {
            let p = heap.allocate(layout).unwrap().cast::<[u64; N]>();
            // SAFETY: fresh memory for one `[u64; N]`.
            unsafe { p.write([key; N]) };
            live.push(p);
        }
        let start = Instant::now();
        for key in 0..OPS as u64 {
            if allocates(&mut rng, live.len()) {
                let p = heap.allocate(layout).unwrap().cast::<[u64; N]>();
                // SAFETY: as above.
                unsafe { p.write([key; N]) };
                live.push(p);
            } else {
                let p = live.swap_remove(rng.below(live.len()));
                // SAFETY: written on allocation, not freed yet.
                sum = sum.wrapping_add(unsafe { p.read() }[0]);
                // SAFETY: from `allocate(layout)`, freed once.
                unsafe { heap.deallocate(p.cast(), layout) };
            }
        }
        best = best.min(start.elapsed().as_nanos() as f64 / OPS as f64);
        for p in live {
            // SAFETY: as above.
            unsafe { heap.deallocate(p.cast(), layout) };
        }
    }
    black_box(sum);
    best
}

/// The unsynchronised free list, the baseline of the ratios.
fn free_list<const N: usize>() -> f64
where
    [u64; N]: Value,
{
    let mut list = FreeList::<[u64; N]>::new();
    let mut rng = SplitMix64::new(SEED);
    let mut best = f64::MAX;
    let mut sum = 0u64;
    for _ in 0..ROUNDS {
        let mut live = Vec::with_capacity(LIVE + SPREAD);
        for key in 0..LIVE as u64 {
            live.push(list.alloc([key; N]));
        }
        let start = Instant::now();
        for key in 0..OPS as u64 {
            if allocates(&mut rng, live.len()) {
                live.push(list.alloc([key; N]));
            } else {
                let index = live.swap_remove(rng.below(live.len()));
                sum = sum.wrapping_add(list.free(index)[0]);
            }
        }
        best = best.min(start.elapsed().as_nanos() as f64 / OPS as f64);
        for index in live {
            list.free(index);
        }
    }
    black_box(sum);
    best
}

fn typed<const N: usize>() -> f64 {
    let cache: SlabCache<[u64; N]> = SlabCache::new();
    let mut rng = SplitMix64::new(SEED);
    let mut best = f64::MAX;
    let mut sum = 0u64;
    for _ in 0..ROUNDS {
        let mut live = Vec::with_capacity(LIVE + SPREAD);
        for key in 0..LIVE as u64 {
            live.push(cache.alloc([key; N]).unwrap());
        }
        let start = Instant::now();
        for key in 0..OPS as u64 {
            if allocates(&mut rng, live.len()) {
                live.push(cache.alloc([key; N]).unwrap());
            } else {
                let object = live.swap_remove(rng.below(live.len()));
                sum = sum.wrapping_add(object[0]);
            }
        }
        best = best.min(start.elapsed().as_nanos() as f64 / OPS as f64);
    }
    black_box(sum);
    best
}

/// One row: the free list, then the two fronts, with their ratios.
fn row<const N: usize>(label: &str)
where
    [u64; N]: Value,
{
    let only = std::env::var("CHURN_ONLY").ok();
    let wants = |name: &str| only.as_deref().is_none_or(|only| only == name);
    let run = |name: &str, f: fn() -> f64| if wants(name) { f() } else { f64::NAN };
    let base = run("freelist", free_list::<N>);
    let raw = run("slaballocator", raw::<N>);
    let typed = run("slabcache", typed::<N>);
    println!(
        "{label:>6}  {base:>9.2}  {raw:>9.2} {:>5.2}x  {typed:>9.2} {:>5.2}x",
        raw / base,
        typed / base
    );
}

fn main() {
    println!("churn as a bare loop: best of {ROUNDS} rounds, ns per operation");
    println!(
        "{:>6}  {:>9}  {:>16}  {:>16}",
        "size", "freelist", "slaballocator", "slabcache"
    );
    let size = std::env::var("CHURN_SIZE").ok();
    let wants = |label: &str| size.as_deref().is_none_or(|size| size == label);
    if wants("16") {
        row::<2>("16 B");
    }
    if wants("64") {
        row::<8>("64 B");
    }
    if wants("256") {
        row::<32>("256 B");
    }
}
