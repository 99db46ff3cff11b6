//! The memory table: the `churn` workload once per contender and object
//! size, each in a process of its own, so that one allocator's leftovers
//! never count against another.
//!
//! ```text
//! cargo run -p minimal_slab_perf --release --bin memory
//! ```
//!
//! The parent re-runs this program as `memory --child NAME BYTES` for
//! every pair and prints what the children report:
//!
//! - `peak`: the process's peak resident memory (`VmHWM`);
//! - `workload`: that peak less the resident memory before the contender
//!   was built (the program and the operation plan are already in; the
//!   vector of handles, touched in advance, is left out too), i.e. what
//!   the contender needed;
//! - `ratio`: `workload` over the free-list baseline's;
//! - `trimmed`: the same after glibc's `malloc_trim(0)` (Linux with glibc
//!   only): memory a contender gave back to `malloc` that `malloc` kept
//!   (freed blocks in the middle of its heap) no longer counts;
//! - `retained`: resident memory after every object is freed and the
//!   contender gave back what it can (`shrink()` for `minimal_slab`,
//!   `shrink_to_fit()` for `slab`), less the same starting point;
//! - `pages`: for `minimal_slab`, the pages its stats say it still held
//!   after the last free, and how many `shrink()` then gave back.

use std::mem::MaybeUninit;
use std::process::Command;

use minimal_slab_perf::contenders::names;
use minimal_slab_perf::workloads::{ChurnPlan, churn_drain, churn_fill, churn_run};
use minimal_slab_perf::{
    CHURN_DRIFT, CHURN_LIVE, CHURN_OPS, Pool, PoolVisitor, SEED, SizeVisitor, Value, for_each_pool,
    for_each_size,
};

/// A field of `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Asks glibc's `malloc` to give its free memory back to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_malloc() -> Option<()> {
    // SAFETY: `malloc_trim` only walks and releases `malloc`'s own free
    // memory; it is safe to call at any time.
    unsafe { libc::malloc_trim(0) };
    Some(())
}

/// Not glibc: nothing to ask.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_malloc() -> Option<()> {
    None
}

// ---------------------------------------------------------------- child --

/// One child's measurements.
struct Report {
    start_kib: u64,
    peak_kib: u64,
    retained_kib: u64,
    trimmed_kib: u64,
    pages_held: Option<usize>,
    pages_released: Option<usize>,
}

impl Report {
    fn to_line(&self) -> String {
        let opt = |v: Option<usize>| v.map_or("-".to_string(), |v| v.to_string());
        format!(
            "start_kib={} peak_kib={} retained_kib={} trimmed_kib={} pages_held={} pages_released={}",
            self.start_kib,
            self.peak_kib,
            self.retained_kib,
            self.trimmed_kib,
            opt(self.pages_held),
            opt(self.pages_released)
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        };
        let number = |name: &str| field(name)?.parse::<u64>().ok();
        let optional = |name: &str| field(name).map(|v| v.parse::<usize>().ok());
        Some(Self {
            start_kib: number("start_kib")?,
            peak_kib: number("peak_kib")?,
            retained_kib: number("retained_kib")?,
            trimmed_kib: number("trimmed_kib")?,
            pages_held: optional("pages_held")?,
            pages_released: optional("pages_released")?,
        })
    }
}

struct ChildSize<'a> {
    name: &'a str,
    bytes: usize,
    plan: &'a ChurnPlan,
    /// Resident memory before the contender was built (a `heapless` pool
    /// takes its static blocks when built).
    before_build_kib: u64,
    report: Option<Report>,
}

impl SizeVisitor for ChildSize<'_> {
    fn visit<T: Value>(&mut self) {
        if T::BYTES == self.bytes {
            for_each_pool::<T>(self);
        }
    }
}

impl<T: Value> PoolVisitor<T> for ChildSize<'_> {
    fn wants(&mut self, name: &'static str) -> bool {
        self.before_build_kib = status_kib("VmRSS");
        name == self.name
    }

    fn visit<P: Pool<T>>(&mut self, name: &'static str, pool: &mut P) {
        let plan = self.plan;
        // Touch the handle vector now and count it in the starting point,
        // not against the contender (handles differ in size).
        let before_handles_kib = status_kib("VmRSS");
        let mut live = Vec::with_capacity(plan.max_live());
        live.spare_capacity_mut().fill_with(MaybeUninit::zeroed);
        std::hint::black_box(live.as_ptr());
        let handles_kib = status_kib("VmRSS").saturating_sub(before_handles_kib);
        let start_kib = self.before_build_kib + handles_kib;

        churn_fill(pool, plan, &mut live);
        let run = churn_run(pool, plan, &mut live);
        let rest = churn_drain(pool, &mut live);
        assert_eq!(run, plan.run_checksum(), "{name}: values lost");
        assert_eq!(
            run.wrapping_add(rest),
            plan.total_checksum(),
            "{name}: values lost"
        );

        let pages_held = pool.held_pages();
        let pages_released = pool.release_memory();
        self.report = Some(Report {
            start_kib,
            peak_kib: status_kib("VmHWM"),
            retained_kib: status_kib("VmRSS").saturating_sub(start_kib),
            trimmed_kib: trim_malloc()
                .map_or(0, |()| status_kib("VmRSS").saturating_sub(start_kib)),
            pages_held,
            pages_released,
        });
    }
}

fn child(name: &str, bytes: usize) {
    let plan = ChurnPlan::new(CHURN_LIVE, CHURN_DRIFT, CHURN_OPS, SEED);
    let mut run = ChildSize {
        name,
        bytes,
        plan: &plan,
        before_build_kib: 0,
        report: None,
    };
    for_each_size(&mut run);
    let report = run
        .report
        .unwrap_or_else(|| panic!("no contender {name} for {bytes} bytes"));
    println!("{}", report.to_line());
}

// --------------------------------------------------------------- parent --

/// Collects the contender names without building any contender.
struct Names(Vec<&'static str>);

impl<T: Value> PoolVisitor<T> for Names {
    fn wants(&mut self, name: &'static str) -> bool {
        self.0.push(name);
        false
    }

    fn visit<P: Pool<T>>(&mut self, _: &'static str, _: &mut P) {}
}

struct ParentSize {
    names: Vec<&'static str>,
    rows: Vec<(usize, &'static str, Report)>,
}

impl SizeVisitor for ParentSize {
    fn visit<T: Value>(&mut self) {
        let exe = std::env::current_exe().expect("own path");
        for &name in &self.names {
            let output = Command::new(&exe)
                .args(["--child", name, &T::BYTES.to_string()])
                .output()
                .expect("spawn a child");
            let stdout = String::from_utf8_lossy(&output.stdout);
            let report = output
                .status
                .success()
                .then(|| stdout.lines().find_map(Report::parse))
                .flatten()
                .unwrap_or_else(|| {
                    panic!(
                        "child {name} {} failed: {}\n{stdout}{}",
                        T::BYTES,
                        output.status,
                        String::from_utf8_lossy(&output.stderr)
                    )
                });
            self.rows.push((T::BYTES, name, report));
        }
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn print_table(rows: &[(usize, &'static str, Report)], plan: &ChurnPlan) {
    println!(
        "churn: {} objects live, then {} random operations (at most {} live); MiB",
        CHURN_LIVE,
        plan.ops(),
        plan.peak_live()
    );
    println!(
        "{:>5}  {:<19} {:>8} {:>9} {:>7} {:>9} {:>8} {:>8}  pages held -> given back by shrink",
        "size", "contender", "peak", "workload", "ratio", "retained", "trimmed", "objects"
    );
    for &(bytes, name, ref report) in rows {
        let workload = |r: &Report| r.peak_kib.saturating_sub(r.start_kib);
        let baseline = rows
            .iter()
            .find(|(b, n, _)| *b == bytes && *n == names::FREE_LIST)
            .map(|(_, _, r)| workload(r));
        let ratio = baseline.filter(|&b| b > 0).map_or("-".to_string(), |b| {
            format!("{:.2}x", workload(report) as f64 / b as f64)
        });
        let pages = match (report.pages_held, report.pages_released) {
            (Some(held), Some(released)) => format!("{held} -> {released}"),
            _ => "-".to_string(),
        };
        let objects_kib = (plan.peak_live() * bytes) as u64 / 1024;
        println!(
            "{:>5}  {:<19} {:>8} {:>9} {:>7} {:>9} {:>8} {:>8}  {pages}",
            format!("{bytes}B"),
            name,
            mib(report.peak_kib),
            mib(workload(report)),
            ratio,
            mib(report.retained_kib),
            mib(report.trimmed_kib),
            mib(objects_kib),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, name, bytes] = args.as_slice()
        && flag == "--child"
    {
        child(name, bytes.parse().expect("a size in bytes"));
        return;
    }
    let mut names = Names(Vec::new());
    for_each_pool::<[u64; 2]>(&mut names);
    let mut parent = ParentSize {
        names: names.0,
        rows: Vec::new(),
    };
    for_each_size(&mut parent);
    let plan = ChurnPlan::new(CHURN_LIVE, CHURN_DRIFT, CHURN_OPS, SEED);
    print_table(&parent.rows, &plan);
}
