//! Thread safety: one `SlabCache` or `SlabAllocator` shared by several
//! threads never hands a slot to two owners at once and never disturbs a live
//! value; handles and blocks allocated on one thread can be freed on another;
//! the counters balance afterwards; and the types are `Send`/`Sync` as the
//! docs promise.

mod common;

use std::alloc::{Layout, System};
use std::collections::BTreeSet;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::mpsc;
use std::thread;

use common::{XorShift, fill, verify};
use minimal_slab::{
    GlobalAllocPages, GlobalPages, NoPages, RegionPages, SlabAllocator, SlabBox, SlabCache,
};

const THREADS: usize = 4;
/// Operations per thread (Miri runs a small sample).
const OPS: usize = if cfg!(miri) { 300 } else { 100_000 };

fn assert_send<T: Send>() {}
fn assert_sync<T: Sync>() {}

#[test]
fn caches_handles_and_allocators_are_send_and_sync() {
    assert_sync::<SlabCache<u64>>();
    assert_send::<SlabCache<u64>>();
    assert_send::<SlabBox<'static, u64>>();
    assert_sync::<SlabBox<'static, u64>>();
    assert_sync::<SlabCache<String, &'static RegionPages>>();
    assert_send::<SlabBox<'static, Vec<u8>, &'static RegionPages>>();
    assert_sync::<SlabCache<u64, NoPages>>();
    assert_sync::<SlabAllocator>();
    assert_send::<SlabAllocator>();
    assert_sync::<SlabAllocator<GlobalAllocPages<System>, System>>();
    assert_sync::<RegionPages>();
    assert_send::<RegionPages>();
}

/// The value thread `thread` stores as its `seq`-th object.
fn stamp(thread: usize, seq: u64) -> [u64; 4] {
    let t = thread as u64;
    [
        t,
        seq,
        !seq,
        (t << 56) ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15),
    ]
}

#[test]
fn a_shared_cache_never_hands_a_slot_to_two_threads() {
    let cache: SlabCache<[u64; 4]> = SlabCache::new();
    // Addresses of all live objects, across threads: inserted after alloc,
    // removed before free, so a slot handed out twice is caught at once.
    let live_addrs = Mutex::new(BTreeSet::new());

    thread::scope(|s| {
        for t in 0..THREADS {
            let (cache, live_addrs) = (&cache, &live_addrs);
            s.spawn(move || {
                let mut rng = XorShift::new(0xC0FF_EE00 + t as u64);
                let mut live: Vec<(u64, SlabBox<'_, [u64; 4]>)> = Vec::new();
                for seq in 0..OPS as u64 {
                    let grow = (seq / 5_000) % 2 == 0;
                    if live.is_empty() || rng.percent(if grow { 60 } else { 40 }) {
                        let b = cache.alloc(stamp(t, seq)).unwrap();
                        let addr = SlabBox::as_ptr(&b).addr();
                        assert!(
                            live_addrs.lock().unwrap().insert(addr),
                            "slot {addr:#x} handed out while live"
                        );
                        live.push((seq, b));
                    } else {
                        let (seq, b) = live.swap_remove(rng.below(live.len()));
                        assert_eq!(*b, stamp(t, seq), "thread {t}: object {seq} changed");
                        assert!(
                            live_addrs
                                .lock()
                                .unwrap()
                                .remove(&SlabBox::as_ptr(&b).addr())
                        );
                        drop(b);
                    }
                    if seq % 10_000 == 0 {
                        for (seq, b) in &live {
                            assert_eq!(**b, stamp(t, *seq), "thread {t}: object {seq} changed");
                        }
                    }
                }
                for (seq, b) in live {
                    assert_eq!(*b, stamp(t, seq));
                    assert!(
                        live_addrs
                            .lock()
                            .unwrap()
                            .remove(&SlabBox::as_ptr(&b).addr())
                    );
                }
            });
        }
    });

    assert!(live_addrs.lock().unwrap().is_empty());
    let stats = settled(&cache);
    assert_eq!(stats.objects_in_use, 0);
    assert_eq!(stats.free_slots, stats.pages * stats.slots_per_slab);
    assert_eq!(
        stats.empty_slabs, stats.pages,
        "every page kept (the reserve, the recent peak) is empty: {stats:?}"
    );
    cache.shrink();
    assert_eq!(cache.stats().pages, 0);
}

/// The cache's counters once every exited thread's cached slots are back
/// (`std`): scoped threads run their thread-local destructors, which give
/// the slots up, a moment after the scope has ended; `stats` takes them
/// back into the slabs.
fn settled<T>(cache: &SlabCache<T>) -> minimal_slab::CacheStats {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let stats = cache.stats();
        // Every thread's cache is back; whole batches they gave back before
        // may wait in the depot, which `flush_thread_cache` empties.
        if stats.cached_slots == stats.depot_slots {
            cache.flush_thread_cache();
            return cache.stats();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "exited threads gave their cached slots back: {stats:?}"
        );
        thread::yield_now();
    }
}

#[test]
fn handles_can_be_dropped_on_another_thread() {
    let cache: SlabCache<[u64; 4]> = SlabCache::new();
    const PRODUCERS: usize = 2;

    thread::scope(|s| {
        for t in 0..PRODUCERS {
            let cache = &cache;
            let (tx, rx) = mpsc::sync_channel::<(u64, SlabBox<'_, [u64; 4]>)>(256);
            // The consumer checks and frees what the producer allocated.
            s.spawn(move || {
                let mut received = 0;
                for (seq, b) in rx {
                    assert_eq!(*b, stamp(t, seq), "object {seq} of thread {t} changed");
                    if seq % 2 == 0 {
                        drop(b);
                    } else {
                        assert_eq!(SlabBox::into_inner(b), stamp(t, seq));
                    }
                    received += 1;
                }
                assert!(received > 0);
            });
            s.spawn(move || {
                let mut rng = XorShift::new(0xFEED + t as u64);
                let mut kept = Vec::new();
                for seq in 0..OPS as u64 {
                    let b = cache.alloc(stamp(t, seq)).unwrap();
                    if rng.percent(50) {
                        tx.send((seq, b)).unwrap();
                    } else {
                        kept.push((seq, b));
                        if kept.len() > 64 {
                            let (seq, b) = kept.swap_remove(rng.below(kept.len()));
                            assert_eq!(*b, stamp(t, seq));
                        }
                    }
                }
                for (seq, b) in kept {
                    assert_eq!(*b, stamp(t, seq));
                }
            });
        }
    });

    let stats = settled(&cache);
    assert_eq!(stats.objects_in_use, 0);
    assert_eq!(stats.pages, stats.empty_slabs);
    assert_eq!(cache.shrink(), stats.pages);
    assert_eq!(cache.stats().pages, 0);
}

/// A raw block in flight between threads.
struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
    id: u64,
}

// SAFETY: a `Block` is the sole owner of its memory, which the shared
// allocator (itself `Sync`) lets any thread free.
unsafe impl Send for Block {}

fn random_layout(rng: &mut XorShift) -> Layout {
    let (size, align) = if rng.percent(2) {
        (rng.range(257, 2048), 1 << rng.below(6))
    } else {
        let size = rng.range(1, 256);
        let class = size.max(8).next_power_of_two();
        (size, 1 << rng.below(class.trailing_zeros() as usize + 1))
    };
    Layout::from_size_align(size, align).unwrap()
}

#[test]
fn a_shared_allocator_keeps_every_threads_blocks_intact() {
    let heap = SlabAllocator::new_in(GlobalPages::new(), System);

    // Threads in a ring: each sends some of its blocks to the next to free.
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..THREADS).map(|_| mpsc::channel::<Block>()).unzip();
    let mut senders: Vec<Option<mpsc::Sender<Block>>> = senders.into_iter().map(Some).collect();
    senders.rotate_left(1);

    thread::scope(|s| {
        for (t, (tx, rx)) in senders.iter_mut().zip(receivers).enumerate() {
            let heap = &heap;
            let tx = tx.take().unwrap();
            s.spawn(move || {
                let free = |b: Block| {
                    // SAFETY: the block is live, filled, and owned by this thread now.
                    unsafe { verify(b.ptr, b.layout.size(), b.id) };
                    // SAFETY: allocated from `heap` with `b.layout`, not used again.
                    unsafe { heap.deallocate(b.ptr, b.layout) };
                };
                let mut rng = XorShift::new(0xB10C + t as u64);
                let mut live: Vec<Block> = Vec::new();
                for seq in 0..OPS as u64 {
                    if live.is_empty() || rng.percent(55) {
                        let layout = random_layout(&mut rng);
                        let ptr = heap.allocate(layout).unwrap();
                        assert_eq!(ptr.as_ptr().addr() % layout.align(), 0);
                        let id = ((t as u64) << 48) | seq;
                        // SAFETY: just allocated for `layout`, ours alone.
                        unsafe { fill(ptr, layout.size(), id) };
                        live.push(Block { ptr, layout, id });
                    } else {
                        let b = live.swap_remove(rng.below(live.len()));
                        if rng.percent(30) {
                            tx.send(b).unwrap();
                        } else {
                            free(b);
                        }
                    }
                    while let Ok(b) = rx.try_recv() {
                        free(b);
                    }
                }
                drop(tx);
                live.into_iter().for_each(free);
                for b in rx {
                    free(b);
                }
            });
        }
    });

    // As for `settled`: the workers' caches come back as they exit.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let stats = loop {
        let stats = heap.stats();
        if stats
            .classes()
            .iter()
            .all(|c| c.cached_slots == c.depot_slots)
        {
            heap.flush_thread_cache();
            break heap.stats();
        }
        assert!(std::time::Instant::now() < deadline, "{stats}");
        thread::yield_now();
    };
    assert_eq!(stats.objects_in_use(), 0);
    assert_eq!((stats.fallback_allocations, stats.fallback_bytes), (0, 0));
    for c in stats.classes() {
        assert_eq!(c.free_slots, c.pages * c.slots_per_slab);
        assert_eq!(
            c.empty_slabs, c.pages,
            "every page kept (the reserve, the recent peak) is empty: {c:?}"
        );
    }
    heap.shrink_to_fit();
    assert_eq!(heap.stats().pages(), 0);
}

static COUNTERS: SlabCache<(usize, u64)> = SlabCache::new();

#[test]
fn a_static_cache_is_shared_by_threads() {
    thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                let mut mine: Vec<_> = (0..100).map(|i| COUNTERS.alloc((t, i)).unwrap()).collect();
                for _ in 0..OPS / 100 {
                    for (i, b) in mine.iter_mut().enumerate() {
                        assert_eq!(b.0, t);
                        b.1 += 1;
                        assert!(b.1 > i as u64);
                    }
                }
                for (i, b) in mine.iter().enumerate() {
                    assert_eq!(**b, (t, i as u64 + (OPS / 100) as u64));
                }
                mine.clear();
            });
        }
    });
    assert_eq!(COUNTERS.stats().objects_in_use, 0);
}
