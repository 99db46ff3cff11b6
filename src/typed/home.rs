//! How a one-word [`SlabBox`](super::SlabBox) finds its cache: the cache's
//! address, recorded in the header of the slab that holds the value.
//!
//! A handle is only the pointer to its value, as a `Box` is. Its drop finds
//! the slab with one mask (pages are aligned to their size) and reads, in
//! the slab's header, the address of the [`SlabCache`] that owns it, as the
//! kernel's SLUB reaches its `kmem_cache` from the page.
//!
//! # Invariant
//!
//! While a handle lives, the header of its slab holds the address of its
//! cache. A cache can move (it is an ordinary value), but only while nothing
//! borrows it, so while none of its handles exists. The cache keeps the
//! address it last recorded in all its slabs; every call that makes a handle
//! first [`settle`](SlabCache::settle)s: it compares that address with its
//! own, a load from the cache itself. On a difference (the first handle, or
//! the first since a move), it records its address in the slot's slab, then
//! in every slab under the lock, and new slabs take it from then on; if the
//! lock is held (by another thread, or by this one in a call-out: a page
//! source's panic hook may make a handle from a local front's magazine) it
//! records 0, which no cache's address matches, and leaves the walk to the
//! next handle (keeping the old address instead let a cache moved back to
//! it skip the walk, with this slab naming where it had been). Records are atomic words, and
//! threads that race to write one write the same address.
//!
//! # Design: the check reads the cache, not the slab
//!
//! Three ways were tried. Writing the address at every handle made two
//! threads on one cache run at 0.7x one thread's throughput (from 1.8x):
//! the header's line bounced between the cores. Reading the slab's record
//! at every handle, and writing it on a difference, put a load that waits
//! for the slot's address on the path of every allocation: the 64-byte pair
//! rose by about 1.5 ns (`cargo bench -p minimal_slab_perf --bench pair`).
//! Comparing the cache's own record costs a load that does not wait on the
//! slot. A handle's drop does read its slab's record, but only to confirm
//! the magazine it guessed (see `ThreadCache::give`).
//!
//! Builds without `std` record the address in the slab at every handle
//! instead: that links no walk and no lock (40 bytes of `.text` in
//! `scripts/size`'s typed-cache program, where the walk took 170), and they
//! have no lock-free path for the load to slow. An allocation stores it
//! while it holds the cache's lock, with the slab at hand
//! (`SlabCache::allocate_slot`: the header's line is written by the
//! allocation anyway); `settle` checks it for the handles made otherwise
//! (`from_raw`, a local front's).
//!
//! # Provenance: exposed, and exposed again by every handle made
//!
//! The header holds an address, not a pointer, and a handle rebuilds the
//! pointer with [`with_exposed_provenance`](core::ptr::with_exposed_provenance).
//! A pointer stored once would carry the borrow of the reference it came
//! from, and Rust's aliasing rules end that borrow at the next `&mut` to the
//! cache or write over it, even when the cache does not move (`let c = &mut
//! cache;` between two allocations, or a cache swapped out and back): the
//! stored pointer would then be invalid though its address is right. So
//! `settle` exposes the provenance of the `&self` it is called with, on every
//! call (a cast: no instruction at run time). Every live handle was made by
//! such a call, and the borrow it exposed lasts as long as the handle does:
//! the handle borrows the cache, so no `&mut` and no move can come between.
//! The price: Miri runs the typed front with permissive provenance, as it
//! runs the `GlobalAlloc` paths; the slab arithmetic keeps strict
//! provenance (`map_addr`).
//!
//! A zero-sized `T` takes no slot, so its handles have no slab to ask: they
//! hold the cache's pointer itself (from the `&'a` cache they were made
//! with) and hand out a dangling pointer for the value.

use core::ptr::{self, NonNull};

use super::SlabCache;
use crate::cache::{home_of, record_home};
use crate::checked::CHECKED;
use crate::page_allocator::{PageAllocator, page_size_of};
#[cfg(feature = "std")]
use crate::sync::Ordering;

impl<T, P: PageAllocator> SlabCache<T, P> {
    /// Records this cache's address in the slab of `slot` (see the module
    /// doc); called before a handle of `slot` is made.
    ///
    /// # Safety
    ///
    /// `slot` is a handed-out slot of this cache (`T` is not zero-sized).
    #[inline]
    pub(super) unsafe fn settle(&self, slot: NonNull<T>) {
        let here = ptr::from_ref(self).expose_provenance();
        // Without `std`, the slab's own record is checked at every handle:
        // no walk and no lock to link, for firmware's code size (see the
        // module doc).
        #[cfg(not(feature = "std"))]
        // SAFETY: the caller's guarantee: the slot's slab is live.
        unsafe {
            record_home(slot.cast(), page_size_of::<P>(), here)
        };
        // Acquire: the records written by the thread that stored `here`
        // are visible to this one, and to whoever gets its handles.
        #[cfg(feature = "std")]
        if self.hot.home.load(Ordering::Acquire) != here {
            // SAFETY: the caller's guarantee.
            unsafe { self.rehome(here, slot) };
        }
    }

    /// `settle` on a difference.
    ///
    /// # Safety
    ///
    /// As for [`settle`](Self::settle).
    #[cfg(feature = "std")]
    #[cold]
    #[inline(never)]
    unsafe fn rehome(&self, here: usize, slot: NonNull<T>) {
        // SAFETY: the caller's guarantee: the slot's slab is live.
        unsafe { record_home(slot.cast(), page_size_of::<P>(), here) };
        // A partial walk must not leave the old address to match again: a
        // cache moved back there would find its record equal and skip the
        // walk, with this slab naming the place it left. 0 matches no cache,
        // so the next handle walks again.
        let recorded = if self.set.try_rehome(here) { here } else { 0 };
        self.hot.home.store(recorded, Ordering::Release);
    }

    /// Checked builds: panics, naming the misuse, unless `slot` is a slot of
    /// this cache — before a handle whose drop would trust its slab's header
    /// is made of it. Takes no lock. Other builds check nothing.
    ///
    /// # Safety
    ///
    /// `slot` points into readable memory (the checks read the header of
    /// the page it would be in).
    #[track_caller]
    pub(super) unsafe fn check_owner(&self, slot: NonNull<T>) {
        if !CHECKED {
            return;
        }
        // SAFETY: the caller's guarantee.
        if let Err(misuse) = unsafe { self.set.check_owner(0, slot.cast()) } {
            misuse.report(slot.cast());
        }
    }

    /// The cache that owns `slot`, as its slab records it.
    ///
    /// # Safety
    ///
    /// `slot` is a slot of a `SlabCache<T, P>` (not zero-sized) that is
    /// handed out, through a handle made by [`settle`](Self::settle) and
    /// borrowing that cache for `'a`.
    #[inline]
    pub(super) unsafe fn owning<'a>(slot: NonNull<T>) -> &'a Self {
        // SAFETY: the slot is handed out, so its slab is live.
        let home = unsafe { home_of(slot.cast(), page_size_of::<P>()) };
        // SAFETY: `settle` recorded the cache's address when the handle was
        // made, exposed from a borrow that lasts as long as the handle's (see
        // the module doc); the handle keeps the cache borrowed for `'a`.
        unsafe { &*ptr::with_exposed_provenance::<Self>(home) }
    }
}
