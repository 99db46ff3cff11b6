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
//! - A slot is free iff it is on the free list or at or after the `untouched`
//!   offset. Slots are handed out from the free list first, then by bumping
//!   `untouched`: a new slab is ready in O(1), without writing its slots (lazy
//!   set-up — eager set-up would have to link all `n` slots at creation, a
//!   loop over slots on the allocation path and a write to every cache line of
//!   the page before the first object is used).
//! - A free slot on the free list holds, in its first word, the pointer to the
//!   next one (`None` at the end). A slot's alignment is at least a pointer's,
//!   so that word is always aligned.
//! - `in_use` counts the slots handed out and not yet returned.
//! - In checked builds, bit `i` of the bitmap is set iff slot `i` is handed
//!   out; it turns a double free or a stray pointer into a clear panic. The
//!   bitmap's room (one bit per slot, at most 1/64 of the page) is reserved
//!   in every build so that `OBJECTS_PER_SLAB`, and whether a type fits, do
//!   not change between debug and release.
//! - In checked builds, every byte of a slot on the free list after its link
//!   is [`POISON`](poison::POISON), and its link is `None` or a free slot of the same slab;
//!   [`Slab::check_reuse`] verifies both before the slot is handed out again.
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
//! Only `slab_cache`, which holds each slab on exactly one of its lists and
//! serialises all access behind its lock. The operations are `unsafe fn`s that
//! share one contract, stated on [`Slab`].

use core::mem::{align_of, size_of};
use core::ptr::NonNull;

use crate::misuse::{CHECKED, Misuse};
use crate::poison;

const WORD_BITS: usize = usize::BITS as usize;

/// The shape of every slab in one cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlabGeometry {
    /// Bytes in a page; a power of two.
    pub(crate) page_size: usize,
    /// Bytes from one slot to the next; a multiple of the slot alignment.
    pub(crate) slot_size: usize,
    /// Offset of slot 0 from the page base: header, bitmap and padding.
    pub(crate) first_slot: usize,
    /// Slots per slab; at least 1.
    pub(crate) capacity: usize,
}

/// Why a geometry cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GeometryError {
    /// The object's alignment exceeds the page size.
    AlignTooLarge,
    /// Not one object fits in a page after the header.
    TooLarge,
}

impl SlabGeometry {
    /// The geometry for objects of `size` bytes aligned to `align` (a power
    /// of two) in pages of `page_size` bytes.
    pub(crate) const fn new(
        page_size: usize,
        size: usize,
        align: usize,
    ) -> Result<Self, GeometryError> {
        let slot_align = max(align, align_of::<FreeSlot>());
        if slot_align > page_size {
            return Err(GeometryError::AlignTooLarge);
        }
        let slot_size = round_up(max(size, size_of::<FreeSlot>()), slot_align);
        if slot_size > page_size {
            return Err(GeometryError::TooLarge);
        }
        // The bitmap is sized for the most slots that could follow a bare
        // header; the real count can only be smaller. Its room is reserved in
        // every build, so that the geometry — and whether a type fits at
        // all — is the same with and without checks; only checked builds
        // write to it.
        let most_slots = (page_size - size_of::<SlabHeader>()) / slot_size;
        let bitmap = most_slots.div_ceil(WORD_BITS) * size_of::<usize>();
        let first_slot = round_up(size_of::<SlabHeader>() + bitmap, slot_align);
        if first_slot >= page_size {
            // Only an alignment of at least half the page pushes slot 0 out.
            return Err(GeometryError::AlignTooLarge);
        }
        if first_slot + slot_size > page_size {
            return Err(GeometryError::TooLarge);
        }
        Ok(Self {
            page_size,
            slot_size,
            first_slot,
            capacity: (page_size - first_slot) / slot_size,
        })
    }

    /// Offset just past the last slot.
    const fn end(&self) -> usize {
        self.first_slot + self.capacity * self.slot_size
    }
}

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

const fn round_up(n: usize, align: usize) -> usize {
    (n + align - 1) & !(align - 1)
}

/// The first word of a free slot on the free list.
struct FreeSlot {
    next: Option<NonNull<FreeSlot>>,
}

/// The bookkeeping at the start of every slab page: what changes, under the
/// cache lock, then what is fixed when the slab is made. The split is what
/// lets a local front read the fixed part without the lock while another
/// thread, holding it, borrows the changing part.
#[repr(C)]
pub(crate) struct SlabHeader {
    state: SlabState,
    /// Copy of the geometry's slot size, for checked builds to compare.
    slot_size: u32,
    /// The owning cache's tag (see `slab_cache::OwnerTag`): checked builds
    /// compare it before trusting a header found from a pointer, which tells
    /// apart a slab of this cache from another cache's and from memory that
    /// is no slab at all.
    owner: u32,
}

/// The part of the header that changes, only under the cache lock.
#[repr(C)]
struct SlabState {
    /// Neighbours on the cache list this slab is on (available or full).
    prev: Option<Slab>,
    next: Option<Slab>,
    /// Most recently freed slot; the free list runs through the free slots.
    free_head: Option<NonNull<FreeSlot>>,
    /// Offset of the first slot never handed out since the slab was made.
    untouched: u32,
    /// Slots handed out and not returned.
    in_use: u32,
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
        // SAFETY: the page is ours, aligned to at least 256 bytes, and larger
        // than the header (the geometry put slot 0 after it).
        unsafe {
            header.write(SlabHeader {
                state: SlabState {
                    prev: None,
                    next: None,
                    free_head: None,
                    untouched: geo.first_slot as u32,
                    in_use: 0,
                },
                slot_size: geo.slot_size as u32,
                owner,
            })
        };
        if CHECKED {
            // SAFETY: `page` is a page of `geo.page_size` bytes.
            let bitmap = unsafe { bitmap_of(page) };
            let bytes = geo.first_slot - size_of::<SlabHeader>();
            // SAFETY: the bitmap lies between the header and slot 0, inside
            // the page; all bits clear means no slot is handed out.
            unsafe { bitmap.cast::<u8>().write_bytes(0, bytes) };
        }
        // SAFETY: slot 0 starts inside the page (the geometry's guarantee).
        let slots = unsafe { page.byte_add(geo.first_slot) };
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

    /// The page this slab lives in.
    #[inline]
    pub(crate) fn page(self) -> NonNull<u8> {
        self.0.cast()
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
    unsafe fn header<'a>(self) -> &'a mut SlabState {
        // `state` is the first field of a `repr(C)` header: same address.
        let state = self.0.cast::<SlabState>();
        // SAFETY: a live slab's header is initialised, and the caller has
        // exclusive access to its state.
        unsafe { &mut *state.as_ptr() }
    }

    /// Hands out a free slot, or `None` if the slab is full.
    ///
    /// # Safety
    ///
    /// The shared contract on [`Slab`].
    #[inline]
    pub(crate) unsafe fn pop_slot(self, geo: &SlabGeometry) -> Option<NonNull<u8>> {
        // SAFETY: the caller upholds the shared contract.
        let header = unsafe { self.header() };
        let slot = if let Some(slot) = header.free_head {
            poison::allow(slot.cast(), geo.slot_size);
            // SAFETY: slots on the free list are free slots of this page whose
            // first word holds a `FreeSlot` written by `push_slot`.
            header.free_head = unsafe { slot.read() }.next;
            slot.cast::<u8>()
        } else if (header.untouched as usize) < geo.end() {
            // SAFETY: `untouched` is the offset of a slot inside the page.
            let slot = unsafe { self.page().byte_add(header.untouched as usize) };
            header.untouched += geo.slot_size as u32;
            poison::allow(slot, geo.slot_size);
            slot
        } else {
            return None;
        };
        header.in_use += 1;
        if CHECKED {
            // SAFETY: `slot` is a slot of this live slab.
            unsafe { self.flip_bit(slot, geo) };
        }
        Some(slot)
    }

    /// Puts `slot` back on the free list.
    ///
    /// The link is written through `slot` itself for the first `guarded`
    /// bytes — the caller's pointer is the one entitled to them right now (a
    /// `Box` being freed still guards its object) — and through the slab's
    /// own pointer for the rest of the word, which a small object's borrow
    /// does not cover. The pointer kept on the list is rebuilt from the
    /// slab's own, so the slot's next owner gets the page's provenance, not
    /// whatever the last owner's pointer had.
    ///
    /// # Safety
    ///
    /// The shared contract on [`Slab`]; `slot` is a slot of this slab that is
    /// handed out (checked builds verify it first with
    /// [`check_free`](Self::check_free)), and no one uses it after this call.
    /// `guarded` is the size of the object the caller's borrow covers
    /// (`usize::MAX` when the pointer reaches the whole page).
    #[inline]
    pub(crate) unsafe fn push_slot(self, slot: NonNull<u8>, geo: &SlabGeometry, guarded: usize) {
        if CHECKED {
            // SAFETY: `slot` is a handed-out slot of this live slab.
            unsafe { self.flip_bit(slot, geo) };
        }
        // SAFETY: the caller upholds the shared contract.
        let header = unsafe { self.header() };
        let link = self.0.with_addr(slot.addr()).cast::<FreeSlot>();
        let value = FreeSlot {
            next: header.free_head,
        };
        let len = size_of::<FreeSlot>();
        let [(near, near_len), (far, far_len)] = split_at_guard(slot, link.cast(), guarded, 0, len);
        let bytes = (&raw const value).cast::<u8>();
        // SAFETY: the slot is ours again and at least a pointer in size; the
        // near part lies inside the caller's borrow.
        unsafe { core::ptr::copy_nonoverlapping(bytes, near, near_len) };
        // SAFETY: the far part is the rest of the word, in the same slot,
        // reached through the slab's page provenance; `near_len + far_len`
        // is the size of `value`.
        unsafe { core::ptr::copy_nonoverlapping(bytes.wrapping_add(near_len), far, far_len) };
        if CHECKED {
            let pieces = split_at_guard(slot, link.cast(), guarded, len, geo.slot_size);
            for (start, count) in pieces {
                // SAFETY: both pieces lie inside the slot, which is ours
                // again, each reached through a pointer entitled to it.
                unsafe { poison::fill(start, count) };
            }
        }
        poison::forbid(link.cast(), geo.slot_size);
        header.free_head = Some(link);
        header.in_use -= 1;
    }

    /// Checks, in checked builds, that the slot the next `pop_slot` hands out
    /// from the free list was left alone while it was free: its link still
    /// leads to a free slot of this slab (or nowhere), and its poison fill is
    /// intact. Returns the slot and the misuse otherwise. Nothing in other
    /// builds.
    ///
    /// # Safety
    ///
    /// The shared contract on [`Slab`].
    pub(crate) unsafe fn check_reuse(
        self,
        geo: &SlabGeometry,
    ) -> Result<(), (Misuse, NonNull<u8>)> {
        if !CHECKED {
            return Ok(());
        }
        // SAFETY: the caller upholds the shared contract.
        let header = unsafe { self.header() };
        let Some(head) = header.free_head else {
            return Ok(());
        };
        let (untouched, slot) = (header.untouched as usize, head.cast::<u8>());
        // It is handed out next, if it passes: the sanitizer may let us read.
        poison::allow(slot, geo.slot_size);
        let corrupt = |offset| Err((Misuse::WriteAfterFree { offset }, slot));
        // SAFETY: a free slot's first word is its link, written by `push_slot`.
        if let Some(next) = unsafe { head.read() }.next {
            let base = self.page().as_ptr().addr();
            let offset = next.as_ptr().addr().wrapping_sub(base);
            let in_slab = offset >= geo.first_slot
                && offset < untouched
                && (offset - geo.first_slot).is_multiple_of(geo.slot_size);
            // SAFETY: a slot of this live slab, as just checked.
            if !in_slab || unsafe { self.is_handed_out(next.cast(), geo) } {
                return corrupt(0);
            }
        }
        let after_link = slot.as_ptr().wrapping_add(size_of::<FreeSlot>());
        let len = geo.slot_size - size_of::<FreeSlot>();
        // SAFETY: the bytes after the link are inside the free slot, which
        // nothing else may use while we hold the slab.
        match unsafe { poison::first_changed(after_link, len) } {
            Some(changed) => corrupt(size_of::<FreeSlot>() + changed),
            None => Ok(()),
        }
    }

    /// Slots handed out and not yet returned.
    ///
    /// # Safety
    ///
    /// The shared contract on [`Slab`].
    #[inline]
    pub(crate) unsafe fn in_use(self) -> usize {
        // SAFETY: the caller upholds the shared contract.
        unsafe { self.header() }.in_use as usize
    }

    /// The slabs before and after this one on its cache list.
    ///
    /// # Safety
    ///
    /// The shared contract on [`Slab`].
    #[inline]
    pub(crate) unsafe fn links(self) -> (Option<Slab>, Option<Slab>) {
        // SAFETY: the caller upholds the shared contract.
        let header = unsafe { self.header() };
        (header.prev, header.next)
    }

    /// Sets the slab before this one on its cache list.
    ///
    /// # Safety
    ///
    /// The shared contract on [`Slab`].
    #[inline]
    pub(crate) unsafe fn set_prev(self, prev: Option<Slab>) {
        // SAFETY: the caller upholds the shared contract.
        unsafe { self.header() }.prev = prev;
    }

    /// Sets the slab after this one on its cache list.
    ///
    /// # Safety
    ///
    /// The shared contract on [`Slab`].
    #[inline]
    pub(crate) unsafe fn set_next(self, next: Option<Slab>) {
        // SAFETY: the caller upholds the shared contract.
        unsafe { self.header() }.next = next;
    }

    /// Checks, before a free, that `slot` is a handed-out slot of this slab,
    /// owned by the cache tagged `owner`, of the expected geometry. Meaningful
    /// in checked builds; always `Ok` otherwise.
    ///
    /// # Safety
    ///
    /// The caller has exclusive access to the cache that `geo` belongs to,
    /// and `self` was computed by [`Slab::containing`] from `slot`. The page
    /// need not be a slab of that cache — finding out is the point — but it
    /// must be readable memory: a pointer into no page at all cannot be
    /// checked without a fault. Likewise a slot whose slab has already gone
    /// back to the page allocator (a double free of a slab's last object,
    /// say) is beyond checking: its header is gone. This is a best-effort
    /// diagnostic for bugs, not a licence to free arbitrary pointers.
    pub(crate) unsafe fn check_free(
        self,
        slot: NonNull<u8>,
        geo: &SlabGeometry,
        owner: u32,
    ) -> Result<(), Misuse> {
        if !CHECKED {
            return Ok(());
        }
        // SAFETY: readable per the contract. A copy of the header is read
        // through the raw pointer, so a foreign page is never borrowed as one.
        let header = unsafe { self.0.read() };
        let (slab_owner, slot_size, untouched) = (
            header.owner,
            header.slot_size as usize,
            header.state.untouched as usize,
        );
        self.check_identity(slot, geo, (slab_owner, owner), slot_size, untouched)?;
        // SAFETY: `slot` is a slot of this live slab (checked just above).
        let (word, mask) = unsafe { self.bit_of(slot, geo) };
        // SAFETY: the bitmap word lies inside the header area of the page.
        if unsafe { word.read() } & mask == 0 {
            return Err(Misuse::DoubleFree);
        }
        Ok(())
    }

    /// Which slots are handed out, as a bitmap of `geo.capacity` bits (bit
    /// `i % usize::BITS` of word `i / usize::BITS` for slot `i`). Checked
    /// builds maintain that bitmap; other builds recompute it here, from the
    /// free list and the untouched offset, into the room the geometry
    /// reserves for it in every build.
    ///
    /// # Safety
    ///
    /// The shared contract on [`Slab`]; the slice must not outlive the
    /// exclusive access.
    pub(crate) unsafe fn occupancy<'a>(self, geo: &SlabGeometry) -> &'a [usize] {
        let words = geo.capacity.div_ceil(WORD_BITS);
        // SAFETY: the caller upholds the shared contract.
        let header = unsafe { self.header() };
        // SAFETY: a live slab's page is a slab page.
        let bitmap = unsafe { bitmap_of(self.page()) };
        // SAFETY: the bitmap room holds a bit for every slot, right after the
        // header; we hold the slab, so no one else touches it.
        let bits = unsafe { core::slice::from_raw_parts_mut(bitmap.as_ptr(), words) };
        if !CHECKED {
            let touched = (header.untouched as usize - geo.first_slot) / geo.slot_size;
            for (i, word) in bits.iter_mut().enumerate() {
                let below = touched.saturating_sub(i * WORD_BITS).min(WORD_BITS);
                *word = if below == WORD_BITS {
                    usize::MAX
                } else {
                    (1 << below) - 1
                };
            }
            let mut cursor = header.free_head;
            while let Some(slot) = cursor {
                poison::allow(slot.cast(), geo.slot_size);
                // SAFETY: slots on the free list hold their link in their
                // first word.
                cursor = unsafe { slot.read() }.next;
                poison::forbid(slot.cast(), geo.slot_size);
                let offset = slot.as_ptr().addr() - self.page().as_ptr().addr();
                let index = (offset - geo.first_slot) / geo.slot_size;
                bits[index / WORD_BITS] &= !(1 << (index % WORD_BITS));
            }
        }
        debug_assert_eq!(
            bits.iter().map(|w| w.count_ones() as usize).sum::<usize>(),
            header.in_use as usize,
            "the bitmap agrees with the count of slots in use"
        );
        bits
    }

    /// Whether `slot`'s bit says it is handed out.
    ///
    /// # Safety
    ///
    /// As for [`bit_of`](Self::bit_of).
    unsafe fn is_handed_out(self, slot: NonNull<u8>, geo: &SlabGeometry) -> bool {
        // SAFETY: forwarded from the caller.
        let (word, mask) = unsafe { self.bit_of(slot, geo) };
        // SAFETY: the word is inside the page's bitmap, initialised by `init`.
        let bits = unsafe { word.read() };
        bits & mask != 0
    }

    /// Checks, without exclusive access, that `slot` is a slot of this slab
    /// owned by the cache tagged `owner` with `geo`'s slot size: the checks of
    /// [`check_free`](Self::check_free) that read only header fields fixed
    /// when the slab was made (owner, slot size), for a local front that
    /// takes no lock to free. Whether the slot is handed out is checked later,
    /// when it goes back under the lock. Meaningful in checked builds;
    /// always `Ok` otherwise.
    ///
    /// # Safety
    ///
    /// `self` was computed by [`Slab::containing`] from `slot`, and the page
    /// is readable memory (the same best-effort terms as `check_free`).
    pub(crate) unsafe fn check_owner(
        self,
        slot: NonNull<u8>,
        geo: &SlabGeometry,
        owner: u32,
    ) -> Result<(), Misuse> {
        if !CHECKED {
            return Ok(());
        }
        let header = self.0.as_ptr();
        // SAFETY: a field of the header in place; nothing is read yet.
        let owner_field = unsafe { &raw const (*header).owner };
        // SAFETY: readable per the contract; the owner is written only when
        // the slab is made, so reading it races with nothing.
        let slab_owner = unsafe { owner_field.read() };
        // SAFETY: as above.
        let size_field = unsafe { &raw const (*header).slot_size };
        // SAFETY: as above: the slot size is fixed when the slab is made.
        let slot_size = unsafe { size_field.read() } as usize;
        self.check_identity(slot, geo, (slab_owner, owner), slot_size, geo.end())
    }

    /// The checks shared by [`check_free`](Self::check_free) and
    /// [`check_owner`](Self::check_owner), on header fields already read:
    /// the slab belongs to the expected owner (`owners`: the slab's, the
    /// expected), its slots have the expected size, and `slot` is a slot
    /// boundary below `limit`.
    fn check_identity(
        self,
        slot: NonNull<u8>,
        geo: &SlabGeometry,
        (slab_owner, owner): (u32, u32),
        slot_size: usize,
        limit: usize,
    ) -> Result<(), Misuse> {
        if slab_owner != owner {
            return Err(Misuse::ForeignPointer);
        }
        if slot_size != geo.slot_size {
            return Err(Misuse::WrongSizeClass {
                actual: slot_size,
                claimed: geo.slot_size,
            });
        }
        let offset = slot.as_ptr().addr() - self.page().as_ptr().addr();
        if offset < geo.first_slot
            || offset >= limit
            || !(offset - geo.first_slot).is_multiple_of(slot_size)
        {
            return Err(Misuse::ForeignPointer);
        }
        Ok(())
    }

    /// The bitmap word and bit mask of `slot`.
    ///
    /// # Safety
    ///
    /// Checked builds only; `slot` is a slot of this live slab.
    unsafe fn bit_of(self, slot: NonNull<u8>, geo: &SlabGeometry) -> (NonNull<usize>, usize) {
        let index =
            (slot.as_ptr().addr() - self.page().as_ptr().addr() - geo.first_slot) / geo.slot_size;
        // SAFETY: a live slab's page is a slab page.
        let bitmap = unsafe { bitmap_of(self.page()) };
        // SAFETY: the bitmap has a bit for every slot index below the capacity.
        let word = unsafe { bitmap.add(index / WORD_BITS) };
        (word, 1 << (index % WORD_BITS))
    }

    /// Toggles the handed-out bit of `slot`.
    ///
    /// # Safety
    ///
    /// As for [`bit_of`](Self::bit_of), plus exclusive access to the slab.
    unsafe fn flip_bit(self, slot: NonNull<u8>, geo: &SlabGeometry) {
        // SAFETY: forwarded from the caller.
        let (word, mask) = unsafe { self.bit_of(slot, geo) };
        // SAFETY: the word is inside the page's bitmap, initialised by `init`.
        let bits = unsafe { word.read() };
        // SAFETY: as above, and we have exclusive access to it.
        unsafe { word.write(bits ^ mask) };
    }
}

/// The byte range `start..end` of a slot being freed, as two pieces: the
/// part below `guarded` through `slot` (the caller's pointer, entitled to
/// its object's bytes and the only one allowed to touch them while a `Box`
/// is being freed), the rest through `paged` (the same address with the
/// page's provenance). Computes pointers only.
///
/// Inlined so that the copies in [`Slab::push_slot`] see constant lengths
/// when the caller's pointer reaches the whole page: out of line, each free
/// paid a call here and two calls to `memcpy` for one word.
#[inline]
fn split_at_guard(
    slot: NonNull<u8>,
    paged: NonNull<u8>,
    guarded: usize,
    start: usize,
    end: usize,
) -> [(*mut u8, usize); 2] {
    let mid = guarded.clamp(start, end);
    [
        (slot.as_ptr().wrapping_add(start), mid - start),
        (paged.as_ptr().wrapping_add(mid), end - mid),
    ]
}

/// The bitmap right after the header (checked builds).
///
/// # Safety
///
/// `page` is a slab page: larger than the header, so the result stays inside.
unsafe fn bitmap_of(page: NonNull<u8>) -> NonNull<usize> {
    // SAFETY: the header is smaller than a page, per the caller.
    unsafe { page.byte_add(size_of::<SlabHeader>()) }.cast()
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use crate::page_allocator::{GlobalPages, PageAllocator};

    const PAGE: usize = 4096;
    const OWNER: u32 = 0x5EED_0001;

    /// A slab on its own page, alive for one test, with safe accessors.
    struct Live {
        slab: Slab,
        geo: SlabGeometry,
        pages: GlobalPages,
    }

    impl Live {
        fn new(geo: SlabGeometry) -> Self {
            let pages = GlobalPages::new();
            let page = pages.allocate_page().unwrap();
            // SAFETY: a fresh 4 KiB page, aligned to its size, used by no one else.
            let slab = unsafe { Slab::init(page, &geo, OWNER) };
            Self { slab, geo, pages }
        }

        fn pop(&self) -> Option<NonNull<u8>> {
            // SAFETY: the slab is live until `drop`, and `&self` is the only user.
            unsafe { self.slab.pop_slot(&self.geo) }
        }

        /// Callers pass only slots they popped and did not push back.
        fn push(&self, slot: NonNull<u8>) {
            // SAFETY: as for `pop`; the slot is handed out (callers' promise).
            unsafe { self.slab.push_slot(slot, &self.geo, usize::MAX) }
        }

        fn in_use(&self) -> usize {
            // SAFETY: as for `pop`.
            unsafe { self.slab.in_use() }
        }

        fn check(&self, slot: NonNull<u8>, geo: &SlabGeometry) -> Result<(), Misuse> {
            // SAFETY: the page is readable, and `slot` lies in it in every test.
            unsafe { Slab::containing(slot, PAGE).check_free(slot, geo, OWNER) }
        }
    }

    impl Drop for Live {
        fn drop(&mut self) {
            // SAFETY: the page came from `pages` and the slab is done with.
            unsafe { self.pages.deallocate_page(self.slab.page()) };
        }
    }

    #[test]
    fn header_is_small() {
        assert!(size_of::<SlabHeader>() <= 48);
        let geo = SlabGeometry::new(PAGE, 64, 64).unwrap();
        assert_eq!(geo.first_slot, 64);
        assert_eq!(
            geo.capacity, 63,
            "at 64-byte objects 63 of 64 slots hold objects"
        );
    }

    #[test]
    fn geometry_rounds_slots_to_alignment_and_pointer_size() {
        let tiny = SlabGeometry::new(PAGE, 1, 1).unwrap();
        assert_eq!(tiny.slot_size, size_of::<usize>());
        let odd = SlabGeometry::new(PAGE, 24, 8).unwrap();
        assert_eq!(odd.slot_size, 24);
        assert_eq!(odd.first_slot % 8, 0);
        let aligned = SlabGeometry::new(PAGE, 8, 256).unwrap();
        assert_eq!(aligned.slot_size, 256);
        assert_eq!(aligned.first_slot % 256, 0);
        assert_eq!(aligned.capacity, 15);
        for size in [8, 16, 24, 100, 1000, 2000, 4000] {
            let g = SlabGeometry::new(PAGE, size, 8).unwrap();
            assert!(g.first_slot >= size_of::<SlabHeader>());
            assert!(
                g.end() <= PAGE,
                "slots stay inside the page for size {size}"
            );
            assert!(g.capacity >= 1);
        }
    }

    #[test]
    fn geometry_rejects_what_cannot_fit() {
        assert_eq!(
            SlabGeometry::new(PAGE, PAGE, 8),
            Err(GeometryError::TooLarge)
        );
        assert_eq!(
            SlabGeometry::new(PAGE, PAGE - 8, 8),
            Err(GeometryError::TooLarge)
        );
        assert_eq!(
            SlabGeometry::new(PAGE, 8, 2 * PAGE),
            Err(GeometryError::AlignTooLarge)
        );
        // One object aligned to half the page: the header takes the first half.
        assert_eq!(SlabGeometry::new(PAGE, 8, PAGE / 2).unwrap().capacity, 1);
    }

    #[test]
    fn slots_come_in_address_order_then_lifo() {
        let live = Live::new(SlabGeometry::new(PAGE, 32, 8).unwrap());
        let a = live.pop().unwrap();
        let b = live.pop().unwrap();
        let base = live.slab.page().as_ptr().addr();
        assert_eq!(a.as_ptr().addr() - base, live.geo.first_slot);
        assert_eq!(b.as_ptr().addr() - a.as_ptr().addr(), 32);
        assert_eq!(live.in_use(), 2);
        live.push(a);
        assert_eq!(live.in_use(), 1);
        assert_eq!(
            live.pop(),
            Some(a),
            "the slot freed last is handed out first"
        );
    }

    #[test]
    fn a_slab_hands_out_each_slot_once_until_full() {
        let live = Live::new(SlabGeometry::new(PAGE, 64, 64).unwrap());
        let mut seen = std::collections::BTreeSet::new();
        while let Some(slot) = live.pop() {
            assert_eq!(slot.as_ptr().addr() % 64, 0);
            assert!(seen.insert(slot.as_ptr().addr()), "slot handed out twice");
            assert_eq!(Slab::containing(slot, PAGE), live.slab);
        }
        assert_eq!(seen.len(), live.geo.capacity);
        assert_eq!(live.in_use(), live.geo.capacity);
    }

    #[test]
    fn check_free_names_each_misuse() {
        if !CHECKED {
            return;
        }
        let live = Live::new(SlabGeometry::new(PAGE, 32, 8).unwrap());
        let geo = live.geo;
        let a = live.pop().unwrap();
        assert_eq!(live.check(a, &geo), Ok(()));
        let inside = a.map_addr(|x| x.checked_add(8).unwrap());
        assert_eq!(
            live.check(inside, &geo),
            Err(Misuse::ForeignPointer),
            "not a slot start"
        );
        let later = a.map_addr(|x| x.checked_add(64).unwrap());
        assert_eq!(
            live.check(later, &geo),
            Err(Misuse::ForeignPointer),
            "never handed out"
        );
        let other = SlabGeometry::new(PAGE, 64, 8).unwrap();
        assert_eq!(
            live.check(a, &other),
            Err(Misuse::WrongSizeClass {
                actual: 32,
                claimed: 64
            })
        );
        live.push(a);
        assert_eq!(live.check(a, &geo), Err(Misuse::DoubleFree));
    }
}
