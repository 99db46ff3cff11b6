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
//!
//! # The exit guard
//!
//! What gives a thread's table back when the thread exits ([`exit`]), so
//! that it leaves [`TABLES`], gives its slots up and goes to the pool.
//!
//! ## Why not (only) a `thread_local!` destructor
//!
//! A Rust thread-local destructor is the portable way, and on most
//! platforms the one used here. On Linux it has a gap: the C library runs
//! the thread-local destructors (`__cxa_thread_atexit_impl`'s list) first
//! and the POSIX thread-specific-data destructors (`pthread_key_create`)
//! after them. A table first used from a thread-specific-data destructor —
//! a C library's per-thread state freed through a Rust global allocator,
//! say — would arm a Rust destructor that never runs: the table would stay
//! on the list after its thread, and its storage, are gone.
//!
//! So on Linux the guard is a thread-specific-data key of its own. Setting
//! its value while the thread-specific destructors run makes the C library
//! run another round, which calls this one (glibc and musl run up to
//! `PTHREAD_DESTRUCTOR_ITERATIONS`, 4, rounds). Neither creating the key
//! nor setting its value allocates through a Rust allocator (glibc's
//! `pthread_setspecific` may call C's `calloc` for keys past the first 32),
//! so the guard can be armed from inside a global allocator.
//!
//! One gap is left: a table first used in the *last* round of
//! thread-specific destructors is never given back (a C library stops after
//! four rounds), nor is the table of a thread that `fork` left behind in
//! the child. Tables are not in the threads' storage (see `table`), so such
//! a table stays listed with its slots counted as cached: a leak, not a
//! dangling pointer.
//!
//! ## Under loom
//!
//! The pointer is a loom thread-local, and so is the guard, which carries
//! the table as the Linux guard's value does: when a loom thread ends, loom
//! takes every thread-local of it away before it drops any, so the guard
//! can no longer read the pointer, and any later call on that thread finds
//! no pointer and takes the locked path (as after *exited*). A model thus
//! runs a thread's exit — giving its table back, racing the other threads —
//! at the end of every loom thread it spawns. Loom's `join` returns before
//! that, where `std`'s waits for it, so a model waits for the exits itself
//! (`wait_for_exits`, which the guard's count of armed guards serves). The
//! Linux guard's thread-specific-data key is not modelled (loom has none);
//! this guard follows its design, the table carried by the guard.
//!
//! [`TABLES`]: super::table

use core::cell::Cell;
use core::ptr;

use super::table::Table;
use crate::sync::thread_local_unless_loom;

thread_local_unless_loom! {
    /// No destructor: the exit guard gives the table back.
    static CURRENT: Cell<*const Table> = Cell::new(ptr::null());
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
            if arm(table) {
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
unsafe fn exit(table: *const Table) {
    if table.addr() <= EXITED {
        return;
    }
    let _ = CURRENT.try_with(|current| current.set(ptr::without_provenance(EXITED)));
    // SAFETY: tables are never freed; the caller says it is this thread's,
    // now forgotten by it.
    unsafe { &*table }.release();
}

/// The calling thread's table, for an exit guard that cannot carry it.
#[cfg(all(not(target_os = "linux"), not(loom)))]
fn table() -> *const Table {
    CURRENT.try_with(Cell::get).unwrap_or(ptr::null())
}

/// Arms the calling thread's exit guard for `table`, the thread's own.
/// `false` if it cannot be armed (the thread is exiting, or the system
/// refused a key): the caller then keeps to the locked path.
fn arm(table: &Table) -> bool {
    guard::arm(table)
}

#[cfg(all(target_os = "linux", not(loom)))]
mod guard {
    use core::ffi::{c_int, c_uint, c_void};
    use core::sync::atomic::{AtomicUsize, Ordering};

    use super::Table;

    /// `pthread_key_t` on Linux (glibc and musl).
    type Key = c_uint;

    unsafe extern "C" {
        fn pthread_key_create(
            key: *mut Key,
            destructor: Option<unsafe extern "C" fn(*mut c_void)>,
        ) -> c_int;
        fn pthread_key_delete(key: Key) -> c_int;
        fn pthread_setspecific(key: Key, value: *const c_void) -> c_int;
    }

    /// The process's key, created on first use; `NO_KEY` until then.
    static KEY: AtomicUsize = AtomicUsize::new(NO_KEY);
    const NO_KEY: usize = usize::MAX;

    /// Called by the C library at thread exit with the table's address.
    unsafe extern "C" fn leave(table: *mut c_void) {
        // SAFETY: the value was set by `arm` to the exiting thread's own
        // table, which it uses no more: its thread is ending.
        unsafe { super::exit(table.cast::<Table>().cast_const()) };
    }

    fn key() -> Option<Key> {
        let known = KEY.load(Ordering::Acquire);
        if known != NO_KEY {
            return Key::try_from(known).ok();
        }
        let mut fresh: Key = 0;
        // SAFETY: `fresh` is writable; `leave` is a valid destructor.
        if unsafe { pthread_key_create(&mut fresh, Some(leave)) } != 0 {
            return None;
        }
        match KEY.compare_exchange(NO_KEY, fresh as usize, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Some(fresh),
            Err(theirs) => {
                // Another thread created one first: keep it, free ours.
                // SAFETY: `fresh` was just created and has no value set.
                unsafe { pthread_key_delete(fresh) };
                Key::try_from(theirs).ok()
            }
        }
    }

    pub(super) fn arm(table: &Table) -> bool {
        let Some(key) = key() else {
            return false;
        };
        let value = core::ptr::from_ref(table).cast::<c_void>();
        // SAFETY: a key of this process; any value may be set.
        unsafe { pthread_setspecific(key, value) == 0 }
    }
}

#[cfg(all(not(target_os = "linux"), not(loom)))]
mod guard {
    use super::Table;

    /// Gives the thread's table back when the thread exits.
    struct ExitGuard;

    impl Drop for ExitGuard {
        fn drop(&mut self) {
            // SAFETY: the calling thread's own table; its thread is ending.
            unsafe { super::exit(super::table()) };
        }
    }

    std::thread_local! {
        /// Armed by `arm`; zero-sized, so its storage costs nothing.
        static EXIT_GUARD: ExitGuard = const { ExitGuard };
    }

    pub(super) fn arm(_table: &Table) -> bool {
        EXIT_GUARD.try_with(|_| ()).is_ok()
    }
}

#[cfg(loom)]
pub(crate) use guard::wait_for_exits;

#[cfg(loom)]
mod guard {
    use core::cell::Cell;
    use core::ptr;
    use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};

    use super::Table;
    use crate::sync::threaded::AtomicUsize;
    use crate::thread_cache::table;

    /// Gives the thread's table back when its loom thread ends; carries the
    /// table, which `CURRENT` no longer gives by then (see the module doc).
    struct ExitGuard(Cell<*const Table>);

    impl Drop for ExitGuard {
        fn drop(&mut self) {
            // Too late: the execution's lists, and the tables with them,
            // are gone (see `table`) — this is the model's main thread,
            // whose thread-locals loom drops only after them; or a model
            // that failed, whose threads loom drops while unwinding,
            // outside any execution.
            if std::thread::panicking() || table::execution_over() {
                return;
            }
            let table = self.0.get();
            // SAFETY: the table armed for this thread (or null), which the
            // thread uses no more: it is ending.
            unsafe { super::exit(table) };
            if !table.is_null() {
                // Release: what the exit did happens before a waiter's
                // return (as before a `join`'s, in `std`).
                ARMED.fetch_sub(1, Release);
            }
        }
    }

    loom::thread_local! {
        static EXIT_GUARD: ExitGuard = ExitGuard(Cell::new(ptr::null()));
    }

    loom::lazy_static! {
        /// Guards armed and not done yet: threads that own a table, or are
        /// still giving it back.
        static ref ARMED: AtomicUsize = AtomicUsize::new(0);
    }

    pub(super) fn arm(table: &Table) -> bool {
        let armed = EXIT_GUARD
            .try_with(|guard| guard.0.set(ptr::from_ref(table)))
            .is_ok();
        if armed {
            ARMED.fetch_add(1, Relaxed);
        }
        armed
    }

    /// Waits until no thread but the caller owns a table or is giving one
    /// back. Loom's `join` returns before the joined thread's thread-locals
    /// are dropped, where `std`'s waits for them (the native thread has
    /// exited, destructors and all, when `pthread_join` returns): a model
    /// calls this after its joins to get `std`'s order back — and must,
    /// before it returns, or a thread still giving its table back would use
    /// lists that loom drops at the end of the model.
    pub(crate) fn wait_for_exits() {
        let mine = EXIT_GUARD
            .try_with(|guard| usize::from(!guard.0.get().is_null()))
            .unwrap_or(0);
        while ARMED.load(Acquire) > mine {
            loom::thread::yield_now();
        }
    }
}
