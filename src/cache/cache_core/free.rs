//! How a slot goes back to its slab: one at a time (`free`, whose moves
//! between lists, page given back and window ended sit off its path in
//! `after_free`), or a batch under one lock (`free_batch`, a magazine's).

use core::ptr::NonNull;

use super::{CacheCore, SlotReach};
use crate::checked::{CHECKED, Misuse, OwnerTag};
use crate::intrusive::Linked;
use crate::page_allocator::PageAllocator;
use crate::slab::{Slab, SlabGeometry};

/// A slab a slot just went back to (`CacheCore::put_slot`), and whether
/// that free moves it between lists.
#[derive(Clone, Copy)]
struct Freed {
    slab: Slab,
    /// It was full: it leaves `full`.
    was_full: bool,
    /// It has no slot in use now.
    now_empty: bool,
}

impl CacheCore {
    /// Returns `slot` to its slab; a slab emptied beyond the reserve and
    /// beyond the recent peak gives its page back.
    ///
    /// Checked builds first verify that `slot` is a slot of this cache in a
    /// user's hands, and take it out of them (see `slab::checks`); they
    /// return the misuse otherwise, changing nothing.
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`], and `slot` was handed out by
    /// this core and not freed since (no double free), and is not used after
    /// this call (no use after free). `reach` says what the caller's pointer
    /// may access; with [`SlotReach::Object`], the core must have been built
    /// with `expose_pages`. `geometry` is the core's: a front that knows it
    /// at compile time lets the slot arithmetic fold to constants.
    #[inline]
    pub(crate) unsafe fn free<P: PageAllocator + ?Sized>(
        &mut self,
        pages: &P,
        owner: &OwnerTag,
        slot: NonNull<u8>,
        reach: SlotReach,
        geometry: &SlabGeometry,
    ) -> Result<(), Misuse> {
        if P::KEEP_PAGES {
            // No page goes back and no count is kept (see `kept`): the
            // slab's move between lists is all there is, inline.
            // SAFETY: forwarded from the caller.
            let emptied = unsafe { self.put_back(owner, slot, reach, true, geometry, true) }?;
            debug_assert!(
                emptied.is_none(),
                "a core that keeps its pages gives none back"
            );
            return Ok(());
        }
        // SAFETY: forwarded from the caller.
        let slab = unsafe { self.put_slot(owner, slot, reach, true, geometry, false) }?;
        // SAFETY: a slot just went back to the live `slab`.
        let in_use = unsafe { slab.in_use() };
        // The slab changes lists if it was full (`slots - 1` in use now) or
        // is empty: one unsigned comparison tells both (0 wraps round to
        // the top; with one slot a slab, both hold and the bound wraps).
        let moves = in_use.wrapping_sub(1) >= geometry.slots_per_slab.wrapping_sub(2);
        // The window that may end here finds the free's bookkeeping done.
        if moves || self.decay.ends_at(self.freed) {
            // One call off the fast path for all three, so that the list
            // moves, the page given back and the window's end are linked
            // once, and nothing the fast path holds must survive a call.
            // SAFETY: forwarded from the caller; `slab` just took `slot`
            // back, and nothing changed since.
            unsafe { self.after_free(pages, slab, geometry) };
        }
        Ok(())
    }

    /// The rare end of a free into `slab`: the slab moved between lists
    /// (an emptied one beyond the reserve retained, whatever the budget),
    /// the decay's window ended if the count of frees has reached its end
    /// (asked again here rather than passed in, so that the free computes
    /// it once, in its branch), and the retained slabs beyond the budget
    /// given back — the emptied one first, if the budget has no room for
    /// it, just as if it had never been retained.
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`]; a slot just went back to the
    /// live `slab` of this core (`put_slot`), which is still on the list
    /// it was on; `geometry` is the core's.
    #[cold]
    #[inline(never)]
    unsafe fn after_free<P: PageAllocator + ?Sized>(
        &mut self,
        pages: &P,
        slab: Slab,
        geometry: &SlabGeometry,
    ) {
        // SAFETY: the caller's guarantees.
        let freed = unsafe { freed(slab, geometry, 1) };
        // SAFETY: `freed` is what the free just did; with `retain`, no slab
        // is returned.
        let _ = unsafe { self.relist_freed(freed, false, true) };
        if self.decay.ends_at(self.freed) {
            self.decay
                .next_window(self.busy(), geometry.slots_per_slab, self.freed);
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.give_back_surplus(pages) };
    }

    /// Returns every slot of `slots` to its slab: the batch API a magazine
    /// calls to give slots back. They rest in a magazine, in no user's
    /// hands (checked builds: their bits are clear, and stay so; a second
    /// free of one was caught when it was freed into the magazine, so none
    /// is reported as a double free here). The bookkeeping of all of them is done
    /// before any page goes back, so a page source that panics loses none
    /// of them. A misused slot (checked builds) is left alone, the others
    /// freed; the first misuse is returned. Without `release`, slabs
    /// emptied beyond the reserve and the recent peak stay listed as empty
    /// (for a caller that frees into several caches before it lets any page
    /// go), and a window of the decay that ends meanwhile ends at the next
    /// free that may give pages back.
    ///
    /// # Safety
    ///
    /// As for [`free`](Self::free), for each slot, through pointers that
    /// reach the whole page, except that the slots rest in a magazine (or
    /// were just taken for one), in no user's hands.
    pub(crate) unsafe fn free_batch<P: PageAllocator + ?Sized>(
        &mut self,
        pages: &P,
        owner: &OwnerTag,
        geometry: &SlabGeometry,
        slots: &[NonNull<u8>],
        release: bool,
    ) -> Result<(), (Misuse, NonNull<u8>)> {
        if !CHECKED {
            // SAFETY: forwarded from the caller.
            let emptied = unsafe { self.put_runs(slots, geometry, P::KEEP_PAGES) };
            // SAFETY: the chained slabs are held and counted by no list.
            unsafe { self.after_batch(pages, geometry, emptied, release) };
            return Ok(());
        }
        // The slots belong to slabs all over the cache, whose headers are
        // seldom in cache: asking for all of them first lets their misses
        // overlap instead of following one another.
        for &slot in slots {
            Slab::containing(slot, geometry.page_size).prefetch_header();
        }
        let mut first_misuse = None;
        let mut emptied = None;
        for &slot in slots {
            // SAFETY: forwarded from the caller; the geometry is the core's.
            match unsafe {
                self.put_back(owner, slot, SlotReach::Page, false, geometry, P::KEEP_PAGES)
            } {
                Ok(Some(slab)) => {
                    // SAFETY: the slab is on no list now; its links are ours
                    // to chain the slabs that go back.
                    unsafe { slab.set_links(None, emptied) };
                    emptied = Some(slab);
                }
                Ok(None) => {}
                Err(misuse) => {
                    first_misuse.get_or_insert((misuse, slot));
                }
            }
        }
        // SAFETY: the chained slabs are held and counted by no list.
        unsafe { self.after_batch(pages, geometry, emptied, release) };
        first_misuse.map_or(Ok(()), Err)
    }

    /// The end of [`free_batch`](Self::free_batch): the slabs it emptied
    /// (chained through their links) given back with `release`, or listed
    /// again as empty without.
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`]; `geometry` is the core's; the
    /// chained slabs are held and counted by no list, and used by no one
    /// else.
    #[inline]
    unsafe fn after_batch<P: PageAllocator + ?Sized>(
        &mut self,
        pages: &P,
        geometry: &SlabGeometry,
        emptied: Option<Slab>,
        release: bool,
    ) {
        if release {
            // SAFETY: the caller's guarantees.
            unsafe { self.give_back_all(pages, emptied) };
            if !P::KEEP_PAGES && self.decay.ends_at(self.freed) {
                // SAFETY: forwarded from the caller.
                unsafe { self.end_window(pages, geometry) };
            }
        } else {
            // SAFETY: as above.
            unsafe { self.relist(emptied) };
            // A window that ended here ends at the next free that may give
            // pages back (`Decay::ends_at`).
        }
    }

    /// The bookkeeping of an unchecked [`free_batch`](Self::free_batch):
    /// each run of slots of one slab goes back with one update of its
    /// header and of the lists (a magazine's batch holds a few such runs,
    /// slots freed one after another being mostly neighbours). Returns the
    /// slabs emptied beyond the reserve, chained through their links, for
    /// the caller to give back.
    ///
    /// # Safety
    ///
    /// As for [`free_batch`](Self::free_batch); `keep` is the page source's
    /// `KEEP_PAGES`.
    unsafe fn put_runs(
        &mut self,
        slots: &[NonNull<u8>],
        geometry: &SlabGeometry,
        keep: bool,
    ) -> Option<Slab> {
        let mut emptied = None;
        let mut rest = slots;
        while let Some(&first) = rest.first() {
            // SAFETY: the caller's guarantee: a slot of ours, in a live
            // slab's page.
            let slab = unsafe { Slab::containing_live(first, geometry.page_size) };
            let run = rest
                .iter()
                .position(|&slot| Slab::containing(slot, geometry.page_size) != slab)
                .unwrap_or(rest.len());
            let (these, after) = rest.split_at(run);
            rest = after;
            // The next run's header, often in another slab seldom in cache,
            // loads while this run goes back.
            if let Some(&next) = rest.first() {
                Slab::containing(next, geometry.page_size).prefetch_header();
            }
            // SAFETY: the caller's guarantees, for every slot of the run,
            // each a slot of `slab`.
            unsafe { slab.push_run(these, geometry) };
            if !keep {
                self.freed = self.freed.wrapping_add(these.len());
            }
            // SAFETY: the run just went back to the live `slab`.
            let freed = unsafe { freed(slab, geometry, these.len()) };
            // SAFETY: `freed` is what the run's free just did.
            if let Some(slab) = unsafe { self.relist_freed(freed, keep, false) } {
                // SAFETY: the slab is on no list now; its links are ours to
                // chain the slabs that go back.
                unsafe { slab.set_links(None, emptied) };
                emptied = Some(slab);
            }
        }
        emptied
    }

    /// The bookkeeping of a free: `slot` back on its slab's free list, the
    /// slab moved between lists; a slab emptied beyond the reserve is kept
    /// on `retained` if the recent peak allows it, and otherwise taken off
    /// its list, no longer counted, and returned for the caller to give
    /// back (after all other bookkeeping, so that a panicking page source
    /// leaves the counts right). `held` says whether a user holds the slot
    /// (a free) or a magazine (a drain). With `keep` (the page source's
    /// `KEEP_PAGES`), no slab goes back, and the core's counts are left
    /// alone (see `kept`).
    ///
    /// # Safety
    ///
    /// As for [`free`](Self::free); `keep` is the page source's `KEEP_PAGES`.
    #[inline(always)]
    unsafe fn put_back(
        &mut self,
        owner: &OwnerTag,
        slot: NonNull<u8>,
        reach: SlotReach,
        held: bool,
        geometry: &SlabGeometry,
        keep: bool,
    ) -> Result<Option<Slab>, Misuse> {
        // SAFETY: forwarded from the caller.
        let slab = unsafe { self.put_slot(owner, slot, reach, held, geometry, keep) }?;
        // SAFETY: a slot just went back to the live `slab`.
        let freed = unsafe { freed(slab, geometry, 1) };
        // SAFETY: `freed` is what the free just did.
        Ok(unsafe { self.relist_freed(freed, keep, false) })
    }

    /// The first half of [`put_back`](Self::put_back): `slot` back on its
    /// slab's free list and counted (unless `keep`), the slab's lists not
    /// touched yet; returns the slab.
    ///
    /// # Safety
    ///
    /// As for [`put_back`](Self::put_back).
    #[inline(always)]
    unsafe fn put_slot(
        &mut self,
        owner: &OwnerTag,
        slot: NonNull<u8>,
        reach: SlotReach,
        held: bool,
        geometry: &SlabGeometry,
        keep: bool,
    ) -> Result<Slab, Misuse> {
        debug_assert!(
            self.expose_pages || reach == SlotReach::Page,
            "narrowed pointers need exposed pages"
        );
        let (page_ptr, guarded) = reach.resolve(slot);
        let slab = if CHECKED {
            // Any pointer: the checks below tell a foreign one.
            Slab::containing(page_ptr, geometry.page_size)
        } else {
            // SAFETY: the caller's guarantee: a slot of ours, in a live
            // slab's page.
            unsafe { Slab::containing_live(page_ptr, geometry.page_size) }
        };
        if CHECKED {
            let checked = if held {
                // SAFETY: we hold `&mut self`; `slab` was computed from
                // `slot`, which the caller says is one of our slots (this
                // verifies it).
                unsafe { slab.check_free(slot, geometry, owner.get()) }
            } else {
                // A slot from a magazine is in no user's hands: its bit is
                // clear already, and a clear bit is no double free here.
                // SAFETY: as above.
                unsafe { slab.check_slot(slot, geometry, owner.get()) }
            };
            checked?;
        }
        // SAFETY: `slot` is ours, so `slab` is one of our live slabs;
        // `slot` is handed out and no longer used.
        unsafe { slab.push_slot(slot, geometry, guarded) };
        if !keep {
            self.freed = self.freed.wrapping_add(1);
        }
        Ok(slab)
    }

    /// The second half of [`put_back`](Self::put_back): the slab of
    /// `freed` moved between lists, and returned if it goes back (never
    /// with `keep`, which leaves `empty` alone too). With `retain`, a slab
    /// emptied beyond the reserve is retained whatever the budget, and
    /// none is returned: the caller gives back what the budget has no room
    /// for (`give_back_surplus`).
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`]; `freed` is what the free just
    /// done (of one slot by `put_slot`, or of a run by `put_runs`) did, and
    /// nothing changed since; `keep` is the page source's `KEEP_PAGES`.
    #[inline(always)]
    unsafe fn relist_freed(&mut self, freed: Freed, keep: bool, retain: bool) -> Option<Slab> {
        let Freed {
            slab,
            was_full,
            now_empty,
        } = freed;
        // Emptied beyond the reserve: it leaves `available` for good. A
        // core that keeps its pages neither gives one back nor counts
        // empty slabs (see `kept`).
        let goes = !keep && now_empty && self.empty >= self.config.reserve();
        if !was_full && !goes {
            if now_empty && !keep {
                self.empty += 1;
            }
            return None;
        }
        // One list to leave and at most one to join, whatever the case, so
        // that each list operation is written (and linked) once.
        let from = if was_full {
            &mut self.full
        } else {
            &mut self.available
        };
        // SAFETY: the slab was on `full` iff it was full; exclusive access
        // via `&mut self`.
        unsafe { from.remove(slab) };
        let to = if !goes {
            if now_empty && !keep {
                self.empty += 1;
            }
            &mut self.available
        } else if retain || self.decay.keeps(self.pages_held()) {
            &mut self.retained
        } else {
            return Some(slab);
        };
        // SAFETY: on no list now.
        unsafe { to.push_front(slab) };
        None
    }
}

/// What the free of `count` slots just did to `slab`, as far as its
/// lists care.
///
/// # Safety
///
/// `slab` is a live slab of the caller's core, whose geometry is
/// `geometry`, under exclusive access; `count` of its slots just went back
/// to it.
#[inline(always)]
unsafe fn freed(slab: Slab, geometry: &SlabGeometry, count: usize) -> Freed {
    // SAFETY: the caller's guarantees.
    let in_use = unsafe { slab.in_use() };
    Freed {
        slab,
        was_full: in_use + count == geometry.slots_per_slab,
        now_empty: in_use == 0,
    }
}
