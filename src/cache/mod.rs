//! Caches: all the slabs of one slot size, and the policy that grows and
//! shrinks them.
//!
//! # What a cache owns
//!
//! Every page it took from its page source, each set up as a slab of one
//! `SlabGeometry`. A [`CacheCore`] is one such cache, unsynchronised
//! (`&mut self`); a [`CacheSet`] is the locked core both fronts build on:
//! one or more cores (a typed cache has one, a size-class allocator one per
//! class), each behind its own lock, sharing one page source. So `shrink`,
//! `stats`, `for_each_slab`, the cache's `Drop` and the reporting of misuse
//! exist once, for every front.
//!
//! # Invariants
//!
//! - Each slab is on exactly one of two lists: **full** (every slot in use)
//!   or **available** (at least one slot free). So an allocation takes the
//!   head of `available` — or a new page — and a free moves its slab at most
//!   once; nothing ever walks a list to find room.
//! - Lists are intrusive and doubly linked through the slab headers
//!   (`intrusive::List`): O(1) insert and remove, no memory of their own.
//! - `empty` counts the slabs on `available` with no slot in use, and
//!   `empty <= config.reserve` after every free and every change of the
//!   configuration. The reserve (two slabs by default, as in the original
//!   design) absorbs alloc/free ping-pong at a slab boundary without a page
//!   allocator round trip. A slab emptied beyond it goes to a third list,
//!   `retained`, while the cache holds fewer pages than it had in use at
//!   its recent peak, and otherwise gives its page straight back (always,
//!   with `CacheConfig::eager`); see `cache_core::release` for that
//!   hysteresis and its bounds. `shrink` gives back the reserve and the
//!   retained slabs too.
//! - `pages_held() <= config.page_limit` whenever the cap was set before the
//!   pages were taken: growth stops at the cap with an error.
//! - `in_use` is the sum of the slabs' `in_use`.
//! - Exception: a core whose page source keeps its pages
//!   (`PageAllocator::KEEP_PAGES`, `KeepPages`) gives no page back on a
//!   free, retains nothing, and its fast paths keep neither `empty` nor
//!   `in_use`: the cold paths that read them recount them from the slabs
//!   first (`cache_core::kept`).
//! - **The counts are right before the page source is called.** A page goes
//!   back only after its slab is off every list and counted out, and a
//!   batch of frees does the bookkeeping of all its slots before the first
//!   page goes back; a batch of allocations asks for a page only while it
//!   holds no slot. A page source is user code and may panic: it then finds
//!   the cache consistent, and loses it no slot (slabs not yet given back
//!   return to `available`).
//!
//! Empty slabs kept as the reserve stay on `available` rather than on a list
//! of their own. An earlier design kept a third list for them, and measured
//! it: with one object live at a time, every alloc/free pair moved its slab
//! from `empty` to `partial` and back — four list operations on the hottest
//! path (`cargo bench --bench quick`, `pair`). Counting them costs nothing
//! there; only `shrink` and a lowered reserve must now look for them, and
//! those are not on the allocation path.
//!
//! A slab that stops being full goes to the front of `available`, so the
//! next allocation takes a slot that was just freed, whose cache lines are
//! still warm. A slab already on `available` stays where it is: moving it to
//! the front on every free would put a list operation on the hot path, so the
//! slot reused next is the head slab's most recently freed one, not always
//! the very last slot freed in the cache.
//!
//! # Who calls what
//!
//! The fronts above (`typed`, `raw`, `local`) call [`CacheSet`] only. Its
//! batch operations (`alloc_batch`, `free_batch`, and with `std` the
//! depot's `stash` and `unstash`, which keep whole batches of free slots
//! out of the slabs for the next batch taken) are what a per-thread
//! magazine calls; this layer knows nothing of magazines, nor of any front.

mod cache_core;
mod cache_set;
mod config;
#[cfg(feature = "std")]
mod depot;
#[cfg(feature = "std")]
pub(crate) use depot::BATCH_MAX as DEPOT_BATCH_MAX;
#[cfg(all(test, feature = "alloc"))]
mod tests;

pub(crate) use cache_core::{SlotReach, with_exposed_page_provenance};
pub(crate) use cache_set::{
    CacheSet, MIN_CLASS, PowersOfTwo, Shapes, class_size, home_of, record_home,
};
pub use config::CacheConfig;
pub(crate) use config::StoredConfig;
