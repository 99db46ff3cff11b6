//! `pair`: allocate one object and free it at once, the hot LIFO path.
//! One element is one alloc + free.

mod common;

use std::time::Instant;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use minimal_slab_perf::contenders::names::{SLAB_CACHE_EAGER, SLAB_CACHE_KEEP};
use minimal_slab_perf::workloads::{key_sum, pair};
use minimal_slab_perf::{Pool, PoolVisitor, SizeVisitor, Value, for_each_pool, for_each_size};

use common::{Budget, configure, size_label};

struct Sizes<'c>(&'c mut Criterion);

impl SizeVisitor for Sizes<'_> {
    fn visit<T: Value>(&mut self) {
        let mut group = self
            .0
            .benchmark_group(format!("pair/{}", size_label(T::BYTES)));
        configure(&mut group, Budget::Fast);
        group.throughput(Throughput::Elements(1));
        for_each_pool::<T>(&mut Pools(&mut group));
        group.finish();
    }
}

struct Pools<'g, 'c>(&'g mut BenchmarkGroup<'c, WallTime>);

impl<T: Value> PoolVisitor<T> for Pools<'_, '_> {
    fn wants(&mut self, name: &'static str) -> bool {
        // Keeping pages, or not, changes nothing when one slot is reused.
        name != SLAB_CACHE_KEEP && name != SLAB_CACHE_EAGER
    }

    fn visit<P: Pool<T>>(&mut self, name: &'static str, pool: &mut P) {
        self.0.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let sum = pair(pool, iters);
                let elapsed = start.elapsed();
                assert_eq!(sum, key_sum(iters), "{name}: values lost");
                elapsed
            })
        });
    }
}

fn main() {
    let mut criterion = common::criterion();
    for_each_size(&mut Sizes(&mut criterion));
    criterion.final_summary();
}
