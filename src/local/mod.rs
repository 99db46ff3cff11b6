//! Per-thread fronts: allocation and free without a lock.
//!
//! A [`LocalCache`] sits in front of one shared [`SlabCache`], a
//! [`LocalAllocator`] in front of one shared [`SlabAllocator`] (a magazine
//! per size class). Each keeps a magazine (see `magazine`) of free slots
//! that it pops and pushes with no lock and no atomic operation (checked
//! builds add one atomic read-modify-write per call, on the slot's bit in
//! its slab's bitmap, to catch a double free: see `slab::checks`); it takes
//! the shared cache's lock only to refill an empty magazine or to give back
//! half of a full one — a batch of slots per lock. Threads that each own a
//! local front therefore scale: they meet on the shared lock once per batch,
//! not once per object.
//!
//! Bonwick and Adams's answer to lock contention in a slab allocator (2001)
//! is this: in front of each shared cache, a per-CPU stack of free objects —
//! a magazine — that the CPU pops and pushes without any lock, touching the
//! shared cache only to refill an empty magazine or to empty a full one.
//!
//! The user's story (who owns the cached slots, the handles, the checks) is
//! on [`LocalCache`]; this is the maintainer's.
//!
//! # Design: magazines against one lock per call
//!
//! The shared caches take one uncontended spin lock per call; a front takes
//! none on the common path. The refill and flush are `#[cold]` and never
//! inlined: inlined, their loops made the common path too big to inline
//! into its callers and cost a call and six register saves per object (a
//! `perf` profile of the `pair` benchmark showed 68 % of the time there). `cargo bench -p minimal_slab_perf --bench pair`
//! and `--bench threads` compare the two (`slabcache` against
//! `slabcache-local`): see the README's Performance section for one run.

//! # The files
//!
//! `cache` and `allocator`, the two public fronts, both built on the one
//! magazine front of [`crate::magazine`] (which the per-thread caches behind
//! the default API use as well).

mod allocator;
mod cache;

pub use allocator::LocalAllocator;
pub use cache::{LocalBox, LocalCache};
