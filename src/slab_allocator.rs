//! The untyped front: size classes for raw `Layout` requests.
//!
//! A [`SlabAllocator`] keeps one cache core per size class — 8, 16, 32, 64,
//! 128 and 256 bytes by default — each behind its own lock, so threads that
//! allocate different sizes do not contend. A request goes to the smallest
//! class that is at least both its size and its alignment; class slots are
//! aligned to the class size, so any alignment up to the class is honoured
//! without padding. Choosing the class is arithmetic on the layout (a
//! `next_power_of_two`), not a search.
//!
//! Requests no class can serve — larger than the largest class, or aligned
//! beyond it — go to the [`Fallback`]: [`NoFallback`] (the default) answers
//! them with an `Err`, and any [`GlobalAlloc`], such as `std::alloc::System`,
//! serves them. Zero-sized requests get a dangling, aligned pointer and touch
//! nothing.
//!
//! # The class table is a type
//!
//! The largest class is the type parameter `M` (`U256` by default), bound by
//! [`SizeClassLimit`]: a power of two, at least 8. The number of classes,
//! `log2(M) − 2`, is computed by the compiler and is the length of the
//! `GenericArray` of class caches, so a kernel on 16 KiB pages can have
//! classes up to 4 KiB with `SlabAllocator<Pages16K, F, U4096>` and no
//! wasted entries. A largest class that does not fit the page size is a
//! compile error.
//!
//! # Provenance
//!
//! [`deallocate`](SlabAllocator::deallocate) and
//! [`reallocate`](SlabAllocator::reallocate) reach the slab header through
//! the pointer they are given, by address arithmetic alone
//! (`ptr::map_addr`): strict provenance, as the typed front. Their contract
//! asks for the pointer `allocate` returned, or one derived from it by
//! pointer arithmetic and casts — which is what collections built on an
//! allocator keep.
//!
//! A pointer coming back through `GlobalAlloc::dealloc` may carry less: a
//! `Box` narrows its borrow to the object, and reading the header through it
//! would be undefined behaviour under Rust's aliasing rules. So each class
//! page's provenance is exposed when it becomes a slab, and the
//! `GlobalAlloc` entry points rebuild the header pointer from the address
//! (`ptr::with_exposed_provenance`); an in-place `realloc` hands back a
//! pointer rebuilt the same way, valid for the whole slot.
//!
//! # As the global allocator
//!
//! `SlabAllocator` implements [`GlobalAlloc`]. Its pages must then come from
//! somewhere other than the global allocator itself:
//!
//! ```
//! use minimal_slab::{GlobalAllocPages, SlabAllocator};
//! use std::alloc::System;
//!
//! #[global_allocator]
//! static HEAP: SlabAllocator<GlobalAllocPages<System>, System> =
//!     SlabAllocator::new_in(GlobalAllocPages::new(System), System);
//!
//! let v: Vec<u32> = (0..10).collect(); // 40 bytes: the 64-byte class
//! assert_eq!(v.iter().sum::<u32>(), 45);
//! assert!(HEAP.stats().objects_in_use() > 0);
//! ```

use core::alloc::{GlobalAlloc, Layout};
use core::fmt;
use core::mem::MaybeUninit;
use core::ops::Sub;
use core::ptr::{self, NonNull};

use generic_array::{ArrayLength, GenericArray, sequence::GenericSequence};
use typenum::{Diff, IsGreaterOrEqual, Log2, Logarithm2, PowerOfTwo, True, U2, U8, U256, Unsigned};

use crate::error::AllocError;
use crate::magazine::Magazine;
use crate::misuse::Misuse;
use crate::page_allocator::{DefaultPages, PageAllocator, page_size_of};
use crate::slab::{Slab, SlabGeometry};
use crate::slab_cache::{
    AllocFault, CacheConfig, CacheCore, OwnerTag, SlotReach, with_exposed_page_provenance,
};
use crate::stats::{AllocatorStats, SlabOccupancy};
use crate::sync::{AtomicUsize, Mutex, Ordering, const_fn_unless_loom};

/// The smallest size class, in bytes.
pub const MIN_CLASS: usize = 8;

/// The slot size of size class number `class` (0 for `MIN_CLASS`).
#[inline]
pub(crate) const fn class_size(class: usize) -> usize {
    MIN_CLASS << class
}

/// The largest size class of a `SlabAllocator`, as a type-level number: a
/// power of two, at least [`MIN_CLASS`]. `Classes` is how many size classes
/// that makes (8, 16, …, up to the limit).
///
/// Implemented for exactly those numbers; there is nothing to implement by
/// hand.
pub trait SizeClassLimit: Unsigned + PowerOfTwo + Send + Sync + 'static {
    /// The number of size classes, `log2(limit) − 2`.
    type Classes: ArrayLength;
}

impl<M> SizeClassLimit for M
where
    M: Unsigned
        + PowerOfTwo
        + IsGreaterOrEqual<U8, Output = True>
        + Logarithm2
        + Send
        + Sync
        + 'static,
    Log2<M>: Sub<U2>,
    Diff<Log2<M>, U2>: ArrayLength,
{
    type Classes = Diff<Log2<M>, U2>;
}

/// Where a [`SlabAllocator`] sends requests that no size class can serve.
///
/// # Safety
///
/// `allocate` must return memory valid for reads and writes of
/// `layout.size()` bytes, aligned to `layout.align()`, not handed out to
/// anyone else until it is passed to `deallocate` or `reallocate`.
/// `reallocate` must keep the first `min(old, new)` bytes. Zero-sized
/// layouts must be handled too (`SlabAllocator` never sends them, but the
/// methods are public).
pub unsafe trait Fallback {
    /// Allocates `layout` (never zero-sized).
    fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, AllocError>;

    /// Frees `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` came from `allocate` (or `reallocate`) on this fallback with this
    /// `layout`, has not been freed since (no double free), and is not used
    /// after this call (no use after free).
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout);

    /// Resizes `ptr` to `new_size` bytes, keeping its contents.
    ///
    /// # Safety
    ///
    /// As for [`deallocate`](Self::deallocate); `new_size` is non-zero and,
    /// rounded up to `layout.align()`, does not overflow `isize`. On success
    /// the old pointer must not be used again.
    unsafe fn reallocate(
        &self,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Result<NonNull<u8>, AllocError>;
}

/// The default fallback: no fallback. Requests beyond the size classes fail
/// with [`AllocError::UnsupportedLayout`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoFallback;

// SAFETY: never hands out memory.
unsafe impl Fallback for NoFallback {
    fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        Err(unsupported(layout))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, _layout: Layout) {
        // Nothing was ever allocated here: the pointer is foreign, or the
        // layout is not the one it was allocated with.
        report_in_allocator(Misuse::ForeignPointer, ptr)
    }

    unsafe fn reallocate(
        &self,
        _ptr: NonNull<u8>,
        layout: Layout,
        _new_size: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        Err(unsupported(layout))
    }
}

// SAFETY: forwards to `A`, whose `GlobalAlloc` contract gives the guarantees;
// zero-sized layouts, which `GlobalAlloc` must never see, are answered here.
unsafe impl<A: GlobalAlloc> Fallback for A {
    fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        if layout.size() == 0 {
            return Ok(dangling(layout));
        }
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { self.alloc(layout) };
        NonNull::new(ptr).ok_or(AllocError::FallbackFailed {
            size: layout.size(),
            align: layout.align(),
        })
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() == 0 {
            return; // a dangling pointer from `allocate`
        }
        // SAFETY: the caller's guarantees are `GlobalAlloc::dealloc`'s.
        unsafe { self.dealloc(ptr.as_ptr(), layout) }
    }

    unsafe fn reallocate(
        &self,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        if layout.size() == 0 {
            return self.allocate(
                Layout::from_size_align(new_size, layout.align())
                    .map_err(|_| unsupported(layout))?,
            );
        }
        // SAFETY: the caller's guarantees are `GlobalAlloc::realloc`'s (a
        // non-zero old size, and a non-zero new size that does not overflow).
        let new = unsafe { self.realloc(ptr.as_ptr(), layout, new_size) };
        NonNull::new(new).ok_or(AllocError::FallbackFailed {
            size: new_size,
            align: layout.align(),
        })
    }
}

/// The error for a layout nothing here can serve.
pub(crate) fn unsupported(layout: Layout) -> AllocError {
    AllocError::UnsupportedLayout {
        size: layout.size(),
        align: layout.align(),
    }
}

/// Reports a misuse found inside an allocator entry point. Allocator methods
/// must not unwind, and a `GlobalAlloc` certainly not: the panic message is
/// printed, and an `extern "C"` function cannot unwind, so the process aborts.
#[cold]
#[allow(improper_ctypes_definitions)] // never called from outside Rust
extern "C" fn report_in_allocator(misuse: Misuse, ptr: NonNull<u8>) -> ! {
    misuse.report(ptr)
}

/// A size-class allocator for raw `Layout` requests up to `M` bytes (256 by
/// default), with pages from `P` and larger requests sent to `F`.
///
/// ```
/// use core::alloc::Layout;
/// use minimal_slab::SlabAllocator;
///
/// static ALLOC: SlabAllocator = SlabAllocator::new();
///
/// let layout = Layout::new::<[u64; 4]>();
/// let p = ALLOC.allocate(layout).unwrap();
/// assert_eq!(p.as_ptr() as usize % layout.align(), 0);
/// // SAFETY: `p` came from `ALLOC.allocate(layout)` and is not used again.
/// unsafe { ALLOC.deallocate(p, layout) };
///
/// // Beyond the classes, without a fallback: an error, not a panic.
/// assert!(ALLOC.allocate(Layout::new::<[u8; 300]>()).is_err());
/// ```
pub struct SlabAllocator<P: PageAllocator = DefaultPages, F = NoFallback, M: SizeClassLimit = U256>
{
    classes: GenericArray<Mutex<CacheCore>, M::Classes>,
    pages: P,
    fallback: F,
    owner: OwnerTag,
    fallback_allocations: AtomicUsize,
    fallback_bytes: AtomicUsize,
}

#[cfg(feature = "alloc")]
impl SlabAllocator<crate::page_allocator::ChunkedGlobalPages, NoFallback, U256> {
    const_fn_unless_loom! {
        /// Size classes 8 to 256 bytes on 4 KiB pages from the global allocator,
        /// in chunks of 256 KiB shared by the classes
        /// ([`ChunkedGlobalPages`](crate::page_allocator::ChunkedGlobalPages)),
        /// no fallback. `const`, so it can be a `static`.
        pub const fn new() -> Self {
            Self::new_in(
                crate::page_allocator::ChunkedGlobalPages::global(),
                NoFallback,
            )
        }
    }
}

impl<P: PageAllocator, F: Fallback> SlabAllocator<P, F, U256> {
    const_fn_unless_loom! {
        /// Size classes 8 to 256 bytes, pages from `pages`, and requests beyond
        /// the classes sent to `fallback`.
        pub const fn new_in(pages: P, fallback: F) -> Self {
            Self::with_config(pages, fallback, CacheConfig::new())
        }
    }

    const_fn_unless_loom! {
        /// Like [`new_in`](Self::new_in), with `config` applied to each size
        /// class on its own (a page limit of 10 is 10 pages per class).
        pub const fn with_config(pages: P, fallback: F, config: CacheConfig) -> Self {
            Self::with_size_classes(pages, fallback, config)
        }
    }
}

#[cfg(feature = "alloc")]
impl Default for SlabAllocator<crate::page_allocator::ChunkedGlobalPages, NoFallback, U256> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: PageAllocator, F: Fallback, M: SizeClassLimit> SlabAllocator<P, F, M> {
    /// Rejects, at compile time, a largest class that does not fit a page.
    const CLASSES_FIT: () = {
        let largest = M::USIZE;
        if SlabGeometry::new(page_size_of::<P>(), largest, largest).is_err() {
            panic!(
                "SlabAllocator: the largest size class does not fit a page after the slab header; \
                 use bigger pages or a smaller size-class limit"
            );
        }
    };

    const_fn_unless_loom! {
        /// Like [`with_config`](SlabAllocator::with_config), for any largest
        /// size class `M`, named by the type:
        ///
        /// ```
        /// use minimal_slab::{CacheConfig, GlobalPages, NoFallback, SlabAllocator};
        /// use minimal_slab::typenum::{U4096, U16384};
        ///
        /// // Classes 8 B .. 4 KiB on 16 KiB pages.
        /// let heap = SlabAllocator::<_, _, U4096>::with_size_classes(
        ///     GlobalPages::<U16384>::with_page_size(),
        ///     NoFallback,
        ///     CacheConfig::new(),
        /// );
        /// assert_eq!(heap.stats().classes.len(), 10);
        /// ```
        pub const fn with_size_classes(pages: P, fallback: F, config: CacheConfig) -> Self {
            let () = Self::CLASSES_FIT;
            let mut classes = GenericArray::<Mutex<CacheCore>, M::Classes>::uninit();
            let slots = classes.as_mut_slice();
            let mut i = 0;
            while i < slots.len() {
                let size = class_size(i);
                let geometry = match SlabGeometry::new(page_size_of::<P>(), size, size) {
                    Ok(geometry) => geometry,
                    Err(_) => panic!("every class up to the largest fits (CLASSES_FIT)"),
                };
                slots[i] = MaybeUninit::new(Mutex::new(CacheCore::new(geometry, config, true)));
                i += 1;
            }
            Self {
                // SAFETY: the loop initialised every element.
                classes: unsafe { GenericArray::assume_init(classes) },
                pages,
                fallback,
                owner: OwnerTag::new(),
                fallback_allocations: AtomicUsize::new(0),
                fallback_bytes: AtomicUsize::new(0),
            }
        }
    }

    /// The size class serving `layout`, as an index, or `None` if no class can.
    #[inline]
    fn class_of(layout: Layout) -> Option<usize> {
        let need = layout.size().max(layout.align());
        if need > M::USIZE {
            return None;
        }
        let class_size = need.max(MIN_CLASS).next_power_of_two();
        Some((class_size.trailing_zeros() - MIN_CLASS.trailing_zeros()) as usize)
    }

    /// The slot size that serves `layout`, or `None` if only the fallback can.
    ///
    /// ```
    /// use core::alloc::Layout;
    /// use minimal_slab::SlabAllocator;
    ///
    /// type Heap = SlabAllocator;
    /// assert_eq!(Heap::size_class(Layout::new::<u8>()), Some(8));
    /// assert_eq!(Heap::size_class(Layout::new::<[u8; 33]>()), Some(64));
    /// assert_eq!(Heap::size_class(Layout::from_size_align(8, 128).unwrap()), Some(128));
    /// assert_eq!(Heap::size_class(Layout::new::<[u8; 257]>()), None);
    /// ```
    pub fn size_class(layout: Layout) -> Option<usize> {
        Self::class_of(layout).map(class_size)
    }

    /// Allocates memory for `layout`: from a size class if one fits, else
    /// from the fallback. The pointer is aligned to `layout.align()`.
    ///
    /// # Errors
    ///
    /// [`AllocError::UnsupportedLayout`] if no class fits and there is no
    /// fallback, [`AllocError::FallbackFailed`] if the fallback is out of
    /// memory, and the page errors of [`AllocError`] if a class needs a page
    /// and cannot get one.
    ///
    /// # Panics
    ///
    /// Checked builds panic, naming the misuse and the address, if the slot
    /// about to be handed out was written to while it was free (a use after
    /// free somewhere else in the program).
    #[inline]
    pub fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        self.allocate_or_report(layout, Misuse::report)
    }

    /// `allocate`, with the way a misuse is reported as a parameter:
    /// `allocate` panics, `GlobalAlloc::alloc` must not unwind.
    #[inline]
    fn allocate_or_report(
        &self,
        layout: Layout,
        report: fn(Misuse, NonNull<u8>) -> !,
    ) -> Result<NonNull<u8>, AllocError> {
        if layout.size() == 0 {
            return Ok(dangling(layout));
        }
        match Self::class_of(layout) {
            Some(class) => {
                let outcome = {
                    let mut core = self.classes[class].lock();
                    // SAFETY: `self.pages` is the only page allocator any
                    // class core sees.
                    unsafe { core.alloc(&self.pages, &self.owner) }
                };
                // A misuse is reported after the lock is released.
                match outcome {
                    Ok(slot) => Ok(slot),
                    Err(AllocFault::Refused(error)) => Err(error),
                    Err(AllocFault::Misuse(misuse, slot)) => report(misuse, slot),
                }
            }
            None => {
                let ptr = self.fallback.allocate(layout)?;
                self.count_fallback(layout.size(), true);
                Ok(ptr)
            }
        }
    }

    /// Frees memory from [`allocate`](Self::allocate).
    ///
    /// # Safety
    ///
    /// - `ptr` came from `allocate` (or [`reallocate`](Self::reallocate)) on
    ///   this allocator with this same `layout`, and is that pointer or one
    ///   derived from it by pointer arithmetic and casts — not one
    ///   re-derived from a reference or a `Box` to the object, whose borrow
    ///   covers the object alone (see [Provenance](self#provenance); the
    ///   [`GlobalAlloc`] methods accept those);
    /// - it has not been freed since (no double free), and is not used after
    ///   this call (no use after free).
    ///
    /// Checked builds detect a double free, a pointer this allocator never
    /// handed out (including a slot of another allocator or cache), and a
    /// layout of another size class than the allocation's, and panic with a
    /// message naming the misuse and the address. (Through [`GlobalAlloc`],
    /// which must not unwind, the same message is printed and the process
    /// aborts.) A slab pointer freed with a layout beyond the size classes
    /// goes to the fallback unchecked: the fallback's memory is not ours to
    /// inspect.
    #[inline]
    pub unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's guarantees, a pointer reaching the page among
        // them.
        if let Err(misuse) = unsafe { self.release(ptr, layout, SlotReach::Page) } {
            misuse.report(ptr);
        }
    }

    /// [`deallocate`](Self::deallocate) for a pointer whose borrow may cover
    /// the object alone (a `Box`'s), as the `GlobalAlloc` methods take it.
    ///
    /// # Safety
    ///
    /// As for `deallocate`, except that `ptr` may be re-derived from a
    /// reference or a `Box` to the object.
    #[inline]
    pub(crate) unsafe fn deallocate_narrowed(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's guarantees.
        let released = unsafe { self.release(ptr, layout, SlotReach::Object(layout.size())) };
        if let Err(misuse) = released {
            report_in_allocator(misuse, ptr);
        }
    }

    /// [`reallocate`](Self::reallocate) for a pointer whose borrow may cover
    /// the object alone, as `GlobalAlloc::realloc` takes it. A misuse aborts.
    ///
    /// # Safety
    ///
    /// As for [`deallocate_narrowed`](Self::deallocate_narrowed), and
    /// `new_size` is as for `reallocate`.
    pub(crate) unsafe fn reallocate_narrowed(
        &self,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        let abort = |misuse, ptr| report_in_allocator(misuse, ptr);
        let reach = SlotReach::Object(layout.size());
        // SAFETY: the caller's guarantees.
        unsafe { self.resize(ptr, layout, new_size, reach, abort) }
    }

    /// `deallocate` without the report: the misuse, if checked builds found
    /// one, is returned after every lock is released.
    ///
    /// # Safety
    ///
    /// As for [`deallocate`](Self::deallocate).
    #[inline]
    unsafe fn release(
        &self,
        ptr: NonNull<u8>,
        layout: Layout,
        reach: SlotReach,
    ) -> Result<(), Misuse> {
        if layout.size() == 0 {
            return Ok(());
        }
        match Self::class_of(layout) {
            Some(class) => {
                let mut core = self.classes[class].lock();
                // SAFETY: the caller's guarantees, `reach` among them;
                // `self.pages` is the only page allocator any class core sees,
                // and class cores expose their pages.
                unsafe { core.free(&self.pages, &self.owner, ptr, reach) }
            }
            None => {
                // SAFETY: the caller's guarantees: the same layout means the
                // fallback allocated it.
                unsafe { self.fallback.deallocate(ptr, layout) };
                self.count_fallback(layout.size(), false);
                Ok(())
            }
        }
    }

    /// Resizes memory from [`allocate`](Self::allocate) to `new_size` bytes,
    /// keeping the first `min(layout.size(), new_size)` bytes. Stays in place
    /// when the new size falls in the same size class.
    ///
    /// # Safety
    ///
    /// As for [`deallocate`](Self::deallocate). On success the old pointer
    /// must not be used again; on failure it is still valid and still owned
    /// by the caller.
    pub unsafe fn reallocate(
        &self,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: the caller's guarantees, a pointer reaching the page among
        // them.
        unsafe { self.resize(ptr, layout, new_size, SlotReach::Page, Misuse::report) }
    }

    /// `reallocate`, with what the pointer reaches and the way a misuse is
    /// reported as parameters: `reallocate` panics, `GlobalAlloc::realloc`
    /// must not unwind.
    ///
    /// # Safety
    ///
    /// As for [`reallocate`](Self::reallocate), with `reach` true of `ptr`.
    unsafe fn resize(
        &self,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
        reach: SlotReach,
        report: fn(Misuse, NonNull<u8>) -> !,
    ) -> Result<NonNull<u8>, AllocError> {
        let new_layout = resized(layout, new_size)?;
        let old_class = if layout.size() == 0 {
            None
        } else {
            Self::class_of(layout)
        };
        let new_class = if new_size == 0 {
            None
        } else {
            Self::class_of(new_layout)
        };
        if layout.size() != 0 && new_size != 0 {
            if old_class.is_some() && old_class == new_class {
                // In place. A pointer entitled to the old size only (a
                // `Box`'s borrow) is swapped for one with the page's exposed
                // provenance, valid for the whole slot.
                return Ok(match reach {
                    SlotReach::Page => ptr,
                    SlotReach::Object(_) => with_exposed_page_provenance(ptr),
                });
            }
            if old_class.is_none() && new_class.is_none() {
                // SAFETY: both layouts belong to the fallback; the caller's
                // guarantees cover the rest.
                let new = unsafe { self.fallback.reallocate(ptr, layout, new_size) }?;
                self.count_fallback(layout.size(), false);
                self.count_fallback(new_size, true);
                return Ok(new);
            }
        }
        let new = self.allocate_or_report(new_layout, report)?;
        let keep = layout.size().min(new_size);
        // SAFETY: both blocks are valid for `keep` bytes and distinct (the
        // old one is still allocated while the new one is handed out).
        unsafe { ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), keep) };
        // SAFETY: the caller's guarantees for `ptr`, `layout` and `reach`.
        if let Err(misuse) = unsafe { self.release(ptr, layout, reach) } {
            report(misuse, ptr);
        }
        Ok(new)
    }

    /// Refills `magazine` for size class `class` with up to a batch of
    /// slots, under that class's lock. A misuse found on the way is
    /// returned, for the caller to report once it no longer borrows the
    /// magazine.
    #[cold]
    #[inline(never)]
    pub(crate) fn refill_class<N: ArrayLength>(
        &self,
        class: usize,
        magazine: &mut Magazine<N>,
    ) -> Result<(), AllocFault> {
        let mut core = self.classes[class].lock();
        // SAFETY: `self.pages` is the only page allocator any class core
        // sees.
        unsafe { core.alloc_into(&self.pages, &self.owner, magazine) }
    }

    /// Gives up to `count` slots from the top of `magazine` back to size
    /// class `class`, under its lock. A misuse found on the way is returned
    /// with the slot, for the caller to report once it no longer borrows the
    /// magazine.
    ///
    /// # Safety
    ///
    /// Every slot in the magazine was parked there (`magazine::park`) after
    /// class `class` handed it out, and no one uses it.
    #[cold]
    #[inline(never)]
    pub(crate) unsafe fn drain_class<N: ArrayLength>(
        &self,
        class: usize,
        magazine: &mut Magazine<N>,
        count: usize,
    ) -> Result<(), (Misuse, NonNull<u8>)> {
        let mut core = self.classes[class].lock();
        // SAFETY: the caller's guarantees; `self.pages` is the only page
        // allocator any class core sees.
        unsafe { core.free_from(&self.pages, &self.owner, magazine, count) }
    }

    /// The size class serving `layout`, as an index, or `None` if only the
    /// fallback can (for the local front).
    #[inline]
    pub(crate) fn class_index(layout: Layout) -> Option<usize> {
        Self::class_of(layout)
    }

    /// Checks, without any lock, that `ptr` is a slot of size class `class`
    /// of this allocator (checked builds; see [`Slab::check_owner`]).
    ///
    /// # Safety
    ///
    /// As for [`Slab::check_owner`]: `ptr` points into readable memory.
    pub(crate) unsafe fn check_class_slot(
        &self,
        class: usize,
        ptr: NonNull<u8>,
    ) -> Result<(), Misuse> {
        let size = class_size(class);
        let Ok(geometry) = SlabGeometry::new(page_size_of::<P>(), size, size) else {
            unreachable!("every class fits a page (CLASSES_FIT)")
        };
        let slab = Slab::containing(ptr, geometry.page_size);
        // SAFETY: the caller's guarantees.
        unsafe { slab.check_owner(ptr, &geometry, self.owner.get()) }
    }

    /// Gives back the page of every empty slab in every class, the reserves
    /// included, and returns how many; then lets the page source give back
    /// what it keeps in reserve ([`PageAllocator::trim`]).
    pub fn shrink(&self) -> usize {
        let released = self
            .classes
            .iter()
            .map(|class| {
                let mut core = class.lock();
                // SAFETY: `self.pages` is the only page allocator any class
                // core sees.
                unsafe { core.shrink(&self.pages) }
            })
            .sum();
        self.pages.trim();
        released
    }

    /// A snapshot of every class's counters, and of the fallback's.
    pub fn stats(&self) -> AllocatorStats<M::Classes> {
        AllocatorStats {
            classes: GenericArray::generate(|i| self.classes[i].lock().stats(CLASS_NAMES[i])),
            fallback_allocations: self.fallback_allocations.load(Ordering::Relaxed),
            fallback_bytes: self.fallback_bytes.load(Ordering::Relaxed),
        }
    }

    /// Shows `visit` every slab of every size class, with the class's slot
    /// size: which slots are used and which free (see [`SlabOccupancy`]).
    ///
    /// Each class is locked while its slabs are visited, so `visit` must not
    /// allocate from this allocator — mind that printing may, if this is the
    /// global allocator.
    ///
    /// ```
    /// use core::alloc::Layout;
    /// use minimal_slab::SlabAllocator;
    ///
    /// let heap = SlabAllocator::new();
    /// let layout = Layout::new::<[u8; 100]>();
    /// let p = heap.allocate(layout).unwrap();
    /// let mut seen = Vec::new();
    /// heap.for_each_slab(|class, slab| seen.push((class, slab.in_use())));
    /// assert_eq!(seen, [(128, 1)]);
    /// // SAFETY: allocated just above with `layout`.
    /// unsafe { heap.deallocate(p, layout) };
    /// ```
    pub fn for_each_slab(&self, mut visit: impl FnMut(usize, SlabOccupancy<'_>)) {
        for (i, class) in self.classes.iter().enumerate() {
            let size = class_size(i);
            class.lock().for_each_slab(|slab| visit(size, slab));
        }
    }

    /// The page allocator the size classes take their pages from.
    pub fn page_allocator(&self) -> &P {
        &self.pages
    }

    /// The allocator that serves requests beyond the size classes.
    pub fn fallback(&self) -> &F {
        &self.fallback
    }

    fn count_fallback(&self, bytes: usize, allocated: bool) {
        if allocated {
            self.fallback_allocations.fetch_add(1, Ordering::Relaxed);
            self.fallback_bytes.fetch_add(bytes, Ordering::Relaxed);
        } else {
            self.fallback_allocations.fetch_sub(1, Ordering::Relaxed);
            self.fallback_bytes.fetch_sub(bytes, Ordering::Relaxed);
        }
    }
}

/// `layout` with its size changed to `new_size`, or the error a reallocation
/// to an impossible size (one that overflows `isize` once aligned) returns.
pub(crate) fn resized(layout: Layout, new_size: usize) -> Result<Layout, AllocError> {
    Layout::from_size_align(new_size, layout.align()).map_err(|_| AllocError::UnsupportedLayout {
        size: new_size,
        align: layout.align(),
    })
}

/// A non-null pointer aligned to `layout.align()` that points at nothing: the
/// answer to a zero-sized request.
pub(crate) fn dangling(layout: Layout) -> NonNull<u8> {
    NonNull::new(ptr::without_provenance_mut(layout.align())).unwrap_or(NonNull::dangling())
}

/// Names of the size classes in stats tables, 8 bytes to 1 GiB.
const CLASS_NAMES: [&str; 28] = [
    "size-8",
    "size-16",
    "size-32",
    "size-64",
    "size-128",
    "size-256",
    "size-512",
    "size-1024",
    "size-2048",
    "size-4096",
    "size-8192",
    "size-16384",
    "size-32768",
    "size-65536",
    "size-131072",
    "size-262144",
    "size-524288",
    "size-1048576",
    "size-2097152",
    "size-4194304",
    "size-8388608",
    "size-16777216",
    "size-33554432",
    "size-67108864",
    "size-134217728",
    "size-268435456",
    "size-536870912",
    "size-1073741824",
];

impl<P: PageAllocator, F, M: SizeClassLimit> Drop for SlabAllocator<P, F, M> {
    fn drop(&mut self) {
        // Memory still allocated keeps its pages (it may be leaked on
        // purpose); empty slabs go back.
        for class in self.classes.iter_mut() {
            // SAFETY: `self.pages` is the only page allocator any class core
            // sees; empty slabs hold nothing anyone uses.
            unsafe { class.get_mut().shrink(&self.pages) };
        }
        self.pages.trim();
    }
}

impl<P: PageAllocator + fmt::Debug, F: fmt::Debug, M: SizeClassLimit> fmt::Debug
    for SlabAllocator<P, F, M>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlabAllocator")
            .field("largest_class", &M::USIZE)
            .field("pages", &self.pages)
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}

// SAFETY: `allocate` returns memory valid for the layout (a class slot at
// least as large and as aligned, or the fallback's), never handed out twice
// (each class core's invariants), and `deallocate` routes by layout to where
// `alloc` got it. Neither unwinds: misuse aborts.
unsafe impl<P, F, M> GlobalAlloc for SlabAllocator<P, F, M>
where
    P: PageAllocator,
    F: Fallback,
    M: SizeClassLimit,
{
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let abort = |misuse, ptr| report_in_allocator(misuse, ptr);
        self.allocate_or_report(layout, abort)
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(ptr) = NonNull::new(ptr) {
            // SAFETY: `GlobalAlloc::dealloc`'s contract is
            // `deallocate_narrowed`'s.
            unsafe { self.deallocate_narrowed(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(ptr) = NonNull::new(ptr) else {
            return ptr::null_mut();
        };
        // SAFETY: `GlobalAlloc::realloc`'s contract is `reallocate_narrowed`'s.
        match unsafe { self.reallocate_narrowed(ptr, layout, new_size) } {
            Ok(new) => new.as_ptr(),
            Err(_) => ptr::null_mut(),
        }
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use crate::page_allocator::GlobalPages;
    use typenum::{U4096, U16384};

    type Default = SlabAllocator;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn each_layout_goes_to_the_smallest_class_covering_size_and_align() {
        assert_eq!(Default::class_of(layout(1, 1)), Some(0));
        assert_eq!(Default::class_of(layout(8, 8)), Some(0));
        assert_eq!(Default::class_of(layout(9, 1)), Some(1));
        assert_eq!(Default::class_of(layout(8, 32)), Some(2));
        assert_eq!(Default::class_of(layout(256, 1)), Some(5));
        assert_eq!(Default::class_of(layout(257, 1)), None);
        assert_eq!(Default::class_of(layout(1, 512)), None);
        for size in 1..=256 {
            let class = Default::size_class(layout(size, 1)).unwrap();
            assert!(
                class >= size && class / 2 < size.max(8),
                "size {size} -> class {class}"
            );
        }
    }

    #[test]
    fn the_class_table_length_is_computed_from_the_limit() {
        let small = SlabAllocator::new_in(GlobalPages::new(), NoFallback);
        assert_eq!(small.stats().classes.len(), 6);
        let big = SlabAllocator::<_, _, U4096>::with_size_classes(
            GlobalPages::<U16384>::with_page_size(),
            NoFallback,
            CacheConfig::new(),
        );
        assert_eq!(big.stats().classes.len(), 10);
        let p = big.allocate(layout(3000, 8)).unwrap();
        assert_eq!(big.stats().classes[9].objects_in_use, 1);
        // SAFETY: allocated just above with this layout.
        unsafe { big.deallocate(p, layout(3000, 8)) };
    }

    #[test]
    fn fallback_requests_are_counted() {
        let heap = SlabAllocator::new_in(GlobalPages::new(), std::alloc::System);
        let big = layout(1000, 8);
        let p = heap.allocate(big).unwrap();
        assert_eq!(
            (
                heap.stats().fallback_allocations,
                heap.stats().fallback_bytes
            ),
            (1, 1000)
        );
        // SAFETY: allocated just above with this layout.
        let p = unsafe { heap.reallocate(p, big, 2000) }.unwrap();
        assert_eq!(heap.stats().fallback_bytes, 2000);
        // SAFETY: reallocated just above to 2000 bytes.
        unsafe { heap.deallocate(p, layout(2000, 8)) };
        assert_eq!(heap.stats().fallback_allocations, 0);
    }
}
