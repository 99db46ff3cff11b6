//! `batch`: allocate 10 000 objects, then free them all, oldest first
//! (`batch-fifo`) or in a fixed random order (`batch-random`). One element
//! is one alloc + free.

mod common;

use std::time::Instant;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use minimal_slab_perf::workloads::{batch, fifo_order, key_sum, random_order};
use minimal_slab_perf::{
    BATCH, Pool, PoolVisitor, SEED, SizeVisitor, Value, for_each_pool, for_each_size,
};

use common::{Budget, configure, size_label};

struct Sizes<'c> {
    criterion: &'c mut Criterion,
    orders: [(&'static str, Vec<u32>); 2],
}

impl SizeVisitor for Sizes<'_> {
    fn visit<T: Value>(&mut self) {
        for (workload, order) in &self.orders {
            let id = format!("{workload}/{}", size_label(T::BYTES));
            let mut group = self.criterion.benchmark_group(id);
            configure(&mut group, Budget::Medium);
            group.throughput(Throughput::Elements(BATCH as u64));
            for_each_pool::<T>(&mut Pools {
                group: &mut group,
                order,
            });
            group.finish();
        }
    }
}

struct Pools<'g, 'c> {
    group: &'g mut BenchmarkGroup<'c, WallTime>,
    order: &'g [u32],
}

impl<T: Value> PoolVisitor<T> for Pools<'_, '_> {
    fn visit<P: Pool<T>>(&mut self, name: &'static str, pool: &mut P) {
        let order = self.order;
        let mut handles = Vec::with_capacity(order.len());
        self.group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let mut sum = 0u64;
                for _ in 0..iters {
                    sum = sum.wrapping_add(batch(pool, order, &mut handles));
                }
                let elapsed = start.elapsed();
                let expected = key_sum(order.len() as u64).wrapping_mul(iters);
                assert_eq!(sum, expected, "{name}: values lost");
                elapsed
            })
        });
    }
}

fn main() {
    let mut criterion = common::criterion();
    let orders = [
        ("batch-fifo", fifo_order(BATCH)),
        ("batch-random", random_order(BATCH, SEED)),
    ];
    for_each_size(&mut Sizes {
        criterion: &mut criterion,
        orders,
    });
    criterion.final_summary();
}
