//! Page sources: `RegionPages` hands out aligned, distinct pages of the memory
//! it is given, reports exhaustion as an error, reuses pages given back and
//! grows with `add_memory`; caches on a region report its exhaustion with the
//! value handed back and recover once memory is freed; `GlobalAllocPages`
//! and `GlobalPages` give aligned pages of any page size; and a page source
//! that breaks the alignment contract is caught, its page given back.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeSet;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{fill, verify};
use minimal_slab::typenum::{U4096, U16384, U65536};
use minimal_slab::{
    AllocError, GlobalAllocPages, GlobalPages, NoFallback, NoPages, PageAllocError, PageAllocator,
    RegionPages, SlabAllocator, SlabBox, SlabCache,
};

const PAGE: usize = 4096;
/// Bytes written and checked at each end of a page (all of it, but for Miri).
const PROBE: usize = if cfg!(miri) { 128 } else { PAGE / 2 };

/// Writes page `id`'s pattern at both ends of a page of `size` bytes.
///
/// # Safety
///
/// `page` is valid for writes of `size >= 2 * PROBE` bytes and ours alone.
unsafe fn fill_page(page: NonNull<u8>, size: usize, id: u64) {
    // SAFETY: the first PROBE bytes lie in the page.
    unsafe { fill(page, PROBE, id) };
    // SAFETY: `size - PROBE` is inside the page.
    let tail = unsafe { page.byte_add(size - PROBE) };
    // SAFETY: the last PROBE bytes lie in the page.
    unsafe { fill(tail, PROBE, !id) };
}

/// Checks what [`fill_page`] wrote.
///
/// # Safety
///
/// `page` was filled by `fill_page` with this `size` and is still ours.
unsafe fn verify_page(page: NonNull<u8>, size: usize, id: u64) {
    // SAFETY: filled by `fill_page`.
    unsafe { verify(page, PROBE, id) };
    // SAFETY: `size - PROBE` is inside the page.
    let tail = unsafe { page.byte_add(size - PROBE) };
    // SAFETY: filled by `fill_page`.
    unsafe { verify(tail, PROBE, !id) };
}

/// `&'static mut` memory for a region: a `static` of `$pages` pages of
/// `$size` bytes plus enough slack that exactly `$pages` whole aligned pages
/// fit, wherever it lands.
macro_rules! static_pages {
    ($pages:expr, $size:expr) => {{
        const BYTES: usize = $pages * $size + $size - 1;
        static mut MEMORY: [MaybeUninit<u8>; BYTES] = [MaybeUninit::uninit(); BYTES];
        let memory = &raw mut MEMORY;
        // SAFETY: `MEMORY` is private to this expansion, which runs once per
        // process (in one test, outside any loop): the only reference to it.
        let memory: &'static mut [MaybeUninit<u8>] = unsafe { &mut *memory };
        memory
    }};
}

/// A buffer of `bytes` bytes leaked from the heap, as in the `RegionPages`
/// docs. It stays reachable from a static, as a real program's region memory
/// would, so Miri's leak check knows it is meant to live forever.
fn leak_buffer(bytes: usize) -> &'static mut [MaybeUninit<u8>] {
    static LEAKED: Mutex<Vec<Leaked>> = Mutex::new(Vec::new());
    let buf = Box::leak(vec![MaybeUninit::<u8>::uninit(); bytes].into_boxed_slice());
    LEAKED.lock().unwrap().push(Leaked(buf.as_mut_ptr()));
    buf
}

/// A pointer to a leaked buffer, only ever stored, never used.
struct Leaked(#[allow(dead_code)] *mut MaybeUninit<u8>);

// SAFETY: the pointer is never dereferenced; it only keeps the buffer reachable.
unsafe impl Send for Leaked {}

/// The address range of a buffer.
fn span(buf: &[MaybeUninit<u8>]) -> (usize, usize) {
    let start = buf.as_ptr().addr();
    (start, start + buf.len())
}

#[test]
fn a_region_hands_out_aligned_distinct_pages_then_reports_exhaustion() {
    let buf = leak_buffer(8 * PAGE + PAGE - 1);
    let (start, end) = span(buf);
    let region = RegionPages::new(buf);
    assert_eq!((region.capacity(), region.available()), (8, 8));

    let mut pages = Vec::new();
    for i in 0..8 {
        let page = region.allocate_page().expect("the region has pages left");
        let addr = page.as_ptr().addr();
        assert_eq!(addr % PAGE, 0, "page {addr:#x} is not aligned");
        assert!(
            start <= addr && addr + PAGE <= end,
            "page {addr:#x} outside the region"
        );
        // SAFETY: the page is ours, valid for PAGE bytes.
        unsafe { fill_page(page, PAGE, i) };
        pages.push(page);
        assert_eq!(region.available(), 8 - pages.len());
    }
    let distinct: BTreeSet<_> = pages.iter().map(|p| p.as_ptr().addr()).collect();
    assert_eq!(distinct.len(), 8);
    for _ in 0..3 {
        assert_eq!(region.allocate_page(), Err(PageAllocError::RegionExhausted));
    }
    assert_eq!(region.available(), 0);
    assert_eq!(region.capacity(), 8);
    for (i, &page) in pages.iter().enumerate() {
        // SAFETY: filled above and still ours: no page was written over.
        unsafe { verify_page(page, PAGE, i as u64) };
    }

    // A page given back is the next one handed out.
    let back = pages.swap_remove(3);
    // SAFETY: `back` came from this region and is not used again.
    unsafe { region.deallocate_page(back) };
    assert_eq!(region.available(), 1);
    let again = region.allocate_page().unwrap();
    assert_eq!(again, back, "a page given back is reused");
    assert_eq!(region.allocate_page(), Err(PageAllocError::RegionExhausted));
    pages.push(again);

    for page in pages.drain(..) {
        // SAFETY: every page came from this region and is not used again.
        unsafe { region.deallocate_page(page) };
    }
    assert_eq!((region.capacity(), region.available()), (8, 8));
    let reused: BTreeSet<_> = (0..8)
        .map(|_| region.allocate_page().unwrap().as_ptr().addr())
        .collect();
    assert_eq!(reused, distinct, "the same eight pages, no more, no fewer");
    assert!(format!("{region:?}").contains("capacity: 8"));
}

#[test]
fn add_memory_grows_a_region() {
    static REGION: RegionPages = RegionPages::empty();
    assert_eq!((REGION.capacity(), REGION.available()), (0, 0));
    assert_eq!(REGION.allocate_page(), Err(PageAllocError::RegionExhausted));

    assert_eq!(
        REGION.add_memory(leak_buffer(100)),
        0,
        "too small for a page"
    );
    assert_eq!(
        REGION.add_memory(static_pages!(0, PAGE)),
        0,
        "4095 bytes never hold an aligned page"
    );
    assert_eq!(REGION.capacity(), 0);

    let first = static_pages!(4, PAGE);
    let first_span = span(first);
    assert_eq!(REGION.add_memory(first), 4);
    let a = REGION.allocate_page().unwrap();
    let b = REGION.allocate_page().unwrap();
    assert_eq!(REGION.available(), 2);

    // Adding memory keeps the fresh pages not yet handed out.
    let second = static_pages!(4, PAGE);
    let second_span = span(second);
    assert_eq!(REGION.add_memory(second), 4);
    assert_eq!((REGION.capacity(), REGION.available()), (8, 6));

    let mut seen: BTreeSet<usize> = [a, b].iter().map(|p| p.as_ptr().addr()).collect();
    let (mut from_first, mut from_second) = (2, 0);
    for _ in 0..6 {
        let addr = REGION.allocate_page().unwrap().as_ptr().addr();
        assert_eq!(addr % PAGE, 0);
        assert!(seen.insert(addr), "page {addr:#x} handed out twice");
        if (first_span.0..first_span.1).contains(&addr) {
            from_first += 1;
        } else {
            assert!((second_span.0..second_span.1 - PAGE + 1).contains(&addr));
            from_second += 1;
        }
    }
    assert_eq!((from_first, from_second), (4, 4));
    assert_eq!(REGION.allocate_page(), Err(PageAllocError::RegionExhausted));
    assert_eq!(REGION.available(), 0);
}

#[test]
fn a_region_of_bigger_pages() {
    let region = RegionPages::<U16384>::with_page_size();
    assert_eq!(region.add_memory(static_pages!(3, 16384)), 3);
    let pages: Vec<_> = (0..3).map(|_| region.allocate_page().unwrap()).collect();
    assert!(pages.iter().all(|p| p.as_ptr().addr() % 16384 == 0));
    assert_eq!(region.allocate_page(), Err(PageAllocError::RegionExhausted));
    let cache = SlabCache::<[u64; 1024], _>::new_in(&region);
    assert!(cache.alloc([0; 1024]).is_err(), "every page is out");
    for p in pages {
        // SAFETY: from this region, not used again.
        unsafe { region.deallocate_page(p) };
    }
    let big = cache
        .alloc([7; 1024])
        .expect("16 KiB pages hold 8 KiB objects");
    assert!(big.iter().all(|&b| b == 7));
}

#[test]
fn a_cache_on_an_exhausted_region_hands_the_value_back_and_recovers() {
    type Obj = [u64; 64]; // 512 bytes
    let region = RegionPages::new(static_pages!(3, PAGE));
    let cache = SlabCache::<Obj, _>::new_in(&region);
    let per_slab = SlabCache::<Obj, &RegionPages>::SLOTS_PER_SLAB;

    let mut live = Vec::new();
    let failed = loop {
        let id = live.len() as u64;
        match cache.alloc([id; 64]) {
            Ok(b) => live.push((id, b)),
            Err(failed) => break failed,
        }
        assert!(
            live.len() <= 3 * per_slab,
            "more objects than three pages hold"
        );
    };
    assert_eq!(live.len(), 3 * per_slab, "every page was used");
    assert_eq!(
        failed.error(),
        AllocError::Pages(PageAllocError::RegionExhausted)
    );
    assert!(failed.error().to_string().contains("no free page left"));
    let value = failed.into_value();
    let value_id = live.len() as u64;
    assert_eq!(value, [value_id; 64], "the value comes back intact");
    assert_eq!(region.available(), 0);

    // A raw allocator sharing the region fails the same way, without panicking.
    let heap = SlabAllocator::new_in(&region, NoFallback);
    let l = Layout::from_size_align(32, 8).unwrap();
    assert_eq!(
        heap.allocate(l),
        Err(AllocError::Pages(PageAllocError::RegionExhausted))
    );

    // Freeing one object makes room for one.
    let (_, freed) = live.swap_remove(5);
    let freed_addr = SlabBox::as_ptr(&freed).addr();
    drop(freed);
    let stored = cache
        .alloc(value)
        .map_err(|_| ())
        .expect("a slot is free again");
    assert_eq!(SlabBox::as_ptr(&stored).addr(), freed_addr);
    live.push((value_id, stored));
    for (id, b) in &live {
        assert_eq!(**b, [*id; 64], "object {id} changed");
    }

    // Freeing everything and shrinking returns every page to the region.
    drop(live);
    assert!(region.available() <= 1, "the cache keeps its reserve");
    cache.shrink();
    assert_eq!(region.available(), 3);
    let p = heap.allocate(l).expect("the allocator gets a page now");
    // SAFETY: allocated from `heap` with `l`, not used again.
    unsafe { heap.deallocate(p, l) };
    heap.shrink_to_fit();
    assert_eq!(region.available(), region.capacity());
}

#[test]
fn global_alloc_pages_are_aligned_to_their_size() {
    let pages = GlobalAllocPages::new(System);
    let _: &System = pages.inner();
    let got: Vec<_> = (0..4).map(|_| pages.allocate_page().unwrap()).collect();
    for (i, &p) in got.iter().enumerate() {
        assert_eq!(p.as_ptr().addr() % PAGE, 0);
        // SAFETY: a page of PAGE bytes, ours.
        unsafe { fill_page(p, PAGE, i as u64) };
    }
    for (i, p) in got.into_iter().enumerate() {
        // SAFETY: filled above.
        unsafe { verify_page(p, PAGE, i as u64) };
        // SAFETY: from `pages`, not used again.
        unsafe { pages.deallocate_page(p) };
    }

    let big = GlobalAllocPages::<System, U65536>::with_page_size(System);
    let p = big.allocate_page().unwrap();
    assert_eq!(p.as_ptr().addr() % 65536, 0);
    // SAFETY: from `big`, not used again.
    unsafe { big.deallocate_page(p) };

    let cache = SlabCache::<[u64; 2048], _>::new_in(big);
    let obj = cache.alloc([3; 2048]).unwrap();
    assert!(obj.iter().all(|&b| b == 3));
    assert_eq!(cache.stats().page_size, 65536);
}

#[test]
fn global_pages_of_any_size_are_aligned() {
    let small = GlobalPages::new();
    let p = small.allocate_page().unwrap();
    assert_eq!(p.as_ptr().addr() % 4096, 0);
    // SAFETY: from `small`, not used again.
    unsafe { small.deallocate_page(p) };
    let big = GlobalPages::<U16384>::with_page_size();
    let q = big.allocate_page().unwrap();
    assert_eq!(q.as_ptr().addr() % 16384, 0);
    // SAFETY: from `big`, not used again.
    unsafe { big.deallocate_page(q) };
}

#[test]
fn no_pages_never_has_a_page() {
    assert_eq!(NoPages.allocate_page(), Err(PageAllocError::OutOfMemory));
    let heap = SlabAllocator::new_in(NoPages, NoFallback);
    assert_eq!(
        heap.allocate(Layout::new::<u64>()),
        Err(AllocError::Pages(PageAllocError::OutOfMemory))
    );
    assert_ne!(
        PageAllocError::OutOfMemory.to_string(),
        PageAllocError::RegionExhausted.to_string()
    );
}

/// A page source that breaks the contract: its one page starts 64 bytes past
/// a page boundary. It counts the pages it hands out and gets back.
struct MisalignedPages {
    /// Two pages from `System`, aligned to a page.
    buffer: NonNull<u8>,
    handed_out: AtomicUsize,
    given_back: AtomicUsize,
}

const BUFFER: Layout = match Layout::from_size_align(2 * PAGE, PAGE) {
    Ok(l) => l,
    Err(_) => panic!("a valid layout"),
};

impl MisalignedPages {
    fn new() -> Self {
        // SAFETY: the layout has a non-zero size.
        let buffer = unsafe { System.alloc(BUFFER) };
        Self {
            buffer: NonNull::new(buffer).expect("System has two pages"),
            handed_out: AtomicUsize::new(0),
            given_back: AtomicUsize::new(0),
        }
    }

    /// The one page it hands out: 64 bytes into the buffer.
    fn page(&self) -> NonNull<u8> {
        // SAFETY: 64 is inside the two-page buffer.
        unsafe { self.buffer.byte_add(64) }
    }

    fn counts(&self) -> (usize, usize) {
        (
            self.handed_out.load(Ordering::SeqCst),
            self.given_back.load(Ordering::SeqCst),
        )
    }
}

impl Drop for MisalignedPages {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with `BUFFER`, and no page is out.
        unsafe { System.dealloc(self.buffer.as_ptr(), BUFFER) };
    }
}

// SAFETY: the one page lies inside the buffer (64 + PAGE <= 2 * PAGE) with the
// buffer's provenance, is handed out to one user at a time, and lives until
// the allocator is dropped. Only the (optional) alignment is broken.
unsafe impl PageAllocator for MisalignedPages {
    type PageSize = U4096;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        let (out, back) = self.counts();
        if out > back {
            return Err(PageAllocError::OutOfMemory);
        }
        self.handed_out.fetch_add(1, Ordering::SeqCst);
        Ok(self.page())
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        assert_eq!(page, self.page(), "a page it never handed out came back");
        self.given_back.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_misaligned_page_is_rejected_and_given_back() {
    let pages = MisalignedPages::new();
    let expected = AllocError::MisalignedPage {
        addr: pages.page().as_ptr().addr(),
        page_size: PAGE,
    };

    let cache = SlabCache::<u64, _>::new_in(&pages);
    let failed = cache.alloc(17).unwrap_err();
    assert_eq!(failed.error(), expected);
    assert!(failed.error().to_string().contains("not aligned"));
    assert_eq!(failed.into_value(), 17);
    assert_eq!(pages.counts(), (1, 1), "the page went back at once");
    assert_eq!(cache.alloc(18).unwrap_err().error(), expected, "and again");
    assert_eq!(pages.counts(), (2, 2));
    assert_eq!(cache.stats().pages, 0);

    let heap = SlabAllocator::new_in(&pages, NoFallback);
    assert_eq!(heap.allocate(Layout::new::<[u8; 100]>()), Err(expected));
    assert_eq!(pages.counts(), (3, 3));
    assert_eq!(heap.stats().pages(), 0);
}
