//! Stress: four threads, a million mixed operations each, on one shared typed
//! cache and on one shared raw allocator.
//!
//! Every object carries a pattern naming it (its id: thread and sequence
//! number), written when it is allocated or rewritten and checked before it
//! is freed or sent on, so a slot handed to two owners, or a byte written by
//! a neighbour, fails the test. Threads pass objects round a ring of
//! channels: what one thread allocates, the next often frees. One thread at
//! a time shrinks the pool now and then, racing the others.
//!
//! Ten times per run every thread stops at a barrier, and the live objects of
//! all threads are counted and laid out by address: no two may overlap, and
//! their number must be what the pool's `stats()` says is in use.
//!
//! `MINIMAL_SLAB_STRESS_OPS` sets the operations per thread (default one
//! million), for slow instrumented builds such as ThreadSanitizer; Miri runs
//! two threads of 200.

mod common;

use std::alloc::{Layout, System};
use std::ptr::NonNull;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Instant;

use common::{Ranges, XorShift, fill, verify};
use minimal_slab::{GlobalPages, SlabAllocator, SlabBox, SlabCache};

const THREADS: usize = if cfg!(miri) { 2 } else { 4 };
/// Quiescent checks per run.
const CHECKPOINTS: usize = 10;
/// Live objects a thread keeps at most.
const MAX_LIVE: usize = 4096;

fn ops_per_thread() -> usize {
    if cfg!(miri) {
        return 200;
    }
    match std::env::var("MINIMAL_SLAB_STRESS_OPS") {
        Ok(ops) => ops
            .parse()
            .expect("MINIMAL_SLAB_STRESS_OPS: a number of operations per thread"),
        Err(_) => 1_000_000,
    }
}

/// What the stress loop needs of a pool.
trait Pool: Sync {
    type Object: Send;

    /// A new object holding the pattern of `id`.
    fn alloc(&self, rng: &mut XorShift, id: u64) -> Self::Object;
    /// Panics unless `object` still holds the pattern of its id.
    fn check(&self, object: &Self::Object);
    /// Writes the pattern of `id` over `object`.
    fn restamp(&self, object: &mut Self::Object, id: u64);
    /// Checks `object`, then frees it.
    fn free(&self, object: Self::Object);
    /// The object's id, address, length in bytes, and whether a size class
    /// (rather than a fallback) holds it.
    fn extent(&self, object: &Self::Object) -> (u64, usize, usize, bool);
    fn shrink(&self);
    /// Objects in use by the pool's own count: in slabs, and in a fallback.
    fn in_use(&self) -> (usize, usize);
}

/// The live objects of all threads at a quiescent point.
#[derive(Default)]
struct Census {
    ranges: Ranges,
    in_slabs: usize,
    in_fallback: usize,
}

/// Runs `ops` mixed operations on `pool` in each of `THREADS` threads, and
/// prints how long that took.
fn stress<P: Pool>(name: &str, pool: &P, ops: usize) {
    let start = Instant::now();
    let barrier = Barrier::new(THREADS);
    let census = Mutex::new(Census::default());
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..THREADS).map(|_| mpsc::channel::<P::Object>()).unzip();
    let mut senders: Vec<Option<Sender<P::Object>>> = senders.into_iter().map(Some).collect();
    // A ring: each thread sends to its neighbour.
    senders.rotate_right(1);
    thread::scope(|s| {
        for (t, (tx, rx)) in senders.iter_mut().zip(receivers).enumerate() {
            let tx = tx.take().unwrap();
            let (barrier, census) = (&barrier, &census);
            s.spawn(move || {
                let _breaks = BreakOnPanic(barrier);
                Worker::new(pool, t, tx, rx, barrier, census).run(ops);
            });
        }
    });
    println!(
        "stress `{name}`: {THREADS} threads x {ops} operations in {:.2} s",
        start.elapsed().as_secs_f64()
    );
}

/// A barrier that a panicking thread breaks: the others then fail as well,
/// rather than wait for it forever.
struct Barrier {
    threads: usize,
    state: Mutex<BarrierState>,
    all_here: Condvar,
}

struct BarrierState {
    waiting: usize,
    /// Counts the times every thread arrived.
    round: u64,
    broken: bool,
}

impl Barrier {
    fn new(threads: usize) -> Self {
        Self {
            threads,
            state: Mutex::new(BarrierState {
                waiting: 0,
                round: 0,
                broken: false,
            }),
            all_here: Condvar::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, BarrierState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for every thread; true in exactly one of them, the last to
    /// arrive.
    fn wait(&self) -> bool {
        let mut state = self.state();
        let round = state.round;
        state.waiting += 1;
        let last = state.waiting == self.threads;
        if last {
            state.waiting = 0;
            state.round += 1;
            self.all_here.notify_all();
        }
        while state.round == round && !state.broken {
            state = self
                .all_here
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        let broken = state.broken;
        drop(state);
        assert!(!broken, "another thread failed");
        last
    }

    fn break_for_all(&self) {
        self.state().broken = true;
        self.all_here.notify_all();
    }
}

/// Breaks the barrier if its thread panics.
struct BreakOnPanic<'a>(&'a Barrier);

impl Drop for BreakOnPanic<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.break_for_all();
        }
    }
}

struct Worker<'a, P: Pool> {
    pool: &'a P,
    thread: usize,
    rng: XorShift,
    live: Vec<P::Object>,
    next_seq: u64,
    tx: Sender<P::Object>,
    rx: Receiver<P::Object>,
    barrier: &'a Barrier,
    census: &'a Mutex<Census>,
}

impl<'a, P: Pool> Worker<'a, P> {
    fn new(
        pool: &'a P,
        thread: usize,
        tx: Sender<P::Object>,
        rx: Receiver<P::Object>,
        barrier: &'a Barrier,
        census: &'a Mutex<Census>,
    ) -> Self {
        Self {
            pool,
            thread,
            rng: XorShift::new(0x57E5_5000 + thread as u64),
            live: Vec::new(),
            next_seq: 0,
            tx,
            rx,
            barrier,
            census,
        }
    }

    /// A fresh id: the thread in the top bits, a sequence number below.
    fn fresh_id(&mut self) -> u64 {
        self.next_seq += 1;
        ((self.thread as u64) << 40) | self.next_seq
    }

    fn take_random(&mut self) -> P::Object {
        let i = self.rng.below(self.live.len());
        self.live.swap_remove(i)
    }

    fn run(mut self, ops: usize) {
        let checkpoint_every = (ops / CHECKPOINTS).max(1);
        // Each thread shrinks at its own moments, so shrinks race the others'
        // allocations rather than each other.
        let shrink_every = (ops / 16).max(1);
        let shrink_at = self.thread * shrink_every / THREADS;
        for op in 0..ops {
            // Alternate phases that take pages and give them back.
            let growing = (op / 20_000) % 2 == 0;
            let alloc_share = if growing { 55 } else { 30 };
            let roll = self.rng.below(100);
            if self.live.is_empty() || (roll < alloc_share && self.live.len() < MAX_LIVE) {
                let id = self.fresh_id();
                let object = self.pool.alloc(&mut self.rng, id);
                self.live.push(object);
            } else if roll < 85 {
                let object = self.take_random();
                self.pool.free(object);
            } else if roll < 93 {
                let object = self.take_random();
                self.pool.check(&object);
                self.tx.send(object).unwrap();
            } else {
                let id = self.fresh_id();
                let i = self.rng.below(self.live.len());
                self.pool.check(&self.live[i]);
                self.pool.restamp(&mut self.live[i], id);
            }
            if op % 16 == 0 {
                self.receive();
            }
            if op % shrink_every == shrink_at {
                self.pool.shrink();
            }
            if (op + 1) % checkpoint_every == 0 {
                self.checkpoint();
            }
        }
        // Nothing is sent after this barrier: what is in the channel now is
        // all this thread will ever receive.
        self.barrier.wait();
        self.receive();
        for object in self.live.drain(..) {
            self.pool.free(object);
        }
    }

    /// Takes in what the previous thread sent, checking each object.
    fn receive(&mut self) {
        while let Ok(object) = self.rx.try_recv() {
            self.pool.check(&object);
            self.live.push(object);
        }
    }

    /// Stops with every other thread; together they lay out all live
    /// objects and compare their count with the pool's.
    fn checkpoint(&mut self) {
        self.barrier.wait();
        self.receive();
        {
            let mut census = self.census.lock().unwrap();
            for object in &self.live {
                self.pool.check(object);
                let (id, addr, len, in_slab) = self.pool.extent(object);
                census.ranges.insert(addr, len, id);
                if in_slab {
                    census.in_slabs += 1;
                } else {
                    census.in_fallback += 1;
                }
            }
        }
        if self.barrier.wait() {
            let mut census = self.census.lock().unwrap();
            assert_eq!(
                self.pool.in_use(),
                (census.in_slabs, census.in_fallback),
                "objects in use by the pool's count and by the threads'"
            );
            *census = Census::default();
        }
        self.barrier.wait();
    }
}

// ---------------------------------------------------------------------------
// The typed cache

type Value = [u64; 4];

static OBJECTS: SlabCache<Value> = SlabCache::new();

/// The value of object `id`.
fn stamp(id: u64) -> Value {
    [
        id,
        !id,
        id.rotate_left(29) ^ 0x5A5A_5A5A_5A5A_5A5A,
        id.wrapping_mul(0x9E37_79B9_7F4A_7C15),
    ]
}

struct TypedPool(&'static SlabCache<Value>);

impl Pool for TypedPool {
    type Object = SlabBox<'static, Value>;

    fn alloc(&self, _: &mut XorShift, id: u64) -> Self::Object {
        self.0.alloc(stamp(id)).unwrap()
    }

    fn check(&self, object: &Self::Object) {
        assert_eq!(
            **object,
            stamp(object[0]),
            "object {:#x} changed",
            object[0]
        );
    }

    fn restamp(&self, object: &mut Self::Object, id: u64) {
        **object = stamp(id);
    }

    fn free(&self, object: Self::Object) {
        self.check(&object);
        drop(object);
    }

    fn extent(&self, object: &Self::Object) -> (u64, usize, usize, bool) {
        let addr = SlabBox::as_ptr(object).addr();
        (object[0], addr, size_of::<Value>(), true)
    }

    fn shrink(&self) {
        self.0.shrink();
    }

    fn in_use(&self) -> (usize, usize) {
        (self.0.stats().objects_in_use, 0)
    }
}

#[test]
fn a_static_cache_under_stress() {
    stress("typed cache", &TypedPool(&OBJECTS), ops_per_thread());

    let stats = OBJECTS.stats();
    assert_eq!(stats.objects_in_use, 0, "{stats:?}");
    assert_eq!(
        stats.free_slots + stats.cached_slots,
        stats.pages * stats.slots_per_slab
    );
    // The workers were scoped threads: their thread-local caches give their
    // slots back when the threads' destructors run, which may be a moment
    // after the scope has ended. `shrink` takes back what they gave.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while OBJECTS.stats().cached_slots > 0 {
        OBJECTS.shrink();
        assert!(
            std::time::Instant::now() < deadline,
            "exited threads gave their cached slots back: {:?}",
            OBJECTS.stats()
        );
        std::thread::yield_now();
    }
    OBJECTS.shrink();
    assert_eq!(OBJECTS.stats().pages, 0);
}

// ---------------------------------------------------------------------------
// The raw allocator

type Heap = SlabAllocator<GlobalPages, System>;

/// A raw block and the id whose pattern fills it.
struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
    id: u64,
}

// SAFETY: a `Block` is the sole owner of its memory, which the shared
// allocator (itself `Sync`) lets any thread free.
unsafe impl Send for Block {}

/// Mostly the size classes, all of them, with every alignment a class
/// honours; a few blocks beyond them, for the fallback.
fn random_layout(rng: &mut XorShift) -> Layout {
    let (size, align) = if rng.percent(3) {
        (rng.range(257, 4096), 1 << rng.below(7))
    } else {
        let size = rng.range(1, 256);
        let class = size.max(8).next_power_of_two();
        (size, 1 << rng.below(class.trailing_zeros() as usize + 1))
    };
    Layout::from_size_align(size, align).unwrap()
}

struct RawPool<'h>(&'h Heap);

impl Pool for RawPool<'_> {
    type Object = Block;

    fn alloc(&self, rng: &mut XorShift, id: u64) -> Block {
        let layout = random_layout(rng);
        let ptr = self.0.allocate(layout).unwrap();
        assert_eq!(ptr.as_ptr().addr() % layout.align(), 0, "{layout:?}");
        // SAFETY: just allocated for `layout`, ours alone.
        unsafe { fill(ptr, layout.size(), id) };
        Block { ptr, layout, id }
    }

    fn check(&self, block: &Block) {
        // SAFETY: the block is live, filled for its id, and owned by the
        // calling thread.
        unsafe { verify(block.ptr, block.layout.size(), block.id) };
    }

    fn restamp(&self, block: &mut Block, id: u64) {
        // SAFETY: as for `check`.
        unsafe { fill(block.ptr, block.layout.size(), id) };
        block.id = id;
    }

    fn free(&self, block: Block) {
        self.check(&block);
        // SAFETY: allocated from this heap with `block.layout`, and the block
        // is gone after this.
        unsafe { self.0.deallocate(block.ptr, block.layout) };
    }

    fn extent(&self, block: &Block) -> (u64, usize, usize, bool) {
        let in_slab = Heap::size_class(block.layout).is_some();
        (
            block.id,
            block.ptr.as_ptr().addr(),
            block.layout.size(),
            in_slab,
        )
    }

    fn shrink(&self) {
        self.0.shrink_to_fit();
    }

    fn in_use(&self) -> (usize, usize) {
        let stats = self.0.stats();
        (stats.objects_in_use(), stats.fallback_allocations)
    }
}

#[test]
fn a_shared_allocator_under_stress() {
    let heap = Heap::new_in(GlobalPages::new(), System);
    stress("raw allocator", &RawPool(&heap), ops_per_thread());

    // The workers were scoped threads: their thread-local caches give their
    // blocks back when the threads' destructors run, which may be a moment
    // after the scope has ended; `stats` takes back what they gave.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let stats = loop {
        let stats = heap.stats();
        if stats
            .classes()
            .iter()
            .all(|c| c.cached_slots == c.depot_slots)
        {
            break stats;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "exited threads gave their cached blocks back: {stats}"
        );
        std::thread::yield_now();
    };
    assert_eq!(stats.objects_in_use(), 0, "{stats}");
    assert_eq!((stats.fallback_allocations, stats.fallback_bytes), (0, 0));
    // What the threads gave back in whole batches waits in the depots, for
    // the next thread to run dry; flushing puts it back into the slabs.
    heap.flush_thread_cache();
    let stats = heap.stats();
    for class in stats.classes() {
        assert_eq!(class.depot_slots, 0, "{class:?}");
        assert_eq!(class.free_slots, class.pages * class.slots_per_slab);
        assert_eq!(
            class.empty_slabs, class.pages,
            "every page kept (the reserve, the recent peak) is empty: {class:?}"
        );
    }
    heap.shrink_to_fit();
    assert_eq!(heap.stats().pages(), 0);
}
