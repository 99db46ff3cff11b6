//! The `critical-section` feature: every lock the crate takes is a critical
//! section of the implementation the program links.
//!
//! This test program links its own implementation, `Counting`: a real
//! critical section (one process-wide lock, re-entrant on the thread that
//! holds it, as `critical-section`'s contract allows nesting) that also
//! counts, per thread, the sections entered and left, the deepest nesting,
//! and every section left out of order (a release whose token is not the
//! innermost open section's).
//!
//! - Each operation of a typed cache, a size-class allocator and a region
//!   enters exactly the sections its locks account for, leaves each of them,
//!   in last-in, first-out order; growing a cache nests the region's lock
//!   inside the cache's.
//! - Threads sharing one cache are kept apart by the critical section alone
//!   (the spin lock is not built): values and counts come out whole.
//! - A panic hook that prints a cache whose lock its own thread holds gets
//!   `<locked>`, not a second `&mut` to the cache.
//!
//! Run with `cargo test --no-default-features --features critical-section
//! --test critical_section`: without the `std` feature, whose per-thread
//! caches take no lock on most calls, so that the counts are the locks
//! firmware takes.
#![cfg(all(feature = "critical-section", not(feature = "std")))]

use std::cell::{Cell, RefCell};
use std::mem::MaybeUninit;
use std::panic::{self, AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;

use minimal_slab::typenum::U4096;
use minimal_slab::{PageAllocError, PageAllocator, RegionPages, SlabAllocator, SlabCache};

/// The one lock behind every critical section of the process.
static SECTION: Mutex<()> = Mutex::new(());

/// What one thread's critical sections did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Counts {
    /// Sections entered (each `acquire`).
    entered: usize,
    /// Sections left (each `release`).
    left: usize,
    /// Sections open now.
    depth: u32,
    /// The most sections open at once.
    deepest: u32,
    /// Releases whose token was not the innermost open section's.
    out_of_order: usize,
}

thread_local! {
    static COUNTS: Cell<Counts> = Cell::new(Counts::default());
    static HELD: RefCell<Option<MutexGuard<'static, ()>>> = const { RefCell::new(None) };
}

struct Counting;
critical_section::set_impl!(Counting);

// SAFETY: `SECTION` is taken by the outermost `acquire` of a thread and given
// up by the matching `release`, so sections of different threads exclude
// each other, with the mutex's acquire/release ordering; nested sections of
// one thread only count.
unsafe impl critical_section::Impl for Counting {
    unsafe fn acquire() -> u32 {
        let mut counts = COUNTS.get();
        if counts.depth == 0 {
            let guard = SECTION.lock().unwrap_or_else(PoisonError::into_inner);
            HELD.with_borrow_mut(|held| *held = Some(guard));
        }
        let token = counts.depth;
        counts.entered += 1;
        counts.depth += 1;
        counts.deepest = counts.deepest.max(counts.depth);
        COUNTS.set(counts);
        token
    }

    unsafe fn release(token: u32) {
        let mut counts = COUNTS.get();
        counts.left += 1;
        if counts.depth.checked_sub(1) != Some(token) {
            counts.out_of_order += 1;
        }
        counts.depth = token;
        COUNTS.set(counts);
        if token == 0 {
            HELD.with_borrow_mut(|held| drop(held.take()));
        }
    }
}

/// Runs `op` and returns what it did to this thread's critical sections,
/// after checking that it left every section it entered, in order.
fn sections_of<R>(op: impl FnOnce() -> R) -> (R, Counts) {
    let before = COUNTS.get();
    assert_eq!(before.depth, 0, "a section was open before the operation");
    COUNTS.set(Counts {
        deepest: 0,
        ..before
    });
    let result = op();
    let after = COUNTS.get();
    let done = Counts {
        entered: after.entered - before.entered,
        left: after.left - before.left,
        depth: after.depth,
        deepest: after.deepest,
        out_of_order: after.out_of_order - before.out_of_order,
    };
    assert_eq!(done.depth, 0, "a section was left open: {done:?}");
    assert_eq!(done.entered, done.left, "{done:?}");
    assert_eq!(done.out_of_order, 0, "sections left out of order: {done:?}");
    (result, done)
}

/// A region of `pages` 4 KiB pages, leaked for the test's lifetime.
fn region(pages: usize) -> RegionPages {
    let memory = vec![MaybeUninit::<u8>::uninit(); (pages + 1) * 4096].leak();
    RegionPages::new(memory)
}

type Object = [u64; 4];

#[test]
fn each_typed_cache_operation_takes_its_locks_as_critical_sections() {
    let pages = region(4);
    let cache = SlabCache::<Object, _>::new_in(&pages);

    // The first object grows the cache: the region's lock inside the cache's.
    let (first, done) = sections_of(|| cache.alloc([1; 4]).unwrap());
    assert_eq!((done.entered, done.deepest), (2, 2), "{done:?}");

    // The next ones come from the same slab: the cache's lock alone.
    let (second, done) = sections_of(|| cache.alloc([2; 4]).unwrap());
    assert_eq!((done.entered, done.deepest), (1, 1), "{done:?}");
    assert_eq!((*first, *second), ([1; 4], [2; 4]));

    let ((), done) = sections_of(|| drop(second));
    assert_eq!((done.entered, done.deepest), (1, 1), "{done:?}");
    let ((), done) = sections_of(|| drop(first));
    assert_eq!((done.entered, done.deepest), (1, 1), "{done:?}");

    let (stats, done) = sections_of(|| cache.stats());
    assert_eq!(done.entered, 1, "{done:?}");
    assert_eq!(stats.objects_in_use, 0);

    // Shrinking gives the kept page back: the region's lock inside again.
    let available = pages.available();
    let (released, done) = sections_of(|| cache.shrink());
    assert_eq!(released, 1);
    assert_eq!(done.deepest, 2, "{done:?}");
    assert_eq!(pages.available(), available + 1);
}

#[test]
fn the_size_class_allocator_and_the_region_lock_through_critical_sections() {
    let pages = region(4);
    let heap = SlabAllocator::new_in(&pages, minimal_slab::NoFallback);
    let layout = std::alloc::Layout::new::<Object>();

    let (block, done) = sections_of(|| heap.allocate(layout).unwrap());
    assert_eq!((done.entered, done.deepest), (2, 2), "{done:?}");
    let (again, done) = sections_of(|| heap.allocate(layout).unwrap());
    assert_eq!((done.entered, done.deepest), (1, 1), "{done:?}");
    for ptr in [block, again] {
        let ((), done) = sections_of(|| {
            // SAFETY: `ptr` came from `heap.allocate(layout)` and is freed once.
            unsafe { heap.deallocate(ptr, layout) }
        });
        assert_eq!((done.entered, done.deepest), (1, 1), "{done:?}");
    }

    let (available, done) = sections_of(|| pages.available());
    assert_eq!(done.entered, 1, "{done:?}");
    assert_eq!(
        available, 3,
        "one of the region's 4 pages is held by the heap"
    );
}

#[test]
fn threads_sharing_a_cache_are_kept_apart_by_the_critical_section() {
    static PAGES: RegionPages = RegionPages::empty();
    static CACHE: SlabCache<Object, &RegionPages> = SlabCache::new_in(&PAGES);
    PAGES.add_memory(vec![MaybeUninit::uninit(); 9 * 4096].leak());

    const THREADS: u64 = 4;
    const ROUNDS: u64 = if cfg!(miri) { 50 } else { 5_000 };
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                let mut held = Vec::new();
                for round in 0..ROUNDS {
                    let value = [t, round, t ^ round, !round];
                    held.push((value, CACHE.alloc(value).unwrap()));
                    if round % 3 == 2 || round == ROUNDS - 1 {
                        for (value, object) in held.drain(..) {
                            assert_eq!(*object, value);
                        }
                    }
                }
                COUNTS.get()
            })
        })
        .collect();
    for worker in workers {
        let counts = worker.join().unwrap();
        // One section per alloc and per free, and some to grow.
        assert!(counts.entered >= 2 * ROUNDS as usize, "{counts:?}");
        assert_eq!((counts.depth, counts.out_of_order), (0, 0), "{counts:?}");
    }
    assert_eq!(CACHE.stats().objects_in_use, 0);
}

/// Pages from a region, or a panic while the asking cache holds its lock.
struct Refusing(RegionPages);

// SAFETY: pages come from the region, which upholds the contract; the panic
// is allowed by it.
unsafe impl PageAllocator for Refusing {
    type PageSize = U4096;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        panic!("no pages today");
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        // SAFETY: the caller's guarantees, passed on.
        unsafe { self.0.deallocate_page(page) }
    }
}

#[test]
fn a_panic_hook_printing_a_locked_cache_gets_locked_not_a_second_borrow() {
    static CACHE: SlabCache<Object, Refusing> = SlabCache::new_in(Refusing(RegionPages::empty()));
    static PRINTED: Mutex<String> = Mutex::new(String::new());

    let previous = panic::take_hook();
    panic::set_hook(Box::new(|_| {
        // The cache's lock is held by this very thread, in `alloc`.
        *PRINTED.lock().unwrap() = format!("{CACHE:?}");
    }));
    let outcome = catch_unwind(AssertUnwindSafe(|| sections_of(|| CACHE.alloc([0; 4]))));
    panic::set_hook(previous);

    assert!(outcome.is_err(), "the page source panics");
    let printed = PRINTED.lock().unwrap().clone();
    assert!(printed.contains("<locked>"), "{printed}");
    // Unwinding left every section it entered.
    assert_eq!(COUNTS.get().depth, 0);
    // And the cache works once the page source does not panic.
    let (stats, _) = sections_of(|| CACHE.stats());
    assert_eq!(stats.objects_in_use, 0);
}
