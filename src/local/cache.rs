//! The per-thread front of a typed cache, and its handle.

use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::ptr::{self, NonNull};

use generic_array::ArrayLength;
use typenum::U32;

use crate::cache::SlotReach;
use crate::error::{AllocError, AllocFailed};
use crate::magazine::MagazineFront;
use crate::page_allocator::{DefaultPages, PageAllocator};
use crate::typed::{SlabBox, SlabCache};

/// A per-thread front of a [`SlabCache`]: a magazine of up to `N` free slots
/// (32 by default), used without a lock.
///
/// # Who owns what
///
/// A local front owns the slots in its magazine; the shared cache counts them
/// as in use (its `stats()` includes them in `objects_in_use`, and a slab
/// holding one is not empty, so `shrink` keeps it). Dropping the front, or
/// calling `flush`, gives them all back. A front is `Send` but not `Sync`:
/// one thread at a time, no locking inside. In `no_std` the front is an
/// explicit value — one per thread, per core, or per task, as the program
/// is organised; with `std`, a `thread_local!` holding a front of a `static`
/// cache gives each thread its own.
///
/// # Handles
///
/// [`LocalCache::alloc`] returns a [`LocalBox`], which returns its slot to
/// the local magazine when dropped. It borrows the front, so it stays on
/// the front's thread; [`LocalBox::into_shared`] turns it into an ordinary
/// [`SlabBox`] that may travel, and [`LocalCache::recycle`] takes a
/// `SlabBox` of the same cache back into the magazine.
///
/// Slots resting in magazines are not free as far as the shared cache
/// knows: with a page limit (`CacheConfig::page_limit`), an allocation can
/// fail with `PageLimit` while other threads' fronts hold free slots. Size
/// magazines (and flush fronts) with that in mind.
///
/// # Checks
///
/// Checked builds poison slots resting in a magazine and verify the poison
/// when one leaves it; every free into a front checks the slot's owner and
/// size class at once (reading only header fields fixed when the slab was
/// made, so no lock is needed) and whether a user holds the slot (its bit
/// in its slab's bitmap, cleared by an atomic read-modify-write): a block
/// freed twice is caught by the second free, wherever the first went — this
/// front, another front or thread's cache, or the slab after a flush.
/// A magazine is never borrowed across a call out of this crate (it is made
/// of `Cell`s), so a panic hook that uses the same front's magazine while a
/// page source unwinds finds it whole. (The hook runs with the cache's lock
/// still held, so it must not need the cache itself: see
/// [`PageAllocator`](crate::PageAllocator).)
///
///
/// # Example
///
/// ```
/// use minimal_slab::{LocalCache, SlabCache};
///
/// static PARTICLES: SlabCache<[f32; 6]> = SlabCache::new();
///
/// let local = PARTICLES.local(); // one per thread
/// let p = local.alloc([0.0; 6]).unwrap(); // no lock: from the magazine
/// assert_eq!(p[5], 0.0);
/// drop(p); // back into the magazine, no lock
/// assert_eq!(local.cached(), 16); // the rest of the first refill's batch
/// drop(local); // gives every cached slot back
/// assert_eq!(PARTICLES.stats().objects_in_use, 0);
/// ```
pub struct LocalCache<'c, T, P: PageAllocator = DefaultPages, N: ArrayLength = U32> {
    cache: &'c SlabCache<T, P>,
    front: MagazineFront<N>,
}

impl<T, P: PageAllocator> SlabCache<T, P> {
    /// A per-thread front of this cache, with a magazine of 32 slots (see
    /// [`LocalCache::new`] for another capacity).
    pub fn local(&self) -> LocalCache<'_, T, P> {
        LocalCache::new(self)
    }
}

impl<'c, T, P: PageAllocator, N: ArrayLength> LocalCache<'c, T, P, N> {
    /// A front of `cache` with a magazine of `N` slots: a larger magazine
    /// takes the shared lock less often and caches more memory.
    ///
    /// ```
    /// use minimal_slab::{LocalCache, SlabCache, typenum::U128};
    ///
    /// let cache: SlabCache<u64> = SlabCache::new();
    /// let local: LocalCache<'_, u64, _, U128> = LocalCache::new(&cache);
    /// assert_eq!(*local.alloc(7).unwrap(), 7);
    /// ```
    ///
    /// A magazine that holds nothing is a compile error:
    ///
    /// ```compile_fail,E0080
    /// use minimal_slab::{LocalCache, SlabCache, typenum::U0};
    ///
    /// let cache: SlabCache<u64> = SlabCache::new();
    /// let local: LocalCache<'_, u64, _, U0> = LocalCache::new(&cache);
    /// ```
    pub fn new(cache: &'c SlabCache<T, P>) -> Self {
        Self {
            cache,
            front: MagazineFront::new(),
        }
    }

    /// Moves `value` into a slot; on failure the error carries `value` back.
    #[inline]
    pub fn alloc(&self, value: T) -> Result<LocalBox<'_, 'c, T, P, N>, AllocFailed<T>> {
        match self.take() {
            Ok(slot) => {
                // SAFETY: the slot is ours, sized and aligned for `T`.
                unsafe { slot.write(value) };
                Ok(LocalBox {
                    ptr: slot,
                    local: self,
                    _owns: PhantomData,
                })
            }
            Err(error) => Err(AllocFailed::new(value, error)),
        }
    }

    /// Allocates from this front's magazine, as [`alloc`](Self::alloc)
    /// does, but returns an ordinary [`SlabBox`], which borrows the shared
    /// cache rather than this front: it may live in the same struct as the
    /// front, leave a `thread_local!`'s `with`, or travel to another thread.
    /// Dropping it frees through the shared cache (with `std`, into the
    /// dropping thread's cache); [`recycle`](Self::recycle) brings its slot
    /// back to this front instead.
    ///
    /// ```
    /// use minimal_slab::{LocalCache, SlabBox, SlabCache};
    ///
    /// static PARTICLES: SlabCache<[f32; 4]> = SlabCache::new();
    ///
    /// // A front beside its live objects, in one struct.
    /// struct World {
    ///     front: LocalCache<'static, [f32; 4]>,
    ///     live: Vec<SlabBox<'static, [f32; 4]>>,
    /// }
    ///
    /// let mut world = World { front: PARTICLES.local(), live: Vec::new() };
    /// for i in 0..100 {
    ///     let p = world.front.alloc_shared([i as f32; 4]).unwrap();
    ///     world.live.push(p);
    /// }
    /// while let Some(p) = world.live.pop() {
    ///     world.front.recycle(p); // back into this front's magazine
    /// }
    /// ```
    pub fn alloc_shared(&self, value: T) -> Result<SlabBox<'c, T, P>, AllocFailed<T>> {
        match self.take() {
            Ok(slot) => {
                // SAFETY: the slot is ours, sized and aligned for `T`.
                unsafe { slot.write(value) };
                // SAFETY: the shared cache handed the slot out (through this
                // front's magazine), with the pointer its slab gave; it now
                // holds a `T`, and this is its one handle.
                Ok(unsafe { SlabBox::from_slot(self.cache, slot) })
            }
            Err(error) => Err(AllocFailed::new(value, error)),
        }
    }

    /// Drops the value of `handle` and keeps its slot in this front's
    /// magazine: how objects allocated on one thread come home to another
    /// thread's front. A handle of another cache is simply dropped (its slot
    /// goes back to its own cache).
    pub fn recycle(&self, handle: SlabBox<'c, T, P>) {
        if !ptr::eq(SlabBox::cache(&handle), self.cache) {
            drop(handle);
            return;
        }
        let slot = SlabBox::into_raw(handle);
        let _give = GiveOnDrop(self, slot);
        // SAFETY: the handle owned a live `T`, given up just above; if the
        // destructor panics, the guard still gives the slot to the front.
        unsafe { slot.drop_in_place() };
    }

    /// Slots resting in the magazine.
    pub fn cached(&self) -> usize {
        self.front.cached()
    }

    /// Gives every slot in the magazine back to the shared cache.
    pub fn flush(&self) {
        let size = SlabCache::<T, P>::SLOT_SIZE;
        self.front.flush(self.cache.set(), 0, size, true);
    }

    /// The shared cache behind this front.
    pub fn cache(&self) -> &'c SlabCache<T, P> {
        self.cache
    }

    /// A slot for one `T`: from the magazine, refilled when empty.
    #[inline]
    fn take(&self) -> Result<NonNull<T>, AllocError> {
        let size = SlabCache::<T, P>::SLOT_SIZE;
        if size == 0 {
            return Ok(NonNull::dangling());
        }
        self.front
            .take(self.cache.set(), 0, size)
            .map(NonNull::cast)
    }

    /// Keeps `slot`, whose value is gone, in the magazine; gives back half
    /// of a full magazine first.
    ///
    /// # Safety
    ///
    /// `slot` came from this front's cache, through the pointer its slab
    /// gave; it is not freed twice, and no one uses it afterwards.
    #[inline]
    unsafe fn give(&self, slot: NonNull<T>) {
        let size = SlabCache::<T, P>::SLOT_SIZE;
        if size == 0 {
            return;
        }
        // SAFETY: the caller's guarantees.
        unsafe {
            self.front
                .give(self.cache.set(), 0, size, slot.cast(), SlotReach::Page)
        }
    }
}

impl<T, P: PageAllocator, N: ArrayLength> Drop for LocalCache<'_, T, P, N> {
    fn drop(&mut self) {
        self.flush();
    }
}

impl<T, P: PageAllocator, N: ArrayLength> fmt::Debug for LocalCache<'_, T, P, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCache")
            .field("type", &core::any::type_name::<T>())
            .field("cached", &self.cached())
            .field("capacity", &N::USIZE)
            .finish()
    }
}

// SAFETY: the front holds a shared reference to the cache (usable from any
// thread when `SlabCache: Sync`, i.e. `T: Send` and `P: Sync`) and pointers
// to free slots, which carry no `T`; moving it to another thread moves their
// ownership. It is not `Sync`: the magazine is used without a lock.
unsafe impl<T: Send, P: PageAllocator + Sync, N: ArrayLength> Send for LocalCache<'_, T, P, N> {}

/// Gives a slot to a local front when dropped: after a value's destructor,
/// even if it panics.
struct GiveOnDrop<'l, 'c, T, P: PageAllocator, N: ArrayLength>(
    &'l LocalCache<'c, T, P, N>,
    NonNull<T>,
);

impl<T, P: PageAllocator, N: ArrayLength> Drop for GiveOnDrop<'_, '_, T, P, N> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard is armed (by `recycle` and `LocalBox`'s drop)
        // only for a slot of the front's cache that no one else frees, once
        // its value is gone.
        unsafe { self.0.give(self.1) };
    }
}

/// An owned `T` in a slot from a [`LocalCache`]; dropping it returns the
/// slot to that front's magazine, with no lock.
///
/// It derefs to `T`. It borrows the front, so it stays on the front's
/// thread; [`into_shared`](Self::into_shared) makes it an ordinary
/// [`SlabBox`].
///
/// `'l` is the borrow of the front, `'c` that of the shared cache.
pub struct LocalBox<'l, 'c, T, P: PageAllocator = DefaultPages, N: ArrayLength = U32> {
    ptr: NonNull<T>,
    local: &'l LocalCache<'c, T, P, N>,
    _owns: PhantomData<T>,
}

impl<'c, T, P: PageAllocator, N: ArrayLength> LocalBox<'_, 'c, T, P, N> {
    /// Moves the value out; the slot goes back to the magazine.
    pub fn into_inner(this: Self) -> T {
        let this = ManuallyDrop::new(this);
        // SAFETY: the handle owns a live `T`, moved out once; its `Drop`
        // will not run.
        let value = unsafe { this.ptr.read() };
        // SAFETY: the slot came from the front's cache and its value is
        // gone; the handle, its only owner, is gone too.
        unsafe { this.local.give(this.ptr) };
        value
    }

    /// The same object as an ordinary handle of the shared cache, which may
    /// be sent to another thread and frees through the shared cache (or
    /// comes back to a front through [`LocalCache::recycle`]).
    ///
    /// ```
    /// use minimal_slab::{LocalBox, SlabCache};
    ///
    /// static JOBS: SlabCache<u32> = SlabCache::new();
    /// let local = JOBS.local();
    /// let job = LocalBox::into_shared(local.alloc(7).unwrap());
    /// let done = std::thread::spawn(move || *job + 1).join().unwrap();
    /// assert_eq!(done, 8);
    /// ```
    pub fn into_shared(this: Self) -> SlabBox<'c, T, P> {
        let this = ManuallyDrop::new(this);
        // `from_raw`, not `from_slot`: checked builds verify that a slot
        // rebuilt by `LocalBox::from_raw` is the cache's before its slab
        // records the cache.
        // SAFETY: the slot is the front's cache's (its magazine's, or by
        // `LocalBox::from_raw`'s contract), holds a live `T`, and this
        // handle, now gone, was its only one.
        unsafe { SlabBox::from_raw(this.local.cache, this.ptr) }
    }

    /// A raw pointer to the value.
    pub fn as_ptr(this: &Self) -> *const T {
        this.ptr.as_ptr()
    }

    /// Gives up the handle without dropping the value or freeing the slot,
    /// and returns the one-word pointer to it; [`from_raw`](Self::from_raw)
    /// takes it back. For structures that hold many objects and know which
    /// front they belong to: a `LocalBox` is two words (the slot and the
    /// front), the pointer one. Until it is taken back, the slot stays in
    /// use.
    ///
    /// ```
    /// use minimal_slab::{LocalBox, SlabCache};
    ///
    /// let cache: SlabCache<u64> = SlabCache::new();
    /// let local = cache.local();
    /// let raw = LocalBox::into_raw(local.alloc(9).unwrap());
    /// // SAFETY: `raw` came from `into_raw` on a handle of this cache, and
    /// // is taken back once.
    /// let back = unsafe { LocalBox::from_raw(&local, raw) };
    /// assert_eq!(*back, 9);
    /// ```
    pub fn into_raw(this: Self) -> NonNull<T> {
        ManuallyDrop::new(this).ptr
    }
}

impl<'l, 'c, T, P: PageAllocator, N: ArrayLength> LocalBox<'l, 'c, T, P, N> {
    /// Rebuilds a handle from a pointer produced by
    /// [`into_raw`](Self::into_raw) (or [`SlabBox::into_raw`]); dropping it
    /// caches the slot in `local`'s magazine.
    ///
    /// # Safety
    ///
    /// - `ptr` was returned by `into_raw` on a handle — local, of any front,
    ///   or shared — of `local`'s cache (a slot of another cache is a
    ///   foreign pointer: checked builds panic on it at
    ///   [`into_shared`](Self::into_shared), or when the handle is dropped;
    ///   other builds corrupt the caches);
    /// - it is the pointer itself, not one rebuilt from a reference to the
    ///   value (its provenance must be the one the cache handed out, which
    ///   reaches beyond the object to the slab's header and the page source's
    ///   bookkeeping);
    /// - no other handle to that slot exists (two would free it twice: a
    ///   double free, and a use after free through the survivor; checked
    ///   builds catch the second free, wherever the first went);
    /// - the value may be dropped on this thread: if `ptr` came from a
    ///   handle on another thread, `T` must be `Send`.
    pub unsafe fn from_raw(local: &'l LocalCache<'c, T, P, N>, ptr: NonNull<T>) -> Self {
        Self {
            ptr,
            local,
            _owns: PhantomData,
        }
    }
}

impl<T, P: PageAllocator, N: ArrayLength> Drop for LocalBox<'_, '_, T, P, N> {
    #[inline]
    fn drop(&mut self) {
        let _give = GiveOnDrop(self.local, self.ptr);
        // SAFETY: the handle owns a live `T`, dropped once here; the guard
        // gives the slot to the front afterwards, also if the destructor panics.
        unsafe { self.ptr.drop_in_place() };
    }
}

impl<T, P: PageAllocator, N: ArrayLength> Deref for LocalBox<'_, '_, T, P, N> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the handle owns a live `T`.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T, P: PageAllocator, N: ArrayLength> DerefMut for LocalBox<'_, '_, T, P, N> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the handle owns a live `T`, and `&mut self` is exclusive.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: fmt::Debug, P: PageAllocator, N: ArrayLength> fmt::Debug for LocalBox<'_, '_, T, P, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: fmt::Display, P: PageAllocator, N: ArrayLength> fmt::Display for LocalBox<'_, '_, T, P, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
