//! `raw`: `Layout`-based allocation, the same `pair` and `batch` shapes as
//! the typed workloads. Each object gets its key written in its first
//! word, read back before the free.

use core::alloc::Layout;
use core::ptr::NonNull;
use std::hint::black_box;

use crate::RawAlloc;

/// A layout of `bytes` bytes aligned to 8, as a `[u64; bytes / 8]` has.
pub fn layout_of(bytes: usize) -> Layout {
    match Layout::from_size_align(bytes, 8) {
        Ok(layout) if bytes >= 8 => layout,
        _ => panic!("raw objects hold a u64 key: {bytes} bytes is too small"),
    }
}

/// Writes `key` in the first word of a fresh allocation.
#[inline]
fn tag(ptr: NonNull<u8>, key: u64) {
    // SAFETY: the allocation is fresh, at least 8 bytes and aligned to 8
    // (`layout_of`).
    unsafe { ptr.cast::<u64>().write(key) };
}

/// Reads the key back.
#[inline]
fn key_of(ptr: NonNull<u8>) -> u64 {
    // SAFETY: `tag` wrote the first word and the allocation is live.
    unsafe { ptr.cast::<u64>().read() }
}

/// `count` times: allocate `layout`, tag it, free it at once.
#[inline(never)]
pub fn raw_pair<A: RawAlloc>(alloc: &A, layout: Layout, count: u64) -> u64 {
    let mut sum = 0u64;
    for key in 0..count {
        let ptr = alloc.allocate(layout);
        tag(ptr, key);
        black_box(ptr);
        sum = sum.wrapping_add(key_of(ptr));
        // SAFETY: allocated just above with `layout`, freed once.
        unsafe { alloc.deallocate(ptr, layout) };
    }
    sum
}

/// Allocates `order.len()` blocks of `layout` (keys `0..n`), then frees
/// them in `order`, which must be a permutation of `0..n`. `ptrs` is
/// scratch space, empty on entry and exit.
#[inline(never)]
pub fn raw_batch<A: RawAlloc>(
    alloc: &A,
    layout: Layout,
    order: &[u32],
    ptrs: &mut Vec<NonNull<u8>>,
) -> u64 {
    assert!(ptrs.is_empty());
    for key in 0..order.len() as u64 {
        let ptr = alloc.allocate(layout);
        tag(ptr, key);
        ptrs.push(ptr);
    }
    let mut sum = 0u64;
    for &i in order {
        let ptr = ptrs[i as usize];
        sum = sum.wrapping_add(key_of(ptr));
        // SAFETY: allocated above with `layout`; `order` names each index
        // once, so each block is freed once.
        unsafe { alloc.deallocate(ptr, layout) };
    }
    ptrs.clear();
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::{key_sum, random_order};
    use crate::{RawVisitor, for_each_raw};

    struct CheckAll(Vec<&'static str>);

    impl RawVisitor for CheckAll {
        fn visit<A: RawAlloc>(&mut self, name: &'static str, alloc: &A) {
            for bytes in [16, 64, 256] {
                let layout = layout_of(bytes);
                assert_eq!(raw_pair(alloc, layout, 500), key_sum(500), "{name}");
                let order = random_order(2_000, 1);
                let mut ptrs = Vec::new();
                assert_eq!(
                    raw_batch(alloc, layout, &order, &mut ptrs),
                    key_sum(2_000),
                    "{name}"
                );
            }
            self.0.push(name);
        }
    }

    #[test]
    fn every_raw_allocator_gives_back_what_it_was_given() {
        let mut check = CheckAll(Vec::new());
        for_each_raw(&mut check);
        assert_eq!(
            check.0,
            [
                "system",
                "mimalloc",
                "talc",
                "slaballocator",
                "slaballocator-local"
            ]
        );
    }
}
