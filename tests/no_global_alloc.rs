//! No heap needed: with pages from a `RegionPages` over a `static` buffer, a
//! `SlabCache` and a `SlabAllocator` allocate, free, report exhaustion,
//! recover and print their stats without ever calling the global allocator.
//!
//! A test without the standard harness (`harness = false`): the harness
//! itself allocates, so `main` runs the checks and counts every call to a
//! counting `#[global_allocator]` around each one.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::{self, Write as _};
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{XorShift, fill, verify};
use minimal_slab::{
    AllocError, NoFallback, PageAllocError, RegionPages, SlabAllocator, SlabBox, SlabCache,
};

/// `System`, counting every allocation (alloc, alloc_zeroed, realloc) and
/// every free.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static FREES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to `System` unchanged; counting has no effect on
// the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller's guarantees are `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller's guarantees are `System`'s.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        FREES.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller's guarantees are `System`'s.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller's guarantees are `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const PAGE: usize = 4096;
/// The static region (Miri runs a smaller one: filling it is the slow part).
const REGION_BYTES: usize = if cfg!(miri) { 16 * PAGE } else { 64 * PAGE };
/// Operations per workload (Miri runs a small sample).
const OPS: usize = if cfg!(miri) { 400 } else { 50_000 };
/// Live objects at most during the random workloads.
const SLOTS: usize = if cfg!(miri) { 64 } else { 512 };
/// More objects than the region can hold.
const MANY: usize = REGION_BYTES / 32;

static mut REGION: [MaybeUninit<u8>; REGION_BYTES] = [MaybeUninit::uninit(); REGION_BYTES];

/// Calls to the global allocator so far: (allocations, frees).
fn global_calls() -> (usize, usize) {
    (
        ALLOCATIONS.load(Ordering::SeqCst),
        FREES.load(Ordering::SeqCst),
    )
}

type Obj = [u64; 4];

fn value(id: u64) -> Obj {
    [id, !id, id.rotate_left(17), 0x51AB]
}

/// Random allocs and frees on a typed cache, then exhaustion and recovery.
/// Returns how many objects filled the region.
fn typed_cache(pages: &RegionPages) -> usize {
    let cache = SlabCache::<Obj, _>::new_in(pages);
    let mut rng = XorShift::new(0xAB0DE);
    let mut live: [Option<(u64, SlabBox<'_, Obj, &RegionPages>)>; SLOTS] = [const { None }; SLOTS];
    for id in 0..OPS as u64 {
        let slot = &mut live[rng.below(SLOTS)];
        match slot.take() {
            Some((old, b)) => assert_eq!(*b, value(old)),
            None => *slot = Some((id, cache.alloc(value(id)).expect("the region has room"))),
        }
    }
    for (id, b) in live.iter().flatten() {
        assert_eq!(**b, value(*id));
    }

    // Fill the region to the last page.
    let mut all: [Option<SlabBox<'_, Obj, &RegionPages>>; MANY] = [const { None }; MANY];
    let mut filled = 0;
    let failed = loop {
        match cache.alloc(value(filled as u64)) {
            Ok(b) => all[filled] = Some(b),
            Err(failed) => break failed,
        }
        filled += 1;
    };
    assert_eq!(
        failed.error(),
        AllocError::Pages(PageAllocError::RegionExhausted)
    );
    assert_eq!(
        failed.into_value(),
        value(filled as u64),
        "the value comes back"
    );
    assert_eq!(pages.available(), 0);

    // Freeing one object makes room again.
    let freed = all[7].take().unwrap();
    assert_eq!(*freed, value(7));
    drop(freed);
    all[7] = Some(cache.alloc(value(7)).expect("a slot is free again"));
    for (id, b) in all.iter().take(filled).enumerate() {
        assert_eq!(**b.as_ref().unwrap(), value(id as u64));
    }

    drop(all);
    drop(live);
    assert_eq!(cache.stats().objects_in_use, 0);
    cache.shrink();
    assert_eq!(pages.available(), pages.capacity(), "every page went back");
    filled
}

/// Random raw allocs and frees, exhaustion and recovery. Returns how many
/// 256-byte blocks filled the region.
fn raw_allocator(pages: &RegionPages) -> usize {
    let heap = SlabAllocator::new_in(pages, NoFallback);
    let mut rng = XorShift::new(0x5EED);
    let mut live: [Option<(NonNull<u8>, Layout, u64)>; SLOTS] = [None; SLOTS];
    for id in 0..OPS as u64 {
        let slot = &mut live[rng.below(SLOTS)];
        match slot.take() {
            Some((p, l, old)) => {
                // SAFETY: live, filled, ours alone.
                unsafe { verify(p, l.size(), old) };
                // SAFETY: allocated from `heap` with `l`, not used again.
                unsafe { heap.deallocate(p, l) };
            }
            None => {
                let size = rng.range(1, 256);
                let class = size.max(8).next_power_of_two();
                let align = 1 << rng.below(class.trailing_zeros() as usize + 1);
                let l = Layout::from_size_align(size, align).unwrap();
                let p = heap.allocate(l).expect("the region has room");
                assert_eq!(p.as_ptr().addr() % align, 0);
                // SAFETY: just allocated for `l`, ours alone.
                unsafe { fill(p, size, id) };
                *slot = Some((p, l, id));
            }
        }
    }
    let too_big = Layout::from_size_align(300, 8).unwrap();
    assert_eq!(
        heap.allocate(too_big),
        Err(AllocError::UnsupportedLayout {
            size: 300,
            align: 8
        })
    );
    for (p, l, id) in live.iter_mut().filter_map(Option::take) {
        // SAFETY: live, filled, ours alone.
        unsafe { verify(p, l.size(), id) };
        // SAFETY: allocated from `heap` with `l`, not used again.
        unsafe { heap.deallocate(p, l) };
    }

    // Fill the region with 256-byte blocks.
    let big = Layout::from_size_align(256, 256).unwrap();
    let mut all = [None::<NonNull<u8>>; REGION_BYTES / 256];
    let mut filled = 0;
    let err = loop {
        match heap.allocate(big) {
            Ok(p) => all[filled] = Some(p),
            Err(e) => break e,
        }
        filled += 1;
    };
    assert_eq!(err, AllocError::Pages(PageAllocError::RegionExhausted));
    assert!(filled > 0);
    for p in all.iter().flatten() {
        // SAFETY: allocated from `heap` with `big`, not used again.
        unsafe { heap.deallocate(*p, big) };
    }
    assert_eq!(heap.stats().objects_in_use(), 0);
    heap.shrink_to_fit();
    assert_eq!(pages.available(), pages.capacity(), "every page went back");
    filled
}

/// A `fmt::Write` into a fixed buffer.
struct StackBuf {
    bytes: [u8; 4096],
    len: usize,
}

impl fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.bytes
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// A cache and an allocator share the region; their stats print without a heap.
fn shared_region_and_stats(pages: &RegionPages) -> usize {
    let cache = SlabCache::<Obj, _>::new_in(pages);
    let heap = SlabAllocator::new_in(pages, NoFallback);
    let l = Layout::from_size_align(64, 8).unwrap();
    let a = cache.alloc(value(1)).unwrap();
    let p = heap.allocate(l).unwrap();
    assert_eq!(pages.available(), pages.capacity() - 2);
    let mut out = StackBuf {
        bytes: [0; 4096],
        len: 0,
    };
    write!(out, "{}{}", cache.stats(), heap.stats()).unwrap();
    let table = std::str::from_utf8(&out.bytes[..out.len]).unwrap();
    assert!(table.contains("size-64"));
    drop(a);
    // SAFETY: allocated from `heap` with `l`, not used again.
    unsafe { heap.deallocate(p, l) };
    out.len
}

fn main() {
    let region = &raw mut REGION;
    // SAFETY: the only reference to REGION ever made, taken once here before
    // any other use; it is handed to the region for good.
    let memory: &'static mut [MaybeUninit<u8>] = unsafe { &mut *region };
    let pages = RegionPages::new(memory);
    assert!(
        pages.capacity() >= REGION_BYTES / PAGE - 1,
        "one page may go to alignment"
    );

    // The counter must see allocations, or the checks below prove nothing.
    let before = global_calls();
    drop(std::hint::black_box(vec![1_u8; 100]));
    let after = global_calls();
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "the counting allocator is not installed"
    );

    let (mut passed, mut failed) = (0, 0);
    let mut report = |name: &str, detail: String, before: (usize, usize), after: (usize, usize)| {
        if before == after {
            passed += 1;
            println!("ok: {name}: {detail}; no call to the global allocator");
        } else {
            failed += 1;
            println!(
                "FAILED: {name}: {} allocations and {} frees from the global allocator",
                after.0 - before.0,
                after.1 - before.1
            );
        }
    };

    let before = global_calls();
    let filled = typed_cache(&pages);
    let after = global_calls();
    report(
        "SlabCache<[u64; 4], &RegionPages>",
        format!("{OPS} random operations, region exhausted after {filled} objects, recovered"),
        before,
        after,
    );

    let before = global_calls();
    let filled = raw_allocator(&pages);
    let after = global_calls();
    report(
        "SlabAllocator<&RegionPages>",
        format!(
            "{OPS} random operations, region exhausted after {filled} 256-byte blocks, recovered"
        ),
        before,
        after,
    );

    let before = global_calls();
    let printed = shared_region_and_stats(&pages);
    let after = global_calls();
    report(
        "shared region and stats",
        format!(
            "both share {} pages; {printed} bytes of stats printed",
            pages.capacity()
        ),
        before,
        after,
    );

    println!("no_global_alloc: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
