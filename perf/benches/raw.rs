//! `raw`: `Layout`-based allocation through each allocator's raw API —
//! `System`, `mimalloc`, `talc` (a locked heap over a static arena) and
//! `minimal_slab::SlabAllocator` — as `raw-pair` (alloc, then free at
//! once) and `raw-batch-fifo`/`raw-batch-random` (10 000 blocks, then all
//! freed). One element is one alloc + free.

mod common;

use std::time::Instant;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use minimal_slab_perf::workloads::raw::{layout_of, raw_batch, raw_pair};
use minimal_slab_perf::workloads::{fifo_order, key_sum, random_order};
use minimal_slab_perf::{
    BATCH, RawAlloc, RawVisitor, SEED, SizeVisitor, Value, for_each_raw, for_each_size,
};

use common::{Budget, configure, size_label};

/// What one group runs: pairs, or a batch freed in an order.
#[derive(Clone, Copy)]
enum Shape<'a> {
    Pair,
    Batch(&'a [u32]),
}

struct Sizes<'c> {
    criterion: &'c mut Criterion,
    fifo: Vec<u32>,
    random: Vec<u32>,
}

impl SizeVisitor for Sizes<'_> {
    fn visit<T: Value>(&mut self) {
        let shapes = [
            ("raw-pair", Shape::Pair),
            ("raw-batch-fifo", Shape::Batch(&self.fifo)),
            ("raw-batch-random", Shape::Batch(&self.random)),
        ];
        for (workload, shape) in shapes {
            let id = format!("{workload}/{}", size_label(T::BYTES));
            let mut group = self.criterion.benchmark_group(id);
            let (budget, elements) = match shape {
                Shape::Pair => (Budget::Fast, 1),
                Shape::Batch(order) => (Budget::Medium, order.len() as u64),
            };
            configure(&mut group, budget);
            group.throughput(Throughput::Elements(elements));
            for_each_raw(&mut Allocators {
                group: &mut group,
                bytes: T::BYTES,
                shape,
            });
            group.finish();
        }
    }
}

struct Allocators<'g, 'c> {
    group: &'g mut BenchmarkGroup<'c, WallTime>,
    bytes: usize,
    shape: Shape<'g>,
}

impl RawVisitor for Allocators<'_, '_> {
    fn visit<A: RawAlloc>(&mut self, name: &'static str, alloc: &A) {
        let layout = layout_of(self.bytes);
        let shape = self.shape;
        let mut ptrs = Vec::with_capacity(BATCH);
        self.group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let (sum, expected) = match shape {
                    Shape::Pair => (raw_pair(alloc, layout, iters), key_sum(iters)),
                    Shape::Batch(order) => {
                        let mut sum = 0u64;
                        for _ in 0..iters {
                            sum = sum.wrapping_add(raw_batch(alloc, layout, order, &mut ptrs));
                        }
                        (sum, key_sum(order.len() as u64).wrapping_mul(iters))
                    }
                };
                let elapsed = start.elapsed();
                assert_eq!(sum, expected, "{name}: values lost");
                elapsed
            })
        });
    }
}

fn main() {
    let mut criterion = common::criterion();
    let fifo = fifo_order(BATCH);
    let random = random_order(BATCH, SEED);
    for_each_size(&mut Sizes {
        criterion: &mut criterion,
        fifo,
        random,
    });
    criterion.final_summary();
}
