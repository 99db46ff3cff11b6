//! The handle to one object in a [`SlabCache`]: owns the value, borrows the
//! cache, returns the slot when dropped; and the cache's methods that make
//! one, so that the cache's own file never names its handle.

use core::borrow::{Borrow, BorrowMut};
use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::pin::Pin;
use core::ptr::NonNull;

use super::{SlabCache, SlotGuard};
use crate::error::{AllocError, AllocFailed};
use crate::page_allocator::{DefaultPages, PageAllocator};

impl<T, P: PageAllocator> SlabCache<T, P> {
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
    #[inline]
    pub fn alloc(&self, value: T) -> Result<SlabBox<'_, T, P>, AllocFailed<T>> {
        match self.allocate_slot() {
            Ok(slot) => {
                // SAFETY: the slot is fresh, sized and aligned for `T`.
                unsafe { slot.write(value) };
                // SAFETY: the slot came from `allocate_slot` on this cache
                // and now holds a `T`.
                Ok(unsafe { SlabBox::from_allocated(self, slot) })
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
    #[inline]
    pub fn alloc_with(&self, make: impl FnOnce() -> T) -> Result<SlabBox<'_, T, P>, AllocError> {
        let slot = self.allocate_slot()?;
        // SAFETY: the slot is fresh from this cache; if `make` panics, it
        // holds no value when the guard drops.
        let guard = unsafe { SlotGuard::new(self, slot) };
        let value = make();
        core::mem::forget(guard);
        // SAFETY: the slot is fresh, sized and aligned for `T`.
        unsafe { slot.write(value) };
        // SAFETY: the slot came from `allocate_slot` on this cache and now
        // holds a `T`.
        Ok(unsafe { SlabBox::from_allocated(self, slot) })
    }

    /// Like [`alloc`](Self::alloc), pinned: the value never moves again.
    /// For `static` caches (see [`SlabBox::into_pin`] for why).
    #[deprecated(
        since = "0.1.1",
        note = "one way to pin: `SlabBox::into_pin(cache.alloc(value)?)`, or `.into()`"
    )]
    pub fn pin(&'static self, value: T) -> Result<Pin<SlabBox<'static, T, P>>, AllocFailed<T>> {
        self.alloc(value).map(SlabBox::into_pin)
    }
}

/// An owned `T` living in a slot of a [`SlabCache`].
///
/// It derefs to `T`; dropping it drops the value and puts the slot back on
/// its slab's free list — also when `T`'s destructor panics. The lifetime ties
/// it to the cache, so in safe code no handle outlives its cache. It is one
/// pointer, as a `Box` is: the cache is found from the slot, in its slab's
/// header. Like `Box`, conversions are associated functions
/// (`SlabBox::into_inner(b)`), so they never shadow methods of `T`.
///
/// ```
/// use minimal_slab::{SlabBox, SlabCache};
///
/// let cache: SlabCache<Vec<u32>> = SlabCache::new();
/// let mut list = cache.alloc(vec![1, 2]).unwrap();
/// list.push(3); // DerefMut
/// assert_eq!(list.len(), 3); // Deref
/// let plain: Vec<u32> = SlabBox::into_inner(list); // moves out, frees the slot
/// assert_eq!(plain, [1, 2, 3]);
/// assert_eq!(cache.stats().objects_in_use, 0);
/// assert_eq!(size_of::<SlabBox<'_, Vec<u32>>>(), size_of::<Box<Vec<u32>>>());
/// ```
pub struct SlabBox<'a, T, P: PageAllocator = DefaultPages> {
    /// The value; for a zero-sized `T`, which has no slot, the cache itself
    /// (see `home`).
    ptr: NonNull<T>,
    /// The handle borrows the cache (found from the slot: see `home`) and
    /// owns a `T` (for drop check and variance).
    _owns: PhantomData<(&'a SlabCache<T, P>, T)>,
}

impl<'a, T, P: PageAllocator> SlabBox<'a, T, P> {
    const IS_ZST: bool = SlabCache::<T, P>::IS_ZST;

    /// The handle of `slot`, a slot of `cache`.
    ///
    /// # Safety
    ///
    /// `slot` is a handed-out slot of `cache` (for a zero-sized `T`: any
    /// aligned pointer), with the provenance the slab gave it; it holds a
    /// `T`, and this is its one handle.
    #[inline]
    pub(crate) unsafe fn from_slot(cache: &'a SlabCache<T, P>, slot: NonNull<T>) -> Self {
        let ptr = if Self::IS_ZST {
            NonNull::from(cache).cast()
        } else {
            // SAFETY: the caller's guarantee.
            unsafe { cache.settle(slot) };
            slot
        };
        Self {
            ptr,
            _owns: PhantomData,
        }
    }

    /// [`from_slot`](Self::from_slot), for a slot that
    /// [`allocate_slot`](SlabCache::allocate_slot) just handed out: builds
    /// without `std`, whose allocation recorded the cache in the slot's
    /// slab, do not settle again (which links no second look at the slab
    /// for a firmware).
    ///
    /// # Safety
    ///
    /// As for `from_slot`, and `slot` came from `cache.allocate_slot()`.
    #[inline]
    unsafe fn from_allocated(cache: &'a SlabCache<T, P>, slot: NonNull<T>) -> Self {
        if cfg!(feature = "std") || Self::IS_ZST {
            // SAFETY: the caller's guarantees.
            return unsafe { Self::from_slot(cache, slot) };
        }
        // The slab recorded `cache`'s address, exposed from a borrow of it
        // that lasts as long as this handle does (`allocate_slot`, and the
        // module doc of `home`).
        Self {
            ptr: slot,
            _owns: PhantomData,
        }
    }

    /// The value's address (dangling and aligned for a zero-sized `T`).
    #[inline]
    fn value(&self) -> NonNull<T> {
        if Self::IS_ZST {
            NonNull::dangling()
        } else {
            self.ptr
        }
    }

    /// The cache this handle borrows.
    #[inline]
    fn home(&self) -> &'a SlabCache<T, P> {
        if Self::IS_ZST {
            // SAFETY: a zero-sized value's handle holds its cache's pointer,
            // made from the `&'a` borrow it was created with.
            unsafe { self.ptr.cast::<SlabCache<T, P>>().as_ref() }
        } else {
            // SAFETY: the handle owns a handed-out slot of a cache it borrows
            // for `'a`.
            unsafe { SlabCache::owning(self.ptr) }
        }
    }

    /// Rebuilds a handle from a pointer produced by [`into_raw`](Self::into_raw).
    ///
    /// # Safety
    ///
    /// - `ptr` was returned by `into_raw` on a handle of this same `cache`
    ///   (the cache may have moved since; a slot of another cache, or any
    ///   other pointer into a slab page, is a foreign pointer: checked builds
    ///   panic on it here, other builds corrupt a cache);
    /// - it is the pointer itself, not one rebuilt from a reference to the
    ///   value (its provenance must be the one the cache handed out, which
    ///   reaches beyond the object to the slab's header and the page source's
    ///   bookkeeping);
    /// - no other handle to that slot exists (two would free it twice: a
    ///   double free, and a use after free through the survivor).
    #[track_caller]
    pub unsafe fn from_raw(cache: &'a SlabCache<T, P>, ptr: NonNull<T>) -> Self {
        if !Self::IS_ZST {
            // SAFETY: the caller's guarantee: a slot of this cache, so in a
            // slab's page (checked builds verify that it is).
            unsafe { cache.check_owner(ptr) };
        }
        // SAFETY: the caller's guarantees.
        unsafe { Self::from_slot(cache, ptr) }
    }

    /// Gives up the handle without dropping the value or freeing the slot;
    /// [`from_raw`](Self::from_raw) takes it back. Until then the slot stays
    /// in use, as long as the cache lives: dropping the cache gives back
    /// every page it holds, so the pointer dangles from then on (the value's
    /// destructor never runs), as an arena's would.
    ///
    /// ```
    /// use minimal_slab::{SlabBox, SlabCache};
    ///
    /// let cache: SlabCache<u64> = SlabCache::new();
    /// let raw = SlabBox::into_raw(cache.alloc(9).unwrap());
    /// // SAFETY: `raw` came from `into_raw` on this cache, and is used once.
    /// let back = unsafe { SlabBox::from_raw(&cache, raw) };
    /// assert_eq!(*back, 9);
    /// ```
    pub fn into_raw(this: Self) -> NonNull<T> {
        ManuallyDrop::new(this).value()
    }

    /// Moves the value out and frees the slot.
    pub fn into_inner(this: Self) -> T {
        let this = ManuallyDrop::new(this);
        // SAFETY: the handle owns a live `T`; it is moved out exactly once
        // and the handle's `Drop` will not run.
        let value = unsafe { this.value().read() };
        // SAFETY: the slot came from this cache, its value was just moved
        // out, and the handle is gone.
        unsafe { this.home().free_slot(this.value()) };
        value
    }

    /// Keeps the value forever (for as long as the cache is borrowed): the
    /// slot is never freed and `T`'s destructor never runs.
    ///
    /// ```
    /// use minimal_slab::{SlabBox, SlabCache};
    ///
    /// let cache: SlabCache<u32> = SlabCache::new();
    /// let n: &mut u32 = SlabBox::leak(cache.alloc(1).unwrap());
    /// *n += 1;
    /// assert_eq!(*n, 2);
    /// assert_eq!(cache.stats().objects_in_use, 1);
    /// ```
    pub fn leak(this: Self) -> &'a mut T {
        let this = ManuallyDrop::new(this);
        // SAFETY: a live value no one else refers to (the handle is gone);
        // its slot is never freed while the cache is borrowed for `'a`.
        unsafe { &mut *this.value().as_ptr() }
    }

    /// The cache this value lives in.
    pub fn cache(this: &Self) -> &'a SlabCache<T, P> {
        this.home()
    }

    /// The address of the value.
    pub fn as_ptr(this: &Self) -> *const T {
        this.value().as_ptr()
    }
}

impl<T, P: PageAllocator> SlabBox<'static, T, P> {
    /// Pins the value: it will not move, and its memory will not be reused,
    /// until it is dropped.
    ///
    /// Only for handles of a cache borrowed for `'static` (a `static` cache,
    /// or a leaked one), as `Box::into_pin` is only for `'static` allocators:
    /// pinning promises that the memory stays valid until `drop` runs, and a
    /// forgotten handle of a cache that is later dropped — taking its page
    /// allocator with it — could not keep that promise.
    ///
    /// ```
    /// use minimal_slab::{SlabBox, SlabCache};
    /// use core::pin::Pin;
    ///
    /// static TASKS: SlabCache<[u8; 32]> = SlabCache::new();
    /// let pinned: Pin<SlabBox<'static, [u8; 32]>> = SlabBox::into_pin(TASKS.alloc([0; 32]).unwrap());
    /// assert_eq!(pinned.len(), 32);
    /// ```
    pub fn into_pin(this: Self) -> Pin<Self> {
        // SAFETY: the slot never moves, and the cache (borrowed for `'static`,
        // so never dropped with its pages) reuses it only after `Drop` has
        // dropped the value, or never if the handle is forgotten.
        unsafe { Pin::new_unchecked(this) }
    }
}

impl<T, P: PageAllocator> Drop for SlabBox<'_, T, P> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the handle owns the slot and is going away; the value is
        // dropped just below, before the guard returns the slot — also if
        // `T::drop` panics and unwinds.
        let _return_slot = unsafe { SlotGuard::new(self.home(), self.value()) };
        // SAFETY: the handle owns a live `T`, dropped exactly once here.
        unsafe { self.value().drop_in_place() };
    }
}

impl<T, P: PageAllocator> Deref for SlabBox<'_, T, P> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the handle owns a live, initialised `T`.
        unsafe { self.value().as_ref() }
    }
}

impl<T, P: PageAllocator> DerefMut for SlabBox<'_, T, P> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the handle owns a live `T` and `&mut self` is exclusive.
        unsafe { self.value().as_mut() }
    }
}

impl<T, P: PageAllocator> From<SlabBox<'static, T, P>> for Pin<SlabBox<'static, T, P>> {
    fn from(this: SlabBox<'static, T, P>) -> Self {
        SlabBox::into_pin(this)
    }
}

// The handle is a pointer; moving it never moves the value.
impl<T, P: PageAllocator> Unpin for SlabBox<'_, T, P> {}

// SAFETY: sending the handle sends the `T` (hence `T: Send`) and the right to
// return its slot through `&SlabCache` from the other thread (hence the cache
// must be `Sync`).
unsafe impl<T: Send, P: PageAllocator> Send for SlabBox<'_, T, P> where SlabCache<T, P>: Sync {}

// SAFETY: a shared handle gives only `&T` (hence `T: Sync`) and `&SlabCache`
// (hence the cache must be `Sync`).
unsafe impl<T: Sync, P: PageAllocator> Sync for SlabBox<'_, T, P> where SlabCache<T, P>: Sync {}

impl<T: fmt::Debug, P: PageAllocator> fmt::Debug for SlabBox<'_, T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: fmt::Display, P: PageAllocator> fmt::Display for SlabBox<'_, T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<T, P: PageAllocator> fmt::Pointer for SlabBox<'_, T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Pointer::fmt(&self.value(), f)
    }
}

impl<T: PartialEq, P: PageAllocator, Q: PageAllocator> PartialEq<SlabBox<'_, T, Q>>
    for SlabBox<'_, T, P>
{
    fn eq(&self, other: &SlabBox<'_, T, Q>) -> bool {
        **self == **other
    }
}

impl<T: Eq, P: PageAllocator> Eq for SlabBox<'_, T, P> {}

impl<T: PartialOrd, P: PageAllocator, Q: PageAllocator> PartialOrd<SlabBox<'_, T, Q>>
    for SlabBox<'_, T, P>
{
    fn partial_cmp(&self, other: &SlabBox<'_, T, Q>) -> Option<Ordering> {
        (**self).partial_cmp(&**other)
    }
}

impl<T: Ord, P: PageAllocator> Ord for SlabBox<'_, T, P> {
    fn cmp(&self, other: &Self) -> Ordering {
        (**self).cmp(&**other)
    }
}

impl<T: Hash, P: PageAllocator> Hash for SlabBox<'_, T, P> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl<T, P: PageAllocator> AsRef<T> for SlabBox<'_, T, P> {
    fn as_ref(&self) -> &T {
        self
    }
}

impl<T, P: PageAllocator> AsMut<T> for SlabBox<'_, T, P> {
    fn as_mut(&mut self) -> &mut T {
        self
    }
}

impl<T, P: PageAllocator> Borrow<T> for SlabBox<'_, T, P> {
    fn borrow(&self) -> &T {
        self
    }
}

impl<T, P: PageAllocator> BorrowMut<T> for SlabBox<'_, T, P> {
    fn borrow_mut(&mut self) -> &mut T {
        self
    }
}
