//! What a `SlabAllocator` shows of itself: its counters, its slabs, its
//! `Debug`.

use core::fmt;

use generic_array::{GenericArray, sequence::GenericSequence};

use super::size_class::CLASS_NAMES;
use super::{SizeClassLimit, SlabAllocator};
use crate::cache::class_size;
use crate::page_allocator::PageAllocator;
use crate::stats::{AllocatorStats, SlabOccupancy};

impl<P: PageAllocator, F, M: SizeClassLimit> SlabAllocator<P, F, M> {
    /// A snapshot of every class's counters, and of the fallback's.
    pub fn stats(&self) -> AllocatorStats<M::Classes> {
        #[cfg(feature = "std")]
        self.thread.take_back_orphans(&self.set);
        let class_stats = |i| {
            #[allow(unused_mut)] // only the per-thread caches change it
            let mut stats = self.set.stats(i, CLASS_NAMES[i]);
            #[cfg(feature = "std")]
            stats.add_cached(self.thread.cached(i));
            stats
        };
        let (fallback_allocations, fallback_bytes) = self.fallback_counts.totals();
        AllocatorStats {
            classes: GenericArray::generate(class_stats),
            fallback_allocations,
            fallback_bytes,
        }
    }

    /// Shows `visit` every slab of every size class, with the class's slot
    /// size: which slots are used and which free (see [`SlabOccupancy`]);
    /// free blocks resting in per-thread caches are used, as far as their
    /// slabs know.
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
    /// heap.flush_thread_cache(); // blocks this thread caches count as used
    /// let mut seen = Vec::new();
    /// heap.for_each_slab(|class, slab| seen.push((class, slab.in_use())));
    /// assert_eq!(seen, [(128, 1)]);
    /// // SAFETY: allocated just above with `layout`.
    /// unsafe { heap.deallocate(p, layout) };
    /// ```
    pub fn for_each_slab(&self, mut visit: impl FnMut(usize, SlabOccupancy<'_>)) {
        self.set
            .for_each_slab(|class, slab| visit(class_size(class), slab));
    }
}

impl<P: PageAllocator + fmt::Debug, F: fmt::Debug, M: SizeClassLimit> fmt::Debug
    for SlabAllocator<P, F, M>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlabAllocator")
            .field("largest_class", &M::USIZE)
            .field("pages", self.set.pages())
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}
