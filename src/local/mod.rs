//! Per-thread fronts: allocation and free without a lock.
//!
//! A [`LocalCache`] sits in front of one shared [`SlabCache`], a
//! [`LocalAllocator`] in front of one shared [`SlabAllocator`] (a magazine
//! per size class). Each keeps a magazine (see `magazine`) of free slots
//! that it pops and pushes with no lock and no atomic operation; it takes
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
//! # Who owns what
//!
//! A local front owns the slots in its magazine; the shared cache counts them
//! as in use (its `stats()` includes them in `objects_in_use`, and a slab
//! holding one is not empty, so `shrink` keeps it). Dropping the front, or
//! calling `flush`, gives them all back. A front is `Send` but not `Sync`:
//! one thread at a time, no locking inside. In `no_std` the front is an
//! explicit value — one per thread, per core, or per task, as the program
//! is organised; with `std`, a `thread_local!` holding a front of a `static`
//! cache gives each thread its own.
//!
//! # Handles
//!
//! [`LocalCache::alloc`] returns a [`LocalBox`], which returns its slot to
//! the local magazine when dropped. It borrows the front, so it stays on
//! the front's thread; [`LocalBox::into_shared`] turns it into an ordinary
//! [`SlabBox`] that may travel, and [`LocalCache::recycle`] takes a
//! `SlabBox` of the same cache back into the magazine.
//!
//! Slots resting in magazines are not free as far as the shared cache
//! knows: with a page limit (`CacheConfig::page_limit`), an allocation can
//! fail with `PageLimit` while other threads' fronts hold free slots. Size
//! magazines (and flush fronts) with that in mind.
//!
//! # Checks
//!
//! Checked builds poison slots resting in a magazine and verify the poison
//! when one is handed out; a raw free checks the slot's owner and size class
//! at once (reading only header fields fixed when the slab was made, so no
//! lock is needed) and whether it is already in this front's magazine. The
//! full double-free check runs when the slot goes back to its slab: a block
//! freed to two different fronts is caught only when both have flushed it.
//! A magazine is never borrowed across a call out of this crate (it is made
//! of `Cell`s), so a panic hook that uses the same front — a misuse report,
//! a page source that panics — finds it whole.
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
//! `magazine` is the stack of slots; `front` the one magazine front, which
//! refills and drains a magazine through the cache layer's batch API;
//! `cache` and `allocator` the two public fronts built on it.

mod allocator;
mod cache;
mod front;
mod magazine;

pub use allocator::LocalAllocator;
pub use cache::{LocalBox, LocalCache};
