//! The per-thread caches behind the default API (feature `std`): what
//! makes `cache.alloc(value)` and dropping a [`SlabBox`] take no lock.
//!
//! # What it owns
//!
//! Each thread has one [`Table`] in a `thread_local!`: [`ENTRIES`] magazine
//! fronts (the same [`MagazineFront`] the explicit per-thread fronts use),
//! each holding resting slots of one cache. A cache has a [`ThreadCache`],
//! which is only a ticket of the [`registry`]: the key of its entries in every
//! thread's table. A slot a thread caches is out of the cache's slabs (its
//! slabs count it as in use) and in no user's hands; `stats()` counts it in
//! `cached_slots`.
//!
//! # The paths
//!
//! - *Common*: `take` pops a slot from this thread's entry for the cache,
//!   `give` pushes one; one thread-local access, one compare of the entry's
//!   key, no lock and no atomic read-modify-write (the key and the
//!   magazine's length are atomics only so that another thread's `stats()`
//!   can read them; this thread writes them with plain stores). Checked
//!   builds add one, on the slot's bit in its slab's bitmap of slots in a
//!   user's hands: that is what catches a slot freed on two threads, or
//!   freed again after its first free left this thread's magazine (see
//!   `slab::checks`).
//! - *Refill and overflow*: a full magazine gives half its depth back, an
//!   empty one takes half its depth: one lock per 32 objects. The half
//!   given back goes whole to the cache's depot when it has room (its
//!   pointers copied under the depot's own lock), and a refill takes a
//!   whole batch from there before it asks the slabs; so a
//!   thread that frees what another allocates hands it over a batch at a
//!   time, without either waiting on the slabs' lock (see `cache::depot`).
//!   Slots that exited threads gave up (orphans) go back to the slabs at
//!   the refill.
//! - *An entry another cache holds*: its slots are given up to their cache
//!   through the registry, and the entry changes hands.
//! - *Thread exit*: the table gives every slot up through the registry.
//! - *No place left in the registry, or the thread's storage already torn
//!   down* (a handle dropped by another thread-local's destructor): the
//!   locked path, correct and slower.
//!
//! # Dropping a cache
//!
//! A cache is dropped only when nothing borrows it, so no thread is inside
//! one of its calls. Its drop retires its ticket first — from then on every
//! thread's table forgets that cache's slots — then puts back the dropping
//! thread's own entry and the orphans; the typed cache then gives back
//! every page, the slabs of slots other threads still cache included (see
//! `SlabCache`'s drop): those threads never touch them. Giving slots up
//! never reads or writes them at all (the registry lists them by address),
//! so a cache leaked with `mem::forget`, whose ticket stays live while its
//! page source may be gone, is no danger either; only the live cache reads
//! its orphans, when it takes them back.
//!
//! # Design: a small table keyed by ticket, against one thread-local per cache
//!
//! A `thread_local!` cannot be declared per cache at run time, so the
//! alternatives are a per-cache table of per-thread slots (the
//! `thread_local` crate's layout: each cache owns a table indexed by thread
//! id, grown on demand) or a per-thread table keyed by cache (this one).
//! The first costs a thread-id lookup and a bucket load per call and a heap
//! allocation per thread per cache — and a heap is what the global
//! allocator cannot call; the second costs one entry compare, and needs
//! neither a heap nor a cap on threads. Its price is collisions between
//! caches used at once by one thread: tickets are handed out in turn, so
//! [`ENTRIES`] caches made one after another never collide.
//!
//! # Under loom
//!
//! The layer builds from loom's locks, atomics, lazy statics and
//! thread-locals (see `sync`), with smaller sizes (two registry places,
//! magazines of two), so that `tests/loom.rs` explores it; see `current`
//! for how a loom thread's exit is run and waited for.
//!
//! [`SlabBox`]: crate::SlabBox
//! [`MagazineFront`]: crate::magazine::MagazineFront
//! [`registry`]: registry
//! [`Table`]: table::Table
//! [`ENTRIES`]: table::ENTRIES

mod current;
mod orphans;
mod own_lines;
mod registry;
mod table;

use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use generic_array::ArrayLength;

#[cfg(loom)]
pub(crate) use self::current::wait_for_exits;
use self::orphans::put_back;
pub(crate) use self::own_lines::OwnLines;
use self::registry::Ticket;
use self::table::{Entry, Table, entry_index, key};
use crate::cache::{CacheSet, Shapes, SlotReach};
use crate::checked::Misuse;
use crate::error::AllocError;
use crate::magazine::give_straight_back;
use crate::page_allocator::PageAllocator;
use crate::sync::const_fn_unless_loom;
use crate::sync::threaded::AtomicU64;

/// Slots a refill takes from the cache under one lock: half a magazine.
const REFILL: usize = <table::Depth as typenum::Unsigned>::USIZE / 2;

// An overflow (half a magazine) that the depot could not hold whole would
// always go to the slabs.
const _: () = assert!(
    REFILL <= crate::cache::DEPOT_BATCH_MAX,
    "a depot batch holds an overflow"
);

/// No ticket yet: the first slow path registers.
const UNREGISTERED: u64 = 0;
/// The registry was full when this cache first asked: the locked path for
/// good. (Raw values below `registry::CAPACITY` are no tickets.)
const LOCKED_ONLY: u64 = 1;

/// A cache's claim on every thread's table: its registry ticket, taken on
/// first use.
pub(crate) struct ThreadCache {
    ticket: AtomicU64,
}

impl ThreadCache {
    const_fn_unless_loom! {
        /// A cache no thread has cached a slot of yet.
        pub(crate) const fn new() -> Self {
            Self {
                ticket: AtomicU64::new(UNREGISTERED),
            }
        }
    }

    #[inline]
    fn ticket(&self) -> Option<Ticket> {
        Ticket::from_raw(self.ticket.load(Ordering::Relaxed))
    }

    /// The ticket, registering first if there is none yet; `None` if the
    /// cache takes the locked path.
    #[cold]
    fn ticket_or_register(&self) -> Option<Ticket> {
        match self.ticket.load(Ordering::Acquire) {
            UNREGISTERED => {}
            raw => return Ticket::from_raw(raw),
        }
        let fresh = registry::register().map_or(LOCKED_ONLY, Ticket::raw);
        // Acquire/Release: a ticket read here was registered (its place made
        // live under the place's lock) before it was published.
        match self
            .ticket
            .compare_exchange(UNREGISTERED, fresh, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ticket::from_raw(fresh),
            Err(theirs) => {
                // Another thread registered first: keep its ticket.
                if let Some(mine) = Ticket::from_raw(fresh) {
                    let none = registry::retire(mine);
                    debug_assert_eq!(none.len(), 0);
                }
                Ticket::from_raw(theirs)
            }
        }
    }

    /// A slot of cache `class` of `set` (slot size `size`), from this
    /// thread's magazine when it has one.
    #[inline]
    pub(crate) fn take<P: PageAllocator, C: ArrayLength, S: Shapes>(
        &self,
        set: &CacheSet<P, C, S>,
        class: usize,
        size: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        if let Some(ticket) = self.ticket()
            && let Some(slot) = magazine_slot(ticket, set, class, size).flatten()
        {
            return Ok(slot);
        }
        self.take_slow(set, class, size)
    }

    /// The common case of [`take`](Self::take) alone: a slot of this
    /// thread's magazine for cache `class`, or `None` (no ticket yet, an
    /// entry another cache holds, an empty magazine). For the
    /// `GlobalAlloc` methods, which keep the rest out of line.
    #[cfg(all(not(loom), minimal_slab_global_tls))]
    #[inline]
    pub(crate) fn take_cached<P: PageAllocator, C: ArrayLength, S: Shapes>(
        &self,
        set: &CacheSet<P, C, S>,
        class: usize,
        size: usize,
    ) -> Option<NonNull<u8>> {
        magazine_slot(self.ticket()?, set, class, size).flatten()
    }

    /// `take` with an empty magazine, an entry another cache holds, or no
    /// ticket yet.
    #[cold]
    #[inline(never)]
    fn take_slow<P: PageAllocator, C: ArrayLength, S: Shapes>(
        &self,
        set: &CacheSet<P, C, S>,
        class: usize,
        size: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        let Some(ticket) = self.ticket_or_register() else {
            return set.alloc(class, Misuse::report);
        };
        self.adopt_orphans(set, ticket);
        let (key, index) = (key(ticket, class), entry_index(ticket, class));
        // A slot left in our entry (one a page source's call freed into it
        // since the fast path looked) is taken first.
        let cached = current::with(|table| {
            let entry = table.entry(index);
            if entry.is(key) {
                entry.front.take_cached(set, class, size)
            } else {
                None
            }
        });
        if let Some(Some(slot)) = cached {
            return Ok(slot);
        }
        // A thread that will not cache (exiting, its storage gone, or a
        // nested call while its exit guard is armed) would only give a
        // batch back.
        if !current::can_cache() {
            return set.alloc(class, Misuse::report);
        }
        // The batch is taken before the entry is looked at again: the page
        // source may run meanwhile, and use other caches — even one whose
        // entry is ours, which then changes hands.
        let mut batch = [NonNull::dangling(); REFILL];
        let taken = match set.unstash(class, &mut batch) {
            0 => set.alloc_batch(class, &mut batch, Misuse::report)?,
            stashed => stashed,
        };
        let (&first, rest) = batch[..taken]
            .split_first()
            .unwrap_or_else(|| unreachable!());
        let kept = with_claimed_entry(key, index, |entry| {
            // SAFETY: just taken from the cache for a magazine, through the
            // pointers its slabs gave, used by no one.
            unsafe { entry.front.keep_batch(set, class, size, rest) };
        });
        if !kept {
            for &slot in rest {
                // SAFETY: as above; going back instead.
                unsafe { give_straight_back(set, class, slot) };
            }
        }
        // SAFETY: as above; the first goes to the caller.
        unsafe { set.note_handed_out(class, first) };
        Ok(first)
    }

    /// Returns `slot` to cache `class` of `set`, into this thread's magazine
    /// when it has one. `reach` says what `slot` may access (see
    /// `MagazineFront::give`).
    ///
    /// The entry tried first is the one this thread's last fast allocation
    /// used, then the key's own: where the slot goes then does not wait on
    /// the loads that found its cache (a one-word handle reads it in its
    /// slab's header); they only confirm the guess, in a branch the
    /// processor predicts. (Looking the entry up from the ticket put those
    /// loads on the path of every free of a one-word handle: 64-byte pair
    /// 6.4-7.8 ns against 4.4-5.6 with the two-word handle, on a busy
    /// machine; guessing, 5.4 against 4.3-4.6 on a quiet one, `cargo bench
    /// -p minimal_slab_perf --bench pair`.)
    ///
    /// # Safety
    ///
    /// `slot` is a slot of `size` bytes that cache `class` of `set` handed
    /// out, through the pointer the slab gave (with `SlotReach::Object`, one
    /// whose borrow covers the object alone, in a set that exposes its
    /// pages); it is not freed twice (no double free), and no one uses it
    /// after this call (no use after free).
    #[inline]
    pub(crate) unsafe fn give<P: PageAllocator, C: ArrayLength, S: Shapes>(
        &self,
        set: &CacheSet<P, C, S>,
        class: usize,
        size: usize,
        slot: NonNull<u8>,
        reach: SlotReach,
    ) {
        if let Some(ticket) = self.ticket() {
            let key = key(ticket, class);
            let done = current::with(|table| {
                let mut entry = table.last();
                if !entry.is(key) {
                    entry = table.entry(entry_index(ticket, class));
                    if !entry.is(key) {
                        return false;
                    }
                }
                // SAFETY: the caller's guarantees; the entry is this cache
                // class's.
                unsafe { entry.front.give(set, class, size, slot, reach) };
                true
            });
            if let Some(true) = done {
                return;
            }
        }
        // SAFETY: the caller's guarantees, passed on.
        unsafe { self.give_slow(set, class, size, slot, reach) }
    }

    /// `give` with an entry another cache holds, no ticket yet, or the
    /// thread's storage gone.
    ///
    /// # Safety
    ///
    /// As for [`give`](Self::give).
    #[cold]
    #[inline(never)]
    unsafe fn give_slow<P: PageAllocator, C: ArrayLength, S: Shapes>(
        &self,
        set: &CacheSet<P, C, S>,
        class: usize,
        size: usize,
        slot: NonNull<u8>,
        reach: SlotReach,
    ) {
        let done = self.ticket_or_register().is_some_and(|ticket| {
            let (key, index) = (key(ticket, class), entry_index(ticket, class));
            with_claimed_entry(key, index, |entry| {
                // SAFETY: the caller's guarantees; the entry is this cache
                // class's.
                unsafe { entry.front.give(set, class, size, slot, reach) };
            })
        });
        if !done {
            // SAFETY: the caller's guarantees, passed on.
            unsafe { set.free(class, slot, reach, Misuse::report) };
        }
    }

    /// Puts back into cache `class` of `set` the slots this thread caches
    /// for it, the orphans, and the slots in the cache's depot; with
    /// `release`, slabs emptied beyond the reserve give their pages back at
    /// once.
    pub(crate) fn flush_current<P: PageAllocator, C: ArrayLength, S: Shapes>(
        &self,
        set: &CacheSet<P, C, S>,
        class: usize,
        size: usize,
        release: bool,
    ) {
        // Without a ticket (a cache used through explicit fronts only, or
        // one the registry had no place for) no thread caches a slot, but
        // the explicit fronts' overflow may rest in the depot.
        if let Some(ticket) = self.ticket() {
            flush_entry(set, ticket, class, size, release);
            self.adopt_orphans(set, ticket);
        }
        set.empty_depot(class, release);
    }

    /// Puts the slots that threads gave up since (orphans) back into their
    /// caches of `set`.
    pub(crate) fn take_back_orphans<P: PageAllocator, C: ArrayLength, S: Shapes>(
        &self,
        set: &CacheSet<P, C, S>,
    ) {
        if let Some(ticket) = self.ticket() {
            self.adopt_orphans(set, ticket);
        }
    }

    /// Slots of cache `class` resting in any thread's table or given up
    /// to it as orphans.
    pub(crate) fn cached(&self, class: usize) -> usize {
        let Some(ticket) = self.ticket() else {
            return 0;
        };
        let (key, index) = (key(ticket, class), entry_index(ticket, class));
        Table::cached_everywhere(key, index, || registry::orphans(ticket, class))
    }

    /// Before the set goes: retires the ticket, so that no thread touches
    /// its slots again (see the module doc), then puts back this thread's
    /// slots of every cache of the set, and the orphans.
    pub(crate) fn retire<P: PageAllocator, C: ArrayLength, S: Shapes>(
        &mut self,
        set: &CacheSet<P, C, S>,
    ) {
        let Some(ticket) = self.ticket() else {
            return;
        };
        // Retired first: should the page source panic below, no thread may
        // still give slots up to a cache on its way out.
        let orphans = registry::retire(ticket);
        self.ticket.store(UNREGISTERED, Ordering::Relaxed);
        for class in 0..C::USIZE {
            let size = set.geometry(class).slot_size;
            flush_entry(set, ticket, class, size, false);
        }
        put_back(set, orphans);
    }

    /// Puts the orphans given up to `ticket` back into their caches.
    fn adopt_orphans<P: PageAllocator, C: ArrayLength, S: Shapes>(
        &self,
        set: &CacheSet<P, C, S>,
        ticket: Ticket,
    ) {
        put_back(set, registry::adopt(ticket));
    }
}

/// A slot of the magazine of this thread's entry for cache `class` of
/// the set whose ticket is `ticket`: `None` without a table (the
/// thread is going away), `Some(None)` if the entry is another cache's
/// or the magazine is empty. An `Option` of a pointer out of the
/// closure, not a `Result`: small enough to stay in a register (a
/// `Result` went through the stack, and its reload, wider than the
/// store, stalled on store forwarding: 9 ns a pair instead of 2).
#[inline(always)]
fn magazine_slot<P: PageAllocator, C: ArrayLength, S: Shapes>(
    ticket: Ticket,
    set: &CacheSet<P, C, S>,
    class: usize,
    size: usize,
) -> Option<Option<NonNull<u8>>> {
    let (key, index) = (key(ticket, class), entry_index(ticket, class));
    current::with(|table| {
        let entry = table.entry(index);
        if entry.is(key) {
            table.set_last(index);
            entry.front.take_cached(set, class, size)
        } else {
            None
        }
    })
}

/// Runs `use_entry` on this thread's entry for `key` (at `index`), claimed
/// from whichever cache held it, the thread getting a table first if it has
/// none; `false`, without running it, if the thread caches nothing (it is
/// exiting, or no table could be had).
fn with_claimed_entry(key: u64, index: usize, use_entry: impl FnOnce(&Entry)) -> bool {
    current::with_or_acquire(|table| {
        let entry = table.entry(index);
        if !entry.is(key) {
            entry.claim(key);
        }
        use_entry(entry);
    })
    .is_some()
}

/// Puts this thread's slots of `ticket`'s cache `class` back into it.
fn flush_entry<P: PageAllocator, C: ArrayLength, S: Shapes>(
    set: &CacheSet<P, C, S>,
    ticket: Ticket,
    class: usize,
    size: usize,
    release: bool,
) {
    let (key, index) = (key(ticket, class), entry_index(ticket, class));
    // Without the thread's storage there is nothing of ours in it: its
    // destructor gave every slot up already.
    current::with(|table| {
        let entry = table.entry(index);
        if entry.is(key) {
            entry.front.flush(set, class, size, release);
        }
    });
}
