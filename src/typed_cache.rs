//! The typed front: a pool of `T`s with compile-time geometry.
//!
//! A [`SlabCache<T, P>`] is one cache core whose slot size and slots per page
//! are associated `const`s of the type, computed when the program is
//! compiled; a `T` that cannot fit a page is a compile error, not a runtime
//! failure. Each cache owns its own slabs rather than sharing the size
//! classes of [`SlabAllocator`](crate::SlabAllocator): its slots are exactly
//! as big as `T` (a 24-byte `T` costs 24 bytes, not 32), a busy type never
//! fragments another's pages, and the cache can be capped, shrunk and counted
//! on its own.
//!
//! The cache hands out [`SlabBox`] handles that borrow it, so in safe code no
//! handle outlives its cache; dropping a handle drops the value and returns
//! the slot.

use core::alloc::Layout;
use core::fmt;
use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::pin::Pin;
use core::ptr::NonNull;

use generic_array::ArrayLength;

use crate::error::{AllocError, AllocFailed};
use crate::magazine::Magazine;
use crate::misuse::Misuse;
use crate::page_allocator::{DefaultPages, PageAllocator, page_size_of};
use crate::slab::{GeometryError, SlabGeometry};
use crate::slab_box::SlabBox;
use crate::slab_cache::{AllocFault, CacheConfig, CacheCore, OwnerTag, SlotReach};
use crate::stats::{CacheStats, SlabOccupancy};
use crate::sync::{Mutex, const_fn_unless_loom};

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
/// assert_eq!(SlabCache::<Particle>::OBJECT_SIZE, 24);
/// assert_eq!(PARTICLES.stats().objects_in_use, 1);
/// drop(p); // the slot goes back to the free list
/// assert_eq!(PARTICLES.stats().objects_in_use, 0);
/// ```
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
/// assert_eq!(SlabCache::<[u8; 8192], GlobalPages<U16384>>::OBJECTS_PER_SLAB, 1);
/// ```
pub struct SlabCache<T, P: PageAllocator = DefaultPages> {
    core: Mutex<CacheCore>,
    pages: P,
    owner: OwnerTag,
    /// The cache stores `T`s; `*const` keeps the auto traits off so the
    /// impls below can state the real conditions.
    _objects: PhantomData<*const T>,
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
                "SlabCache<T>: the alignment of T exceeds the page size; use a page allocator with bigger pages"
            ),
            Err(GeometryError::TooLarge) => panic!(
                "SlabCache<T>: T is too large: not one T fits in a page after the slab header; \
                 use a page allocator with bigger pages"
            ),
        }
    };

    /// Bytes per slot: `size_of::<T>()` rounded up to its alignment and to at
    /// least a pointer (a free slot holds the free-list link). 0 for a
    /// zero-sized `T`, which takes no slot.
    pub const OBJECT_SIZE: usize = if Self::IS_ZST {
        0
    } else {
        Self::GEOMETRY.slot_size
    };

    /// Slots in one slab (one page, less the header). 0 for a zero-sized `T`,
    /// which never needs a slab.
    pub const OBJECTS_PER_SLAB: usize = if Self::IS_ZST {
        0
    } else {
        Self::GEOMETRY.capacity
    };

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
            Self {
                core: Mutex::new(CacheCore::new(Self::GEOMETRY, config, false)),
                pages,
                owner: OwnerTag::new(),
                _objects: PhantomData,
            }
        }
    }

    /// Moves `value` into a slot and returns its handle; on failure, the
    /// error carries `value` back.
    ///
    /// ```
    /// use minimal_slab::SlabCache;
    ///
    /// let names: SlabCache<String> = SlabCache::new();
    /// let mut name = names.alloc(String::from("slab")).unwrap();
    /// name.push_str("-allocated");
    /// assert_eq!(*name, "slab-allocated");
    /// ```
    pub fn alloc(&self, value: T) -> Result<SlabBox<'_, T, P>, AllocFailed<T>> {
        match self.allocate_slot() {
            Ok(slot) => {
                // SAFETY: the slot is fresh, sized and aligned for `T`.
                unsafe { slot.write(value) };
                // SAFETY: the slot came from this cache and now holds a `T`.
                Ok(unsafe { SlabBox::from_raw(self, slot) })
            }
            Err(error) => Err(AllocFailed::new(value, error)),
        }
    }

    /// Builds the value in its slot: `make` runs only once a slot is secured,
    /// and a large `T` need not pass through the stack first.
    ///
    /// If `make` panics, the slot is returned and the panic goes on.
    ///
    /// ```
    /// use minimal_slab::SlabCache;
    ///
    /// let buffers: SlabCache<[u8; 2048]> = SlabCache::new();
    /// let buf = buffers.alloc_with(|| [0xAB; 2048]).unwrap();
    /// assert!(buf.iter().all(|&b| b == 0xAB));
    /// ```
    pub fn alloc_with(&self, make: impl FnOnce() -> T) -> Result<SlabBox<'_, T, P>, AllocError> {
        let slot = self.allocate_slot()?;
        // SAFETY: the slot is fresh from this cache; if `make` panics, it
        // holds no value when the guard drops.
        let guard = unsafe { SlotGuard::new(self, slot) };
        let value = make();
        core::mem::forget(guard);
        // SAFETY: the slot is fresh, sized and aligned for `T`.
        unsafe { slot.write(value) };
        // SAFETY: the slot came from this cache and now holds a `T`.
        Ok(unsafe { SlabBox::from_raw(self, slot) })
    }

    /// Like [`alloc`](Self::alloc), pinned: the value never moves again.
    /// For `static` caches (see [`SlabBox::into_pin`] for why).
    pub fn pin(&'static self, value: T) -> Result<Pin<SlabBox<'static, T, P>>, AllocFailed<T>> {
        self.alloc(value).map(SlabBox::into_pin)
    }

    /// Gives back the page of every empty slab, the reserve included, and
    /// returns how many were given back; then lets the page source give back
    /// what it keeps in reserve ([`PageAllocator::trim`]).
    pub fn shrink(&self) -> usize {
        let released = {
            let mut core = self.core.lock();
            // SAFETY: `self.pages` is the only page allocator this core sees.
            unsafe { core.shrink(&self.pages) }
        };
        self.pages.trim();
        released
    }

    /// A snapshot of the cache's counters.
    pub fn stats(&self) -> CacheStats {
        let mut stats = self.core.lock().stats(core::any::type_name::<T>());
        // A zero-sized `T` takes no slot: say so, as the consts do.
        stats.object_size = Self::OBJECT_SIZE;
        stats.objects_per_slab = Self::OBJECTS_PER_SLAB;
        stats
    }

    /// Shows `visit` every slab of the cache: which slots are used and
    /// which free (see [`SlabOccupancy`]). Slabs with free slots come first,
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
    /// let mut used = 0;
    /// cache.for_each_slab(|slab| used += slab.in_use());
    /// assert_eq!(used, 600);
    /// # drop(objects);
    /// ```
    pub fn for_each_slab(&self, visit: impl FnMut(SlabOccupancy<'_>)) {
        self.core.lock().for_each_slab(visit);
    }

    /// The current growth and reserve settings.
    pub fn config(&self) -> CacheConfig {
        self.core.lock().config()
    }

    /// Changes the growth and reserve settings. A lower reserve gives back
    /// the empty slabs beyond it at once; a lower page limit takes effect on
    /// the next growth (nothing in use is touched).
    pub fn set_config(&self, config: CacheConfig) {
        let mut core = self.core.lock();
        // SAFETY: `self.pages` is the only page allocator this core sees.
        unsafe { core.set_config(&self.pages, config) };
    }

    /// The page allocator this cache takes its pages from.
    pub fn page_allocator(&self) -> &P {
        &self.pages
    }

    /// The layout of one slot.
    pub const fn slot_layout() -> Layout {
        match Layout::from_size_align(Self::OBJECT_SIZE, align_of::<T>()) {
            Ok(layout) => layout,
            Err(_) => panic!("a slot layout is always valid"),
        }
    }

    /// A slot for one `T`, uninitialised. Zero-sized `T`s get a dangling,
    /// aligned pointer and touch nothing.
    pub(crate) fn allocate_slot(&self) -> Result<NonNull<T>, AllocError> {
        if Self::IS_ZST {
            return Ok(NonNull::dangling());
        }
        let outcome = {
            let mut core = self.core.lock();
            // SAFETY: `self.pages` is the only page allocator this core sees.
            unsafe { core.alloc(&self.pages, &self.owner) }
        };
        // A misuse is reported after the lock is released.
        match outcome {
            Ok(slot) => Ok(slot.cast()),
            Err(AllocFault::Refused(error)) => Err(error),
            Err(AllocFault::Misuse(misuse, slot)) => misuse.report(slot),
        }
    }

    /// Refills `magazine` with up to a batch of slots, under one lock. A
    /// misuse found on the way is returned, for the caller to report once
    /// it no longer borrows the magazine.
    #[cold]
    #[inline(never)]
    pub(crate) fn refill<N: ArrayLength>(
        &self,
        magazine: &mut Magazine<N>,
    ) -> Result<(), AllocFault> {
        let mut core = self.core.lock();
        // SAFETY: `self.pages` is the only page allocator this core sees.
        unsafe { core.alloc_into(&self.pages, &self.owner, magazine) }
    }

    /// Gives up to `count` slots from the top of `magazine` back, under one
    /// lock. A misuse found on the way is returned with the slot, for the
    /// caller to report once it no longer borrows the magazine.
    ///
    /// # Safety
    ///
    /// Every slot in the magazine was parked there (`magazine::park`) after
    /// this cache handed it out, and no one uses it.
    #[cold]
    #[inline(never)]
    pub(crate) unsafe fn drain<N: ArrayLength>(
        &self,
        magazine: &mut Magazine<N>,
        count: usize,
    ) -> Result<(), (Misuse, NonNull<u8>)> {
        let mut core = self.core.lock();
        // SAFETY: the caller's guarantees; `self.pages` is the only page
        // allocator this core sees.
        unsafe { core.free_from(&self.pages, &self.owner, magazine, count) }
    }

    /// Returns `slot` to the cache. The value in it must already be dropped
    /// or moved out.
    ///
    /// # Safety
    ///
    /// `slot` came from `allocate_slot` on this cache and has not been
    /// returned since (no double free); no one uses it after this call (no
    /// use after free). Checked builds verify the first part and panic,
    /// naming the misuse, when it does not hold.
    pub(crate) unsafe fn free_slot(&self, slot: NonNull<T>) {
        if Self::IS_ZST {
            return;
        }
        let slot = slot.cast::<u8>();
        let outcome: Result<(), Misuse> = {
            let mut core = self.core.lock();
            // SAFETY: the caller's guarantees, and `self.pages` is the only
            // page allocator this core sees. A handle's pointer is the one its
            // slab gave it: it reaches the whole slot.
            unsafe { core.free(&self.pages, &self.owner, slot, SlotReach::Page) }
        };
        // Reported after the lock is released.
        if let Err(misuse) = outcome {
            misuse.report(slot);
        }
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
    /// `slot` came from `allocate_slot` on `cache` and is not freed by anyone
    /// else; by the time the guard drops, its value is gone (never written,
    /// moved out, or dropped) and no one uses the slot again.
    pub(crate) unsafe fn new(cache: &'a SlabCache<T, P>, slot: NonNull<T>) -> Self {
        Self { cache, slot }
    }
}

impl<T, P: PageAllocator> Drop for SlotGuard<'_, T, P> {
    fn drop(&mut self) {
        // SAFETY: the contract of `SlotGuard::new`.
        unsafe { self.cache.free_slot(self.slot) }
    }
}

impl<T, P: PageAllocator> Drop for SlabCache<T, P> {
    fn drop(&mut self) {
        // Handles borrow the cache, so none is alive now. Slabs still holding
        // objects were leaked on purpose (`SlabBox::leak`, `into_raw`, a
        // forgotten `Pin`), and keep their pages: as with `Box::leak`, leaked
        // memory is never reused, which is what pinning relies on.
        let core = self.core.get_mut();
        // SAFETY: `self.pages` is the only page allocator this core sees, and
        // empty slabs hold nothing anyone uses.
        unsafe { core.shrink(&self.pages) };
        self.pages.trim();
    }
}

impl<T, P: PageAllocator> fmt::Debug for SlabCache<T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("SlabCache");
        out.field("type", &core::any::type_name::<T>());
        match self.core.try_lock() {
            Some(core) => out.field("stats", &core.stats(core::any::type_name::<T>())),
            None => out.field("stats", &"<locked>"),
        };
        out.finish_non_exhaustive()
    }
}

// SAFETY: the cache holds no `T` of its own, only memory for them; sending it
// sends its pages (owned exclusively) and its page allocator (`P: Send`). Values
// are only ever moved in and out by handles, which require `T: Send` to cross
// threads.
unsafe impl<T: Send, P: PageAllocator + Send> Send for SlabCache<T, P> {}

// SAFETY: all shared-reference access to the slabs goes through the core's
// lock, and the page allocator is shared only as `&P` (`P: Sync`). `T: Send`
// because a value allocated on one thread may be dropped — and its slot
// returned — on another.
unsafe impl<T: Send, P: PageAllocator + Sync> Sync for SlabCache<T, P> {}
