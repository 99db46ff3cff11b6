//! Benchmarks of `minimal_slab` against the allocators and pools a user
//! would pick instead.
//!
//! The library holds everything the benchmarks share, so that each
//! contender runs exactly the same code around its own alloc and free:
//!
//! - [`Value`]: the objects (16, 64 and 256 bytes; one line in the
//!   `object_sizes!` list below adds a size) and [`for_each_size`];
//! - [`contenders`]: each allocator or pool behind one of these traits —
//!   [`Pool`] (typed, one thread), [`SharedPool`] (typed, shared by threads
//!   through `&self`), [`ThreadedPool`] (typed, each thread through a
//!   [`ThreadFront`] of its own) and [`RawAlloc`] (`Layout` in, pointer
//!   out) — and the functions that hand every contender of a kind to a
//!   visitor;
//! - [`free_list`]: the baselines, an intrusive free list of indices over a
//!   `Vec`, bare and behind a spin lock;
//! - [`workloads`]: the measured loops, each returning a checksum of the
//!   values it read back, and the fixed-seed operation sequences they run.

pub mod contenders;
pub mod free_list;
pub mod hot_path;
pub mod workloads;

use heapless::pool::boxed::BoxPool;

/// Live objects in a `batch` round.
pub const BATCH: usize = 10_000;
/// Objects live when a `churn` run starts.
pub const CHURN_LIVE: usize = 100_000;
/// How far the live count of a `churn` run may wander from
/// [`CHURN_LIVE`], either way.
pub const CHURN_DRIFT: usize = 5_000;
/// Random allocations and frees in one `churn` run.
pub const CHURN_OPS: usize = 1_000_000;
/// The seed of every random sequence, so that every run and every
/// contender sees the same one.
pub const SEED: u64 = 0x5eed_51ab_0000_0001;
/// Blocks given to each `heapless` box pool: the most a workload keeps live.
pub const HEAPLESS_BLOCKS: usize = CHURN_LIVE + CHURN_DRIFT;

/// An object the benchmarks allocate: plain data of a fixed size.
///
/// # Safety
///
/// Every bit pattern of `size_of::<Self>()` initialised bytes is a valid
/// `Self`, and `Self` is at least as large as a `usize`: the free-list
/// baseline reads a slot as a value whatever it last held.
pub unsafe trait Value: Copy + Send + Sync + 'static {
    /// `size_of::<Self>()`, for labels.
    const BYTES: usize;
    /// The `heapless` box pool serving this type (one static pool per type,
    /// as `box_pool!` makes them).
    type HeaplessPool: BoxPool<Data = Self>;

    /// A value tagged with `key`, every byte written.
    fn new(key: u64) -> Self;
    /// The key the value was made with.
    fn key(&self) -> u64;
    /// Gives the type's `heapless` pool its [`HEAPLESS_BLOCKS`] static
    /// blocks, the first time only.
    fn give_heapless_blocks();
}

/// Something to run once per object size; see [`for_each_size`].
pub trait SizeVisitor {
    /// Called once for each object type, smallest first.
    fn visit<T: Value>(&mut self);
}

/// Defines the object types, their `heapless` pools and [`for_each_size`].
macro_rules! object_sizes {
    ($($words:literal words => $pool:ident),* $(,)?) => {
        /// The `heapless` pools, one per object type.
        mod heapless_pools {
            $( heapless::box_pool!($pool: [u64; $words]); )*
        }

        $(
            // SAFETY: any bits are a valid `u64`, and the array holds at
            // least two of them.
            unsafe impl Value for [u64; $words] {
                const BYTES: usize = $words * 8;
                type HeaplessPool = heapless_pools::$pool;

                #[inline]
                fn new(key: u64) -> Self {
                    [key; $words]
                }

                #[inline]
                fn key(&self) -> u64 {
                    self[0]
                }

                fn give_heapless_blocks() {
                    use heapless::pool::boxed::BoxBlock;
                    static ONCE: std::sync::Once = std::sync::Once::new();
                    ONCE.call_once(|| {
                        static mut BLOCKS: [BoxBlock<[u64; $words]>; HEAPLESS_BLOCKS] =
                            [const { BoxBlock::new() }; HEAPLESS_BLOCKS];
                        // SAFETY: `call_once` runs this closure at most once
                        // in the process, so this is the only reference to
                        // `BLOCKS` ever made.
                        let blocks = unsafe { &mut *(&raw mut BLOCKS) };
                        for block in blocks {
                            <heapless_pools::$pool as BoxPool>::manage(block);
                        }
                    });
                }
            }
        )*

        /// Calls `visitor` once per object type: 16, 64 and 256 bytes.
        pub fn for_each_size(visitor: &mut impl SizeVisitor) {
            $( visitor.visit::<[u64; $words]>(); )*
        }
    };
}

object_sizes! {
    2 words => Heapless16,
    8 words => Heapless64,
    32 words => Heapless256,
}

pub use contenders::{
    FrontVisitor, Pool, PoolVisitor, RawAlloc, RawVisitor, SharedPool, SharedVisitor, ThreadFront,
    ThreadedPool, for_each_pool, for_each_raw, for_each_shared_pool,
};
