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
//! batch's pointers in an array of its own, on a [`shelf`] from the system
//! allocator, so a batch moves as four cache lines of pointers, the slots
//! themselves untouched until their user writes them.
//!
//! # As deep as the bursts, within a limit
//!
//! A depot of a fixed 8 batches (an array inside the cache) sent the rest
//! of a long burst of frees (10 000 objects freed in a row) to the slabs, a
//! link write per slot, and the allocations after it back through them, a
//! link read per slot; and it made every cache 2 KiB larger, used or not.
//! The shelf grows with the burst, up to [`limit`]: [`MAX_BYTES`] of slots,
//! between [`MIN_BATCHES`] and [`MAX_BATCHES`] batches. Measured on the
//! FIFO workload (`FIFO_ROUNDS=20 valgrind --tool=cachegrind
//! target/release/fifo_loop default`): 165.9 M instructions before, 143.9 M
//! after, the slabs' batch paths gone from the profile; its time, which
//! the memory traffic of 640 KB of objects sets, moved less than this
//! machine's noise (`fifo_loop default`, six runs of each build
//! interleaved: 7.9-11.5 ns a pair before, 8.2-11.8 after). The cache
//! shrank: `size_of::<SlabCache<[u64; 8]>>()` 2560 -> 512 bytes.
//!
//! Slots in the depot keep their pages busy, so a burst's batches must not
//! stay there once the burst is over. The depot watches its own level over
//! windows counted in batches moved (no clock in a library; the slabs'
//! decay counts frees the same way): the lowest level of a window is what
//! the window never needed, and what it holds beyond [`MIN_BATCHES`] goes
//! back to the slabs at the window's end. A window lasts four times the
//! highest level of the previous one (at least [`SHORTEST_WINDOW`]), so a
//! workload that fills and drains the depot in rounds sees its lowest level
//! at zero and keeps its batches, while one that stopped draining gives its
//! surplus back within a few windows. The shelf follows: one four times larger than
//! a whole window needed shrinks to twice that.
//!
//! The surplus goes back oldest first: the batches below the window's
//! lowest level are the ones that sat there all window, and after a burst
//! freed in random order their slots are scattered over the burst's pages,
//! keeping each of them busy. Taking the surplus off the top instead gave
//! back the batches just moved, still in the CPU's caches, and kept those.
//! After 100 000 objects of 64 bytes freed in random order (1 588 pages),
//! then 500-object chunks handed from one thread to another, 100 000
//! objects a phase, the cache was down to its steady 25-35 pages after 4,
//! 4 and 8 phases (three runs) oldest first, after 7, 9 and 11 (once 19)
//! off the top. (The fixed depot of 8 batches before it: after 2. These
//! runs had a limit of 1 MiB of slots; a deeper depot holds more of such a
//! burst, and takes longer to give it all back.)
//!
//! # What it owns
//!
//! Up to [`limit`] batches of at most [`BATCH_MAX`] slots each. Its slots
//! count as in use in their slabs, as slots resting in a magazine do;
//! `stats()` counts them as cached. A slot is in the depot iff it is in a
//! batch on its shelf.
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
//! refill (and the surplus a window's end finds), `empty_depot` before
//! `shrink` and before the set is dropped. Checked builds never stash:
//! their slots must reach the slabs, where the checks live.

mod shelf;

use core::ptr::NonNull;

use self::shelf::Shelf;
use crate::sync::{AtomicUsize, Mutex, Ordering, const_fn_unless_loom};

/// The most slots one batch holds: a per-thread magazine's half.
pub(crate) const BATCH_MAX: usize = 32;

/// The batches a depot may hold whatever its slots' size: what a depot of
/// fixed size held before it could grow. (Two under loom, whose models
/// fill a depot in a few steps.)
pub(crate) const MIN_BATCHES: usize = if cfg!(loom) { 2 } else { 8 };

/// The most batches a depot holds, whatever its slots' size: 4096 batches
/// of pointers are 1.1 MB of shelf, for 128 Ki slots of 8 bytes.
pub(crate) const MAX_BATCHES: usize = if cfg!(loom) { 4 } else { 4096 };

/// The bytes of slots a depot may keep busy, within [`MIN_BATCHES`] and
/// [`MAX_BATCHES`]: the FIFO workload's 10 000 objects of 64 bytes fit, and
/// the global workload's bursts of small strings mostly do: with a limit
/// of 1 MiB it ran 3 185 M instructions, with 4 MiB 3 110 M (-2.4 %), its
/// peak RSS 77 500 and 79 700 KiB (`valgrind --tool=cachegrind
/// target/release/global_slab 1 20000`; `target/release/global_slab`).
pub(crate) const MAX_BYTES: usize = 4 << 20;

/// The shortest window of the depot's decay, in batches moved.
pub(crate) const SHORTEST_WINDOW: usize = if cfg!(loom) { 4 } else { 64 };

/// How many batches the depot of a cache of `slot_size`-byte slots may
/// hold.
pub(crate) const fn limit(slot_size: usize) -> usize {
    let fit = MAX_BYTES / (slot_size * BATCH_MAX);
    if fit < MIN_BATCHES {
        MIN_BATCHES
    } else if fit > MAX_BATCHES {
        MAX_BATCHES
    } else {
        fit
    }
}

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
    shelf: Shelf,
    /// Slots pushed since the cache's decay clock last heard of them.
    passed: usize,
    levels: Levels,
}

/// The depot's level over the current window of its decay.
struct Levels {
    /// Batches moved (in or out) in this window.
    moved: usize,
    /// How many moves this window lasts.
    window: usize,
    /// The fewest batches held in this window.
    lowest: usize,
    /// The most batches held in this window.
    highest: usize,
}

/// What [`Depot::push`] reports when it keeps a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pushed {
    /// Slots that passed through since the last report to the cache's
    /// decay clock, when it is time to report them (every
    /// [`REPORT_EVERY`] slots; 0 otherwise).
    pub(crate) passed: usize,
    /// Batches the window that just ended never needed: the caller takes
    /// as many out (`pop_into`, which hands them out oldest first) and
    /// gives their slots to the slabs.
    pub(crate) surplus: usize,
}

/// How many slots pass through the depot between two reports to the
/// cache's decay clock (see [`Depot::push`]): one lock of the slabs per
/// sixteen batches.
pub(crate) const REPORT_EVERY: usize = 16 * BATCH_MAX;

// SAFETY: the pointers are resting slots that no one else uses; whoever holds
// the lock holds them, and the depot itself never reads or writes through
// them. The shelf's buffer is the shelf's alone, from `System`, which any
// thread may free.
unsafe impl Send for Batches {}

impl Levels {
    const fn new() -> Self {
        Self {
            moved: 0,
            window: SHORTEST_WINDOW,
            lowest: 0,
            highest: 0,
        }
    }

    /// Notes a move that left `held` batches.
    fn moved(&mut self, held: usize) {
        self.lowest = self.lowest.min(held);
        self.highest = self.highest.max(held);
        self.moved += 1;
    }

    /// At the window's end, with `held` batches, starts the next window
    /// and returns the surplus — what the window's lowest level held beyond
    /// [`MIN_BATCHES`], about to be taken out — and the window's highest
    /// level. `None` before the end.
    fn end(&mut self, held: usize) -> Option<(usize, usize)> {
        if self.moved < self.window {
            return None;
        }
        let highest = self.highest;
        let surplus = self.lowest.saturating_sub(MIN_BATCHES);
        self.window = self.highest.saturating_mul(4).max(SHORTEST_WINDOW);
        self.moved = 0;
        self.lowest = held - surplus;
        self.highest = held - surplus;
        Some((surplus, highest))
    }

    /// The depot was emptied: a new window from nothing.
    fn restart(&mut self) {
        *self = Self::new();
    }
}

impl Depot {
    const_fn_unless_loom! {
        /// An empty depot.
        pub(crate) const fn new() -> Self {
            Self {
                batches: Mutex::new(Batches {
                    shelf: Shelf::new(),
                    passed: 0,
                    levels: Levels::new(),
                }),
                hint: AtomicUsize::new(0),
            }
        }
    }

    /// Whether the depot looked full at its last change, for slots of
    /// `slot_size` bytes.
    #[inline]
    pub(crate) fn looks_full(&self, slot_size: usize) -> bool {
        self.hint.load(Ordering::Relaxed) >= limit(slot_size)
    }

    /// Keeps a copy of `batch` (at most [`BATCH_MAX`] slots of `slot_size`
    /// bytes), or returns `None` if the depot is full (or the system
    /// allocator could not grow it): then the slots are still the
    /// caller's. See [`Pushed`] for what the caller must do next.
    pub(crate) fn push(&self, batch: &[NonNull<u8>], slot_size: usize) -> Option<Pushed> {
        let mut held = self.batches.lock();
        if !held.shelf.push(batch, limit(slot_size)) {
            return None;
        }
        let count = held.shelf.len();
        self.hint.store(count, Ordering::Relaxed);
        held.levels.moved(count);
        let mut surplus = 0;
        if let Some((extra, highest)) = held.levels.end(count) {
            surplus = extra;
            // The surplus is what sat below the window's lowest level,
            // untouched all window: those very batches go back, rather than
            // the ones just moved. Slots freed long ago keep busy pages the
            // slabs could give back, and the last ones pushed are those
            // still in the CPU's caches, for the next refill.
            held.shelf.raise_oldest(surplus);
            // A shelf four times larger than a whole window needed shrinks
            // to twice that: room for the next burst of the same size,
            // without a growth per round for a workload that fills and
            // drains it.
            if highest.saturating_mul(4) < held.shelf.capacity() {
                held.shelf.shrink_to(highest * 2);
            }
        }
        held.passed += batch.len();
        let passed = if held.passed < REPORT_EVERY {
            0
        } else {
            core::mem::take(&mut held.passed)
        };
        Some(Pushed { passed, surplus })
    }

    /// Moves the batch given last into the start of `out`, if it fits, and
    /// returns how many slots it held (0 if none moved).
    pub(crate) fn pop_into(&self, out: &mut [NonNull<u8>]) -> usize {
        if self.hint.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        let mut held = self.batches.lock();
        let taken = held.shelf.pop_into(out);
        if taken > 0 {
            let count = held.shelf.len();
            self.hint.store(count, Ordering::Relaxed);
            // A window ends only at a push, whose caller gives the surplus
            // back.
            held.levels.moved(count);
        }
        taken
    }

    /// The depot was emptied batch by batch (`pop_into` until it gave
    /// nothing): its shelf goes back to the system allocator, and its
    /// decay starts again. Batches pushed meanwhile stay, shelf and all.
    pub(crate) fn emptied(&self) {
        let mut held = self.batches.lock();
        if held.shelf.len() == 0 {
            held.shelf.release();
            held.levels.restart();
        }
    }

    /// Forgets every batch, reading no slot: for slots whose pages are
    /// gone.
    pub(crate) fn forget_all(&self) {
        let mut held = self.batches.lock();
        held.shelf.release();
        held.levels.restart();
        self.hint.store(0, Ordering::Relaxed);
    }

    /// Slots held, over every batch.
    pub(crate) fn slots(&self) -> usize {
        self.batches.lock().shelf.slots()
    }

    /// Slots held, or `None` if the lock is taken (for `Debug`).
    pub(crate) fn try_slots(&self) -> Option<usize> {
        Some(self.batches.try_lock()?.shelf.slots())
    }
}

#[cfg(test)]
mod tests;
