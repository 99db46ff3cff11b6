//! The untyped front: size classes for raw `Layout` requests.
//!
//! The user's story — size classes, the fallback, provenance, use as the
//! global allocator — is on [`SlabAllocator`]; this is the maintainer's.
//!
//! # The files
//!
//! The allocator and its own methods (here); which class serves a layout
//! (`size_class`); the [`Fallback`] (`fallback`); reallocation, written once
//! for every raw entry point (`resize`); the `GlobalAlloc` impl and the
//! entry points for narrowed pointers (`global_alloc`). The size classes
//! themselves are a [`CacheSet`] of one core per class: the lock, the pages,
//! the misuse report, `shrink`, `stats` and `Drop` live there.

use core::alloc::Layout;
use core::ptr::NonNull;

use typenum::U256;

use crate::cache::{self, CacheConfig, CacheSet, PowersOfTwo, SlotReach, class_size};
use crate::checked::{Misuse, Report};
use crate::error::AllocError;
use crate::page_allocator::{DefaultPages, PageAllocator, page_size_of};
use crate::slab::SlabGeometry;
use crate::sync::const_fn_unless_loom;
#[cfg(feature = "std")]
use crate::thread_cache::{OwnLines, ThreadCache};

mod fallback;
mod fallback_counts;
mod global_alloc;
mod inspect;
mod resize;
mod size_class;
#[cfg(all(test, feature = "alloc"))]
mod tests;

#[cfg(any(feature = "allocator-api2", feature = "nightly"))]
pub(crate) use fallback::unsupported;
pub use fallback::{Fallback, NoFallback};
pub(crate) use fallback::{abort_on_misuse, dangling};
use fallback_counts::FallbackCounts;
pub(crate) use resize::{Blocks, Entry, resize};
pub use size_class::SizeClassLimit;
use size_class::class_of;

/// A size-class allocator for raw `Layout` requests up to `M` bytes (256 by
/// default), with pages from `P` and larger requests sent to `F`.
///
/// It keeps one cache core per size class — 8, 16, 32, 64,
/// 128 and 256 bytes by default — each behind its own lock, so threads that
/// allocate different sizes do not contend. A request goes to the smallest
/// class that is at least both its size and its alignment; class slots are
/// aligned to the class size, so any alignment up to the class is honoured
/// without padding. Choosing the class is arithmetic on the layout (a
/// `next_power_of_two`), not a search.
///
/// Requests no class can serve — larger than the largest class, or aligned
/// beyond it — go to the [`Fallback`]: [`NoFallback`] (the default) answers
/// them with an `Err`, and any [`GlobalAlloc`](core::alloc::GlobalAlloc), such as `std::alloc::System`,
/// serves them. Zero-sized requests get a dangling, aligned pointer and touch
/// nothing.
///
/// # The class table is a type
///
/// The largest class is the type parameter `M` (`U256` by default), bound by
/// [`SizeClassLimit`]: a power of two, at least 8. The number of classes,
/// `log2(M) − 2`, is computed by the compiler and is the length of the
/// `GenericArray` of class caches, so a kernel on 16 KiB pages can have
/// classes up to 4 KiB with `SlabAllocator<Pages16K, F, U4096>` and no
/// wasted entries. A largest class that does not fit the page size is a
/// compile error.
///
/// # Provenance
///
/// [`deallocate`](SlabAllocator::deallocate) and
/// [`reallocate`](SlabAllocator::reallocate) reach the slab header through
/// the pointer they are given, by address arithmetic alone
/// (`ptr::map_addr`): strict provenance, as the typed front. Their contract
/// asks for the pointer `allocate` returned, or one derived from it by
/// pointer arithmetic and casts — which is what collections built on an
/// allocator keep.
///
/// A pointer coming back through `GlobalAlloc::dealloc` may carry less: a
/// `Box` narrows its borrow to the object, and reading the header through it
/// would be undefined behaviour under Rust's aliasing rules. So each class
/// page's provenance is exposed when it becomes a slab, and the
/// `GlobalAlloc` entry points rebuild the header pointer from the address
/// (`ptr::with_exposed_provenance`). The object's own bytes are written
/// only through the caller's pointer (a `Box` being freed may still guard
/// them). A `GlobalAlloc::realloc` within one class hands back the
/// caller's pointer when the block shrinks, and moves the block when it
/// grows (the caller's pointer reaches no further than the old size, and a
/// `Box` may still guard the old bytes against any other); the `Allocator`
/// impls, whose blocks are whole slots, stay in place.
///
/// # As the global allocator
///
/// `SlabAllocator` implements [`GlobalAlloc`](core::alloc::GlobalAlloc). Its pages must then come from
/// somewhere other than the global allocator itself:
///
/// ```
/// use minimal_slab::{GlobalAllocPages, SlabAllocator};
/// use std::alloc::System;
///
/// #[global_allocator]
/// static HEAP: SlabAllocator<GlobalAllocPages<System>, System> =
///     SlabAllocator::new_in(GlobalAllocPages::new(System), System);
///
/// let v: Vec<u32> = (0..10).collect(); // 40 bytes: the 64-byte class
/// assert_eq!(v.iter().sum::<u32>(), 45);
/// assert!(HEAP.stats().objects_in_use() > 0);
/// ```
///
/// A block is valid until it is freed or the allocator is dropped: dropping
/// a `SlabAllocator` gives every page back to its source, blocks still
/// allocated included (as the `Allocator` trait allows).
///
/// # Example
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
// `C` layout, the set first: see `SlabCache`'s.
#[repr(C)]
pub struct SlabAllocator<P: PageAllocator = DefaultPages, F = NoFallback, M: SizeClassLimit = U256>
{
    set: CacheSet<P, M::Classes, PowersOfTwo<M::Classes>>,
    /// This allocator's entries in the threads' tables (its size classes).
    #[cfg(feature = "std")]
    thread: OwnLines<ThreadCache>,
    fallback: F,
    fallback_counts: FallbackCounts,
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
    /// The smallest size class, in bytes.
    pub const MIN_CLASS: usize = cache::MIN_CLASS;

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
        /// assert_eq!(heap.stats().classes().len(), 10);
        /// ```
        pub const fn with_size_classes(pages: P, fallback: F, config: CacheConfig) -> Self {
            let () = Self::CLASSES_FIT;
            Self {
                set: CacheSet::new(pages, config, PowersOfTwo::new(page_size_of::<P>())),
                #[cfg(feature = "std")]
                thread: OwnLines(ThreadCache::new()),
                fallback,
                fallback_counts: FallbackCounts::new(),
            }
        }
    }

    /// The size class serving `layout`, as an index, or `None` if only the
    /// fallback can (zero-sized layouts included: they take no slot).
    #[inline]
    pub(crate) fn class_index(layout: Layout) -> Option<usize> {
        if layout.size() == 0 {
            return None;
        }
        class_of(layout, M::USIZE)
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
        class_of(layout, M::USIZE).map(class_size)
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
        #[cfg(feature = "std")]
        if let Some(class) = Self::class_index(layout) {
            return self.thread.take(&self.set, class, class_size(class));
        }
        self.allocate_with(layout, Misuse::report)
    }

    /// `allocate`, with the way a misuse is reported as a parameter:
    /// `allocate` panics, `GlobalAlloc::alloc` must not unwind.
    #[inline]
    pub(crate) fn allocate_with(
        &self,
        layout: Layout,
        report: Report,
    ) -> Result<NonNull<u8>, AllocError> {
        match Self::class_index(layout) {
            Some(class) => self.set.alloc(class, report),
            None if layout.size() == 0 => Ok(dangling(layout)),
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
    ///   covers the object alone (see [Provenance](Self#provenance); the
    ///   [`GlobalAlloc`](core::alloc::GlobalAlloc) methods accept those);
    /// - it has not been freed since (no double free), and is not used after
    ///   this call (no use after free).
    ///
    /// Checked builds detect a double free (in the second free, wherever
    /// the first went: another thread's cache included), a pointer this
    /// allocator never handed out (including a slot of another allocator or
    /// cache), and a layout of another size class than the allocation's,
    /// and panic with a message naming the misuse and the address. (Through `GlobalAlloc`,
    /// which must not unwind, the same message is printed and the process
    /// aborts.) A slab pointer freed with a layout beyond the size classes
    /// goes to the fallback unchecked: the fallback's memory is not ours to
    /// inspect.
    #[inline]
    pub unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's guarantees, a pointer reaching the page among
        // them.
        unsafe { self.deallocate_per_thread(ptr, layout, SlotReach::Page, Misuse::report) }
    }

    /// `deallocate` through this thread's cache where there is one (feature
    /// `std`): a class block rests in the thread's magazine; a fallback
    /// block goes to the fallback with its own pointer (it has no page
    /// provenance to swap in). Without `std`, the locked path.
    ///
    /// # Safety
    ///
    /// As for [`deallocate`](Self::deallocate), with `reach` true of `ptr`.
    #[inline]
    pub(crate) unsafe fn deallocate_per_thread(
        &self,
        ptr: NonNull<u8>,
        layout: Layout,
        reach: SlotReach,
        report: Report,
    ) {
        #[cfg(feature = "std")]
        if let Some(class) = Self::class_index(layout) {
            // SAFETY: the caller's guarantees: a block of this class, freed
            // once, `reach` true of `ptr` (class cores expose their pages).
            unsafe {
                self.thread
                    .give(&self.set, class, class_size(class), ptr, reach)
            };
            return;
        }
        // SAFETY: the caller's guarantees.
        unsafe { self.deallocate_with(ptr, layout, reach, report) }
    }

    /// `deallocate`, with what the pointer reaches and the way a misuse is
    /// reported as parameters.
    ///
    /// # Safety
    ///
    /// As for [`deallocate`](Self::deallocate), with `reach` true of `ptr`.
    #[inline]
    pub(crate) unsafe fn deallocate_with(
        &self,
        ptr: NonNull<u8>,
        layout: Layout,
        reach: SlotReach,
        report: Report,
    ) {
        match Self::class_index(layout) {
            // SAFETY: the caller's guarantees, `reach` among them; class
            // cores expose their pages for narrowed pointers.
            Some(class) => unsafe { self.set.free(class, ptr, reach, report) },
            None if layout.size() == 0 => {}
            None => {
                // SAFETY: the caller's guarantees: the same layout means the
                // fallback allocated it.
                unsafe { self.fallback.deallocate(ptr, layout) };
                self.count_fallback(layout.size(), false);
            }
        }
    }

    /// Resizes memory from [`allocate`](Self::allocate) to `new_size` bytes,
    /// keeping the first `min(layout.size(), new_size)` bytes. Stays in place
    /// when the new size falls in the same size class.
    ///
    /// # Errors
    ///
    /// As for [`allocate`](Self::allocate); on error `ptr` is untouched and
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
        let entry = Entry {
            heap: self,
            reach: SlotReach::Page,
            report: Misuse::report,
            per_thread: true,
            grow_in_place: true,
        };
        // SAFETY: the caller's guarantees, a pointer reaching the page among
        // them.
        unsafe { resize(&entry, ptr, layout, new_size) }
    }

    /// Gives back the page of every empty slab in every class, the reserves
    /// included, and returns how many; then lets the page source give back
    /// what it keeps in reserve ([`PageAllocator::trim`]).
    ///
    /// ```
    /// use core::alloc::Layout;
    /// use minimal_slab::SlabAllocator;
    ///
    /// let heap = SlabAllocator::new();
    /// let layout = Layout::new::<[u8; 64]>();
    /// let p = heap.allocate(layout).unwrap();
    /// // SAFETY: allocated just above with `layout`.
    /// unsafe { heap.deallocate(p, layout) };
    /// assert_eq!(heap.shrink_to_fit(), 1); // the reserve page of the 64-byte class
    /// assert_eq!(heap.stats().pages(), 0);
    /// ```
    pub fn shrink_to_fit(&self) -> usize {
        #[cfg(feature = "std")]
        for class in 0..<M::Classes as typenum::Unsigned>::USIZE {
            self.thread
                .flush_current(&self.set, class, class_size(class), false);
        }
        self.set.shrink()
    }

    /// Gives the free blocks that the calling thread caches for this
    /// allocator back to their slabs (feature `std`; nothing to do
    /// without it); slabs they empty
    /// beyond the reserve give their pages back. See
    /// [`SlabCache::flush_thread_cache`](crate::SlabCache::flush_thread_cache).
    pub fn flush_thread_cache(&self) {
        #[cfg(feature = "std")]
        for class in 0..<M::Classes as typenum::Unsigned>::USIZE {
            self.thread
                .flush_current(&self.set, class, class_size(class), true);
        }
    }

    /// [`shrink_to_fit`](Self::shrink_to_fit), under its former name, which
    /// `Allocator::shrink` shadows on `&SlabAllocator`.
    #[deprecated(
        since = "0.1.1",
        note = "renamed `shrink_to_fit`: `Allocator::shrink` has the same name"
    )]
    pub fn shrink(&self) -> usize {
        self.shrink_to_fit()
    }

    /// The page source the size classes take their pages from.
    pub fn page_allocator(&self) -> &P {
        self.set.pages()
    }

    /// The allocator that serves requests beyond the size classes.
    pub fn fallback(&self) -> &F {
        &self.fallback
    }

    /// The size classes, for the per-thread front.
    pub(crate) fn set(&self) -> &CacheSet<P, M::Classes, PowersOfTwo<M::Classes>> {
        &self.set
    }
}

impl<P: PageAllocator, F, M: SizeClassLimit> Drop for SlabAllocator<P, F, M> {
    fn drop(&mut self) {
        // The blocks this thread caches go back, and no thread's table will
        // touch this allocator's blocks again (see `thread_cache`).
        #[cfg(feature = "std")]
        self.thread.retire(&self.set);
        // Every page goes back, those with blocks still allocated included:
        // a block is valid until it is freed or its allocator is dropped
        // (the `Allocator` contract; a `static` global allocator is never
        // dropped), and a block resting in another thread's cache is never
        // touched again (the ticket is retired). Memory a misuse cost
        // (a slot written after it was freed, kept by no one) comes back too.
        // SAFETY: as just said, no one uses any block of this allocator's
        // slabs again.
        unsafe { self.set.give_back_every_page() };
    }
}
