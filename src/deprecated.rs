//! Public paths of earlier releases, kept as deprecated aliases for the 0.1
//! series (see CHANGELOG.md): the layer modules became private, their
//! constants associated constants.

/// The typed cache's former module path.
#[deprecated(since = "0.1.1", note = "use the items at the crate root")]
pub mod slab_cache {
    pub use crate::cache::CacheConfig;

    /// Empty slabs a cache keeps by default.
    #[deprecated(since = "0.1.1", note = "use `CacheConfig::DEFAULT_RESERVE`")]
    pub const DEFAULT_RESERVE: usize = crate::cache::CacheConfig::DEFAULT_RESERVE;
}

/// The raw allocator's former module path.
#[deprecated(since = "0.1.1", note = "use the items at the crate root")]
pub mod slab_allocator {
    pub use crate::raw::{Fallback, NoFallback, SizeClassLimit, SlabAllocator};

    /// The smallest size class, in bytes.
    #[deprecated(since = "0.1.1", note = "use `SlabAllocator::MIN_CLASS`")]
    pub const MIN_CLASS: usize = crate::cache::MIN_CLASS;
}
