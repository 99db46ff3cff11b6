//! The fallback's counters: how many blocks, and bytes, an allocator's
//! fallback holds for it (`AllocatorStats::fallback_allocations` and
//! `fallback_bytes`).
//!
//! # Shards
//!
//! Every block of the fallback is counted in and out, and beyond the size
//! classes an ordinary program makes a good share of its requests (about
//! half of the `global` workload's, `perf/src/workloads/global.rs`). One
//! pair of counters for all threads would pass its cache line from core to
//! core at each such request when two threads allocate at once, for the
//! sake of a number only `stats()` reads. So with `std` the counts are
//! split over [`SHARDS`] shards, each on cache lines of its own, and a
//! thread counts in the shard the address of its stack picks.
//! A shard counts what came in and what went out apart, each only ever
//! growing (and wrapping): a block may come in on one thread and go out
//! on another, so only the sums over all shards mean anything. Builds
//! without `std` have one shard (and no threads of the crate's to keep
//! apart), as do loom models.
//!
//! # Summing while others count
//!
//! `stats()` may run while other threads count, and must never see more
//! blocks go out than came in: a block counted in on shard 0 and out on
//! shard 3 while the sum is between them would otherwise show as -1 (the
//! top of `usize`). So every shard's outs are summed first (acquire), then
//! every shard's ins; an out is counted with release. A block's in happens
//! before its out (whoever freed it got it from whoever allocated it), so
//! an out the sum sees brings its in with it: the ins summed after are at
//! least the outs summed before. The price: a sum taken while others count
//! may include blocks that came in while it was under way and went out
//! before it read their shard's outs — too many by what came and went
//! during the sum, never too few, never below zero; exact when no one
//! counts meanwhile.

use crate::sync::{AtomicUsize, Ordering};

/// Shards of the counts: with `std`, enough that a few threads seldom
/// share one (a 128-byte shard each).
#[cfg(all(feature = "std", not(loom)))]
const SHARDS: usize = 4;
#[cfg(not(all(feature = "std", not(loom))))]
const SHARDS: usize = 1;

/// Blocks and bytes counted in and out on one shard, ever (wrapping: see
/// the module doc); with `std`, on cache lines of its own (128 bytes: see
/// `own_lines`).
#[cfg_attr(all(feature = "std", not(loom)), repr(align(128)))]
struct Shard {
    blocks_in: AtomicUsize,
    bytes_in: AtomicUsize,
    blocks_out: AtomicUsize,
    bytes_out: AtomicUsize,
}

/// The counters of one allocator's fallback.
pub(crate) struct FallbackCounts {
    shards: [Shard; SHARDS],
}

impl Shard {
    crate::sync::const_fn_unless_loom! {
        const fn new() -> Self {
            Self {
                blocks_in: AtomicUsize::new(0),
                bytes_in: AtomicUsize::new(0),
                blocks_out: AtomicUsize::new(0),
                bytes_out: AtomicUsize::new(0),
            }
        }
    }
}

impl FallbackCounts {
    crate::sync::const_fn_unless_loom! {
        /// Nothing counted yet.
        pub(crate) const fn new() -> Self {
            #[cfg(not(loom))]
            return Self {
                shards: [const { Shard::new() }; SHARDS],
            };
            // Loom's atomics are not `const`; there is one shard.
            #[cfg(loom)]
            return Self {
                shards: [Shard::new()],
            };
        }
    }

    /// Counts a block of `bytes` in (`held`) or out.
    #[inline]
    pub(crate) fn count(&self, bytes: usize, held: bool) {
        let shard = &self.shards[shard_of_this_thread()];
        // `fetch_add` wraps on overflow. An out releases, so that a sum
        // that sees it sees the block's in too (see the module doc).
        if held {
            shard.blocks_in.fetch_add(1, Ordering::Relaxed);
            shard.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        } else {
            shard.blocks_out.fetch_add(1, Ordering::Release);
            shard.bytes_out.fetch_add(bytes, Ordering::Release);
        }
    }

    /// Blocks and bytes held, summed over the shards.
    pub(crate) fn totals(&self) -> (usize, usize) {
        self.totals_between(|| {})
    }

    /// [`totals`](Self::totals), calling `between` before each load (a
    /// test's way to count on other threads while the sum is under way).
    #[inline(always)]
    fn totals_between(&self, mut between: impl FnMut()) -> (usize, usize) {
        let mut sum = |counter: fn(&Shard) -> &AtomicUsize, order| {
            self.shards.iter().fold(0usize, |sum, shard| {
                between();
                sum.wrapping_add(counter(shard).load(order))
            })
        };
        // The outs first: see the module doc.
        let blocks_out = sum(|shard| &shard.blocks_out, Ordering::Acquire);
        let bytes_out = sum(|shard| &shard.bytes_out, Ordering::Acquire);
        let blocks_in = sum(|shard| &shard.blocks_in, Ordering::Relaxed);
        let bytes_in = sum(|shard| &shard.bytes_in, Ordering::Relaxed);
        (
            blocks_in.wrapping_sub(blocks_out),
            bytes_in.wrapping_sub(bytes_out),
        )
    }
}

/// The shard the calling thread counts in: from the address of its stack,
/// which differs from thread to thread, and is there during thread
/// teardown too.
#[cfg(all(feature = "std", not(loom)))]
#[inline]
fn shard_of_this_thread() -> usize {
    // The stack, not a thread-local: threads' stacks lie megabytes apart,
    // and reading a thread-local may allocate on a platform without native
    // thread-local storage — inside the allocator, when it is the global
    // one. Where in the stack the call sits only moves the low bits, and
    // any shard is correct, the choice only spreads the threads out.
    let probe = 0u8;
    let address = core::ptr::addr_of!(probe).addr() >> 20;
    // Fibonacci hashing: the top bits of the product, as many as index a
    // shard, mix every bit left.
    const INDEX_BITS: u32 = SHARDS.trailing_zeros();
    const _: () = assert!(SHARDS.is_power_of_two() && SHARDS > 1);
    address.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize) >> (usize::BITS - INDEX_BITS)
}

#[cfg(not(all(feature = "std", not(loom))))]
#[inline(always)]
fn shard_of_this_thread() -> usize {
    0
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn blocks_counted_in_on_one_thread_and_out_on_others_sum_to_what_is_held() {
        let counts = FallbackCounts::new();
        counts.count(300, true);
        counts.count(500, true);
        std::thread::scope(|s| {
            for bytes in [300, 1000] {
                let counts = &counts;
                s.spawn(move || {
                    counts.count(1000, true);
                    counts.count(bytes, false);
                });
            }
        });
        // Still held: the 500 and one of the 1000s; the 300 and the other
        // 1000 went out on other threads than they came in on.
        assert_eq!(counts.totals(), (2, 1500));
        counts.count(500, false);
        counts.count(1000, false);
        assert_eq!(counts.totals(), (0, 0));
    }

    /// A thread that counts on request, in the shard its stack picks.
    struct Counter {
        shard: usize,
        orders: std::sync::mpsc::Sender<(usize, bool)>,
        done: std::sync::mpsc::Receiver<()>,
    }

    impl Counter {
        /// Has the thread count a block of `bytes` in (`held`) or out, and
        /// waits until it has.
        fn count(&self, bytes: usize, held: bool) {
            self.orders.send((bytes, held)).unwrap();
            self.done.recv().unwrap();
        }
    }

    #[test]
    fn a_block_counted_in_and_out_while_the_shards_are_summed_never_shows_below_zero() {
        const BYTES: usize = 700;
        let counts = FallbackCounts::new();
        std::thread::scope(|s| {
            // Threads alive at once, so that their stacks, and so their
            // shards, differ.
            let counters: Vec<Counter> = (0..16)
                .map(|_| {
                    let (orders, their_orders) = std::sync::mpsc::channel::<(usize, bool)>();
                    let (their_done, done) = std::sync::mpsc::channel();
                    let (shard_tx, shard_rx) = std::sync::mpsc::channel();
                    let counts = &counts;
                    s.spawn(move || {
                        shard_tx.send(shard_of_this_thread()).unwrap();
                        for (bytes, held) in their_orders {
                            counts.count(bytes, held);
                            their_done.send(()).unwrap();
                        }
                    });
                    Counter {
                        shard: shard_rx.recv().unwrap(),
                        orders,
                        done,
                    }
                })
                .collect();
            let mut pairs = Vec::new();
            for taker in &counters {
                for giver in &counters {
                    if taker.shard == giver.shard || pairs.contains(&(taker.shard, giver.shard)) {
                        continue;
                    }
                    pairs.push((taker.shard, giver.shard));
                    // At every point of the sum, a block taken on one thread
                    // and handed to another that gives it back.
                    for at in 0..4 * SHARDS {
                        let mut step = 0;
                        let (blocks, bytes) = counts.totals_between(|| {
                            if step == at {
                                taker.count(BYTES, true);
                                giver.count(BYTES, false);
                            }
                            step += 1;
                        });
                        assert!(
                            blocks <= 1 && bytes <= BYTES,
                            "summed as ({blocks}, {bytes}) with the block counted in on shard \
                             {} and out on shard {} at step {at}",
                            taker.shard,
                            giver.shard,
                        );
                        assert_eq!(counts.totals(), (0, 0));
                    }
                }
            }
            // Miri places threads' stacks where it likes (on i686, at times
            // all sixteen within one shard's span); natively they lie
            // megabytes apart, and the test must have run a pair.
            assert!(
                cfg!(miri) || !pairs.is_empty(),
                "sixteen threads in one shard"
            );
            drop(counters);
        });
    }
}
