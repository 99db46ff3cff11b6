//! Owner tags: which cache a slab belongs to.

use crate::sync::{AtomicU32, Ordering, StaticAtomicU32, const_fn_unless_loom};

/// A number that tells one cache's slabs from every other's, written in each
/// slab header; checked builds compare it on every free, which catches a
/// pointer freed into the wrong cache (or allocator) and a pointer into
/// memory that is no slab. Assigned on first use from a global counter, so a
/// cache can still be built by a `const fn`. Every size class of one
/// `SlabAllocator` shares its allocator's tag, so that a free with the wrong
/// class is reported as exactly that.
pub(crate) struct OwnerTag(AtomicU32);

impl OwnerTag {
    const_fn_unless_loom! {
        pub(crate) const fn new() -> Self {
            Self(AtomicU32::new(0))
        }
    }

    /// The tag: non-zero, and well spread so that stray memory rarely
    /// matches it. Builds without checks compare no tag, so they assign
    /// none: the tag is 0 there, and the counter and its atomic updates
    /// are not linked in.
    #[inline]
    pub(crate) fn get(&self) -> u32 {
        if !super::CHECKED {
            return 0;
        }
        match self.0.load(Ordering::Relaxed) {
            0 => self.assign(),
            tag => tag,
        }
    }

    #[cold]
    fn assign(&self) -> u32 {
        static NEXT_ID: StaticAtomicU32 = StaticAtomicU32::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let fresh = (id.wrapping_mul(0x9E37_79B1) ^ 0x51AB_0B1E) | 1;
        // Relaxed is enough: the tag guards nothing but itself, and a thread
        // that loses the race takes the winner's value.
        match self
            .0
            .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh,
            Err(winner) => winner,
        }
    }
}
