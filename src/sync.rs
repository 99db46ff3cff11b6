//! The one door through which the crate reaches for synchronisation.
//!
//! Every lock the crate takes is a [`Mutex`] from this module, and every
//! shared counter an atomic re-exported here. Keeping them behind one façade
//! means a model checker (or a different lock) can be swapped in by editing
//! this file alone, and `spin`'s types never appear in the public API.
//!
//! Why a spin lock: the crate is `no_std` and may run where there is no
//! operating system to park a thread (kernels, firmware, an allocator that the
//! OS's own primitives would recurse into). Critical sections are a handful of
//! pointer moves, so spinning is also the cheapest choice when uncontended.

pub(crate) use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// A mutual-exclusion lock with a `const` constructor, so caches can be `static`.
pub(crate) struct Mutex<T>(spin::mutex::SpinMutex<T>);

/// The guard returned by [`Mutex::lock`]; the lock is released when it drops.
pub(crate) type MutexGuard<'a, T> = spin::mutex::SpinMutexGuard<'a, T>;

impl<T> Mutex<T> {
    /// Wraps `value` in an unlocked mutex.
    pub(crate) const fn new(value: T) -> Self {
        Self(spin::mutex::SpinMutex::new(value))
    }

    /// Spins until the lock is ours.
    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock()
    }

    /// Takes the lock only if it is free right now; `Debug` uses this so that
    /// printing never blocks.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.0.try_lock()
    }

    /// Exclusive access without locking, for `Drop` and `&mut self` methods.
    #[inline]
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.0.get_mut()
    }
}
