//! The `global` workload with `SlabAllocator` as the global allocator, as
//! the README recommends: size classes up to 256 bytes on 4 KiB pages cut
//! from 256 KiB chunks of `System`, larger requests to `System`. Run by
//! `scripts/global-alloc-bench`, or alone:
//!
//! ```sh
//! cargo run -p minimal_slab_perf --release --bin global_slab [THREADS [SCALE]]
//! ```

use std::alloc::System;

use minimal_slab::typenum::U262144;
use minimal_slab::{ChunkedPages, GlobalAllocPages, SlabAllocator};

#[global_allocator]
static HEAP: SlabAllocator<ChunkedPages<GlobalAllocPages<System, U262144>>, System> =
    SlabAllocator::new_in(
        ChunkedPages::new(GlobalAllocPages::with_page_size(System)),
        System,
    );

fn main() {
    minimal_slab_perf::workloads::global::report("slab");
}
