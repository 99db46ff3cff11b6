//! `threads`: one pool shared by real threads, timed from inside them.
//!
//! - `threads-1t`: one thread runs alloc/free pairs (one element = a pair);
//! - `threads-2t`: two threads run pairs on the same pool at once (two
//!   elements per iteration: one pair on each thread);
//! - `threads-handoff`: one thread allocates, the other frees, objects
//!   passed in chunks of 4096 over a channel (one element = an object).
//!
//! At the end the binary prints each contender's throughput on one and
//! two threads and the speed-up, from the mean of every timed run it made
//! (warm-up included); `scripts/bench-chart` computes the same from
//! Criterion's estimates.

mod common;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use minimal_slab_perf::workloads::key_sum;
use minimal_slab_perf::workloads::threads::{handoff, pairs_on_threads};
use minimal_slab_perf::{
    SharedVisitor, SizeVisitor, ThreadedPool, Value, for_each_shared_pool, for_each_size,
};

use common::{Budget, configure, size_label};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    OneThread,
    TwoThreads,
    Handoff,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::OneThread, Mode::TwoThreads, Mode::Handoff];

    fn workload(self) -> &'static str {
        match self {
            Mode::OneThread => "threads-1t",
            Mode::TwoThreads => "threads-2t",
            Mode::Handoff => "threads-handoff",
        }
    }

    /// Elements per iteration.
    fn elements(self) -> u64 {
        match self {
            Mode::TwoThreads => 2,
            Mode::OneThread | Mode::Handoff => 1,
        }
    }
}

/// Time and elements of every timed run, by size, contender and mode.
type Totals = BTreeMap<(usize, &'static str, Mode), (Duration, u64)>;

static TOTALS: Mutex<Totals> = Mutex::new(BTreeMap::new());

struct Sizes<'c>(&'c mut Criterion);

impl SizeVisitor for Sizes<'_> {
    fn visit<T: Value>(&mut self) {
        for mode in Mode::ALL {
            let id = format!("{}/{}", mode.workload(), size_label(T::BYTES));
            let mut group = self.0.benchmark_group(id);
            configure(&mut group, Budget::Fast);
            group.throughput(Throughput::Elements(mode.elements()));
            for_each_shared_pool::<T>(&mut Pools {
                group: &mut group,
                mode,
                bytes: T::BYTES,
            });
            group.finish();
        }
    }
}

struct Pools<'g, 'c> {
    group: &'g mut BenchmarkGroup<'c, WallTime>,
    mode: Mode,
    bytes: usize,
}

impl<T: Value> SharedVisitor<T> for Pools<'_, '_> {
    fn visit<P: ThreadedPool<T>>(&mut self, name: &'static str, pool: &P) {
        let (mode, bytes) = (self.mode, self.bytes);
        if mode == Mode::Handoff && !P::HANDS_OFF {
            return;
        }
        self.group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let (elapsed, sum, expected) = match mode {
                    Mode::OneThread => {
                        let (elapsed, sum) = pairs_on_threads(pool, 1, iters);
                        (elapsed, sum, key_sum(iters))
                    }
                    Mode::TwoThreads => {
                        let (elapsed, sum) = pairs_on_threads(pool, 2, iters);
                        (elapsed, sum, key_sum(iters).wrapping_mul(2))
                    }
                    Mode::Handoff => {
                        let (elapsed, sum) = handoff(pool, iters);
                        (elapsed, sum, key_sum(iters))
                    }
                };
                assert_eq!(sum, expected, "{name}: values lost");
                let mut totals = TOTALS.lock().expect("no benchmark panicked");
                let entry = totals.entry((bytes, name, mode)).or_default();
                entry.0 += elapsed;
                entry.1 += iters * mode.elements();
                elapsed
            })
        });
    }
}

/// Prints throughput per mode and the two-thread speed-up.
fn print_speed_ups(totals: &Totals) {
    let rate = |key: &(usize, &'static str, Mode)| {
        totals
            .get(key)
            .map(|(time, elements)| *elements as f64 / time.as_secs_f64() / 1e6)
    };
    let show = |value: Option<f64>| value.map_or("-".to_string(), |v| format!("{v:.1}"));
    println!();
    println!("threads: throughput in M elements/s (mean of every timed run, warm-up included)");
    println!(
        "{:>5}  {:<15} {:>9} {:>9} {:>9} {:>9} {:>12}",
        "size", "contender", "1 thread", "2 threads", "speed-up", "handoff", "handoff/1t"
    );
    let mut rows: Vec<(usize, &'static str)> = totals.keys().map(|k| (k.0, k.1)).collect();
    rows.dedup();
    for (bytes, name) in rows {
        let one = rate(&(bytes, name, Mode::OneThread));
        let two = rate(&(bytes, name, Mode::TwoThreads));
        let hand = rate(&(bytes, name, Mode::Handoff));
        let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
        println!(
            "{:>5}  {:<15} {:>9} {:>9} {:>8}x {:>9} {:>11}x",
            size_label(bytes),
            name,
            show(one),
            show(two),
            show(ratio(two, one)).trim(),
            show(hand),
            show(ratio(hand, one)).trim(),
        );
    }
}

fn main() {
    let mut criterion = common::criterion();
    for_each_size(&mut Sizes(&mut criterion));
    criterion.final_summary();
    let totals = TOTALS.lock().expect("no benchmark panicked");
    if !totals.is_empty() {
        print_speed_ups(&totals);
    }
}
