//! Pages cut from bigger blocks of another page source.
//!
//! The user-facing story (why chunks, the layout) is on [`ChunkedPages`];
//! this is the maintainer's part.
//!
//! # Invariants
//!
//! Under the lock, every chunk this source holds is in exactly one place:
//!
//! - on the *partial* list iff some of its pages are handed out and some are
//!   free;
//! - on no list iff all its pages are handed out (it is found again through
//!   the first page that comes back);
//! - the *spare* iff none is handed out. There is at most one spare: a second
//!   chunk that empties goes back to the source at once, and
//!   [`trim`](PageAllocator::trim) (which `shrink` calls) gives back the spare
//!   too. The spare keeps a cache that hovers around a chunk boundary from
//!   asking the source for the same memory again and again.
//!
//! The source itself is called outside the lock, so a slow source never
//! holds up pages that are already here. Another thread may bring pages in
//! meanwhile, so after the call the lists are looked at again: a chunk taken
//! in vain becomes the spare, and a request the source refused fails only
//! once no other thread is still asking the source (`fetching`) and no chunk
//! has a page to spare — so that two threads racing for the source's last
//! chunk both get a page from it. That wait lasts as long as another
//! thread's call into the source, so a source must not call back into the
//! `ChunkedPages` it feeds (it would wait for itself).

use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

use typenum::{IsGreater, True, U4096, Unsigned};

use super::{PageAllocator, PageSize};
use crate::error::PageAllocError;
use crate::intrusive::{FreeStack, Linked, List, Run};
use crate::sync::{Mutex, const_fn_unless_loom, spin_wait};

/// Pages of `S` bytes cut from the bigger pages ("chunks") of another page
/// source `P`.
///
/// # Why
///
/// Asking a general-purpose allocator for each page, aligned to its size,
/// costs more than the page: glibc's `malloc`, for one, keeps each 4 KiB page
/// asked for that way in about 8 KiB of resident memory. `ChunkedPages` asks
/// its source for few, large blocks instead — such as 256 KiB from
/// `GlobalPages<U262144>`, the default ([`ChunkedGlobalPages`](super::ChunkedGlobalPages))
/// — and cuts them into pages itself. The pages of a chunk are contiguous,
/// so a cache's objects also span fewer TLB entries.
///
/// # Layout
///
/// The chunk size is `P`'s page size, which must be larger than `S` (a
/// compile-time bound); chunks are aligned to their size. Page 0 of each
/// chunk holds its header, so giving a page back is a mask of its address
/// and a push, with no search; a 256 KiB chunk of 4 KiB pages gives 63
/// pages (1.6 % overhead). Pages are written to only once handed out, so
/// the unused part of a chunk costs address space, not resident memory. A
/// chunk whose pages have all come back goes back to `P` — except one,
/// kept as a spare until [`trim`](PageAllocator::trim) (which the caches'
/// `shrink` calls), so that a cache hovering around a chunk boundary does
/// not ask `P` for the same memory again and again.
///
/// ```
/// use minimal_slab::page_allocator::{ChunkedPages, GlobalPages, PageAllocator};
/// use minimal_slab::typenum::U65536;
/// use minimal_slab::SlabCache;
///
/// // 64 KiB chunks from the global allocator, cut into 4 KiB pages.
/// let pages = ChunkedPages::new(GlobalPages::<U65536>::with_page_size());
/// let cache = SlabCache::<[u64; 4], _>::new_in(&pages);
/// let boxes: Vec<_> = (0..4000).map(|i| cache.alloc([i; 4]).unwrap()).collect();
/// // 4000 objects of 32 bytes fill 32 pages of 4 KiB; a chunk has 15.
/// assert_eq!(pages.pages_out(), 32);
/// assert_eq!(pages.chunks(), 3);
/// drop(boxes);
/// cache.shrink();
/// assert_eq!(pages.chunks(), 0); // every chunk went back to the global allocator
/// ```
///
/// A chunk no larger than the page is rejected by the compiler:
///
/// ```compile_fail
/// use minimal_slab::page_allocator::{ChunkedPages, GlobalPages};
/// let pages: ChunkedPages<GlobalPages> = ChunkedPages::new(GlobalPages::new());
/// ```
pub struct ChunkedPages<P: PageAllocator, S: PageSize = U4096> {
    source: P,
    state: Mutex<ChunkState>,
    _size: PhantomData<S>,
}

/// The bookkeeping of one chunk, at the start of its page 0.
struct ChunkHeader {
    /// The chunk's pages that are not handed out, and the count of those
    /// that are.
    free: FreeStack,
    /// Links of the partial list (meaningful only while the chunk is on it).
    prev: Option<NonNull<ChunkHeader>>,
    next: Option<NonNull<ChunkHeader>>,
}

struct ChunkState {
    /// Chunks with pages both handed out and free.
    partial: List<NonNull<ChunkHeader>>,
    /// A chunk with no page handed out, kept for the next request.
    spare: Option<NonNull<ChunkHeader>>,
    /// Chunks held, wherever they are.
    chunks: usize,
    /// Pages handed out.
    pages_out: usize,
    /// Threads asking the source for a chunk right now, the lock released.
    fetching: usize,
}

// SAFETY: the state's pointers point into chunks this source owns exclusively
// (they came from its own page source); moving the state to another thread
// moves that ownership with it.
unsafe impl Send for ChunkState {}

impl<P: PageAllocator> ChunkedPages<P>
where
    P::PageSize: IsGreater<U4096, Output = True>,
{
    const_fn_unless_loom! {
        /// Cuts the pages of `source` into 4 KiB pages. Takes no memory until
        /// the first page is asked for, so it can initialise a `static`.
        pub const fn new(source: P) -> Self {
            Self::with_page_size(source)
        }
    }
}

#[cfg(feature = "alloc")]
impl ChunkedPages<super::GlobalPages<typenum::U262144>> {
    const_fn_unless_loom! {
        /// 4 KiB pages from 256 KiB chunks of the global allocator: the
        /// default page source ([`ChunkedGlobalPages`](super::ChunkedGlobalPages)),
        /// in a `const` context too.
        pub const fn global() -> Self {
            Self::new(super::GlobalPages::with_page_size())
        }
    }
}

impl<P: PageAllocator, S: PageSize> ChunkedPages<P, S>
where
    P::PageSize: IsGreater<S, Output = True>,
{
    /// Pages in a chunk, the header's included.
    const PAGES_PER_CHUNK: usize = <P::PageSize as Unsigned>::USIZE / S::USIZE;

    /// Pages of a chunk that are handed out (all but the header's).
    pub const USABLE_PAGES_PER_CHUNK: usize = Self::PAGES_PER_CHUNK - 1;

    const_fn_unless_loom! {
        /// Cuts the pages of `source` into pages of `S` bytes, the size named
        /// by the type: `ChunkedPages::<_, U16384>::with_page_size(source)`.
        pub const fn with_page_size(source: P) -> Self {
            Self {
                source,
                state: Mutex::new(ChunkState {
                    partial: List::new(),
                    spare: None,
                    chunks: 0,
                    pages_out: 0,
                    fetching: 0,
                }),
                _size: PhantomData,
            }
        }
    }

    /// The page source the chunks come from.
    pub const fn source(&self) -> &P {
        &self.source
    }

    /// Chunks taken from the source and not given back yet.
    pub fn chunks(&self) -> usize {
        self.state.lock().chunks
    }

    /// Pages handed out right now.
    pub fn pages_out(&self) -> usize {
        self.state.lock().pages_out
    }

    /// The header of the chunk holding `page`.
    fn header_of(page: NonNull<u8>) -> NonNull<ChunkHeader> {
        let chunk_size = <P::PageSize as Unsigned>::USIZE;
        page.map_addr(|addr| {
            // The chunk's start: a live allocation, so never address 0.
            let base = addr.get() & !(chunk_size - 1);
            core::num::NonZeroUsize::new(base).expect("a chunk never starts at address 0")
        })
        .cast()
    }

    /// The pages of `chunk` after its header's, as the run of its stack.
    fn run_of(chunk: NonNull<ChunkHeader>) -> Run {
        Run {
            // Page 1: inside the chunk (`chunk_size > S`), with its provenance.
            base: chunk
                .cast::<u8>()
                .map_addr(|addr| addr.saturating_add(S::USIZE))
                .as_ptr(),
            size: S::USIZE,
            count: Self::USABLE_PAGES_PER_CHUNK,
        }
    }

    /// Takes a chunk from the source and writes its header.
    fn new_chunk(&self) -> Result<NonNull<ChunkHeader>, PageAllocError> {
        let chunk = self.source.allocate_page()?;
        let chunk_size = <P::PageSize as Unsigned>::USIZE;
        if !chunk.as_ptr().addr().is_multiple_of(chunk_size) {
            // SAFETY: the chunk came from `self.source` and was never used.
            unsafe { self.source.deallocate_page(chunk) };
            return Err(PageAllocError::MisalignedChunk {
                addr: chunk.as_ptr().addr(),
                align: chunk_size,
            });
        }

        let header = chunk.cast::<ChunkHeader>();
        // SAFETY: page 0 is ours, never handed out, and at least 256 bytes
        // aligned to 256 — room and alignment for a header.
        unsafe {
            header.write(ChunkHeader {
                free: FreeStack::new(),
                prev: None,
                next: None,
            })
        };
        Ok(header)
    }
}

/// Counts a thread out of `fetching` if it unwinds from the source.
struct FetchDone<'a>(&'a Mutex<ChunkState>);

impl Drop for FetchDone<'_> {
    fn drop(&mut self) {
        self.0.lock().fetching -= 1;
    }
}

impl ChunkState {
    /// Makes `chunk` — no page of it out, on no list — the spare, and
    /// returns the spare it displaces, no longer counted, for the caller to
    /// give back once the lock is released: one spare at most.
    fn keep_as_spare(&mut self, chunk: NonNull<ChunkHeader>) -> Option<NonNull<ChunkHeader>> {
        let surplus = self.spare.replace(chunk);
        self.chunks -= usize::from(surplus.is_some());
        surplus
    }

    /// Takes the spare, if any, no longer counted, for the caller to give
    /// back once the lock is released.
    fn take_spare(&mut self) -> Option<NonNull<ChunkHeader>> {
        let spare = self.spare.take();
        self.chunks -= usize::from(spare.is_some());
        spare
    }
}

// SAFETY: a chunk's partial-list links live in its header alone; the
// partial list is used only under the source's lock.
unsafe impl Linked for NonNull<ChunkHeader> {
    unsafe fn links(self) -> (Option<Self>, Option<Self>) {
        // SAFETY: the caller has the live header (under the lock).
        let header = unsafe { self.as_ref() };
        (header.prev, header.next)
    }

    unsafe fn set_links(mut self, prev: Option<Self>, next: Option<Self>) {
        // SAFETY: as above, exclusively.
        let header = unsafe { self.as_mut() };
        header.prev = prev;
        header.next = next;
    }
}

impl<P: PageAllocator + Default, S: PageSize> Default for ChunkedPages<P, S>
where
    P::PageSize: IsGreater<S, Output = True>,
{
    fn default() -> Self {
        Self::with_page_size(P::default())
    }
}

impl<P: PageAllocator, S: PageSize> ChunkedPages<P, S> {
    /// Gives `chunk`, if any, back to the source. Called with the lock
    /// released, so a slow source holds up no one.
    ///
    /// # Safety
    ///
    /// `chunk` came from `self.source`, no page of it is handed out, and the
    /// state no longer holds or counts it (it is on no list, not the spare).
    unsafe fn release(&self, chunk: Option<NonNull<ChunkHeader>>) {
        if let Some(chunk) = chunk {
            // SAFETY: the caller's guarantees; the header in page 0 is
            // forgotten with the chunk.
            unsafe { self.source.deallocate_page(chunk.cast()) };
        }
    }
}

impl<P: PageAllocator, S: PageSize> Drop for ChunkedPages<P, S> {
    fn drop(&mut self) {
        // A chunk with pages still out was leaked with them by its user (a
        // leaked object keeps its slab, and its slab keeps the chunk), so
        // only the spare can go back.
        let spare = self.state.get_mut().take_spare();
        // SAFETY: `take_spare` hands back a chunk it no longer holds.
        unsafe { self.release(spare) };
    }
}

impl<P: PageAllocator + fmt::Debug, S: PageSize> fmt::Debug for ChunkedPages<P, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("ChunkedPages");
        out.field("source", &self.source)
            .field("page_size", &S::USIZE);
        match self.state.try_lock() {
            Some(state) => out
                .field("chunks", &state.chunks)
                .field("pages_out", &state.pages_out),
            None => out.field("state", &"<locked>"),
        };
        out.finish()
    }
}

// SAFETY: every page handed out is a page of `S` bytes inside a chunk that
// `self.source` handed out to this object alone (and that stays out until no
// page of it is out); chunks are aligned to their size (checked in
// `new_chunk`), hence their pages to `S`. The header lives in page 0, which is
// never handed out, and the page stacks' invariant keeps each page out at most
// once. `source` is only called with the lock released, and is itself bound
// not to re-enter the caches this source serves.
unsafe impl<P: PageAllocator, S: PageSize> PageAllocator for ChunkedPages<P, S>
where
    P::PageSize: IsGreater<S, Output = True>,
{
    type PageSize = S;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        let mut state = self.state.lock();
        // A chunk taken from the source while the lock was released.
        let mut fresh = None;
        // Why the source refused a chunk, once it has.
        let mut refused = None;
        let (mut chunk, listed) = loop {
            if let Some(chunk) = state.partial.head() {
                break (chunk, true);
            }
            if let Some(spare) = state.spare.take() {
                break (spare, false);
            }
            if let Some(chunk) = fresh.take() {
                break (chunk, false);
            }
            if let Some(error) = refused {
                // Another thread still asking the source may bring a chunk
                // with pages to spare: fail only once none is.
                if state.fetching == 0 {
                    return Err(error);
                }
                drop(state);
                spin_wait();
                state = self.state.lock();
                continue;
            }
            state.fetching += 1;
            drop(state);
            let taken = {
                // Counts this thread out should the source panic, or refused
                // requests elsewhere would wait for it forever.
                let unwinding = FetchDone(&self.state);
                let taken = self.new_chunk();
                // Otherwise it is counted out below, in the same critical
                // section that lists its chunk: a refused request must
                // never see it gone without its chunk.
                core::mem::forget(unwinding);
                taken
            };
            state = self.state.lock();
            state.fetching -= 1;
            match taken {
                Ok(chunk) => {
                    state.chunks += 1;
                    fresh = Some(chunk);
                }
                Err(error) => refused = Some(error),
            }
        };
        // SAFETY: `chunk` is a live chunk header of ours (from the partial
        // list, the spare, or just written), and the lock makes this the only
        // access.
        let header = unsafe { chunk.as_mut() };
        // SAFETY: the stack manages this chunk's pages, its run; the lock
        // makes this the only access.
        let page = unsafe { header.free.pop(Self::run_of(chunk)) }
            .expect("a partial or empty chunk has a free page");
        let now_full = header.free.out() == Self::USABLE_PAGES_PER_CHUNK;
        state.pages_out += 1;
        match (listed, now_full) {
            // SAFETY: the chunk is on the partial list; the lock gives us
            // every chunk on it.
            (true, true) => unsafe { state.partial.remove(chunk) },
            // SAFETY: the chunk was the spare or new: on no list.
            (false, false) => unsafe { state.partial.push_front(chunk) },
            // Partial stays partial; a one-page chunk goes from empty to full.
            (true, false) | (false, true) => {}
        }
        // A chunk taken in vain (another thread brought pages while the
        // source was asked) becomes the spare; one spare at most.
        let surplus = fresh.and_then(|unused| state.keep_as_spare(unused));
        drop(state);
        // SAFETY: `keep_as_spare` hands back a chunk it no longer holds.
        unsafe { self.release(surplus) };
        Ok(page)
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        let mut chunk = Self::header_of(page);
        let mut state = self.state.lock();
        // SAFETY: the caller guarantees `page` came from `allocate_page` here,
        // so its chunk is one of ours with a live header in page 0; the lock
        // makes this the only access.
        let header = unsafe { chunk.as_mut() };
        debug_assert!(
            header.free.out() > 0,
            "ChunkedPages: page {page:p} given back, but its chunk has no page out"
        );
        let was_full = header.free.out() == Self::USABLE_PAGES_PER_CHUNK;
        // SAFETY: the caller guarantees the page is no longer used.
        unsafe { header.free.push(page) };
        let now_empty = header.free.out() == 0;
        state.pages_out -= 1;
        match (was_full, now_empty) {
            // SAFETY: the chunk was full, so on no list; the lock gives us
            // every chunk on the partial list.
            (true, false) => unsafe { state.partial.push_front(chunk) },
            (false, false) => {}
            (was_full, true) => {
                if !was_full {
                    // SAFETY: the chunk had pages out and free: partial.
                    unsafe { state.partial.remove(chunk) };
                }
                let surplus = state.keep_as_spare(chunk);
                drop(state);
                // SAFETY: `keep_as_spare` hands back a chunk it no longer holds.
                unsafe { self.release(surplus) };
            }
        }
    }

    fn trim(&self) {
        let spare = self.state.lock().take_spare();
        // SAFETY: `take_spare` hands back a chunk it no longer holds.
        unsafe { self.release(spare) };
        self.source.trim();
    }
}

#[cfg(test)]
mod tests;
