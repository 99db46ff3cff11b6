//! All the slabs of one object size, and the policy that grows and shrinks them.
//!
//! # What a cache owns
//!
//! Every page it took from its page allocator, each set up as a slab of one
//! `SlabGeometry`. The cache core does not own the page allocator: the
//! fronts above (the typed [`SlabCache`](crate::SlabCache) and the size
//! classes of [`SlabAllocator`](crate::SlabAllocator)) own it and pass it in,
//! so that one page source can serve several cores.
//!
//! # Invariants
//!
//! - Each slab is on exactly one of two lists: **full** (every slot in use)
//!   or **available** (at least one slot free). So an allocation takes the
//!   head of `available` — or a new page — and a free moves its slab at most
//!   once; nothing ever walks a list to find room.
//! - Lists are intrusive and doubly linked through the slab headers: O(1)
//!   insert and remove, no memory of their own.
//! - `empty` counts the slabs with no slot in use (all on `available`), and
//!   `empty <= config.reserve` after every free and every change of the
//!   configuration. The reserve (two slabs by default, as in the original
//!   design) absorbs alloc/free ping-pong at a slab boundary without a page
//!   allocator round trip; the free that empties a slab beyond it gives the
//!   page straight back. `CacheCore::shrink` gives back the reserve too.
//! - `pages_held() <= config.page_limit` whenever the cap was set before the
//!   pages were taken: growth stops at the cap with an error.
//! - `in_use` is the sum of the slabs' `in_use`.
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

use core::fmt;
use core::ptr::NonNull;

use generic_array::ArrayLength;

use crate::error::AllocError;
use crate::magazine::{self, Magazine};
use crate::misuse::Misuse;
use crate::page_allocator::{PageAllocator, page_size_of};
use crate::poison;
use crate::slab::{Slab, SlabGeometry};
use crate::stats::{CacheStats, SlabOccupancy};
use crate::sync::{AtomicU32, Ordering, StaticAtomicU32, const_fn_unless_loom};

/// Empty slabs a cache keeps by default instead of giving their pages back.
pub const DEFAULT_RESERVE: usize = 2;

/// How a cache grows and gives memory back.
///
/// All setters are `const`, so a configured cache can still be a `static`.
///
/// ```
/// use minimal_slab::{CacheConfig, ChunkedGlobalPages, SlabCache};
///
/// // At most 4 pages, and no empty slab kept around.
/// static POINTS: SlabCache<(f32, f32)> = SlabCache::with_config(
///     ChunkedGlobalPages::global(),
///     CacheConfig::new().page_limit(4).reserve(0),
/// );
/// let p = POINTS.alloc((1.0, 2.0)).unwrap();
/// assert_eq!(POINTS.stats().pages, 1);
/// drop(p);
/// assert_eq!(POINTS.stats().pages, 0); // reserve 0: the page went back at once
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheConfig {
    page_limit: Option<usize>,
    reserve: usize,
}

impl CacheConfig {
    /// No page limit, and a reserve of [`DEFAULT_RESERVE`] empty slabs.
    pub const fn new() -> Self {
        Self {
            page_limit: None,
            reserve: DEFAULT_RESERVE,
        }
    }

    /// Caps the pages the cache may hold, for memory use known in advance.
    /// An allocation that would need one more page fails with
    /// [`AllocError::PageLimit`].
    pub const fn page_limit(mut self, pages: usize) -> Self {
        self.page_limit = Some(pages);
        self
    }

    /// Removes the page cap.
    pub const fn unlimited(mut self) -> Self {
        self.page_limit = None;
        self
    }

    /// How many empty slabs to keep instead of giving their pages back.
    pub const fn reserve(mut self, slabs: usize) -> Self {
        self.reserve = slabs;
        self
    }

    /// The page cap, if any.
    pub const fn get_page_limit(&self) -> Option<usize> {
        self.page_limit
    }

    /// The number of empty slabs kept.
    pub const fn get_reserve(&self) -> usize {
        self.reserve
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// A number that tells one cache's slabs from every other's, written in each
/// slab header; checked builds compare it on every free, which catches a
/// pointer freed into the wrong cache (or allocator) and a pointer into
/// memory that is no slab. Assigned on first use from a global counter, so a
/// cache can still be built by a `const fn`; the fronts own one each (all the
/// size classes of one `SlabAllocator` share theirs, so that a free with the
/// wrong class is reported as exactly that).
pub(crate) struct OwnerTag(AtomicU32);

impl OwnerTag {
    const_fn_unless_loom! {
        pub(crate) const fn new() -> Self {
            Self(AtomicU32::new(0))
        }
    }

    /// The tag: non-zero, and well spread so that stray memory rarely
    /// matches it.
    #[inline]
    pub(crate) fn get(&self) -> u32 {
        match self.0.load(Ordering::Relaxed) {
            0 => self.assign(),
            tag => tag,
        }
    }

    #[cold]
    fn assign(&self) -> u32 {
        static NEXT_ID: StaticAtomicU32 = StaticAtomicU32::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let fresh = (id.wrapping_mul(0x9E37_79B1) ^ 0x51AB_0B1E) | 1;
        // Relaxed is enough: the tag guards nothing but itself, and a thread
        // that loses the race takes the winner's value.
        match self
            .0
            .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh,
            Err(winner) => winner,
        }
    }
}

/// An intrusive, doubly linked list of slabs.
struct SlabList {
    head: Option<Slab>,
    len: usize,
}

impl SlabList {
    const fn new() -> Self {
        Self { head: None, len: 0 }
    }

    /// Puts `slab` at the front.
    ///
    /// # Safety
    ///
    /// `slab` is live, on no list, and the caller has exclusive access to it
    /// and to every slab on this list (the cache lock).
    unsafe fn push_front(&mut self, slab: Slab) {
        // SAFETY: `slab` is live and ours, per the caller.
        unsafe { slab.set_prev(None) };
        // SAFETY: as above.
        unsafe { slab.set_next(self.head) };
        if let Some(old_head) = self.head {
            // SAFETY: slabs on this list are live and ours.
            unsafe { old_head.set_prev(Some(slab)) };
        }
        self.head = Some(slab);
        self.len += 1;
    }

    /// Unlinks `slab`.
    ///
    /// # Safety
    ///
    /// `slab` is on this list, and the caller has exclusive access to every
    /// slab on it.
    unsafe fn remove(&mut self, slab: Slab) {
        // SAFETY: `slab` is on this list, so live and ours.
        let (prev, next) = unsafe { slab.links() };
        match prev {
            // SAFETY: neighbours on this list are live and ours.
            Some(prev) => unsafe { prev.set_next(next) },
            None => {
                debug_assert_eq!(self.head, Some(slab), "a slab without prev heads its list");
                self.head = next;
            }
        }
        if let Some(next) = next {
            // SAFETY: neighbours on this list are live and ours.
            unsafe { next.set_prev(prev) };
        }
        self.len -= 1;
    }
}

/// `ptr` rebuilt from its address with the provenance its slab page exposed
/// when it became a slab (cores built with `expose_pages`): it reaches the
/// header and the whole slot, whatever borrow the caller's pointer had.
#[inline]
pub(crate) fn with_exposed_page_provenance(ptr: NonNull<u8>) -> NonNull<u8> {
    let exposed = core::ptr::with_exposed_provenance_mut::<u8>(ptr.as_ptr().addr());
    NonNull::new(exposed).unwrap_or(ptr)
}

/// Why [`CacheCore::alloc`] handed out nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AllocFault {
    /// No memory: an error for the caller.
    Refused(AllocError),
    /// Checked builds found the slot about to be handed out written to while
    /// it was free: a bug to report (after the lock is released).
    Misuse(Misuse, NonNull<u8>),
}

/// What the pointer handed back to [`CacheCore::free`] may access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotReach {
    /// The whole page: the pointer the slab handed out, or one derived from it
    /// by pointer arithmetic (the typed front's handles, the raw front's
    /// `deallocate`). Strict provenance: the header is reached through it.
    Page,
    /// Only the object's first `n` bytes: a `Box` freed through
    /// `GlobalAlloc` narrows its pointer's borrow to the object, and reading
    /// the header through it would be undefined behaviour under Rust's
    /// aliasing rules. The header is reached through the provenance the page
    /// exposed when it became a slab (cores built with `expose_pages`).
    Object(usize),
}

/// The slabs of one object size. Not synchronised: the fronts wrap it in a
/// lock.
///
/// # Safety contract shared by the `unsafe fn`s below
///
/// `pages` is the same page allocator on every call for the life of the core,
/// and its page size is the geometry's. The core gives pages back to it, so a
/// different allocator would receive pages it never handed out.
pub(crate) struct CacheCore {
    geometry: SlabGeometry,
    /// Slabs with at least one free slot, empty ones included.
    available: SlabList,
    /// Slabs with every slot in use.
    full: SlabList,
    /// How many slabs on `available` have no slot in use.
    empty: usize,
    in_use: usize,
    config: CacheConfig,
    /// Whether page provenance is exposed, for frees with
    /// [`SlotReach::Object`].
    expose_pages: bool,
}

// SAFETY: the core's pointers lead only into pages it owns exclusively; moving
// the core moves that ownership, and every access goes through `&mut self`.
unsafe impl Send for CacheCore {}

impl CacheCore {
    /// A core with no slabs yet. With `expose_pages`, each new page's
    /// provenance is exposed, so that the raw front can rebuild a full
    /// pointer to it from an address.
    pub(crate) const fn new(
        geometry: SlabGeometry,
        config: CacheConfig,
        expose_pages: bool,
    ) -> Self {
        Self {
            geometry,
            available: SlabList::new(),
            full: SlabList::new(),
            empty: 0,
            in_use: 0,
            config,
            expose_pages,
        }
    }

    pub(crate) fn config(&self) -> CacheConfig {
        self.config
    }

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

    /// Pages held, one per slab.
    pub(crate) fn pages_held(&self) -> usize {
        self.available.len + self.full.len
    }

    /// Hands out one slot of `geometry.slot_size` bytes, aligned to the
    /// geometry's slot alignment.
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`].
    #[inline]
    pub(crate) unsafe fn alloc<P: PageAllocator + ?Sized>(
        &mut self,
        pages: &P,
        owner: &OwnerTag,
    ) -> Result<NonNull<u8>, AllocFault> {
        let slab = match self.available.head {
            Some(slab) => slab,
            None => {
                // SAFETY: forwarded from the caller.
                let slab = unsafe { self.grow(pages, owner.get()) }.map_err(AllocFault::Refused)?;
                // SAFETY: the slab is live, on no list, and ours.
                unsafe { self.available.push_front(slab) };
                self.empty += 1;
                slab
            }
        };
        // SAFETY: slabs on our lists are live and we hold `&mut self`.
        unsafe { slab.check_reuse(&self.geometry) }
            .map_err(|(misuse, slot)| AllocFault::Misuse(misuse, slot))?;
        // SAFETY: as above.
        let was_empty = unsafe { slab.in_use() } == 0;
        // SAFETY: as above.
        let Some(slot) = (unsafe { slab.pop_slot(&self.geometry) }) else {
            unreachable!("a slab on the available list has a free slot")
        };
        if was_empty {
            self.empty -= 1;
        }
        // SAFETY: as above.
        if unsafe { slab.in_use() } == self.geometry.capacity {
            // SAFETY: the slab is on `available`; exclusive access via `&mut self`.
            unsafe { self.available.remove(slab) };
            // SAFETY: now on no list.
            unsafe { self.full.push_front(slab) };
        }
        self.in_use += 1;
        Ok(slot)
    }

    /// Moves slots into `magazine` — a batch, or as many as it has room
    /// for — readied to rest there ([`magazine::park`]): one refill of a
    /// local cache under one lock. Stops early, successfully, when no page
    /// can be had after at least one slot was taken; so an empty magazine
    /// always gains at least one slot from an `Ok`.
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`].
    pub(crate) unsafe fn alloc_into<P: PageAllocator + ?Sized, N: ArrayLength>(
        &mut self,
        pages: &P,
        owner: &OwnerTag,
        magazine: &mut Magazine<N>,
    ) -> Result<(), AllocFault> {
        let count = Magazine::<N>::BATCH.min(N::USIZE - magazine.len());
        for taken in 0..count {
            // SAFETY: forwarded from the caller.
            let slot = match unsafe { self.alloc(pages, owner) } {
                Ok(slot) => slot,
                Err(AllocFault::Refused(_)) if taken > 0 => break,
                Err(fault) => return Err(fault),
            };
            // SAFETY: the slot was just handed out, to no one else.
            unsafe { magazine::park(slot, self.geometry.slot_size) };
            let pushed = magazine.push(slot);
            debug_assert!(pushed.is_ok(), "`count` is within the room left");
        }
        Ok(())
    }

    /// Gives up to `count` slots from the top of `magazine` back to their
    /// slabs, under one lock. Stops at the first misuse found (a slot written
    /// to while it rested, or not ours at all), which is returned with the
    /// slot; that slot is no longer in the magazine.
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`]; every slot in the magazine was
    /// parked there by this core's front, with this core's slot size.
    pub(crate) unsafe fn free_from<P: PageAllocator + ?Sized, N: ArrayLength>(
        &mut self,
        pages: &P,
        owner: &OwnerTag,
        magazine: &mut Magazine<N>,
        count: usize,
    ) -> Result<(), (Misuse, NonNull<u8>)> {
        // The slots belong to slabs all over the cache, whose headers are
        // seldom in cache: asking for all of them first lets their misses
        // overlap instead of following one another.
        for slot in magazine.top(count) {
            Slab::containing(slot, self.geometry.page_size).prefetch_header();
        }
        for _ in 0..count {
            let Some(slot) = magazine.pop() else { break };
            // SAFETY: parked by this core's front with its slot size.
            unsafe { magazine::unpark(slot, self.geometry.slot_size) }
                .map_err(|misuse| (misuse, slot))?;
            // SAFETY: forwarded from the caller; a parked slot was handed out
            // by this core and is used by no one, through a pointer that
            // reaches its page.
            unsafe { self.free(pages, owner, slot, SlotReach::Page) }
                .map_err(|misuse| (misuse, slot))?;
        }
        Ok(())
    }

    /// Returns `slot` to its slab.
    ///
    /// Checked builds first verify that `slot` is a handed-out slot of this
    /// cache and return the misuse otherwise, changing nothing.
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`], and `slot` was handed out by
    /// [`alloc`](Self::alloc) on this core and not freed since (no double
    /// free), and is not used after this call (no use after free).
    /// `reach` says what the caller's pointer may access; with
    /// [`SlotReach::Object`], the core must have been built with
    /// `expose_pages`.
    #[inline]
    pub(crate) unsafe fn free<P: PageAllocator + ?Sized>(
        &mut self,
        pages: &P,
        owner: &OwnerTag,
        slot: NonNull<u8>,
        reach: SlotReach,
    ) -> Result<(), Misuse> {
        let geometry = self.geometry;
        let (page_ptr, guarded) = match reach {
            SlotReach::Page => (slot, usize::MAX),
            SlotReach::Object(size) => {
                debug_assert!(self.expose_pages, "narrowed pointers need exposed pages");
                (with_exposed_page_provenance(slot), size)
            }
        };
        let slab = Slab::containing(page_ptr, geometry.page_size);
        // SAFETY: we hold `&mut self`; `slab` was computed from `slot`, which
        // the caller says is one of our slots (checked builds verify it).
        unsafe { slab.check_free(slot, &geometry, owner.get()) }?;
        // SAFETY: `slot` is ours, so `slab` is one of our live slabs.
        let was_full = unsafe { slab.in_use() } == geometry.capacity;
        // SAFETY: as above; `slot` is handed out and no longer used.
        unsafe { slab.push_slot(slot, &geometry, guarded) };
        self.in_use -= 1;

        // SAFETY: as above.
        let now_empty = unsafe { slab.in_use() } == 0;
        if now_empty && self.empty >= self.config.reserve {
            let list = if was_full {
                &mut self.full
            } else {
                &mut self.available
            };
            // SAFETY: the slab was on `full` iff it was full.
            unsafe { list.remove(slab) };
            // SAFETY: the slab is on no list and has no slot in use, so no
            // one uses its page; it came from `pages` (shared contract).
            unsafe { self.give_back(pages, slab) };
            return Ok(());
        }
        if was_full {
            // SAFETY: the slab is on `full`; exclusive access via `&mut self`.
            unsafe { self.full.remove(slab) };
            // SAFETY: on no list now.
            unsafe { self.available.push_front(slab) };
        }
        if now_empty {
            self.empty += 1;
        }
        Ok(())
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
    /// changes, never for an allocation or a free.
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`].
    unsafe fn release_empty<P: PageAllocator + ?Sized>(&mut self, pages: &P, keep: usize) -> usize {
        let mut released = 0;
        let mut cursor = self.available.head;
        while self.empty > keep {
            let Some(slab) = cursor else {
                debug_assert!(false, "{} empty slabs counted but not found", self.empty);
                break;
            };
            // SAFETY: slabs on our lists are live and we hold `&mut self`.
            let (_, next) = unsafe { slab.links() };
            cursor = next;
            // SAFETY: as above.
            if unsafe { slab.in_use() } == 0 {
                // SAFETY: the slab is on `available`.
                unsafe { self.available.remove(slab) };
                // SAFETY: an empty slab has no slot in use; the page came
                // from `pages` (shared contract).
                unsafe { self.give_back(pages, slab) };
                self.empty -= 1;
                released += 1;
            }
        }
        released
    }

    /// Shows `visit` each slab's slots, used or free: the slabs with free
    /// slots first (most recently used first), then the full ones.
    pub(crate) fn for_each_slab(&mut self, mut visit: impl FnMut(SlabOccupancy<'_>)) {
        let geometry = self.geometry;
        for list in [&self.available, &self.full] {
            let mut cursor = list.head;
            while let Some(slab) = cursor {
                // SAFETY: slabs on our lists are live, and `&mut self` is
                // exclusive access to them for the whole visit.
                let (_, next) = unsafe { slab.links() };
                // SAFETY: as above; the slice lives only for this call of
                // `visit`, within the exclusive access.
                let used = unsafe { slab.occupancy(&geometry) };
                visit(SlabOccupancy {
                    page: slab.page().as_ptr().addr(),
                    slot_size: geometry.slot_size,
                    first_slot: geometry.first_slot,
                    capacity: geometry.capacity,
                    used,
                });
                cursor = next;
            }
        }
    }

    /// Returns an empty slab's page to `pages`.
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`]; `slab` is on no list, has no
    /// slot in use, and is never used again.
    unsafe fn give_back<P: PageAllocator + ?Sized>(&self, pages: &P, slab: Slab) {
        // Whoever gets the page next may touch all of it.
        poison::allow(slab.page(), self.geometry.page_size);
        // SAFETY: the caller's guarantees: the page came from `pages` and no
        // one uses it any more.
        unsafe { pages.deallocate_page(slab.page()) };
    }

    /// Counters for `stats()`.
    pub(crate) fn stats(&self, name: &'static str) -> CacheStats {
        let g = &self.geometry;
        let pages = self.pages_held();
        CacheStats {
            name,
            object_size: g.slot_size,
            objects_per_slab: g.capacity,
            page_size: g.page_size,
            objects_in_use: self.in_use,
            free_slots: pages * g.capacity - self.in_use,
            full_slabs: self.full.len,
            partial_slabs: self.available.len - self.empty,
            empty_slabs: self.empty,
            pages,
            header_bytes: pages * g.first_slot,
        }
    }

    /// A fresh slab on a new page, or the reason there is none.
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`].
    #[cold]
    unsafe fn grow<P: PageAllocator + ?Sized>(
        &mut self,
        pages: &P,
        owner: u32,
    ) -> Result<Slab, AllocError> {
        debug_assert_eq!(page_size_of::<P>(), self.geometry.page_size);
        if let Some(limit) = self.config.page_limit
            && self.pages_held() >= limit
        {
            return Err(AllocError::PageLimit { limit });
        }
        let page = pages.allocate_page()?;
        let page_size = self.geometry.page_size;
        if page.as_ptr().addr() & (page_size - 1) != 0 {
            // SAFETY: the page came from `pages` a moment ago and is unused.
            unsafe { pages.deallocate_page(page) };
            return Err(AllocError::MisalignedPage {
                addr: page.as_ptr().addr(),
                page_size,
            });
        }
        if self.expose_pages {
            let _ = page.as_ptr().expose_provenance();
        }
        // SAFETY: the page allocator's contract: `page_size` bytes, ours until
        // given back; aligned, as just checked.
        Ok(unsafe { Slab::init(page, &self.geometry, owner) })
    }
}

impl fmt::Debug for CacheCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheCore")
            .field("geometry", &self.geometry)
            .field("in_use", &self.in_use)
            .field("full", &self.full.len)
            .field("available", &self.available.len)
            .field("empty", &self.empty)
            .field("config", &self.config)
            .finish()
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use crate::page_allocator::GlobalPages;
    use crate::slab::SlabGeometry;
    use std::vec::Vec;

    /// A core plus the page source it must always be given, with safe calls.
    struct Harness {
        core: CacheCore,
        pages: GlobalPages,
        owner: OwnerTag,
    }

    impl Harness {
        fn new(size: usize, config: CacheConfig) -> Self {
            let geometry = SlabGeometry::new(4096, size, 8).unwrap();
            Self {
                core: CacheCore::new(geometry, config, false),
                pages: GlobalPages::new(),
                owner: OwnerTag::new(),
            }
        }

        fn alloc(&mut self) -> Result<NonNull<u8>, AllocError> {
            // SAFETY: `self.pages` is the only page source this core sees.
            match unsafe { self.core.alloc(&self.pages, &self.owner) } {
                Ok(slot) => Ok(slot),
                Err(AllocFault::Refused(error)) => Err(error),
                Err(AllocFault::Misuse(misuse, slot)) => misuse.report(slot),
            }
        }

        /// Callers pass only slots from `alloc` not yet freed.
        fn free(&mut self, slot: NonNull<u8>) {
            // SAFETY: as for `alloc`; the slot is handed out (callers' promise).
            unsafe {
                self.core
                    .free(&self.pages, &self.owner, slot, SlotReach::Page)
            }
            .unwrap()
        }

        fn shrink(&mut self) -> usize {
            // SAFETY: as for `alloc`.
            unsafe { self.core.shrink(&self.pages) }
        }

        fn lists(&self) -> (usize, usize, usize) {
            let s = self.core.stats("test");
            (s.full_slabs, s.partial_slabs, s.empty_slabs)
        }
    }

    impl Drop for Harness {
        fn drop(&mut self) {
            self.shrink();
        }
    }

    #[test]
    fn slabs_move_between_lists_as_they_fill_and_empty() {
        let mut h = Harness::new(64, CacheConfig::new());
        let per_slab = 63;
        let first: Vec<_> = (0..per_slab).map(|_| h.alloc().unwrap()).collect();
        assert_eq!(h.lists(), (1, 0, 0), "one full slab");
        let extra = h.alloc().unwrap();
        assert_eq!(h.lists(), (1, 1, 0), "growth by one slab");
        h.free(first[0]);
        assert_eq!(h.lists(), (0, 2, 0), "full -> partial on the first free");
        h.free(extra);
        assert_eq!(h.lists(), (0, 1, 1), "the last free empties a slab");
        for &slot in &first[1..] {
            h.free(slot);
        }
        assert_eq!(h.lists(), (0, 0, 2));
        assert_eq!(h.core.stats("test").objects_in_use, 0);
    }

    #[test]
    fn empty_slabs_beyond_the_reserve_are_given_back() {
        let mut h = Harness::new(2048, CacheConfig::new().reserve(1));
        // One object per slab, so every free empties a slab.
        let slots: Vec<_> = (0..5).map(|_| h.alloc().unwrap()).collect();
        assert_eq!(h.core.pages_held(), 5);
        for slot in slots {
            h.free(slot);
        }
        assert_eq!(h.core.pages_held(), 1, "only the reserve is kept");
        assert_eq!(h.shrink(), 1, "shrink gives back the reserve too");
        assert_eq!(h.core.pages_held(), 0);
    }

    #[test]
    fn the_reserve_is_reused_before_new_pages() {
        let mut h = Harness::new(2048, CacheConfig::new());
        let a = h.alloc().unwrap();
        h.free(a);
        assert_eq!(h.lists(), (0, 0, 1));
        let b = h.alloc().unwrap();
        assert_eq!(a, b, "the empty slab's slot comes back");
        assert_eq!(h.core.pages_held(), 1);
        h.free(b);
    }

    #[test]
    fn shrink_and_a_lower_reserve_find_empty_slabs_among_partial_ones() {
        let mut h = Harness::new(1024, CacheConfig::new().reserve(3));
        assert_eq!(h.core.geometry.capacity, 3);
        let slots: Vec<_> = (0..9).map(|_| h.alloc().unwrap()).collect();
        assert_eq!(h.lists(), (3, 0, 0));
        // Empty the first and last slab, leave the middle one partial.
        for &i in &[0, 1, 2, 6, 7, 8, 4] {
            h.free(slots[i]);
        }
        assert_eq!(h.lists(), (0, 1, 2));
        // SAFETY: `h.pages` is the core's page source.
        unsafe { h.core.set_config(&h.pages, CacheConfig::new().reserve(1)) };
        assert_eq!(h.lists(), (0, 1, 1), "a lower reserve gives back at once");
        assert_eq!(h.shrink(), 1);
        assert_eq!(h.lists(), (0, 1, 0));
        h.free(slots[3]);
        h.free(slots[5]);
        assert_eq!(
            h.lists(),
            (0, 0, 1),
            "the reserve of one keeps the last slab"
        );
    }

    #[test]
    fn the_page_limit_stops_growth_with_an_error() {
        let mut h = Harness::new(2048, CacheConfig::new().page_limit(2));
        let a = h.alloc().unwrap();
        let b = h.alloc().unwrap();
        assert_eq!(h.alloc(), Err(AllocError::PageLimit { limit: 2 }));
        h.free(a);
        let c = h
            .alloc()
            .expect("a freed slot is usable again under the cap");
        h.free(b);
        h.free(c);
    }

    #[test]
    fn stats_balance() {
        let mut h = Harness::new(24, CacheConfig::new());
        let slots: Vec<_> = (0..1000).map(|_| h.alloc().unwrap()).collect();
        let s = h.core.stats("t");
        assert_eq!(s.objects_in_use, 1000);
        assert_eq!(
            s.objects_in_use + s.free_slots,
            s.pages * s.objects_per_slab
        );
        let first_slot = h.core.geometry.first_slot;
        assert!(
            first_slot <= 64,
            "header (and checked bitmap) within 64 bytes"
        );
        assert_eq!(s.header_bytes, s.pages * first_slot);
        for slot in slots {
            h.free(slot);
        }
        let s = h.core.stats("t");
        assert_eq!((s.objects_in_use, s.empty_slabs), (0, DEFAULT_RESERVE));
    }
}
