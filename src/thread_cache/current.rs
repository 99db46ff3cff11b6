//! Where a thread finds its own table: one pointer in a `thread_local!`
//! with no destructor (so that a global allocator may read it at any time,
//! thread teardown included).
//!
//! # States of the pointer
//!
//! - *null*: the thread has no table yet; the first slow path gets one
//!   ([`with_or_acquire`]) and arms the thread's exit guard.
//! - *arming*: the exit guard is being armed. Arming may register a
//!   destructor with the standard library, which may allocate — through
//!   this crate, if a `SlabAllocator` is the global allocator: such a
//!   nested call must neither get a table nor cache, so it takes the locked
//!   path.
//! - *exited*: the exit guard ran and gave the table back; every later call
//!   (another destructor's) takes the locked path.
//! - a table: the thread's own, until its exit guard gives it back.

use core::cell::Cell;
use core::ptr;

use super::exit_guard;
use super::table::Table;

std::thread_local! {
    /// No destructor: the exit guard gives the table back.
    static CURRENT: Cell<*const Table> = const { Cell::new(ptr::null()) };
}

/// The sentinel addresses, below any table's.
const ARMING: usize = 1;
const EXITED: usize = 2;

/// Runs `use_table` on the calling thread's table, if it has one.
#[inline]
pub(super) fn with<R>(use_table: impl FnOnce(&Table) -> R) -> Option<R> {
    CURRENT
        .try_with(|current| {
            let table = current.get();
            if table.addr() <= EXITED {
                return None;
            }
            // SAFETY: a table stored here is the thread's own (no other
            // thread uses its magazines until the exit guard gives it back,
            // after setting `EXITED`), and tables are never freed.
            Some(use_table(unsafe { &*table }))
        })
        .ok()
        .flatten()
}

/// Whether the calling thread caches slots, or may start to: not while it
/// arms its exit guard, nor once the guard has run.
pub(super) fn can_cache() -> bool {
    CURRENT
        .try_with(|current| {
            let table = current.get();
            table.is_null() || table.addr() > EXITED
        })
        .unwrap_or(false)
}

/// [`with`], getting the thread a table first if it has none yet; `None`
/// (without running `use_table`) if it caches nothing: its exit guard is
/// being armed or has run, its storage is gone, or no table could be had.
pub(super) fn with_or_acquire<R>(use_table: impl FnOnce(&Table) -> R) -> Option<R> {
    let table = CURRENT
        .try_with(|current| {
            let table = current.get();
            if !table.is_null() {
                return table;
            }
            current.set(ptr::without_provenance(ARMING));
            let Some(table) = Table::acquire() else {
                // No memory for a table now: try again on a later call.
                current.set(ptr::null());
                return ptr::null();
            };
            if exit_guard::arm(table) {
                current.set(table);
                table
            } else {
                current.set(ptr::without_provenance(EXITED));
                table.release();
                ptr::null()
            }
        })
        .ok()?;
    if table.addr() <= EXITED {
        return None;
    }
    // SAFETY: as in `with`.
    Some(use_table(unsafe { &*table }))
}

/// The exit guard: the calling thread, exiting, forgets `table` (its own)
/// and gives it back.
///
/// # Safety
///
/// `table` is the calling thread's table, which the thread no longer uses
/// after this call.
pub(super) unsafe fn exit(table: *const Table) {
    if table.addr() <= EXITED {
        return;
    }
    let _ = CURRENT.try_with(|current| current.set(ptr::without_provenance(EXITED)));
    // SAFETY: tables are never freed; the caller says it is this thread's,
    // now forgotten by it.
    unsafe { &*table }.release();
}

/// The calling thread's table, for an exit guard that cannot carry it.
#[cfg(not(target_os = "linux"))]
pub(super) fn table() -> *const Table {
    CURRENT.try_with(Cell::get).unwrap_or(ptr::null())
}
