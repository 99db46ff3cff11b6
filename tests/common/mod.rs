//! Helpers shared by the integration tests: a small PRNG, a page allocator
//! that counts its pages, and a map of live address ranges that catches
//! overlapping allocations.

// Each test crate uses its own subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::slice;
use std::sync::atomic::{AtomicUsize, Ordering};

use minimal_slab::{GlobalPages, PageAllocError, PageAllocator};

/// xorshift64*: deterministic, fast, and good enough to drive random tests.
pub struct XorShift(u64);

impl XorShift {
    /// A generator started from `seed` (any value; 0 is replaced).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0);
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Live allocations as address ranges: inserting one that overlaps a live
/// neighbour fails the test.
#[derive(Default)]
pub struct Ranges {
    /// start -> (end, id of the owner)
    map: BTreeMap<usize, (usize, u64)>,
}

impl Ranges {
    /// Records `[start, start + len)` as owned by `id`, checking both
    /// neighbours for overlap.
    pub fn insert(&mut self, start: usize, len: usize, id: u64) {
        let end = start + len.max(1);
        if let Some((&prev_start, &(prev_end, prev_id))) = self.map.range(..=start).next_back() {
            assert!(
                prev_end <= start,
                "block {id} at {start:#x}..{end:#x} overlaps live block {prev_id} at {prev_start:#x}..{prev_end:#x}"
            );
        }
        if let Some((&next_start, &(next_end, next_id))) = self.map.range(start..).next() {
            assert!(
                end <= next_start,
                "block {id} at {start:#x}..{end:#x} overlaps live block {next_id} at {next_start:#x}..{next_end:#x}"
            );
        }
        self.map.insert(start, (end, id));
    }

    /// Forgets the range starting at `start`, which must be live and owned by `id`.
    pub fn remove(&mut self, start: usize, id: u64) {
        let (_, owner) = self
            .map
            .remove(&start)
            .unwrap_or_else(|| panic!("no live block starts at {start:#x}"));
        assert_eq!(owner, id, "the block at {start:#x} belongs to another id");
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
}

/// A page allocator that forwards to `P` and counts the pages it hands out
/// and takes back.
pub struct CountingPages<P = GlobalPages> {
    inner: P,
    handed_out: AtomicUsize,
    given_back: AtomicUsize,
}

impl<P> CountingPages<P> {
    pub const fn new(inner: P) -> Self {
        Self {
            inner,
            handed_out: AtomicUsize::new(0),
            given_back: AtomicUsize::new(0),
        }
    }

    /// Pages ever handed out.
    pub fn handed_out(&self) -> usize {
        self.handed_out.load(Ordering::SeqCst)
    }

    /// Pages ever given back.
    pub fn given_back(&self) -> usize {
        self.given_back.load(Ordering::SeqCst)
    }

    /// Pages out right now.
    pub fn outstanding(&self) -> usize {
        self.handed_out() - self.given_back()
    }
}

// SAFETY: every page comes from `P`, which upholds the contract, and goes back
// to it unchanged; counting adds no way to break it.
unsafe impl<P: PageAllocator> PageAllocator for CountingPages<P> {
    type PageSize = P::PageSize;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        let page = self.inner.allocate_page()?;
        self.handed_out.fetch_add(1, Ordering::SeqCst);
        Ok(page)
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        self.given_back.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller's guarantees for `self` are those for `P`, which
        // handed the page out.
        unsafe { self.inner.deallocate_page(page) }
    }

    fn trim(&self) {
        self.inner.trim();
    }
}

/// Byte `i` of the contents of block `id`: every block gets its own pattern,
/// so bytes written by a neighbour are noticed.
pub fn pattern(id: u64, i: usize) -> u8 {
    let h = (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8;
    h ^ (i as u8).wrapping_mul(29) ^ (i >> 8) as u8
}

/// Writes block `id`'s pattern into its first `len` bytes.
///
/// # Safety
///
/// `ptr` is valid for writes of `len` bytes, and nothing else uses them.
pub unsafe fn fill(ptr: NonNull<u8>, len: usize, id: u64) {
    // SAFETY: valid and exclusive per the caller; writing through
    // `MaybeUninit` needs no prior initialisation.
    let bytes = unsafe { slice::from_raw_parts_mut(ptr.as_ptr().cast::<MaybeUninit<u8>>(), len) };
    for (i, byte) in bytes.iter_mut().enumerate() {
        byte.write(pattern(id, i));
    }
}

/// Checks that the first `len` bytes of a block hold block `id`'s pattern.
///
/// # Safety
///
/// `ptr` is valid for reads of `len` bytes, initialised (by [`fill`]), and
/// nothing writes them meanwhile.
pub unsafe fn verify(ptr: NonNull<u8>, len: usize, id: u64) {
    // SAFETY: valid, initialised and not written meanwhile, per the caller.
    let bytes = unsafe { slice::from_raw_parts(ptr.as_ptr(), len) };
    if let Some((i, &got)) = bytes
        .iter()
        .enumerate()
        .find(|&(i, &b)| b != pattern(id, i))
    {
        panic!(
            "block {id} at {ptr:p}: byte {i} of {len} is {got:#04x}, expected {:#04x}",
            pattern(id, i)
        );
    }
}

/// Runs `misuse`, which checked builds must catch in that very call: it
/// should panic with a message containing `expected` (another message fails
/// the test here). Returns `false` if it returned instead; the caller then
/// forgets whatever holds the bad pointer, so that no later check (a flush,
/// a drop) trips over it while the test fails, and fails the test.
pub fn panics_naming(expected: &str, misuse: impl FnOnce()) -> bool {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(misuse)) {
        Ok(()) => false,
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("<a panic without a message>");
            assert!(
                message.contains(expected),
                "expected a panic naming {expected:?}, got {message:?}"
            );
            true
        }
    }
}

/// Gives the slots this thread caches for `cache` back to their slabs
/// (feature `std`; without it no thread caches any), so that the counters
/// show the slabs as the test's own frees left them.
pub fn flush_thread_cache<T, P: PageAllocator>(cache: &minimal_slab::SlabCache<T, P>) {
    #[cfg(feature = "std")]
    cache.flush_thread_cache();
    #[cfg(not(feature = "std"))]
    let _ = cache;
}

/// [`flush_thread_cache`] for a size-class allocator.
pub fn flush_allocator_thread_cache<
    P: PageAllocator,
    F: minimal_slab::Fallback,
    M: minimal_slab::SizeClassLimit,
>(
    heap: &minimal_slab::SlabAllocator<P, F, M>,
) {
    #[cfg(feature = "std")]
    heap.flush_thread_cache();
    #[cfg(not(feature = "std"))]
    let _ = heap;
}
