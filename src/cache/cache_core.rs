//! All the slabs of one slot size, and the policy that grows and shrinks
//! them: the cache core, not synchronised (see `cache_set` for the lock).
//! How a slot goes back to its slab is in `free`; when pages go back, and
//! the hysteresis that keeps a burst's pages for the next burst, in
//! `release`; where new slabs come from, in `grow`.

use core::fmt;
use core::ptr::NonNull;

use super::{CacheConfig, StoredConfig};
use crate::checked::{CHECKED, Misuse, OwnerTag};
use crate::error::AllocError;
use crate::intrusive::List;
use crate::page_allocator::PageAllocator;
use crate::slab::{Slab, SlabGeometry};
use crate::stats::{CacheStats, SlabOccupancy};

mod decay;
mod free;
mod grow;
mod kept;
mod release;
#[cfg(feature = "std")]
mod unlocked;

use decay::Decay;

/// `ptr` rebuilt from its address with the provenance its slab page exposed
/// when it became a slab (cores built with `expose_pages`): it reaches the
/// header and the whole slot, whatever borrow the caller's pointer had.
#[inline]
pub(crate) fn with_exposed_page_provenance(ptr: NonNull<u8>) -> NonNull<u8> {
    let exposed = core::ptr::with_exposed_provenance_mut::<u8>(ptr.as_ptr().addr());
    NonNull::new(exposed).unwrap_or(ptr)
}

/// Why an allocation handed out nothing.
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

impl SlotReach {
    /// `slot` with the page's provenance (rebuilt from the exposed one for
    /// [`Object`](Self::Object)), and how many of its first bytes only
    /// `slot` itself may write (`usize::MAX`: all of them; see
    /// `Slab::push_slot`).
    #[inline]
    pub(crate) fn resolve(self, slot: NonNull<u8>) -> (NonNull<u8>, usize) {
        match self {
            Self::Page => (slot, usize::MAX),
            Self::Object(size) => (with_exposed_page_provenance(slot), size),
        }
    }
}

/// The slabs of one slot size. Not synchronised: `CacheSet` wraps it in a
/// lock.
///
/// # Safety contract shared by the `unsafe fn`s below
///
/// `pages` is the same page source on every call for the life of the core,
/// and its page size is the geometry's. The core gives pages back to it, so a
/// different allocator would receive pages it never handed out. Likewise the
/// `geometry` a method takes is the same on every call, *the core's
/// geometry*: the core stores none (its set does, or knows it at compile
/// time), and a slab cut to one geometry read with another would hand out
/// slots that overlap.
pub(crate) struct CacheCore {
    /// Slabs with at least one free slot, empty ones included: a slab is on
    /// `available` iff it has a free slot and is not on `retained`.
    available: List<Slab>,
    /// Slabs with every slot in use.
    full: List<Slab>,
    /// Empty slabs kept beyond the reserve for the recent peak (see
    /// `release`): taken again before any new page.
    retained: List<Slab>,
    /// How many slabs on `available` have no slot in use.
    empty: usize,
    /// Slots ever taken back (wrapping): the decay's clock. Under a page
    /// source that keeps its pages, the fast paths keep neither this count
    /// nor `empty`, and the cold paths recount `empty` first (see `kept`).
    /// The slots in use are counted by no one but their slabs: `stats`
    /// adds them up ([`in_use`](Self::in_use)), so that an allocation
    /// keeps no count of the core's (a store less on its path, and on a
    /// firmware's, an update fewer to link).
    freed: usize,
    /// The recent peak of slabs in use, and the clock of frees that makes
    /// it decay.
    decay: Decay,
    config: StoredConfig,
    /// Whether page provenance is exposed, for frees with
    /// [`SlotReach::Object`].
    expose_pages: bool,
    /// The address new slabs record for the front (see
    /// [`rehome`](Self::rehome)); 0 until a front asks.
    #[cfg(feature = "std")]
    home: usize,
}

// SAFETY: the core's pointers lead only into pages it owns exclusively; moving
// the core moves that ownership, and every access goes through `&mut self`.
unsafe impl Send for CacheCore {}

impl CacheCore {
    /// A core with no slabs yet. With `expose_pages`, each new page's
    /// provenance is exposed, so that the raw front can rebuild a full
    /// pointer to it from an address.
    ///
    /// The core keeps no geometry: its set passes it to every method that
    /// needs it (a typed cache's is a constant of its type, which so costs
    /// the core no field to store and no load to read). Under the default
    /// configuration, without `expose_pages`, the core is all zeros (see
    /// `StoredConfig`), so a `static` cache needs no initialised data.
    pub(crate) const fn new(config: CacheConfig, expose_pages: bool) -> Self {
        Self {
            available: List::new(),
            full: List::new(),
            retained: List::new(),
            empty: 0,
            freed: 0,
            decay: Decay::new(&config),
            config: StoredConfig::of(&config),
            expose_pages,
            #[cfg(feature = "std")]
            home: 0,
        }
    }

    /// Records `home` in every slab of this core, and in every slab it makes
    /// from now on (the typed front's address, which its one-word handles
    /// read in their slab's header). Walks every slab: for a front's first
    /// handle, and its first after it moved.
    #[cfg(feature = "std")]
    pub(crate) fn rehome(&mut self, home: usize) {
        self.home = home;
        // SAFETY: `each_slab` hands out only live slabs of ours.
        self.each_slab(|slab| unsafe { slab.set_home(home) });
    }

    /// Runs `visit` on every slab: those with free slots (most recently
    /// used first), the empty ones kept for the recent peak, the full ones.
    /// `visit` must not move a slab between lists; `&mut self` is exclusive
    /// access to every slab for the whole walk.
    fn each_slab(&mut self, mut visit: impl FnMut(Slab)) {
        for list in [&self.available, &self.retained, &self.full] {
            let mut cursor = list.head();
            while let Some(slab) = cursor {
                // SAFETY: slabs on our lists are live, and `&mut self` is
                // exclusive access to them.
                cursor = unsafe { list.next_of(slab) };
                visit(slab);
            }
        }
    }

    pub(crate) fn config(&self) -> CacheConfig {
        self.config.get()
    }

    /// Pages held, one per slab.
    pub(crate) fn pages_held(&self) -> usize {
        self.available.len() + self.full.len() + self.retained.len()
    }

    /// Slots in use: those of the full slabs, and of the slabs with a free
    /// slot (retained ones have none in use). Walks `available`: for
    /// `stats`, never for an allocation or a free. `geometry` is the
    /// core's.
    fn in_use(&mut self, geometry: &SlabGeometry) -> usize {
        let mut in_use = self.full.len() * geometry.slots_per_slab;
        let mut cursor = self.available.head();
        while let Some(slab) = cursor {
            // SAFETY: slabs on our lists are live, and `&mut self` is
            // exclusive access to them.
            cursor = unsafe { self.available.next_of(slab) };
            // SAFETY: as above.
            in_use += unsafe { slab.in_use() };
        }
        in_use
    }

    /// Slabs with at least one slot in use.
    #[inline]
    fn busy(&self) -> usize {
        self.full.len() + self.available.len() - self.empty
    }

    /// Hands out one slot of `geometry.slot_size` bytes, aligned to the
    /// geometry's slot alignment. A front that knows the geometry at
    /// compile time (the typed one) lets the slot arithmetic fold to
    /// constants. With `home`, the
    /// slot's slab records it (`Slab::set_home`) before the slot is handed
    /// out: the typed front's address, for its one-word handles, written
    /// here under the lock where the slab is at hand (a store to the header
    /// the allocation writes anyway), instead of found again from the slot
    /// and compared after it (about 16 bytes of a firmware's allocation).
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`].
    #[inline]
    pub(crate) unsafe fn alloc<P: PageAllocator + ?Sized>(
        &mut self,
        pages: &P,
        owner: &OwnerTag,
        geometry: &SlabGeometry,
        home: Option<usize>,
    ) -> Result<NonNull<u8>, AllocFault> {
        let slab = match self.available.head() {
            Some(slab) => slab,
            // SAFETY: forwarded from the caller; `available` has no slab.
            None => unsafe { self.refill(pages, owner, geometry) }.map_err(AllocFault::Refused)?,
        };
        let mut slot = [NonNull::dangling()];
        // SAFETY: `slab` is on `available`, live, and ours; `geometry` is
        // the core's.
        unsafe { self.take_from(slab, &mut slot, true, geometry, P::KEEP_PAGES) }?;
        if let Some(home) = home {
            // SAFETY: the slab is live and ours (it just handed out a slot).
            unsafe { slab.set_home(home) };
        }
        Ok(slot[0])
    }

    /// Fills `out` with slots, as many as it holds, and returns how many:
    /// the batch API that a per-thread front's magazine calls, one lock for
    /// the lot. At least one on `Ok`. The slots go to a magazine, in no
    /// user's hands (checked builds leave their bits clear: see
    /// `slab::checks`); the front notes the one it hands to its caller.
    ///
    /// It asks the page source for a page only while it has taken nothing:
    /// a batch that runs out of room stops short instead. So a page source
    /// that fails, or panics, never costs the slots already taken.
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`].
    pub(crate) unsafe fn alloc_batch<P: PageAllocator + ?Sized>(
        &mut self,
        pages: &P,
        owner: &OwnerTag,
        geometry: &SlabGeometry,
        out: &mut [NonNull<u8>],
    ) -> Result<usize, AllocFault> {
        let mut taken = 0;
        while taken < out.len() {
            let slab = match self.available.head() {
                Some(slab) => slab,
                // Like a new page, a retained slab is taken only while the
                // batch holds nothing: a batch that took kept slabs it does
                // not need would put them in use, into the peak that keeps
                // them (a magazine's refill, slab after slab of one-slot
                // slabs, kept the burst's pages for ever).
                None if taken > 0 => break,
                None => {
                    // SAFETY: forwarded from the caller; `available` has no
                    // slab; the geometry is the core's.
                    unsafe { self.refill(pages, owner, geometry) }.map_err(AllocFault::Refused)?
                }
            };
            // SAFETY: `slab` is on `available`, live, and ours; the geometry
            // is the core's.
            match unsafe { self.take_from(slab, &mut out[taken..], false, geometry, P::KEEP_PAGES) }
            {
                Ok(count) => taken += count,
                // Slots already taken stay with the caller, who reports the
                // misuse: return them first.
                Err(fault) if taken == 0 => return Err(fault),
                Err(_) => break,
            }
        }
        Ok(taken)
    }

    /// Hands out up to `out.len()` slots of `slab` (at least one), which is
    /// on `available`, with one update of the cache's books: a refill takes
    /// its batch from one slab in a loop of pops. Checked builds take one
    /// slot, after checking it (`check_reuse` looks at the slot handed out
    /// next). With `held`, the slots go straight into a user's hands, and
    /// checked builds note it in the bitmap. Returns how many. With `keep`
    /// (the page source's `KEEP_PAGES`), the core's counts are left alone.
    ///
    /// # Safety
    ///
    /// `slab` is on `available`; `&mut self` is exclusive access to it;
    /// `out` is not empty; `geometry` is the core's; `keep` is the page
    /// source's `KEEP_PAGES`.
    #[inline]
    unsafe fn take_from(
        &mut self,
        slab: Slab,
        out: &mut [NonNull<u8>],
        held: bool,
        geometry: &SlabGeometry,
        keep: bool,
    ) -> Result<usize, AllocFault> {
        // SAFETY: slabs on our lists are live and we hold `&mut self`.
        unsafe { slab.check_reuse(geometry) }
            .map_err(|(misuse, slot)| AllocFault::Misuse(misuse, slot))?;
        let out = if CHECKED { &mut out[..1] } else { out };
        // SAFETY: as above.
        let was_empty = unsafe { slab.in_use() } == 0;
        // SAFETY: as above; a slab is on `available` only while it has a
        // free slot (kept here and in `put_slot`).
        let count = unsafe { slab.pop_slots(geometry, out) };
        if CHECKED && held {
            for &slot in &out[..count] {
                // SAFETY: just handed out by this live slab of ours.
                unsafe { slab.set_held(slot, geometry) };
            }
        }
        if keep {
            // No count kept: the cold paths recount (see `kept`).
        } else if cfg!(feature = "std") {
            if was_empty {
                self.empty -= 1;
            }
        } else {
            // No branch: shorter, for a firmware (std builds keep theirs).
            self.empty -= usize::from(was_empty);
        }
        // SAFETY: as above.
        if unsafe { slab.in_use() } == geometry.slots_per_slab {
            // SAFETY: the slab is on `available`; exclusive access via `&mut self`.
            unsafe { self.available.remove(slab) };
            // SAFETY: now on no list.
            unsafe { self.full.push_front(slab) };
        }
        Ok(count)
    }

    /// Shows `visit` each slab's slots, used or free: the slabs with free
    /// slots first (most recently used first), then the empty ones kept for
    /// the recent peak, then the full ones.
    pub(crate) fn for_each_slab(
        &mut self,
        geometry: &SlabGeometry,
        mut visit: impl FnMut(SlabOccupancy<'_>),
    ) {
        self.each_slab(|slab| {
            // SAFETY: `each_slab` hands out live slabs under exclusive
            // access; the slice lives only for this call of `visit`.
            let used = unsafe { slab.occupancy(geometry) };
            visit(SlabOccupancy {
                page: slab.page().as_ptr().addr(),
                slot_size: geometry.slot_size,
                first_slot: geometry.first_slot,
                slots: geometry.slots_per_slab,
                used,
            });
        });
    }

    /// Counters for `stats()`; `keep` is the page source's `KEEP_PAGES`.
    pub(crate) fn stats(
        &mut self,
        name: &'static str,
        geometry: &SlabGeometry,
        keep: bool,
    ) -> CacheStats {
        self.recount(keep);
        CacheStats::of_slabs(
            name,
            geometry,
            self.in_use(geometry),
            [
                self.full.len(),
                self.available.len() - self.empty,
                self.empty + self.retained.len(),
            ],
        )
    }
}

/// The counts as they stand: under a page source that keeps its pages,
/// those of the last recount.
impl fmt::Debug for CacheCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheCore")
            .field("freed", &self.freed)
            .field("full", &self.full.len())
            .field("available", &self.available.len())
            .field("empty", &self.empty)
            .field("retained", &self.retained.len())
            .field("decay", &self.decay)
            .field("config", &self.config)
            .finish()
    }
}
