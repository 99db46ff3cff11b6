//! Where slabs get their memory: whole pages, aligned to their size.
//!
//! A *page source* is any value whose type implements [`PageAllocator`]; the
//! crate's docs call the values page sources and the trait by its name.
//!
//! A [`PageAllocator`] owns nothing the caches see except the pages it hands
//! out. It is the only layer that talks to the outside world (the global
//! allocator, a `GlobalAlloc` of the program's choice, or a fixed region of
//! memory); everything above it works on pages alone.
//!
//! # The contract
//!
//! A page is [`PageAllocator::PageSize`] bytes, starts at an address that is a
//! multiple of that size, and belongs to its caller from
//! [`allocate_page`](PageAllocator::allocate_page) until it is passed to
//! [`deallocate_page`](PageAllocator::deallocate_page). Alignment to the page
//! size is what lets a slab find its header from any object address with one
//! mask, so the caches check it on every page they receive and reject (and give
//! back) a page that breaks it.
//!
//! # The page size is a type
//!
//! The size is a `typenum` unsigned integer rather than a `const` so that the
//! bound [`PageSize`] can state the constraints in the type system: a power of
//! two, at least 256 bytes, at most 1 GiB. A page source declaring
//! `type PageSize = U3000` does not compile. Bigger pages let a cache hold
//! bigger objects: `GlobalPages<U65536>` serves a `SlabCache` of 16 KiB
//! objects.
//!
//! # The page sources
//!
//! | type | memory from | for |
//! |---|---|---|
//! | [`ChunkedGlobalPages`] | 256 KiB chunks of `alloc::alloc` (feature `alloc`) | the default; nothing to set up |
//! | [`GlobalPages`] | one `alloc::alloc` call per page (feature `alloc`) | big pages, or chunks for [`ChunkedPages`] |
//! | [`GlobalAllocPages`] | any [`GlobalAlloc`](core::alloc::GlobalAlloc), e.g. `std::alloc::System` | a `SlabAllocator` that *is* the `#[global_allocator]` |
//! | [`RegionPages`] | a memory region the caller supplies | programs with no heap at all |
//! | [`static_region!`](crate::static_region) | a `static` array it declares, through a zero-sized handle | firmware: no `unsafe`, no initialised data |
//! | [`ChunkedPages`] | big pages of another source, cut into small ones | lean memory over a general-purpose allocator |
//! | [`KeepPages`] | another source, whose pages the caches keep once taken | firmware code size: no code to give pages back |
//!
//! A shared reference to a page source is a page source too, so one
//! `static` region can feed several caches.

use core::alloc::Layout;
use core::ptr::NonNull;

use typenum::{IsGreaterOrEqual, IsLessOrEqual, PowerOfTwo, True, U256, U1073741824, Unsigned};

use crate::error::PageAllocError;

mod chunked;
#[cfg(feature = "alloc")]
mod global;
mod global_alloc;
mod keep;
mod no_pages;
mod region;
mod static_region;

/// The page source a cache uses when none is named: [`ChunkedGlobalPages`]
/// with the `alloc` feature (the default), [`NoPages`] without it — there is
/// then no heap to take pages from, and caches are built with `new_in`.
#[cfg(feature = "alloc")]
pub type DefaultPages = ChunkedGlobalPages;
/// The page source a cache uses when none is named: [`ChunkedGlobalPages`]
/// with the `alloc` feature (the default), [`NoPages`] without it — there is
/// then no heap to take pages from, and caches are built with `new_in`.
#[cfg(not(feature = "alloc"))]
pub type DefaultPages = NoPages;

/// 4 KiB pages cut from 256 KiB chunks of the global allocator: the default
/// page source. See [`ChunkedPages`] for why chunks: about half the resident
/// memory of one global allocation per page under glibc's `malloc`, pages
/// that sit together in memory, and chunks given back once their pages all
/// are.
///
/// ```
/// use minimal_slab::page_allocator::ChunkedGlobalPages;
/// use minimal_slab::{CacheConfig, SlabCache};
///
/// // What `SlabCache::new()` builds, with a page limit:
/// static SMALL: SlabCache<u64, ChunkedGlobalPages> =
///     SlabCache::with_config(ChunkedGlobalPages::global(), CacheConfig::new().page_limit(8));
/// let cache = &SMALL;
/// assert_eq!(*cache.alloc(7).unwrap(), 7);
/// ```
///
/// Each cache built with `new()` has its own source, and so its own chunks.
/// Caches can share one instead, so that small ones fill the same chunks:
///
/// ```
/// use minimal_slab::page_allocator::ChunkedGlobalPages;
/// use minimal_slab::SlabCache;
///
/// static PAGES: ChunkedGlobalPages = ChunkedGlobalPages::global();
/// static NAMES: SlabCache<[u8; 24], &ChunkedGlobalPages> = SlabCache::new_in(&PAGES);
/// static SCORES: SlabCache<u64, &ChunkedGlobalPages> = SlabCache::new_in(&PAGES);
///
/// let (name, score) = (NAMES.alloc(*b"a player's name, 24 byte").unwrap(), SCORES.alloc(99).unwrap());
/// assert_eq!((name[0], *score), (b'a', 99));
/// assert_eq!((PAGES.chunks(), PAGES.pages_out()), (1, 2)); // two pages, one chunk
/// ```
#[cfg(feature = "alloc")]
pub type ChunkedGlobalPages = ChunkedPages<GlobalPages<typenum::U262144>>;

pub use chunked::ChunkedPages;
#[cfg(feature = "alloc")]
pub use global::GlobalPages;
pub use global_alloc::GlobalAllocPages;
pub use keep::KeepPages;
pub use no_pages::NoPages;
pub use region::RegionPages;
#[doc(hidden)]
pub use static_region::StaticPages;

/// A valid page size: a `typenum` power of two between 256 bytes and 1 GiB.
///
/// Implemented for exactly those type-level numbers; there is nothing to
/// implement by hand.
///
/// ```
/// use minimal_slab::page_allocator::PageSize;
/// use minimal_slab::typenum::{U4096, U65536};
///
/// fn page_bytes<S: PageSize>() -> usize { S::USIZE }
/// assert_eq!(page_bytes::<U4096>(), 4096);
/// assert_eq!(page_bytes::<U65536>(), 65536);
/// ```
///
/// A size that is not a power of two is rejected by the compiler:
///
/// ```compile_fail,E0277
/// use minimal_slab::page_allocator::PageSize;
/// fn page_bytes<S: PageSize>() -> usize { S::USIZE }
/// page_bytes::<minimal_slab::typenum::U768>(); // 3 × 256: not a power of two
/// ```
pub trait PageSize: Unsigned + PowerOfTwo + Send + Sync + 'static {}

impl<S> PageSize for S where
    S: Unsigned
        + PowerOfTwo
        + IsGreaterOrEqual<U256, Output = True>
        + IsLessOrEqual<U1073741824, Output = True>
        + Send
        + Sync
        + 'static
{
}

/// A source of pages for slabs.
///
/// # Safety
///
/// Implementors promise that every `Ok(page)` returned by
/// [`allocate_page`](Self::allocate_page):
///
/// - is valid for reads and writes of `Self::PageSize::USIZE` bytes, with a
///   provenance that covers the whole page;
/// - does not overlap any other page that is currently handed out, nor any
///   memory the implementor itself reads or writes while the page is out;
/// - stays valid until it is passed to [`deallocate_page`](Self::deallocate_page)
///   or the page source is dropped.
///
/// A page *should* also be aligned to the page size. Callers in this crate
/// check that and reject a misaligned page, so breaking it is a bug, not
/// undefined behaviour — unless the source sets
/// [`PAGES_ALIGNED`](Self::PAGES_ALIGNED): then every page *is* aligned to
/// the page size, a promise the caches rely on without checking (checked
/// builds still check).
///
/// Both methods are called while a cache holds its lock. They must not
/// allocate from or free to the caches and allocators they serve, nor
/// through those caches' local fronts: the lock would spin forever.
///
/// They may panic (a page source is ordinary code): the caches keep their
/// counts right and lose no slot when one does — they do their bookkeeping
/// before they call the page source — and the local fronts hold no borrow of
/// their magazines across the call. A page being given back when
/// `deallocate_page` panics is considered given back. The panic hook runs
/// while the cache's lock is still held: a hook may use a local front's
/// magazine (take a slot it holds, give one back while it has room), but
/// nothing that needs the cache itself — a refill, a drain, a flush, the
/// cache's own methods — or it spins forever, as the page source would.
/// Under `SlabAllocator`'s `GlobalAlloc` impl, which must not unwind, a
/// panicking page source aborts the process.
///
/// The risks on the caller's side — using a page after giving it back, giving
/// it back twice, or giving back a page this allocator never handed out — are
/// covered by the `# Safety` section of `deallocate_page`.
pub unsafe trait PageAllocator {
    /// The page size in bytes, as a type-level number.
    type PageSize: PageSize;

    /// Whether every page [`allocate_page`](Self::allocate_page) hands out
    /// is aligned to the page size by construction: a promise (the trait is
    /// `unsafe`), on which the caches skip the alignment check they make
    /// of every new page, and the path that rejects a misaligned one (a
    /// firmware links neither; checked builds still check). `false` by
    /// default; [`RegionPages`] sets it, and the wrappers that forward
    /// pages ([`KeepPages`], `&P`) pass on their source's.
    const PAGES_ALIGNED: bool = false;

    /// Whether the caches this source serves keep every page they take:
    /// a free never gives one back, whatever their configuration's
    /// reserve and decay, and only `shrink` and a cache's drop do. Set by
    /// [`KeepPages`], which says why (code size on a microcontroller);
    /// `false` by default, and `&P` passes on its source's.
    const KEEP_PAGES: bool = false;

    /// Hands out one page, or says why it cannot.
    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError>;

    /// Takes a page back.
    ///
    /// # Safety
    ///
    /// - `page` was returned by `allocate_page` on this same allocator and has
    ///   not been deallocated since (no double free);
    /// - nothing reads or writes the page after this call (no use after free).
    unsafe fn deallocate_page(&self, page: NonNull<u8>);

    /// Gives back memory the source keeps for later requests (such as
    /// [`ChunkedPages`]' spare chunk) to wherever it came from. The caches'
    /// `shrink` calls it after giving back their empty pages; the default
    /// does nothing.
    ///
    /// Like the other methods, it may run while a cache holds its lock, and
    /// must not re-enter the caches this source serves. A page source that
    /// wraps another should forward it.
    fn trim(&self) {}
}

// SAFETY: forwards both methods to `P`, which upholds the contract (its
// `PAGES_ALIGNED` promise included); a shared reference adds no way to
// break it.
unsafe impl<P: PageAllocator + ?Sized> PageAllocator for &P {
    type PageSize = P::PageSize;
    const PAGES_ALIGNED: bool = P::PAGES_ALIGNED;
    const KEEP_PAGES: bool = P::KEEP_PAGES;

    #[inline]
    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        (**self).allocate_page()
    }

    #[inline]
    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        // SAFETY: the caller's guarantees for `&P` are exactly those for `P`.
        unsafe { (**self).deallocate_page(page) }
    }

    #[inline]
    fn trim(&self) {
        (**self).trim()
    }
}

/// The page size of `P`, in bytes.
#[inline]
pub(crate) const fn page_size_of<P: PageAllocator + ?Sized>() -> usize {
    <P::PageSize as Unsigned>::USIZE
}

/// The layout of one page of size `S`: size and alignment both `S`.
pub(crate) const fn page_layout<S: PageSize>() -> Layout {
    match Layout::from_size_align(S::USIZE, S::USIZE) {
        Ok(layout) => layout,
        // `PageSize` admits only powers of two no larger than 1 GiB.
        Err(_) => panic!("a PageSize is always a valid layout"),
    }
}
