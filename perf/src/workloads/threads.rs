//! `threads`: one pool shared by real threads, timed from inside them.
//!
//! Each thread reaches the pool through a front of its own
//! ([`ThreadedPool::with_front`]): the pool itself for most contenders, a
//! per-thread cache for `slabcache-local`.
//!
//! Threads are spawned before the clock starts and meet at a barrier; each
//! notes when it starts and ends, and the run's time is from the first
//! start to the last end, so spawning and joining are never measured.

use std::hint::black_box;
use std::sync::Barrier;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread;
use std::time::{Duration, Instant};

use crate::{FrontVisitor, ThreadFront, ThreadedPool, Value};

/// Objects per message of [`handoff`]: large enough that waking a parked
/// thread (microseconds) costs little per object next to an allocation.
pub const HANDOFF_CHUNK: usize = 4096;
/// Chunks in flight in [`handoff`], which bounds the objects live at once.
const HANDOFF_CHUNKS: usize = 4;

/// When a thread started and ended its timed part, and its checksum.
type Run = (Instant, Instant, u64);

/// `threads` threads each run `pairs` alloc-then-free pairs (keys
/// `0..pairs`) on `pool`, each through its own front. Returns the wall time
/// and the sum of every thread's checksum.
pub fn pairs_on_threads<T: Value, P: ThreadedPool<T>>(
    pool: &P,
    threads: usize,
    pairs: u64,
) -> (Duration, u64) {
    let barrier = &Barrier::new(threads);
    let runs: Vec<Run> = thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| s.spawn(move || pool.with_front(Pairs { barrier, pairs })))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker panicked"))
            .collect()
    });
    span(&runs)
}

/// One thread's part of [`pairs_on_threads`].
struct Pairs<'a> {
    barrier: &'a Barrier,
    pairs: u64,
}

impl<T: Value, S> FrontVisitor<T, S> for Pairs<'_> {
    type Output = Run;

    fn visit<F: ThreadFront<T, Sent = S>>(self, front: &mut F) -> Run {
        self.barrier.wait();
        let start = Instant::now();
        let mut sum = 0u64;
        for key in 0..self.pairs {
            let handle = front.alloc(T::new(key));
            black_box(F::address(&handle));
            sum = sum.wrapping_add(front.free(handle));
        }
        (start, Instant::now(), sum)
    }
}

/// One thread allocates `objects` objects (keys `0..objects`) and sends
/// them, [`HANDOFF_CHUNK`] at a time, to a second thread that frees them:
/// every free is of an object allocated on the other thread. Each thread
/// uses its own front. Returns the wall time and the checksum of the frees.
pub fn handoff<T: Value, P: ThreadedPool<T>>(pool: &P, objects: u64) -> (Duration, u64) {
    let (full_tx, full_rx) = sync_channel::<Vec<P::Sent>>(HANDOFF_CHUNKS);
    let (empty_tx, empty_rx) = sync_channel::<Vec<P::Sent>>(HANDOFF_CHUNKS);
    for _ in 0..HANDOFF_CHUNKS {
        empty_tx
            .send(Vec::with_capacity(HANDOFF_CHUNK))
            .expect("receiver alive");
    }
    let barrier = &Barrier::new(2);
    let runs: Vec<Run> = thread::scope(|s| {
        let producer = s.spawn(move || {
            pool.with_front(Produce {
                barrier,
                objects,
                full_tx,
                empty_rx,
            })
        });
        let consumer = s.spawn(move || {
            pool.with_front(Consume {
                barrier,
                full_rx,
                empty_tx,
            })
        });
        [producer, consumer]
            .map(|w| w.join().expect("worker panicked"))
            .to_vec()
    });
    span(&runs)
}

/// The allocating side of [`handoff`]: fills the empty chunks it receives.
struct Produce<'a, S> {
    barrier: &'a Barrier,
    objects: u64,
    full_tx: SyncSender<Vec<S>>,
    empty_rx: Receiver<Vec<S>>,
}

impl<T: Value, S> FrontVisitor<T, S> for Produce<'_, S> {
    type Output = Run;

    fn visit<F: ThreadFront<T, Sent = S>>(self, front: &mut F) -> Run {
        self.barrier.wait();
        let start = Instant::now();
        let mut key = 0;
        while key < self.objects {
            let mut chunk = self.empty_rx.recv().expect("the consumer returns chunks");
            while chunk.len() < HANDOFF_CHUNK && key < self.objects {
                chunk.push(F::send(front.alloc(T::new(key))));
                key += 1;
            }
            self.full_tx.send(chunk).expect("the consumer is alive");
        }
        drop(self.full_tx);
        (start, Instant::now(), 0)
    }
}

/// The freeing side of [`handoff`]: empties the chunks and sends them back.
struct Consume<'a, S> {
    barrier: &'a Barrier,
    full_rx: Receiver<Vec<S>>,
    empty_tx: SyncSender<Vec<S>>,
}

impl<T: Value, S> FrontVisitor<T, S> for Consume<'_, S> {
    type Output = Run;

    fn visit<F: ThreadFront<T, Sent = S>>(self, front: &mut F) -> Run {
        self.barrier.wait();
        let start = Instant::now();
        let mut sum = 0u64;
        for mut chunk in self.full_rx {
            for handle in chunk.drain(..) {
                sum = sum.wrapping_add(front.free_sent(handle));
            }
            // The producer may be done and gone: then the chunk is dropped.
            let _ = self.empty_tx.send(chunk);
        }
        (start, Instant::now(), sum)
    }
}

/// From the first start to the last end, and the checksums summed.
fn span(runs: &[Run]) -> (Duration, u64) {
    let start = runs.iter().map(|r| r.0).min().expect("at least one thread");
    let end = runs.iter().map(|r| r.1).max().expect("at least one thread");
    let sum = runs.iter().fold(0u64, |sum, r| sum.wrapping_add(r.2));
    (end - start, sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::key_sum;
    use crate::{SharedVisitor, for_each_shared_pool};

    struct CheckAll(Vec<&'static str>);

    impl SharedVisitor<[u64; 2]> for CheckAll {
        fn visit<P: ThreadedPool<[u64; 2]>>(&mut self, name: &'static str, pool: &P) {
            let (_, sum) = pairs_on_threads(pool, 2, 5_000);
            assert_eq!(sum, 2 * key_sum(5_000), "{name}: pairs");
            if P::HANDS_OFF {
                let (_, sum) = handoff(pool, 10_000);
                assert_eq!(sum, key_sum(10_000), "{name}: handoff");
            }
            self.0.push(name);
        }
    }

    #[test]
    fn every_shared_pool_survives_two_threads() {
        let mut check = CheckAll(Vec::new());
        for_each_shared_pool(&mut check);
        assert_eq!(check.0.len(), 7);
    }
}
