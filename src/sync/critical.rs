//! The lock of the `critical-section` feature: a critical section around a
//! flag.
//!
//! Taking the lock enters a critical section ([`critical_section::acquire`])
//! and marks the mutex held, keeping in it the state that leaving restores;
//! dropping the guard clears the mark and leaves the section. The critical
//! section alone gives mutual exclusion between execution contexts
//! (interrupts masked, or the implementation's own lock across cores); the
//! mark catches the one case it does not: the context that
//! holds the lock asking for it again (a page source or a panic hook calling
//! back into its cache), which would otherwise hand out a second `&mut` to the
//! same data.
//!
//! Critical sections must be left in the reverse order they were entered,
//! and on the thread that entered them. The guard is `!Send`, and the crate
//! keeps every guard in a local variable whose scope nests inside the scope
//! of any guard taken before it (a guard dropped early is dropped before the
//! next lock is taken), so guards always drop last-in, first-out;
//! `tests/critical_section.rs` checks the order on every acquisition.

use core::cell::{Cell, UnsafeCell};
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};

/// A mutual-exclusion lock with a `const` constructor whose holder runs in a
/// critical section.
///
/// Invariant: `lock.held` is true exactly while a [`MutexGuard`] of this
/// mutex exists, a guard exists only inside the critical section it
/// entered, and `lock.restore` is then what leaving that section restores.
/// `lock` comes first (`repr(C)`), so that the mutex's address is its
/// lock's (see `lock`).
#[repr(C)]
pub(crate) struct Mutex<T> {
    lock: Lock,
    data: UnsafeCell<T>,
}

/// The lock of a [`Mutex`], whatever it guards.
///
/// The state to restore is kept here rather than in the guard: a guard is
/// then one pointer, and the code that holds a lock keeps no token in a
/// register across its work (under `critical-section`, a firmware's
/// allocation spent some 60 bytes more than under the spin lock moving it
/// around and reaching the cache through the registers left).
struct Lock {
    held: Cell<bool>,
    restore: Cell<critical_section::RestoreState>,
}

// SAFETY: `lock` and `data` are only touched inside a critical section (by
// `try_lock` and by a guard, which lives inside the section it entered), and
// critical sections exclude each other across every execution context; the
// `T` is reached only through a guard, and `held` allows one guard at a
// time, so one context at a time uses the `T`. Sharing the mutex lends the
// `T` to other contexts, hence `T: Send`.
unsafe impl<T: Send> Sync for Mutex<T> {}

/// Access to a [`Mutex`]'s data; leaves the critical section when dropped.
pub(crate) struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
    /// A critical section is left on the thread that entered it.
    _same_thread: PhantomData<*mut ()>,
}

impl<T> Mutex<T> {
    /// Wraps `value` in an unlocked mutex.
    pub(crate) const fn new(value: T) -> Self {
        Self {
            lock: Lock {
                held: Cell::new(false),
                restore: Cell::new(critical_section::RestoreState::invalid()),
            },
            data: UnsafeCell::new(value),
        }
    }

    /// Enters a critical section and takes the lock.
    ///
    /// Inside the section, only the context holding the lock can find it
    /// held, by asking for it again; that is a deadlock under any lock, and
    /// waits for ever here as a spin lock would (checked builds panic, so
    /// that a test sees it).
    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        let this: *const Self = self;
        // `lock` is the first field (`repr(C)`): the mutex's address is its
        // lock's.
        // SAFETY: a pointer to this mutex's lock, live for the call.
        let entered = unsafe { enter(this.cast()) };
        // SAFETY: `enter` returns the pointer it was given, `this`, made
        // from `self` (so reaching the whole mutex) and valid for `'_`.
        let mutex = unsafe { &*entered.cast::<Self>() };
        MutexGuard {
            mutex,
            _same_thread: PhantomData,
        }
    }

    /// Takes the lock unless the current context already holds it; `Debug`
    /// uses this so that printing never deadlocks.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        // SAFETY: the section is left exactly once, on this thread: just below
        // if the lock is held, otherwise by the guard's `drop` (the guard is
        // `!Send`). Nesting is last-in, first-out: see the module docs.
        let restore = unsafe { critical_section::acquire() };
        if self.lock.held.get() {
            // SAFETY: pairs with the `acquire` just above; nothing was entered
            // since.
            unsafe { critical_section::release(restore) };
            return None;
        }
        self.lock.held.set(true);
        self.lock.restore.set(restore);
        Some(MutexGuard {
            mutex: self,
            _same_thread: PhantomData,
        })
    }

    /// Exclusive access without locking, for `Drop` and `&mut self` methods.
    #[inline]
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

/// Enters a critical section and marks `lock` held, with the state that
/// leaving the section restores, for [`Mutex::lock`]. One function for
/// every mutex, whatever it guards: `no_std` builds call it rather than
/// inline it, so that a firmware links it once (`std` builds inline it, as
/// before). Returns `lock`, the pointer it was given: the caller reaches
/// its data through the returned pointer, and so keeps nothing across the
/// call.
///
/// # Safety
///
/// `lock` points to a live mutex's `Lock`.
#[cfg_attr(not(feature = "std"), inline(never))]
#[cfg_attr(feature = "std", inline)]
unsafe fn enter(lock_ptr: *const Lock) -> *const Lock {
    // SAFETY: the caller's guarantee.
    let lock = unsafe { &*lock_ptr };
    // SAFETY: the section is left exactly once, on this thread: just below
    // if the lock is held, otherwise by the guard's `drop` (the guard is
    // `!Send`). Nesting is last-in, first-out: see the module docs.
    let restore = unsafe { critical_section::acquire() };
    if lock.held.get() {
        // SAFETY: pairs with the `acquire` just above; nothing was entered
        // since.
        unsafe { critical_section::release(restore) };
        reentered();
    }
    lock.held.set(true);
    lock.restore.set(restore);
    lock_ptr
}

/// A lock asked for again by the context holding it. Out of line where it
/// panics; builds without checks only wait, inline.
#[cfg_attr(any(feature = "checked", debug_assertions), cold, inline(never))]
#[cfg_attr(not(any(feature = "checked", debug_assertions)), inline(always))]
fn reentered() -> ! {
    // Checked builds (the condition `checked::CHECKED` names; the lock
    // layer sits below it and does not import it).
    if cfg!(any(feature = "checked", debug_assertions)) {
        panic!("minimal_slab: a lock was asked for by the code holding it");
    }
    loop {
        core::hint::spin_loop();
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one of its mutex (`held`), and the
        // borrow ends with `&self`, before the guard drops.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`, and `&mut self` makes this borrow the only one.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // The mutex's `restore` came from the `acquire` in `lock` or
        // `try_lock` that made this guard, on this thread (the guard is
        // `!Send`), with `held` set.
        // SAFETY: as just said; guards drop last-in, first-out (module docs).
        unsafe { leave(&self.mutex.lock) };
    }
}

/// Clears `lock`'s mark and leaves the critical section its `restore`
/// came from, for a guard's drop. Out of line in builds without `std`, as
/// [`enter`] is.
///
/// # Safety
///
/// `lock` is held: its `restore` came from the `critical_section::acquire`
/// that set `held`, on this thread, and every section entered since has
/// been left.
#[cfg_attr(not(feature = "std"), inline(never))]
#[cfg_attr(feature = "std", inline)]
unsafe fn leave(lock: &Lock) {
    let restore = lock.restore.get();
    lock.held.set(false);
    // SAFETY: the caller's guarantees.
    unsafe { critical_section::release(restore) };
}
