//! `static_region!`: a zero-sized page source over a `static` array, the
//! firmware's way to give caches their memory without `unsafe` and without
//! initialised data, seen from the public API.
//!
//! - The array is added at the first call, whichever it is (an allocation,
//!   `capacity`, `available`), once, and all of it: it is aligned to the
//!   page size.
//! - Pages are aligned, lie inside the array, and are never handed out
//!   twice; running out is an error, and pages given back are reused.
//! - Caches given the handle (or `KeepPages` of it) share its pages, and a
//!   static cache on it works as one on a `&RegionPages`.
//! - A default cache and region are all zeros: a zeroed cache on the
//!   handle behaves as one built by `new_in`.

use std::collections::BTreeSet;

use minimal_slab::typenum::{U1024, U4096};
use minimal_slab::{
    AllocError, KeepPages, PageAllocError, PageAllocator, SlabCache, static_region,
};

static_region! {
    /// Four pages of 1 KiB, for the page-level tests.
    struct Quarter: 4 pages of 1024 bytes;
}

#[test]
fn the_handle_is_a_zero_sized_page_source_of_the_arrays_pages() {
    assert_eq!(size_of::<Quarter>(), 0);
    const {
        assert!(<Quarter as PageAllocator>::PAGES_ALIGNED);
        assert!(!<Quarter as PageAllocator>::KEEP_PAGES);
    }
    let _: fn() -> U1024 = <Quarter as PageAllocator>::PageSize::default;

    // Counted before any page is taken: the array is added at this first
    // call, all of it.
    assert_eq!(Quarter.capacity(), 4);
    assert_eq!(Quarter.available(), 4);
    let mut pages = Vec::new();
    let mut seen = BTreeSet::new();
    while let Ok(page) = Quarter.allocate_page() {
        let addr = page.as_ptr().addr();
        assert_eq!(addr % 1024, 0, "aligned to the page size");
        assert!(seen.insert(addr), "no page handed out twice");
        // The page is ours: all of it can be written.
        // SAFETY: a page of 1024 bytes, handed out to this test.
        unsafe { page.as_ptr().write_bytes(0xA5, 1024) };
        pages.push(page);
    }
    assert_eq!(pages.len(), 4);
    let (lowest, highest) = (*seen.first().unwrap(), *seen.last().unwrap());
    assert_eq!(highest - lowest, 3 * 1024, "one array, four pages");
    assert_eq!(
        Quarter.allocate_page(),
        Err(PageAllocError::RegionExhausted)
    );
    assert_eq!(Quarter.available(), 0);
    assert_eq!(Quarter.capacity(), 4, "added once");

    let back = pages.pop().unwrap();
    // SAFETY: handed out above, and not used again.
    unsafe { Quarter.deallocate_page(back) };
    assert_eq!(Quarter.available(), 1);
    assert_eq!(Quarter.allocate_page(), Ok(back), "reused");
    for page in pages.into_iter().chain([back]) {
        // SAFETY: as above.
        unsafe { Quarter.deallocate_page(page) };
    }
    assert_eq!(Quarter.available(), 4);
}

struct Reading {
    sensor: u32,
    samples: [u32; 7],
}

static_region! {
    /// Two 4 KiB pages, as the firmware's example declares them.
    pub struct Pages: 2 pages;
}
static READINGS: SlabCache<Reading, Pages> = SlabCache::new_in(Pages);

#[test]
fn a_static_cache_on_the_handle_allocates_from_the_array_until_it_is_full() {
    let per_slab = SlabCache::<Reading, Pages>::SLOTS_PER_SLAB;
    let readings: Vec<_> = (0..2 * per_slab as u32)
        .map(|sensor| {
            READINGS
                .alloc(Reading {
                    sensor,
                    samples: [sensor; 7],
                })
                .ok()
                .unwrap()
        })
        .collect();
    assert_eq!(Pages.capacity(), 2);
    assert_eq!(Pages.available(), 0);
    assert_eq!(READINGS.stats().pages, 2);
    let refused = READINGS.alloc(Reading {
        sensor: 0,
        samples: [0; 7],
    });
    let failed = refused.err().unwrap();
    assert_eq!(
        failed.error(),
        AllocError::Pages(PageAllocError::RegionExhausted)
    );
    assert_eq!(failed.into_value().sensor, 0, "the value comes back");
    for (i, reading) in readings.iter().enumerate() {
        assert_eq!(reading.sensor, i as u32);
        assert_eq!(reading.samples[6], i as u32);
    }
    drop(readings);
    READINGS.flush_thread_cache();
    assert_eq!(READINGS.shrink(), 2);
    assert_eq!(Pages.available(), 2);
}

static_region! {
    /// Two pages shared by two caches, one keeping its pages.
    struct Shared: 2 pages of 4096 bytes;
}

#[test]
fn caches_given_the_handle_share_its_pages() {
    let words: SlabCache<u64, Shared> = SlabCache::new_in(Shared);
    let kept: SlabCache<[u8; 100], KeepPages<Shared>> = SlabCache::new_in(KeepPages::new(Shared));
    let word = words.alloc(1).unwrap();
    let bytes = kept.alloc([7; 100]).unwrap();
    assert_eq!((*word, bytes[99]), (1, 7));
    assert_eq!(Shared.available(), 0, "one page each, from one array");
    assert!(words.alloc(2).is_ok(), "room left in its slab");
    drop(bytes);
    kept.flush_thread_cache();
    assert_eq!(kept.stats().pages, 1, "kept, empty");
    assert_eq!(kept.shrink(), 1);
    assert_eq!(Shared.available(), 1);
}

static_region! {
    /// The zeroed cache's memory.
    struct Zeroed: 1 pages;
}

/// A static cache on the handle lands in zeroed memory (`.bss`): it must
/// be the cache `new_in` builds. Every field of a cache without per-thread
/// caches is an integer, a bool, a nullable pointer or a lock, all valid as
/// zeros; per-thread caches (`std`) add fields that are not, so this looks
/// at builds without them (a firmware's).
#[cfg(not(feature = "std"))]
#[test]
fn a_zeroed_cache_on_the_handle_is_a_new_one() {
    // SAFETY: as just said.
    let zeroed: SlabCache<u64, Zeroed> = unsafe { std::mem::zeroed() };
    let built: SlabCache<u64, Zeroed> = SlabCache::new_in(Zeroed);
    assert_eq!(
        format!("{:?}", zeroed.stats()),
        format!("{:?}", built.stats())
    );
    assert_eq!(zeroed.config(), built.config());
    let one = zeroed.alloc(1).unwrap();
    assert_eq!(*one, 1);
    assert_eq!(zeroed.stats().objects_in_use, 1);
    drop(one);
    drop(built);
}

#[test]
fn page_sizes_other_than_4_kib_are_named_in_bytes() {
    static_region! {
        struct Big: 1 pages of 16384 bytes;
    }
    let _: fn() -> U4096 = <Pages as PageAllocator>::PageSize::default;
    let cache: SlabCache<[u8; 8192], Big> = SlabCache::new_in(Big);
    assert_eq!(SlabCache::<[u8; 8192], Big>::SLOTS_PER_SLAB, 1);
    let block = cache.alloc([3; 8192]).unwrap();
    assert_eq!(block[8191], 3);
    assert_eq!(Big.capacity(), 1);
}

static_region! {
    /// Sixteen small pages, for the count of free pages.
    struct Small: 16 pages of 256 bytes;
}

#[test]
fn available_counts_the_free_pages_exactly_whatever_the_order_they_come_back_in() {
    let mut out = Vec::new();
    // A small generator of its own: steps in a fixed, mixed order.
    let mut state = 0x2545_F491_u32;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state as usize % n
    };
    for step in 0..if cfg!(miri) { 200 } else { 5_000 } {
        if next(2) == 0 || out.is_empty() {
            match Small.allocate_page() {
                Ok(page) => {
                    // The page is the user's: its first word, where a free
                    // page holds its link, gets the user's bytes.
                    // SAFETY: a page of 256 bytes, handed out to this test.
                    unsafe { page.as_ptr().write_bytes(0x5A, 256) };
                    out.push(page);
                }
                Err(error) => {
                    assert_eq!(error, PageAllocError::RegionExhausted);
                    assert_eq!(out.len(), 16, "step {step}: exhausted early");
                }
            }
        } else {
            let page = out.swap_remove(next(out.len()));
            // SAFETY: handed out above, and not used again.
            unsafe { Small.deallocate_page(page) };
        }
        assert_eq!(Small.available(), 16 - out.len(), "step {step}");
    }
    for page in out.drain(..) {
        // SAFETY: as above.
        unsafe { Small.deallocate_page(page) };
    }
    assert_eq!(Small.available(), Small.capacity());
}
