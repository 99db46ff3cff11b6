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
//! - Tables come from [`System`] and are never freed: a table is on
//!   [`TABLES`] while a thread owns it (so that `stats()` on any thread can
//!   count its slots), on the pool when none does. Only its owner touches
//!   its magazines; other threads read the atomic key and length.
//! - When its thread exits, the exit guard (see `current`) gives the
//!   table back ([`Table::release`]): off [`TABLES`], every slot given up
//!   through the registry, onto the pool for the next thread. Giving up
//!   never reads nor writes a slot.
//! - A table whose thread never gives it back (the exit guard did not run:
//!   a thread gone with `fork`, or one that first cached slots in the last
//!   round of thread-specific-data destructors) stays on [`TABLES`], its
//!   slots counted as cached: a leak, never a dangling pointer. That is why
//!   tables are not in the threads' own storage, which goes with them.
//!
//! # Under loom
//!
//! The two lists belong to one execution of a model (see `sync`), and so do
//! the tables on them: when loom drops the lists at the end of the
//! execution, every table on them is freed. Every other thread has given
//! its table back by then (a model waits for that: see `current`); the
//! model's main thread's thread-locals are dropped only after the lists, so
//! its exit guard does nothing (see [`execution_over`]).
//! A table's key and magazine length stay `core`'s atomics, as in the
//! explicit fronts' magazines: only their owner writes them, and others
//! read them only to count (`stats()`).

use core::alloc::Layout;
use core::cell::Cell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::alloc::{GlobalAlloc, System};

#[cfg(loom)]
use typenum::U2;
#[cfg(not(loom))]
use typenum::U64;

use super::registry::{self, Ticket};
use crate::magazine::MagazineFront;
use crate::sync::{Mutex, static_unless_loom};

/// Entries per thread. A thread that uses more caches (classes) at once
/// than this, or two whose entries coincide, still works: each call that
/// finds its entry taken gives the other cache's slots up first.
pub(crate) const ENTRIES: usize = 16;

/// Slots per entry's magazine: 64, so that a refill or an overflow moves
/// 32 slots under one lock. Against 32 (batches of 16), a loop that
/// allocates 10 000 objects and then frees them all ran 7.9 instead of
/// 8.9 ns an object (`cargo run -p minimal_slab_perf --release --bin
/// fifo_loop`): the batches' fixed costs — the locks, the depot, the
/// thread-local look-ups of the slow path — are paid half as often. The
/// price is a table of 8.4 KiB a thread instead of 4.3, and up to 64
/// slots of each cache resting per thread.
#[cfg(not(loom))]
pub(crate) type Depth = U64;
/// Slots per entry's magazine: two under loom, so that a model's few
/// objects cross every boundary — a refill (of one) on an empty magazine,
/// an overflow (of one, to the depot) on the third free into a full one.
#[cfg(loom)]
pub(crate) type Depth = U2;

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
        if self.key.load(Relaxed) != 0 {
            // Under the list's lock, as every move of slots out of a table:
            // a count (`cached_everywhere`) sees them here or with the
            // orphans, never in both nor in neither.
            let _listed = TABLES.lock();
            self.give_up();
        }
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

/// One thread's entries, and its links on [`TABLES`] or the pool. On cache
/// lines of its own (see `own_lines`): tables come from `System` back to
/// back, where one thread's `last`, written at every allocation, could
/// share a line with the next table's first entry, read at every call.
#[repr(align(128))]
pub(crate) struct Table {
    entries: [Entry; ENTRIES],
    /// The entry this thread's last fast allocation used: where a handle's
    /// drop looks first (see `ThreadCache::give`).
    last: Cell<usize>,
    /// Its neighbours on [`TABLES`], read and written only under its lock;
    /// on the pool, `next` alone links it.
    prev: Cell<*const Table>,
    next: Cell<*const Table>,
}

static_unless_loom! {
    /// Every table a thread owns (see the invariants above).
    static TABLES: Mutex<TableList> = Mutex::new(TableList::empty());
}

static_unless_loom! {
    /// Tables no thread owns, for the next threads.
    static POOL: Mutex<TableList> = Mutex::new(TableList::empty());
}

/// The head of a list of tables.
struct TableList(*const Table);

// SAFETY: a list is only read and changed under its lock, and tables are
// never freed; a table on the pool is no thread's.
unsafe impl Send for TableList {}

impl TableList {
    /// An empty list.
    #[cfg(not(loom))]
    const fn empty() -> Self {
        Self(ptr::null())
    }

    /// An empty list, made on an execution's first use of the lists.
    #[cfg(loom)]
    fn empty() -> Self {
        EXECUTION_OVER.set(false);
        Self(ptr::null())
    }
}

#[cfg(loom)]
std::thread_local! {
    /// Whether the current execution's lists are gone. A model runs on one
    /// thread of the test harness, its loom threads included (loom switches
    /// between them there): this is the model's. It outlives the lists,
    /// which a loom cell would not.
    static EXECUTION_OVER: Cell<bool> = const { Cell::new(false) };
}

/// Whether the current execution's lists, and so its tables, are gone: an
/// exit guard that runs now must not touch its table.
#[cfg(loom)]
pub(super) fn execution_over() -> bool {
    EXECUTION_OVER.get()
}

/// Under loom, the end of an execution: its tables go with the list (see
/// the module doc).
#[cfg(loom)]
impl Drop for TableList {
    fn drop(&mut self) {
        EXECUTION_OVER.set(true);
        let mut table = self.0;
        while !table.is_null() {
            // The execution is over, so no thread uses this table again: the
            // model's code has returned, the other threads have given their
            // tables back, and the main thread's exit guard finds
            // `EXECUTION_OVER`.
            // SAFETY: tables on a list are alive, and no thread uses this one.
            let next = unsafe { (*table).next.get() };
            // SAFETY: as above; it came from `System` with this layout in
            // `acquire`, and nothing in a table needs dropping.
            unsafe { System.dealloc(table.cast_mut().cast(), Layout::new::<Table>()) };
            table = next;
        }
    }
}

impl Table {
    const fn new() -> Self {
        Self {
            entries: [const { Entry::new() }; ENTRIES],
            last: Cell::new(0),
            prev: Cell::new(ptr::null()),
            next: Cell::new(ptr::null()),
        }
    }

    /// The entry at `index`.
    #[inline]
    pub(crate) fn entry(&self, index: usize) -> &Entry {
        &self.entries[index]
    }

    /// The entry the last fast allocation used.
    #[inline]
    pub(crate) fn last(&self) -> &Entry {
        self.entry(self.last.get() % ENTRIES)
    }

    /// Notes that a fast allocation used the entry at `index`.
    #[inline]
    pub(crate) fn set_last(&self, index: usize) {
        self.last.set(index);
    }

    /// A table for the calling thread, from the pool or from [`System`]
    /// (never from the global allocator, which may be this crate), listed
    /// on [`TABLES`]; `None` if `System` has no memory. Until it is given
    /// back, the caller's thread alone uses its magazines.
    pub(crate) fn acquire() -> Option<&'static Table> {
        let pooled = {
            let mut pool = POOL.lock();
            let head = pool.0;
            if !head.is_null() {
                // SAFETY: tables on the pool are alive (never freed), and
                // their links are ours to change under its lock.
                pool.0 = unsafe { (*head).next.get() };
            }
            head
        };
        let table: &'static Table = match NonNull::new(pooled.cast_mut()) {
            // SAFETY: tables are never freed; this one left the pool, so it
            // is ours alone.
            Some(table) => unsafe { table.as_ref() },
            None => {
                let layout = Layout::new::<Table>();
                // SAFETY: `Table` is not zero-sized.
                let fresh = NonNull::new(unsafe { System.alloc(layout) })?.cast::<Table>();
                // SAFETY: a fresh block for one `Table`, which we never free.
                unsafe { fresh.write(Table::new()) };
                // SAFETY: initialised just now; never freed.
                unsafe { fresh.as_ref() }
            }
        };
        let mut head = TABLES.lock();
        table.prev.set(ptr::null());
        table.next.set(head.0);
        if !head.0.is_null() {
            // SAFETY: tables on the list are alive, and their links are ours
            // to change while we hold the lock.
            unsafe { (*head.0).prev.set(table) };
        }
        head.0 = table;
        Some(table)
    }

    /// Gives the table back when its thread is done with it: off
    /// [`TABLES`], every slot given up through the registry, onto the pool.
    /// The thread must not use it again (it forgets it first).
    pub(crate) fn release(&'static self) {
        {
            // One hold of the list's lock for leaving it and giving every
            // slot up: a count sees the slots in the table or with the
            // orphans, never in neither (see `cached_everywhere`).
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
            for entry in &self.entries {
                entry.give_up();
            }
        }
        let mut pool = POOL.lock();
        self.prev.set(ptr::null());
        self.next.set(pool.0);
        pool.0 = self;
    }

    /// Slots resting for `key` in every thread's table, at `index`, plus
    /// `given_up()` (the orphans' count), read under the same hold of the
    /// list's lock: slots leave a table for the orphans only under it.
    pub(crate) fn cached_everywhere(
        key: u64,
        index: usize,
        given_up: impl FnOnce() -> usize,
    ) -> usize {
        let head = TABLES.lock();
        let mut total = 0;
        let mut table = head.0;
        while !table.is_null() {
            // SAFETY: tables are never freed; of another thread's table we
            // read only atomics (its key and its magazine's length) and the
            // links, which the lock guards.
            let this = unsafe { &*table };
            total += this.entries[index].cached_for(key);
            table = this.next.get();
        }
        total + given_up()
    }
}
