//! The one magazine front: a magazine in front of one cache of a
//! [`CacheSet`], refilled and drained a batch at a time. [`LocalCache`]
//! has one, [`LocalAllocator`] one per size class.
//!
//! [`LocalCache`]: crate::LocalCache
//! [`LocalAllocator`]: crate::LocalAllocator

use core::ptr::NonNull;

use generic_array::{ArrayLength, GenericArray, sequence::GenericSequence};

mod stack;

use crate::cache::{CacheSet, Shapes, SlotReach};
use crate::checked::{CHECKED, Misuse};
use crate::error::AllocError;
use crate::page_allocator::PageAllocator;
use stack::Magazine;
use stack::poison_freed;
pub(crate) use stack::{check_cached, poison_cached};

/// A magazine of up to `N` free slots of one cache. Its methods take the
/// cache (`set` and `class`) and its slot size each time, rather than
/// holding them, so that the typed front's slot size stays a constant.
///
/// # The order of things, for unwinding
///
/// A page source is user code and may panic; so may a destructor or a
/// panic hook that runs meanwhile and uses this very front. Therefore:
///
/// - nothing borrows the magazine across a call into the cache (the
///   magazine is all `Cell`s; see `magazine`);
/// - a refill takes its batch into a buffer on the stack, and the cache
///   asks the page source for a page only while the batch is empty, so a
///   panic there costs no slot;
/// - a free puts its slot into the magazine *before* the magazine's
///   overflow goes back to the cache, and the cache does the bookkeeping of
///   the whole batch before any page goes back: a panic there loses no
///   slot either.
pub(crate) struct MagazineFront<N: ArrayLength> {
    magazine: Magazine<N>,
}

impl<N: ArrayLength> MagazineFront<N> {
    /// An empty front.
    pub(crate) const fn new() -> Self {
        let () = Magazine::<N>::NOT_EMPTY;
        Self {
            magazine: Magazine::new(),
        }
    }

    /// Slots resting in the magazine.
    #[inline]
    pub(crate) fn cached(&self) -> usize {
        self.magazine.len()
    }

    /// The most recent slot in the magazine, unchecked (the caller checks it
    /// with `check_cached`).
    #[cfg(feature = "std")]
    #[inline]
    pub(crate) fn pop(&self) -> Option<NonNull<u8>> {
        self.magazine.pop()
    }

    /// A slot of `size` bytes of cache `class` of `set` from the magazine, if
    /// it holds one; never calls the cache (a misuse found in the slot is
    /// reported, naming it with the cache's help).
    #[cfg(feature = "std")]
    #[inline]
    pub(crate) fn take_cached<P: PageAllocator, C: ArrayLength, S: Shapes>(
        &self,
        set: &CacheSet<P, C, S>,
        class: usize,
        size: usize,
    ) -> Option<NonNull<u8>> {
        let slot = self.magazine.pop()?;
        // SAFETY: the slot was in the magazine.
        Some(unsafe { hand_out(set, class, size, slot) })
    }

    /// Empties the magazine without reading its slots: for slots of a cache
    /// that is gone.
    #[cfg(feature = "std")]
    pub(crate) fn forget_all(&self) {
        self.magazine.clear();
    }

    /// Keeps `slots`, just taken from cache `class` of `set` (slot size
    /// `size`) by `alloc_batch`, the first of them to be used first; those
    /// that do not fit go back to the cache. (Full only if something used
    /// this front while the cache ran: a page source may not, but it costs
    /// nothing to cope.)
    ///
    /// # Safety
    ///
    /// Each slot was just taken from cache `class` of `set` by
    /// `CacheSet::alloc_batch` (in no user's hands), through the pointer its
    /// slab gave, and no one uses it.
    pub(crate) unsafe fn keep_batch<P: PageAllocator, C: ArrayLength, S: Shapes>(
        &self,
        set: &CacheSet<P, C, S>,
        class: usize,
        size: usize,
        slots: &[NonNull<u8>],
    ) {
        // The first ones find no room, if any do: they go back.
        let left = slots.len().saturating_sub(N::USIZE - self.magazine.len());
        let (back, kept) = slots.split_at(left);
        for &slot in kept {
            // SAFETY: the caller's guarantees: ours alone.
            unsafe { poison_cached(slot, size) };
        }
        // Pushed last, popped first.
        let no_room = self.magazine.push_all(kept);
        debug_assert_eq!(no_room, 0, "room was counted");
        for &slot in back {
            // SAFETY: the caller's guarantees: this front holds it, and
            // frees it as a user would (checked builds' books first).
            unsafe { give_straight_back(set, class, slot) };
        }
    }

    /// A slot of `size` bytes from the magazine, refilled from cache `class`
    /// of `set` when empty.
    #[inline]
    pub(crate) fn take<P: PageAllocator, C: ArrayLength, S: Shapes>(
        &self,
        set: &CacheSet<P, C, S>,
        class: usize,
        size: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        let Some(slot) = self.magazine.pop() else {
            return self.refill(set, class, size);
        };
        // SAFETY: the slot was in the magazine.
        Ok(unsafe { hand_out(set, class, size, slot) })
    }

    /// Takes a batch from the cache: the first slot for the caller, the
    /// rest into the magazine.
    #[cold]
    #[inline(never)]
    fn refill<P: PageAllocator, C: ArrayLength, S: Shapes>(
        &self,
        set: &CacheSet<P, C, S>,
        class: usize,
        size: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        let mut batch = GenericArray::<NonNull<u8>, N>::generate(|_| NonNull::dangling());
        let room = N::USIZE - self.magazine.len();
        let want = Magazine::<N>::BATCH.min(room).max(1);
        #[cfg(feature = "std")]
        let stashed = set.unstash(class, &mut batch[..want]);
        #[cfg(not(feature = "std"))]
        let stashed = 0;
        let taken = match stashed {
            0 => set.alloc_batch(class, &mut batch[..want], Misuse::report)?,
            stashed => stashed,
        };
        let (first, rest) = batch[..taken]
            .split_first()
            .unwrap_or_else(|| unreachable!());
        // SAFETY: just taken from cache `class` for a magazine, through the
        // pointers its slabs gave, by no one else.
        unsafe { self.keep_batch(set, class, size, rest) };
        // SAFETY: as above; the first goes to the caller.
        unsafe { set.note_handed_out(class, *first) };
        Ok(*first)
    }

    /// Keeps `slot` in the magazine; gives back half of a full magazine
    /// first. Checked builds catch, at once, a slot of another cache (or a
    /// pointer that is no slot), a slot never handed out, and a second free
    /// of a slot, wherever the first free went (this magazine, another
    /// one, the slab): the slot's bit in its slab's bitmap says whether a
    /// user holds it (see `slab::checks`).
    ///
    /// `reach` says what `slot` may access: with [`SlotReach::Object`] (a
    /// `Box` freed through `GlobalAlloc`, its borrow still guarding the
    /// object) the object's bytes are written through `slot` and the rest
    /// of the slot through the page's exposed provenance, which is also the
    /// pointer the magazine keeps.
    ///
    /// # Safety
    ///
    /// `slot` is a slot of `size` bytes that cache `class` of `set` handed
    /// out, through the pointer the slab gave (or one derived from it by
    /// pointer arithmetic; with `SlotReach::Object`, one whose borrow covers
    /// the object alone, in a cache that exposes its pages); it is not freed
    /// twice (no double free), and no one uses it after this call (no use
    /// after free).
    #[inline]
    pub(crate) unsafe fn give<P: PageAllocator, C: ArrayLength, S: Shapes>(
        &self,
        set: &CacheSet<P, C, S>,
        class: usize,
        size: usize,
        slot: NonNull<u8>,
        reach: SlotReach,
    ) {
        let (object, (slot, guarded)) = (slot, reach.resolve(slot));
        if CHECKED {
            // Only header fields fixed when the slab was made are read: no
            // lock needed. Checked before the poison is written through it.
            // SAFETY: the caller says `slot` is a slot of cache `class`; this
            // verifies it, as far as reading its page allows.
            if let Err(misuse) = unsafe { set.check_owner(class, slot) } {
                misuse.report(slot);
            }
            // The slot leaves its user's hands before it is written to: a
            // second free is reported before it changes anything.
            // SAFETY: it passed `check_owner` just above.
            if let Err(misuse) = unsafe { set.note_freed(class, slot) } {
                misuse.report(slot);
            }
        }
        // SAFETY: the slot is ours and no one uses it any more; `object`
        // is entitled to its first `guarded` bytes, `slot` to all of them.
        unsafe { poison_freed(object, slot, size, guarded) };
        if let Err(slot) = self.magazine.push(slot) {
            // SAFETY: the caller's guarantees, passed on.
            unsafe { self.drain_then_push(set, class, size, slot) };
        }
    }

    /// Gives half of the full magazine back, then keeps `slot`.
    ///
    /// # Safety
    ///
    /// As for [`give`](Self::give), `slot` already cached.
    #[cold]
    #[inline(never)]
    unsafe fn drain_then_push<P: PageAllocator, C: ArrayLength, S: Shapes>(
        &self,
        set: &CacheSet<P, C, S>,
        class: usize,
        size: usize,
        slot: NonNull<u8>,
    ) {
        self.drain(set, class, size, Magazine::<N>::BATCH, Some(slot), true);
    }

    /// Gives every slot in the magazine back to the cache. With
    /// `release`, slabs emptied beyond the reserve give their pages back at
    /// once; without, they stay listed as empty until the caller trims the
    /// cache (`CacheSet::trim`): so a front of several caches can put every
    /// slot back before the first page source call, which may panic.
    pub(crate) fn flush<P: PageAllocator, C: ArrayLength, S: Shapes>(
        &self,
        set: &CacheSet<P, C, S>,
        class: usize,
        size: usize,
        release: bool,
    ) {
        self.drain(set, class, size, N::USIZE, None, release);
    }

    /// Gives up to `count` of the most recent slots back to the cache,
    /// after pushing `keep` in their place; `keep` is in the magazine before
    /// the cache (and its page source) is called.
    ///
    /// Each slot is checked as it leaves the magazine. A slot written to
    /// while it rested there (checked builds) is kept by no one — its
    /// contents are not to be trusted — and the first such slot is reported
    /// once the others are back in the cache: reported once, and the
    /// damaged slots the only ones lost.
    fn drain<P: PageAllocator, C: ArrayLength, S: Shapes>(
        &self,
        set: &CacheSet<P, C, S>,
        class: usize,
        size: usize,
        count: usize,
        keep: Option<NonNull<u8>>,
        release: bool,
    ) {
        let mut batch = GenericArray::<NonNull<u8>, N>::generate(|_| NonNull::dangling());
        let taken = self.magazine.pop_into(&mut batch[..count.min(N::USIZE)]);
        let (len, damaged) = if CHECKED {
            // SAFETY: each was cached by this front with `size`, ours alone.
            unsafe { keep_undamaged(&mut batch[..taken], size) }
        } else {
            for &slot in &batch[..taken] {
                // SAFETY: as above; in unchecked builds the check only lifts
                // the sanitizer's ban, and finds nothing.
                let unchecked = unsafe { check_cached(slot, size) };
                debug_assert!(unchecked.is_ok(), "only checked builds check");
            }
            (taken, None)
        };
        if let Some(keep) = keep {
            let pushed = self.magazine.push(keep);
            debug_assert!(pushed.is_ok(), "a drained magazine has room");
        }
        // An overflow (a slot to keep) goes to the depot whole when it can,
        // for the next magazine to run dry; a flush goes to the slabs.
        #[cfg(feature = "std")]
        // SAFETY: every slot in the magazine was handed out by cache `class`
        // of `set` (the contract of `give`), through a pointer that reaches
        // its page, and no one uses it; each is there once.
        let stashed = keep.is_some() && unsafe { set.stash(class, &batch[..len]) };
        #[cfg(not(feature = "std"))]
        let stashed = false;
        if !stashed {
            // SAFETY: as just said.
            unsafe { set.free_batch(class, &batch[..len], Misuse::report, release) };
        }
        if let Some((misuse, slot)) = damaged {
            // SAFETY: the slot was in the magazine: readable memory.
            unsafe { named(set, class, misuse, slot) }.report(slot);
        }
    }
}

/// Checks each slot of `slots` as it leaves a magazine, and moves those
/// left alone while they rested there to the front of `slots`; returns how
/// many, and the first slot found written to, with what was found.
///
/// # Safety
///
/// Each slot was cached by a front with `size` (see [`check_cached`]), and
/// the caller alone holds it.
unsafe fn keep_undamaged(
    slots: &mut [NonNull<u8>],
    size: usize,
) -> (usize, Option<(Misuse, NonNull<u8>)>) {
    let mut len = 0;
    let mut damaged = None;
    for i in 0..slots.len() {
        let slot = slots[i];
        // SAFETY: the caller's guarantees.
        match unsafe { check_cached(slot, size) } {
            Ok(()) => {
                slots[len] = slot;
                len += 1;
            }
            Err(misuse) => {
                damaged.get_or_insert((misuse, slot));
            }
        }
    }
    (len, damaged)
}

/// Frees `slot`, taken from cache `class` of `set` by `alloc_batch` for a
/// magazine that cannot keep it, straight back to its slab: as a user's
/// free, so checked builds note it in the hands of one (this front's) first.
///
/// # Safety
///
/// `slot` was just taken from that cache by `alloc_batch`, through the
/// pointer its slab gave, and no one uses it.
pub(crate) unsafe fn give_straight_back<P: PageAllocator, C: ArrayLength, S: Shapes>(
    set: &CacheSet<P, C, S>,
    class: usize,
    slot: NonNull<u8>,
) {
    // SAFETY: the caller's guarantees: in no user's hands until now.
    unsafe { set.note_handed_out(class, slot) };
    // SAFETY: the caller's guarantees; a user's slot now.
    unsafe { set.free(class, slot, SlotReach::Page, Misuse::report) };
}

/// Takes `slot`, just popped from a magazine of cache `class` of `set`, out
/// for a user: checked builds verify its poison (reporting a write after
/// free, named with the cache's help) and note that a user holds it.
///
/// # Safety
///
/// `slot` was in a magazine of that cache, cached with `size`, and is ours
/// alone.
#[inline]
unsafe fn hand_out<P: PageAllocator, C: ArrayLength, S: Shapes>(
    set: &CacheSet<P, C, S>,
    class: usize,
    size: usize,
    slot: NonNull<u8>,
) -> NonNull<u8> {
    // SAFETY: the caller's guarantees.
    if let Err(misuse) = unsafe { check_cached(slot, size) } {
        // SAFETY: the slot was in the magazine: readable memory.
        unsafe { named(set, class, misuse, slot) }.report(slot)
    }
    // SAFETY: a resting slot of that cache, in no user's hands, handed to
    // one now.
    unsafe { set.note_handed_out(class, slot) };
    slot
}

/// The misuse to report for `slot`, whose check in a magazine found
/// `symptom`: what its slab can tell (another cache's slot, one never
/// handed out), or else the symptom. A changed poison is a write after
/// free: since a second free is caught where it is committed, a slot
/// resting in a magazine is never also on its slab's free list (whose link
/// would have been the change), nor in a user's hands.
///
/// # Safety
///
/// `slot` points into readable memory.
unsafe fn named<P: PageAllocator, C: ArrayLength, S: Shapes>(
    set: &CacheSet<P, C, S>,
    class: usize,
    symptom: Misuse,
    slot: NonNull<u8>,
) -> Misuse {
    // SAFETY: the caller's guarantee.
    unsafe { set.diagnose(class, slot) }.unwrap_or(symptom)
}
