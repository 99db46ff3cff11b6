//! What both fuzz targets check: block contents, overlap, counters, and the
//! one reason an allocation may fail. Pages come from a tiny region, so the
//! page source runs dry as well as the page caps.

use std::alloc::{Layout, alloc, dealloc};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::slice;

use minimal_slab::typenum::U1024;
use minimal_slab::{AllocError, CacheConfig, CacheStats, PageAllocError, RegionPages};

/// Small pages, so that a few objects fill one.
pub const PAGE: usize = 1024;

pub type Region = RegionPages<U1024>;

/// A region of `pages` pages on memory it owns and frees when dropped.
pub struct TinyRegion {
    pages: Region,
    memory: NonNull<u8>,
    layout: Layout,
}

impl TinyRegion {
    pub fn new(pages: usize) -> Self {
        let layout = Layout::from_size_align(pages.max(1) * PAGE, PAGE).expect("a small layout");
        // SAFETY: the layout has a non-zero size.
        let memory = NonNull::new(unsafe { alloc(layout) }).expect("memory for the region");
        let region = Region::with_page_size();
        // SAFETY: the memory is ours, valid for `layout.size()` bytes, used by
        // nothing else, and freed only in `drop`, after every cache on the
        // region is gone (they borrow it).
        let added = unsafe { region.add_region(memory, layout.size()) };
        assert_eq!(added, pages.max(1), "page-aligned memory gives whole pages");
        Self {
            pages: region,
            memory,
            layout,
        }
    }

    pub fn pages(&self) -> &Region {
        &self.pages
    }
}

impl Drop for TinyRegion {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the region hands out
        // nothing any more (whatever borrowed it is gone).
        unsafe { dealloc(self.memory.as_ptr(), self.layout) };
    }
}

/// Live blocks as address ranges; a new one overlapping a live one fails.
#[derive(Default)]
pub struct Ranges(BTreeMap<usize, (usize, u64)>);

impl Ranges {
    pub fn insert(&mut self, start: usize, len: usize, id: u64) {
        let end = start + len;
        if let Some((&before, &(before_end, other))) = self.0.range(..=start).next_back() {
            assert!(
                before_end <= start,
                "block {id} at {start:#x} overlaps block {other} at {before:#x}"
            );
        }
        if let Some((&after, &(_, other))) = self.0.range(start..).next() {
            assert!(
                end <= after,
                "block {id} at {start:#x} overlaps block {other} at {after:#x}"
            );
        }
        self.0.insert(start, (end, id));
    }

    pub fn remove(&mut self, start: usize, id: u64) {
        let (_, owner) = self.0.remove(&start).expect("a live block starts here");
        assert_eq!(owner, id, "the block at {start:#x} belongs to another id");
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Block `id`'s pattern: byte `i` of the block is `period[i % 256]`, each
/// block its own.
fn pattern(id: u64) -> [u8; 256] {
    let seed = (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8;
    core::array::from_fn(|i| seed ^ (i as u8).wrapping_mul(29))
}

/// Writes block `id`'s pattern into its `len` bytes.
///
/// # Safety
///
/// `ptr` is valid for writes of `len` bytes that nothing else uses.
pub unsafe fn fill(ptr: NonNull<u8>, len: usize, id: u64) {
    // SAFETY: valid and ours alone, per the caller; `MaybeUninit` needs no
    // initialised bytes.
    let bytes = unsafe { slice::from_raw_parts_mut(ptr.as_ptr().cast::<MaybeUninit<u8>>(), len) };
    let period = pattern(id);
    for chunk in bytes.chunks_mut(period.len()) {
        let period = &period[..chunk.len()];
        // SAFETY: `MaybeUninit<u8>` has the layout of `u8`; both slices have
        // `chunk.len()` bytes and do not overlap (one is on the stack).
        unsafe {
            period
                .as_ptr()
                .copy_to_nonoverlapping(chunk.as_mut_ptr().cast(), chunk.len())
        };
    }
}

/// How often, in operations, the targets verify every live object's
/// contents and recount them (and once more at the end); each object is
/// verified anyway when it is freed or resized, and the allocator's
/// counters are checked against the model's tallies after every operation.
/// Verifying and recounting every live object after every operation made a
/// run quadratic in its inputs' length: the raw target had fallen to about
/// 300 executions a second by 320 000 of them (`scripts/fuzz --runs`).
pub const FULL_CHECK_EVERY: usize = 16;

/// Checks that the first `len` bytes of a block hold block `id`'s pattern.
///
/// # Safety
///
/// `ptr` is valid for reads of `len` bytes written by [`fill`].
pub unsafe fn verify(ptr: NonNull<u8>, len: usize, id: u64) {
    // SAFETY: valid and initialised, per the caller.
    let bytes = unsafe { slice::from_raw_parts(ptr.as_ptr(), len) };
    let period = pattern(id);
    // Whole chunks compared at once: a byte-by-byte loop spent most of a
    // run in the fuzzer's per-comparison coverage hooks.
    for (n, chunk) in bytes.chunks(period.len()).enumerate() {
        let expected = &period[..chunk.len()];
        if chunk != expected {
            let i = chunk.iter().zip(expected).position(|(a, b)| a != b);
            let i = n * period.len() + i.expect("a differing byte");
            panic!("block {id} at {ptr:p}: byte {i} of {len} changed");
        }
    }
}

/// How a cache gives pages back: its reserve, and its hysteresis (`decay`
/// 0: eager).
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub reserve: usize,
    pub decay: usize,
}

impl Policy {
    /// A policy from a fuzz byte: the reserve (0 to 3) in its two low bits;
    /// above them eager give-back, the hysteresis over short windows (1 to
    /// 40 operations, so that short inputs see windows end), or the
    /// default. Bytes below 4 are eager, as every byte was before the
    /// hysteresis.
    pub fn from_byte(byte: u8) -> Self {
        let decay = match (byte / 4) % 3 {
            0 => 0,
            1 => usize::from(byte / 12) % 40 + 1,
            _ => CacheConfig::DEFAULT_DECAY,
        };
        Self {
            reserve: usize::from(byte % 4),
            decay,
        }
    }

    /// The configuration, with the page cap `limit` if any.
    pub fn config(&self, limit: Option<usize>) -> CacheConfig {
        let config = CacheConfig::new().reserve(self.reserve).decay(self.decay);
        limit.map_or(config, |limit| config.page_limit(limit))
    }
}

/// The most slabs a cache has had in use at once since its last `shrink`
/// or change of configuration, as its counters showed them after each
/// operation (each allocates at most one slot of a cache, so none is
/// missed).
#[derive(Default)]
pub struct BusyPeak(Cell<usize>);

impl BusyPeak {
    fn busy(s: &CacheStats) -> usize {
        s.full_slabs + s.partial_slabs
    }

    /// Notes `s`, and returns the peak.
    pub fn see(&self, s: &CacheStats) -> usize {
        self.0.set(self.0.get().max(Self::busy(s)));
        self.0.get()
    }

    /// After `shrink` or a change of configuration: the cache's peak
    /// restarts from the slabs in use.
    pub fn restart(&self, s: &CacheStats) {
        self.0.set(Self::busy(s));
    }
}

/// What a cache's counters must satisfy, whatever happened before.
///
/// Empty slabs beyond the reserve: never when eager; with the hysteresis,
/// only while the cache holds no more pages than it had in use at its peak
/// since its last `shrink` or change of configuration.
pub fn check_counters(
    s: &CacheStats,
    in_use: usize,
    limit: Option<usize>,
    policy: Policy,
    peak: &BusyPeak,
) {
    assert_eq!(s.objects_in_use, in_use, "{s:?}");
    // Slots out of their slabs: objects, and free slots resting in this
    // thread's cache (`std`).
    let in_use = s.objects_in_use + s.cached_slots;
    assert_eq!(s.pages * s.slots_per_slab, in_use + s.free_slots, "{s:?}");
    assert_eq!(
        s.full_slabs + s.partial_slabs + s.empty_slabs,
        s.pages,
        "{s:?}"
    );
    let full = s.full_slabs * s.slots_per_slab;
    assert!(
        full + s.partial_slabs <= in_use,
        "lists disagree with counts: {s:?}"
    );
    assert!(
        in_use <= full + s.partial_slabs * (s.slots_per_slab - 1),
        "lists disagree with counts: {s:?}"
    );
    let peak = peak.see(s);
    if policy.decay == 0 {
        assert!(
            s.empty_slabs <= policy.reserve,
            "eager: more empty slabs than the reserve: {s:?}"
        );
    } else {
        assert!(
            s.empty_slabs <= policy.reserve || s.pages <= peak,
            "empty slabs beyond the reserve and beyond the peak of {peak}: {s:?}"
        );
    }
    assert!(
        limit.is_none_or(|limit| s.pages <= limit),
        "pages beyond the limit: {s:?}"
    );
}

/// How an allocation into a cache whose counters read `before` must fail,
/// if it must: only when no slot is free (in a slab or in this thread's
/// cache), by the cap first, then by the region running dry.
pub fn expected_failure(
    before: &CacheStats,
    limit: Option<usize>,
    region: &Region,
) -> Option<AllocError> {
    if before.free_slots + before.cached_slots > 0 {
        None
    } else if let Some(limit) = limit.filter(|&limit| before.pages >= limit) {
        Some(AllocError::PageLimit { limit })
    } else if region.available() == 0 {
        Some(AllocError::Pages(PageAllocError::RegionExhausted))
    } else {
        None
    }
}

/// An optional cap from a fuzz byte: none for large values.
pub fn page_limit(byte: u8) -> Option<usize> {
    (byte < 200).then_some(usize::from(byte % 6))
}
