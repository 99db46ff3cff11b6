//! One page cut into equal slots, with an intrusive free list.
//!
//! ```text
//!  one page: PageSize bytes, aligned to PageSize
//!  ┌────────────┬────────┬─────┬────────┬────────┬─────┬──────────┬──────┐
//!  │ SlabHeader │ bitmap │ pad │ slot 0 │ slot 1 │ ... │ slot n-1 │ tail │
//!  └────────────┴────────┴─────┴────────┴────────┴─────┴──────────┴──────┘
//!  ^ page base = any slot address with the low log2(PageSize) bits cleared
//!               (the bitmap is maintained in checked builds only)
//! ```
//!
//! # What a slab owns
//!
//! Its page, and in it the header and every slot. The [`SlabGeometry`] (slot
//! size, where slot 0 starts, how many slots) is the same for every slab of a
//! cache, so it lives in the cache and is passed in; the header keeps only
//! what changes.
//!
//! # Invariants
//!
//! - A slot is free iff it is on the slab's [`FreeStack`]: on its returned
//!   list, or in its fresh run (never handed out). Slots are handed out from
//!   the returned list first, then from the run: a new slab is ready in
//!   O(1), without writing its slots (lazy set-up; see `intrusive`). When
//!   the last slot comes back, release builds start the run over (slots in
//!   address order, no link read: a burst freed long ago costs no miss per
//!   slot when it is allocated again); checked builds keep the list, whose
//!   poison they check.
//! - A free slot on the free list holds, in its first word, the pointer to the
//!   next one (`None` at the end). A slot's alignment is at least a pointer's,
//!   so that word is always aligned.
//! - The stack's `out` counts the slots handed out and not yet returned.
//! - In checked builds, bit `i` of the bitmap is set iff slot `i` is in a
//!   user's hands: handed out to a caller, by the slab or by a magazine,
//!   and not freed since (a slot resting in a magazine counts as handed out
//!   in `out`, but its bit is clear). It turns a double free — wherever its
//!   two frees land — or a stray pointer into a clear panic. The slab's own
//!   `pop_slots` and `push_slot` never touch it: whoever hands a slot to a
//!   user or takes one back flips it, the cache under its lock and the
//!   magazines without (see `checks`, and why its words are atomics). The
//!   bitmap's room (one bit per slot, at most 1/64 of the page) is reserved
//!   in every build so that `SLOTS_PER_SLAB`, and whether a type fits, do
//!   not change between debug and release.
//! - In checked builds, every byte of a slot on the free list after its link
//!   is `POISON`, and its link is `None` or a free slot of the same slab;
//!   `Slab::check_reuse` verifies both before the slot is handed out again.
//!   In AddressSanitizer builds, every slot not handed out is marked for the
//!   sanitizer (see `poison`).
//!
//! # Finding the slab of an object
//!
//! Pages are aligned to their size, so clearing the low bits of an object's
//! address gives its header: [`Slab::containing`] is one mask, with the
//! object pointer's own provenance (`map_addr`), no lookup and no loop.
//!
//! # Who may call what
//!
//! Only the cache layer (`cache`), which holds each slab on exactly one of
//! its lists and serialises all access behind its lock. The operations are
//! `unsafe fn`s that share one contract, stated on [`Slab`]. The checks that
//! checked builds run on a slab (owner, double free, poison) are in
//! `checks`, whose bitmap operations alone the magazines call without the
//! lock; taking slots out and putting them back, one or a batch at a
//! time, in `slots`; the geometry, fixed per cache, in `geometry`; the view
//! of the slots in use that `for_each_slab` shows, in `occupancy`.
//!
//! This layer knows the page sources only as a size; it uses `intrusive`
//! for its free slots and `checked` for its checks.

use core::mem::{offset_of, size_of};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::checked::{CHECKED, poison};
use crate::intrusive::{FreeStack, Linked, Run};

mod checks;
mod geometry;
mod occupancy;
mod slots;
#[cfg(all(test, feature = "alloc"))]
mod tests;

pub(crate) use geometry::{GeometryError, SlabGeometry};
pub(crate) use occupancy::UsedSlots;
pub(crate) use slots::split_at_guard;

/// The bookkeeping at the start of every slab page: what changes, under the
/// cache lock, then what is fixed when the slab is made. The split is what
/// lets a local front read the fixed part without the lock while another
/// thread, holding it, borrows the changing part.
///
/// The fields only checked builds read (`slot_size`, `owner`) come last:
/// builds without checks leave them unwritten, and set up the rest, all
/// zeros, in one go.
#[repr(C)]
pub(crate) struct SlabHeader {
    state: SlabState,
    /// An address the front above records (the typed front's own address:
    /// how a one-word handle finds its cache), or 0. The slab never reads
    /// it. It is read and written without the cache lock while the slab is
    /// live (an atomic, so racing writers of one value are no data race).
    home: AtomicUsize,
    /// Copy of the geometry's slot size, for checked builds to compare
    /// (written and read by them only).
    slot_size: u32,
    /// The owning cache's tag (see `checked::OwnerTag`): checked builds
    /// compare it before trusting a header found from a pointer, which tells
    /// apart a slab of this cache from another cache's and from memory that
    /// is no slab at all (written and read by them only).
    owner: u32,
}

/// The part of the header that changes, only under the cache lock.
#[repr(C)]
struct SlabState {
    /// Neighbours on the cache list this slab is on (available or full).
    prev: Option<Slab>,
    next: Option<Slab>,
    /// The free slots: returned ones, then the never-used run; and the
    /// count of slots handed out.
    free: FreeStack,
}

/// A handle to a live slab: a pointer to its header.
///
/// # Safety contract shared by the `unsafe fn`s below
///
/// The caller guarantees that `self` is *live* — its page was set up by
/// [`Slab::init`] with the same `geo` that is passed in, and not given back
/// since — and that it has exclusive access to the slab for the duration of
/// the call (in this crate: it holds the lock of the cache owning the slab).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slab(NonNull<SlabHeader>);

impl Slab {
    /// Lays out an empty slab in `page`, owned by the cache tagged `owner`.
    ///
    /// # Safety
    ///
    /// `page` is `geo.page_size` bytes, aligned to `geo.page_size`, valid for
    /// writes, and not used by anything else until it is given back.
    pub(crate) unsafe fn init(page: NonNull<u8>, geo: &SlabGeometry, owner: u32) -> Slab {
        let header = page.cast::<SlabHeader>();
        // SAFETY: slot 0 starts inside the page (the geometry's
        // guarantee), which is `geo.page_size` bytes and valid, as the
        // caller guarantees.
        let slots = unsafe { page.byte_add(geo.first_slot) };
        let state = header.cast::<SlabState>();
        // SAFETY: the page is ours, aligned to at least 256 bytes, and larger
        // than the header (the geometry put slot 0 after it); the state is
        // the header's first field (`repr(C)`).
        unsafe {
            state.write(SlabState {
                prev: None,
                next: None,
                free: FreeStack::new(),
            })
        };
        // SAFETY: as above: a field inside the header, in the page.
        let home = unsafe { header.byte_add(offset_of!(SlabHeader, home)) };
        // SAFETY: as above.
        unsafe { home.cast::<AtomicUsize>().write(AtomicUsize::new(0)) };
        if CHECKED {
            // SAFETY: as above.
            let slot_size = unsafe { header.byte_add(offset_of!(SlabHeader, slot_size)) };
            // SAFETY: as above.
            unsafe { slot_size.cast::<u32>().write(geo.slot_size as u32) };
            // SAFETY: as above.
            let tag = unsafe { header.byte_add(offset_of!(SlabHeader, owner)) };
            // SAFETY: as above.
            unsafe { tag.cast::<u32>().write(owner) };
        }
        if CHECKED {
            // SAFETY: `page` is a page of `geo.page_size` bytes.
            let bitmap = unsafe { bitmap_of(page) };
            let bytes = geo.first_slot - size_of::<SlabHeader>();
            // All bits clear: no slot in a user's hands. Plain writes: no
            // slot is handed out yet, so nothing reaches the words
            // atomically before the slab is published under the cache's lock.
            // SAFETY: the bitmap lies between the header and slot 0, inside the page.
            unsafe { bitmap.cast::<u8>().write_bytes(0, bytes) };
        }
        poison::forbid(slots, geo.end() - geo.first_slot);
        Slab(header)
    }

    /// The slab whose page contains `ptr`. Computes an address only; nothing
    /// is read, so it is safe — but the result is live only if `ptr` points
    /// into a live slab.
    #[inline]
    pub(crate) fn containing(ptr: NonNull<u8>, page_size: usize) -> Slab {
        Slab(
            ptr.map_addr(|addr| {
                // Clearing low bits of a non-zero address inside a page leaves the
                // page base, which is non-zero too; a foreign `ptr` below the
                // first page is the only way to get zero, and 1 is as good a
                // non-address as any for the checks that follow.
                core::num::NonZeroUsize::new(addr.get() & !(page_size - 1))
                    .unwrap_or(core::num::NonZeroUsize::MIN)
            })
            .cast(),
        )
    }

    /// [`containing`](Self::containing), for a pointer known to point into
    /// a page: without its fallback for an address below the first page,
    /// which builds without checks would link at every handle made and
    /// dropped.
    ///
    /// # Safety
    ///
    /// `ptr` points into a page of `page_size` bytes aligned to its size
    /// (whose base address is then not zero), such as a slot of a live slab.
    #[inline]
    pub(crate) unsafe fn containing_live(ptr: NonNull<u8>, page_size: usize) -> Slab {
        Slab(
            ptr.map_addr(|addr| {
                // SAFETY: the caller's guarantee: the page's base, which this
                // is, is a non-zero address.
                unsafe { core::num::NonZeroUsize::new_unchecked(addr.get() & !(page_size - 1)) }
            })
            .cast(),
        )
    }

    /// Hints the processor to start loading the header's cache line, so
    /// that a later access finds it there. Reads nothing and cannot fault,
    /// whatever the address; a no-op where there is no stable prefetch
    /// instruction (and under Miri).
    #[inline(always)]
    pub(crate) fn prefetch_header(self) {
        #[cfg(all(target_arch = "x86_64", target_feature = "sse", not(miri)))]
        // SAFETY: the build enables SSE, which the instruction needs, and
        // a prefetch never dereferences its address.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                self.0.as_ptr().cast::<i8>().cast_const(),
            )
        };
    }

    /// The address recorded for the front that owns this slab (see
    /// [`SlabHeader::home`]). Needs no lock.
    ///
    /// # Safety
    ///
    /// The slab is live.
    #[inline]
    pub(crate) unsafe fn home(self) -> usize {
        // SAFETY: the caller's guarantee.
        unsafe { self.home_word() }.load(Ordering::Relaxed)
    }

    /// Records `home` for the front that owns this slab. Needs no lock.
    ///
    /// # Safety
    ///
    /// The slab is live.
    #[inline]
    pub(crate) unsafe fn set_home(self, home: usize) {
        // SAFETY: the caller's guarantee.
        unsafe { self.home_word() }.store(home, Ordering::Relaxed);
    }

    /// The header's `home` word.
    ///
    /// # Safety
    ///
    /// The slab is live, for as long as the reference is used.
    #[inline]
    unsafe fn home_word<'a>(self) -> &'a AtomicUsize {
        // SAFETY: a live slab's header is initialised; the reference covers
        // the atomic field alone, never the state the lock holder may be
        // changing beside it.
        unsafe { &(*self.0.as_ptr()).home }
    }

    /// The page this slab lives in.
    #[inline]
    pub(crate) fn page(self) -> NonNull<u8> {
        self.0.cast()
    }

    /// The slab's slots, as the run of its free stack.
    ///
    /// # Safety
    ///
    /// The slab's page is `geo.page_size` bytes, valid (a live slab, or a
    /// page being made one).
    #[inline]
    unsafe fn run(self, geo: &SlabGeometry) -> Run {
        Run {
            // SAFETY: slot 0 starts inside the page (the geometry's
            // guarantee), which is valid: the caller's guarantee. The
            // pointer keeps the page's provenance.
            base: unsafe { self.page().byte_add(geo.first_slot) }.as_ptr(),
            size: geo.slot_size,
            count: geo.slots_per_slab,
        }
    }

    /// Exclusive access to the changing part of the header. The fixed part
    /// (slot size, owner) stays outside the borrow, so that a lock-free
    /// reader of it ([`check_owner`](Self::check_owner)) never meets a
    /// mutable borrow.
    ///
    /// # Safety
    ///
    /// The shared contract on [`Slab`]; the reference must not outlive the
    /// exclusive access, and no other reference to the state may exist while
    /// it does.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    unsafe fn state<'a>(self) -> &'a mut SlabState {
        // `state` is the first field of a `repr(C)` header: same address.
        let state = self.0.cast::<SlabState>();
        // SAFETY: a live slab's header is initialised, and the caller has
        // exclusive access to its state.
        unsafe { &mut *state.as_ptr() }
    }

    /// Slots handed out and not yet returned.
    ///
    /// # Safety
    ///
    /// The shared contract on [`Slab`].
    #[inline]
    pub(crate) unsafe fn in_use(self) -> usize {
        // SAFETY: the caller upholds the shared contract.
        unsafe { self.state() }.free.out()
    }
}

// SAFETY: a slab's list links live in its header's state alone, and the
// callers of `List` hold the cache lock (the `Slab` contract).
unsafe impl Linked for Slab {
    #[inline]
    unsafe fn links(self) -> (Option<Self>, Option<Self>) {
        // SAFETY: the caller has exclusive access to the live slab.
        let state = unsafe { self.state() };
        (state.prev, state.next)
    }

    #[inline]
    unsafe fn set_links(self, prev: Option<Self>, next: Option<Self>) {
        // SAFETY: as above.
        let state = unsafe { self.state() };
        state.prev = prev;
        state.next = next;
    }
}

/// The bitmap right after the header (checked builds; its room, for
/// `occupancy`, in others).
///
/// # Safety
///
/// `page` is a slab page: larger than the header, so the result stays inside.
unsafe fn bitmap_of(page: NonNull<u8>) -> NonNull<usize> {
    // SAFETY: the header is smaller than a page, per the caller.
    unsafe { page.byte_add(size_of::<SlabHeader>()) }.cast()
}
