//! The `global` workload with `SlabAllocator` as the global allocator,
//! serving more sizes itself: size classes up to 1 KiB (powers of two) on
//! 8 KiB pages cut from 256 KiB chunks of `System`, larger requests to
//! `System`. The recipe's alternative, to show what serving 257 to 1024
//! bytes in power-of-two slots costs in time and memory. Run by
//! `scripts/global-alloc-bench`, or alone:
//!
//! ```sh
//! cargo run -p minimal_slab_perf --release --bin global_slab_wide [THREADS [SCALE]]
//! ```

use std::alloc::System;

use minimal_slab::typenum::{U1024, U8192, U262144};
use minimal_slab::{CacheConfig, ChunkedPages, GlobalAllocPages, SlabAllocator};

/// Pages of 8 KiB, so that a 1 KiB class has seven slots a page.
type Pages = ChunkedPages<GlobalAllocPages<System, U262144>, U8192>;

#[global_allocator]
static HEAP: SlabAllocator<Pages, System, U1024> = SlabAllocator::with_size_classes(
    ChunkedPages::with_page_size(GlobalAllocPages::with_page_size(System)),
    System,
    CacheConfig::new(),
);

fn main() {
    minimal_slab_perf::workloads::global::report("slab-wide");
}
