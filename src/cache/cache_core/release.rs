//! How a cache gives pages back: the hysteresis that keeps a burst's pages
//! for the next burst, the reserve policy on `shrink` and configuration
//! changes, and the one path every page takes back to its source — after
//! the bookkeeping, with the slabs not yet given back relisted should the
//! page source panic.
//!
//! # What it owns
//!
//! The core's `retained` list and its `Decay` (in `decay`): the empty
//! slabs a cache keeps beyond its reserve, and the recent peak that
//! entitles it to them.
//!
//! - `reserve` empty slabs stay on `available` (as before): they absorb
//!   alloc/free ping-pong at a slab boundary with no list operation.
//! - A slab emptied beyond the reserve goes to `retained` if the cache then
//!   holds fewer pages than its *budget*, the most slabs in use at once
//!   (`busy`) in the current or the previous window; else its page goes
//!   back at once. An allocation takes a retained slab when `available` is
//!   empty, before it asks the page source for a page.
//! - The peak is noted when a slab is taken for `available` (a retained
//!   one or a new page), not on every allocation: slabs that come into use
//!   from the reserve alone go unnoticed, so the budget errs low, by the
//!   reserve at most — pages the reserve keeps anyway.
//! - Windows are counted in frees (a batch counts as its length): `no_std`
//!   has no clock. The clock is the core's count of frees, `freed`, which
//!   replaced its count of slots in use (that is `allocated - freed`). A
//!   window lasts `config.decay` frees, or as many as the budget's pages
//!   have slots if that is more. When one ends, the peak of the window
//!   just ended becomes the previous one, the peak restarts from the slabs
//!   in use now, and retained slabs beyond the new budget go back. A free
//!   that may not give pages back (a front's flush, which lets no page go
//!   until every class has its slots back) leaves an ended window to the
//!   next free that may.
//!
//! # Invariants
//!
//! - Every slab on `retained` is empty and on no other list, and counts
//!   among the empty slabs of `stats()`; `empty` still counts only the
//!   empty slabs on `available`, and `empty <= reserve` as before.
//! - If `retained` is not empty, `pages_held() <= budget`: true when a slab
//!   is retained, restored when a window ends by giving back the surplus,
//!   and a budget only grows within a window. (A page source that panics
//!   while a window's end gives pages back leaves the rest of the surplus
//!   retained until the next window ends.) A budget being a number of
//!   slabs that were in use at once, a cache never holds more pages than
//!   it had in use at once within the last two windows, or than its slabs
//!   in use plus its reserve.
//! - At a window's end the budget becomes the most slabs in use at once
//!   during the window just ended, or now: a page not needed during a
//!   whole window goes back at its end. So a page goes back at most two
//!   windows of frees after the last free that needed it, two windows of
//!   at most `max(decay, peak × slots_per_slab)` frees. A loop that fills
//!   the cache and empties it again frees at most its peak's slots from
//!   one peak to the next: no window passes without a peak, so it keeps
//!   its pages, however large it is.
//! - With `decay == 0` (`CacheConfig::eager`) the budget is 0, so nothing
//!   stays retained past the free that empties its slab: the behaviour of
//!   earlier versions, a page back the moment its slab empties beyond the
//!   reserve.
//! - Under a page source that keeps its pages (`KeepPages`), none of this
//!   applies, and none of it is linked: no free gives a page back, nothing
//!   is retained, and only `shrink` (and a cache's drop) gives pages back.
//! - `shrink` gives back every empty slab, retained or reserve, and
//!   restarts the peak from the slabs in use; so does a change of
//!   configuration, down to the new reserve.
//!
//! Cost: allocation's fast path is unchanged (the peak is noted on the
//! cold path that takes a slab for `available`). A free compares its count
//! with the window's end — a load, a subtraction and a branch, no store
//! beyond the count it kept before — and a single free makes one call off
//! its fast path for all that is rare: its slab's move between lists, the
//! window's end, and the pages that go back. There, a slab emptied beyond
//! the reserve is retained, and the retained slabs beyond the budget go
//! back (`give_back_surplus`): the emptied slab itself if the budget has
//! no room for it, the surplus of an old peak when a window ends — one
//! loop, the only one a firmware's frees link. A window's end gives back
//! the surplus in one go, O(1) a page (each retained by one free of the
//! window); nothing walks a list outside `shrink` and `set_config`.
//!
//! # Why this design
//!
//! Measured with `cargo run -p minimal_slab_perf --release --bin
//! fifo_loop` (10 000 objects of 64 bytes allocated, then freed oldest
//! first, round after round). Giving pages back eagerly (the design
//! before) cost a chunk of the default page source a round, handed back to
//! the global allocator and taken again: about 1 ns of a 22–25 ns pair
//! (5 %) while glibc's dynamic `mmap` threshold keeps freed chunks in its
//! heap, but 66 page faults a round and a quarter of the time (28 ns a
//! pair against 21) where each chunk is mapped and unmapped (a fixed
//! threshold, `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072`; other
//! allocators). Keeping the pages takes both to zero. The alternatives:
//!
//! - *A bigger reserve* is a fixed number of pages: too small for a large
//!   burst, a waste for a small cache, and never decays.
//! - *Time* (jemalloc's `dirty_decay_ms`, mimalloc's purge delay) needs a
//!   clock; operations are the clock a `no_std` cache has.
//! - *Counting allocations too* (every operation): pages sit idle only
//!   across frees — a phase of allocations takes retained slabs back into
//!   use — so frees suffice, and allocation's fast path keeps no counter.
//! - *A countdown of its own* costs a store a free, and noting the peak on
//!   every allocation from an empty slab a few loads on alloc/free
//!   ping-pong: 0.5–1 ns of a 17–40 ns operation in `churn_loop` (100 000
//!   live objects, random frees), above its run-to-run noise. With the
//!   count of frees as the clock and the peak noted on the cold path,
//!   `pair` and `churn` run as before, within that noise.
//! - *A peak of pages held* sustains itself: the kept pages keep the peak
//!   up. Slabs in use measure demand, and fall when the workload does.
//! - *A fixed window* gives pages back every round once a round outgrows
//!   it (10 000 frees for this loop); a window stretched to the peak's
//!   slots keeps a loop of any size.
//! - *Retained slabs left on `available`* would have to be searched for
//!   when the peak decays (a walk), and allocations would spread over them
//!   instead of filling partial slabs; on a list of their own they go back
//!   in O(1) each, and are taken only once the partial slabs are full.
//! - *Hysteresis in `ChunkedPages` too*: with the caches keeping their
//!   pages, the chunk source sees no traffic in such a loop (0 chunks a
//!   round, measured), and pages a cache does give back have outlived two
//!   windows, so a second layer would only hold memory the workload gave
//!   up. It keeps its one spare chunk.

use core::ptr::NonNull;

use super::{CacheConfig, CacheCore, StoredConfig};
use crate::checked::poison;
use crate::intrusive::{Linked, List};
use crate::page_allocator::{PageAllocator, page_size_of};
use crate::slab::{Slab, SlabGeometry};

impl CacheCore {
    /// Counts `slots` handed out and freed again without reaching the
    /// slabs — slots that went from one magazine to another through the
    /// depot — and ends the decay's window if that brings its end: the
    /// clock must run while a workload lives on the depot, or the empty
    /// slabs of an old peak would be kept for ever.
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`]; `geometry` is the core's.
    #[cfg(feature = "std")]
    pub(crate) unsafe fn note_passed<P: PageAllocator + ?Sized>(
        &mut self,
        pages: &P,
        geometry: &SlabGeometry,
        slots: usize,
    ) {
        if P::KEEP_PAGES {
            // No counts kept, no window to end (see `kept`).
            return;
        }
        // The clock runs; the slots in use, the slabs' counts, stay what
        // they are.
        self.freed = self.freed.wrapping_add(slots);
        if self.decay.ends_at(self.freed) {
            // SAFETY: forwarded from the caller.
            unsafe { self.end_window(pages, geometry) };
        }
    }

    /// Ends the current window of the decay, and gives back the retained
    /// slabs beyond the new budget.
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`]; `geometry` is the core's.
    #[cfg_attr(feature = "std", cold, inline(never))]
    #[cfg_attr(not(feature = "std"), inline)]
    pub(super) unsafe fn end_window<P: PageAllocator + ?Sized>(
        &mut self,
        pages: &P,
        geometry: &SlabGeometry,
    ) {
        self.decay
            .next_window(self.busy(), geometry.slots_per_slab, self.freed);
        // SAFETY: forwarded from the caller.
        unsafe { self.give_back_surplus(pages) };
    }

    /// Gives back retained slabs, the most recently retained first, while
    /// the cache holds more pages than its budget: at a window's end, and
    /// after a free that retained the slab it emptied — which so goes back
    /// at once if the budget has no room for it, through this one loop,
    /// the only place a firmware's frees give a page back.
    ///
    /// One slab at a time, off its list before its page goes back: should
    /// the page source panic, the retained slabs not yet given back stay
    /// retained, and counted, until the next call. (No chain to relist
    /// them, as `give_back_all` needs for slabs taken off `available`.)
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`].
    #[inline]
    pub(super) unsafe fn give_back_surplus<P: PageAllocator + ?Sized>(&mut self, pages: &P) {
        let budget = self.decay.budget();
        while self.pages_held() > budget {
            // SAFETY: `retained` is ours, its slabs live; `&mut self`.
            let Some(slab) = (unsafe { take_head(&mut self.retained) }) else {
                break;
            };
            // SAFETY: the slab is empty, on no list now, counted nowhere
            // (the lists' lengths are the counts), and never used again.
            unsafe { self.give_back(pages, slab) };
        }
    }

    /// Applies `config`: every empty slab beyond the new reserve goes back
    /// at once, retained ones first (retained slabs within it join the
    /// reserve), and the peak restarts from the slabs in use. A core that
    /// keeps its pages keeps them: only the page limit applies to it.
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`]; `geometry` is the core's.
    pub(crate) unsafe fn set_config<P: PageAllocator + ?Sized>(
        &mut self,
        pages: &P,
        geometry: &SlabGeometry,
        config: CacheConfig,
    ) {
        self.config = StoredConfig::of(&config);
        if P::KEEP_PAGES {
            return;
        }
        let mut chain = None;
        while self.empty + self.retained.len() > config.reserve {
            // SAFETY: `retained` is ours, its slabs live; `&mut self`.
            let Some(slab) = (unsafe { take_head(&mut self.retained) }) else {
                break;
            };
            // SAFETY: on no list now: its links chain the slabs to go.
            unsafe { slab.set_links(None, chain) };
            chain = Some(slab);
        }
        // SAFETY: `retained` is ours, its slabs live; `&mut self`.
        while let Some(slab) = unsafe { take_head(&mut self.retained) } {
            // SAFETY: on no list now.
            unsafe { self.available.push_front(slab) };
            self.empty += 1;
        }
        // SAFETY: the chain holds slabs on no list, counted nowhere.
        let (chain, _) = unsafe { self.collect_empty(config.reserve, chain) };
        self.decay
            .restart(self.busy(), geometry.slots_per_slab, self.freed, &config);
        // SAFETY: the chained slabs are held and counted by no list.
        unsafe { self.give_back_all(pages, chain) };
    }

    /// Gives every empty slab's page back, the reserve and the retained
    /// slabs included, restarts the peak from the slabs in use, and returns
    /// how many.
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`]; `geometry` is the core's.
    pub(crate) unsafe fn shrink<P: PageAllocator + ?Sized>(
        &mut self,
        pages: &P,
        geometry: &SlabGeometry,
    ) -> usize {
        self.recount(P::KEEP_PAGES);
        let mut chain = None;
        let mut released = 0;
        // SAFETY: `retained` is ours, its slabs live; `&mut self`.
        while let Some(slab) = unsafe { take_head(&mut self.retained) } {
            // SAFETY: on no list now: its links chain the slabs to go.
            unsafe { slab.set_links(None, chain) };
            chain = Some(slab);
            released += 1;
        }
        // SAFETY: the chain holds slabs on no list, counted nowhere.
        let (chain, found) = unsafe { self.collect_empty(0, chain) };
        self.decay.restart(
            self.busy(),
            geometry.slots_per_slab,
            self.freed,
            &self.config.get(),
        );
        // SAFETY: the chained slabs are held and counted by no list.
        unsafe { self.give_back_all(pages, chain) };
        released + found
    }

    /// Gives back empty slabs of `available` until at most `keep` remain
    /// there, and returns how many went back; retained slabs stay. Walks
    /// `available`: for `shrink`, configuration changes and a front's
    /// flush, never for an allocation or a free. All the slabs are taken
    /// off the lists and counted out first, then their pages go back. A
    /// core that keeps its pages gives none back (only `shrink` does).
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`].
    pub(in crate::cache) unsafe fn release_empty<P: PageAllocator + ?Sized>(
        &mut self,
        pages: &P,
        keep: usize,
    ) -> usize {
        if P::KEEP_PAGES {
            return 0;
        }
        // SAFETY: an empty chain.
        let (chain, released) = unsafe { self.collect_empty(keep, None) };
        // SAFETY: the chained slabs are held and counted by no list.
        unsafe { self.give_back_all(pages, chain) };
        released
    }

    /// Takes empty slabs off `available` until at most `keep` remain there,
    /// adds them to `chain` (linked through `next`), and returns it with
    /// how many were added.
    ///
    /// # Safety
    ///
    /// The slabs on `chain` are live, empty, on no list and counted
    /// nowhere.
    unsafe fn collect_empty(&mut self, keep: usize, chain: Option<Slab>) -> (Option<Slab>, usize) {
        let mut chain = chain;
        let mut released = 0;
        let mut cursor = self.available.head();
        while self.empty > keep {
            let Some(slab) = cursor else {
                debug_assert!(false, "{} empty slabs counted but not found", self.empty);
                break;
            };
            // SAFETY: slabs on our lists are live and we hold `&mut self`.
            cursor = unsafe { self.available.next_of(slab) };
            // SAFETY: as above.
            if unsafe { slab.in_use() } == 0 {
                // SAFETY: the slab is on `available`.
                unsafe { self.available.remove(slab) };
                self.empty -= 1;
                // SAFETY: on no list now: its links chain the slabs to go.
                unsafe { slab.set_links(None, chain) };
                chain = Some(slab);
                released += 1;
            }
        }
        (chain, released)
    }

    /// Gives the page of each slab on `chain` (linked through `next`) back.
    /// Should the page source panic, the slabs not yet given back return to
    /// `available` as empty slabs, counted again: nothing is lost, and the
    /// counts stay right (the reserve may be exceeded until the next
    /// `shrink`).
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`]; the chained slabs are live,
    /// empty, on no list and counted nowhere.
    pub(super) unsafe fn give_back_all<P: PageAllocator + ?Sized>(
        &mut self,
        pages: &P,
        chain: Option<Slab>,
    ) {
        /// Lists the slabs not yet given back if a page source unwinds.
        struct Relist<'a> {
            core: &'a mut CacheCore,
            rest: Option<Slab>,
        }
        impl Drop for Relist<'_> {
            fn drop(&mut self) {
                // SAFETY: what is left of the chain is live, empty, on no
                // list and counted nowhere (the contract of `give_back_all`).
                unsafe { self.core.relist(self.rest.take()) };
            }
        }
        let mut pending = Relist {
            core: self,
            rest: chain,
        };
        while let Some(slab) = pending.rest {
            // SAFETY: chained slabs are live and ours.
            pending.rest = unsafe { slab.links() }.1;
            // SAFETY: the slab is off the chain, empty, on no list, counted
            // nowhere; the page came from `pages` (shared contract).
            unsafe { pending.core.give_back(pages, slab) };
        }
    }

    /// Returns an empty slab's page to `pages`.
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`]; `slab` is on no list, has no
    /// slot in use, is counted nowhere, and is never used again.
    pub(super) unsafe fn give_back<P: PageAllocator + ?Sized>(&self, pages: &P, slab: Slab) {
        // SAFETY: the caller's guarantees: the page came from `pages` and no
        // one uses it any more.
        unsafe { Self::give_back_page(pages, slab.page()) };
    }

    /// Gives `page` back to `pages`: a slab's page, or one that never
    /// became a slab (`grow` rejecting a misaligned page). One function for
    /// both, so that a firmware links the page source's `deallocate_page`
    /// once.
    ///
    /// # Safety
    ///
    /// `page` came from `pages` and no one uses it any more.
    #[inline(never)]
    pub(super) unsafe fn give_back_page<P: PageAllocator + ?Sized>(pages: &P, page: NonNull<u8>) {
        // Whoever gets the page next may touch all of it.
        poison::allow(page, page_size_of::<P>());
        // SAFETY: the caller's guarantees.
        unsafe { pages.deallocate_page(page) };
    }

    /// Puts each slab of `chain` (linked through `next`) back on
    /// `available`, counted as empty.
    ///
    /// # Safety
    ///
    /// The chained slabs are live, empty, on no list and counted nowhere.
    pub(super) unsafe fn relist(&mut self, mut chain: Option<Slab>) {
        while let Some(slab) = chain {
            // SAFETY: a chained slab is live and ours (`&mut self`).
            chain = unsafe { slab.links() }.1;
            // SAFETY: as above; it is on no list.
            unsafe { self.available.push_front(slab) };
            self.empty += 1;
        }
    }
}

impl CacheCore {
    /// Gives back the page of every slab, whatever its slots hold, and
    /// returns how many: for a cache going away whose slots no one can reach
    /// any more. Each slab leaves its list before its page goes, so should
    /// the page source panic, the slabs not yet given back stay listed and
    /// counted (and are leaked with the core, never reused).
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`]; no one reads or writes any slot
    /// of this core again (no use after free), and the core is dropped next.
    pub(crate) unsafe fn give_back_every_page<P: PageAllocator + ?Sized>(
        &mut self,
        pages: &P,
    ) -> usize {
        self.recount(P::KEEP_PAGES);
        let mut released = 0;
        loop {
            // SAFETY: our lists, under `&mut self`.
            let slab = unsafe { take_head(&mut self.full) }
                .map(|slab| (slab, false))
                // SAFETY: as above.
                .or_else(|| unsafe { take_head(&mut self.retained) }.map(|slab| (slab, false)))
                // SAFETY: as above.
                .or_else(|| unsafe { take_head(&mut self.available) }.map(|slab| (slab, true)));
            let Some((slab, was_available)) = slab else {
                break;
            };
            // SAFETY: a live slab of ours, off its list now.
            if was_available && unsafe { slab.in_use() } == 0 {
                // The counts stay true of the slabs still listed, should
                // the page source panic.
                self.empty -= 1;
            }
            // Whoever gets the page next may touch all of it.
            poison::allow(slab.page(), page_size_of::<P>());
            // SAFETY: the page came from `pages` (shared contract), is on no
            // list now, and no one uses its slots (the caller's guarantee).
            unsafe { pages.deallocate_page(slab.page()) };
            released += 1;
        }
        released
    }
}

/// Takes the first slab off `list`, if any.
///
/// # Safety
///
/// As for `List::remove`: the slabs on `list` are live, and the caller has
/// exclusive access to them (a core's list, through `&mut` to the core).
unsafe fn take_head(list: &mut List<Slab>) -> Option<Slab> {
    let slab = list.head()?;
    // SAFETY: the slab is on `list`; the caller's guarantees.
    unsafe { list.remove(slab) };
    Some(slab)
}
