//! The `global` workload with mimalloc as the global allocator. Run by
//! `scripts/global-alloc-bench`, or alone:
//!
//! ```sh
//! cargo run -p minimal_slab_perf --release --bin global_mimalloc [THREADS [SCALE]]
//! ```

use mimalloc::MiMalloc;

#[global_allocator]
static HEAP: MiMalloc = MiMalloc;

fn main() {
    minimal_slab_perf::workloads::global::report("mimalloc");
}
