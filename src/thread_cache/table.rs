//! Each thread's table of magazines, and the list of all tables.
//!
//! # What a table owns
//!
//! [`ENTRIES`] entries, each a magazine front holding resting slots of one
//! cache (one size class of it), named by its key: the cache's registry
//! ticket and the class. An entry belongs to whichever cache last used it:
//! a cache whose entry another cache took gets it back on its next call,
//! after the slots there were given up to their cache through the registry.
//! A table never holds a cache's address (see `registry` for why).
//!
//! # Invariants
//!
//! - A slot in entry `e` belongs to the cache of `e`'s key, class `e`'s
//!   class; an entry with no key holds no slot.
//! - The table is on [`TABLES`] while its thread may cache slots in it, so
//!   that `stats()` on any thread can count them; only its own thread
//!   touches its magazines, other threads read the atomic key and length.
//! - When the thread exits, its exit guard (see `exit_guard`) takes the
//!   table off [`TABLES`] and gives every slot up through the registry;
//!   from then on
//!   the table caches nothing (calls take the locked path). Giving up never
//!   reads nor writes a slot. The table itself has no destructor: one would
//!   take `&mut` to it while other threads may still read it through the
//!   list.

use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use typenum::U32;

use super::exit_guard;
use super::registry::{self, Ticket};
use crate::magazine::MagazineFront;
use crate::sync::Mutex;

/// Entries per thread. A thread that uses more caches (classes) at once
/// than this, or two whose entries coincide, still works: each call that
/// finds its entry taken gives the other cache's slots up first.
pub(crate) const ENTRIES: usize = 16;

/// Slots per entry's magazine.
pub(crate) type Depth = U32;

/// The key of cache `ticket`'s class `class`: never 0 (0 is "no key").
pub(crate) fn key(ticket: Ticket, class: usize) -> u64 {
    debug_assert!(
        class < 1 << CLASS_BITS,
        "size classes stop below 2^64 bytes"
    );
    (ticket.raw() << CLASS_BITS) | class as u64
}

/// The low bits of a key that hold the class.
const CLASS_BITS: u32 = 6;

/// The entry of every table that cache `ticket`'s class `class` uses.
pub(crate) fn entry_index(ticket: Ticket, class: usize) -> usize {
    // Places are handed out in turn, so consecutive caches land in
    // consecutive entries; the classes of one allocator spread by 7.
    (ticket.index() + class * 7) % ENTRIES
}

/// One entry: a magazine of one cache's class.
pub(crate) struct Entry {
    /// `key(ticket, class)` of the cache the slots belong to, or 0.
    key: AtomicU64,
    pub(crate) front: MagazineFront<Depth>,
}

impl Entry {
    const fn new() -> Self {
        Self {
            key: AtomicU64::new(0),
            front: MagazineFront::new(),
        }
    }

    /// Whether the entry holds slots of `key`'s cache class.
    #[inline]
    pub(crate) fn is(&self, key: u64) -> bool {
        self.key.load(Relaxed) == key
    }

    /// Makes the entry `key`'s, giving up the slots of the cache that had it.
    pub(crate) fn claim(&self, key: u64) {
        self.give_up();
        self.key.store(key, Relaxed);
    }

    /// Gives every slot up to its cache through the registry, and leaves the
    /// entry empty and without a key. No slot is read or written: its cache
    /// may be gone, or leaked with its page source gone (see `registry`);
    /// the cache checks its orphans when it takes them back.
    pub(crate) fn give_up(&self) {
        let key = self.key.load(Relaxed);
        let Some(ticket) = Ticket::from_raw(key >> CLASS_BITS) else {
            return;
        };
        let class = (key & ((1 << CLASS_BITS) - 1)) as usize;
        registry::give_up(ticket, |orphans| {
            while let Some(slot) = self.front.pop() {
                orphans.push(slot, class);
            }
        });
        // Whatever is left belongs to a cache that is gone.
        self.front.forget_all();
        self.key.store(0, Relaxed);
    }

    /// Slots resting here for `key`, read from any thread.
    fn cached_for(&self, key: u64) -> usize {
        if self.key.load(Relaxed) == key {
            self.front.cached()
        } else {
            0
        }
    }
}

/// One thread's entries, and its links on [`TABLES`].
pub(crate) struct Table {
    entries: [Entry; ENTRIES],
    /// Its neighbours on [`TABLES`], read and written only under its lock.
    prev: Cell<*const Table>,
    next: Cell<*const Table>,
    listed: Cell<bool>,
    /// The thread is exiting and the table gave its slots up: it caches
    /// nothing more (later calls take the locked path).
    gone: Cell<bool>,
    /// The exit guard is being armed. Arming may register a destructor with
    /// the standard library, which may allocate — through this crate, if a
    /// `SlabAllocator` is the global allocator: such a nested call must
    /// neither arm the guard again nor cache, so it takes the locked path.
    arming: Cell<bool>,
}

/// Every table that may hold slots (see the invariants above).
static TABLES: Mutex<TableList> = Mutex::new(TableList(ptr::null()));

/// The head of the list of tables.
struct TableList(*const Table);

// SAFETY: the list is only walked under `TABLES`'s lock, and every table on
// it stays alive until it has left the list under that lock.
unsafe impl Send for TableList {}

impl Table {
    pub(crate) const fn new() -> Self {
        Self {
            entries: [const { Entry::new() }; ENTRIES],
            prev: Cell::new(ptr::null()),
            next: Cell::new(ptr::null()),
            listed: Cell::new(false),
            gone: Cell::new(false),
            arming: Cell::new(false),
        }
    }

    /// Whether the table may cache slots now: not while the thread exits,
    /// nor while its exit guard is being armed (see `arming`).
    pub(crate) fn can_cache(&self) -> bool {
        !self.gone.get() && !self.arming.get()
    }

    /// The entry at `index`.
    #[inline]
    pub(crate) fn entry(&self, index: usize) -> &Entry {
        &self.entries[index]
    }

    /// Readies the table to cache slots: puts it on [`TABLES`] and arms
    /// the thread's exit guard, if not yet. `false` if the thread is exiting
    /// (the table gave its slots up, or the guard can no longer be armed):
    /// the caller takes the locked path.
    ///
    /// # Safety
    ///
    /// `self` is the calling thread's table, in its thread-local storage
    /// (which has no destructor: it lasts as long as the thread).
    pub(crate) unsafe fn list(&self) -> bool {
        if self.listed.get() {
            return true;
        }
        if self.gone.get() || self.arming.get() {
            return false;
        }
        // Armed before the table is listed: the guard's destructor is what
        // takes it off the list.
        self.arming.set(true);
        let armed = exit_guard::arm(self);
        self.arming.set(false);
        if !armed {
            self.gone.set(true);
            return false;
        }
        let mut head = TABLES.lock();
        self.next.set(head.0);
        if !head.0.is_null() {
            // SAFETY: tables on the list are alive, and their links are ours
            // to change while we hold the lock.
            unsafe { (*head.0).prev.set(self) };
        }
        head.0 = self;
        self.listed.set(true);
        true
    }

    /// At thread exit: takes the table off [`TABLES`], gives every slot up
    /// through the registry, and caches nothing more. Through `&self`: other
    /// threads may read the table (under the list's lock) until it is off
    /// the list, so no `&mut` to it may exist — which is why the table has
    /// no destructor, and a guard calls this.
    pub(super) fn leave(&self) {
        if self.listed.get() {
            let mut head = TABLES.lock();
            let (prev, next) = (self.prev.get(), self.next.get());
            if prev.is_null() {
                head.0 = next;
            } else {
                // SAFETY: our neighbours are on the list, alive, and their
                // links are ours to change under the lock.
                unsafe { (*prev).next.set(next) };
            }
            if !next.is_null() {
                // SAFETY: as above.
                unsafe { (*next).prev.set(prev) };
            }
            self.listed.set(false);
        }
        self.gone.set(true);
        for entry in &self.entries {
            entry.give_up();
        }
    }

    /// Slots resting for `key` in every thread's table, at `index`.
    pub(crate) fn cached_everywhere(key: u64, index: usize) -> usize {
        let head = TABLES.lock();
        let mut total = 0;
        let mut table = head.0;
        while !table.is_null() {
            // SAFETY: tables on the list are alive while we hold the lock; of
            // another thread's table we read only atomics (its key and its
            // magazine's length) and the links, which the lock guards.
            let this = unsafe { &*table };
            total += this.entries[index].cached_for(key);
            table = this.next.get();
        }
        total
    }
}
