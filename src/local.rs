//! Per-thread fronts: allocation and free without a lock.
//!
//! A [`LocalCache`] sits in front of one shared [`SlabCache`], a
//! [`LocalAllocator`] in front of one shared [`SlabAllocator`] (a magazine
//! per size class). Each keeps a magazine (see `magazine`) of free slots
//! that it pops and pushes with no lock and no atomic operation; it takes
//! the shared cache's lock only to refill an empty magazine or to give back
//! half of a full one — a batch of slots per lock. Threads that each own a
//! local front therefore scale: they meet on the shared lock once per batch,
//! not once per object.
//!
//! # Who owns what
//!
//! A local front owns the slots in its magazine; the shared cache counts them
//! as in use (its `stats()` includes them in `objects_in_use`, and a slab
//! holding one is not empty, so `shrink` keeps it). Dropping the front, or
//! calling `flush`, gives them all back. A front is `Send` but not `Sync`:
//! one thread at a time, no locking inside. In `no_std` the front is an
//! explicit value — one per thread, per core, or per task, as the program
//! is organised; with `std`, a `thread_local!` holding a front of a `static`
//! cache gives each thread its own.
//!
//! # Handles
//!
//! [`LocalCache::alloc`] returns a [`LocalBox`], which returns its slot to
//! the local magazine when dropped. It borrows the front, so it stays on
//! the front's thread; [`LocalBox::into_shared`] turns it into an ordinary
//! [`SlabBox`] that may travel, and [`LocalCache::recycle`] takes a
//! `SlabBox` of the same cache back into the magazine.
//!
//! Slots resting in magazines are not free as far as the shared cache
//! knows: with a page limit (`CacheConfig::page_limit`), an allocation can
//! fail with `PageLimit` while other threads' fronts hold free slots. Size
//! magazines (and flush fronts) with that in mind.
//!
//! # Checks
//!
//! Checked builds poison slots resting in a magazine and verify the poison
//! when one is handed out; a raw free checks the slot's owner and size class
//! at once (reading only header fields fixed when the slab was made, so no
//! lock is needed) and whether it is already in this front's magazine. The
//! full double-free check runs when the slot goes back to its slab: a block
//! freed to two different fronts is caught only when both have flushed it.
//! Misuse found while a magazine is borrowed is reported after the borrow
//! ends, since the panic hook may run code that uses the same front.
//!
//! # Design: magazines against one lock per call
//!
//! The shared caches take one uncontended spin lock per call; a front takes
//! none on the common path. The refill and flush are `#[cold]` and never
//! inlined: inlined, their loops made the common path too big to inline
//! into its callers and cost a call and six register saves per object (a
//! `perf` profile of the `pair` benchmark showed 68 % of the time there). `cargo bench -p minimal_slab_perf --bench pair`
//! and `--bench threads` compare the two (`slabcache` against
//! `slabcache-local`): see the README's Performance section for one run.

use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::ptr::{self, NonNull};

use generic_array::{ArrayLength, GenericArray, sequence::GenericSequence};
use typenum::{U32, Unsigned};

use crate::error::{AllocError, AllocFailed};
use crate::magazine::{self, Magazine};
use crate::misuse::{CHECKED, Misuse};
use crate::page_allocator::{DefaultPages, PageAllocator};
use crate::slab_allocator::{Fallback, NoFallback, SizeClassLimit, SlabAllocator, class_size};
use crate::slab_box::SlabBox;
use crate::slab_cache::AllocFault;
use crate::typed_cache::SlabCache;

/// A per-thread front of a [`SlabCache`]: a magazine of up to `N` free slots
/// (32 by default), used without a lock.
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
    /// Touched only by the one thread that holds the front (`!Sync`), and
    /// never across a call into user code (page allocators aside: their
    /// contract forbids re-entering the front).
    magazine: UnsafeCell<Magazine<N>>,
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
    /// takes the shared lock less often and parks more memory.
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
        let () = Magazine::<N>::NOT_EMPTY;
        Self {
            cache,
            magazine: UnsafeCell::new(Magazine::new()),
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
        let _park = ParkOnDrop(self, slot);
        // SAFETY: the handle owned a live `T`, given up just above; if the
        // destructor panics, the slot is still parked by the guard.
        unsafe { slot.drop_in_place() };
    }

    /// Slots resting in the magazine.
    pub fn cached(&self) -> usize {
        // SAFETY: `!Sync`, and nothing else borrows the magazine during this
        // read (the page allocator may not re-enter the front).
        unsafe { &*self.magazine.get() }.len()
    }

    /// Gives every slot in the magazine back to the shared cache.
    pub fn flush(&self) {
        let drained = {
            // SAFETY: `!Sync`; while the borrow lives only this crate's code and
            // the page allocator run, and the page allocator's contract forbids
            // re-entering the front.
            let magazine = unsafe { &mut *self.magazine.get() };
            let all = magazine.len();
            // SAFETY: every slot in the magazine was parked after the cache
            // handed it out, and no one uses it.
            unsafe { self.cache.drain(magazine, all) }
        };
        // Reported once the magazine is no longer borrowed: the panic hook
        // may run code that uses this front.
        if let Err((misuse, slot)) = drained {
            misuse.report(slot);
        }
    }

    /// The shared cache behind this front.
    pub fn cache(&self) -> &'c SlabCache<T, P> {
        self.cache
    }

    /// A slot for one `T`: from the magazine, refilled when empty.
    #[inline]
    fn take(&self) -> Result<NonNull<T>, AllocError> {
        if SlabCache::<T, P>::OBJECT_SIZE == 0 {
            return Ok(NonNull::dangling());
        }
        let taken = {
            // SAFETY: `!Sync`; while the borrow lives only this crate's code and
            // the page allocator run, and the page allocator's contract forbids
            // re-entering the front.
            let magazine = unsafe { &mut *self.magazine.get() };
            take_from(magazine, |magazine| self.cache.refill(magazine))
        };
        // Reported once the magazine is no longer borrowed.
        let slot = match taken {
            Ok(slot) => slot,
            Err(AllocFault::Refused(error)) => return Err(error),
            Err(AllocFault::Misuse(misuse, slot)) => misuse.report(slot),
        };
        // SAFETY: the slot was parked with the cache's slot size.
        match unsafe { magazine::unpark(slot, SlabCache::<T, P>::OBJECT_SIZE) } {
            Ok(slot) => Ok(slot.cast()),
            Err(misuse) => misuse.report(slot),
        }
    }

    /// Keeps `slot`, whose value is gone, in the magazine; gives back half
    /// of a full magazine first.
    #[inline]
    fn park(&self, slot: NonNull<T>) {
        let size = SlabCache::<T, P>::OBJECT_SIZE;
        if size == 0 {
            return;
        }
        let slot = slot.cast::<u8>();
        if CHECKED {
            // SAFETY: `!Sync`, and this shared borrow ends before anything
            // else touches the magazine.
            if unsafe { &*self.magazine.get() }.contains(slot) {
                Misuse::DoubleFree.report(slot);
            }
        }
        // SAFETY: the slot came from this cache and its value is gone.
        unsafe { magazine::park(slot, size) };
        let drained = {
            // SAFETY: `!Sync`; while the borrow lives only this crate's code and
            // the page allocator run, and the page allocator's contract forbids
            // re-entering the front.
            let magazine = unsafe { &mut *self.magazine.get() };
            // SAFETY: every slot in the magazine was parked after the cache
            // handed it out, and no one uses it.
            push_into(magazine, slot, |magazine, count| unsafe {
                self.cache.drain(magazine, count)
            })
        };
        // Reported once the magazine is no longer borrowed.
        if let Err((misuse, slot)) = drained {
            misuse.report(slot);
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

/// Parks a slot in a local front when dropped: after a value's destructor,
/// even if it panics.
struct ParkOnDrop<'l, 'c, T, P: PageAllocator, N: ArrayLength>(
    &'l LocalCache<'c, T, P, N>,
    NonNull<T>,
);

impl<T, P: PageAllocator, N: ArrayLength> Drop for ParkOnDrop<'_, '_, T, P, N> {
    #[inline]
    fn drop(&mut self) {
        self.0.park(self.1);
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
        this.local.park(this.ptr);
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
        // SAFETY: the slot was handed out by the front's cache (the magazine
        // holds only its slots, with the pointer the slab gave), holds a
        // live `T`, and this handle, now gone, was its only one.
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
    /// parks the slot in `local`'s magazine.
    ///
    /// # Safety
    ///
    /// - `ptr` was returned by `into_raw` on a handle — local, of any front,
    ///   or shared — of `local`'s cache (a slot of another cache is a
    ///   foreign pointer: checked builds panic on it when the slot goes back
    ///   to the shared cache, with a flush or half of a full magazine —
    ///   until then the front may hand it out again —, other builds corrupt
    ///   the cache);
    /// - it is the pointer itself, not one rebuilt from a reference to the
    ///   value (its provenance must be the one the cache handed out, which
    ///   reaches beyond the object to the slab's header and the page source's
    ///   bookkeeping);
    /// - no other handle to that slot exists (two would free it twice: a
    ///   double free, and a use after free through the survivor; checked
    ///   builds catch the second free while the first is in the magazine);
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
        let _park = ParkOnDrop(self.local, self.ptr);
        // SAFETY: the handle owns a live `T`, dropped once here; the guard
        // parks the slot afterwards, also if the destructor panics.
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

/// A per-thread front of a [`SlabAllocator`]: a magazine of up to `N` free
/// slots (32 by default) per size class, used without a lock. Requests
/// beyond the classes go straight to the allocator's fallback.
///
/// ```
/// use core::alloc::Layout;
/// use minimal_slab::SlabAllocator;
///
/// static HEAP: SlabAllocator = SlabAllocator::new();
///
/// let local = HEAP.local();
/// let layout = Layout::new::<[u8; 64]>();
/// let p = local.allocate(layout).unwrap();
/// // SAFETY: `p` came from `local.allocate(layout)` and is not used again.
/// unsafe { local.deallocate(p, layout) };
/// drop(local); // gives the cached slots back
/// assert_eq!(HEAP.stats().objects_in_use(), 0);
/// ```
pub struct LocalAllocator<
    'a,
    P: PageAllocator = DefaultPages,
    F: Fallback = NoFallback,
    M: SizeClassLimit = typenum::U256,
    N: ArrayLength = U32,
> {
    heap: &'a SlabAllocator<P, F, M>,
    /// Touched only by the one thread that holds the front (`!Sync`), and
    /// never across a call into user code.
    magazines: UnsafeCell<GenericArray<Magazine<N>, M::Classes>>,
}

impl<P: PageAllocator, F: Fallback, M: SizeClassLimit> SlabAllocator<P, F, M> {
    /// A per-thread front of this allocator, with a magazine of 32 slots per
    /// size class (see [`LocalAllocator::new`] for another capacity).
    pub fn local(&self) -> LocalAllocator<'_, P, F, M> {
        LocalAllocator::new(self)
    }
}

impl<'a, P: PageAllocator, F: Fallback, M: SizeClassLimit, N: ArrayLength>
    LocalAllocator<'a, P, F, M, N>
{
    /// A front of `heap` with magazines of `N` slots.
    pub fn new(heap: &'a SlabAllocator<P, F, M>) -> Self {
        let () = Magazine::<N>::NOT_EMPTY;
        Self {
            heap,
            magazines: UnsafeCell::new(GenericArray::generate(|_| Magazine::new())),
        }
    }

    /// Allocates memory for `layout`, as [`SlabAllocator::allocate`] does,
    /// from the size class's magazine when it can.
    ///
    /// # Errors
    ///
    /// As for [`SlabAllocator::allocate`].
    #[inline]
    pub fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let Some(class) = SlabAllocator::<P, F, M>::class_index(layout) else {
            return self.heap.allocate(layout); // zero-sized, or the fallback's
        };
        if layout.size() == 0 {
            return self.heap.allocate(layout);
        }
        let taken = take_from(self.magazine(class), |magazine| {
            self.heap.refill_class(class, magazine)
        });
        // Reported once the magazine is no longer borrowed.
        let slot = match taken {
            Ok(slot) => slot,
            Err(AllocFault::Refused(error)) => return Err(error),
            Err(AllocFault::Misuse(misuse, slot)) => misuse.report(slot),
        };
        // SAFETY: the slot was parked with its class's size.
        match unsafe { magazine::unpark(slot, class_size(class)) } {
            Ok(slot) => Ok(slot),
            Err(misuse) => misuse.report(slot),
        }
    }

    /// Frees memory from [`allocate`](Self::allocate) into the size class's
    /// magazine (half of a full one goes back to the allocator first).
    ///
    /// # Safety
    ///
    /// As for [`SlabAllocator::deallocate`]: `ptr` came from `allocate` on
    /// this front, another front of the same allocator, or the allocator
    /// itself, with this same `layout`; it is that pointer or one derived
    /// from it by pointer arithmetic; it is not freed twice (no double
    /// free) and not used after this call (no use after free).
    ///
    /// Checked builds catch, at once, a pointer of another allocator or
    /// size class and a second free while the first is still in this
    /// magazine; a double free of a slot that has gone back to its slab is
    /// caught when this one goes back too. Each panics naming the misuse.
    #[inline]
    pub unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        let Some(class) = SlabAllocator::<P, F, M>::class_index(layout) else {
            // SAFETY: the caller's guarantees.
            return unsafe { self.heap.deallocate(ptr, layout) };
        };
        if layout.size() == 0 {
            return;
        }
        let size = class_size(class);
        if CHECKED {
            // SAFETY: the caller says `ptr` is one of our slots; checked
            // builds verify it, as far as reading its page allows.
            if let Err(misuse) = unsafe { self.heap.check_class_slot(class, ptr) } {
                misuse.report(ptr);
            }
            if self.magazine(class).contains(ptr) {
                Misuse::DoubleFree.report(ptr);
            }
        }
        // SAFETY: the slot is ours and no one uses it any more.
        unsafe { magazine::park(ptr, size) };
        // SAFETY: every slot in the magazine was parked after this class
        // handed it out, and no one uses it.
        let drained = push_into(self.magazine(class), ptr, |magazine, count| unsafe {
            self.heap.drain_class(class, magazine, count)
        });
        // Reported once the magazine is no longer borrowed.
        if let Err((misuse, slot)) = drained {
            misuse.report(slot);
        }
    }

    /// Resizes memory from [`allocate`](Self::allocate), keeping the first
    /// `min(layout.size(), new_size)` bytes; in place when the new size falls
    /// in the same size class.
    ///
    /// # Errors
    ///
    /// As for [`SlabAllocator::reallocate`]; on error `ptr` is untouched and
    /// still owned by the caller.
    ///
    /// # Safety
    ///
    /// As for [`deallocate`](Self::deallocate). On success the old pointer
    /// must not be used again.
    pub unsafe fn reallocate(
        &self,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        let new_layout = crate::slab_allocator::resized(layout, new_size)?;
        let class = SlabAllocator::<P, F, M>::class_index(layout);
        if layout.size() != 0
            && new_size != 0
            && class.is_some()
            && class == SlabAllocator::<P, F, M>::class_index(new_layout)
        {
            return Ok(ptr);
        }
        let new = self.allocate(new_layout)?;
        // SAFETY: both blocks are valid for the bytes kept, and distinct.
        unsafe {
            ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), layout.size().min(new_size))
        };
        // SAFETY: the caller's guarantees for `ptr` and `layout`.
        unsafe { self.deallocate(ptr, layout) };
        Ok(new)
    }

    /// Slots resting in the magazines, all classes together.
    pub fn cached(&self) -> usize {
        // SAFETY: `!Sync`, and nothing else borrows the magazine during this
        // read (the page allocator may not re-enter the front).
        unsafe { &*self.magazines.get() }
            .iter()
            .map(Magazine::len)
            .sum()
    }

    /// Gives every slot in every magazine back to the allocator.
    pub fn flush(&self) {
        for class in 0..M::Classes::USIZE {
            let drained = {
                let magazine = self.magazine(class);
                let all = magazine.len();
                // SAFETY: every slot in the magazine was parked after this
                // class handed it out, and no one uses it.
                unsafe { self.heap.drain_class(class, magazine, all) }
            };
            // Reported once the magazine is no longer borrowed.
            if let Err((misuse, slot)) = drained {
                misuse.report(slot);
            }
        }
    }

    /// The shared allocator behind this front.
    pub fn allocator(&self) -> &'a SlabAllocator<P, F, M> {
        self.heap
    }

    /// The magazine of size class `class`.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    fn magazine(&self, class: usize) -> &mut Magazine<N> {
        // Only this thread reaches the magazines (`!Sync`); each caller
        // holds one reference at a time, briefly, running only this crate's
        // code and the page allocator's (which may not re-enter the front).
        // SAFETY: per the above, this is the only live reference to them.
        let magazines = unsafe { &mut *self.magazines.get() };
        &mut magazines[class]
    }
}

impl<P: PageAllocator, F: Fallback, M: SizeClassLimit, N: ArrayLength> Drop
    for LocalAllocator<'_, P, F, M, N>
{
    fn drop(&mut self) {
        self.flush();
    }
}

impl<P: PageAllocator, F: Fallback, M: SizeClassLimit, N: ArrayLength> fmt::Debug
    for LocalAllocator<'_, P, F, M, N>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalAllocator")
            .field("capacity", &N::USIZE)
            .finish_non_exhaustive()
    }
}

// SAFETY: the front holds a shared reference to the allocator (usable from
// any thread: it is `Sync` whenever its pages and fallback are) and pointers
// to free slots; moving it moves their ownership. It is not `Sync`.
unsafe impl<P, F, M, N> Send for LocalAllocator<'_, P, F, M, N>
where
    P: PageAllocator + Sync,
    F: Fallback + Sync,
    M: SizeClassLimit,
    N: ArrayLength,
{
}

/// Pops a slot from `magazine`, refilling it first if it is empty.
#[inline]
fn take_from<N: ArrayLength>(
    magazine: &mut Magazine<N>,
    refill: impl FnOnce(&mut Magazine<N>) -> Result<(), AllocFault>,
) -> Result<NonNull<u8>, AllocFault> {
    if let Some(slot) = magazine.pop() {
        return Ok(slot);
    }
    refill(magazine)?;
    let Some(slot) = magazine.pop() else {
        unreachable!("a successful refill of an empty magazine takes a slot")
    };
    Ok(slot)
}

/// Pushes `slot` onto `magazine`, draining half of it first if it is full.
#[inline]
fn push_into<N: ArrayLength>(
    magazine: &mut Magazine<N>,
    slot: NonNull<u8>,
    drain: impl FnOnce(&mut Magazine<N>, usize) -> Result<(), (Misuse, NonNull<u8>)>,
) -> Result<(), (Misuse, NonNull<u8>)> {
    if let Err(slot) = magazine.push(slot) {
        drain(magazine, Magazine::<N>::BATCH)?;
        let pushed = magazine.push(slot);
        debug_assert!(pushed.is_ok(), "a drained magazine has room");
    }
    Ok(())
}
