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

use std::hint::black_box;
use std::time::Instant;

use minimal_slab::{SlabAllocator, SlabCache};
use minimal_slab_perf::contenders::{CacheRef, SlabAllocatorPool};
use minimal_slab_perf::free_list::FreeList;
use minimal_slab_perf::workloads::SplitMix64;
use minimal_slab_perf::{Pool, Value};

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

/// Five rounds of churn on `pool`; the best round in ns per operation.
fn churn<T: Value, P: Pool<T>>(pool: &mut P) -> f64 {
    let mut rng = SplitMix64::new(SEED);
    let mut best = f64::MAX;
    let mut sum = 0u64;
    for _ in 0..ROUNDS {
        let mut live = Vec::with_capacity(LIVE + SPREAD);
        for key in 0..LIVE as u64 {
            live.push(pool.alloc(T::new(key)));
        }
        let start = Instant::now();
        for key in 0..OPS as u64 {
            if allocates(&mut rng, live.len()) {
                live.push(pool.alloc(T::new(key)));
            } else {
                let handle = live.swap_remove(rng.below(live.len()));
                sum = sum.wrapping_add(pool.free(handle));
            }
        }
        best = best.min(start.elapsed().as_nanos() as f64 / OPS as f64);
        for handle in live {
            pool.free(handle);
        }
    }
    black_box(sum);
    best
}

/// The unsynchronised free list, the baseline of the ratios.
fn free_list<T: Value>() -> f64 {
    churn(&mut FreeList::<T>::new())
}

/// `SlabAllocator::allocate`/`deallocate`, a layout of `T`.
fn raw<T: Value>() -> f64 {
    churn::<T, _>(&mut SlabAllocatorPool(SlabAllocator::new()))
}

/// `SlabCache::alloc` and dropping the `SlabBox`.
fn typed<T: Value>() -> f64 {
    let cache = SlabCache::<T>::new();
    churn(&mut CacheRef(&cache))
}

/// One row: the free list, then the two fronts, with their ratios.
fn row<const N: usize>(label: &str)
where
    [u64; N]: Value,
{
    let only = std::env::var("CHURN_ONLY").ok();
    let wants = |name: &str| only.as_deref().is_none_or(|only| only == name);
    let run = |name: &str, f: fn() -> f64| if wants(name) { f() } else { f64::NAN };
    let base = run("freelist", free_list::<[u64; N]>);
    let raw = run("slaballocator", raw::<[u64; N]>);
    let typed = run("slabcache", typed::<[u64; N]>);
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
