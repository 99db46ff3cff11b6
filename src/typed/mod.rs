//! The typed front: a pool of `T`s with compile-time geometry.
//!
//! A [`SlabCache<T, P>`] is one cache core whose slot size and slots per page
//! are associated `const`s of the type, computed when the program is
//! compiled; a `T` that cannot fit a page is a compile error, not a runtime
//! failure. Each cache owns its own slabs rather than sharing the size
//! classes of [`SlabAllocator`](crate::SlabAllocator): its slots are `T`'s
//! size rounded up to its alignment and to a pointer (a 24-byte `T` takes
//! 24 bytes, not the 32 of a size class; a 4-byte one takes 8), a busy type
//! never fragments another's pages, and the cache can be capped, shrunk and
//! counted on its own.
//!
//! The cache hands out [`SlabBox`] handles that borrow it, so in safe code no
//! handle outlives its cache; dropping a handle drops the value and returns
//! the slot.
//! A handle is one pointer: it finds its cache in its slab's header
//! (`home` says how, and why the address there is exposed).
//!
//! # The files
//!
//! The cache (this file) knows nothing of its handle; the handle's file,
//! `slab_box`, holds [`SlabBox`] and the methods that make one
//! ([`SlabCache::alloc`] and its kin), so the two never import each other.
//! Structurally a typed cache is a one-class allocator: a [`CacheSet`] of one
//! core, which holds the lock, the page source and the misuse report.

use core::alloc::Layout;
use core::fmt;
use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::ptr::NonNull;

use typenum::U1;

use crate::cache::{CacheConfig, CacheSet, Shapes, SlotReach};
use crate::error::AllocError;
use crate::page_allocator::{DefaultPages, PageAllocator, page_size_of};
use crate::slab::{GeometryError, SlabGeometry};
use crate::stats::{CacheStats, SlabOccupancy};
#[cfg(feature = "std")]
use crate::sync::AtomicUsize;
use crate::sync::const_fn_unless_loom;
#[cfg(feature = "std")]
use crate::thread_cache::{OwnLines, ThreadCache};

mod home;
mod slab_box;

pub use slab_box::SlabBox;

/// A thread-safe pool of `T` values in slabs of `P::PageSize` bytes.
///
/// ```
/// use minimal_slab::SlabCache;
///
/// #[derive(Debug, PartialEq)]
/// struct Particle { pos: [f32; 3], vel: [f32; 3] }
///
/// static PARTICLES: SlabCache<Particle> = SlabCache::new();
///
/// let p = PARTICLES.alloc(Particle { pos: [0.0; 3], vel: [1.0; 3] }).unwrap();
/// assert_eq!(p.vel, [1.0; 3]);
/// assert_eq!(SlabCache::<Particle>::SLOT_SIZE, 24);
/// assert_eq!(PARTICLES.stats().objects_in_use, 1);
/// drop(p); // the slot goes back: to this thread's cache (`std`), else the slab
/// assert_eq!(PARTICLES.stats().objects_in_use, 0);
/// ```
///
/// # Threads
///
/// With the `std` feature (on by default) each thread that uses a cache
/// keeps a few of its free slots (up to 64) in a thread-local table: `alloc`
/// and a handle's drop take no lock and no atomic read-modify-write (checked
/// builds add one, which catches a double free) unless that thread's
/// magazine is empty or full, when half of it comes from or
/// goes back to the slabs under the cache's lock. Handles may be stored
/// anywhere and dropped on any thread. Slots resting in threads' caches are
/// counted in [`CacheStats::cached_slots`]; they go back when their thread
/// exits, when it calls [`shrink`](Self::shrink) or
/// [`flush_thread_cache`](Self::flush_thread_cache), or as its magazine
/// fills. Dropping the cache gives back every page, even while other threads
/// still cache its slots (they never touch them again). Without `std`, use
/// an explicit front per thread or core: [`local`](Self::local).
///
/// A type too large for a page is rejected when the program is compiled:
///
/// ```compile_fail,E0080
/// use minimal_slab::SlabCache;
/// static HUGE: SlabCache<[u8; 8192]> = SlabCache::new(); // 4 KiB pages
/// ```
///
/// while the same type on bigger pages is fine:
///
/// ```
/// use minimal_slab::{GlobalPages, SlabCache, typenum::U16384};
/// static HUGE: SlabCache<[u8; 8192], GlobalPages<U16384>> = SlabCache::new_in(GlobalPages::with_page_size());
/// assert_eq!(SlabCache::<[u8; 8192], GlobalPages<U16384>>::SLOTS_PER_SLAB, 1);
/// ```
// `C` layout, fields in this order: the set first, so that the cache's
// address is the set's and a free, which finds the cache in its slab's
// header, needs no offset to reach it (an instruction a pair, once the
// read-mostly fields took the first place, 128-byte aligned as they are).
#[repr(C)]
pub struct SlabCache<T, P: PageAllocator = DefaultPages> {
    set: CacheSet<P, U1, One<T, P>>,
    /// What every allocation and free reads, away from what other threads
    /// write (the lock and counters in `set`).
    #[cfg(feature = "std")]
    hot: OwnLines<ReadMostly>,
    /// The cache stores `T`s; `*const` keeps the auto traits off so the
    /// impls below can state the real conditions.
    _objects: PhantomData<*const T>,
}

/// A typed cache's fields that its allocations and frees read and seldom
/// write (feature `std`).
#[cfg(feature = "std")]
struct ReadMostly {
    /// This cache's entries in the threads' tables.
    thread: ThreadCache,
    /// The address this cache last recorded in all its slabs, for its
    /// one-word handles (see `home`); 0 before the first.
    home: AtomicUsize,
}

impl<T, P: PageAllocator> SlabCache<T, P> {
    const IS_ZST: bool = size_of::<T>() == 0;

    /// The slab geometry for `T`; evaluating it rejects a `T` that does not fit.
    const GEOMETRY: SlabGeometry = {
        let (size, align) = if Self::IS_ZST {
            (1, 1) // never used: zero-sized values take no slot
        } else {
            (size_of::<T>(), align_of::<T>())
        };
        match SlabGeometry::new(page_size_of::<P>(), size, align) {
            Ok(geometry) => geometry,
            Err(GeometryError::AlignTooLarge) => panic!(
                "SlabCache<T>: the alignment of T exceeds the page size; use a page source with bigger pages"
            ),
            Err(GeometryError::TooLarge) => panic!(
                "SlabCache<T>: T is too large: not one T fits in a page after the slab header; \
                 use a page source with bigger pages"
            ),
        }
    };

    /// Bytes per slot: `size_of::<T>()` rounded up to its alignment and to
    /// at least a pointer (a free slot holds the free-list link). 0 for a
    /// zero-sized `T`, which takes no slot.
    ///
    /// ```
    /// use minimal_slab::SlabCache;
    /// assert_eq!(SlabCache::<[u8; 61]>::SLOT_SIZE, 64); // rounded to a pointer
    /// assert_eq!(SlabCache::<u32>::SLOT_SIZE, 8); // a slot holds at least a link
    /// assert_eq!(SlabCache::<[u64; 3]>::SLOT_SIZE, 24);
    /// ```
    pub const SLOT_SIZE: usize = if Self::IS_ZST {
        0
    } else {
        Self::GEOMETRY.slot_size
    };

    /// Slots in one slab (one page, less the header). 0 for a zero-sized
    /// `T`, which never needs a slab.
    pub const SLOTS_PER_SLAB: usize = if Self::IS_ZST {
        0
    } else {
        Self::GEOMETRY.slots_per_slab
    };

    /// The slot size, under its former name.
    #[deprecated(
        since = "0.1.1",
        note = "renamed `SLOT_SIZE`: it is the slot's size, not the object's"
    )]
    pub const OBJECT_SIZE: usize = Self::SLOT_SIZE;

    /// The slots per slab, under their former name.
    #[deprecated(since = "0.1.1", note = "renamed `SLOTS_PER_SLAB`")]
    pub const OBJECTS_PER_SLAB: usize = Self::SLOTS_PER_SLAB;

    const_fn_unless_loom! {
        /// An empty cache taking pages from `pages`. No page is taken until the
        /// first allocation.
        pub const fn new_in(pages: P) -> Self {
            Self::with_config(pages, CacheConfig::new())
        }
    }

    const_fn_unless_loom! {
        /// An empty cache taking pages from `pages`, grown and shrunk as `config`
        /// says.
        pub const fn with_config(pages: P, config: CacheConfig) -> Self {
            // The cache stores no geometry, but its type must have one: a
            // `T` that does not fit a page is rejected here, when the
            // program is compiled.
            let _: SlabGeometry = Self::GEOMETRY;
            Self {
                set: CacheSet::new(pages, config, One(PhantomData)),
                #[cfg(feature = "std")]
                hot: OwnLines(ReadMostly {
                    thread: ThreadCache::new(),
                    home: AtomicUsize::new(0),
                }),
                _objects: PhantomData,
            }
        }
    }

    /// Gives back the page of every empty slab, the reserve included, and
    /// returns how many were given back; then lets the page source give back
    /// what it keeps in reserve ([`PageAllocator::trim`]). With `std`, the
    /// slots the calling thread caches go back to their slabs first (other
    /// threads' stay theirs until they call `shrink`, fill or overflow their
    /// cache, or exit).
    pub fn shrink(&self) -> usize {
        #[cfg(feature = "std")]
        if !Self::IS_ZST {
            self.hot
                .thread
                .flush_current(&self.set, 0, Self::SLOT_SIZE, false);
        }
        self.set.shrink()
    }

    /// Gives the free slots that the calling thread caches for this cache
    /// back to their slabs (feature `std`; without it there are no
    /// per-thread caches, and this does nothing); slabs they empty beyond
    /// the reserve give their pages back. Other threads' cached slots stay
    /// theirs; the slots kept in the cache's depot (whole batches that
    /// per-thread caches gave back, [`CacheStats::depot_slots`]) go back to
    /// their slabs too. Useful before reading exact counts (`stats`, `for_each_slab`),
    /// or at the end of a worker thread that will not use the cache again
    /// (a thread that exits gives its slots back anyway).
    ///
    /// ```
    /// use minimal_slab::SlabCache;
    ///
    /// let cache: SlabCache<u64> = SlabCache::new();
    /// drop(cache.alloc(1).unwrap());
    /// # #[cfg(feature = "std")]
    /// assert!(cache.stats().cached_slots > 0); // resting in this thread's cache
    /// cache.flush_thread_cache();
    /// assert_eq!(cache.stats().cached_slots, 0);
    /// ```
    pub fn flush_thread_cache(&self) {
        #[cfg(feature = "std")]
        if !Self::IS_ZST {
            self.hot
                .thread
                .flush_current(&self.set, 0, Self::SLOT_SIZE, true);
        }
    }

    /// A snapshot of the cache's counters. With `std`, free slots resting
    /// in per-thread caches are counted in
    /// [`cached_slots`](CacheStats::cached_slots), not in `objects_in_use`;
    /// those that exited threads gave up go back to their slabs first.
    pub fn stats(&self) -> CacheStats {
        #[cfg(feature = "std")]
        if !Self::IS_ZST {
            self.hot.thread.take_back_orphans(&self.set);
        }
        self.counting_cached(self.set.stats(0, core::any::type_name::<T>()))
    }

    /// `stats` of the slabs, with the slots resting in threads' caches
    /// counted as cached rather than in use.
    #[allow(unused_mut)] // only the per-thread caches change it
    fn counting_cached(&self, mut stats: CacheStats) -> CacheStats {
        // A zero-sized `T` takes no slot: say so, as the consts do.
        if Self::IS_ZST {
            return stats.without_slots();
        }
        #[cfg(feature = "std")]
        stats.add_cached(self.hot.thread.cached(0));
        stats
    }

    /// Shows `visit` every slab of the cache: which slots are used and
    /// which free (see [`SlabOccupancy`]); free slots resting in per-thread
    /// caches are used, as far as their slabs know. Slabs with free slots come first,
    /// most recently used first, then the full ones.
    ///
    /// `visit` runs with the cache locked, so it must not use this cache
    /// (that would spin forever); anything else, printing included, is fine.
    ///
    /// ```
    /// use minimal_slab::SlabCache;
    ///
    /// let cache: SlabCache<u64> = SlabCache::new();
    /// let objects: Vec<_> = (0..600).map(|i| cache.alloc(i).unwrap()).collect();
    /// cache.flush_thread_cache(); // slots this thread caches count as used
    /// let mut used = 0;
    /// cache.for_each_slab(|slab| used += slab.in_use());
    /// assert_eq!(used, 600);
    /// # drop(objects);
    /// ```
    pub fn for_each_slab(&self, mut visit: impl FnMut(SlabOccupancy<'_>)) {
        self.set.for_each_slab(|_, slab| visit(slab));
    }

    /// The current growth and reserve settings.
    pub fn config(&self) -> CacheConfig {
        self.set.config(0)
    }

    /// Changes the growth and reserve settings. A lower reserve gives back
    /// the empty slabs beyond it at once; a lower page limit takes effect on
    /// the next growth (nothing in use is touched).
    pub fn set_config(&self, config: CacheConfig) {
        self.set.set_config(config);
    }

    /// The page source this cache takes its pages from.
    pub fn page_allocator(&self) -> &P {
        self.set.pages()
    }

    /// The layout of one slot.
    pub const fn slot_layout() -> Layout {
        match Layout::from_size_align(Self::SLOT_SIZE, align_of::<T>()) {
            Ok(layout) => layout,
            Err(_) => panic!("a slot layout is always valid"),
        }
    }

    /// The set of one cache core behind this cache, for the local front.
    pub(crate) fn set(&self) -> &CacheSet<P, U1, One<T, P>> {
        &self.set
    }

    /// A slot for one `T`, uninitialised. Zero-sized `T`s get a dangling,
    /// aligned pointer and touch nothing. Without per-thread caches, the
    /// slot's slab records this cache's address, exposed, under the lock
    /// (what [`settle`](Self::settle) does, for `SlabBox::from_allocated`).
    #[inline]
    pub(crate) fn allocate_slot(&self) -> Result<NonNull<T>, AllocError> {
        if Self::IS_ZST {
            return Ok(NonNull::dangling());
        }
        #[cfg(feature = "std")]
        let slot = self.hot.thread.take(&self.set, 0, Self::SLOT_SIZE);
        #[cfg(not(feature = "std"))]
        let slot = self.set.alloc_shaped(
            0,
            core::ptr::from_ref(self).expose_provenance(),
            crate::checked::Misuse::report,
        );
        slot.map(NonNull::cast)
    }

    /// Returns `slot` to the cache. The value in it must already be dropped
    /// or moved out.
    ///
    /// # Safety
    ///
    /// `slot` came from this cache and has not been returned since (no
    /// double free); no one uses it after this call (no use after free).
    /// It is the pointer the cache handed out, or one derived from it by
    /// pointer arithmetic, reaching the whole slot. Checked builds verify
    /// the first part and panic, naming the misuse, when it does not hold.
    #[inline]
    pub(crate) unsafe fn free_slot(&self, slot: NonNull<T>) {
        if Self::IS_ZST {
            return;
        }
        #[cfg(feature = "std")]
        // SAFETY: the caller's guarantees; a handle's pointer is the one its
        // slab gave it: it reaches the whole page.
        unsafe {
            self.hot
                .thread
                .give(&self.set, 0, Self::SLOT_SIZE, slot.cast(), SlotReach::Page)
        }
        #[cfg(not(feature = "std"))]
        // SAFETY: as above.
        unsafe {
            self.set.free(
                0,
                slot.cast(),
                SlotReach::Page,
                crate::checked::Misuse::report,
            )
        }
    }
}

/// The shape of a typed cache's one cache: `SlabCache::<T, P>::GEOMETRY`,
/// a constant, so that the set stores none (see `Shapes`). Zero-sized,
/// and covariant in `T` and `P`, as the cache is.
pub(crate) struct One<T, P>(PhantomData<fn() -> (T, P)>);

impl<T, P: PageAllocator> Shapes for One<T, P> {
    const EXPOSE_PAGES: bool = false;

    #[inline(always)]
    fn geometry(&self, _class: usize) -> SlabGeometry {
        SlabCache::<T, P>::GEOMETRY
    }
}

impl<T, P: PageAllocator> Drop for SlabCache<T, P> {
    fn drop(&mut self) {
        if Self::IS_ZST {
            return;
        }
        // The slots this thread caches go back, and no thread's table will
        // touch this cache's slots again (see `thread_cache`).
        #[cfg(feature = "std")]
        self.hot.thread.retire(&self.set);
        // Every page goes back, those with slots in use included: handles
        // borrow the cache, so none is left, and a slot still counted in use
        // is unreachable — leaked on purpose (`SlabBox::leak` lends it for
        // the cache's lifetime at most, `into_raw`'s pointer is valid only
        // while the cache lives), or resting in another thread's cache, which
        // will never touch it (its ticket is retired). So a cache used from
        // scoped threads, whose thread-local destructors may run after the
        // scope ends, still gives everything back.
        // SAFETY: as just said, no one uses any slot of this cache again.
        unsafe { self.set.give_back_every_page() };
    }
}

#[cfg(feature = "alloc")]
impl<T> SlabCache<T, crate::page_allocator::ChunkedGlobalPages> {
    const_fn_unless_loom! {
        /// An empty cache taking 4 KiB pages from the global allocator, in
        /// chunks of 256 KiB ([`ChunkedGlobalPages`](crate::page_allocator::ChunkedGlobalPages)).
        /// `const`, so a cache can be a `static`.
        pub const fn new() -> Self {
            Self::new_in(crate::page_allocator::ChunkedGlobalPages::global())
        }
    }
}

#[cfg(feature = "alloc")]
impl<T> Default for SlabCache<T, crate::page_allocator::ChunkedGlobalPages> {
    fn default() -> Self {
        Self::new()
    }
}

/// Returns a slot to its cache when dropped — also while unwinding, which is
/// what it is for: a value whose construction (`alloc_with`) or destructor
/// (`SlabBox::drop`) panics still gives its slot back.
pub(crate) struct SlotGuard<'a, T, P: PageAllocator> {
    cache: &'a SlabCache<T, P>,
    slot: NonNull<T>,
}

impl<'a, T, P: PageAllocator> SlotGuard<'a, T, P> {
    /// Arms a guard for `slot`.
    ///
    /// # Safety
    ///
    /// As for [`SlabCache::free_slot`], by the time the guard drops: `slot`
    /// came from `cache` and is freed by no one else, its value is gone by
    /// then (never written, moved out, or dropped), and no one uses the
    /// slot afterwards.
    pub(crate) unsafe fn new(cache: &'a SlabCache<T, P>, slot: NonNull<T>) -> Self {
        Self { cache, slot }
    }
}

impl<T, P: PageAllocator> Drop for SlotGuard<'_, T, P> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the contract of `SlotGuard::new`.
        unsafe { self.cache.free_slot(self.slot) }
    }
}

impl<T, P: PageAllocator> fmt::Debug for SlabCache<T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("SlabCache");
        out.field("type", &core::any::type_name::<T>());
        // `try_stats`, not `stats`: a panic hook may print the cache while
        // this thread holds its lock (in a page source that panicked).
        match self.set.try_stats(0, core::any::type_name::<T>()) {
            Some(stats) => out.field("stats", &self.counting_cached(stats)),
            None => out.field("stats", &"<locked>"),
        };
        out.finish_non_exhaustive()
    }
}

// The cache holds no `T` of its own, only memory for them; values move in
// and out by handles, which need `T: Send` to cross threads.
// SAFETY: sending the cache sends its pages (owned) and its source (`P: Send`).
unsafe impl<T: Send, P: PageAllocator + Send> Send for SlabCache<T, P> {}

// `T: Send` because a value allocated on one thread may be dropped, and its
// slot returned, on another.
// SAFETY: shared access to the slabs goes through the core's lock, and the
// page source is shared only as `&P` (`P: Sync`).
unsafe impl<T: Send, P: PageAllocator + Sync> Sync for SlabCache<T, P> {}
