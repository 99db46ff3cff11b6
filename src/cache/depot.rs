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
//! while the other does sixteen slab operations: the hand-off workload
//! spent 42 % of its time spinning (`perf record` on `cargo bench -p
//! minimal_slab_perf --bench threads -- 'handoff/64B/slabcache$'`). With a
//! depot the batch moves as one chain: linked outside any lock by the
//! thread that gives it (its slots are warm in its cache), pushed and
//! popped under the depot's own lock in O(1), and walked outside any lock
//! by the thread that takes it.
//!
//! # What it owns
//!
//! Up to [`CHAINS`] chains of at most [`CHAIN_MAX`] slots each. Its slots
//! count as in use in their slabs, as slots resting in a magazine do;
//! `stats()` counts them as cached. A slot is in the depot iff it is on one
//! of its chains; a chain's slots are linked through their first word, in
//! the order they were given, and `len` says how many there are (the last
//! slot's word is not read).
//!
//! # Who calls what
//!
//! Only `CacheSet`: `stash` and `unstash` for the magazines' overflow and
//! refill, `empty_depot` before `shrink` and before the set is dropped.
//! Checked builds never stash: their slots must reach the slabs, where the
//! checks live.

use core::ptr::NonNull;

use crate::checked::poison;
use crate::sync::{AtomicUsize, Mutex, Ordering, const_fn_unless_loom};

/// The most slots one chain holds: a per-thread magazine's batch.
pub(crate) const CHAIN_MAX: usize = 16;

/// How many chains a depot holds: beyond that, batches go to the slabs,
/// so the depot keeps at most `CHAINS * CHAIN_MAX` slots' pages busy.
pub(crate) const CHAINS: usize = 8;

/// Slots linked through their first word.
#[derive(Clone, Copy)]
pub(crate) struct Chain {
    head: NonNull<u8>,
    len: usize,
}

// SAFETY: a chain is a batch of resting slots that no one else uses; it moves
// between threads under the depot's lock, along with them.
unsafe impl Send for Chain {}

impl Chain {
    /// Links `slots` (not empty, at most [`CHAIN_MAX`]) into a chain, in
    /// order, and puts them off limits for AddressSanitizer.
    ///
    /// # Safety
    ///
    /// Each slot is a resting slot of `size` bytes (at least a pointer,
    /// aligned to one) that no one else uses, reached through a pointer
    /// that may write all of it, and each appears once.
    pub(crate) unsafe fn link(slots: &[NonNull<u8>], size: usize) -> Self {
        debug_assert!(!slots.is_empty() && slots.len() <= CHAIN_MAX);
        for pair in slots.windows(2) {
            // SAFETY: the caller's guarantees: the slot is ours, writable
            // and aligned for a pointer.
            unsafe { pair[0].cast::<NonNull<u8>>().write(pair[1]) };
        }
        for &slot in slots {
            poison::forbid(slot, size);
        }
        Self {
            head: slots[0],
            len: slots.len(),
        }
    }

    /// Walks the chain into `out` (at least [`len`](Self::len) long), in
    /// the order it was linked; returns how many.
    ///
    /// # Safety
    ///
    /// The chain was made by [`link`](Self::link) with `size`, its slots
    /// untouched since, and the caller now holds it alone.
    pub(crate) unsafe fn unlink(self, size: usize, out: &mut [NonNull<u8>]) -> usize {
        let mut slot = self.head;
        for (i, place) in out[..self.len].iter_mut().enumerate() {
            poison::allow(slot, size);
            *place = slot;
            if i + 1 < self.len {
                // SAFETY: `link` wrote the next slot's pointer into this
                // slot's first word, and no one has written it since.
                slot = unsafe { slot.cast::<NonNull<u8>>().read() };
            }
        }
        self.len
    }
}

/// The chains of one cache, behind a lock of their own: a hand-off
/// between threads never waits on the slabs' lock.
pub(crate) struct Depot {
    chains: Mutex<Chains>,
    /// How many chains there are, as of the last change: read without the
    /// lock so that a refill skips an empty depot, and an overflow a full
    /// one, without taking it. Written under the lock only; a stale value
    /// costs a lock taken in vain or a batch sent to the slabs, nothing
    /// more.
    hint: AtomicUsize,
}

struct Chains {
    chains: [Option<Chain>; CHAINS],
    count: usize,
}

impl Depot {
    const_fn_unless_loom! {
        /// An empty depot.
        pub(crate) const fn new() -> Self {
            Self {
                chains: Mutex::new(Chains {
                    chains: [None; CHAINS],
                    count: 0,
                }),
                hint: AtomicUsize::new(0),
            }
        }
    }

    /// Whether the depot looked full at its last change.
    #[inline]
    pub(crate) fn looks_full(&self) -> bool {
        self.hint.load(Ordering::Relaxed) == CHAINS
    }

    /// Keeps `chain`, or hands it back if the depot is full.
    pub(crate) fn push(&self, chain: Chain) -> Result<(), Chain> {
        let mut held = self.chains.lock();
        let count = held.count;
        let Some(place) = held.chains.get_mut(count) else {
            return Err(chain);
        };
        *place = Some(chain);
        held.count = count + 1;
        self.hint.store(count + 1, Ordering::Relaxed);
        Ok(())
    }

    /// The chain given last, if it holds at most `room` slots.
    pub(crate) fn pop_within(&self, room: usize) -> Option<Chain> {
        if self.hint.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut held = self.chains.lock();
        let top = held.count.checked_sub(1)?;
        let chain = held.chains[top].filter(|chain| chain.len <= room)?;
        held.chains[top] = None;
        held.count = top;
        self.hint.store(top, Ordering::Relaxed);
        Some(chain)
    }

    /// Takes every chain out.
    pub(crate) fn take_all(&self) -> impl Iterator<Item = Chain> + use<> {
        let mut held = self.chains.lock();
        let chains = core::mem::replace(&mut held.chains, [None; CHAINS]);
        held.count = 0;
        self.hint.store(0, Ordering::Relaxed);
        chains.into_iter().flatten()
    }

    /// Slots held, over every chain.
    pub(crate) fn slots(&self) -> usize {
        Self::count(&self.chains.lock())
    }

    /// Slots held, or `None` if the lock is taken (for `Debug`).
    pub(crate) fn try_slots(&self) -> Option<usize> {
        let held = self.chains.try_lock()?;
        Some(Self::count(&held))
    }

    fn count(held: &Chains) -> usize {
        held.chains[..held.count]
            .iter()
            .flatten()
            .map(|chain| chain.len)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_go_out_last_in_first_and_whole() {
        let mut words = [[0usize; 2]; CHAINS * 5];
        let slots: std::vec::Vec<NonNull<u8>> = words
            .iter_mut()
            .map(|w| NonNull::from(w).cast::<u8>())
            .collect();
        let size = core::mem::size_of::<[usize; 2]>();
        let depot = Depot::new();
        for batch in slots.chunks(5) {
            // SAFETY: distinct, writable, aligned, ours.
            let chain = unsafe { Chain::link(batch, size) };
            assert!(depot.push(chain).is_ok());
        }
        assert_eq!(depot.slots(), CHAINS * 5);
        // SAFETY: as above; a full depot hands the chain back.
        let one_more = unsafe { Chain::link(&slots[..1], size) };
        assert!(depot.push(one_more).is_err());
        assert!(depot.pop_within(4).is_none(), "a chain of 5 does not fit 4");
        let mut out = [NonNull::dangling(); CHAIN_MAX];
        for batch in slots.chunks(5).rev() {
            let chain = depot.pop_within(CHAIN_MAX).expect("a chain");
            // SAFETY: made by `link` above, untouched, ours.
            let n = unsafe { chain.unlink(size, &mut out) };
            assert_eq!(&out[..n], batch);
        }
        assert_eq!(depot.slots(), 0);
        assert_eq!(depot.take_all().count(), 0);
    }
}
