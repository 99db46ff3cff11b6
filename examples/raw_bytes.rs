//! Raw bytes: `Layout`s in, pointers out, with `SlabAllocator`.
//!
//! What this teaches:
//!
//! - a `SlabAllocator` serves a `Layout` from the smallest size class (8, 16,
//!   32, …, 256 bytes) at least as large as both its size and its alignment,
//!   so the pointer is always aligned;
//! - `reallocate` stays in place within a size class and moves (keeping the
//!   bytes) across classes;
//! - zero-sized layouts get a dangling, aligned pointer and use no memory;
//! - what no class can serve is an `Err`, unless you give it a fallback such
//!   as `std::alloc::System`;
//! - `stats()` prints one row per size class, plus the fallback.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example raw_bytes
//! ```

use std::alloc::{Layout, System};
use std::ptr::NonNull;

use minimal_slab::{AllocError, ChunkedGlobalPages, SlabAllocator};

/// The default allocator type: classes 8..=256 on 4 KiB pages from the global
/// allocator, no fallback. (Naming the type lets us call associated functions
/// such as `size_class` with its default parameters.)
type Heap = SlabAllocator;

/// Fills `len` bytes at `ptr` with `byte`.
///
/// # Safety
///
/// `ptr` is valid for writes of `len` bytes.
unsafe fn fill(ptr: NonNull<u8>, len: usize, byte: u8) {
    // SAFETY: the caller guarantees `len` writable bytes at `ptr`.
    unsafe { ptr.as_ptr().write_bytes(byte, len) };
}

/// Whether all `len` bytes at `ptr` equal `byte`.
///
/// # Safety
///
/// `ptr` is valid for reads of `len` initialised bytes.
unsafe fn all_equal(ptr: NonNull<u8>, len: usize, byte: u8) -> bool {
    // SAFETY: the caller guarantees `len` readable, initialised bytes.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.as_ptr(), len) };
    bytes.iter().all(|&b| b == byte)
}

fn main() {
    let heap = Heap::new();

    // 1. Several layouts in, pointers out.
    println!("== allocate ==");
    println!(
        "  {:>5} {:>6}  {:>14}  {:>5}  aligned  bytes ok",
        "size", "align", "pointer", "class"
    );
    let layouts = [
        Layout::new::<u8>(),
        Layout::new::<[u64; 3]>(),                // 24 bytes, align 8
        Layout::from_size_align(33, 1).unwrap(),  // just past 32
        Layout::from_size_align(8, 128).unwrap(), // small but very aligned
        Layout::new::<[u8; 200]>(),
        Layout::from_size_align(256, 256).unwrap(),
    ];
    let mut live = Vec::new();
    for (i, &layout) in layouts.iter().enumerate() {
        let ptr = heap.allocate(layout).expect("a class serves it");
        let class = Heap::size_class(layout).expect("a class serves it");
        let aligned = ptr.as_ptr().addr().is_multiple_of(layout.align());
        let byte = 0xA0 + i as u8;
        // SAFETY: `ptr` was allocated for `layout`, so it is valid for
        // `layout.size()` bytes.
        unsafe { fill(ptr, layout.size(), byte) };
        // SAFETY: the same bytes, initialised just above.
        let ok = unsafe { all_equal(ptr, layout.size(), byte) };
        println!(
            "  {:>5} {:>6}  {:>14p}  {:>5}  {:<7}  {ok}",
            layout.size(),
            layout.align(),
            ptr,
            class,
            aligned
        );
        assert!(aligned && ok);
        live.push((ptr, layout));
    }
    println!("\n== heap.stats() with those {} blocks live ==", live.len());
    print!("{}", heap.stats());
    for (ptr, layout) in live {
        // SAFETY: allocated above with this very layout, freed once.
        unsafe { heap.deallocate(ptr, layout) };
    }

    // 2. Reallocate: in place within a class, moved across classes.
    println!("\n== reallocate ==");
    let small = Layout::from_size_align(20, 4).unwrap();
    let p = heap.allocate(small).unwrap();
    // SAFETY: `p` holds 20 bytes.
    unsafe { fill(p, 20, 0x5A) };
    // SAFETY: `p` came from `heap` with `small` and is not used after success.
    let q = unsafe { heap.reallocate(p, small, 30) }.unwrap();
    println!(
        "  20 -> 30 bytes: {p:p} -> {q:p} (class {:?} -> {:?}): same pointer = {}",
        Heap::size_class(small),
        Heap::size_class(Layout::from_size_align(30, 4).unwrap()),
        p == q
    );
    assert_eq!(p, q);
    let mid = Layout::from_size_align(30, 4).unwrap();
    // SAFETY: `q` now holds 30 bytes of layout `mid`; not used after success.
    let r = unsafe { heap.reallocate(q, mid, 100) }.unwrap();
    // SAFETY: the first 20 bytes were written before and are kept by a move.
    let kept = unsafe { all_equal(r, 20, 0x5A) };
    println!(
        "  30 -> 100 bytes: {q:p} -> {r:p} (class {:?} -> {:?}): moved = {}, first 20 bytes kept = {kept}",
        Heap::size_class(mid),
        Heap::size_class(Layout::from_size_align(100, 4).unwrap()),
        q != r
    );
    assert!(kept);
    // SAFETY: `r` came from the last reallocate, with size 100, align 4.
    unsafe { heap.deallocate(r, Layout::from_size_align(100, 4).unwrap()) };

    // 3. Zero-sized layouts touch nothing.
    println!("\n== zero-sized ==");
    let zst = Layout::from_size_align(0, 16).unwrap();
    let before = heap.stats().objects_in_use();
    let z = heap.allocate(zst).unwrap();
    println!(
        "  0 bytes, align 16: {z:p} (aligned = {}), objects in use {} -> {}",
        z.as_ptr().addr().is_multiple_of(16),
        before,
        heap.stats().objects_in_use()
    );
    // SAFETY: `z` came from `allocate(zst)`.
    unsafe { heap.deallocate(z, zst) };

    // 4. What no size class can serve, without a fallback: an `Err`, not a
    //    panic and not a null pointer.
    println!("\n== beyond the size classes, no fallback ==");
    let too_big = Layout::from_size_align(300, 8).unwrap();
    let too_aligned = Layout::from_size_align(64, 512).unwrap();
    for layout in [too_big, too_aligned] {
        let err = heap.allocate(layout).unwrap_err();
        println!(
            "  size {:>3}, align {:>3}: size_class = {:?}; Err: {err}",
            layout.size(),
            layout.align(),
            Heap::size_class(layout)
        );
        assert!(matches!(err, AllocError::UnsupportedLayout { .. }));
    }

    // 5. The same layouts with `System` as the fallback.
    println!("\n== with std::alloc::System as fallback ==");
    let with_fallback: SlabAllocator<ChunkedGlobalPages, System> =
        SlabAllocator::new_in(ChunkedGlobalPages::global(), System);
    let big = with_fallback.allocate(too_big).unwrap();
    let aligned = with_fallback.allocate(too_aligned).unwrap();
    let small = with_fallback.allocate(Layout::new::<u64>()).unwrap();
    println!("  300 bytes, align   8: {big:p}");
    println!(
        "   64 bytes, align 512: {aligned:p} (aligned = {})",
        aligned.as_ptr().addr().is_multiple_of(512)
    );
    println!("    8 bytes, align   8: {small:p} (a size class, as before)");
    // SAFETY: `big` holds 300 bytes.
    unsafe { fill(big, 300, 0x77) };
    // A fallback block can shrink into a size class: the bytes move with it.
    // SAFETY: `big` came from `with_fallback` with `too_big`; not used after.
    let shrunk = unsafe { with_fallback.reallocate(big, too_big, 48) }.unwrap();
    // SAFETY: the first 48 bytes were filled above and kept by the move.
    let kept = unsafe { all_equal(shrunk, 48, 0x77) };
    println!("  300 -> 48 bytes: {big:p} -> {shrunk:p}, bytes kept = {kept}");
    assert!(kept);
    print!("{}", with_fallback.stats());

    let stats = with_fallback.stats();
    assert_eq!(stats.fallback_allocations, 1);
    assert_eq!(stats.fallback_bytes, 64);

    // Each block is freed with the layout it has now: `shrunk` with the size
    // it was reallocated to and the alignment it was allocated with.
    let shrunk_layout = Layout::from_size_align(48, too_big.align()).unwrap();
    // SAFETY: `shrunk` came from `with_fallback.reallocate` with that layout.
    unsafe { with_fallback.deallocate(shrunk, shrunk_layout) };
    // SAFETY: `aligned` came from `with_fallback.allocate(too_aligned)`.
    unsafe { with_fallback.deallocate(aligned, too_aligned) };
    // SAFETY: `small` came from `with_fallback.allocate` with this layout.
    unsafe { with_fallback.deallocate(small, Layout::new::<u64>()) };

    println!("\n== after freeing everything ==");
    print!("{}", with_fallback.stats());
    println!(
        "  shrink() gave back {} reserve page(s)",
        with_fallback.shrink_to_fit()
    );
}
