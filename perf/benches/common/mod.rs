//! What every benchmark binary shares: the Criterion set-up and the time
//! each kind of benchmark gets.
//!
//! `QUICK=1` in the environment cuts every budget to a fraction, for a
//! smoke run; the numbers are then rougher.

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode};

/// How long a kind of benchmark runs.
#[derive(Clone, Copy)]
#[allow(dead_code, reason = "each benchmark binary uses some of the kinds")]
pub enum Budget {
    /// Nanoseconds per iteration (`pair`, `raw-pair`, `threads`).
    Fast,
    /// Up to a few milliseconds per iteration (`batch`, `raw-batch`).
    Medium,
    /// Tens of milliseconds per iteration, plus untimed set-up (`churn`).
    Slow,
}

/// Whether `QUICK` asks for a smoke run.
pub fn quick() -> bool {
    std::env::var_os("QUICK").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Criterion as every binary uses it: no plots, command-line flags honoured.
pub fn criterion() -> Criterion {
    Criterion::default().without_plots().configure_from_args()
}

/// Applies `budget` (cut down under `QUICK`) to `group`.
pub fn configure(group: &mut BenchmarkGroup<'_, WallTime>, budget: Budget) {
    let (samples, warm_up_ms, measure_ms) = match (budget, quick()) {
        (Budget::Fast, false) => (30, 500, 1_500),
        (Budget::Medium, false) => (30, 500, 2_000),
        (Budget::Slow, false) => (10, 500, 3_000),
        (_, true) => (10, 100, 300),
    };
    group
        .sample_size(samples)
        .warm_up_time(Duration::from_millis(warm_up_ms))
        .measurement_time(Duration::from_millis(measure_ms));
    if matches!(budget, Budget::Slow) {
        // Equal iterations per sample: each iteration is long already.
        group.sampling_mode(SamplingMode::Flat);
    }
}

/// The label of an object size in benchmark ids: `16B`.
pub fn size_label(bytes: usize) -> String {
    format!("{bytes}B")
}
