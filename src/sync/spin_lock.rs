//! The spin lock of builds without `std` (and without the
//! `critical-section` feature): a flag and the data beside it.
//!
//! `std` builds wrap `spin`'s `SpinMutex`, inlined at every site. A
//! firmware links this one instead: one function, called by every lock
//! site whatever the data (`spin`'s `lock` is generic over it, with more
//! to link).

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

/// A mutual-exclusion lock with a `const` constructor.
///
/// Invariant: `locked` is true exactly while a [`MutexGuard`] of this mutex
/// exists. It comes first, so that `lock` is the same code whatever `T`.
#[repr(C)]
pub(crate) struct Mutex<T> {
    locked: AtomicBool,
    data: UnsafeCell<T>,
}

// SAFETY: the `T` is reached only through a guard, and `locked` allows one
// guard at a time (acquired with `Acquire`, released with `Release`, so one
// holder's accesses happen before the next's); sharing the mutex lends the
// `T` to other threads, hence `T: Send`.
unsafe impl<T: Send> Sync for Mutex<T> {}

/// Access to a [`Mutex`]'s data; releases the lock when dropped.
pub(crate) struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
}

impl<T> Mutex<T> {
    /// Wraps `value` in an unlocked mutex.
    pub(crate) const fn new(value: T) -> Self {
        Self {
            locked: AtomicBool::new(false),
            data: UnsafeCell::new(value),
        }
    }

    /// Spins until the lock is ours (see [`acquire`]).
    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        let this: *const Self = self;
        // `locked` is the first field (`repr(C)`): the mutex's address is
        // its flag's.
        // SAFETY: a pointer to this mutex's flag, live for the call.
        let acquired = unsafe { acquire(this.cast()) };
        // SAFETY: `acquire` returns the pointer it was given, `this`, made
        // from `self` (so reaching the whole mutex) and valid for `'_`.
        let mutex = unsafe { &*acquired.cast::<Self>() };
        MutexGuard { mutex }
    }

    /// Takes the lock only if it is free right now; `Debug` uses this so that
    /// printing never blocks.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        if self.locked.swap(true, Ordering::Acquire) {
            return None;
        }
        Some(MutexGuard { mutex: self })
    }

    /// Exclusive access without locking, for `Drop` and `&mut self` methods.
    #[inline]
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one of its mutex (`locked`), and the
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
        release(&self.mutex.locked);
    }
}

/// Spins until `locked` is ours. Out of line, and not generic: a firmware
/// links it once for every lock. (A method generic over the data was
/// linked once per type, and with one mutex of a type, the compiler
/// specialised each copy to its mutex's address: copies the linker could
/// not merge.)
///
/// Returns `locked`, the pointer it was given: the caller reaches its data
/// through the returned pointer, so it keeps nothing across the call (as
/// when the guard was the generic method's return value).
///
/// # Safety
///
/// `locked` points to a live `AtomicBool` (a mutex's flag).
#[inline(never)]
unsafe fn acquire(locked: *const AtomicBool) -> *const AtomicBool {
    // SAFETY: the caller's guarantee.
    let flag = unsafe { &*locked };
    // A failed exchange writes nothing: waiters only read the line.
    while flag
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        super::spin_wait();
    }
    locked
}

/// Clears `locked`. Out of line: a call is shorter than the barrier and
/// the store it makes.
#[inline(never)]
fn release(locked: &AtomicBool) {
    locked.store(false, Ordering::Release);
}
