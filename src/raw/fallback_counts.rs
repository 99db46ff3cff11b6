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
//! thread counts in the shard the address of a thread-local of its picks.
//! A shard's count may drop below zero — a block counted in on one thread
//! and out on another — so only the sum over shards means anything; the
//! counts wrap, and the sum is exact. Builds without `std` have one shard
//! (and no threads of the crate's to keep apart), as do loom models.

use crate::sync::{AtomicUsize, Ordering};

/// Shards of the counts: with `std`, enough that a few threads seldom
/// share one (a 128-byte shard each).
#[cfg(all(feature = "std", not(loom)))]
const SHARDS: usize = 4;
#[cfg(not(all(feature = "std", not(loom))))]
const SHARDS: usize = 1;

/// Blocks and bytes counted in one shard (wrapping: see the module doc);
/// with `std`, on cache lines of its own (128 bytes: see `own_lines`).
#[cfg_attr(all(feature = "std", not(loom)), repr(align(128)))]
struct Shard {
    blocks: AtomicUsize,
    bytes: AtomicUsize,
}

/// The counters of one allocator's fallback.
pub(crate) struct FallbackCounts {
    shards: [Shard; SHARDS],
}

impl Shard {
    crate::sync::const_fn_unless_loom! {
        const fn new() -> Self {
            Self {
                blocks: AtomicUsize::new(0),
                bytes: AtomicUsize::new(0),
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
        // Wrapping both ways: `fetch_add` and `fetch_sub` wrap on overflow.
        if held {
            shard.blocks.fetch_add(1, Ordering::Relaxed);
            shard.bytes.fetch_add(bytes, Ordering::Relaxed);
        } else {
            shard.blocks.fetch_sub(1, Ordering::Relaxed);
            shard.bytes.fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    /// Blocks and bytes held, summed over the shards.
    pub(crate) fn totals(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(blocks, bytes), shard| {
            (
                blocks.wrapping_add(shard.blocks.load(Ordering::Relaxed)),
                bytes.wrapping_add(shard.bytes.load(Ordering::Relaxed)),
            )
        })
    }
}

/// The shard the calling thread counts in: from the address of a
/// thread-local, which differs from thread to thread (and needs no
/// destructor, so it is there during thread teardown too).
#[cfg(all(feature = "std", not(loom)))]
#[inline]
fn shard_of_this_thread() -> usize {
    std::thread_local! {
        static MARK: u8 = const { 0 };
    }
    let address = MARK.with(|mark| core::ptr::from_ref(mark).addr());
    // Fibonacci hashing: the top bits of the product mix every bit of the
    // address, which for threads' storage differ mostly in the middle.
    (address.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize) >> (usize::BITS - 2)) % SHARDS
}

#[cfg(not(all(feature = "std", not(loom))))]
#[inline(always)]
fn shard_of_this_thread() -> usize {
    0
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

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
}
