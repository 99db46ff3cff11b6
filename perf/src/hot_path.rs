//! The per-thread fronts' fast paths, compiled on their own so that their
//! machine code can be read:
//!
//! ```text
//! cargo rustc -p minimal_slab_perf --release --lib -- --emit asm -C codegen-units=1
//! ```
//!
//! then look the symbols up in `target/release/deps/minimal_slab_perf-*.s`.
//! With a slot in the magazine, an allocation and a free should be a few
//! loads and stores: no `lock`-prefixed instruction, no `xchg`, no call;
//! the refill and the flush sit behind a branch, out of line.

use core::alloc::Layout;

use minimal_slab::{LocalAllocator, LocalCache};

/// Allocates a `[u64; 8]` holding `key` through `local`, reads it back and
/// frees it. Panics if out of memory.
#[inline(never)]
pub fn local_pair(local: &LocalCache<'_, [u64; 8]>, key: u64) -> u64 {
    match local.alloc([key; 8]) {
        Ok(object) => object[7],
        Err(_) => panic!("out of memory"),
    }
}

/// Allocates 64 bytes through `local`, writes `key` in the first word,
/// reads it back and frees the block. Panics if out of memory.
#[inline(never)]
pub fn local_raw_pair(local: &LocalAllocator<'_>, key: u64) -> u64 {
    let layout = Layout::new::<[u64; 8]>();
    let Ok(block) = local.allocate(layout) else {
        panic!("out of memory")
    };
    let word = block.cast::<u64>();
    // SAFETY: a fresh block of 64 bytes, aligned to 8.
    unsafe { word.write(key) };
    // SAFETY: written just above.
    let read = unsafe { word.read() };
    // SAFETY: from `local.allocate(layout)`, freed once, not used again.
    unsafe { local.deallocate(block, layout) };
    read
}

#[cfg(test)]
mod tests {
    use minimal_slab::{SlabAllocator, SlabCache};

    use super::*;

    #[test]
    fn pairs_read_back_their_key_and_leave_nothing_in_use() {
        let cache = SlabCache::new();
        let local = cache.local();
        assert_eq!((0..100).map(|k| local_pair(&local, k)).sum::<u64>(), 4_950);
        drop(local);
        assert_eq!(cache.stats().objects_in_use, 0);

        let heap = SlabAllocator::new();
        let local = heap.local();
        assert_eq!(
            (0..100).map(|k| local_raw_pair(&local, k)).sum::<u64>(),
            4_950
        );
        drop(local);
        assert_eq!(heap.stats().objects_in_use(), 0);
    }
}
