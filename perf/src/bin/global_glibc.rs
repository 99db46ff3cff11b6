//! The `global` workload with glibc's `malloc` (`std::alloc::System`) as
//! the global allocator. Run by `scripts/global-alloc-bench`, or alone:
//!
//! ```sh
//! cargo run -p minimal_slab_perf --release --bin global_glibc [THREADS [SCALE]]
//! ```

use std::alloc::System;

#[global_allocator]
static HEAP: System = System;

fn main() {
    minimal_slab_perf::workloads::global::report("glibc");
}
