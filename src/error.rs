//! Error types: what went wrong, and — for typed allocation — the value back.

use core::fmt;

/// Why a page source could not hand out a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PageAllocError {
    /// The underlying allocator returned no memory.
    OutOfMemory,
    /// A fixed memory region has no page left.
    RegionExhausted,
    /// The source [`ChunkedPages`](crate::page_allocator::ChunkedPages) cuts
    /// its pages from handed out a chunk not aligned to its size. The chunk
    /// was given back unused.
    MisalignedChunk {
        /// Address of the rejected chunk.
        addr: usize,
        /// The chunk size it should have been aligned to.
        align: usize,
    },
}

impl fmt::Display for PageAllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfMemory => f.write_str("the page source is out of memory"),
            Self::RegionExhausted => f.write_str("the memory region has no free page left"),
            Self::MisalignedChunk { addr, align } => write!(
                f,
                "the page source handed out a chunk at {addr:#x}, not aligned to its size {align}"
            ),
        }
    }
}

impl core::error::Error for PageAllocError {}

/// Why an allocation failed.
///
/// Every failure is reported, never turned into a panic: the caller decides
/// whether to retry after [`shrink`](crate::SlabCache::shrink), fall back, or
/// give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AllocError {
    /// The cache needed a new page and its page source had none.
    Pages(PageAllocError),
    /// The cache already holds the number of pages it was capped at.
    PageLimit {
        /// The cap, in pages.
        limit: usize,
    },
    /// The page source broke its contract by returning a page that is not
    /// aligned to the page size. The page was given back and never used.
    MisalignedPage {
        /// Address of the rejected page.
        addr: usize,
        /// The page size it should have been aligned to.
        page_size: usize,
    },
    /// No size class can serve this layout (too large, or aligned beyond the
    /// class size) and there is no fallback allocator.
    UnsupportedLayout {
        /// Requested size in bytes.
        size: usize,
        /// Requested alignment in bytes.
        align: usize,
    },
    /// The fallback allocator returned no memory for a layout larger than the
    /// size classes.
    FallbackFailed {
        /// Requested size in bytes.
        size: usize,
        /// Requested alignment in bytes.
        align: usize,
    },
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Pages(e) => write!(f, "no page for a new slab: {e}"),
            Self::PageLimit { limit } => {
                write!(f, "the cache reached its page limit ({limit})")
            }
            Self::MisalignedPage { addr, page_size } => write!(
                f,
                "the page source returned page {addr:#x}, not aligned to its size {page_size}"
            ),
            Self::UnsupportedLayout { size, align } => write!(
                f,
                "no size class serves {size} bytes aligned to {align}, and there is no fallback"
            ),
            Self::FallbackFailed { size, align } => write!(
                f,
                "the fallback allocator failed for {size} bytes aligned to {align}"
            ),
        }
    }
}

impl core::error::Error for AllocError {}

impl From<PageAllocError> for AllocError {
    fn from(e: PageAllocError) -> Self {
        Self::Pages(e)
    }
}

/// A failed [`SlabCache::alloc`](crate::SlabCache::alloc): the reason, and the
/// value that could not be stored, handed back untouched.
///
/// ```
/// use minimal_slab::{CacheConfig, ChunkedGlobalPages, SlabCache};
///
/// let cache: SlabCache<[u64; 8]> =
///     SlabCache::with_config(ChunkedGlobalPages::default(), CacheConfig::new().page_limit(0));
/// let err = cache.alloc([7; 8]).unwrap_err();
/// assert_eq!(err.into_value(), [7; 8]); // nothing lost
/// ```
pub struct AllocFailed<T> {
    value: T,
    error: AllocError,
}

impl<T> AllocFailed<T> {
    pub(crate) fn new(value: T, error: AllocError) -> Self {
        Self { value, error }
    }

    /// Why the allocation failed.
    pub fn error(&self) -> AllocError {
        self.error
    }

    /// The value that was not stored.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// Takes the value back.
    pub fn into_value(self) -> T {
        self.value
    }
}

impl<T> fmt::Debug for AllocFailed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AllocFailed")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for AllocFailed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "allocation failed, value handed back: {}", self.error)
    }
}

impl<T> core::error::Error for AllocFailed<T> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        Some(&self.error)
    }
}
