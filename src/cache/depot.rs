//! The depot: whole batches of resting slots that magazines gave back,
//! kept as they are for the next magazine that runs dry (the depot of
//! Bonwick and Adams's magazine layer, 2001).
//!
//! # Why
//!
//! A magazine that overflows gives half its slots back, and one that runs
//! dry takes a batch. Without a depot both go through the slabs under the
//! cache's lock: the free puts each slot on its slab's list (a header
//! write per slot, often in another thread's cache), the refill pops them
//! again (a link read per slot, a miss when another core wrote it). When
//! one thread frees what another allocates, both threads wait on that lock
//! while the other does a batch of slab operations: the hand-off workload
//! spent 42 % of its time spinning (`perf record` on `cargo bench -p
//! minimal_slab_perf --bench threads -- 'handoff/64B/slabcache$'`). With a
//! depot a batch moves whole, under the depot's own lock, as a copy of
//! its pointers.
//!
//! # Pointers in the depot, not links in the slots
//!
//! A first version linked each batch into a chain through the slots' first
//! words, so the depot held one pointer per batch. Taking a chain then
//! meant following a batch's links one after the other, each a miss in the
//! taking core when another core had freed the slots (`Chain::unlink` took
//! 17 % of the hand-off workload's time). Here the depot keeps each
//! batch's pointers in an array of its own — two kilobytes per cache,
//! which only `std` builds have — so a batch moves as four cache lines of
//! pointers, the slots themselves untouched until their user writes them,
//! and the depot needs no `unsafe` at all.
//!
//! # What it owns
//!
//! Up to [`BATCHES`] batches of at most [`BATCH_MAX`] slots each. Its slots
//! count as in use in their slabs, as slots resting in a magazine do;
//! `stats()` counts them as cached. A slot is in the depot iff it is in
//! `slots[b][..lens[b]]` for some `b < count`.
//!
//! # The decay's clock
//!
//! The slabs give back the empty pages of an old peak as frees tick their
//! clock (see `cache_core::release`). A workload that lives on the depot —
//! one thread frees, another allocates, in batches — sends no free to the
//! slabs, and the clock would stop with the old peak's pages kept. So the
//! depot counts the slots pushed through it and reports them to the slabs
//! every [`REPORT_EVERY`] slots (one lock of the slabs per sixteen
//! batches), as frees of slots handed out again.
//!
//! # Who calls what
//!
//! Only `CacheSet`: `stash` and `unstash` for the magazines' overflow and
//! refill, `empty_depot` before `shrink` and before the set is dropped.
//! Checked builds never stash: their slots must reach the slabs, where the
//! checks live.

use core::ptr::NonNull;

use crate::sync::{AtomicUsize, Mutex, Ordering, const_fn_unless_loom};

/// The most slots one batch holds: a per-thread magazine's half.
pub(crate) const BATCH_MAX: usize = 32;

/// How many batches a depot holds: beyond that, batches go to the slabs,
/// so the depot keeps at most `BATCHES * BATCH_MAX` slots' pages busy.
/// (Two under loom, whose threads' small stacks hold the caches its models
/// build, and whose models fill a depot in a few steps.)
pub(crate) const BATCHES: usize = if cfg!(loom) { 2 } else { 8 };

/// The batches of one cache, behind a lock of their own: a hand-off
/// between threads never waits on the slabs' lock.
pub(crate) struct Depot {
    batches: Mutex<Batches>,
    /// How many batches there are, as of the last change: read without the
    /// lock so that a refill skips an empty depot, and an overflow a full
    /// one, without taking it. Written under the lock only; a stale value
    /// costs a lock taken in vain or a batch sent to the slabs, nothing
    /// more.
    hint: AtomicUsize,
}

struct Batches {
    slots: [[NonNull<u8>; BATCH_MAX]; BATCHES],
    lens: [usize; BATCHES],
    count: usize,
    /// Slots pushed since the cache's decay clock last heard of them.
    passed: usize,
}

/// How many slots pass through the depot between two reports to the
/// cache's decay clock (see [`Depot::push`]): one lock of the slabs per
/// sixteen batches.
pub(crate) const REPORT_EVERY: usize = 16 * BATCH_MAX;

// SAFETY: the pointers are resting slots that no one else uses; whoever holds
// the lock holds them, and the depot itself never reads or writes through
// them.
unsafe impl Send for Batches {}

impl Depot {
    const_fn_unless_loom! {
        /// An empty depot.
        pub(crate) const fn new() -> Self {
            Self {
                batches: Mutex::new(Batches {
                    slots: [[NonNull::dangling(); BATCH_MAX]; BATCHES],
                    lens: [0; BATCHES],
                    count: 0,
                    passed: 0,
                }),
                hint: AtomicUsize::new(0),
            }
        }
    }

    /// Whether the depot looked full at its last change.
    #[inline]
    pub(crate) fn looks_full(&self) -> bool {
        self.hint.load(Ordering::Relaxed) == BATCHES
    }

    /// Keeps a copy of `batch` (at most [`BATCH_MAX`] slots), or returns
    /// `None` if the depot is full. `Some(passed)`: how many slots passed
    /// through since the last report, when it is time to tell the cache's
    /// decay clock (every [`REPORT_EVERY`] slots; 0 otherwise) — frees the
    /// slabs never see, which must still count.
    pub(crate) fn push(&self, batch: &[NonNull<u8>]) -> Option<usize> {
        let mut held = self.batches.lock();
        let count = held.count;
        if count == BATCHES {
            return None;
        }
        held.slots[count][..batch.len()].copy_from_slice(batch);
        held.lens[count] = batch.len();
        held.count = count + 1;
        self.hint.store(count + 1, Ordering::Relaxed);
        held.passed += batch.len();
        if held.passed < REPORT_EVERY {
            return Some(0);
        }
        Some(core::mem::take(&mut held.passed))
    }

    /// Moves the batch given last into the start of `out`, if it fits, and
    /// returns how many slots it held (0 if none moved).
    pub(crate) fn pop_into(&self, out: &mut [NonNull<u8>]) -> usize {
        if self.hint.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        let mut held = self.batches.lock();
        let Some(top) = held.count.checked_sub(1) else {
            return 0;
        };
        let len = held.lens[top];
        if len > out.len() {
            return 0;
        }
        out[..len].copy_from_slice(&held.slots[top][..len]);
        held.count = top;
        self.hint.store(top, Ordering::Relaxed);
        len
    }

    /// Forgets every batch, reading no slot: for slots whose pages are
    /// gone.
    pub(crate) fn forget_all(&self) {
        self.batches.lock().count = 0;
        self.hint.store(0, Ordering::Relaxed);
    }

    /// Slots held, over every batch.
    pub(crate) fn slots(&self) -> usize {
        Self::count(&self.batches.lock())
    }

    /// Slots held, or `None` if the lock is taken (for `Debug`).
    pub(crate) fn try_slots(&self) -> Option<usize> {
        let held = self.batches.try_lock()?;
        Some(Self::count(&held))
    }

    fn count(held: &Batches) -> usize {
        held.lens[..held.count].iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(i: usize) -> NonNull<u8> {
        NonNull::<u64>::dangling()
            .map_addr(|a| a.saturating_add(i * 8))
            .cast()
    }

    #[test]
    fn batches_go_out_last_in_first_and_whole() {
        let slots: std::vec::Vec<NonNull<u8>> = (0..BATCHES * 5).map(slot).collect();
        let depot = Depot::new();
        for batch in slots.chunks(5) {
            assert_eq!(depot.push(batch), Some(0));
        }
        assert_eq!(depot.slots(), BATCHES * 5);
        assert!(depot.looks_full());
        assert_eq!(depot.push(&slots[..1]), None, "a full depot takes nothing");
        let mut out = [NonNull::dangling(); BATCH_MAX];
        assert_eq!(
            depot.pop_into(&mut out[..4]),
            0,
            "a batch of 5 does not fit 4"
        );
        for batch in slots.chunks(5).rev() {
            assert_eq!(depot.pop_into(&mut out), 5);
            assert_eq!(&out[..5], batch);
        }
        assert_eq!(depot.slots(), 0);
        assert_eq!(depot.pop_into(&mut out), 0);
        assert_eq!(depot.push(&slots[..BATCH_MAX]), Some(0));
        assert_eq!(depot.try_slots(), Some(BATCH_MAX));
        depot.forget_all();
        assert_eq!((depot.slots(), depot.pop_into(&mut out)), (0, 0));
    }
}
