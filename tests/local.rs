//! The per-thread fronts: `LocalCache` (typed) and `LocalAllocator` (raw).
//! Values intact, slots never handed out twice, refills and flushes in
//! batches, everything given back when a front is dropped, objects crossing
//! threads, and misuse caught in checked builds.

mod common;

use std::alloc::{Layout, System};
use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

#[cfg(any(debug_assertions, feature = "checked"))]
use common::panics_naming;
use common::{CountingPages, XorShift};
use minimal_slab::typenum::{U4, U8};
use minimal_slab::{
    AllocError, CacheConfig, ChunkedGlobalPages, GlobalPages, LocalAllocator, LocalBox, LocalCache,
    SlabAllocator, SlabBox, SlabCache,
};

const OPS: usize = if cfg!(miri) { 2_000 } else { 200_000 };

#[test]
fn a_local_cache_refills_in_batches_and_gives_everything_back_on_drop() {
    let pages = CountingPages::new(GlobalPages::new());
    let cache: SlabCache<[u64; 4], _> = SlabCache::new_in(&pages);
    let local = cache.local();
    let first = local.alloc([1; 4]).unwrap();
    assert_eq!(local.cached(), 15, "a refill takes half a 32-slot magazine");
    assert_eq!(
        cache.stats().objects_in_use,
        16,
        "cached slots count as in use"
    );
    drop(first);
    assert_eq!(local.cached(), 16);
    drop(local);
    assert_eq!(cache.stats().objects_in_use, 0);
    cache.shrink();
    assert_eq!(pages.outstanding(), 0);
}

#[test]
fn a_full_magazine_gives_half_back() {
    let cache: SlabCache<u64> = SlabCache::new();
    let local: LocalCache<'_, u64, _, U4> = LocalCache::new(&cache);
    let boxes: Vec<_> = (0..10).map(|i| local.alloc(i).unwrap()).collect();
    assert_eq!(boxes.iter().map(|b| **b).sum::<u64>(), 45);
    drop(boxes);
    assert!(local.cached() <= 4);
    assert_eq!(cache.stats().objects_in_use, local.cached());
    local.flush();
    assert_eq!((local.cached(), cache.stats().objects_in_use), (0, 0));
}

#[test]
fn random_local_traffic_keeps_values_and_never_hands_a_slot_out_twice() {
    let cache: SlabCache<[u64; 3]> = SlabCache::new();
    let local: LocalCache<'_, _, _, U8> = LocalCache::new(&cache);
    let mut rng = XorShift::new(7);
    let mut live: Vec<(u64, LocalBox<'_, '_, [u64; 3], _, U8>)> = Vec::new();
    let mut addresses = HashSet::new();
    for id in 0..OPS as u64 {
        if live.is_empty() || rng.percent(55) {
            let b = local.alloc([id, !id, id ^ 0xABCD]).unwrap();
            assert!(
                addresses.insert(LocalBox::as_ptr(&b).addr()),
                "handed out twice"
            );
            live.push((id, b));
        } else {
            let (id, b) = live.swap_remove(rng.below(live.len()));
            assert_eq!(*b, [id, !id, id ^ 0xABCD]);
            assert!(addresses.remove(&LocalBox::as_ptr(&b).addr()));
            if rng.percent(50) {
                assert_eq!(LocalBox::into_inner(b), [id, !id, id ^ 0xABCD]);
            }
        }
    }
    let held = live.len();
    assert_eq!(cache.stats().objects_in_use, held + local.cached());
    drop(live);
    drop(local);
    assert_eq!(cache.stats().objects_in_use, 0);
}

#[test]
fn a_failed_local_alloc_hands_the_value_back() {
    let cache: SlabCache<[u8; 1000]> = SlabCache::with_config(
        ChunkedGlobalPages::default(),
        CacheConfig::new().page_limit(1),
    );
    let local = cache.local();
    let per_page = SlabCache::<[u8; 1000]>::SLOTS_PER_SLAB;
    let held: Vec<_> = (0..per_page)
        .map(|i| local.alloc([i as u8; 1000]).unwrap())
        .collect();
    let failed = local.alloc([9; 1000]).unwrap_err();
    assert_eq!(failed.error(), AllocError::PageLimit { limit: 1 });
    assert_eq!(failed.into_value(), [9; 1000]);
    drop(held);
    assert_eq!(*local.alloc([3; 1000]).unwrap(), [3; 1000]);
}

#[test]
fn handles_cross_threads_and_come_home_to_another_front() {
    static CACHE: SlabCache<String> = SlabCache::new();
    let local = CACHE.local();
    let shared: Vec<_> = (0..100)
        .map(|i| LocalBox::into_shared(local.alloc(format!("job {i}")).unwrap()))
        .collect();
    let done = std::thread::spawn(move || {
        let theirs = CACHE.local();
        let mut total = 0;
        for job in shared {
            total += job.len();
            theirs.recycle(job); // the string is dropped, the slot stays here
        }
        (total, theirs.cached())
    })
    .join()
    .unwrap();
    assert_eq!(done.0, (0..100).map(|i| format!("job {i}").len()).sum());
    assert!(
        done.1 > 0,
        "recycled slots rest in the other thread's front"
    );
    assert_eq!(
        CACHE.stats().objects_in_use,
        local.cached(),
        "that front gave them back when its thread dropped it"
    );
    drop(local);
    assert_eq!(CACHE.stats().objects_in_use, 0);
}

#[test]
fn recycling_a_handle_of_another_cache_returns_it_to_that_cache() {
    let (home, other): (SlabCache<u64>, SlabCache<u64>) = (SlabCache::new(), SlabCache::new());
    let local = home.local();
    local.recycle(other.alloc(1).unwrap());
    assert_eq!(local.cached(), 0, "a foreign slot is not parked here");
    assert_eq!(
        other.stats().objects_in_use,
        0,
        "it went back to its own cache"
    );
    drop(local.alloc(5).unwrap());
    drop(local);
    assert_eq!(home.stats().objects_in_use, 0);
    assert_eq!(*other.alloc(2).unwrap(), 2);
}

#[test]
fn raw_pointers_come_back_through_any_front_of_their_cache() {
    let cache: SlabCache<[u64; 4]> = SlabCache::new();
    let (first, second) = (cache.local(), cache.local());
    let raws: Vec<_> = (0..100u64)
        .map(|i| LocalBox::into_raw(first.alloc([i; 4]).unwrap()))
        .collect();
    let shared = SlabBox::into_raw(cache.alloc([7; 4]).unwrap());
    assert_eq!(cache.stats().objects_in_use, 101 + first.cached());
    for (i, raw) in raws.into_iter().enumerate() {
        // SAFETY: each pointer came from `into_raw` on a handle of `cache`,
        // and is taken back once.
        let back = unsafe { LocalBox::from_raw(&second, raw) };
        assert_eq!(*back, [i as u64; 4]);
    }
    // SAFETY: as above, from a shared handle.
    let back = unsafe { LocalBox::from_raw(&first, shared) };
    assert_eq!(LocalBox::into_inner(back), [7; 4]);
    assert!(second.cached() > 0, "freed slots rest in the second front");
    drop((first, second));
    assert_eq!(cache.stats().objects_in_use, 0);
}

#[test]
fn a_panicking_destructor_still_returns_the_slot() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
            panic!("boom");
        }
    }
    let cache: SlabCache<(Bomb, u64)> = SlabCache::new();
    let local = cache.local();
    let b = local.alloc((Bomb, 1)).unwrap();
    let cached = local.cached();
    assert!(catch_unwind(AssertUnwindSafe(|| drop(b))).is_err());
    assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    assert_eq!(
        local.cached(),
        cached + 1,
        "the slot is back in the magazine"
    );
}

#[test]
fn zero_sized_values_take_no_slot() {
    let cache: SlabCache<()> = SlabCache::new();
    let local = cache.local();
    let units: Vec<_> = (0..100).map(|_| local.alloc(()).unwrap()).collect();
    assert_eq!((local.cached(), cache.stats().pages), (0, 0));
    drop(units);
}

#[test]
fn four_threads_with_their_own_fronts_share_one_cache() {
    static CACHE: SlabCache<[u64; 2]> = SlabCache::new();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let local = CACHE.local();
                let mut rng = XorShift::new(t + 1);
                let mut live = Vec::new();
                for i in 0..OPS as u64 / 4 {
                    if live.is_empty() || rng.percent(50) {
                        live.push(local.alloc([t, i]).unwrap());
                    } else {
                        let b = live.swap_remove(rng.below(live.len()));
                        assert_eq!(b[0], t, "another thread's value in our slot");
                    }
                }
                live.len()
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(CACHE.stats().objects_in_use, 0);
    CACHE.shrink();
    assert_eq!(CACHE.stats().pages, 0);
}

#[test]
fn a_local_allocator_serves_every_class_and_the_fallback() {
    let pages = CountingPages::new(GlobalPages::new());
    let heap = SlabAllocator::new_in(&pages, System);
    let local: LocalAllocator<'_, _, _> = heap.local();
    let mut rng = XorShift::new(3);
    let mut live: Vec<(NonNull<u8>, Layout, u8)> = Vec::new();
    for i in 0..OPS / 2 {
        if live.is_empty() || rng.percent(55) {
            let layout = Layout::from_size_align(rng.range(1, 400), 1 << rng.below(4)).unwrap();
            let p = local.allocate(layout).unwrap();
            assert_eq!(p.as_ptr().addr() % layout.align(), 0);
            // SAFETY: `p` is valid for `layout.size()` bytes and ours.
            unsafe { p.as_ptr().write_bytes(i as u8, layout.size()) };
            live.push((p, layout, i as u8));
        } else {
            let (p, layout, byte) = live.swap_remove(rng.below(live.len()));
            // SAFETY: written above, still ours.
            let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), layout.size()) };
            assert!(bytes.iter().all(|&b| b == byte), "a block was overwritten");
            // SAFETY: allocated from `local` with `layout`, freed once.
            unsafe { local.deallocate(p, layout) };
        }
    }
    for (p, layout, _) in live.drain(..) {
        // SAFETY: allocated from `local` with `layout`, freed once.
        unsafe { local.deallocate(p, layout) };
    }
    drop(local);
    assert_eq!(heap.stats().objects_in_use(), 0);
    assert_eq!(heap.stats().fallback_allocations, 0);
    heap.shrink_to_fit();
    assert_eq!(pages.outstanding(), 0);
}

#[test]
fn blocks_move_between_fronts_and_resize() {
    let heap = SlabAllocator::new();
    let (a, b) = (heap.local(), heap.local());
    let small = Layout::new::<[u8; 20]>();
    let p = a.allocate(small).unwrap();
    // SAFETY: `p` is valid for 20 bytes.
    unsafe { p.as_ptr().write_bytes(5, 20) };
    // SAFETY: allocated with `small`; 30 bytes stay in the 32-byte class.
    let same = unsafe { a.reallocate(p, small, 30) }.unwrap();
    assert_eq!(same, p, "in place within the class");
    // SAFETY: now 30 bytes with `small`'s alignment.
    let grown = unsafe { b.reallocate(same, Layout::new::<[u8; 30]>(), 100) }.unwrap();
    // SAFETY: the block holds 100 bytes, the first 20 kept from before.
    let kept = unsafe { std::slice::from_raw_parts(grown.as_ptr(), 20) };
    assert!(kept.iter().all(|&x| x == 5));
    // SAFETY: 100 bytes now; freed on a third front.
    unsafe { heap.local().deallocate(grown, Layout::new::<[u8; 100]>()) };
    drop((a, b));
    assert_eq!(heap.stats().objects_in_use(), 0);
}

#[cfg(any(debug_assertions, feature = "checked"))]
mod misuse {
    use super::*;

    /// Frees a block when dropped — also while a test unwinds from the
    /// expected panic, so that nothing leaks.
    struct Owned<'a>(&'a LocalAllocator<'a>, NonNull<u8>, Layout);

    impl Drop for Owned<'_> {
        fn drop(&mut self) {
            // SAFETY: allocated from this front with this layout; the misuse
            // in the test was rejected without freeing it, so this is the one
            // free.
            unsafe { self.0.deallocate(self.1, self.2) };
        }
    }

    #[test]
    #[should_panic(expected = "double free")]
    fn freeing_twice_into_a_magazine_panics() {
        let heap = SlabAllocator::new();
        let local = heap.local();
        let l = Layout::new::<u64>();
        let p = local.allocate(l).unwrap();
        // SAFETY: allocated with `l`, freed once.
        unsafe { local.deallocate(p, l) };
        // SAFETY: deliberate misuse, caught before the slot is parked twice.
        unsafe { local.deallocate(p, l) };
    }

    #[test]
    #[should_panic(expected = "wrong layout")]
    fn freeing_with_another_class_panics() {
        let heap = SlabAllocator::new();
        let local = heap.local();
        let l = Layout::new::<[u8; 64]>();
        let block = Owned(&local, local.allocate(l).unwrap(), l);
        // SAFETY: deliberate misuse: the layout of another size class;
        // checked against the slab header before anything changes.
        unsafe { local.deallocate(block.1, Layout::new::<[u8; 8]>()) };
    }

    #[test]
    #[should_panic(expected = "double free")]
    fn taking_a_raw_pointer_back_twice_panics() {
        let cache: SlabCache<u64> = SlabCache::new();
        let local = cache.local();
        let raw = LocalBox::into_raw(local.alloc(1).unwrap());
        // SAFETY: from `into_raw` on this cache, taken back once here.
        drop(unsafe { LocalBox::from_raw(&local, raw) });
        // SAFETY: deliberate misuse: the slot is already in the magazine;
        // checked builds reject it before it is parked twice.
        drop(unsafe { LocalBox::from_raw(&local, raw) });
    }

    #[test]
    #[should_panic(expected = "foreign pointer")]
    fn a_block_of_another_allocator_panics() {
        let (home, elsewhere) = (SlabAllocator::new(), SlabAllocator::new());
        let (here, there) = (home.local(), elsewhere.local());
        let l = Layout::new::<[u8; 32]>();
        let _warm = Owned(&there, there.allocate(l).unwrap(), l);
        let block = Owned(&here, here.allocate(l).unwrap(), l);
        // SAFETY: deliberate misuse: the block belongs to `home`; checked
        // builds reject it before anything changes.
        unsafe { there.deallocate(block.1, l) };
    }

    #[test]
    #[should_panic(expected = "foreign pointer")]
    #[cfg_attr(miri, ignore = "the foreign slot is never freed, so its page leaks")]
    fn a_raw_pointer_of_another_cache_panics() {
        let (home, elsewhere): (SlabCache<u64>, SlabCache<u64>) =
            (SlabCache::new(), SlabCache::new());
        let local = home.local();
        let _warm = local.alloc(1).unwrap();
        let raw = SlabBox::into_raw(elsewhere.alloc(2).unwrap());
        // SAFETY: deliberate misuse: the slot belongs to `elsewhere`; checked
        // builds reject it before it reaches `home`'s slabs.
        drop(unsafe { LocalBox::from_raw(&local, raw) });
        local.flush();
    }

    #[test]
    #[should_panic(expected = "write after free")]
    #[cfg_attr(miri, ignore = "the corrupted slot is never reused, so its page leaks")]
    fn a_write_into_a_cached_slot_is_caught_when_it_is_handed_out() {
        let heap = SlabAllocator::new();
        let local = heap.local();
        let l = Layout::new::<[u8; 48]>();
        let p = local.allocate(l).unwrap();
        // SAFETY: allocated with `l`, freed once.
        unsafe { local.deallocate(p, l) };
        // SAFETY: deliberate misuse: a write into the freed block, which
        // rests, poisoned, in the magazine.
        unsafe { p.as_ptr().wrapping_add(40).write(1) };
        let _ = local.allocate(l); // the same slot comes back: caught
    }

    #[test]
    #[cfg_attr(miri, ignore = "the corrupted slot is never reused, so its page leaks")]
    fn a_write_into_a_cached_slot_is_reported_once_by_a_flush() {
        let heap = SlabAllocator::new();
        let local = heap.local();
        let l = Layout::new::<[u8; 48]>();
        let blocks: Vec<_> = (0..3).map(|_| local.allocate(l).unwrap()).collect();
        for &p in &blocks {
            // SAFETY: allocated with `l`, freed once.
            unsafe { local.deallocate(p, l) };
        }
        // SAFETY: deliberate misuse: a write into a freed block resting,
        // poisoned, in the magazine (the most recent: drained first).
        unsafe { blocks[2].as_ptr().wrapping_add(40).write(1) };
        assert!(common::panics_naming("write after free", || local.flush()));
        // Reported once: the damaged slot is kept by no one, the others are
        // back in the allocator, and the front flushes and drops quietly.
        assert_eq!(local.cached(), 0);
        local.flush();
        drop(local);
        assert_eq!(heap.stats().objects_in_use(), 1, "only the damaged slot");
    }

    // ------------------------------------------------------ caught at once
    //
    // `LocalAllocator::deallocate` documents that checked builds catch a
    // pointer of another allocator or size class, and a second free into
    // the same magazine, "at once". A flush finds the same misuse later, with
    // the same message, so these tests run only the misusing call inside
    // `panics_naming`, with room in the magazine (so that the call cannot
    // flush). Should the check go missing, the bad pointer rests in the
    // front's magazine: the test forgets the front, so that no flush trips
    // over it while the test fails.

    /// A magazine's capacity in the default fronts.
    const CAPACITY: usize = 32;

    #[test]
    fn a_block_of_another_allocator_panics_in_that_very_deallocate() {
        let (home, elsewhere) = (SlabAllocator::new(), SlabAllocator::new());
        let (here, there) = (home.local(), elsewhere.local());
        let l = Layout::new::<[u8; 32]>();
        let warm = there.allocate(l).unwrap();
        let block = here.allocate(l).unwrap();
        assert!(there.cached() < CAPACITY, "room: this free cannot flush");
        // SAFETY: deliberate misuse: the block belongs to `home`; checked
        // builds reject it before it is parked.
        let misuse = || unsafe { there.deallocate(block, l) };
        if !panics_naming("foreign pointer", misuse) {
            std::mem::forget(there);
            panic!("a block of another allocator was parked in the magazine, not caught at once");
        }
        // SAFETY: allocated from `there` with `l`, freed once.
        unsafe { there.deallocate(warm, l) };
        // SAFETY: allocated from `here` with `l`; the rejected free did not
        // free it, so this is the one free.
        unsafe { here.deallocate(block, l) };
        drop((here, there));
        assert_eq!(home.stats().objects_in_use(), 0);
        assert_eq!(elsewhere.stats().objects_in_use(), 0);
    }

    #[test]
    fn a_free_with_another_class_panics_in_that_very_deallocate() {
        let heap = SlabAllocator::new();
        let local = heap.local();
        let l = Layout::new::<[u8; 64]>();
        let block = local.allocate(l).unwrap();
        assert!(local.cached() < CAPACITY, "room: this free cannot flush");
        // SAFETY: deliberate misuse: the layout of the 8-byte class, checked
        // against the slab header before the block is parked.
        let misuse = || unsafe { local.deallocate(block, Layout::new::<[u8; 8]>()) };
        if !panics_naming("wrong layout", misuse) {
            std::mem::forget(local);
            panic!("a free with another class's layout was parked, not caught at once");
        }
        // SAFETY: allocated from `local` with `l`; the rejected free did not
        // free it, so this is the one free.
        unsafe { local.deallocate(block, l) };
        drop(local);
        assert_eq!(heap.stats().objects_in_use(), 0);
    }

    #[test]
    fn a_second_free_into_the_magazine_panics_in_that_very_deallocate() {
        let heap = SlabAllocator::new();
        let local = heap.local();
        let l = Layout::new::<u64>();
        let p = local.allocate(l).unwrap();
        // SAFETY: allocated with `l`, freed once.
        unsafe { local.deallocate(p, l) };
        let cached = local.cached();
        assert!(cached < CAPACITY, "room: this free cannot flush");
        // SAFETY: deliberate misuse: `p` rests in the magazine; checked
        // builds reject it before it is parked twice.
        let misuse = || unsafe { local.deallocate(p, l) };
        if !panics_naming("double free", misuse) {
            std::mem::forget(local);
            panic!("a second free was parked in the magazine, not caught at once");
        }
        assert_eq!(local.cached(), cached, "parked once");
        drop(local);
        assert_eq!(heap.stats().objects_in_use(), 0);
    }

    #[test]
    fn taking_a_raw_pointer_back_twice_panics_in_that_very_drop() {
        let cache: SlabCache<u64> = SlabCache::new();
        let local = cache.local();
        let raw = LocalBox::into_raw(local.alloc(1).unwrap());
        // SAFETY: from `into_raw` on this cache, taken back once here.
        drop(unsafe { LocalBox::from_raw(&local, raw) });
        let cached = local.cached();
        assert!(cached < CAPACITY, "room: this free cannot flush");
        // SAFETY: deliberate misuse: the slot is already in the magazine;
        // `u64` has no destructor, and checked builds reject the slot before
        // it is parked twice.
        let misuse = || drop(unsafe { LocalBox::from_raw(&local, raw) });
        if !panics_naming("double free", misuse) {
            std::mem::forget(local);
            panic!("a second free was parked in the magazine, not caught at once");
        }
        assert_eq!(local.cached(), cached, "parked once");
        drop(local);
        assert_eq!(cache.stats().objects_in_use, 0);
    }

    #[test]
    fn a_block_freed_into_two_fronts_panics_in_the_second_deallocate() {
        let heap = SlabAllocator::new();
        let (first, second) = (heap.local(), heap.local());
        let l = Layout::new::<[u8; 16]>();
        let keep = first.allocate(l).unwrap(); // keeps the slab in use
        let p = first.allocate(l).unwrap();
        // SAFETY: allocated from a front of `heap` with `l`, freed once.
        unsafe { first.deallocate(p, l) };
        assert!(second.cached() < CAPACITY, "room: this free cannot flush");
        // SAFETY: deliberate misuse: `p` rests in the first front's
        // magazine; checked builds reject it before the second parks it.
        let misuse = || unsafe { second.deallocate(p, l) };
        if !panics_naming("double free", misuse) {
            std::mem::forget((first, second));
            panic!("a block freed into two fronts was not caught by the second free");
        }
        assert_eq!(second.cached(), 0, "not parked");
        // SAFETY: allocated from a front of `heap` with `l`, freed once.
        unsafe { first.deallocate(keep, l) };
        drop((first, second));
        assert_eq!(heap.stats().objects_in_use(), 0);
    }

    #[test]
    fn a_slot_freed_again_after_its_front_flushed_panics_in_that_drop() {
        let cache: SlabCache<u64> = SlabCache::new();
        let local = cache.local();
        let keep = local.alloc(0).unwrap(); // keeps the slab in use
        let raw = LocalBox::into_raw(local.alloc(1).unwrap());
        // SAFETY: from `into_raw` on this cache, taken back once here.
        drop(unsafe { LocalBox::from_raw(&local, raw) });
        local.flush();
        // SAFETY: deliberate misuse: the slot is back in its slab; `u64`
        // has no destructor, and checked builds reject the second free
        // before the slot is parked.
        let misuse = || drop(unsafe { LocalBox::from_raw(&local, raw) });
        if !panics_naming("double free", misuse) {
            std::mem::forget(keep);
            std::mem::forget(local);
            panic!("a slot freed again after a flush was not caught by that drop");
        }
        assert_eq!(local.cached(), 0, "not parked");
        drop(keep);
        drop(local);
        assert_eq!(cache.stats().objects_in_use, 0);
    }
}
