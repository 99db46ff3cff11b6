//! The chunked page source, one chunk at a time.

use super::*;
use crate::page_allocator::GlobalPages;
use core::cell::Cell;
use std::collections::BTreeSet;
use std::vec::Vec;
use typenum::{U8192, U16384};

/// A source of 16 KiB chunks that counts what is out, and can be told to
/// fail or to misalign.
#[derive(Default)]
struct Source {
    out: Cell<usize>,
    fail: Cell<bool>,
    panic: Cell<bool>,
    misalign: Cell<bool>,
}

// SAFETY: forwards to `GlobalPages`, except that a misaligned chunk is
// the second half of a 32 KiB page, and gives back what it handed out.
unsafe impl PageAllocator for Source {
    type PageSize = U16384;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        if self.fail.get() {
            return Err(PageAllocError::OutOfMemory);
        }
        assert!(!self.panic.get(), "the source panics");
        self.out.set(self.out.get() + 1);
        if self.misalign.get() {
            let big = GlobalPages::<typenum::U32768>::with_page_size().allocate_page()?;
            // SAFETY: 4 KiB into a 32 KiB page, 16 KiB remain after it.
            return Ok(unsafe { big.byte_add(4096) });
        }
        GlobalPages::<U16384>::with_page_size().allocate_page()
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        self.out.set(self.out.get() - 1);
        if self.misalign.get() {
            // SAFETY: undoes the offset of `allocate_page`.
            let big = unsafe { page.byte_sub(4096) };
            // SAFETY: `big` came from this 32 KiB source.
            unsafe { GlobalPages::<typenum::U32768>::with_page_size().deallocate_page(big) };
            return;
        }
        // SAFETY: the caller's guarantee, forwarded.
        unsafe { GlobalPages::<U16384>::with_page_size().deallocate_page(page) }
    }
}

type Chunked<'s> = ChunkedPages<&'s Source>;

fn take(pages: &Chunked<'_>, n: usize) -> Vec<NonNull<u8>> {
    (0..n).map(|_| pages.allocate_page().unwrap()).collect()
}

fn give_back(pages: &Chunked<'_>, taken: Vec<NonNull<u8>>) {
    for page in taken {
        // SAFETY: every page came from `pages` and is not used again.
        unsafe { pages.deallocate_page(page) };
    }
}

#[test]
fn pages_are_aligned_distinct_and_never_the_header() {
    let source = Source::default();
    let pages = Chunked::new(&source);
    assert_eq!(Chunked::USABLE_PAGES_PER_CHUNK, 3);
    let taken = take(&pages, 7);
    let mut seen = BTreeSet::new();
    for page in &taken {
        let addr = page.as_ptr().addr();
        assert_eq!(addr % 4096, 0, "page {addr:#x} misaligned");
        assert_ne!(addr % 16384, 0, "page {addr:#x} is a chunk's header page");
        assert!(seen.insert(addr), "page {addr:#x} handed out twice");
        // SAFETY: the page is ours: every byte can be written.
        unsafe { page.as_ptr().write_bytes(0xEE, 4096) };
    }
    assert_eq!(
        (pages.chunks(), pages.pages_out(), source.out.get()),
        (3, 7, 3)
    );
    give_back(&pages, taken);
    assert_eq!(pages.pages_out(), 0);
}

#[test]
fn an_emptied_chunk_is_kept_as_the_one_spare_until_trim() {
    let source = Source::default();
    let pages = Chunked::new(&source);
    let first = take(&pages, 3);
    let second = take(&pages, 3);
    assert_eq!(source.out.get(), 2);
    give_back(&pages, first);
    assert_eq!(source.out.get(), 2, "the first empty chunk is the spare");
    give_back(&pages, second);
    assert_eq!(
        source.out.get(),
        1,
        "a second empty chunk goes back at once"
    );
    // The spare serves the next request without asking the source.
    let again = take(&pages, 3);
    assert_eq!(source.out.get(), 1);
    give_back(&pages, again);
    pages.trim();
    assert_eq!((pages.chunks(), source.out.get()), (0, 0));
}

#[test]
fn pages_given_back_are_reused_before_new_ones() {
    let source = Source::default();
    let pages = Chunked::new(&source);
    let mut taken = take(&pages, 2);
    let recent = taken.pop().unwrap();
    // SAFETY: `recent` came from `pages` and is not used again.
    unsafe { pages.deallocate_page(recent) };
    assert_eq!(pages.allocate_page(), Ok(recent));
    taken.push(recent);
    give_back(&pages, taken);
    drop(pages);
    assert_eq!(
        source.out.get(),
        0,
        "dropping the source gives the spare back"
    );
}

#[test]
fn full_chunks_come_back_to_the_partial_list() {
    let source = Source::default();
    let pages = Chunked::new(&source);
    let mut a = take(&pages, 3); // chunk A, full
    let b = take(&pages, 1); // chunk B, partial
    let from_a = a.pop().unwrap();
    // SAFETY: `from_a` came from `pages` and is not used again.
    unsafe { pages.deallocate_page(from_a) };
    // A is partial again, at the head: its page is handed out next.
    assert_eq!(pages.allocate_page(), Ok(from_a));
    a.push(from_a);
    let more = take(&pages, 2); // B's two remaining pages
    assert_eq!(pages.chunks(), 2);
    for list in [a, b, more] {
        give_back(&pages, list);
    }
    pages.trim();
    assert_eq!(source.out.get(), 0);
}

#[test]
fn one_page_chunks_work() {
    let pages = ChunkedPages::<GlobalPages<U8192>>::new(GlobalPages::with_page_size());
    assert_eq!(
        ChunkedPages::<GlobalPages<U8192>>::USABLE_PAGES_PER_CHUNK,
        1
    );
    let a = pages.allocate_page().unwrap();
    let b = pages.allocate_page().unwrap();
    assert_eq!(pages.chunks(), 2);
    // SAFETY: both came from `pages` and are not used again.
    unsafe { pages.deallocate_page(a) };
    // SAFETY: as above.
    unsafe { pages.deallocate_page(b) };
    assert_eq!(pages.chunks(), 1, "one spare");
    pages.trim();
    assert_eq!(pages.chunks(), 0);
}

#[test]
fn a_failing_source_is_an_error_and_loses_nothing() {
    let source = Source::default();
    let pages = Chunked::new(&source);
    let taken = take(&pages, 3);
    source.fail.set(true);
    assert_eq!(pages.allocate_page(), Err(PageAllocError::OutOfMemory));
    source.fail.set(false);
    give_back(&pages, taken);
    pages.trim();
    assert_eq!(source.out.get(), 0);
}

#[test]
fn a_panicking_source_leaves_nothing_waiting_for_it() {
    let source = Source::default();
    let pages = Chunked::new(&source);
    source.panic.set(true);
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = pages.allocate_page();
    }));
    assert!(unwound.is_err());
    source.panic.set(false);
    source.fail.set(true);
    // With the panicking request still counted as asking the source,
    // this refused one would wait for it forever.
    assert_eq!(pages.allocate_page(), Err(PageAllocError::OutOfMemory));
    source.fail.set(false);
    let page = pages.allocate_page().unwrap();
    // SAFETY: from `pages`, not used again.
    unsafe { pages.deallocate_page(page) };
}

#[test]
fn a_misaligned_chunk_is_refused_and_given_back() {
    let source = Source::default();
    source.misalign.set(true);
    let pages = Chunked::new(&source);
    let err = pages.allocate_page().unwrap_err();
    assert!(
        matches!(err, PageAllocError::MisalignedChunk { align: 16384, .. }),
        "{err:?}"
    );
    assert_eq!((pages.chunks(), source.out.get()), (0, 0));
}
