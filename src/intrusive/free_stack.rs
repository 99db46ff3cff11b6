//! Free blocks of one stretch of memory, handed out without a search.
//!
//! Blocks that came back are kept on an intrusive LIFO (each one's first
//! word points to the next) and handed out again first; after them comes a
//! run of never-used blocks, walked by an index. Both ends are O(1), and
//! nothing is written to a block before it is first handed out — lazy
//! set-up: a new slab or chunk is ready at once, and on an operating system
//! that maps memory lazily a block never handed out never becomes resident.
//! (Eager set-up would link every block at creation: a loop on the
//! allocation path, and a write to every cache line before the first use.)
//!
//! Invariants:
//!
//! - a block is free iff it is on the returned list or is block `fresh` or
//!   later of the run; the two never overlap, and neither holds a block that
//!   is handed out;
//! - `out` counts the blocks handed out and not given back.
//!
//! Where the run starts and how many blocks it has are not stored: each
//! user knows them (a slab from its geometry, a chunk from its size, a
//! region keeps them), and passes them in. So the stack is two words — a
//! slab header stays five words in all.
//!
//! The same type serves the slots of a slab (`slab`) and the pages of a
//! region or a chunk (`page_allocator`).

use core::ptr::NonNull;

/// The first word of a block that came back.
#[derive(Clone, Copy)]
pub(crate) struct Link {
    next: Option<NonNull<Link>>,
}

/// Where a stack's run of never-used blocks lies: `count` blocks of `size`
/// bytes from `base`, whose provenance covers them all. `base` is a raw
/// pointer, null when `count` is 0, so that a region with no memory yet is
/// all zeros (`page_allocator::region`). The stack counts in
/// 32 bits: `count` is at most `u32::MAX`, and so is the number of blocks
/// out at once (a slab or a chunk holds far fewer; a region caps itself).
#[derive(Clone, Copy)]
pub(crate) struct Run {
    pub(crate) base: *mut u8,
    pub(crate) size: usize,
    pub(crate) count: usize,
}

impl Run {
    /// Block `index` of the run.
    ///
    /// # Safety
    ///
    /// `index < count`.
    #[inline(always)]
    unsafe fn block(self, index: usize) -> NonNull<u8> {
        // SAFETY: the caller's guarantee: block `index` lies inside the
        // run's memory (which exists, so `base` is not null).
        let block = unsafe { self.base.byte_add(index * self.size) };
        // SAFETY: inside memory, so not null.
        unsafe { NonNull::new_unchecked(block) }
    }
}

/// The free blocks of one stretch of memory, all of one size. With
/// `COUNTED` (the default), it counts the blocks out, as a slab needs at
/// every free; without, it keeps no count, for a user that asks for one
/// only to report it (a `static_region!`, whose every page handed out and
/// given back then updates one word less: code a firmware links at each
/// new slab and each page it gives back), and counts the free blocks with
/// [`free_blocks`](Self::free_blocks) instead.
///
/// # Safety contract shared by the `unsafe fn`s below
///
/// The caller has exclusive access to the stack and to the memory it
/// manages, and passes the same [`Run`] on every call until the run is
/// replaced.
pub(crate) struct FreeStack<const COUNTED: bool = true> {
    /// Blocks given back, most recent first.
    returned: Option<NonNull<Link>>,
    /// The index of the first never-used block of the run.
    fresh: u32,
    /// Blocks handed out and not given back (0 if not `COUNTED`).
    out: u32,
}

impl FreeStack {
    /// Blocks handed out and not given back.
    #[inline]
    pub(crate) fn out(&self) -> usize {
        self.out as usize
    }

    /// The block after `block` on the returned list (of a stack of either
    /// kind).
    ///
    /// # Safety
    ///
    /// The shared contract; `block` is on the returned list, and readable.
    #[inline]
    pub(crate) unsafe fn next_returned(block: NonNull<u8>) -> Option<NonNull<u8>> {
        // SAFETY: blocks on the list hold their link in their first word.
        unsafe { block.cast::<Link>().read() }
            .next
            .map(NonNull::cast)
    }
}

impl FreeStack<false> {
    /// The free blocks: the run's never-used ones and the returned list's,
    /// which it walks.
    ///
    /// # Safety
    ///
    /// The shared contract.
    pub(crate) unsafe fn free_blocks(&self, run: Run) -> usize {
        let mut free = run.count - self.fresh();
        let mut cursor = self.returned_head();
        while let Some(block) = cursor {
            // SAFETY: a block on the returned list is free, ours, and holds
            // its link (the shared contract).
            cursor = unsafe { FreeStack::next_returned(block) };
            free += 1;
        }
        free
    }
}

impl<const COUNTED: bool> FreeStack<COUNTED> {
    /// A stack whose run is all free.
    pub(crate) const fn new() -> Self {
        Self {
            returned: None,
            fresh: 0,
            out: 0,
        }
    }

    /// The block `pop` would take from the returned list, if any.
    #[inline]
    pub(crate) fn returned_head(&self) -> Option<NonNull<u8>> {
        self.returned.map(NonNull::cast)
    }

    /// The index in the run of the first never-used block: blocks from it
    /// on were never handed out.
    #[inline]
    pub(crate) fn fresh(&self) -> usize {
        self.fresh as usize
    }

    /// [`pop`](Self::pop) into each place of `out` in turn, until the stack
    /// runs out; returns how many blocks it took. `ready` sees each block
    /// before its link is read or it is handed out (the sanitizer's ban
    /// lifted there). The stack's fields stay in registers for the loop,
    /// written back once: through `&mut self` at each block, the compiler
    /// must store them again after each link read, which might, for all it
    /// knows, have been `self`.
    ///
    /// # Safety
    ///
    /// As for [`pop`](Self::pop), with `ready` making each block readable.
    #[inline]
    pub(crate) unsafe fn pop_into(
        &mut self,
        run: Run,
        out: &mut [NonNull<u8>],
        mut ready: impl FnMut(NonNull<u8>),
    ) -> usize {
        let mut returned = self.returned;
        let mut places = out.iter_mut();
        let mut count = 0;
        // The returned list first, as `pop` takes it; nothing is pushed
        // meanwhile, so once it is empty, the rest comes from the run.
        // (Iterators, not indices: no bounds check, and so no panic path
        // for a firmware to link.)
        while let Some(link) = returned
            && let Some(place) = places.next()
        {
            ready(link.cast());
            // SAFETY: the caller's guarantees: a returned block holds its
            // link, readable now.
            returned = unsafe { link.read() }.next;
            *place = link.cast();
            count += 1;
        }
        let fresh = self.fresh();
        let mut from_run = 0;
        for place in places.take(run.count.saturating_sub(fresh)) {
            // SAFETY: `fresh + from_run < run.count`: inside the run.
            let block = unsafe { run.block(fresh + from_run) };
            ready(block);
            *place = block;
            from_run += 1;
        }
        count += from_run;
        self.returned = returned;
        // Both at most `run.count`, which fits in 32 bits (see `pop`).
        self.fresh = (fresh + from_run) as u32;
        if COUNTED {
            self.out += count as u32;
        }
        count
    }

    /// Takes a block: the last one given back, else the next never-used one
    /// of `run`, if any is left.
    ///
    /// # Safety
    ///
    /// The shared contract; blocks on the returned list hold the link
    /// [`push`](Self::push) wrote, and are readable (for AddressSanitizer
    /// builds: the caller lifts the mark on `returned_head` first).
    #[inline]
    pub(crate) unsafe fn pop(&mut self, run: Run) -> Option<NonNull<u8>> {
        debug_assert!(run.count <= u32::MAX as usize, "a run counts in 32 bits");
        let block = match self.returned {
            Some(link) => {
                // SAFETY: `link` heads the returned list, so it is a free
                // block of ours holding a `Link` written by `push`.
                self.returned = unsafe { link.read() }.next;
                link.cast()
            }
            None if self.fresh() < run.count => {
                // SAFETY: `fresh < count`.
                let block = unsafe { run.block(self.fresh()) };
                self.fresh += 1;
                block
            }
            None => return None,
        };
        if COUNTED {
            self.out += 1;
        }
        Some(block)
    }

    /// Puts a block back, its link written through the block itself.
    ///
    /// # Safety
    ///
    /// The shared contract; `block` was handed out by `pop`, is no longer
    /// used by anyone, and is at least a word in size and aligned to one.
    #[inline]
    pub(crate) unsafe fn push(&mut self, block: NonNull<u8>) {
        let link = self.link_for_push();
        // SAFETY: the block is ours again, large and aligned enough for the
        // link.
        unsafe { block.cast::<Link>().write(link) };
        // SAFETY: the link was just written.
        unsafe { self.push_linked(block) };
    }

    /// [`push`](Self::push) of every block of `blocks`, the last one on
    /// top, with the stack's head and count updated once: the head stays
    /// in a register rather than going through `self` at each block, which
    /// the compiler cannot do for us (a block might, for all it knows, be
    /// `self`).
    ///
    /// # Safety
    ///
    /// As for [`push`](Self::push), for each block, every one distinct.
    #[inline]
    pub(crate) unsafe fn push_each(&mut self, blocks: impl ExactSizeIterator<Item = NonNull<u8>>) {
        let count = blocks.len();
        debug_assert!(
            !COUNTED || count <= self.out as usize,
            "only blocks handed out come back"
        );
        let mut head = self.returned;
        for block in blocks {
            // SAFETY: the caller's guarantees: ours, aligned and large
            // enough for a link, and no one else uses it.
            unsafe { block.cast::<Link>().write(Link { next: head }) };
            head = Some(block.cast());
        }
        self.returned = head;
        if COUNTED {
            // `count <= out`, which fits in 32 bits.
            self.out -= count as u32;
        }
    }

    /// The link a block must hold before [`push_linked`](Self::push_linked)
    /// puts it on the stack: for users that write it themselves, through
    /// pointers of their choice.
    #[inline]
    pub(crate) fn link_for_push(&self) -> Link {
        Link {
            next: self.returned,
        }
    }

    /// Puts `block` on the returned list, its first word already holding
    /// [`link_for_push`](Self::link_for_push)'s value.
    ///
    /// # Safety
    ///
    /// As for [`push`](Self::push), with the link written.
    #[inline]
    pub(crate) unsafe fn push_linked(&mut self, block: NonNull<u8>) {
        self.returned = Some(block.cast());
        if COUNTED {
            self.out -= 1;
        }
    }

    /// Takes back the one block still out, writing nothing to it, and makes
    /// every block never-used again, forgetting the returned list: for a
    /// stack whose run covers every block it manages (a slab's does; a
    /// region's, whose runs change, does not). The next blocks then come
    /// from the run, in address order, without reading a link: a list
    /// threaded through blocks freed long ago costs a cache miss per block.
    #[inline]
    pub(crate) fn take_back_last(&mut self) {
        self.take_back_rest(1);
    }

    /// [`take_back_last`](Self::take_back_last) for the last `count` blocks
    /// out, coming back together.
    #[inline]
    pub(crate) fn take_back_rest(&mut self, count: usize) {
        debug_assert!(
            !COUNTED || self.out as usize == count,
            "only the last blocks out restart the stack"
        );
        self.returned = None;
        self.fresh = 0;
        self.out = 0;
    }

    /// Moves the never-used blocks left of `old` to the returned list, so
    /// that a new run can start (the caller then passes the new one): a loop
    /// at set-up time, never on the allocation path.
    ///
    /// # Safety
    ///
    /// The shared contract, for the old run.
    pub(crate) unsafe fn retire_run(&mut self, old: Run) {
        while self.fresh() < old.count {
            // SAFETY: `fresh < count`.
            let block = unsafe { old.block(self.fresh()) };
            self.fresh += 1;
            // Handed out and given back at once: `out` stays as it was.
            if COUNTED {
                self.out += 1;
            }
            // SAFETY: the block is free, ours, and large enough for a link.
            unsafe { self.push(block) };
        }
        self.fresh = 0;
    }
}
