//! The `global` workload with `SlabAllocator` as the global allocator, the
//! older recipe: each 4 KiB page a `System` allocation of its own (aligned
//! to its size), larger requests to `System`. Run by
//! `scripts/global-alloc-bench`, or alone:
//!
//! ```sh
//! cargo run -p minimal_slab_perf --release --bin global_slab_pagewise [THREADS [SCALE]]
//! ```

use std::alloc::System;

use minimal_slab::{GlobalAllocPages, SlabAllocator};

#[global_allocator]
static HEAP: SlabAllocator<GlobalAllocPages<System>, System> =
    SlabAllocator::new_in(GlobalAllocPages::new(System), System);

fn main() {
    minimal_slab_perf::workloads::global::report("slab-pagewise");
}
