//! Caches moved between uses (into a `Box`, an `Arc`, a `Vec`), while
//! threads still cache their slots or pointers from `into_raw` wait: each
//! handle made afterwards must free into the cache where it now is.

mod common;

use std::ptr;
#[cfg(feature = "std")]
use std::sync::{Arc, mpsc};
use std::thread;

use minimal_slab::{SlabBox, SlabCache};

#[test]
fn handles_find_a_cache_that_moved_while_none_borrowed_it() {
    let cache: SlabCache<u64> = SlabCache::new();
    // Slots on a full slab, a partial one, in the thread's cache, and one
    // kept by address only: each must lead to the cache once it has moved.
    let kept: Vec<_> = (0..600)
        .map(|i| SlabBox::into_raw(cache.alloc(i).unwrap()))
        .collect();
    drop(cache.alloc(1000).unwrap());
    let moved = Box::new(cache);
    let fresh = moved.alloc(7).unwrap();
    assert!(ptr::eq(SlabBox::cache(&fresh), &*moved));
    let mut back: Vec<_> = kept
        .into_iter()
        // SAFETY: each pointer came from `into_raw` on this cache (before it
        // moved) and is rebuilt once.
        .map(|raw| unsafe { SlabBox::from_raw(&moved, raw) })
        .collect();
    for (i, handle) in back.iter().enumerate() {
        assert_eq!(**handle, i as u64);
        assert!(ptr::eq(SlabBox::cache(handle), &*moved));
    }
    back.truncate(100);
    drop(fresh);
    // Once more, out of the box and into a vector.
    drop(back);
    let mut shelf = vec![*moved];
    let last = shelf[0].alloc(9).unwrap();
    assert!(ptr::eq(SlabBox::cache(&last), &shelf[0]));
    assert_eq!(shelf[0].stats().objects_in_use, 1);
    drop(last);
    let cache = shelf.pop().unwrap();
    assert_eq!(cache.stats().objects_in_use, 0);
    cache.shrink();
    assert_eq!(cache.stats().pages, 0, "every page went back");
}

/// `std` only: without it, no thread caches slots.
#[cfg(feature = "std")]
#[test]
fn a_cache_moved_while_a_live_thread_caches_its_slots() {
    let (cached_tx, cached_rx) = mpsc::channel::<()>();
    let (moved_tx, moved_rx) = mpsc::channel::<Arc<SlabCache<[u64; 4]>>>();
    let first = Arc::new(SlabCache::<[u64; 4]>::new());
    let worker = {
        let first = Arc::clone(&first);
        thread::spawn(move || {
            // Free slots rest in this thread's cache after its handles go,
            // and stay there while the cache moves (the thread lives on).
            let held: Vec<_> = (0..20).map(|i| first.alloc([i; 4]).unwrap()).collect();
            drop(held);
            assert!(first.stats().cached_slots > 0);
            drop(first);
            cached_tx.send(()).unwrap();
            let moved = moved_rx.recv().unwrap();
            // These come from this thread's cache first: slots of slabs
            // whose headers were made before the move.
            let again: Vec<_> = (0..20).map(|i| moved.alloc([i; 4]).unwrap()).collect();
            for handle in &again {
                assert!(ptr::eq(SlabBox::cache(handle), &*moved));
            }
            drop(again);
            moved.flush_thread_cache();
        })
    };
    cached_rx.recv().unwrap();
    let cache = Arc::try_unwrap(first).unwrap_or_else(|_| panic!("the worker let go"));
    let moved = Arc::new(cache); // a new address
    moved_tx.send(Arc::clone(&moved)).unwrap();
    worker.join().unwrap();
    let stats = moved.stats();
    assert_eq!((stats.objects_in_use, stats.cached_slots), (0, 0));
}

#[test]
fn handles_sent_to_another_thread_free_into_their_cache() {
    static OBJECTS: SlabCache<String> = SlabCache::new();
    let made: Vec<_> = (0..1000)
        .map(|i| OBJECTS.alloc(i.to_string()).unwrap())
        .collect();
    let freed = thread::spawn(move || {
        let mut sum = 0;
        for handle in made {
            sum += handle.len();
        }
        OBJECTS.flush_thread_cache();
        sum
    })
    .join()
    .unwrap();
    assert_eq!(freed, 10 + 90 * 2 + 900 * 3);
    assert_eq!(OBJECTS.stats().objects_in_use, 0);
}

#[test]
fn a_zero_sized_handle_leads_to_its_cache() {
    let units: SlabCache<()> = SlabCache::new();
    let unit = units.alloc(()).unwrap();
    assert!(ptr::eq(SlabBox::cache(&unit), &units));
    assert_eq!(SlabBox::into_inner(unit), ());
    let moved = Box::new(units);
    let unit = moved.alloc(()).unwrap();
    assert!(ptr::eq(SlabBox::cache(&unit), &*moved));
    let raw = SlabBox::into_raw(unit);
    // SAFETY: `raw` came from `into_raw` on this cache; the one handle.
    let back = unsafe { SlabBox::from_raw(&moved, raw) };
    assert!(ptr::eq(SlabBox::cache(&back), &*moved));
    assert_eq!(
        moved.stats().objects_in_use,
        0,
        "zero-sized values take no slot"
    );
}

#[test]
fn an_over_aligned_zero_sized_value_still_allocates_and_drops() {
    #[derive(Debug, PartialEq)]
    #[repr(align(4096))]
    struct Page;
    let pages: SlabCache<Page> = SlabCache::new();
    let page = pages.alloc(Page).unwrap();
    assert_eq!(SlabBox::as_ptr(&page).addr() % 4096, 0);
    assert_eq!(SlabBox::into_inner(page), Page);
}
