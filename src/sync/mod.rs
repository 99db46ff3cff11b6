//! The one door through which the crate reaches for synchronisation.
//!
//! Every lock the crate takes is a [`Mutex`] from this module, and every
//! shared counter an atomic re-exported here. Keeping them behind one façade
//! means a model checker (or a different lock) can be swapped in by editing
//! this module alone, and no lock type ever appears in the public API.
//!
//! # Two locks to choose from
//!
//! - **`spin`** (the default): a spin lock. The crate is `no_std` and may run
//!   where there is no operating system to park a thread (kernels, firmware,
//!   an allocator that the OS's own primitives would recurse into). Critical
//!   sections are a handful of pointer moves, so spinning is also the
//!   cheapest choice when uncontended. A spin lock cannot be shared with an
//!   interrupt handler on the same core: the handler would spin on a lock
//!   that the code it interrupted holds, and never return. `std` builds use
//!   the `spin` crate's; builds without `std` their own (`spin_lock`), the
//!   same lock in less code.
//! - **`critical-section`** (the feature of that name): every lock is a
//!   critical section from the [`critical-section`] crate, the one the
//!   embedded ecosystem shares, so the crate follows whatever implementation
//!   the program links (interrupts masked on a single-core MCU, a hardware
//!   spin lock across cores, a global mutex on a host). Interrupts cannot
//!   fire while a cache is locked, so an interrupt handler can allocate and
//!   free; the cost is that interrupts wait for the few pointer moves a
//!   lock guards (and, when a cache grows, for its page source).
//!   Atomic counters come from [`portable-atomic`], whose own
//!   `critical-section` feature makes read-modify-write operations work on
//!   cores without compare-and-swap (Cortex-M0/M0+, RV32IMC).
//!
//! [`critical-section`]: https://docs.rs/critical-section
//! [`portable-atomic`]: https://docs.rs/portable-atomic
//!
//! ## What may run in an interrupt handler
//!
//! | operation | `spin` | `critical-section` |
//! |---|---|---|
//! | `SlabCache` / `SlabAllocator` / `LocalCache` calls: alloc, free, drop of a `SlabBox`, stats, shrink | no: hangs if the interrupted code holds the same lock | yes |
//! | a page source's `allocate_page` / `deallocate_page` (`RegionPages`, `NoPages`) | no | yes |
//! | `ChunkedPages` | no | yes, except that a request that finds its source empty while the interrupted code is still asking the source for a chunk waits for that request, that is for ever |
//! | `GlobalPages` (and `std`'s per-thread caches) | no: the global allocator and thread-local storage are not interrupt-safe, whatever the lock | no |
//!
//! Under either lock, a page source must not call back into the caches it
//! serves while they hold their lock: `spin` spins for ever; the critical
//! section finds the cache locked by its own caller, and waits for ever too
//! (it panics instead in checked builds, so that a test sees it).
//!
//! # Under loom
//!
//! Built with `--cfg loom`, the lock and the atomics are
//! [loom](https://docs.rs/loom)'s, so that `tests/loom.rs` can explore every
//! interleaving of the crate's own code. The lock is then a `loom` mutex that
//! guards nothing, next to a `loom` cell holding the data:
//!
//! - loom's mutex is modelled natively: a thread waiting for it is simply not
//!   scheduled, so a model explores only the orders in which critical
//!   sections can run, and a lock cycle is reported as a deadlock. A spin
//!   lock built on loom's atomics would turn every failed attempt into one
//!   more branch to explore, and would model a copy of the lock rather than
//!   `spin`'s;
//! - the cell makes loom check every access to the guarded data against the
//!   lock: should the lock ever stop ordering two critical sections, loom
//!   reports the concurrent access, instead of a corruption that may or may
//!   not show.
//!
//! loom's constructors are not `const`, so the crate's constructors that
//! build a lock or an atomic are declared through [`const_fn_unless_loom!`]:
//! `const fn` in every normal build, plain `fn` under loom. loom takes
//! precedence over the `critical-section` feature.
//!
//! The per-thread caches (feature `std`) add three things to swap:
//!
//! - their atomics ([`threaded`]): `core`'s in every normal build, loom's
//!   under loom;
//! - their `static`s ([`static_unless_loom!`]): a loom lock or atomic
//!   belongs to one execution of a model, so under loom each is a
//!   `loom::lazy_static!`, built afresh in every execution and dropped at its
//!   end;
//! - their thread-local ([`thread_local_unless_loom!`]): loom's
//!   `thread_local!`, whose values loom drops when its thread ends — which
//!   is how a model runs a thread's exit.

#[cfg(all(not(loom), feature = "critical-section"))]
mod critical;
#[cfg(all(not(loom), feature = "critical-section"))]
pub(crate) use critical::Mutex;
#[cfg(all(not(loom), not(feature = "critical-section"), not(feature = "std")))]
mod spin_lock;
#[cfg(all(not(loom), not(feature = "critical-section"), not(feature = "std")))]
pub(crate) use spin_lock::Mutex;

#[cfg(all(not(loom), not(feature = "critical-section")))]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
#[cfg(all(not(loom), feature = "critical-section"))]
pub(crate) use portable_atomic::{AtomicU32, AtomicUsize, Ordering};

/// An atomic for `static` counters, which need a `const` constructor. It
/// stays `core`'s under loom: such a counter must only hand out distinct
/// numbers, guarding nothing, so there is nothing in it to model.
#[cfg(not(feature = "critical-section"))]
pub(crate) use core::sync::atomic::AtomicU32 as StaticAtomicU32;
/// An atomic for `static` counters, which need a `const` constructor. It
/// stays a plain atomic under loom: such a counter must only hand out
/// distinct numbers, guarding nothing, so there is nothing in it to model.
#[cfg(feature = "critical-section")]
pub(crate) use portable_atomic::AtomicU32 as StaticAtomicU32;

/// The atomic through which checked builds read and flip a slab's bitmap
/// of slots in a user's hands (see `slab::checks`): a word of page memory,
/// viewed in place (`from_ptr`), so its layout must be a `usize`'s. It
/// stays `core`'s under loom, which cannot model memory it did not
/// allocate; the bitmap guards nothing a model must explore (it only
/// detects misuse).
#[cfg(not(feature = "critical-section"))]
pub(crate) use core::sync::atomic::AtomicUsize as PageAtomicUsize;
/// The atomic through which checked builds read and flip a slab's bitmap
/// (see the other definition): `portable-atomic`'s, whose read-modify-write
/// works on cores without compare-and-swap.
#[cfg(feature = "critical-section")]
pub(crate) use portable_atomic::AtomicUsize as PageAtomicUsize;

/// The atomics of the per-thread caches (feature `std`), which other threads
/// read or race on: `core`'s (they exist only where threads do, so never
/// need `portable-atomic`'s emulation), or under loom loom's, so that a
/// model explores the orders in which other threads see them.
#[cfg(feature = "std")]
pub(crate) mod threaded {
    #[cfg(not(loom))]
    pub(crate) use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
    #[cfg(loom)]
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
}

/// Declares a `static` of the per-thread caches: a plain `static` in every
/// normal build, a `loom::lazy_static!` under loom (built on first use in
/// each execution of a model, dropped at its end: the locks and atomics in
/// it belong to that execution). Used through `Deref` either way.
#[cfg(feature = "std")]
macro_rules! static_unless_loom {
    ($(#[$attr:meta])* static $name:ident: $ty:ty = $init:expr;) => {
        #[cfg(not(loom))]
        $(#[$attr])*
        static $name: $ty = $init;

        #[cfg(loom)]
        loom::lazy_static! {
            $(#[$attr])*
            static ref $name: $ty = $init;
        }
    };
}
#[cfg(feature = "std")]
pub(crate) use static_unless_loom;

/// Declares a thread-local of the per-thread caches, with a `const`
/// initialiser in every normal build (no lazy-initialisation check on
/// access); under loom, loom's `thread_local!`, which takes no `const`
/// block and drops the value when its loom thread ends.
#[cfg(feature = "std")]
macro_rules! thread_local_unless_loom {
    ($(#[$attr:meta])* static $name:ident: $ty:ty = $init:expr;) => {
        #[cfg(not(loom))]
        std::thread_local! {
            $(#[$attr])*
            static $name: $ty = const { $init };
        }

        #[cfg(loom)]
        loom::thread_local! {
            $(#[$attr])*
            static $name: $ty = $init;
        }
    };
}
#[cfg(feature = "std")]
pub(crate) use thread_local_unless_loom;

/// Declares a function `const` except under loom, whose locks and atomics
/// cannot be built in a `const` context. Write the function as usual,
/// `const` included, inside the macro.
macro_rules! const_fn_unless_loom {
    ($(#[$attr:meta])* $vis:vis const fn $($rest:tt)*) => {
        $(#[$attr])*
        #[cfg(not(loom))]
        $vis const fn $($rest)*

        $(#[$attr])*
        #[cfg(loom)]
        $vis fn $($rest)*
    };
}
pub(crate) use const_fn_unless_loom;

/// Lets another thread make progress while this one waits for it: a spin-loop
/// hint, or under loom a yield (so that a model explores the other thread
/// instead of spinning forever).
#[inline]
pub(crate) fn spin_wait() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// A mutual-exclusion lock with a `const` constructor, so caches can be
/// `static`. Builds without `std` use `spin_lock`'s instead, for size.
#[cfg(all(not(loom), not(feature = "critical-section"), feature = "std"))]
pub(crate) struct Mutex<T>(spin::mutex::SpinMutex<T>);

/// The guard returned by [`Mutex::lock`]; the lock is released when it drops.
#[cfg(all(not(loom), not(feature = "critical-section"), feature = "std"))]
pub(crate) type MutexGuard<'a, T> = spin::mutex::SpinMutexGuard<'a, T>;

#[cfg(all(not(loom), not(feature = "critical-section"), feature = "std"))]
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

/// The lock as loom sees it: loom's mutex for the ordering, loom's cell for
/// the data, so that loom checks each access to the data against the lock.
#[cfg(loom)]
pub(crate) struct Mutex<T> {
    held: loom::sync::Mutex<()>,
    data: loom::cell::UnsafeCell<T>,
}

// SAFETY: the mutex owns its `T`; sending the mutex sends the `T`.
#[cfg(loom)]
unsafe impl<T: Send> Send for Mutex<T> {}

// SAFETY: shared access reaches the `T` only through a guard, and a guard
// exists only while `held` is locked, so one thread at a time uses the `T`.
#[cfg(loom)]
unsafe impl<T: Send> Sync for Mutex<T> {}

/// Access to a [`Mutex`]'s data while its lock is held.
#[cfg(loom)]
pub(crate) struct MutexGuard<'a, T> {
    // Declared first, so dropped first: loom sees the access end before the
    // lock is released.
    data: loom::cell::MutPtr<T>,
    _held: loom::sync::MutexGuard<'a, ()>,
}

#[cfg(loom)]
impl<T> Mutex<T> {
    /// Wraps `value` in an unlocked mutex.
    pub(crate) fn new(value: T) -> Self {
        Self {
            held: loom::sync::Mutex::new(()),
            data: loom::cell::UnsafeCell::new(value),
        }
    }

    /// Waits until the lock is ours.
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        let held = self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        MutexGuard {
            data: self.data.get_mut(),
            _held: held,
        }
    }

    /// Takes the lock only if it is free right now.
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        let held = self.held.try_lock().ok()?;
        Some(MutexGuard {
            data: self.data.get_mut(),
            _held: held,
        })
    }

    /// Exclusive access without locking, for `Drop` and `&mut self` methods.
    pub(crate) fn get_mut(&mut self) -> &mut T {
        // SAFETY: `&mut self` rules out every other access to the cell for as
        // long as the returned borrow lives.
        self.data.with_mut(|data| unsafe { &mut *data })
    }
}

#[cfg(loom)]
impl<T> core::ops::Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no other guard reaches the
        // data; the borrow ends with `&self`, before the guard drops.
        unsafe { self.data.deref() }
    }
}

#[cfg(loom)]
impl<T> core::ops::DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`, and `&mut self` makes this borrow the only one.
        unsafe { self.data.deref() }
    }
}
