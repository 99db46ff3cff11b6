//! Counters for introspection, and their `/proc/slabinfo`-style tables.

use core::fmt;

use generic_array::{ArrayLength, GenericArray};

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
/// assert_eq!(stats.objects_per_slab, 63);
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
    /// Bytes per slot (the object size rounded up to its alignment and to at
    /// least a pointer).
    pub object_size: usize,
    /// Slots in one slab.
    pub objects_per_slab: usize,
    /// Bytes per page; each slab is one page.
    pub page_size: usize,
    /// Objects handed out and not yet returned.
    pub objects_in_use: usize,
    /// Free slots across all slabs held.
    pub free_slots: usize,
    /// Slabs with every slot in use.
    pub full_slabs: usize,
    /// Slabs with some slots in use.
    pub partial_slabs: usize,
    /// Slabs with no slot in use, kept as a reserve.
    pub empty_slabs: usize,
    /// Pages held (one per slab).
    pub pages: usize,
    /// Bytes of the pages held spent on slab headers (and the padding that
    /// aligns the first slot) rather than on slots.
    pub header_bytes: usize,
}

impl CacheStats {
    /// Slots in all slabs held.
    pub fn total_slots(&self) -> usize {
        self.objects_in_use + self.free_slots
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
        s.object_size,
        s.objects_per_slab,
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
    pub classes: GenericArray<CacheStats, N>,
    /// Allocations currently held by the fallback allocator.
    pub fallback_allocations: usize,
    /// Bytes currently held by the fallback allocator (as requested).
    pub fallback_bytes: usize,
}

impl<N: ArrayLength> AllocatorStats<N> {
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
    pub(crate) capacity: usize,
    pub(crate) used: &'a [usize],
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
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Slots handed out and not yet returned.
    pub fn in_use(&self) -> usize {
        self.used
            .iter()
            .map(|word| word.count_ones() as usize)
            .sum()
    }

    /// Whether slot `index` is handed out; `false` past the capacity.
    pub fn is_used(&self, index: usize) -> bool {
        let bits = usize::BITS as usize;
        index < self.capacity && self.used[index / bits] & (1 << (index % bits)) != 0
    }

    /// Each slot in address order: `true` if handed out.
    pub fn slots(&self) -> impl Iterator<Item = bool> + '_ {
        (0..self.capacity).map(|index| self.is_used(index))
    }
}

impl fmt::Display for SlabOccupancy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.slots()
            .try_for_each(|used| f.write_str(if used { "#" } else { "." }))
    }
}
