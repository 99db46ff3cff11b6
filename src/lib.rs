//! A `no_std` slab allocator and typed object pool.
//!
//! `minimal_slab` hands out fixed-size objects from pages cut into equal
//! slots. Allocation and free are O(1) — a pop or a push on a free list, no
//! search — and the bookkeeping is a small header per page.
//!
//! # A tour
//!
//! **Typed objects.** A [`SlabCache<T>`] is a pool of `T`s. Its slot size and
//! slots per page are computed at compile time, and it can be a `static`.
//! [`alloc`](SlabCache::alloc) moves a value in and returns a [`SlabBox`],
//! which derefs to `T` and returns the slot when dropped:
//!
//! ```
//! use minimal_slab::SlabCache;
//!
//! struct Connection { id: u32, open: bool }
//! static CONNECTIONS: SlabCache<Connection> = SlabCache::new();
//!
//! let mut c = CONNECTIONS.alloc(Connection { id: 1, open: true }).unwrap();
//! c.open = false;
//! assert_eq!(c.id, 1);
//! drop(c); // value dropped, slot back on the free list
//! ```
//!
//! A failed allocation hands the value back inside [`AllocFailed`], so nothing
//! is lost.
//!
//! **Raw bytes.** A [`SlabAllocator`] serves `Layout` requests from size
//! classes of 8 to 256 bytes, and larger ones from a fallback of your choice.
//! It implements [`GlobalAlloc`](core::alloc::GlobalAlloc), so it can be a
//! program's `#[global_allocator]`:
//!
//! ```
//! use core::alloc::Layout;
//! use minimal_slab::SlabAllocator;
//!
//! let heap = SlabAllocator::new();
//! let layout = Layout::from_size_align(24, 8).unwrap();
//! let p = heap.allocate(layout).unwrap(); // from the 32-byte class
//! // SAFETY: allocated just above with this layout, not used again.
//! unsafe { heap.deallocate(p, layout) };
//! ```
//!
//! **Pages.** Both take whole pages from a [`PageAllocator`]: by default 4 KiB
//! pages cut from 256 KiB chunks of the global allocator
//! ([`ChunkedGlobalPages`]), or one global allocation per page
//! ([`GlobalPages`]), any `GlobalAlloc` ([`GlobalAllocPages`]), or a region of
//! memory you hand over ([`RegionPages`]), for programs with no heap at all.
//! [`ChunkedPages`] cuts the big pages of any of them into small ones, and
//! [`KeepPages`] makes the caches keep every page they take (the smallest
//! firmware: no code to give pages back).
//!
//! **Threads.** The caches are `Sync`. With the `std` feature (on by
//! default) every thread keeps a few free slots of each cache it uses in a
//! thread-local table, so `alloc`, a handle's drop and `SlabAllocator`'s
//! calls (`GlobalAlloc`'s included) take no lock in the common case, and a
//! thread gives its slots back when it exits. Without `std` each call takes
//! the cache's lock; there (or to hold a magazine in hand), give each
//! thread, core or task a front: [`SlabCache::local`] returns a
//! [`LocalCache`] and [`SlabAllocator::local`] a [`LocalAllocator`], which
//! pop and push a magazine of free slots with no lock and no atomic, and
//! take the shared lock once per batch:
//!
//! ```
//! use minimal_slab::SlabCache;
//!
//! static PARTICLES: SlabCache<[f32; 8]> = SlabCache::new();
//!
//! std::thread::scope(|s| {
//!     for _ in 0..2 {
//!         s.spawn(|| {
//!             let local = PARTICLES.local();
//!             for i in 0..1000 {
//!                 let p = local.alloc([i as f32; 8]).unwrap(); // no lock
//!                 assert_eq!(p[0], i as f32);
//!             }
//!         });
//!     }
//! });
//! assert_eq!(PARTICLES.stats().objects_in_use, 0);
//! ```
//!
//! **Collections.** With the `allocator-api2` feature, `&SlabAllocator` is an
//! allocator for `allocator_api2`'s `Vec` and `Box` and `hashbrown`'s maps.
//!
//! **Introspection.** `stats()` on a cache or an allocator returns counters
//! whose `Display` is a table in the style of Linux's `/proc/slabinfo`, and
//! `for_each_slab` shows which slots of each slab are used
//! ([`SlabOccupancy`]).
//!
//! **Checked builds** (`debug_assertions`, or the `checked` feature) catch a
//! double free, a foreign pointer, a free with another size class's layout
//! and a write into a freed slot, each with a panic naming it and the
//! address.
//!
//! **Interrupts.** With the `critical-section` feature every lock is a
//! critical section of the [`critical-section`](https://docs.rs/critical-section)
//! implementation the program links, so firmware may allocate and free from
//! interrupt handlers; the default spin locks must not be taken there. The
//! feature also builds for cores without compare-and-swap (Cortex-M0/M0+,
//! RV32IMC). The README's "Interrupts" section lists what may run where.
//!
//! The examples in `examples/` are the tutorials: `quickstart`, `raw_bytes`,
//! `global_allocator`, `static_region`, `stored_handles` (a front stored
//! beside its handles, and in a `thread_local!`), `collections_in_slab`,
//! `entity_pool`, `kernel_heap`, `occupancy`, `page_overhead`, and the
//! firmware under QEMU in `examples/firmware`.
//!
//! # Implementation
//!
//! Four layers, each a folder that uses only the ones below it, on a floor
//! of shared parts:
//!
//! ```text
//!  fronts   typed/ SlabCache, SlabBox   raw/ SlabAllocator   local/ LocalCache,
//!                \                          |                     LocalAllocator
//!                 \                         |                 (magazines, refilled
//!                  \                        |                  a batch at a time)
//!  caches           cache/ CacheSet: one locked CacheCore per slot size —
//!                          available and full slabs, the reserve
//!                                           |
//!  slabs            slab/ one page: header, equal slots, free slots
//!                                           |
//!  pages            page_allocator/ pages aligned to their size
//!
//!  floor            intrusive/ (list, free stack)  checked/ (misuse, poison,
//!                   owner tags)  sync (locks)  error  stats
//! ```
//!
//! A slab is one page: a header, then equal slots. A free slot holds the
//! pointer to the next free slot, and slots never used are handed out by a
//! bump index, so a new slab costs nothing to set up. Pages are aligned to
//! their size, so the slab owning an object is found by masking its address.
//! A cache keeps its slabs on two intrusive lists — full, and available (a
//! slot free) — so neither alloc nor free ever scans; it grows a page at a
//! time, keeps a reserve of two empty slabs, and gives the other empty pages
//! back. Both fronts sit on the same locked core (`CacheSet`): a typed cache
//! is a set of one cache, a size-class allocator a set of one per class. The
//! per-thread fronts put a magazine in front of one cache of a set and move
//! slots to and from it a batch at a time (the core's batch API knows
//! nothing of magazines).
//!
//! # Features
//!
//! - `std` (default, implies `alloc`): per-thread caches behind
//!   [`SlabCache::alloc`], [`SlabBox`]'s drop and [`SlabAllocator`]'s
//!   methods, its `GlobalAlloc` ones included (see
//!   [`SlabAllocator::GLOBAL_ALLOC_PER_THREAD`]) — no lock on the common
//!   path (see `SlabCache::flush_thread_cache`).
//! - `alloc` (default): [`ChunkedGlobalPages`] and [`GlobalPages`], pages from
//!   the global allocator.
//!   Without it the crate needs no allocator at all.
//! - `checked`: misuse detection (double free, foreign pointer, wrong size
//!   class, write after free) in every build; it is always on with
//!   `debug_assertions`.
//! - `allocator-api2`: `allocator_api2::alloc::Allocator` for
//!   `&SlabAllocator` and `&SlabCache`, so `allocator_api2`'s `Vec` and `Box`
//!   and `hashbrown`'s maps live in slabs on stable Rust.
//! - `nightly` (nightly Rust only): `core::alloc::Allocator` for
//!   `&SlabAllocator` and `&SlabCache`, for std's `Box::new_in`,
//!   `Vec::new_in` and the rest.
//!
//! # Safety
//!
//! Safe code cannot cause undefined behaviour through this crate: handles
//! borrow their cache, and raw pointers only come back through `unsafe fn`s
//! whose `# Safety` sections state what the caller owes. Every `unsafe` block
//! carries a `SAFETY:` comment naming the invariant it relies on.

#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(feature = "nightly", feature(allocator_api))]

#[cfg(feature = "alloc")]
extern crate alloc;

#[cfg(any(test, feature = "std"))]
extern crate std;

// The floors, from the bottom up; each module uses only those below it.
// Bottom: synchronisation, errors and counters, checks, intrusive structures,
// and (std) an array in the system allocator's memory.
mod checked;
mod error;
mod intrusive;
mod stats;
mod sync;
#[cfg(feature = "std")]
mod system_vec;
// Page sources: where memory comes from.
pub mod page_allocator;
// Slabs: one page cut into slots.
mod slab;
// Caches: the slabs of one slot size, behind a lock.
mod cache;
// Magazines: small stacks of free slots in front of a cache.
mod magazine;
// Per-thread tables of magazines behind the default API (std).
#[cfg(feature = "std")]
mod thread_cache;
// The fronts: typed objects, raw bytes, per-thread magazines.
mod local;
mod raw;
mod typed;
// The standard allocator traits, for both fronts.
#[cfg(any(feature = "allocator-api2", feature = "nightly"))]
mod allocator_api;
// Former public paths, as deprecated aliases.
mod deprecated;

pub use cache::CacheConfig;
pub use error::{AllocError, AllocFailed, PageAllocError};
pub use local::{LocalAllocator, LocalBox, LocalCache};
#[cfg(feature = "alloc")]
pub use page_allocator::{ChunkedGlobalPages, GlobalPages};
pub use page_allocator::{
    ChunkedPages, GlobalAllocPages, KeepPages, NoPages, PageAllocator, RegionPages,
};
pub use raw::{Fallback, NoFallback, SizeClassLimit, SlabAllocator};
pub use stats::{AllocatorStats, CacheStats, SlabOccupancy};
pub use typed::{SlabBox, SlabCache};

#[allow(deprecated)] // the former paths, kept for the 0.1 series
pub use deprecated::{slab_allocator, slab_cache};

#[cfg(feature = "allocator-api2")]
pub use allocator_api2;
pub use generic_array;
pub use typenum;

/// Under loom only: waits until every other loom thread that cached slots
/// has given them up (its exit guard has run to the end). Loom's `join`
/// returns before the joined thread's thread-locals are dropped, where
/// `std`'s waits for them; a model calls this after its joins, and before
/// it returns.
#[cfg(all(loom, feature = "std"))]
#[doc(hidden)]
pub fn wait_for_thread_exits() {
    thread_cache::wait_for_exits();
}

/// Under loom without `std`: there are no per-thread caches to wait for
/// (the models then run the locked path alone).
#[cfg(all(loom, not(feature = "std")))]
#[doc(hidden)]
pub fn wait_for_thread_exits() {}

// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
mod readme;
