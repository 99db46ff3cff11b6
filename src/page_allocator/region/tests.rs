//! The region: pages carved lazily, reused first, memory added at any time
//! or at the first call, and an empty region all zeros.

use super::*;
use std::collections::BTreeSet;
use std::vec::Vec;

/// Heap memory lent to regions for one test, freed when the test ends
/// (so that Miri's leak check stays meaningful).
struct Lender(Vec<Vec<MaybeUninit<u8>>>);

impl Lender {
    fn new() -> Self {
        Self(Vec::new())
    }

    /// Adds `bytes` of fresh memory to `region` and returns the pages added.
    fn lend(&mut self, region: &RegionPages, bytes: usize) -> usize {
        let mut block = Vec::with_capacity(bytes);
        block.resize(bytes, MaybeUninit::uninit());
        let start = NonNull::new(block.as_mut_ptr().cast::<u8>()).unwrap();
        self.0.push(block); // moving a Vec does not move its buffer
        // SAFETY: the buffer lives until `self` drops, after the region
        // (declared later in each test, so dropped first), and nothing
        // else touches it.
        unsafe { region.add_region(start, bytes) }
    }
}

#[test]
fn pages_are_aligned_distinct_and_counted() {
    let mut lender = Lender::new();
    let region = RegionPages::empty();
    let total = lender.lend(&region, 9 * 4096);
    assert!(
        total == 8 || total == 9,
        "whole aligned pages only: {total}"
    );
    assert_eq!(region.capacity(), total);
    let mut seen = BTreeSet::new();
    for _ in 0..total {
        let page = region.allocate_page().unwrap();
        assert_eq!(page.as_ptr().addr() % 4096, 0);
        assert!(seen.insert(page.as_ptr().addr()));
    }
    assert_eq!(region.available(), 0);
    assert_eq!(region.allocate_page(), Err(PageAllocError::RegionExhausted));
}

#[test]
fn pages_given_back_are_reused_first() {
    let mut lender = Lender::new();
    let region = RegionPages::empty();
    lender.lend(&region, 4 * 4096);
    let a = region.allocate_page().unwrap();
    let b = region.allocate_page().unwrap();
    // SAFETY: `a` came from this region and is not used again.
    unsafe { region.deallocate_page(a) };
    assert_eq!(region.allocate_page(), Ok(a));
    // SAFETY: both came from this region and are not used again.
    unsafe { region.deallocate_page(a) };
    // SAFETY: as above.
    unsafe { region.deallocate_page(b) };
    assert_eq!(region.available(), region.capacity());
}

#[test]
fn memory_can_be_added_later() {
    let mut lender = Lender::new();
    let region = RegionPages::empty();
    assert_eq!(region.allocate_page(), Err(PageAllocError::RegionExhausted));
    let first = lender.lend(&region, 3 * 4096);
    let _one = region.allocate_page().unwrap();
    let second = lender.lend(&region, 3 * 4096);
    assert_eq!(region.capacity(), first + second);
    // Nothing of the first block is lost when the second arrives.
    let mut handed_out = 1;
    while region.allocate_page().is_ok() {
        handed_out += 1;
    }
    assert_eq!(handed_out, first + second);
}

#[test]
fn a_const_region_adds_its_memory_at_first_use() {
    use typenum::U1024;
    static mut MEMORY: [MaybeUninit<u8>; 3 * 1024] = [MaybeUninit::uninit(); 3 * 1024];
    const BYTES: *mut [MaybeUninit<u8>; 3 * 1024] = &raw mut MEMORY;
    static REGION: RegionPages<U1024> =
        // SAFETY: nothing else names `MEMORY`: this is the one reference to it.
        RegionPages::with_memory(unsafe { &mut *BYTES });
    let total = REGION.capacity();
    assert!(
        total == 2 || total == 3,
        "whole aligned pages only: {total}"
    );
    let start = (&raw const MEMORY).addr();
    for _ in 0..total {
        let page = REGION.allocate_page().unwrap().as_ptr().addr();
        assert_eq!(page % 1024, 0);
        assert!((start..start + 3 * 1024).contains(&page));
        assert!(page + 1024 <= start + 3 * 1024);
    }
    assert_eq!(REGION.allocate_page(), Err(PageAllocError::RegionExhausted));
    assert_eq!(REGION.capacity(), total, "the memory was added once");
}

#[test]
fn an_empty_region_is_all_zeros() {
    // What lets a `static` region filled at start-up live in a firmware's
    // zeroed RAM.
    let mut lender = Lender::new();
    // SAFETY: every field of a region is an integer, a lock flag or a raw
    // pointer: all zeros is a valid region.
    let zeroed: RegionPages = unsafe { core::mem::zeroed() };
    let built = RegionPages::empty();
    {
        let (a, b) = (zeroed.state.lock(), built.state.lock());
        assert_eq!((a.base, a.count, a.total), (b.base, b.count, b.total));
        assert_eq!(
            (a.free.out(), a.free.fresh()),
            (b.free.out(), b.free.fresh())
        );
        assert_eq!((a.pending.len(), b.pending.len()), (0, 0));
        assert!(a.base.is_null());
    }
    assert_eq!(zeroed.allocate_page(), Err(PageAllocError::RegionExhausted));
    let pages = lender.lend(&zeroed, 3 * 4096);
    assert_eq!(zeroed.capacity(), pages);
    assert!(zeroed.allocate_page().is_ok());
    assert_eq!(zeroed.available(), pages - 1);
}

#[test]
fn a_region_smaller_than_a_page_adds_nothing() {
    let mut lender = Lender::new();
    let region = RegionPages::empty();
    assert_eq!(lender.lend(&region, 100), 0);
    assert_eq!(region.capacity(), 0);
}
