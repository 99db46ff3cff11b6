//! Counters for introspection, and their `/proc/slabinfo`-style tables.

use core::fmt;

use generic_array::{ArrayLength, GenericArray};

use crate::slab::UsedSlots;

/// A snapshot of one cache, taken under its lock.
///
/// Its `Display` is a two-line table in the style of Linux's `/proc/slabinfo`:
///
/// ```
/// use minimal_slab::SlabCache;
///
/// let cache: SlabCache<[u8; 64]> = SlabCache::new();
/// let objects: Vec<_> = (0..100).map(|_| cache.alloc([0; 64]).unwrap()).collect();
/// let stats = cache.stats();
/// assert_eq!(stats.objects_in_use, 100);
/// assert_eq!(stats.slots_per_slab, 63);
/// assert_eq!(stats.pages, 2);
/// println!("{stats}");
/// # drop(objects);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct CacheStats {
    /// The cache's name: the type name for a typed cache, `size-N` for a size
    /// class.
    pub name: &'static str,
    /// Bytes per slot: the object size rounded up to its alignment and to at
    /// least a pointer (a free slot holds the free-list link).
    pub slot_size: usize,
    /// Slots in one slab.
    pub slots_per_slab: usize,
    /// The slot size, under its former name.
    #[deprecated(
        since = "0.1.1",
        note = "renamed `slot_size`: it is the slot's size, not the object's"
    )]
    pub object_size: usize,
    /// The slots per slab, under their former name.
    #[deprecated(since = "0.1.1", note = "renamed `slots_per_slab`")]
    pub objects_per_slab: usize,
    /// Bytes per page; each slab is one page.
    pub page_size: usize,
    /// Objects handed out and not yet returned.
    pub objects_in_use: usize,
    /// Free slots resting in per-thread caches or in the cache's depot
    /// (feature `std`): out of their slabs, in no one's hands. They keep
    /// their slabs from being empty until the thread that holds them calls
    /// `shrink()`, returns a batch, or exits (slots in the depot: until
    /// `shrink()` or `flush_thread_cache()`).
    pub cached_slots: usize,
    /// Of [`cached_slots`](Self::cached_slots), those kept in the cache's
    /// depot: whole batches that per-thread caches gave back, kept for the
    /// next per-thread cache that runs dry. The depot grows with a burst
    /// of frees, up to 4 MiB of slots per cache, and gives back to the
    /// slabs what a while of traffic (counted in batches, not time) left
    /// unused; `shrink()` and `flush_thread_cache()` empty it. Checked
    /// builds (debug builds included) keep no depot.
    pub depot_slots: usize,
    /// Free slots across all slabs held.
    pub free_slots: usize,
    /// Slabs with every slot in use.
    pub full_slabs: usize,
    /// Slabs with some slots in use.
    pub partial_slabs: usize,
    /// Slabs with no slot in use, kept as the reserve or for the recent
    /// peak ([`CacheConfig::decay`](field@crate::CacheConfig::decay)).
    pub empty_slabs: usize,
    /// Pages held (one per slab).
    pub pages: usize,
    /// Bytes of the pages held spent on slab headers (and the padding that
    /// aligns the first slot) rather than on slots.
    pub header_bytes: usize,
}

impl CacheStats {
    /// The counters of a cache of `name` whose slabs have `geometry`, with
    /// `in_use` objects and `[full, partial, empty]` slabs.
    #[allow(deprecated)] // fills the former names too
    pub(crate) fn of_slabs(
        name: &'static str,
        geometry: &crate::slab::SlabGeometry,
        in_use: usize,
        [full, partial, empty]: [usize; 3],
    ) -> Self {
        let pages = full + partial + empty;
        Self {
            name,
            slot_size: geometry.slot_size,
            slots_per_slab: geometry.slots_per_slab,
            object_size: geometry.slot_size,
            objects_per_slab: geometry.slots_per_slab,
            page_size: geometry.page_size,
            objects_in_use: in_use,
            cached_slots: 0,
            depot_slots: 0,
            free_slots: pages * geometry.slots_per_slab - in_use,
            full_slabs: full,
            partial_slabs: partial,
            empty_slabs: empty,
            pages,
            header_bytes: pages * geometry.first_slot,
        }
    }

    /// The same counters for zero-sized objects, which take no slot: the
    /// slot size and slots per slab say so.
    #[allow(deprecated)] // fills the former names too
    pub(crate) fn without_slots(mut self) -> Self {
        self.slot_size = 0;
        self.slots_per_slab = 0;
        self.object_size = 0;
        self.objects_per_slab = 0;
        self
    }

    /// Counts `cached` more of the slots in use as resting in per-thread
    /// caches or the depot instead (never more than are in use: under
    /// concurrent use the counts are read a moment apart).
    #[cfg(feature = "std")]
    pub(crate) fn add_cached(&mut self, cached: usize) {
        let cached = cached.min(self.objects_in_use);
        self.objects_in_use -= cached;
        self.cached_slots += cached;
    }

    /// Counts `kept` of the slots in use as cached in the depot instead
    /// (never more than are in use).
    #[cfg(feature = "std")]
    pub(crate) fn add_depot(&mut self, kept: usize) {
        let kept = kept.min(self.objects_in_use);
        self.objects_in_use -= kept;
        self.cached_slots += kept;
        self.depot_slots += kept;
    }

    /// Slots in all slabs held: in use, cached and free.
    pub fn total_slots(&self) -> usize {
        self.objects_in_use + self.cached_slots + self.free_slots
    }

    /// Bytes of memory held: pages × page size.
    pub fn bytes_held(&self) -> usize {
        self.pages * self.page_size
    }
}

fn write_header(f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(
        f,
        "# {:<24} {:>11} {:>9} {:>7} {:>10} {:>8} : slabdata {:>6} {:>7} {:>8} {:>6} : {:>8} {:>10}",
        "name",
        "active_objs",
        "num_objs",
        "objsize",
        "objperslab",
        "pagesize",
        "full",
        "partial",
        "empty",
        "pages",
        "bytes",
        "header_b"
    )
}

fn write_row(f: &mut fmt::Formatter<'_>, s: &CacheStats) -> fmt::Result {
    // Type names can be long; keep the table aligned by showing the tail.
    let name = match s.name.char_indices().rev().nth(23) {
        Some((i, _)) if s.name.len() > 24 => &s.name[i..],
        _ => s.name,
    };
    writeln!(
        f,
        "  {:<24} {:>11} {:>9} {:>7} {:>10} {:>8} : slabdata {:>6} {:>7} {:>8} {:>6} : {:>8} {:>10}",
        name,
        s.objects_in_use,
        s.total_slots(),
        s.slot_size,
        s.slots_per_slab,
        s.page_size,
        s.full_slabs,
        s.partial_slabs,
        s.empty_slabs,
        s.pages,
        s.bytes_held(),
        s.header_bytes
    )
}

impl fmt::Display for CacheStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_header(f)?;
        write_row(f, self)
    }
}

/// A snapshot of a [`SlabAllocator`](crate::SlabAllocator): one
/// [`CacheStats`] per size class (each taken under that class's lock) and the
/// live requests served by the fallback.
///
/// `N` is the number of size classes, a type-level number.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AllocatorStats<N: ArrayLength> {
    /// One entry per size class, smallest first.
    pub(crate) classes: GenericArray<CacheStats, N>,
    /// Allocations currently held by the fallback allocator.
    pub fallback_allocations: usize,
    /// Bytes currently held by the fallback allocator (as requested).
    pub fallback_bytes: usize,
}

impl<N: ArrayLength> AllocatorStats<N> {
    /// One entry per size class, smallest first.
    ///
    /// ```
    /// use minimal_slab::SlabAllocator;
    ///
    /// let stats = SlabAllocator::new().stats();
    /// let sizes: Vec<usize> = stats.classes().iter().map(|c| c.slot_size).collect();
    /// assert_eq!(sizes, [8, 16, 32, 64, 128, 256]);
    /// ```
    pub fn classes(&self) -> &[CacheStats] {
        &self.classes
    }

    /// Objects in use across all size classes.
    pub fn objects_in_use(&self) -> usize {
        self.classes.iter().map(|c| c.objects_in_use).sum()
    }

    /// Pages held across all size classes.
    pub fn pages(&self) -> usize {
        self.classes.iter().map(|c| c.pages).sum()
    }

    /// Bytes held in pages across all size classes.
    pub fn bytes_held(&self) -> usize {
        self.classes.iter().map(CacheStats::bytes_held).sum()
    }

    /// Bytes spent on slab headers across all size classes.
    pub fn header_bytes(&self) -> usize {
        self.classes.iter().map(|c| c.header_bytes).sum()
    }
}

impl<N: ArrayLength> fmt::Display for AllocatorStats<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_header(f)?;
        for class in &self.classes {
            write_row(f, class)?;
        }
        writeln!(
            f,
            "  fallback: {} allocations, {} bytes",
            self.fallback_allocations, self.fallback_bytes
        )
    }
}

/// One slab's slots, used or free: what [`SlabCache::for_each_slab`] and
/// [`SlabAllocator::for_each_slab`] show of each slab, for pictures of
/// fragmentation and for debugging.
///
/// Its `Display` is one character per slot, `#` for used and `.` for free.
///
/// ```
/// use minimal_slab::SlabCache;
///
/// let cache: SlabCache<[u8; 512]> = SlabCache::new();
/// let a = cache.alloc([1; 512]).unwrap();
/// let b = cache.alloc([2; 512]).unwrap();
/// drop(a);
/// // Free slots resting in this thread's cache are in use as far as their
/// // slab knows: give them back to see the slab as the program left it.
/// cache.flush_thread_cache();
/// let mut rows = Vec::new();
/// cache.for_each_slab(|slab| rows.push(slab.to_string()));
/// assert_eq!(rows, [".#....."]); // 7 slots of 512 bytes in a 4 KiB page
/// # drop(b);
/// ```
///
/// [`SlabCache::for_each_slab`]: crate::SlabCache::for_each_slab
/// [`SlabAllocator::for_each_slab`]: crate::SlabAllocator::for_each_slab
#[derive(Debug, Clone, Copy)]
pub struct SlabOccupancy<'a> {
    pub(crate) page: usize,
    pub(crate) slot_size: usize,
    pub(crate) first_slot: usize,
    pub(crate) slots: usize,
    pub(crate) used: UsedSlots<'a>,
}

impl SlabOccupancy<'_> {
    /// The address of the slab's page (its header is at the start).
    pub fn page_address(&self) -> usize {
        self.page
    }

    /// Bytes per slot.
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// The address of slot `index`.
    pub fn slot_address(&self, index: usize) -> usize {
        self.page + self.first_slot + index * self.slot_size
    }

    /// Slots in the slab.
    pub fn slots_per_slab(&self) -> usize {
        self.slots
    }

    /// Slots in the slab, under their former name.
    #[deprecated(since = "0.1.1", note = "renamed `slots_per_slab`")]
    pub fn capacity(&self) -> usize {
        self.slots
    }

    /// Slots handed out and not yet returned.
    pub fn in_use(&self) -> usize {
        self.used.count()
    }

    /// Whether slot `index` is handed out; `false` past the last slot.
    pub fn is_used(&self, index: usize) -> bool {
        index < self.slots && self.used.contains(index)
    }

    /// Each slot in address order: `true` if handed out.
    pub fn slots(&self) -> impl Iterator<Item = bool> + '_ {
        (0..self.slots).map(|index| self.is_used(index))
    }
}

impl fmt::Display for SlabOccupancy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.slots()
            .try_for_each(|used| f.write_str(if used { "#" } else { "." }))
    }
}
