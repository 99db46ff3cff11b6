//! The recent peak of slabs in use, and the window of frees over which it
//! decays: the clock of the give-back hysteresis (see `release` for the
//! policy it serves and why).

use super::CacheConfig;

/// The recent peak of slabs in use, and the window of frees over which it
/// decays. The clock is the core's count of frees (`freed`, wrapping), so
/// that a free stores nothing more: it compares the count with
/// `window_end`.
#[derive(Debug, Clone, Copy)]
pub(in crate::cache) struct Decay {
    /// The value of the core's `freed` at which the current window ends.
    /// Windows are shorter than `isize::MAX` frees,
    /// so the count has reached the end iff their wrapping difference is
    /// not negative: a window whose end was passed without being ended
    /// (frees that could not give pages back, a page source that panicked)
    /// ends at the next free that can. A new core's is 0: its first window
    /// ends at its first free, which so starts the first whole window —
    /// stored as itself, not biased like `shortest`, so that the free that
    /// compares with it links no exclusive or (a firmware's frees, and
    /// their window's end, compare it three times).
    window_end: usize,
    /// Most slabs in use at once in the current window.
    peak: usize,
    /// Most slabs in use at once in the previous window.
    previous: usize,
    /// The shortest window, in frees (`config.decay`, at most
    /// [`LONGEST`]); 0: no hysteresis. Stored as [`Biased`].
    shortest: Biased,
}

/// A count stored as its exclusive or with [`CacheConfig::DEFAULT_DECAY`],
/// so that a new core's decay under the default configuration — the
/// shortest window that long — is stored as zeros (see `StoredConfig`).
type Biased = crate::cache::config::Biased<{ CacheConfig::DEFAULT_DECAY }>;

/// The longest window: ends are compared by the sign of a wrapping
/// difference, so a window must stay below half the count's range.
const LONGEST: usize = isize::MAX as usize;

impl Decay {
    /// No peak yet, windows of at least `config.decay` frees, the clock at
    /// 0, and the first window ending at the first free (with nothing
    /// retained yet, that end only starts the next window from the peak
    /// noted so far); without hysteresis, no window ending in practice.
    pub(in crate::cache) const fn new(config: &CacheConfig) -> Self {
        let shortest = shortest_of(config);
        Self {
            window_end: if shortest == 0 { LONGEST } else { 0 },
            peak: 0,
            previous: 0,
            shortest: Biased::of(shortest),
        }
    }

    /// The length of a window for `budget` slabs of `slots_per_slab`: the
    /// longest there is without hysteresis (a window that ends then changes
    /// nothing).
    ///
    /// A budget counts slabs that were in use at once, each on a page of its
    /// own, of `slots_per_slab` slots of at least a pointer each beside the
    /// page's header: their product counts slots that fit in the address
    /// space at once, fewer than half its bytes, so it neither overflows
    /// nor passes `LONGEST` (no checked product, nor a cap, for a firmware
    /// to link).
    const fn window(&self, budget: usize, slots_per_slab: usize) -> usize {
        let shortest = self.shortest.get();
        if shortest == 0 {
            return LONGEST;
        }
        let stretched = budget * slots_per_slab;
        debug_assert!(stretched <= LONGEST);
        if stretched > shortest {
            stretched
        } else {
            shortest
        }
    }

    /// The most pages the cache may hold while it keeps empty slabs
    /// beyond its reserve: none without hysteresis, so that one comparison
    /// with it decides whether a retained slab goes back, whatever the
    /// configuration.
    #[inline]
    pub(in crate::cache) fn budget(&self) -> usize {
        if self.shortest.get() == 0 {
            return 0;
        }
        self.peak.max(self.previous)
    }

    /// Notes that `busy` slabs are in use now, or are about to be.
    #[inline]
    pub(in crate::cache) fn note_busy(&mut self, busy: usize) {
        if busy > self.peak {
            self.peak = busy;
        }
    }

    /// Whether a slab emptied beyond the reserve is kept, the cache holding
    /// `pages_held` pages besides it.
    #[inline]
    pub(in crate::cache) fn keeps(&self, pages_held: usize) -> bool {
        pages_held < self.budget()
    }

    /// Whether the count of frees, now `freed`, has reached the window's
    /// end (the caller then calls `end_window`, which starts the next).
    #[inline(always)]
    pub(in crate::cache) fn ends_at(&self, freed: usize) -> bool {
        freed.wrapping_sub(self.window_end).cast_signed() >= 0
    }

    /// Starts the next window with `busy` slabs in use and the count at
    /// `freed`, and returns the new budget.
    pub(in crate::cache) fn next_window(
        &mut self,
        busy: usize,
        slots_per_slab: usize,
        freed: usize,
    ) -> usize {
        self.previous = self.peak;
        self.peak = busy;
        let budget = self.budget();
        self.window_end = freed.wrapping_add(self.window(budget, slots_per_slab));
        budget
    }

    /// Forgets the peaks (after `shrink` or a change of configuration):
    /// the budget restarts from the `busy` slabs in use, and a window
    /// from the count `freed`.
    pub(in crate::cache) fn restart(
        &mut self,
        busy: usize,
        slots_per_slab: usize,
        freed: usize,
        config: &CacheConfig,
    ) {
        self.shortest = Biased::of(shortest_of(config));
        self.peak = busy;
        self.previous = busy;
        self.window_end = freed.wrapping_add(self.window(busy, slots_per_slab));
    }
}

/// The shortest window `config` asks for, within [`LONGEST`].
const fn shortest_of(config: &CacheConfig) -> usize {
    if config.decay < LONGEST {
        config.decay
    } else {
        LONGEST
    }
}

#[cfg(test)]
mod tests {
    use super::Decay;
    use crate::cache::CacheConfig;

    #[test]
    fn a_window_ends_when_the_count_reaches_or_passes_its_end_across_a_wrap() {
        let mut decay = Decay::new(&CacheConfig::new().decay(5));
        assert!(decay.ends_at(1), "the first window ends at the first free");
        assert_eq!(decay.next_window(0, 1, 0), 0);
        assert!(!decay.ends_at(4));
        assert!(decay.ends_at(5));
        assert!(
            decay.ends_at(7),
            "passed (a flush, a panic): ends at the next free"
        );
        // A window that starts four frees before the count wraps.
        let start = usize::MAX - 3;
        decay.restart(0, 1, start, &CacheConfig::new().decay(5));
        assert!(!decay.ends_at(start));
        assert!(!decay.ends_at(usize::MAX));
        assert!(!decay.ends_at(0));
        assert!(decay.ends_at(1));
        assert!(decay.ends_at(3));
    }

    #[test]
    fn a_window_stretches_to_the_slots_of_the_budget() {
        let mut decay = Decay::new(&CacheConfig::new().decay(100));
        decay.note_busy(10);
        assert_eq!(decay.next_window(4, 63, 0), 10, "the peak of the window");
        assert!(!decay.ends_at(629));
        assert!(decay.ends_at(630), "10 pages of 63 slots");
        // The peak of the window just ended was the 4 slabs in use when it
        // began: the 10 are forgotten, two windows after they were in use.
        assert_eq!(decay.next_window(4, 63, 630), 4);
        assert!(!decay.ends_at(630 + 251));
        assert!(decay.ends_at(630 + 252), "4 pages of 63 slots");
        assert_eq!(decay.next_window(1, 63, 882), 4, "the previous window's");
        assert!(decay.ends_at(882 + 252));
        assert_eq!(decay.next_window(1, 63, 1_134), 1);
        assert!(decay.ends_at(1_134 + 100), "`decay` at least");
    }

    #[test]
    fn eager_keeps_nothing_and_its_windows_never_end_in_practice() {
        let mut decay = Decay::new(&CacheConfig::new().eager());
        decay.note_busy(1_000);
        assert!(!decay.keeps(0));
        // A quarter of the way round the count, on any pointer width.
        assert!(!decay.ends_at(1 << (usize::BITS - 2)));
    }
}
