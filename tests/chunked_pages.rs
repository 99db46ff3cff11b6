//! `ChunkedPages` under pressure: random traffic checked against a model
//! (pages distinct, aligned, never a header page, their contents intact, at
//! most one empty chunk kept), threads sharing one source, caches that keep
//! borrows into their pages while other pages of the same chunk go back,
//! sources stacked on each other, and the raw allocator's paths.

mod common;

use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use common::XorShift;
use minimal_slab::typenum::{U4096, U8192, U16384, U65536};
use minimal_slab::{
    CacheConfig, ChunkedPages, GlobalPages, NoFallback, PageAllocError, PageAllocator,
    SlabAllocator, SlabCache,
};

const PAGE: usize = 4096;
const OPS: usize = if cfg!(miri) { 150 } else { 6_000 };

/// Chunks of `GlobalPages<C>`, counted; optionally every allocation waits at
/// a barrier first, so that two threads are inside the source at once.
struct Counted<C: minimal_slab::page_allocator::PageSize> {
    inner: GlobalPages<C>,
    out: AtomicUsize,
    ever: AtomicUsize,
    meet: Option<Arc<Barrier>>,
    /// Chunks the source may have out at once.
    limit: usize,
}

impl<C: minimal_slab::page_allocator::PageSize> Counted<C> {
    fn new() -> Self {
        Self {
            inner: GlobalPages::with_page_size(),
            out: AtomicUsize::new(0),
            ever: AtomicUsize::new(0),
            meet: None,
            limit: usize::MAX,
        }
    }

    fn out(&self) -> usize {
        self.out.load(Ordering::SeqCst)
    }
}

// SAFETY: forwards to `GlobalPages`, which upholds the contract.
unsafe impl<C: minimal_slab::page_allocator::PageSize> PageAllocator for Counted<C> {
    type PageSize = C;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        if let Some(meet) = &self.meet {
            meet.wait();
        }
        if self.out.fetch_add(1, Ordering::SeqCst) >= self.limit {
            self.out.fetch_sub(1, Ordering::SeqCst);
            return Err(PageAllocError::OutOfMemory);
        }
        let page = self.inner.allocate_page().inspect_err(|_| {
            self.out.fetch_sub(1, Ordering::SeqCst);
        })?;
        self.ever.fetch_add(1, Ordering::SeqCst);
        Ok(page)
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        self.out.fetch_sub(1, Ordering::SeqCst);
        // SAFETY: forwarded.
        unsafe { self.inner.deallocate_page(page) }
    }

    fn trim(&self) {
        self.inner.trim();
    }
}

/// Stamps the first and last word of a page with `id`.
///
/// # Safety
///
/// `page` is a whole 4 KiB page of ours.
unsafe fn stamp(page: NonNull<u8>, id: u64) {
    // SAFETY: both words lie in the page.
    unsafe { page.cast::<u64>().write(id) };
    // SAFETY: the last word lies in the page.
    let last = unsafe { page.byte_add(PAGE - 8) };
    // SAFETY: as above.
    unsafe { last.cast::<u64>().write(!id) };
}

/// Checks the stamp of `stamp`.
///
/// # Safety
///
/// As for `stamp`.
unsafe fn check(page: NonNull<u8>, id: u64) {
    // SAFETY: both words lie in the page.
    let first = unsafe { page.cast::<u64>().read() };
    // SAFETY: the last word lies in the page.
    let last_word = unsafe { page.byte_add(PAGE - 8) };
    // SAFETY: as above.
    let last = unsafe { last_word.cast::<u64>().read() };
    assert_eq!((first, last), (id, !id), "page {page:p} was overwritten");
}

/// Random traffic on one `ChunkedPages<&Counted<C>>`, checked against a model
/// after every step.
fn random_traffic<C>(seed: u64)
where
    C: minimal_slab::page_allocator::PageSize
        + minimal_slab::typenum::IsGreater<U4096, Output = minimal_slab::typenum::True>,
{
    let source = Counted::<C>::new();
    let chunk = C::USIZE;
    let usable = chunk / PAGE - 1;
    let pages = ChunkedPages::new(&source);
    let mut rng = XorShift::new(seed);
    // page address -> stamp
    let mut live: BTreeMap<usize, (NonNull<u8>, u64)> = BTreeMap::new();
    for step in 0..OPS as u64 {
        let roll = rng.below(100);
        if roll < 55 || live.is_empty() {
            let page = pages.allocate_page().unwrap();
            let addr = page.as_ptr().addr();
            assert_eq!(addr % PAGE, 0, "misaligned page");
            assert_ne!(addr % chunk, 0, "a header page was handed out");
            assert!(!live.contains_key(&addr), "page {addr:#x} handed out twice");
            // SAFETY: the page is ours.
            unsafe { stamp(page, step) };
            live.insert(addr, (page, step));
        } else if roll < 98 {
            let nth = rng.below(live.len());
            let addr = *live.keys().nth(nth).unwrap();
            let (page, id) = live.remove(&addr).unwrap();
            // SAFETY: stamped above, ours.
            unsafe { check(page, id) };
            // SAFETY: from `pages`, not used again.
            unsafe { pages.deallocate_page(page) };
        } else {
            pages.trim();
        }
        // Model: chunks in use are the distinct bases of live pages.
        let mut in_use: BTreeMap<usize, usize> = BTreeMap::new();
        for addr in live.keys() {
            *in_use.entry(addr & !(chunk - 1)).or_default() += 1;
        }
        assert!(in_use.values().all(|&n| n <= usable));
        let held = source.out();
        assert_eq!(pages.chunks(), held, "chunk count drifted at step {step}");
        assert_eq!(pages.pages_out(), live.len());
        assert!(
            held == in_use.len() || held == in_use.len() + 1,
            "step {step}: {held} chunks held, {} in use: more than one spare",
            in_use.len()
        );
    }
    for (_, (page, id)) in std::mem::take(&mut live) {
        // SAFETY: stamped above, ours.
        unsafe { check(page, id) };
        // SAFETY: from `pages`, not used again.
        unsafe { pages.deallocate_page(page) };
    }
    assert!(source.out() <= 1);
    pages.trim();
    assert_eq!((pages.chunks(), source.out()), (0, 0));
}

#[test]
fn random_traffic_four_page_chunks() {
    random_traffic::<U16384>(1);
    random_traffic::<U16384>(77);
}

#[test]
fn random_traffic_one_page_chunks() {
    random_traffic::<U8192>(3);
}

#[test]
fn random_traffic_big_chunks() {
    random_traffic::<U65536>(5);
}

/// Threads share one source, each stamping its pages and checking them
/// before giving them back.
#[test]
fn threads_share_one_source() {
    const THREADS: usize = 4;
    let per_thread = if cfg!(miri) { 150 } else { 100_000 };
    let source = Counted::<U16384>::new();
    let pages = ChunkedPages::new(&source);
    thread::scope(|scope| {
        for t in 0..THREADS {
            let pages = &pages;
            scope.spawn(move || {
                let mut rng = XorShift::new(t as u64 + 11);
                let mut mine: Vec<(NonNull<u8>, u64)> = Vec::new();
                for i in 0..per_thread {
                    let id = ((t as u64) << 32) | i as u64;
                    if rng.percent(52) || mine.is_empty() {
                        let page = pages.allocate_page().unwrap();
                        // SAFETY: ours.
                        unsafe { stamp(page, id) };
                        mine.push((page, id));
                    } else {
                        let at = rng.below(mine.len());
                        let (page, id) = mine.swap_remove(at);
                        // SAFETY: ours, stamped.
                        unsafe { check(page, id) };
                        // SAFETY: from `pages`, not used again.
                        unsafe { pages.deallocate_page(page) };
                    }
                    if rng.percent(2) {
                        pages.trim();
                    }
                }
                for (page, id) in mine {
                    // SAFETY: ours, stamped.
                    unsafe { check(page, id) };
                    // SAFETY: from `pages`, not used again.
                    unsafe { pages.deallocate_page(page) };
                }
            });
        }
    });
    assert_eq!(pages.pages_out(), 0);
    assert!(pages.chunks() <= 1, "{} chunks left", pages.chunks());
    assert_eq!(pages.chunks(), source.out());
    pages.trim();
    assert_eq!((pages.chunks(), source.out()), (0, 0));
}

/// Two threads that both find no free page each take a chunk from the
/// source while the lock is released; both pages then come from one chunk,
/// and the other chunk becomes the spare (given back by `trim`) instead of
/// a second partial chunk.
#[test]
fn concurrent_first_requests_each_take_a_chunk() {
    let mut source = Counted::<U16384>::new();
    source.meet = Some(Arc::new(Barrier::new(2)));
    let pages = ChunkedPages::new(&source);
    struct Sent(NonNull<u8>);
    // SAFETY: a page handed from one test thread to another.
    unsafe impl Send for Sent {}
    let got: Vec<Sent> = thread::scope(|scope| {
        let a = scope.spawn(|| Sent(pages.allocate_page().unwrap()));
        let b = scope.spawn(|| Sent(pages.allocate_page().unwrap()));
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    let taken = source.ever.load(Ordering::SeqCst);
    let bases: Vec<usize> = got
        .iter()
        .map(|Sent(p)| p.as_ptr().addr() & !(16384 - 1))
        .collect();
    assert_eq!((taken, pages.chunks()), (2, 2), "one partial, one spare");
    for Sent(page) in got {
        // SAFETY: from `pages`, not used again.
        unsafe { pages.deallocate_page(page) };
    }
    pages.trim();
    assert_eq!(source.out(), 0);
    assert_eq!(
        bases[0], bases[1],
        "two pages spread over two chunks: the chunk taken by the second thread is used instead of kept as the spare"
    );
}

/// A source with room for one chunk: when two threads find no free page at
/// once, the one the source refuses looks again and takes a page from the
/// other's chunk instead of failing.
#[test]
fn a_racing_request_fails_while_a_chunk_has_free_pages() {
    let mut source = Counted::<U16384>::new();
    source.meet = Some(Arc::new(Barrier::new(2)));
    source.limit = 1;
    let pages = ChunkedPages::new(&source);
    struct Sent(Result<NonNull<u8>, PageAllocError>);
    // SAFETY: a page handed from one test thread to another.
    unsafe impl Send for Sent {}
    let got: Vec<Sent> = thread::scope(|scope| {
        let a = scope.spawn(|| Sent(pages.allocate_page()));
        let b = scope.spawn(|| Sent(pages.allocate_page()));
        vec![a.join().unwrap(), b.join().unwrap()]
    });
    let free_in_chunk = 3 - pages.pages_out();
    let results: Vec<_> = got.iter().map(|Sent(r)| r.is_ok()).collect();
    for Sent(page) in got.into_iter() {
        if let Ok(page) = page {
            // SAFETY: from `pages`, not used again.
            unsafe { pages.deallocate_page(page) };
        }
    }
    pages.trim();
    assert_eq!(source.out(), 0);
    assert_eq!(
        results,
        [true, true],
        "a request failed with {free_in_chunk} free pages in the only chunk"
    );
}

/// A cache keeps a `&mut` to one of its objects (and a protected one, as a
/// function argument) while another cache's pages of the same chunk go back
/// and are handed out again.
#[test]
fn borrows_into_one_page_survive_traffic_on_its_chunk() {
    let source = Counted::<U65536>::new();
    let pages = ChunkedPages::new(&source);
    let keep = CacheConfig::new().reserve(0);
    let a: SlabCache<[u64; 8], _> = SlabCache::with_config(&pages, keep);
    let b: SlabCache<[u64; 64], _> = SlabCache::with_config(&pages, keep);
    let mut held = a.alloc([1; 8]).unwrap();
    let borrow: &mut [u64; 8] = &mut held;

    fn churn(b: &SlabCache<[u64; 64], &ChunkedPages<&Counted<U65536>>>, protected: &mut [u64; 8]) {
        for round in 0..3_u64 {
            let boxes: Vec<_> = (0..40).map(|i| b.alloc([i + round; 64]).unwrap()).collect();
            protected[0] += 1;
            for (i, x) in boxes.iter().enumerate() {
                assert_eq!(x[63], i as u64 + round);
            }
            drop(boxes);
            b.shrink();
            protected[7] += 1;
        }
    }
    churn(&b, borrow);
    borrow[3] = 9;
    churn(&b, borrow);
    assert_eq!(*held, [7, 1, 1, 9, 1, 1, 1, 7]);
    drop(held);
    a.shrink();
    drop((a, b));
    pages.trim();
    assert_eq!((pages.chunks(), source.out()), (0, 0));
}

/// `ChunkedPages` over `ChunkedPages`: `trim` reaches through both.
#[test]
fn stacked_sources_trim_all_the_way_down() {
    let source = Counted::<U65536>::new();
    let middle = ChunkedPages::<_, U16384>::with_page_size(&source);
    let top = ChunkedPages::<_, U4096>::new(&middle);
    let taken: Vec<_> = (0..20).map(|_| top.allocate_page().unwrap()).collect();
    for (i, page) in taken.iter().enumerate() {
        // SAFETY: ours.
        unsafe { stamp(*page, i as u64) };
    }
    for (i, page) in taken.into_iter().enumerate() {
        // SAFETY: ours, stamped.
        unsafe { check(page, i as u64) };
        // SAFETY: from `top`, not used again.
        unsafe { top.deallocate_page(page) };
    }
    top.trim();
    assert_eq!((top.chunks(), middle.chunks(), source.out()), (0, 0, 0));
}

/// The raw allocator on chunked pages: allocate, grow in place and across
/// classes, free; then everything goes back.
#[test]
fn raw_allocator_on_chunked_pages() {
    let source = Counted::<U16384>::new();
    let pages = ChunkedPages::new(&source);
    {
        let heap = SlabAllocator::with_config(&pages, NoFallback, CacheConfig::new().reserve(0));
        let mut rng = XorShift::new(9);
        let mut live = Vec::new();
        for i in 0..if cfg!(miri) { 300 } else { 30_000 } {
            if rng.percent(55) || live.is_empty() {
                let size = rng.range(1, 256);
                let layout = std::alloc::Layout::from_size_align(size, 8).unwrap();
                let p = heap.allocate(layout).unwrap();
                // SAFETY: `size` bytes are ours.
                unsafe { p.as_ptr().write_bytes(i as u8, size) };
                live.push((p, layout, i as u8));
            } else {
                let (p, layout, byte) = live.swap_remove(rng.below(live.len()));
                // SAFETY: ours.
                assert_eq!(unsafe { p.as_ptr().read() }, byte);
                // SAFETY: from `heap`, not used again.
                unsafe { heap.deallocate(p, layout) };
            }
        }
        for (p, layout, _) in live {
            // SAFETY: from `heap`, not used again.
            unsafe { heap.deallocate(p, layout) };
        }
        heap.shrink_to_fit();
    }
    assert_eq!((pages.chunks(), source.out()), (0, 0));
}
