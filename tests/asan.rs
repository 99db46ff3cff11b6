//! Under AddressSanitizer, free slots are marked off limits, so that a use
//! after free of a slab object is reported by the sanitizer on the spot
//! instead of silently reading a recycled slot.
//!
//! The use after free runs in a child process (this test binary, run again
//! with `MINIMAL_SLAB_ASAN_CHILD` set), and the parent expects the
//! sanitizer's report. The check needs a sanitizer build: the crate's build
//! script notices `-Zsanitizer=address` and sets `cfg(minimal_slab_asan)`,
//! for these tests as for the library; in any other build they are ignored
//! (reported as such, not as passed). `scripts/verify asan` runs them:
//!
//! ```text
//! RUSTFLAGS=-Zsanitizer=address \
//!     cargo +nightly test --target x86_64-unknown-linux-gnu --test asan
//! ```

use std::process::Command;

use minimal_slab::{SlabAllocator, SlabBox, SlabCache};

const CHILD: &str = "MINIMAL_SLAB_ASAN_CHILD";

/// Runs test `name` of this binary in a child process with `CHILD` set,
/// and returns its exit status and standard error.
fn run_child(name: &str) -> (bool, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("the test binary runs again");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn expect_report(name: &str) {
    let (ok, stderr) = run_child(name);
    assert!(!ok, "the use after free went unreported:\n{stderr}");
    assert!(
        stderr.contains("AddressSanitizer: use-after-poison"),
        "expected the sanitizer's report, got:\n{stderr}"
    );
}

#[test]
#[cfg_attr(
    not(minimal_slab_asan),
    ignore = "needs an AddressSanitizer build: run by `scripts/verify asan`"
)]
fn reading_a_dropped_handles_object_is_reported() {
    if std::env::var_os(CHILD).is_some() {
        let cache: SlabCache<[u64; 8]> = SlabCache::new();
        let _neighbour = cache.alloc([1; 8]).unwrap(); // keeps the slab alive
        let raw = SlabBox::into_raw(cache.alloc([2; 8]).unwrap());
        // SAFETY: `raw` came from `into_raw` on this cache; the one handle.
        drop(unsafe { SlabBox::from_raw(&cache, raw) });
        // SAFETY: none: the deliberate use after free this test is about.
        // The slot still lies in a live slab page, so outside a sanitizer
        // build this would quietly read the poisoned, recycled slot.
        let stale = unsafe { raw.cast::<u64>().as_ptr().wrapping_add(4).read_volatile() };
        println!("read {stale:#x} from a freed slot unnoticed");
        return;
    }
    expect_report("reading_a_dropped_handles_object_is_reported");
}

#[test]
#[cfg_attr(
    not(minimal_slab_asan),
    ignore = "needs an AddressSanitizer build: run by `scripts/verify asan`"
)]
fn writing_a_freed_raw_block_is_reported() {
    if std::env::var_os(CHILD).is_some() {
        let heap = SlabAllocator::new();
        let layout = std::alloc::Layout::new::<[u8; 24]>();
        let keep = heap.allocate(layout).unwrap();
        let p = heap.allocate(layout).unwrap();
        // SAFETY: allocated just above with `layout`, freed once.
        unsafe { heap.deallocate(p, layout) };
        // SAFETY: none: the deliberate use after free this test is about.
        unsafe { p.as_ptr().wrapping_add(20).write_volatile(7) };
        // SAFETY: allocated above with `layout`, freed once.
        unsafe { heap.deallocate(keep, layout) };
        return;
    }
    expect_report("writing_a_freed_raw_block_is_reported");
}

#[test]
fn objects_in_use_are_not_reported() {
    // The marks come off when a slot is handed out: ordinary use of live
    // objects, including reused slots, is clean under the sanitizer.
    let cache: SlabCache<[u64; 8]> = SlabCache::new();
    for round in 0..1000u64 {
        let a = cache.alloc([round; 8]).unwrap();
        let b = cache.alloc([round + 1; 8]).unwrap();
        assert_eq!(a[7] + 1, b[0]);
    }
    assert_eq!(cache.stats().objects_in_use, 0);
}
