//! The hand-off workload as a bare loop, outside Criterion: one thread
//! allocates 64-byte objects and sends them in batches to a second thread,
//! which frees them — every free is of an object the other thread
//! allocated (a producer/consumer pipeline).
//!
//! ```sh
//! cargo run -p minimal_slab_perf --release --bin handoff_loop [BATCH]
//! ```
//!
//! Each contender: batches of `BATCH` objects (256 unless told), 4 batches
//! in flight, 4 000 000 objects; one warm-up run untimed. Prints the best
//! and the median of seven runs in M objects per second. The contenders use
//! the API a user reaches first: a `static` `SlabCache` and `alloc`/drop,
//! `Box` on the system allocator, and `Box`'s alloc/free spelled out on
//! mimalloc's `GlobalAlloc` methods (mimalloc is not this process's
//! allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::ptr::NonNull;
use std::sync::mpsc::sync_channel;
use std::thread;
use std::time::Instant;

use mimalloc::MiMalloc;
use minimal_slab::{SlabBox, SlabCache};

type Object = [u64; 8];

const OBJECTS: usize = 4_000_000;
const IN_FLIGHT: usize = 4;
const RUNS: usize = 7;

static CACHE: SlabCache<Object> = SlabCache::new();

/// What a contender allocates, sends and frees.
trait Contender: Sync {
    type Handle: Send;
    fn alloc(&self, value: Object) -> Self::Handle;
    /// Frees `handle`, returning its first word (so the read is not lost).
    fn free(&self, handle: Self::Handle) -> u64;
}

struct Slab;

impl Contender for Slab {
    type Handle = SlabBox<'static, Object>;
    fn alloc(&self, value: Object) -> Self::Handle {
        CACHE.alloc(value).expect("memory")
    }
    fn free(&self, handle: Self::Handle) -> u64 {
        handle[0]
    }
}

/// `Box` spelled out on a `GlobalAlloc`.
struct Boxed<A>(A);

/// A pointer to an object of [`Boxed`], sent between threads.
struct Sent(NonNull<Object>);

// SAFETY: the sender gives the object up; only the receiver uses it.
unsafe impl Send for Sent {}

impl<A: GlobalAlloc + Sync> Contender for Boxed<A> {
    type Handle = Sent;
    fn alloc(&self, value: Object) -> Sent {
        // SAFETY: the layout of a 64-byte array is not zero-sized.
        let raw = unsafe { self.0.alloc(Layout::new::<Object>()) }.cast::<Object>();
        let ptr = NonNull::new(raw).expect("memory");
        // SAFETY: fresh, aligned, ours.
        unsafe { ptr.write(value) };
        Sent(ptr)
    }
    fn free(&self, handle: Sent) -> u64 {
        // SAFETY: written by `alloc`, given up by the sender.
        let first = unsafe { handle.0.as_ref() }[0];
        // SAFETY: allocated above with this layout, freed once.
        unsafe {
            self.0
                .dealloc(handle.0.as_ptr().cast(), Layout::new::<Object>())
        };
        first
    }
}

/// One run: M objects per second, and the checksum.
fn run<C: Contender>(contender: &C, batch: usize) -> (f64, u64) {
    let (full_tx, full_rx) = sync_channel::<Vec<C::Handle>>(IN_FLIGHT);
    let (empty_tx, empty_rx) = sync_channel::<Vec<C::Handle>>(IN_FLIGHT);
    for _ in 0..IN_FLIGHT {
        empty_tx.send(Vec::with_capacity(batch)).expect("alive");
    }
    let start = Instant::now();
    let sum = thread::scope(|s| {
        s.spawn(move || {
            let mut made = 0;
            while made < OBJECTS {
                let mut chunk = empty_rx.recv().expect("the consumer returns batches");
                while chunk.len() < batch && made < OBJECTS {
                    chunk.push(contender.alloc([made as u64; 8]));
                    made += 1;
                }
                full_tx.send(chunk).expect("the consumer is alive");
            }
        });
        let consumer = s.spawn(move || {
            let mut sum = 0u64;
            for mut chunk in full_rx {
                for handle in chunk.drain(..) {
                    sum = sum.wrapping_add(contender.free(handle));
                }
                let _ = empty_tx.send(chunk);
            }
            sum
        });
        consumer.join().expect("consumer")
    });
    let rate = OBJECTS as f64 / start.elapsed().as_secs_f64() / 1e6;
    (rate, black_box(sum))
}

fn measure<C: Contender>(name: &str, contender: &C, batch: usize) {
    let expected = (OBJECTS as u64 - 1) * OBJECTS as u64 / 2;
    assert_eq!(run(contender, batch).1, expected, "{name}: checksum");
    let mut rates: Vec<f64> = (0..RUNS).map(|_| run(contender, batch).0).collect();
    rates.sort_by(f64::total_cmp);
    println!(
        "  {name:<22} best {:6.1}   median {:6.1}",
        rates[RUNS - 1],
        rates[RUNS / 2]
    );
}

fn main() {
    let batch = std::env::args()
        .nth(1)
        .map_or(256, |arg| arg.parse().expect("BATCH: a number"));
    println!(
        "hand-off, 64-byte objects, batches of {batch}: M objects per second (best, median of {RUNS})"
    );
    measure("slabcache (default)", &Slab, batch);
    measure("box-mimalloc", &Boxed(MiMalloc), batch);
    measure("box-system", &Boxed(System), batch);
}
