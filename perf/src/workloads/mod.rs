//! The measured loops and the fixed-seed sequences they run.
//!
//! Every loop returns the sum of the keys it read back from the objects it
//! freed; the benchmarks compare it with the sum they expect, so a loop the
//! optimiser emptied, or a pool that lost or mixed up values, fails loudly.

pub mod global;
pub mod raw;
pub mod threads;

use std::hint::black_box;

use crate::{Pool, Value};

/// SplitMix64: a small, fast generator; plenty for shuffling and coin flips.
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`), by multiply-shift: unbiased enough
    /// for `n` far below 2^32.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// `0 + 1 + … + (n − 1)`: the checksum of keys `0..n`.
pub fn key_sum(n: u64) -> u64 {
    if n == 0 { 0 } else { n * (n - 1) / 2 }
}

/// The order `batch` frees in: `0..n` (FIFO, oldest first).
pub fn fifo_order(n: usize) -> Vec<u32> {
    (0..n as u32).collect()
}

/// A random order of `0..n` (Fisher–Yates, fixed seed).
pub fn random_order(n: usize, seed: u64) -> Vec<u32> {
    let mut order = fifo_order(n);
    let mut rng = SplitMix64::new(seed);
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order
}

/// `pair`: `count` times, allocate an object and free it at once (keys
/// `0..count`). The hot path: a free slot is always at hand.
#[inline(never)]
pub fn pair<T: Value, P: Pool<T>>(pool: &mut P, count: u64) -> u64 {
    let mut sum = 0u64;
    for key in 0..count {
        let handle = pool.alloc(T::new(key));
        black_box(P::address(&handle));
        sum = sum.wrapping_add(pool.free(handle));
    }
    sum
}

/// `batch`: allocates `order.len()` objects (keys `0..n`), then frees them
/// in `order`. `handles` is scratch space, empty on entry and exit.
#[inline(never)]
pub fn batch<T: Value, P: Pool<T>>(
    pool: &mut P,
    order: &[u32],
    handles: &mut Vec<Option<P::Handle>>,
) -> u64 {
    for key in 0..order.len() as u64 {
        handles.push(Some(pool.alloc(T::new(key))));
    }
    let mut sum = 0u64;
    for &i in order {
        let handle = handles[i as usize]
            .take()
            .expect("a permutation frees each object once");
        sum = sum.wrapping_add(pool.free(handle));
    }
    handles.clear();
    sum
}

/// An operation of a churn plan: allocate, or free the live object at
/// this position (which then takes the last one's place).
const ALLOC: u32 = u32::MAX;

/// A `churn` run, fixed in advance so every contender does the same work:
/// `initial` objects live, then random allocations and frees, the live
/// count kept within `initial ± drift`.
pub struct ChurnPlan {
    ops: Vec<u32>,
    initial: usize,
    drift: usize,
    freed_key_sum: u64,
    allocations: u64,
    peak_live: usize,
}

impl ChurnPlan {
    /// A plan of `ops` operations from `seed`.
    pub fn new(initial: usize, drift: usize, ops: usize, seed: u64) -> Self {
        assert!(initial > drift && initial + drift < ALLOC as usize);
        let mut rng = SplitMix64::new(seed);
        let mut live_keys: Vec<u64> = (0..initial as u64).collect();
        let mut next_key = initial as u64;
        let mut freed_key_sum = 0u64;
        let mut plan = Vec::with_capacity(ops);
        let mut peak_live = initial;
        for _ in 0..ops {
            let live = live_keys.len();
            let alloc = if live <= initial - drift {
                true
            } else if live >= initial + drift {
                false
            } else {
                rng.next_u64() & 1 == 0
            };
            if alloc {
                plan.push(ALLOC);
                live_keys.push(next_key);
                next_key += 1;
                peak_live = peak_live.max(live_keys.len());
            } else {
                let victim = rng.below(live);
                plan.push(victim as u32);
                freed_key_sum = freed_key_sum.wrapping_add(live_keys.swap_remove(victim));
            }
        }
        Self {
            ops: plan,
            initial,
            drift,
            freed_key_sum,
            allocations: next_key - initial as u64,
            peak_live,
        }
    }

    /// Operations in the run (allocations and frees).
    pub fn ops(&self) -> usize {
        self.ops.len()
    }

    /// Objects live before and after the run, at most.
    pub fn max_live(&self) -> usize {
        self.initial + self.drift
    }

    /// The most objects live at once during the run.
    pub fn peak_live(&self) -> usize {
        self.peak_live
    }

    /// What [`churn_run`] returns when the pool works.
    pub fn run_checksum(&self) -> u64 {
        self.freed_key_sum
    }

    /// What [`churn_fill`], [`churn_run`] and [`churn_drain`] return
    /// together: every key allocated is freed once.
    pub fn total_checksum(&self) -> u64 {
        key_sum(self.initial as u64 + self.allocations)
    }
}

/// Before a churn run: `plan`'s initial objects (keys `0..initial`).
pub fn churn_fill<T: Value, P: Pool<T>>(pool: &mut P, plan: &ChurnPlan, live: &mut Vec<P::Handle>) {
    assert!(live.is_empty());
    live.reserve(plan.max_live());
    for key in 0..plan.initial as u64 {
        live.push(pool.alloc(T::new(key)));
    }
}

/// The churn run proper (after [`churn_fill`]): returns the sum of the
/// keys it freed.
#[inline(never)]
pub fn churn_run<T: Value, P: Pool<T>>(
    pool: &mut P,
    plan: &ChurnPlan,
    live: &mut Vec<P::Handle>,
) -> u64 {
    let mut next_key = plan.initial as u64;
    let mut sum = 0u64;
    for &op in &plan.ops {
        if op == ALLOC {
            live.push(pool.alloc(T::new(next_key)));
            next_key += 1;
        } else {
            sum = sum.wrapping_add(pool.free(live.swap_remove(op as usize)));
        }
    }
    sum
}

/// After a churn run: frees what is left, returns the sum of its keys.
pub fn churn_drain<T: Value, P: Pool<T>>(pool: &mut P, live: &mut Vec<P::Handle>) -> u64 {
    live.drain(..)
        .fold(0u64, |sum, handle| sum.wrapping_add(pool.free(handle)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PoolVisitor, for_each_pool};

    #[test]
    fn random_order_is_a_fixed_permutation() {
        let order = random_order(1_000, 7);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, fifo_order(1_000));
        assert_ne!(order, fifo_order(1_000));
        assert_eq!(order, random_order(1_000, 7));
    }

    #[test]
    fn churn_plan_keeps_the_live_count_in_bounds() {
        let plan = ChurnPlan::new(100, 10, 10_000, 3);
        let mut live = plan.initial;
        for &op in &plan.ops {
            if op == ALLOC {
                live += 1;
            } else {
                assert!((op as usize) < live);
                live -= 1;
            }
            assert!((90..=110).contains(&live));
        }
        assert!(plan.allocations > 2_000, "both kinds of operation occur");
        assert!(plan.peak_live() <= plan.max_live() && plan.peak_live() > 100);
    }

    /// Runs every workload on every contender, small, checking checksums.
    struct CheckAll<'a> {
        plan: &'a ChurnPlan,
        order: Vec<u32>,
        visited: Vec<&'static str>,
    }

    impl PoolVisitor<[u64; 8]> for CheckAll<'_> {
        fn visit<P: Pool<[u64; 8]>>(&mut self, name: &'static str, pool: &mut P) {
            assert_eq!(pair(pool, 1_000), key_sum(1_000), "{name}: pair");
            let mut handles = Vec::new();
            let n = self.order.len() as u64;
            assert_eq!(
                batch(pool, &self.order, &mut handles),
                key_sum(n),
                "{name}: batch"
            );
            let mut live = Vec::new();
            churn_fill(pool, self.plan, &mut live);
            let run = churn_run(pool, self.plan, &mut live);
            assert_eq!(run, self.plan.run_checksum(), "{name}: churn");
            let rest = churn_drain(pool, &mut live);
            assert_eq!(
                run.wrapping_add(rest),
                self.plan.total_checksum(),
                "{name}: drain"
            );
            pool.release_memory();
            self.visited.push(name);
        }
    }

    #[test]
    fn every_contender_gives_back_what_it_was_given() {
        let plan = ChurnPlan::new(2_000, 100, 20_000, 11);
        let mut check = CheckAll {
            plan: &plan,
            order: random_order(3_000, 5),
            visited: Vec::new(),
        };
        for_each_pool(&mut check);
        assert_eq!(check.visited.len(), 16);
    }
}
