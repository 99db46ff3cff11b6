//! Two typed caches sharing a tiny region, driven by a fuzzed sequence of
//! allocations, frees, rewrites, shrinks and changes of reserve and
//! give-back policy (eager, or with hysteresis: see `Policy`).

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use minimal_slab::{SlabBox, SlabCache};
use minimal_slab_fuzz::{
    BusyPeak, FULL_CHECK_EVERY, Policy, Ranges, Region, TinyRegion, check_counters,
    expected_failure, page_limit,
};

#[derive(Arbitrary, Debug)]
struct Input {
    region_pages: u8,
    limits: [u8; 2],
    reserves: [u8; 2],
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Alloc { big: bool },
    Free { big: bool, index: u8 },
    Rewrite { big: bool, index: u8 },
    Shrink { big: bool },
    SetReserve { big: bool, slabs: u8 },
}

/// A value whose every word depends on the id of its object.
trait Payload: Sized + PartialEq + std::fmt::Debug {
    fn for_id(id: u64) -> Self;
}

impl<const N: usize> Payload for [u64; N] {
    fn for_id(id: u64) -> Self {
        std::array::from_fn(|i| id.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(i as u32))
    }
}

type Cache<'r, T> = SlabCache<T, &'r Region>;

/// One cache and what the model says is live in it.
struct Lane<'c, T> {
    cache: &'c Cache<'c, T>,
    live: Vec<(u64, SlabBox<'c, T, &'c Region>)>,
    limit: Option<usize>,
    policy: Policy,
    peak: BusyPeak,
}

impl<'c, T: Payload> Lane<'c, T> {
    fn new(cache: &'c Cache<'c, T>, limit: u8, reserve: u8) -> Self {
        let mut lane = Self {
            cache,
            live: Vec::new(),
            limit: page_limit(limit),
            policy: Policy::from_byte(0),
            peak: BusyPeak::default(),
        };
        lane.set_reserve(reserve);
        lane
    }

    /// The reserve and the give-back policy, from one byte.
    fn set_reserve(&mut self, byte: u8) {
        self.policy = Policy::from_byte(byte);
        self.cache.set_config(self.policy.config(self.limit));
        self.peak.restart(&self.cache.stats());
    }

    fn alloc(&mut self, id: u64, ranges: &mut Ranges, region: &Region) {
        let expected = expected_failure(&self.cache.stats(), self.limit, region);
        match self.cache.alloc(T::for_id(id)) {
            Ok(handle) => {
                assert_eq!(expected, None);
                let addr = SlabBox::as_ptr(&handle).addr();
                assert_eq!(addr % align_of::<T>(), 0, "misaligned");
                ranges.insert(addr, size_of::<T>(), id);
                self.live.push((id, handle));
            }
            Err(failed) => {
                assert_eq!(Some(failed.error()), expected);
                assert_eq!(failed.into_value(), T::for_id(id), "the value comes back");
            }
        }
    }

    fn free(&mut self, index: u8, ranges: &mut Ranges) {
        if self.live.is_empty() {
            return;
        }
        let (id, handle) = self.live.swap_remove(usize::from(index) % self.live.len());
        ranges.remove(SlabBox::as_ptr(&handle).addr(), id);
        assert_eq!(SlabBox::into_inner(handle), T::for_id(id));
    }

    fn rewrite(&mut self, index: u8, id: u64, ranges: &mut Ranges) {
        if self.live.is_empty() {
            return;
        }
        let len = self.live.len();
        let (old, handle) = &mut self.live[usize::from(index) % len];
        let addr = SlabBox::as_ptr(handle).addr();
        ranges.remove(addr, *old);
        ranges.insert(addr, size_of::<T>(), id);
        **handle = T::for_id(id);
        *old = id;
    }

    fn shrink(&mut self) {
        // `shrink` first hands this thread's cached slots back, which can
        // empty more slabs: flush them so the count below is the one it sees.
        self.cache.flush_thread_cache();
        let empty = self.cache.stats().empty_slabs;
        assert_eq!(self.cache.shrink(), empty);
        let after = self.cache.stats();
        assert_eq!(after.empty_slabs, 0);
        self.peak.restart(&after);
    }

    /// Checks the counters, and with `values` every live value; returns
    /// the pages held.
    fn check(&self, values: bool) -> usize {
        if values {
            for (id, handle) in &self.live {
                assert_eq!(**handle, T::for_id(*id), "object {id} changed while live");
            }
        }
        let stats = self.cache.stats();
        check_counters(&stats, self.live.len(), self.limit, self.policy, &self.peak);
        stats.pages
    }
}

fuzz_target!(|input: Input| {
    let region = TinyRegion::new(usize::from(input.region_pages % 8) + 1);
    let pages = region.pages();
    // 16-byte objects (dozens a page) and 320-byte ones (three a page).
    let small: Cache<[u64; 2]> = SlabCache::new_in(pages);
    let big: Cache<[u64; 40]> = SlabCache::new_in(pages);
    let mut small = Lane::new(&small, input.limits[0], input.reserves[0]);
    let mut big = Lane::new(&big, input.limits[1], input.reserves[1]);
    let mut ranges = Ranges::default();
    let mut next_id = 0_u64;

    for (i, op) in input.ops.iter().take(512).enumerate() {
        next_id += 1;
        match *op {
            Op::Alloc { big: false } => small.alloc(next_id, &mut ranges, pages),
            Op::Alloc { big: true } => big.alloc(next_id, &mut ranges, pages),
            Op::Free { big: false, index } => small.free(index, &mut ranges),
            Op::Free { big: true, index } => big.free(index, &mut ranges),
            Op::Rewrite { big: false, index } => small.rewrite(index, next_id, &mut ranges),
            Op::Rewrite { big: true, index } => big.rewrite(index, next_id, &mut ranges),
            Op::Shrink { big: false } => small.shrink(),
            Op::Shrink { big: true } => big.shrink(),
            Op::SetReserve { big: false, slabs } => small.set_reserve(slabs),
            Op::SetReserve { big: true, slabs } => big.set_reserve(slabs),
        }
        let full = i % FULL_CHECK_EVERY == FULL_CHECK_EVERY - 1;
        let held = small.check(full) + big.check(full);
        assert_eq!(
            held + pages.available(),
            pages.capacity(),
            "every page is held or in the region"
        );
    }

    small.check(true);
    big.check(true);
    while !small.live.is_empty() {
        small.free(0, &mut ranges);
        small.check(false);
    }
    while !big.live.is_empty() {
        big.free(0, &mut ranges);
        big.check(false);
    }
    small.shrink();
    big.shrink();
    assert_eq!(small.check(true) + big.check(true), 0);
    assert!(ranges.is_empty());
    assert_eq!(
        pages.available(),
        pages.capacity(),
        "every page went back to the region"
    );
});
