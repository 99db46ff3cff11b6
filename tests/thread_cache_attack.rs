//! Attacks on the per-thread caches (feature `std`): a cache dropped while
//! another thread still caches its slots, entries that change hands, page
//! sources that use other caches, counts across threads, double frees across
//! threads.
//!
//! Tests named `bug_*` demonstrate a bug in the crate as reviewed (they fail
//! until it is fixed); the others are regression tests that pass.

#![cfg(feature = "std")]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use common::{CountingPages, panics_naming};
use minimal_slab::typenum::U4096;
use minimal_slab::{
    CacheStats, GlobalPages, PageAllocError, PageAllocator, SlabBox, SlabCache,
};

const PAGE: usize = 4096;

/// 4 KiB pages from `System` that are never really freed while the page
/// source lives: a page given back is recorded but kept, untouched, so that a
/// test can see a slot of a page given back being handed out again without
/// corrupting the heap. Everything is freed when the page source drops.
struct Keeper {
    /// (page address, given back?)
    pages: Mutex<Vec<(usize, bool)>>,
    /// Pages given back that were not out, or twice.
    foreign: AtomicUsize,
}

impl Keeper {
    const fn new() -> Self {
        Self {
            pages: Mutex::new(Vec::new()),
            foreign: AtomicUsize::new(0),
        }
    }

    /// Whether `addr` lies in a page this source handed out and that was
    /// given back since.
    fn in_given_back_page(&self, addr: usize) -> bool {
        self.pages
            .lock()
            .unwrap()
            .iter()
            .any(|&(page, back)| back && (page..page + PAGE).contains(&addr))
    }

    /// Whether `addr` lies in any page this source handed out.
    fn in_any_page(&self, addr: usize) -> bool {
        self.pages
            .lock()
            .unwrap()
            .iter()
            .any(|&(page, _)| (page..page + PAGE).contains(&addr))
    }

    fn outstanding(&self) -> usize {
        self.pages.lock().unwrap().iter().filter(|p| !p.1).count()
    }

    const LAYOUT: Layout = match Layout::from_size_align(PAGE, PAGE) {
        Ok(l) => l,
        Err(_) => panic!(),
    };
}

impl Drop for Keeper {
    fn drop(&mut self) {
        for &(page, _) in self.pages.get_mut().unwrap().iter() {
            // SAFETY: allocated below with this layout, freed once.
            unsafe { System.dealloc(page as *mut u8, Self::LAYOUT) };
        }
    }
}

// SAFETY: pages are distinct `System` allocations of a page, aligned to it,
// and stay valid until the page source drops (after every cache using it).
unsafe impl PageAllocator for Keeper {
    type PageSize = U4096;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        // SAFETY: non-zero size.
        let page = NonNull::new(unsafe { System.alloc(Self::LAYOUT) }).ok_or(PageAllocError::OutOfMemory)?;
        self.pages.lock().unwrap().push((page.as_ptr() as usize, false));
        Ok(page)
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        let mut pages = self.pages.lock().unwrap();
        match pages
            .iter_mut()
            .find(|p| p.0 == page.as_ptr() as usize && !p.1)
        {
            Some(p) => p.1 = true,
            None => {
                self.foreign.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Counters that add up: every slot of every page held is in use, cached
/// or free.
fn assert_consistent(s: &CacheStats) {
    assert_eq!(
        s.objects_in_use + s.cached_slots + s.free_slots,
        s.pages * s.slots_per_slab,
        "{s:?}"
    );
}

/// How many caches a thread makes to be sure one of them lands on the
/// entry another cache used: tickets are handed out in turn (other tests of
/// this binary register too, hence the margin).
const COLLIDERS: usize = if cfg!(miri) { 40 } else { 200 };

/// BUG (use after free, every build): a cache is dropped while another
/// thread still caches its slots; that thread later uses a cache whose
/// entry is the same. `Entry::give_up` passes the magazine's slots to
/// `registry::give_up` as a *lazy* iterator, which returns without
/// consuming it when the ticket is retired: the slots stay in the magazine,
/// the key is cleared, and the new cache's `take` pops the dropped cache's
/// slots out of pages already given back.
#[test]
fn bug_slots_of_a_dropped_cache_are_handed_out_by_the_next_cache_on_their_entry() {
    let keeper: &'static Keeper = Box::leak(Box::new(Keeper::new()));
    let dropped = Arc::new(SlabCache::<u64, &'static Keeper>::new_in(keeper));
    let (to_worker, from_main) = mpsc::channel::<()>();
    let (to_main, from_worker) = mpsc::channel::<()>();
    let worker = {
        let dropped = Arc::clone(&dropped);
        thread::spawn(move || {
            // A refill: one slot in use, the rest of the batch cached here.
            drop(dropped.alloc(1).unwrap());
            assert!(dropped.stats().cached_slots > 0);
            drop(dropped);
            to_main.send(()).unwrap();
            from_main.recv().unwrap(); // the cache is gone now
            let fresh: Vec<SlabCache<u64>> = (0..COLLIDERS).map(|_| SlabCache::new()).collect();
            let mut stale = 0;
            let mut boxes = Vec::new();
            for cache in &fresh {
                let b = cache.alloc(7).unwrap();
                if keeper.in_given_back_page(SlabBox::as_ptr(&b) as usize) {
                    stale += 1;
                }
                boxes.push(b);
            }
            // Do not give the stale slots to the fresh caches' slabs.
            boxes.into_iter().for_each(|b| {
                SlabBox::into_raw(b);
            });
            std::mem::forget(fresh);
            stale
        })
    };
    from_worker.recv().unwrap();
    drop(Arc::into_inner(dropped).expect("the worker let go of it"));
    assert_eq!(keeper.outstanding(), 0, "every page went back");
    to_worker.send(()).unwrap();
    let stale = worker.join().unwrap();
    assert_eq!(
        stale, 0,
        "a fresh cache handed out {stale} slot(s) of a page the dropped cache gave back"
    );
}

/// Caches that a page source uses for its own bookkeeping: other caches than
/// the one it serves, which the `PageAllocator` contract allows.
static LOG_CACHES: Mutex<Vec<&'static SlabCache<u64>>> = Mutex::new(Vec::new());

/// A `Keeper` that, for each page it hands out, allocates (and frees) one
/// `u64` from every cache of `LOG_CACHES` — as a page source that logs into
/// typed caches would.
struct Logging(Keeper);

// SAFETY: forwards to `Keeper`; the logging touches only other caches.
unsafe impl PageAllocator for Logging {
    type PageSize = U4096;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        let caches = LOG_CACHES.lock().unwrap().clone();
        for cache in caches {
            drop(cache.alloc(0xFEED).unwrap());
        }
        self.0.allocate_page()
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        // SAFETY: the caller's guarantees.
        unsafe { self.0.deallocate_page(page) }
    }
}

/// BUG (two caches share a slot, every build): a refill calls the page
/// source, which may use another cache; if that cache's entry in this
/// thread's table is the refilling cache's, it claims the entry (and fills
/// it with its own slots) in the middle of the refill. `MagazineFront::refill`
/// then pushes the refilling cache's batch into the entry, now keyed by the
/// other cache: the other cache hands out slots of the first cache's pages
/// (and, freed, would put them in its own slabs).
#[test]
fn bug_a_page_source_using_another_cache_mid_refill_mixes_their_slots() {
    // Enough log caches, registered now, to cover every entry of a table.
    {
        let mut caches = LOG_CACHES.lock().unwrap();
        if caches.is_empty() {
            for _ in 0..if cfg!(miri) { 20 } else { 48 } {
                let cache: &'static SlabCache<u64> = Box::leak(Box::new(SlabCache::new()));
                drop(cache.alloc(0).unwrap());
                caches.push(cache);
            }
        }
    }
    let pages: &'static Logging = Box::leak(Box::new(Logging(Keeper::new())));
    let result = thread::spawn(move || {
        let cache: SlabCache<u64, &'static Logging> = SlabCache::new_in(pages);
        let first = cache.alloc(1).unwrap(); // a refill: a page, and the log
        let mut foreign = 0;
        // Checked builds may catch the mix-up when a foreign slot reaches
        // a log cache's slabs (as orphans): that panic is the bug too.
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for log in LOG_CACHES.lock().unwrap().iter() {
                for _ in 0..40 {
                    let b = log.alloc(2).unwrap();
                    if pages.0.in_any_page(SlabBox::as_ptr(&b) as usize) {
                        foreign += 1;
                    }
                    // Never freed: a foreign slot must not reach a log
                    // cache's slabs.
                    SlabBox::into_raw(b);
                }
            }
        }))
        .err()
        .map(|payload| {
            payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "<panic>".into())
        });
        drop(first);
        std::mem::forget(cache); // its slots are in another cache's hands
        (foreign, caught)
    })
    .join()
    .unwrap();
    assert_eq!(
        result,
        (0, None),
        "slot(s) of the refilled cache's page were handed out by (or freed into) another cache"
    );
}
