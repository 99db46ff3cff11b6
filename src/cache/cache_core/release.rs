//! How a cache gives pages back: the reserve policy on `shrink` and
//! configuration changes, and the one path every page takes back to its
//! source — after the bookkeeping, with the slabs not yet given back
//! relisted should the page source panic.

use super::{CacheConfig, CacheCore};
use crate::checked::poison;
use crate::intrusive::Linked;
use crate::page_allocator::PageAllocator;
use crate::slab::Slab;

impl CacheCore {
    /// Applies `config`; a lower reserve gives back the empty slabs beyond it
    /// at once.
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`].
    pub(crate) unsafe fn set_config<P: PageAllocator + ?Sized>(
        &mut self,
        pages: &P,
        config: CacheConfig,
    ) {
        self.config = config;
        // SAFETY: forwarded from the caller.
        unsafe { self.release_empty(pages, config.reserve) };
    }

    /// Gives every empty slab's page back, the reserve included, and returns
    /// how many.
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`].
    pub(crate) unsafe fn shrink<P: PageAllocator + ?Sized>(&mut self, pages: &P) -> usize {
        // SAFETY: forwarded from the caller.
        unsafe { self.release_empty(pages, 0) }
    }

    /// Gives back empty slabs until at most `keep` remain, and returns how
    /// many went back. Walks `available`: for `shrink` and configuration
    /// changes, never for an allocation or a free. All the slabs are taken
    /// off the lists and counted out first, then their pages go back.
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`].
    pub(in crate::cache) unsafe fn release_empty<P: PageAllocator + ?Sized>(
        &mut self,
        pages: &P,
        keep: usize,
    ) -> usize {
        let mut released = 0;
        let mut chain = None;
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
        // SAFETY: the chained slabs are held and counted by no list.
        unsafe { self.give_back_all(pages, chain) };
        released
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
        // Whoever gets the page next may touch all of it.
        poison::allow(slab.page(), self.geometry.page_size);
        // SAFETY: the caller's guarantees: the page came from `pages` and no
        // one uses it any more.
        unsafe { pages.deallocate_page(slab.page()) };
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
        let mut released = 0;
        while let Some(slab) = self.full.head().or(self.available.head()) {
            // SAFETY: slabs on our lists are live and we hold `&mut self`.
            let used = unsafe { slab.in_use() };
            if self.full.head() == Some(slab) {
                // SAFETY: the slab is the head of `full`.
                unsafe { self.full.remove(slab) };
            } else {
                // SAFETY: the slab is the head of `available`.
                unsafe { self.available.remove(slab) };
                if used == 0 {
                    self.empty -= 1;
                }
            }
            self.in_use -= used;
            // Whoever gets the page next may touch all of it.
            poison::allow(slab.page(), self.geometry.page_size);
            // SAFETY: the page came from `pages` (shared contract), is on no
            // list now, and no one uses its slots (the caller's guarantee).
            unsafe { pages.deallocate_page(slab.page()) };
            released += 1;
        }
        released
    }
}
