//! Misuse detection in checked builds (every build with `debug_assertions`,
//! or with the `checked` feature): a double free, a pointer that is not a
//! slot handed out by this very cache or allocator (inside a slot, a slot
//! never handed out, a slot of another cache), and a free with the layout of
//! another size class each panic with a message naming the misuse, instead
//! of corrupting the cache; so does a write into a freed slot, found when the
//! slot is handed out again (free slots are poisoned).
//!
//! The tests under "Caught at once" wrap only the misusing call in
//! `catch_unwind` and expect its panic there: a check that moved to a later
//! point (a flush, a reuse, the cache's drop) would report the same message
//! and still satisfy `should_panic`, but not these.
//!
//! Each test commits exactly one misuse on purpose; the `unsafe` blocks that
//! do so say so in their `SAFETY:` comments. What makes them sound is the
//! check itself: it runs before anything is changed, on memory that is still
//! a live slab of the allocator.

#![cfg(any(debug_assertions, feature = "checked"))]

mod common;

use std::alloc::Layout;
use std::ptr::NonNull;

use common::panics_naming;
use minimal_slab::{SlabAllocator, SlabBox, SlabCache};

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

/// A block that frees itself when dropped — also while a test unwinds from
/// the expected panic, so that nothing leaks.
struct Owned<'a> {
    heap: &'a SlabAllocator,
    ptr: NonNull<u8>,
    layout: Layout,
}

impl<'a> Owned<'a> {
    fn new(heap: &'a SlabAllocator, layout: Layout) -> Self {
        let ptr = heap.allocate(layout).unwrap();
        Self { heap, ptr, layout }
    }
}

impl Drop for Owned<'_> {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` from `heap` with `layout`, freed once here.
        unsafe { self.heap.deallocate(self.ptr, self.layout) };
    }
}

#[test]
#[should_panic(expected = "double free")]
fn freeing_a_block_twice_panics() {
    let heap = SlabAllocator::new();
    let l = layout(48, 8);
    let _keep = Owned::new(&heap, l); // keeps the slab in use
    let p = heap.allocate(l).unwrap();
    // SAFETY: allocated from `heap` with `l`, freed once here.
    unsafe { heap.deallocate(p, l) };
    // SAFETY: deliberate misuse: a double free, which checked builds detect
    // before touching the slab (still live: `_keep` is in it).
    unsafe { heap.deallocate(p, l) };
}

#[test]
#[should_panic(expected = "foreign pointer")]
fn freeing_a_pointer_into_the_middle_of_a_slot_panics() {
    let heap = SlabAllocator::new();
    let l = layout(64, 8);
    let block = Owned::new(&heap, l);
    // SAFETY: one byte into the 64-byte slot: inside the same allocation.
    let inside = unsafe { block.ptr.add(1) };
    // SAFETY: deliberate misuse: not a slot start; detected before any change.
    unsafe { heap.deallocate(inside, l) };
}

#[test]
#[should_panic(expected = "foreign pointer")]
fn freeing_a_slot_never_handed_out_panics() {
    let heap = SlabAllocator::new();
    let l = layout(64, 64);
    let block = Owned::new(&heap, l);
    // The slab's last slot: never handed out, not even into this thread's
    // cache (with `std` the next few slots rest there: freeing one of those
    // is a double free, see `a_double_free_panics_in_the_deallocate_that_commits_it`).
    let slots = heap.stats().classes()[3].slots_per_slab;
    let next_slot = block
        .ptr
        .map_addr(|a| a.checked_add(64 * (slots - 1)).unwrap());
    assert_eq!(heap.stats().objects_in_use(), 1);
    // SAFETY: deliberate misuse: a slot of the same slab, never handed out;
    // detected before any change.
    unsafe { heap.deallocate(next_slot, l) };
}

#[test]
#[should_panic(expected = "wrong layout")]
fn freeing_with_the_layout_of_another_class_panics() {
    let heap = SlabAllocator::new();
    let block = Owned::new(&heap, layout(64, 8));
    // SAFETY: deliberate misuse: 64 bytes freed as 32, which goes to the
    // 32-byte class; detected before any change.
    unsafe { heap.deallocate(block.ptr, layout(32, 8)) };
}

#[test]
fn a_detected_misuse_leaves_the_allocator_usable() {
    let heap = SlabAllocator::new();
    let l = layout(64, 8);
    let p = heap.allocate(l).unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: deliberate misuse: freed with another class's layout;
        // detected and reported before anything changes.
        unsafe { heap.deallocate(p, layout(16, 8)) };
    }));
    assert!(result.is_err());
    let s = heap.stats();
    assert_eq!(s.objects_in_use(), 1, "nothing was freed");
    // SAFETY: `p` is still allocated with `l`; freed once, correctly.
    unsafe { heap.deallocate(p, l) };
    assert_eq!(heap.stats().objects_in_use(), 0);
    let q = heap.allocate(l).unwrap();
    assert_eq!(q, p, "the slot is handed out again");
    // SAFETY: allocated with `l`, not used again.
    unsafe { heap.deallocate(q, l) };
}

#[test]
#[should_panic(expected = "double free")]
fn two_handles_to_one_slot_panic_on_the_second_drop() {
    let cache: SlabCache<u64> = SlabCache::new();
    let _keep = cache.alloc(0).unwrap(); // keeps the slab in use
    let raw = SlabBox::into_raw(cache.alloc(7).unwrap());
    // SAFETY: `raw` came from `into_raw` on this cache.
    let first = unsafe { SlabBox::from_raw(&cache, raw) };
    // SAFETY: deliberate misuse: a second handle to the same slot. `u64` has
    // no destructor and the value is never read through it; its drop frees
    // the slot a second time, which checked builds detect.
    let second = unsafe { SlabBox::from_raw(&cache, raw) };
    assert_eq!(*first, 7);
    drop(first); // the legitimate free
    assert_eq!(cache.stats().objects_in_use, 1);
    drop(second); // panics: double free
}

#[test]
#[should_panic(expected = "foreign pointer")]
fn a_handle_to_a_slot_never_handed_out_panics_on_drop() {
    let cache: SlabCache<u64> = SlabCache::new();
    let raw = SlabBox::into_raw(cache.alloc(1).unwrap());
    // SAFETY: `raw` came from `into_raw` on this cache; the one handle to it.
    let _b = unsafe { SlabBox::from_raw(&cache, raw) };
    // The slab's last slot: never handed out, not even into a per-thread
    // cache (the next slot may rest in one: see
    // `a_slot_resting_in_the_thread_cache_freed_again_is_a_double_free`).
    let next_slot = raw.map_addr(|a| {
        a.checked_add(8 * (SlabCache::<u64>::SLOTS_PER_SLAB - 1))
            .unwrap()
    });
    // SAFETY: deliberate misuse: a handle to the next slot, never handed out.
    // `u64` has no destructor; the free is checked before any change.
    drop(unsafe { SlabBox::from_raw(&cache, next_slot) });
}

#[test]
#[should_panic(expected = "foreign pointer")]
fn a_slot_of_another_cache_is_a_foreign_pointer() {
    // `SlabBox::from_raw` documents: a slot of another cache is a foreign
    // pointer, and checked builds panic on it there.
    let home: SlabCache<u64> = SlabCache::new();
    let elsewhere: SlabCache<u64> = SlabCache::new();
    let _a = home.alloc(1).unwrap();
    let _c = elsewhere.alloc(3).unwrap();
    let raw = SlabBox::into_raw(home.alloc(2).unwrap());
    /// Gives the slot back to its own cache while the test unwinds.
    struct GiveBack<'a>(&'a SlabCache<u64>, NonNull<u64>);
    impl Drop for GiveBack<'_> {
        fn drop(&mut self) {
            // SAFETY: the slot came from `into_raw` on this cache; the
            // misused handle below was rejected without freeing it, so this
            // is the one handle that frees it.
            drop(unsafe { SlabBox::from_raw(self.0, self.1) });
        }
    }
    let _give_back = GiveBack(&home, raw);
    // SAFETY: deliberate misuse: `raw` is a slot of `home`, handed to
    // `elsewhere`; `u64` has no destructor, and checked builds reject the
    // free before changing anything.
    drop(unsafe { SlabBox::from_raw(&elsewhere, raw) });
}

#[test]
#[should_panic(expected = "foreign pointer")]
fn a_block_of_another_allocator_is_a_foreign_pointer() {
    // `SlabAllocator::deallocate` documents that checked builds detect "a
    // pointer this allocator never handed out".
    let home = SlabAllocator::new();
    let elsewhere = SlabAllocator::new();
    let l = layout(32, 8);
    let _a = Owned::new(&home, l);
    let _c = Owned::new(&elsewhere, l);
    let block = Owned::new(&home, l);
    // SAFETY: deliberate misuse: the block came from `home`, not
    // `elsewhere`; checked builds reject the free before changing anything.
    unsafe { elsewhere.deallocate(block.ptr, l) };
}

/// Frees a fresh block of `l` from `heap`, writes `value` at `offset` into it
/// afterwards (the misuse), and returns the dangling pointer. `_keep` holds
/// the slab, so the next allocation of `l` is handed that very slot.
fn write_after_free(heap: &SlabAllocator, l: Layout, offset: usize, value: u8) -> NonNull<u8> {
    let p = heap.allocate(l).unwrap();
    // SAFETY: allocated from `heap` with `l`, freed once here.
    unsafe { heap.deallocate(p, l) };
    // Deliberate misuse: a write through a dangling pointer, the bug checked
    // builds are there to catch when the slot is handed out again.
    // SAFETY: the slot is still inside a live slab page (another block keeps
    // it in use), so the write lands in memory the allocator owns.
    unsafe { p.as_ptr().wrapping_add(offset).write(value) };
    p
}

#[test]
#[should_panic(expected = "write after free")]
fn a_write_into_a_freed_block_is_caught_when_it_is_handed_out_again() {
    let heap = SlabAllocator::new();
    let l = layout(48, 8);
    let _keep = Owned::new(&heap, l);
    let _ = write_after_free(&heap, l, 40, 0);
    let _ = heap.allocate(l); // the freed slot is next: its poison was changed
}

#[test]
fn the_report_names_the_slot_and_the_first_changed_byte() {
    let heap = SlabAllocator::new();
    let l = layout(64, 8);
    let _keep = Owned::new(&heap, l);
    let p = write_after_free(&heap, l, 17, 0x11);
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| heap.allocate(l)))
        .expect_err("the corrupted slot is not handed out");
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains("write after free"), "{message}");
    assert!(message.contains(&format!("{p:p}")), "{message}");
    assert!(message.contains("byte 17"), "{message}");
}

#[test]
#[should_panic(expected = "write after free")]
fn an_overwritten_free_list_link_is_caught_before_it_is_followed() {
    let heap = SlabAllocator::new();
    let l = layout(32, 8);
    let _keep = Owned::new(&heap, l);
    // The first word of a free slot is its link to the next free slot.
    let _ = write_after_free(&heap, l, 0, 0xFF);
    let _ = heap.allocate(l);
}

#[test]
#[should_panic(expected = "write after free")]
fn a_write_through_a_dropped_handle_is_caught_on_the_next_alloc() {
    let cache: SlabCache<[u64; 4]> = SlabCache::new();
    let _keep = cache.alloc([0; 4]).unwrap();
    let raw = SlabBox::into_raw(cache.alloc([1; 4]).unwrap());
    // SAFETY: `raw` came from `into_raw` on this cache; the one handle to it.
    drop(unsafe { SlabBox::from_raw(&cache, raw) });
    // SAFETY: deliberate misuse: a write through the dangling pointer, into
    // a slot of a slab that `_keep` keeps alive.
    unsafe { raw.cast::<u64>().as_ptr().wrapping_add(3).write(42) };
    let _ = cache.alloc([2; 4]); // hands out the same slot: caught
}

#[test]
fn a_clean_free_and_reuse_passes_the_poison_check() {
    let cache: SlabCache<[u8; 40]> = SlabCache::new();
    for round in 0..100u8 {
        let b = cache.alloc([round; 40]).unwrap();
        assert_eq!(b[39], round);
    }
    // Freed slots are poisoned; the next owner gets its own value, not poison.
    assert_eq!(*cache.alloc([7; 40]).unwrap(), [7; 40]);
}

// ---------------------------------------------------------- caught at once
//
// Only the misusing call runs inside `panics_naming`: its panic must come
// from that call, not from a later flush, reuse or drop. Should a check go
// missing, the test forgets the cache or allocator that now holds the bad
// pointer (so that nothing trips over it while the test fails) and fails.

#[test]
fn a_second_handle_to_a_slot_panics_in_the_drop_that_frees_it_twice() {
    let cache: SlabCache<u64> = SlabCache::new();
    let keep = cache.alloc(0).unwrap(); // keeps the slab in use
    let raw = SlabBox::into_raw(cache.alloc(7).unwrap());
    // SAFETY: `raw` came from `into_raw` on this cache; the one handle.
    drop(unsafe { SlabBox::from_raw(&cache, raw) });
    // SAFETY: deliberate misuse: a second handle to the freed slot. `u64`
    // has no destructor; its drop frees the slot again, which checked builds
    // reject before changing anything.
    let second = unsafe { SlabBox::from_raw(&cache, raw) };
    if !panics_naming("double free", move || drop(second)) {
        std::mem::forget(keep);
        std::mem::forget(cache);
        panic!("a double free through a SlabBox was not caught by its drop");
    }
    assert_eq!(cache.stats().objects_in_use, 1, "nothing was freed");
    drop(keep);
    assert_eq!(cache.stats().objects_in_use, 0);
    assert_eq!(*cache.alloc(3).unwrap(), 3);
}

#[test]
fn a_slot_of_another_cache_panics_in_from_raw() {
    let home: SlabCache<u64> = SlabCache::new();
    let elsewhere: SlabCache<u64> = SlabCache::new();
    let (a, c) = (home.alloc(1).unwrap(), elsewhere.alloc(3).unwrap());
    let raw = SlabBox::into_raw(home.alloc(2).unwrap());
    // A handle holds only its value's address and finds its cache in the
    // slab's header: the check that the slot is the given cache's is made
    // when the handle is rebuilt, which is where the mistake is.
    let caught = panics_naming("foreign pointer", || {
        // SAFETY: deliberate misuse: a slot of `home` handed to `elsewhere`;
        // checked builds reject it before a handle exists.
        let stray = unsafe { SlabBox::from_raw(&elsewhere, raw) };
        std::mem::forget(stray);
    });
    if !caught {
        std::mem::forget((a, c));
        std::mem::forget((home, elsewhere));
        panic!("a slot of another cache was not caught by from_raw");
    }
    assert_eq!(elsewhere.stats().objects_in_use, 1, "nothing was freed");
    assert_eq!(home.stats().objects_in_use, 2);
    // SAFETY: `raw` came from `into_raw` on `home`, and the rejected call
    // made no handle: this is the one handle that frees it.
    let back = unsafe { SlabBox::from_raw(&home, raw) };
    assert_eq!(SlabBox::into_inner(back), 2);
    drop((a, c));
    assert_eq!(
        home.stats().objects_in_use + elsewhere.stats().objects_in_use,
        0
    );
}

#[test]
fn a_slot_never_handed_out_panics_in_the_drop_that_frees_it() {
    let cache: SlabCache<u64> = SlabCache::new();
    let raw = SlabBox::into_raw(cache.alloc(1).unwrap());
    // The slab's last slot: never handed out, not even into a per-thread
    // cache.
    let next_slot = raw.map_addr(|a| {
        a.checked_add(8 * (SlabCache::<u64>::SLOTS_PER_SLAB - 1))
            .unwrap()
    });
    // SAFETY: deliberate misuse: a handle to the next slot, never handed
    // out. `u64` has no destructor; the free is checked before any change.
    let stray = unsafe { SlabBox::from_raw(&cache, next_slot) };
    // The drop checks it at once, into a per-thread cache (`std`) or not:
    // its slab's bitmap says no user holds it, and its slab, that it was
    // never handed out.
    let caught = panics_naming("foreign pointer", move || drop(stray));
    if !caught {
        std::mem::forget(cache);
        panic!("a slot never handed out was not caught by the drop that freed it");
    }
    assert_eq!(cache.stats().objects_in_use, 1, "nothing was freed");
    // SAFETY: `raw` came from `into_raw` on this cache; the one handle.
    drop(unsafe { SlabBox::from_raw(&cache, raw) });
    assert_eq!(cache.stats().objects_in_use, 0);
}

#[test]
fn a_double_free_panics_in_the_deallocate_that_commits_it() {
    let heap = SlabAllocator::new();
    let l = layout(48, 8);
    let keep = heap.allocate(l).unwrap(); // keeps the slab in use
    let p = heap.allocate(l).unwrap();
    // SAFETY: allocated from `heap` with `l`, freed once here.
    unsafe { heap.deallocate(p, l) };
    // SAFETY: deliberate misuse: a double free, which checked builds detect
    // before touching the slab (still live: `keep` is in it).
    let misuse = || unsafe { heap.deallocate(p, l) };
    if !panics_naming("double free", misuse) {
        std::mem::forget(heap);
        panic!("a double free was not caught by the deallocate that committed it");
    }
    assert_eq!(heap.stats().objects_in_use(), 1, "nothing was freed");
    // SAFETY: allocated from `heap` with `l`, freed once.
    unsafe { heap.deallocate(keep, l) };
    assert_eq!(heap.stats().objects_in_use(), 0);
}

#[test]
fn a_block_of_another_allocator_panics_in_the_deallocate_that_frees_it() {
    let home = SlabAllocator::new();
    let elsewhere = SlabAllocator::new();
    let l = layout(32, 8);
    let c = elsewhere.allocate(l).unwrap();
    let block = home.allocate(l).unwrap();
    // SAFETY: deliberate misuse: the block came from `home`, not
    // `elsewhere`; checked builds reject the free before changing anything.
    let misuse = || unsafe { elsewhere.deallocate(block, l) };
    if !panics_naming("foreign pointer", misuse) {
        std::mem::forget((home, elsewhere));
        panic!("a block of another allocator was not caught by the deallocate that freed it");
    }
    assert_eq!(elsewhere.stats().objects_in_use(), 1, "nothing was freed");
    assert_eq!(home.stats().objects_in_use(), 1);
    // SAFETY: allocated from `home` with `l`; the rejected free did not
    // free it, so this is the one free.
    unsafe { home.deallocate(block, l) };
    // SAFETY: allocated from `elsewhere` with `l`, freed once.
    unsafe { elsewhere.deallocate(c, l) };
    assert_eq!(
        home.stats().objects_in_use() + elsewhere.stats().objects_in_use(),
        0
    );
}

/// A pointer sent to the threads that misuse it.
#[cfg(feature = "std")]
#[derive(Clone, Copy)]
struct Shared<T>(NonNull<T>);

// SAFETY: only an address with provenance; each test decides who uses it.
#[cfg(feature = "std")]
unsafe impl<T> Send for Shared<T> {}

/// Runs `first` to its end on a thread of its own, then `second` on another
/// thread, and returns whether `second` panicked naming `expected`. Each
/// free lands in its own thread's cache (magazine), where the slab's own
/// check does not run.
#[cfg(feature = "std")]
fn on_two_threads(
    expected: &str,
    first: impl FnOnce() + Send,
    second: impl FnOnce() + Send,
) -> bool {
    std::thread::scope(|s| {
        s.spawn(first).join().unwrap();
        s.spawn(move || panics_naming(expected, second))
            .join()
            .unwrap()
    })
}

/// A slot freed on two threads (through two handles rebuilt from one raw
/// pointer): each free lands in its thread's cache, and the second is
/// caught by the drop that commits it, named as a double free; nothing else
/// is lost.
#[test]
#[cfg(feature = "std")]
fn a_double_free_across_threads_panics_in_the_second_drop() {
    let cache: SlabCache<u64> = SlabCache::new();
    let keep = cache.alloc(7).unwrap(); // keeps the slab in use
    let raw = Shared(SlabBox::into_raw(cache.alloc(1).unwrap()));
    let home = &cache;
    // SAFETY: `raw` came from `into_raw` on this cache: the first free is
    // legitimate, the second (a handle to the freed slot, `u64` having no
    // destructor) is the deliberate misuse, which checked builds reject
    // before changing anything.
    let free = move || drop(unsafe { SlabBox::from_raw(home, { raw }.0) });
    if !on_two_threads("double free", free, free) {
        // The slot rests with both threads' leftovers: forget the cache.
        std::mem::forget(keep);
        std::mem::forget(cache);
        panic!("a double free across threads was not caught by the second drop");
    }
    assert_eq!(*keep, 7);
    assert_eq!(cache.stats().objects_in_use, 1);
}

/// `SlabAllocator::deallocate` of one block on two threads: the second
/// free is caught there, though the first rests in the other thread's cache.
#[test]
#[cfg(feature = "std")]
fn a_block_freed_on_two_threads_panics_in_the_second_deallocate() {
    let heap = SlabAllocator::new();
    let l = layout(48, 8);
    let keep = heap.allocate(l).unwrap(); // keeps the slab in use
    let p = Shared(heap.allocate(l).unwrap());
    let shared = &heap;
    // SAFETY: allocated from `heap` with `l`: the first free is legitimate,
    // the second the deliberate misuse, which checked builds reject before
    // changing anything.
    let free = move || unsafe { shared.deallocate({ p }.0, l) };
    if !on_two_threads("double free", free, free) {
        // The block rests with both threads' leftovers: forget the heap.
        std::mem::forget(heap);
        panic!("a block freed on two threads was not caught by the second free");
    }
    assert_eq!(heap.stats().objects_in_use(), 1, "freed once");
    // SAFETY: allocated from `heap` with `l`, freed once.
    unsafe { heap.deallocate(keep, l) };
    assert_eq!(heap.stats().objects_in_use(), 0);
}

/// A block freed into this thread's cache, given back to its slab by a
/// flush, then freed again: caught by the second free, though no magazine
/// holds the block any more.
#[test]
fn a_block_freed_again_after_a_flush_panics_in_that_deallocate() {
    let heap = SlabAllocator::new();
    let l = layout(64, 8);
    let keep = heap.allocate(l).unwrap(); // keeps the slab in use
    let p = heap.allocate(l).unwrap();
    // SAFETY: allocated from `heap` with `l`, freed once here.
    unsafe { heap.deallocate(p, l) };
    heap.flush_thread_cache();
    // SAFETY: deliberate misuse: a double free, which checked builds reject
    // before changing anything (the slab is live: `keep` is in it).
    let misuse = || unsafe { heap.deallocate(p, l) };
    if !panics_naming("double free", misuse) {
        std::mem::forget(heap);
        panic!("a block freed again after a flush was not caught by that free");
    }
    assert_eq!(heap.stats().objects_in_use(), 1, "nothing was freed");
    // SAFETY: allocated from `heap` with `l`, freed once.
    unsafe { heap.deallocate(keep, l) };
    assert_eq!(heap.stats().objects_in_use(), 0);
}

/// A handle dropped into this thread's cache, the slot given back to its
/// slab by `shrink`, then a second handle to it dropped: caught by that
/// drop.
#[test]
fn a_slot_freed_again_after_a_shrink_panics_in_that_drop() {
    let cache: SlabCache<[u64; 2]> = SlabCache::new();
    let keep = cache.alloc([7; 2]).unwrap(); // keeps the slab in use
    let raw = SlabBox::into_raw(cache.alloc([1; 2]).unwrap());
    // SAFETY: `raw` came from `into_raw` on this cache; the one handle.
    drop(unsafe { SlabBox::from_raw(&cache, raw) });
    cache.shrink();
    // SAFETY: deliberate misuse: a second handle to the freed slot; the
    // value has no destructor, and checked builds reject the free before
    // changing anything.
    let second = unsafe { SlabBox::from_raw(&cache, raw) };
    if !panics_naming("double free", move || drop(second)) {
        std::mem::forget(keep);
        std::mem::forget(cache);
        panic!("a slot freed again after a shrink was not caught by that drop");
    }
    assert_eq!(cache.stats().objects_in_use, 1, "nothing was freed");
    drop(keep);
    assert_eq!(cache.stats().objects_in_use, 0);
}

/// Set in the child process that
/// `a_block_freed_on_two_threads_through_global_alloc_aborts` starts.
#[cfg(feature = "std")]
const GLOBAL_CHILD: &str = "MINIMAL_SLAB_MISUSE_GLOBAL_CHILD";

/// `GlobalAlloc::dealloc` of one block on two threads. `GlobalAlloc` must
/// not unwind, so the report aborts the process: the misuse runs in a child
/// process, which must abort with the message instead of ending normally.
#[test]
#[cfg(feature = "std")]
#[cfg_attr(miri, ignore = "starts a child process")]
fn a_block_freed_on_two_threads_through_global_alloc_aborts() {
    use std::alloc::GlobalAlloc;
    const NAME: &str = "a_block_freed_on_two_threads_through_global_alloc_aborts";
    if std::env::var_os(GLOBAL_CHILD).is_some() {
        let heap = SlabAllocator::new();
        let l = layout(24, 8);
        // SAFETY: a valid, non-zero layout.
        let keep = unsafe { heap.alloc(l) }; // keeps the slab in use
        // SAFETY: as above.
        let p = Shared(NonNull::new(unsafe { heap.alloc(l) }).unwrap());
        let heap = &heap;
        // SAFETY: allocated from `heap` with `l`: the first free is
        // legitimate, the second the deliberate misuse, which aborts.
        let free = move || unsafe { heap.dealloc({ p }.0.as_ptr(), l) };
        std::thread::scope(|s| {
            s.spawn(free).join().unwrap();
            s.spawn(free).join().unwrap();
        });
        // Reached only if the second free was not caught.
        std::hint::black_box(keep);
        std::process::exit(0);
    }
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--test-threads=1", "--nocapture"])
        .env(GLOBAL_CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&child.stderr);
    assert!(
        !child.status.success(),
        "the child ended normally: the second free was not caught"
    );
    assert!(stderr.contains("double free"), "{stderr}");
}

#[test]
fn a_slot_of_another_cache_made_shared_by_a_local_front_panics_there() {
    let home: SlabCache<u64> = SlabCache::new();
    let elsewhere: SlabCache<u64> = SlabCache::new();
    let innocent = home.alloc(7).unwrap();
    let raw = SlabBox::into_raw(home.alloc(1).unwrap());
    let local = elsewhere.local();
    let caught = panics_naming("foreign pointer", || {
        // SAFETY: deliberate misuse: a slot of `home` given to a front of
        // `elsewhere`; checked builds reject it before a shared handle (and
        // the slab's record of its cache) is made.
        let stray = unsafe { minimal_slab::LocalBox::from_raw(&local, raw) };
        std::mem::forget(minimal_slab::LocalBox::into_shared(stray));
    });
    if !caught {
        std::mem::forget(innocent);
        std::mem::forget(local);
        std::mem::forget((home, elsewhere));
        panic!("a slot of another cache was not caught by into_shared");
    }
    // The slab still names its own cache: the innocent handle goes home.
    assert!(std::ptr::eq(SlabBox::cache(&innocent), &home));
    drop(innocent);
    // SAFETY: `raw` came from `into_raw` on `home`; the one handle.
    drop(unsafe { SlabBox::from_raw(&home, raw) });
    drop(local);
    home.flush_thread_cache();
    assert_eq!(home.stats().objects_in_use, 0);
}
