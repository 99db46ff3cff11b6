//! The locked core both fronts share: one cache core per slot size, each
//! behind its own lock, one page source, one owner tag.

use core::mem::MaybeUninit;
use core::ptr::NonNull;

use generic_array::{ArrayLength, GenericArray};

use super::CacheConfig;
use super::cache_core::{AllocFault, CacheCore, SlotReach};
#[cfg(feature = "std")]
use super::depot::Depot;
use crate::checked::{Misuse, OwnerTag, Report};
use crate::error::AllocError;
use crate::page_allocator::PageAllocator;
use crate::slab::{Slab, SlabGeometry};
use crate::stats::{CacheStats, SlabOccupancy};
use crate::sync::{Mutex, const_fn_unless_loom};

pub(crate) use shapes::{PowersOfTwo, Shapes};

#[cfg(feature = "std")]
mod grow;
#[cfg(not(feature = "std"))]
mod shaped;
mod shapes;
#[cfg(feature = "std")]
mod stash;

/// The smallest size class, in bytes.
pub(crate) const MIN_CLASS: usize = 8;

/// The slot size of size class number `class` (0 for [`MIN_CLASS`]).
#[inline]
pub(crate) const fn class_size(class: usize) -> usize {
    MIN_CLASS << class
}

/// One cache of a set: its core, behind its lock.
struct Class {
    core: Mutex<CacheCore>,
    /// Whole batches of resting slots between magazines (see `depot`):
    /// its own lock, so a hand-off between threads never waits on the
    /// slabs.
    #[cfg(feature = "std")]
    depot: Depot,
    /// Held by the one thread that makes a new page into a slab for `core`
    /// with `core`'s lock let go (see `grow`): another refill that needs a
    /// page waits here for that slab rather than ask the page source too.
    #[cfg(feature = "std")]
    grow: Mutex<()>,
}

/// `C` cache cores (a typed cache has one, a size-class allocator one per
/// class) sharing one page source `P` and one owner tag. Every operation
/// runs *lock → core operation → unlock → report*: a misuse that checked
/// builds find is reported only once the lock is released, through the
/// caller's [`Report`] (a panic for the fronts' own methods, an abort for
/// `GlobalAlloc`), so that the report — which may allocate — never meets
/// our own lock.
///
/// The set owns its pages: it gives every empty one back when dropped, and
/// `shrink` gives back the empty ones of every cache, then lets the page
/// source trim.
pub(crate) struct CacheSet<P: PageAllocator, C: ArrayLength, S: Shapes> {
    classes: GenericArray<Class, C>,
    /// The caches' geometries, readable without a lock.
    shapes: S,
    pages: P,
    owner: OwnerTag,
}

impl<P: PageAllocator, C: ArrayLength, S: Shapes> CacheSet<P, C, S> {
    const_fn_unless_loom! {
        /// A set of empty caches of the geometries `shapes` gives, each
        /// configured by `config`.
        pub(crate) const fn new(pages: P, config: CacheConfig, shapes: S) -> Self {
            let mut classes = GenericArray::<Class, C>::uninit();
            let slots = classes.as_mut_slice();
            let mut i = 0;
            while i < slots.len() {
                slots[i] = MaybeUninit::new(Class {
                    core: Mutex::new(CacheCore::new(config, S::EXPOSE_PAGES)),
                    #[cfg(feature = "std")]
                    depot: Depot::new(),
                    #[cfg(feature = "std")]
                    grow: Mutex::new(()),
                });
                i += 1;
            }
            Self {
                // SAFETY: the loop initialised every element.
                classes: unsafe { GenericArray::assume_init(classes) },
                shapes,
                pages,
                owner: OwnerTag::new(),
            }
        }
    }

    /// The page source.
    pub(crate) fn pages(&self) -> &P {
        &self.pages
    }

    /// The geometry of cache `class`: a constant for a typed cache.
    #[inline(always)]
    pub(crate) fn geometry(&self, class: usize) -> SlabGeometry {
        self.shapes.geometry(class)
    }

    /// One slot of cache `class`.
    #[inline]
    pub(crate) fn alloc(&self, class: usize, report: Report) -> Result<NonNull<u8>, AllocError> {
        let outcome = {
            let mut core = self.classes[class].core.lock();
            // SAFETY: `self.pages` is the only page source any core of the set
            // sees.
            unsafe { core.alloc(&self.pages, &self.owner, &self.geometry(class), None) }
        };
        refused_or_reported(outcome, report)
    }

    /// Fills `out` with slots of cache `class` under one lock, for a
    /// magazine; returns how many (at least one). They are in no user's
    /// hands: the front notes the one it hands out
    /// ([`note_handed_out`](Self::note_handed_out)), and gives back any it
    /// cannot keep with [`free_batch`](Self::free_batch).
    #[inline(never)]
    pub(crate) fn alloc_batch(
        &self,
        class: usize,
        out: &mut [NonNull<u8>],
        report: Report,
    ) -> Result<usize, AllocError> {
        let outcome = {
            let mut core = self.classes[class].core.lock();
            #[cfg(feature = "std")]
            if core.wants_new_page::<P>() {
                // The new page is made into a slab with the lock let go
                // (see `grow`).
                drop(core);
                if let Err(error) = self.grow_unlocked(class) {
                    return refused_or_reported(Err(AllocFault::Refused(error)), report);
                }
                core = self.classes[class].core.lock();
            }
            // SAFETY: as in `alloc`.
            unsafe { core.alloc_batch(&self.pages, &self.owner, &self.geometry(class), out) }
        };
        refused_or_reported(outcome, report)
    }

    /// Returns `slot` to cache `class`.
    ///
    /// # Safety
    ///
    /// `slot` was handed out by cache `class` of this set and not freed
    /// since (no double free), and is not used after this call (no use
    /// after free); `reach` is true of it. Checked builds verify the first
    /// part and report a misuse through `report`.
    #[inline]
    pub(crate) unsafe fn free(
        &self,
        class: usize,
        slot: NonNull<u8>,
        reach: SlotReach,
        report: Report,
    ) {
        let outcome = {
            let mut core = self.classes[class].core.lock();
            // SAFETY: the caller's guarantees; `self.pages` is the only page
            // source any core of the set sees, and size-class cores (the
            // only ones freed with `SlotReach::Object`) expose their pages.
            unsafe { core.free(&self.pages, &self.owner, slot, reach, &self.geometry(class)) }
        };
        // Reported once the lock is released.
        if let Err(misuse) = outcome {
            report(misuse, slot);
        }
    }

    /// Returns every slot of `slots`, slots resting in a magazine (or taken
    /// for one by [`alloc_batch`](Self::alloc_batch)), to cache `class`
    /// under one lock. With `release`, slabs emptied beyond the reserve give
    /// their pages back; without, they stay listed as empty until
    /// [`trim`](Self::trim).
    ///
    /// # Safety
    ///
    /// As for [`free`](Self::free), for each slot, through pointers that
    /// reach the whole page, except that the slots are in no user's hands:
    /// a magazine's (or an orphan list's), each freed into it once.
    #[inline(never)]
    pub(crate) unsafe fn free_batch(
        &self,
        class: usize,
        slots: &[NonNull<u8>],
        report: Report,
        release: bool,
    ) {
        let outcome = {
            let mut core = self.classes[class].core.lock();
            // SAFETY: the caller's guarantees; as in `free`.
            unsafe {
                core.free_batch(
                    &self.pages,
                    &self.owner,
                    &self.geometry(class),
                    slots,
                    release,
                )
            }
        };
        if let Err((misuse, slot)) = outcome {
            report(misuse, slot);
        }
    }

    /// Checks, without any lock, that `ptr` is a slot of cache `class` of
    /// this set (checked builds; see `Slab::check_owner`).
    ///
    /// # Safety
    ///
    /// As for `Slab::check_owner`: `ptr` points into readable memory.
    pub(crate) unsafe fn check_owner(&self, class: usize, ptr: NonNull<u8>) -> Result<(), Misuse> {
        let geometry = self.geometry(class);
        let slab = Slab::containing(ptr, geometry.page_size);
        // SAFETY: the caller's guarantees.
        unsafe { slab.check_owner(ptr, &geometry, self.owner.get()) }
    }

    /// Checked builds: notes, without any lock, that `slot`, a slot of cache
    /// `class` in no user's hands (a magazine's, or just taken for one),
    /// is now in one: a magazine hands it out. Nothing in other builds.
    ///
    /// # Safety
    ///
    /// `slot` is a slot of cache `class` of this set that no user holds and
    /// that the caller now hands to one (so its slab is live).
    #[inline]
    pub(crate) unsafe fn note_handed_out(&self, class: usize, slot: NonNull<u8>) {
        if !crate::checked::CHECKED {
            return;
        }
        let geometry = self.geometry(class);
        let slab = Slab::containing(slot, geometry.page_size);
        // SAFETY: the caller's guarantees.
        unsafe { slab.set_held(slot, &geometry) };
    }

    /// Checked builds: notes, without any lock, that `slot`, freed into a
    /// magazine of cache `class`, is in no user's hands any more; returns
    /// the misuse, changing nothing, if no user held it: a double free —
    /// wherever the first free went, another magazine or the slab — or a
    /// slot the cache never handed out (named under the lock, on this cold
    /// path). Always `Ok` in other builds.
    ///
    /// # Safety
    ///
    /// `slot` passed [`check_owner`](Self::check_owner) for `class`, and
    /// points into readable memory (a slot whose slab went back to its page
    /// source is beyond checking, as for `Slab::check_slot`).
    #[inline]
    pub(crate) unsafe fn note_freed(&self, class: usize, slot: NonNull<u8>) -> Result<(), Misuse> {
        if !crate::checked::CHECKED {
            return Ok(());
        }
        let geometry = self.geometry(class);
        let slab = Slab::containing(slot, geometry.page_size);
        // SAFETY: a slot boundary of one of our slabs, as `check_owner`
        // found; live, or beyond checking (the caller's terms).
        if unsafe { slab.clear_held(slot, &geometry) } {
            return Ok(());
        }
        // SAFETY: the caller's guarantee: readable memory.
        Err(unsafe { self.diagnose(class, slot) }.unwrap_or(Misuse::DoubleFree))
    }

    /// What its slab can tell, under the lock, about `slot`, a pointer to
    /// cache `class` that a lock-free check found something wrong with
    /// (checked builds; `None` otherwise): another cache's slot, another
    /// size class's, no slot start, or a slot never handed out. `None` if
    /// it is a slot its slab handed out: the lock-free check's finding
    /// stands (a double free, a write after free in a magazine).
    ///
    /// # Safety
    ///
    /// As for `Slab::check_slot`: `slot` points into readable memory.
    pub(crate) unsafe fn diagnose(&self, class: usize, slot: NonNull<u8>) -> Option<Misuse> {
        if !crate::checked::CHECKED {
            return None;
        }
        let geometry = self.geometry(class);
        let _exclusive = self.classes[class].core.lock();
        let slab = Slab::containing(slot, geometry.page_size);
        // SAFETY: the caller's guarantees; the lock gives the exclusive
        // access `check_slot` needs.
        unsafe { slab.check_slot(slot, &geometry, self.owner.get()) }.err()
    }

    /// Gives back the page of every empty slab of every cache, the reserves
    /// included, and returns how many; then lets the page source give back
    /// what it keeps ([`PageAllocator::trim`]).
    pub(crate) fn shrink(&self) -> usize {
        let mut released = 0;
        for (index, class) in self.classes.iter().enumerate() {
            // The depot's slots first: they may be all that keeps a slab.
            #[cfg(feature = "std")]
            self.empty_depot(index, false);
            let mut core = class.core.lock();
            // SAFETY: `self.pages` is the only page source any core sees.
            released += unsafe { core.shrink(&self.pages, &self.geometry(index)) };
        }
        self.pages.trim();
        released
    }

    /// Gives back every page of every cache, slots in use or not, and lets
    /// the page source trim: for a set going away.
    ///
    /// # Safety
    ///
    /// No one reads or writes any slot of this set again (no use after
    /// free), and the set is dropped next.
    pub(crate) unsafe fn give_back_every_page(&mut self) {
        for class in self.classes.iter_mut() {
            // The depot's slots are in those pages: forgotten, never read.
            #[cfg(feature = "std")]
            class.depot.forget_all();
            // SAFETY: `self.pages` is the only page source any core sees; the
            // caller's guarantee covers every slot.
            unsafe { class.core.get_mut().give_back_every_page(&self.pages) };
        }
        self.pages.trim();
    }

    /// Gives back the empty slabs of cache `class` beyond its reserve.
    pub(crate) fn trim(&self, class: usize) {
        let mut core = self.classes[class].core.lock();
        let reserve = core.config().reserve;
        // SAFETY: `self.pages` is the only page source any core sees.
        unsafe { core.release_empty(&self.pages, reserve) };
    }

    /// The configuration of cache `class`.
    pub(crate) fn config(&self, class: usize) -> CacheConfig {
        self.classes[class].core.lock().config()
    }

    /// Applies `config` to every cache of the set.
    pub(crate) fn set_config(&self, config: CacheConfig) {
        for (index, class) in self.classes.iter().enumerate() {
            let mut core = class.core.lock();
            // SAFETY: `self.pages` is the only page source any core sees.
            unsafe { core.set_config(&self.pages, &self.geometry(index), config) };
        }
    }

    /// The counters of cache `class`, named `name`.
    pub(crate) fn stats(&self, class: usize, name: &'static str) -> CacheStats {
        let geometry = self.geometry(class);
        #[allow(unused_mut)] // only the depot changes it
        let mut stats = self.classes[class]
            .core
            .lock()
            .stats(name, &geometry, P::KEEP_PAGES);
        #[cfg(feature = "std")]
        stats.add_depot(self.classes[class].depot.slots());
        stats
    }

    /// The counters of cache `class`, or `None` if its lock is held (for
    /// `Debug`, which must never wait).
    pub(crate) fn try_stats(&self, class: usize, name: &'static str) -> Option<CacheStats> {
        let geometry = self.geometry(class);
        let class = &self.classes[class];
        #[allow(unused_mut)] // only the depot changes it
        let mut stats = class.core.try_lock()?.stats(name, &geometry, P::KEEP_PAGES);
        #[cfg(feature = "std")]
        stats.add_depot(class.depot.try_slots()?);
        Some(stats)
    }

    /// Shows `visit` every slab of every cache, with the cache's index, each
    /// cache under its lock.
    pub(crate) fn for_each_slab(&self, mut visit: impl FnMut(usize, SlabOccupancy<'_>)) {
        for (i, class) in self.classes.iter().enumerate() {
            let geometry = self.geometry(i);
            class
                .core
                .lock()
                .for_each_slab(&geometry, |slab| visit(i, slab));
        }
    }

    /// Records `home` in every slab of every cache of the set, now and from
    /// now on (see `CacheCore::rehome`), unless a lock is held (by another
    /// thread, or by this one in a call-out such as a page source's): then
    /// returns `false`, having recorded it in some caches or none.
    #[cfg(feature = "std")]
    #[cold]
    pub(crate) fn try_rehome(&self, home: usize) -> bool {
        self.classes
            .iter()
            .all(|class| match class.core.try_lock() {
                Some(mut core) => {
                    core.rehome(home);
                    true
                }
                None => false,
            })
    }
}

/// The address the front recorded with [`record_home`] in the slab that
/// holds `slot`, read without a lock.
///
/// # Safety
///
/// `slot` points into a live slab of pages of `page_size` bytes (a slot
/// handed out and not yet returned: its slab cannot go away).
#[inline]
pub(crate) unsafe fn home_of(slot: NonNull<u8>, page_size: usize) -> usize {
    // SAFETY: the caller's guarantee: `slot` is in a live slab.
    let slab = unsafe { Slab::containing_live(slot, page_size) };
    // SAFETY: as above.
    unsafe { slab.home() }
}

/// Records `home` in the slab that holds `slot`, unless it is there
/// already (a read; the write is for a first handle or a moved front, so
/// the header's line is not written at every call). No lock.
///
/// # Safety
///
/// As for [`home_of`].
#[inline]
pub(crate) unsafe fn record_home(slot: NonNull<u8>, page_size: usize, home: usize) {
    // SAFETY: the caller's guarantee: `slot` is in a live slab.
    let slab = unsafe { Slab::containing_live(slot, page_size) };
    // SAFETY: as above.
    if unsafe { slab.home() } != home {
        // SAFETY: as above.
        unsafe { slab.set_home(home) };
    }
}

/// The caller's error for a refusal; a misuse reported through `report`.
#[inline]
fn refused_or_reported<T>(outcome: Result<T, AllocFault>, report: Report) -> Result<T, AllocError> {
    match outcome {
        Ok(value) => Ok(value),
        Err(AllocFault::Refused(error)) => Err(error),
        Err(AllocFault::Misuse(misuse, slot)) => report(misuse, slot),
    }
}

impl<P: PageAllocator, C: ArrayLength, S: Shapes> Drop for CacheSet<P, C, S> {
    fn drop(&mut self) {
        // Memory still handed out keeps its pages: with safe code nothing is
        // (handles borrow their cache), so it was leaked on purpose
        // (`SlabBox::leak`, `into_raw`, a forgotten `Pin`, a `Box` of a
        // global allocator), and, as with `Box::leak`, leaked memory is
        // never reused. Empty slabs go back.
        #[cfg(feature = "std")]
        for class in 0..C::USIZE {
            self.empty_depot(class, false);
        }
        for index in 0..C::USIZE {
            let geometry = self.geometry(index);
            // SAFETY: `self.pages` is the only page source any core sees, and
            // empty slabs hold nothing anyone uses.
            unsafe {
                self.classes[index]
                    .core
                    .get_mut()
                    .shrink(&self.pages, &geometry)
            };
        }
        self.pages.trim();
    }
}
