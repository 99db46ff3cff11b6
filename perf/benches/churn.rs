//! `churn`: 100 000 live objects, then 1 000 000 random allocations and
//! frees (fixed seed; the live count stays within 100 000 ± 5 000). Only
//! the random operations are timed; filling and draining are not. One
//! element is one operation, an allocation or a free.

mod common;

use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use minimal_slab_perf::workloads::{ChurnPlan, churn_drain, churn_fill, churn_run};
use minimal_slab_perf::{
    CHURN_DRIFT, CHURN_LIVE, CHURN_OPS, Pool, PoolVisitor, SEED, SizeVisitor, Value, for_each_pool,
    for_each_size,
};

use common::{Budget, configure, size_label};

struct Sizes<'c> {
    criterion: &'c mut Criterion,
    plan: ChurnPlan,
}

impl SizeVisitor for Sizes<'_> {
    fn visit<T: Value>(&mut self) {
        let mut group = self
            .criterion
            .benchmark_group(format!("churn/{}", size_label(T::BYTES)));
        configure(&mut group, Budget::Slow);
        group.throughput(Throughput::Elements(self.plan.ops() as u64));
        for_each_pool::<T>(&mut Pools {
            group: &mut group,
            plan: &self.plan,
        });
        group.finish();
    }
}

struct Pools<'g, 'c> {
    group: &'g mut BenchmarkGroup<'c, WallTime>,
    plan: &'g ChurnPlan,
}

impl<T: Value> PoolVisitor<T> for Pools<'_, '_> {
    fn visit<P: Pool<T>>(&mut self, name: &'static str, pool: &mut P) {
        let plan = self.plan;
        let mut live = Vec::with_capacity(plan.max_live());
        self.group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    churn_fill(pool, plan, &mut live);
                    let start = Instant::now();
                    let run = churn_run(pool, plan, &mut live);
                    timed += start.elapsed();
                    let rest = churn_drain(pool, &mut live);
                    assert_eq!(run, plan.run_checksum(), "{name}: values lost");
                    assert_eq!(
                        run.wrapping_add(rest),
                        plan.total_checksum(),
                        "{name}: values lost"
                    );
                }
                timed
            })
        });
    }
}

fn main() {
    let mut criterion = common::criterion();
    let plan = ChurnPlan::new(CHURN_LIVE, CHURN_DRIFT, CHURN_OPS, SEED);
    for_each_size(&mut Sizes {
        criterion: &mut criterion,
        plan,
    });
    criterion.final_summary();
}
