//! Pages carved from a memory region the caller supplies: no heap needed.
//!
//! The region is split lazily by a [`PageStack`]: a bump pointer walks the
//! never-used part, and pages that come back are handed out again first.
//!
//! Invariant: a page of the region is available iff it is on the stack.
//!
//! Memory given to the `const` constructors waits in `pending` until the
//! first call that takes the lock: a `const fn` cannot see an address, so
//! it cannot align the first page. Every method locks through
//! [`RegionPages::state`], which adds the pending memory first.
//!
//! # All zeros
//!
//! A region with no memory is all zeros: no page stack, no run (a null
//! base), nothing pending. So a `static` region built by
//! [`RegionPages::empty`], filled at start-up, takes no initialised data in
//! a firmware (`.data`, copied from flash at start-up), only zeroed RAM
//! (`.bss`). That is why the run's base is a nullable pointer and its page
//! size is not stored (it is the type's). (A
//! [`static_region!`](crate::static_region) needs no region at all: its
//! array's place and size are constants.)

use core::fmt;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ops::DerefMut;
use core::ptr::{self, NonNull};

use typenum::U4096;

use super::{PageAllocator, PageSize};
use crate::error::PageAllocError;
use crate::intrusive::{FreeStack, Run};
use crate::sync::{Mutex, const_fn_unless_loom};

/// Pages from a fixed memory region: for kernels, firmware, and any program
/// without a global allocator.
///
/// Running out is an error ([`PageAllocError::RegionExhausted`]), never a
/// panic; pages given back are reused. More memory can be added at any time.
///
/// ```
/// use core::mem::MaybeUninit;
/// use minimal_slab::page_allocator::RegionPages;
/// use minimal_slab::{GlobalPages, SlabCache};
///
/// // Any `&'static mut` memory will do; a leaked buffer keeps the example short.
/// let memory = Box::leak(Box::new([MaybeUninit::<u8>::uninit(); 4 * 4096]));
/// let pages = RegionPages::new(memory);
/// assert!(pages.capacity() >= 3); // one page may go to alignment
///
/// let cache = SlabCache::<u64, _>::new_in(&pages);
/// let answer = cache.alloc(42).unwrap();
/// assert_eq!(*answer, 42);
/// ```
pub struct RegionPages<S: PageSize = U4096> {
    state: Mutex<RegionState>,
    _size: PhantomData<S>,
}

/// The most pages a region holds: its free stack counts in 32 bits.
const MAX_PAGES: usize = u32::MAX as usize;

struct RegionState {
    /// The pages not handed out, and the count of those that are.
    free: FreeStack,
    /// The latest memory added: `free`'s run of never-used pages, `count`
    /// pages from `base` (null while `count` is 0: no memory yet).
    base: *mut u8,
    count: usize,
    /// Pages ever added to the region.
    total: usize,
    /// Memory given to a `const` constructor and not added yet (empty once
    /// added): a `&'static mut` given up to the region.
    pending: *mut [MaybeUninit<u8>],
}

// SAFETY: the state's pointers point into memory the region owns exclusively
// (the caller gave it up in `add_memory`/`add_region`, or to a `const`
// constructor for `pending`); moving the state to
// another thread moves that ownership with it.
unsafe impl Send for RegionState {}

impl RegionPages {
    const_fn_unless_loom! {
        /// A region of 4 KiB pages with no memory yet: usable in a `static`,
        /// filled later with [`add_memory`](Self::add_memory) or
        /// [`add_region`](Self::add_region).
        pub const fn empty() -> Self {
            Self::with_page_size()
        }
    }

    const_fn_unless_loom! {
        /// A region of 4 KiB pages made of `memory`. Whole pages aligned to
        /// the page size are used; the bytes before the first and after the
        /// last are not. `const`, so a `static` region needs no start-up code:
        ///
        /// ```
        /// use core::mem::MaybeUninit;
        /// use minimal_slab::{RegionPages, SlabCache};
        ///
        /// static mut MEMORY: [MaybeUninit<u8>; 3 * 4096] = [MaybeUninit::uninit(); 3 * 4096];
        /// // Taking the address of a `static mut` is safe.
        /// const BYTES: *mut [MaybeUninit<u8>; 3 * 4096] = &raw mut MEMORY;
        /// // SAFETY: nothing else names `MEMORY`: this is the one reference
        /// // to it, given up to the region.
        /// static PAGES: RegionPages = RegionPages::new(unsafe { &mut *BYTES });
        /// static CACHE: SlabCache<u64, &RegionPages> = SlabCache::new_in(&PAGES);
        ///
        /// let answer = CACHE.alloc(42).unwrap();
        /// assert_eq!(*answer, 42);
        /// assert!(PAGES.capacity() >= 2); // one page may go to alignment
        /// ```
        pub const fn new(memory: &'static mut [MaybeUninit<u8>]) -> Self {
            Self::with_memory(memory)
        }
    }
}

impl<S: PageSize> RegionPages<S> {
    const_fn_unless_loom! {
        /// An empty region of pages of `S` bytes, the size named by the type:
        /// `RegionPages::<U16384>::with_page_size()`.
        pub const fn with_page_size() -> Self {
            Self::holding(None)
        }
    }

    const_fn_unless_loom! {
        /// A region of pages of `S` bytes made of `memory`, in a `const`:
        /// `RegionPages::<U1024>::with_memory(memory)`. As
        /// [`new`](RegionPages::new), for any page size.
        pub const fn with_memory(memory: &'static mut [MaybeUninit<u8>]) -> Self {
            Self::holding(Some(memory))
        }
    }

    const_fn_unless_loom! {
        /// A region that adds `memory` at its first use.
        const fn holding(memory: Option<&'static mut [MaybeUninit<u8>]>) -> Self {
            let pending = match memory {
                Some(memory) => memory as *mut [MaybeUninit<u8>],
                None => ptr::slice_from_raw_parts_mut(ptr::null_mut(), 0),
            };
            Self {
                state: Mutex::new(RegionState {
                    free: FreeStack::new(),
                    base: ptr::null_mut(),
                    count: 0,
                    total: 0,
                    pending,
                }),
                _size: PhantomData,
            }
        }
    }

    /// Adds `memory` to the region and returns the number of pages it added.
    pub fn add_memory(&self, memory: &'static mut [MaybeUninit<u8>]) -> usize {
        let len = memory.len();
        let start = NonNull::from(memory).cast::<u8>();
        // SAFETY: `memory` is borrowed mutably for `'static`, so it is valid for
        // `len` bytes for as long as anyone can use this region and nothing
        // else can touch it.
        unsafe { self.add_region(start, len) }
    }

    /// Adds the raw memory `[start, start + len)` to the region and returns the
    /// number of pages it added. A region holds at most `u32::MAX` pages
    /// (16 TiB of 4 KiB pages); memory beyond that is left unused.
    ///
    /// # Safety
    ///
    /// - `start` is valid for reads and writes of `len` bytes, and stays so
    ///   for as long as this region or any page it handed out is used;
    /// - nothing else reads or writes that memory in the meantime, and it does
    ///   not overlap memory already added (no page handed out twice).
    pub unsafe fn add_region(&self, start: NonNull<u8>, len: usize) -> usize {
        let mut state = self.state();
        // SAFETY: the caller's guarantees.
        unsafe { state.add(start, len, S::USIZE) }
    }

    /// The state, locked, with any pending memory added.
    fn state(&self) -> impl DerefMut<Target = RegionState> + '_ {
        let mut state = self.state.lock();
        state.add_pending(S::USIZE);
        state
    }

    /// Pages ever added to the region.
    pub fn capacity(&self) -> usize {
        self.state().total
    }

    /// Pages not handed out right now.
    pub fn available(&self) -> usize {
        let state = self.state();
        state.total - state.free.out()
    }
}

impl RegionState {
    /// `free`'s run of never-used pages, of `page_size` bytes.
    #[inline(always)]
    fn run(&self, page_size: usize) -> Run {
        Run {
            base: self.base,
            size: page_size,
            count: self.count,
        }
    }

    /// Adds the pending memory, if any, as pages of `page_size` bytes.
    fn add_pending(&mut self, page_size: usize) {
        let len = self.pending.len();
        if len == 0 {
            return;
        }
        let start = self.pending.cast::<u8>();
        // Added once: the length goes to 0 (the address may stay).
        self.pending = ptr::slice_from_raw_parts_mut(start.cast(), 0);
        // SAFETY: a non-empty `pending` is the `&'static mut` slice given
        // to `holding`, whose address is not null.
        let start = unsafe { NonNull::new_unchecked(start) };
        // Every method adds the pending memory before anything else, so it
        // is the first memory of the region: the run it replaces is the
        // empty one `holding` made, with no page to retire (`add` would
        // retire it, a loop a firmware would link for nothing), and the
        // region held no page before it.
        debug_assert!(self.total == 0 && self.count == 0);
        if let Some((first, pages)) = whole_pages(start, len, page_size, MAX_PAGES) {
            // A non-empty `pending` was a `&'static mut` given up to the
            // region (`holding`), and is added once: it is empty now.
            self.base = first.as_ptr();
            self.count = pages;
            self.total = pages;
        }
    }

    /// Adds `[start, start + len)` as pages of `page_size` bytes; returns how
    /// many.
    ///
    /// # Safety
    ///
    /// As for [`RegionPages::add_region`], with `page_size` the region's.
    unsafe fn add(&mut self, start: NonNull<u8>, len: usize, page_size: usize) -> usize {
        // The free stack counts in 32 bits: a region holds at most
        // `u32::MAX` pages (16 TiB of 4 KiB pages); memory beyond is unused.
        let room = MAX_PAGES - self.total;
        let Some((first, pages)) = whole_pages(start, len, page_size, room) else {
            return 0;
        };
        let old = self.run(page_size);
        // SAFETY: the lock gives us the stack and its memory; `old` is its run.
        unsafe { self.free.retire_run(old) };
        // SAFETY: the caller's guarantees; the old run is retired.
        unsafe { self.start_run(first, pages) };
        pages
    }

    /// Makes `pages` pages from `first` the stack's run of never-used pages.
    ///
    /// # Safety
    ///
    /// The memory is given up to the region as for
    /// [`RegionPages::add_region`]: `first` is aligned to the region's page
    /// size, and `pages` whole pages follow it inside that memory. The old
    /// run has no never-used page left (retired, or empty).
    unsafe fn start_run(&mut self, first: NonNull<u8>, pages: usize) {
        self.base = first.as_ptr();
        self.count = pages;
        self.total += pages;
    }
}

/// The first page-aligned address of `[start, start + len)` and how many
/// whole pages of `page_size` bytes follow it there, `room` at most; `None`
/// if not one.
fn whole_pages(
    start: NonNull<u8>,
    len: usize,
    page_size: usize,
    room: usize,
) -> Option<(NonNull<u8>, usize)> {
    let offset = start.as_ptr().align_offset(page_size);
    if offset >= len {
        return None;
    }
    let pages = ((len - offset) / page_size).min(room);
    if pages == 0 {
        return None;
    }
    // SAFETY: `offset < len`, so the result stays inside the memory.
    let first = unsafe { start.byte_add(offset) };
    Some((first, pages))
}

impl<S: PageSize> Default for RegionPages<S> {
    fn default() -> Self {
        Self::with_page_size()
    }
}

impl<S: PageSize> fmt::Debug for RegionPages<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("RegionPages");
        out.field("page_size", &S::USIZE);
        match self.state.try_lock() {
            Some(mut state) => {
                state.add_pending(S::USIZE);
                out.field("capacity", &state.total)
                    .field("available", &(state.total - state.free.out()))
            }
            None => out.field("state", &"<locked>"),
        };
        out.finish()
    }
}

// SAFETY: pages come from memory given up to the region; each is `S` bytes
// inside it and aligned to `S` (`add_region` and `add_pending` start the
// fresh run aligned, the run steps by `S`, and the pages given back, which
// the stack hands out again, are pages it handed out): so `PAGES_ALIGNED`
// holds. The stack's invariant ensures no page is handed out twice.
unsafe impl<S: PageSize> PageAllocator for RegionPages<S> {
    type PageSize = S;
    const PAGES_ALIGNED: bool = true;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        let mut state = self.state();
        let run = state.run(S::USIZE);
        // SAFETY: the lock gives us the stack and the region's free pages;
        // `run` is the stack's run.
        unsafe { state.free.pop(run) }.ok_or(PageAllocError::RegionExhausted)
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        debug_assert!(
            page.as_ptr().addr().is_multiple_of(S::USIZE),
            "RegionPages: page {page:p} given back is not one of ours (misaligned)"
        );
        let mut state = self.state.lock();
        // SAFETY: the caller guarantees `page` came from `allocate_page` here
        // and is no longer used.
        unsafe { state.free.push(page) };
    }
}

#[cfg(test)]
mod tests;
