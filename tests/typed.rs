//! The typed object pool, `SlabCache<T>` and its handle `SlabBox`: every
//! value is dropped exactly once (or never, when leaked), zero-sized and
//! over-aligned types work, a panicking destructor or constructor never loses
//! a slot, a failed allocation hands the value back, slots are reused last in
//! first out, the handle forwards the traits of `T`, the geometry constants
//! are what the docs say, and empty pages beyond the reserve go back to the
//! page allocator.

mod common;

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{CountingPages, flush_thread_cache};
use minimal_slab::typenum::U8192;
use minimal_slab::{
    AllocError, CacheConfig, ChunkedGlobalPages, GlobalPages, NoPages, PageAllocError,
    PageAllocator, SlabBox, SlabCache,
};

/// Counts its drops in the counter it points to.
#[derive(Debug)]
struct Counted<'a> {
    drops: &'a AtomicUsize,
    id: u32,
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

fn counted(drops: &AtomicUsize, id: u32) -> Counted<'_> {
    Counted { drops, id }
}

fn drops(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

#[test]
fn dropping_a_handle_drops_the_value_once_and_frees_the_slot() {
    let counter = AtomicUsize::new(0);
    let cache = SlabCache::new();
    let b = cache.alloc(counted(&counter, 1)).unwrap();
    assert_eq!(b.id, 1);
    assert_eq!(cache.stats().objects_in_use, 1);
    assert_eq!(drops(&counter), 0, "alloc does not drop the value");
    drop(b);
    assert_eq!(drops(&counter), 1);
    assert_eq!(cache.stats().objects_in_use, 0);
}

#[test]
fn into_inner_moves_the_value_out_without_dropping_it() {
    let counter = AtomicUsize::new(0);
    let cache = SlabCache::new();
    let b = cache.alloc(counted(&counter, 2)).unwrap();
    let value = SlabBox::into_inner(b);
    assert_eq!(drops(&counter), 0, "into_inner must not drop the value");
    assert_eq!(cache.stats().objects_in_use, 0, "into_inner frees the slot");
    assert_eq!(value.id, 2);
    drop(value);
    assert_eq!(drops(&counter), 1);
}

#[test]
fn a_leaked_value_is_never_dropped_and_its_slot_never_reused() {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    // A static cache: the leaked value lives as long as the program.
    static CACHE: SlabCache<Counted<'static>> = SlabCache::new();
    let leaked: &'static mut Counted<'static> =
        SlabBox::leak(CACHE.alloc(counted(&COUNTER, 3)).unwrap());
    leaked.id += 1;
    let addr = std::ptr::from_mut(leaked).addr();
    assert_eq!(CACHE.stats().objects_in_use, 1, "the slot stays in use");
    for _ in 0..100 {
        let other = CACHE.alloc(counted(&COUNTER, 0)).unwrap();
        assert_ne!(
            SlabBox::as_ptr(&other).addr(),
            addr,
            "a leaked slot is handed out again"
        );
    }
    assert_eq!(drops(&COUNTER), 100, "only the 100 others were dropped");
    assert_eq!(leaked.id, 4);
}

#[test]
fn a_pinned_value_is_dropped_once_and_stays_in_place() {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    // Pinning is for caches borrowed for 'static.
    static CACHE: SlabCache<Counted<'static>> = SlabCache::new();
    let pinned: Pin<SlabBox<'static, Counted<'static>>> =
        SlabBox::into_pin(CACHE.alloc(counted(&COUNTER, 5)).unwrap());
    assert_eq!(pinned.id, 5);
    let addr = std::ptr::from_ref(&*pinned).addr();
    let moved = pinned; // moving the handle never moves the value
    assert_eq!(std::ptr::from_ref(&*moved).addr(), addr);
    drop(moved);
    assert_eq!(drops(&COUNTER), 1);
    let also_pinned: Pin<SlabBox<'static, Counted<'static>>> =
        CACHE.alloc(counted(&COUNTER, 6)).unwrap().into();
    assert_eq!(
        std::ptr::from_ref(&*also_pinned).addr(),
        addr,
        "the slot was reused"
    );
    let third = SlabBox::into_pin(CACHE.alloc(counted(&COUNTER, 7)).unwrap());
    assert_eq!((also_pinned.id, third.id), (6, 7));
    drop(also_pinned);
    drop(third);
    assert_eq!(drops(&COUNTER), 3);
    assert_eq!(CACHE.stats().objects_in_use, 0);
}

#[test]
fn many_values_each_dropped_exactly_once() {
    let counter = AtomicUsize::new(0);
    let cache = SlabCache::new();
    let boxes: Vec<_> = (0..1000)
        .map(|id| {
            cache
                .alloc(Counted {
                    drops: &counter,
                    id,
                })
                .unwrap()
        })
        .collect();
    for (i, b) in boxes.iter().enumerate() {
        assert_eq!(b.id as usize, i);
    }
    assert_eq!(drops(&counter), 0);
    drop(boxes);
    assert_eq!(drops(&counter), 1000);
    assert_eq!(cache.stats().objects_in_use, 0);
}

// ----------------------------------------------------------- zero-sized types

struct Unit;

/// A zero-sized type with a destructor.
struct CountedZst;

static ZST_DROPS: AtomicUsize = AtomicUsize::new(0);

impl Drop for CountedZst {
    fn drop(&mut self) {
        ZST_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn zero_sized_types_take_no_slot_and_no_page() {
    assert_eq!(SlabCache::<Unit>::SLOT_SIZE, 0);
    assert_eq!(SlabCache::<Unit>::SLOTS_PER_SLAB, 0);
    assert_eq!(SlabCache::<()>::SLOT_SIZE, 0);
    assert_eq!(SlabCache::<()>::SLOTS_PER_SLAB, 0);

    let units: SlabCache<Unit> = SlabCache::new();
    let handles: Vec<_> = (0..if cfg!(miri) { 500 } else { 10_000 })
        .map(|_| units.alloc(Unit).unwrap())
        .collect();
    assert_eq!(units.stats().pages, 0, "zero-sized values take no page");
    assert_eq!(units.stats().slot_size, 0);
    assert_eq!(units.stats().slots_per_slab, 0);
    drop(handles);

    // Not even a page source is needed.
    let nothing = SlabCache::<(), NoPages>::new_in(NoPages);
    let a = nothing.alloc(()).expect("a ZST needs no page");
    let b = nothing.alloc_with(|| ()).expect("a ZST needs no page");
    assert_eq!(*a, ());
    assert_eq!(SlabBox::as_ptr(&b).addr() % align_of::<()>(), 0);
    let raw = SlabBox::into_raw(a);
    // SAFETY: `raw` came from `into_raw` on this cache and is used once.
    drop(unsafe { SlabBox::from_raw(&nothing, raw) });
    drop(b);
    assert_eq!(nothing.stats().pages, 0);
}

#[test]
fn zero_sized_values_are_dropped_exactly_once() {
    let cache = SlabCache::<CountedZst, NoPages>::new_in(NoPages);
    let before = drops(&ZST_DROPS);
    let a = cache.alloc(CountedZst).unwrap();
    let b = cache.alloc(CountedZst).unwrap();
    drop(a);
    assert_eq!(drops(&ZST_DROPS), before + 1);
    let inner = SlabBox::into_inner(b);
    assert_eq!(drops(&ZST_DROPS), before + 1);
    drop(inner);
    assert_eq!(drops(&ZST_DROPS), before + 2);
}

// ---------------------------------------------------------------- alignment

#[repr(align(64))]
struct Align64(u8);

#[repr(align(4096))]
struct Align4096(u64);

#[test]
fn over_aligned_types_get_aligned_slots() {
    let cache: SlabCache<Align64> = SlabCache::new();
    assert_eq!(SlabCache::<Align64>::SLOT_SIZE, 64);
    let boxes: Vec<_> = (0..200)
        .map(|i| cache.alloc(Align64(i as u8)).unwrap())
        .collect();
    let mut addrs = BTreeSet::new();
    for (i, b) in boxes.iter().enumerate() {
        let addr = SlabBox::as_ptr(b).addr();
        assert_eq!(addr % 64, 0, "Align64 at {addr:#x}");
        assert!(addrs.insert(addr));
        assert_eq!(b.0, i as u8);
    }
}

#[test]
fn page_aligned_types_fit_on_bigger_pages() {
    type Cache = SlabCache<Align4096, GlobalPages<U8192>>;
    assert_eq!(Cache::SLOT_SIZE, 4096);
    assert_eq!(
        Cache::SLOTS_PER_SLAB,
        1,
        "the header takes the first half of the page"
    );
    let cache: Cache = SlabCache::new_in(GlobalPages::with_page_size());
    let boxes: Vec<_> = (0..5).map(|i| cache.alloc(Align4096(i)).unwrap()).collect();
    for (i, b) in boxes.iter().enumerate() {
        assert_eq!(SlabBox::as_ptr(b).addr() % 4096, 0);
        assert_eq!(b.0, i as u64);
    }
    assert_eq!(cache.stats().pages, 5);
    assert_eq!(cache.stats().page_size, 8192);
}

// ------------------------------------------------- panics in drop and make

/// Panics when dropped if armed.
struct Bomb {
    armed: bool,
}

impl Drop for Bomb {
    fn drop(&mut self) {
        if self.armed {
            panic!("Bomb::drop");
        }
    }
}

#[test]
fn a_panicking_destructor_still_returns_the_slot() {
    let cache: SlabCache<Bomb> = SlabCache::new();
    let keep = cache.alloc(Bomb { armed: false }).unwrap();
    let bomb = cache.alloc(Bomb { armed: true }).unwrap();
    let addr = SlabBox::as_ptr(&bomb).addr();
    assert_eq!(cache.stats().objects_in_use, 2);

    let result = catch_unwind(AssertUnwindSafe(|| drop(bomb)));
    assert!(result.is_err(), "the destructor's panic goes on");
    assert_eq!(cache.stats().objects_in_use, 1, "the slot was returned");

    let next = cache.alloc(Bomb { armed: false }).unwrap();
    assert_eq!(
        SlabBox::as_ptr(&next).addr(),
        addr,
        "the returned slot is reused first"
    );
    drop(next);
    drop(keep);
    assert_eq!(cache.stats().objects_in_use, 0);
}

#[test]
fn a_panicking_constructor_returns_the_slot() {
    let cache: SlabCache<[u64; 4]> = SlabCache::new();
    let keep = cache.alloc([1; 4]).unwrap();
    let probe = cache.alloc([2; 4]).unwrap();
    let free_addr = SlabBox::as_ptr(&probe).addr();
    drop(probe);

    let result = catch_unwind(AssertUnwindSafe(|| {
        cache.alloc_with(|| -> [u64; 4] { panic!("make failed") })
    }));
    assert!(result.is_err(), "the closure's panic goes on");
    assert_eq!(cache.stats().objects_in_use, 1, "the slot was returned");

    let next = cache.alloc_with(|| [3; 4]).unwrap();
    assert_eq!(*next, [3; 4]);
    assert_eq!(
        SlabBox::as_ptr(&next).addr(),
        free_addr,
        "that slot is handed out again"
    );
    drop(next);
    drop(keep);
    assert_eq!(cache.stats().objects_in_use, 0);
}

#[test]
fn alloc_with_does_not_call_the_closure_without_a_slot() {
    let cache = SlabCache::<u64, NoPages>::new_in(NoPages);
    let err = cache
        .alloc_with(|| panic!("must not be called"))
        .unwrap_err();
    assert_eq!(err, AllocError::Pages(PageAllocError::OutOfMemory));
}

// ------------------------------------------------------ allocation failure

#[test]
fn a_failed_allocation_hands_the_value_back() {
    let counter = AtomicUsize::new(0);
    let cache: SlabCache<Counted<'_>> = SlabCache::with_config(
        ChunkedGlobalPages::default(),
        CacheConfig::new().page_limit(1),
    );
    assert_eq!(cache.config().page_limit, Some(1));
    let per_slab = SlabCache::<Counted<'_>>::SLOTS_PER_SLAB;
    let mut boxes: Vec<_> = (0..per_slab)
        .map(|id| cache.alloc(counted(&counter, id as u32)).unwrap())
        .collect();
    assert_eq!(cache.stats().pages, 1);
    assert_eq!(cache.stats().free_slots, 0);

    let failed = cache.alloc(counted(&counter, 777)).unwrap_err();
    assert_eq!(failed.error(), AllocError::PageLimit { limit: 1 });
    assert_eq!(failed.value().id, 777);
    assert!(
        failed.to_string().contains(&failed.error().to_string()),
        "{failed}"
    );
    assert!(format!("{failed:?}").contains("PageLimit"));
    assert_eq!(drops(&counter), 0, "the value is not dropped on failure");
    let value = failed.into_value();
    assert_eq!(value.id, 777);
    assert_eq!(drops(&counter), 0);

    // Once a slot is free, the same value goes in.
    boxes.pop();
    assert_eq!(drops(&counter), 1);
    let stored = cache
        .alloc(value)
        .map_err(|_| ())
        .expect("a slot is free again");
    assert_eq!(stored.id, 777);
    assert_eq!(cache.stats().pages, 1, "still within the limit");

    // An AllocFailed that is dropped drops its value once.
    let failed = cache.alloc(counted(&counter, 778)).unwrap_err();
    drop(failed);
    assert_eq!(drops(&counter), 2);
}

#[test]
fn an_allocator_without_pages_hands_the_value_back() {
    let cache = SlabCache::<String, NoPages>::new_in(NoPages);
    let failed = cache.alloc(String::from("kept")).unwrap_err();
    assert_eq!(
        failed.error(),
        AllocError::Pages(PageAllocError::OutOfMemory)
    );
    let source = std::error::Error::source(&failed).expect("the error is the source");
    assert_eq!(source.to_string(), failed.error().to_string());
    assert_eq!(failed.into_value(), "kept");
    assert_eq!(cache.stats().pages, 0);
}

#[test]
fn a_page_limit_of_zero_refuses_the_first_allocation() {
    let cache: SlabCache<u64> = SlabCache::with_config(
        ChunkedGlobalPages::default(),
        CacheConfig::new().page_limit(0),
    );
    let failed = cache.alloc(9).unwrap_err();
    assert_eq!(failed.error(), AllocError::PageLimit { limit: 0 });
    assert_eq!(failed.into_value(), 9);
    cache.set_config(CacheConfig::new().unlimited());
    assert_eq!(
        *cache.alloc(9).unwrap(),
        9,
        "lifting the limit lets it grow"
    );
}

// ---------------------------------------------------------------- slot reuse

#[test]
fn the_slot_freed_last_is_handed_out_first() {
    let cache: SlabCache<u64> = SlabCache::new();
    let keep = cache.alloc(0).unwrap();
    let a = cache.alloc(1).unwrap();
    let b = cache.alloc(2).unwrap();
    let (addr_a, addr_b) = (SlabBox::as_ptr(&a).addr(), SlabBox::as_ptr(&b).addr());
    assert_ne!(addr_a, addr_b);

    drop(a);
    let c = cache.alloc(3).unwrap();
    assert_eq!(
        SlabBox::as_ptr(&c).addr(),
        addr_a,
        "free then alloc reuses the slot"
    );

    drop(b);
    drop(c);
    let d = cache.alloc(4).unwrap();
    let e = cache.alloc(5).unwrap();
    assert_eq!(
        SlabBox::as_ptr(&d).addr(),
        addr_a,
        "last freed, first reused"
    );
    assert_eq!(SlabBox::as_ptr(&e).addr(), addr_b);
    assert_eq!((*keep, *d, *e), (0, 4, 5));
}

// ------------------------------------------------------- trait forwarding

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Name(String);

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.0)
    }
}

fn hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

#[test]
fn a_handle_formats_like_its_value() {
    let cache: SlabCache<Name> = SlabCache::new();
    let b = cache.alloc(Name("ada".into())).unwrap();
    assert_eq!(format!("{b:?}"), format!("{:?}", Name("ada".into())));
    assert_eq!(format!("{b}"), "<ada>");
    assert_eq!(format!("{b:>8}"), format!("{:>8}", *b));
    assert_eq!(format!("{b:p}"), format!("{:p}", SlabBox::as_ptr(&b)));
}

#[test]
// The cache behind each handle has interior mutability, but a handle's hash
// and order are those of its value, which no one mutates while it is a key.
#[allow(clippy::mutable_key_type)]
fn handles_compare_and_hash_like_their_values() {
    let cache: SlabCache<Name> = SlabCache::new();
    let other: SlabCache<Name> = SlabCache::new();
    let a = cache.alloc(Name("a".into())).unwrap();
    let a2 = other.alloc(Name("a".into())).unwrap();
    let b = cache.alloc(Name("b".into())).unwrap();
    assert_eq!(a, a2, "equal values, different slots and caches");
    assert_ne!(a, b);
    assert!(a < b && b > a2);
    assert_eq!(a.cmp(&b), std::cmp::Ordering::Less);
    assert_eq!(hash_of(&a), hash_of(&Name("a".into())));

    // Hash + Eq + Borrow: look boxes up by plain values.
    let mut set = HashSet::new();
    for word in ["x", "y", "z", "x"] {
        set.insert(cache.alloc(Name(word.into())).unwrap());
    }
    assert_eq!(
        set.len(),
        3,
        "the duplicate was rejected (and its box dropped)"
    );
    assert!(set.contains(&Name("y".into())));
    assert!(!set.contains(&Name("w".into())));

    // Ord: a BTreeSet of boxes is sorted by value.
    let sorted: BTreeSet<_> = ["m", "c", "t", "a"]
        .into_iter()
        .map(|w| cache.alloc(Name(w.into())).unwrap())
        .collect();
    let order: Vec<&str> = sorted.iter().map(|b| b.0.as_str()).collect();
    assert_eq!(order, ["a", "c", "m", "t"]);
    assert!(sorted.contains(&Name("t".into())));
    assert_eq!(cache.stats().objects_in_use, 2 + 3 + 4);
}

#[test]
fn a_handle_lends_its_value() {
    use std::borrow::{Borrow, BorrowMut};
    let cache: SlabCache<Vec<u32>> = SlabCache::new();
    let mut b = cache.alloc(vec![1, 2]).unwrap();
    let r: &Vec<u32> = b.as_ref();
    assert_eq!(r, &[1, 2]);
    assert_eq!(std::ptr::from_ref(r).addr(), SlabBox::as_ptr(&b).addr());
    b.as_mut().push(3);
    BorrowMut::<Vec<u32>>::borrow_mut(&mut b).push(4);
    let borrowed: &Vec<u32> = b.borrow();
    assert_eq!(borrowed, &[1, 2, 3, 4]);
    assert!(std::ptr::eq(SlabBox::cache(&b), &cache));
}

// ---------------------------------------------------------- raw round trip

#[test]
fn into_raw_and_from_raw_round_trip() {
    let counter = AtomicUsize::new(0);
    let cache = SlabCache::new();
    let b = cache.alloc(counted(&counter, 42)).unwrap();
    let addr = SlabBox::as_ptr(&b).addr();
    let raw = SlabBox::into_raw(b);
    assert_eq!(raw.as_ptr().addr(), addr);
    assert_eq!(drops(&counter), 0, "into_raw keeps the value");
    assert_eq!(cache.stats().objects_in_use, 1, "into_raw keeps the slot");
    // SAFETY: `raw` came from `into_raw` on this cache, and one handle is made.
    let back = unsafe { SlabBox::from_raw(&cache, raw) };
    assert_eq!(back.id, 42);
    assert_eq!(SlabBox::as_ptr(&back).addr(), addr);
    drop(back);
    assert_eq!(drops(&counter), 1);
    assert_eq!(cache.stats().objects_in_use, 0);
}

// ---------------------------------------------------------------- geometry

/// Slots of a 4 KiB page after the header: at least what remains after 160
/// bytes of header and bitmap room (the bitmap is largest for pointer-sized
/// slots: 128 bytes for 4-byte slots on 32-bit targets), and never the whole
/// page.
fn assert_plausible_geometry<T>(expected_size: usize) {
    let size = SlabCache::<T>::SLOT_SIZE;
    let per = SlabCache::<T>::SLOTS_PER_SLAB;
    assert_eq!(size, expected_size, "{}", std::any::type_name::<T>());
    assert!(
        per >= (4096 - 160) / size,
        "{}: {per} per slab",
        std::any::type_name::<T>()
    );
    assert!(per * size < 4096);
    let cache: SlabCache<T> = SlabCache::new();
    let s = cache.stats();
    assert_eq!(
        (s.slot_size, s.slots_per_slab, s.page_size),
        (size, per, 4096)
    );
    assert_eq!(SlabCache::<T>::slot_layout().size(), size);
    assert_eq!(SlabCache::<T>::slot_layout().align(), align_of::<T>());
}

#[test]
fn slot_sizes_and_slots_per_slab() {
    // Every slot holds at least a pointer (the free-list link): 8 bytes on
    // 64-bit targets, 4 on 32-bit ones.
    assert_plausible_geometry::<u8>(size_of::<usize>());
    assert_plausible_geometry::<u64>(8);
    assert_plausible_geometry::<[u8; 24]>(24);
    assert_plausible_geometry::<[u8; 64]>(64);
    // Usable in const context.
    const PER_SLAB_64: usize = SlabCache::<[u8; 64]>::SLOTS_PER_SLAB;
    const {
        assert!(
            PER_SLAB_64 >= 63,
            "64-byte objects: 63 of the 64 slots of a 4 KiB page"
        )
    };
}

/// A cache-line-sized, cache-line-aligned object.
#[repr(C, align(64))]
struct Line([u8; 64]);

#[test]
fn ten_thousand_objects_use_the_fewest_pages_and_keep_them_for_the_next_burst() {
    // Miri counts a thousand: the same geometry, at a pace it can follow.
    const N: usize = if cfg!(miri) { 1_000 } else { 10_000 };
    let pages = CountingPages::new(GlobalPages::new());
    let cache: SlabCache<Line, &CountingPages> = SlabCache::new_in(&pages);
    let per_slab = SlabCache::<Line, &CountingPages>::SLOTS_PER_SLAB;
    assert_eq!(SlabCache::<Line, &CountingPages>::SLOT_SIZE, 64);
    assert!(per_slab >= 63);

    let objects: Vec<_> = (0..N as u32)
        .map(|i| cache.alloc(Line([i as u8; 64])).unwrap())
        .collect();
    let expected_pages = N.div_ceil(per_slab);
    // Slots this thread took in batches and has not handed out yet count as
    // used by their slabs: back into the slabs first, so that the lists show
    // the objects alone (N = 1000 under Miri ends on a batch boundary).
    flush_thread_cache(&cache);
    let s = cache.stats();
    assert_eq!(s.pages, expected_pages);
    assert_eq!(
        pages.outstanding(),
        expected_pages,
        "the page allocator agrees"
    );
    assert_eq!(
        s.header_bytes,
        expected_pages * 64,
        "the header takes one 64-byte slot's worth of each page"
    );
    assert_eq!(s.bytes_held(), expected_pages * 4096);
    assert_eq!(s.objects_in_use, N);
    assert_eq!(s.total_slots(), expected_pages * per_slab);
    assert_eq!(s.full_slabs, expected_pages - 1);
    assert_eq!(s.partial_slabs, 1);
    for (i, o) in objects.iter().enumerate() {
        assert_eq!(SlabBox::as_ptr(o).addr() % 64, 0);
        assert!(o.0.iter().all(|&b| b == i as u8));
    }

    drop(objects);
    flush_thread_cache(&cache);
    let s = cache.stats();
    assert_eq!(s.objects_in_use, 0);
    assert_eq!(
        (s.pages, s.empty_slabs),
        (expected_pages, expected_pages),
        "every page kept, empty, for the recent peak"
    );
    assert_eq!(pages.outstanding(), expected_pages);
    assert_eq!(pages.given_back(), 0);

    // The next burst takes no page from the page source.
    let objects: Vec<_> = (0..N as u32)
        .map(|i| cache.alloc(Line([i as u8; 64])).unwrap())
        .collect();
    drop(objects);
    assert_eq!(pages.handed_out(), expected_pages);
    assert_eq!(pages.given_back(), 0);

    assert_eq!(
        cache.shrink(),
        expected_pages,
        "shrink gives back every page"
    );
    assert_eq!(cache.stats().pages, 0);
    assert_eq!(pages.outstanding(), 0);
    assert_eq!(cache.shrink(), 0);
}

#[test]
fn header_bytes_account_for_the_rest_of_each_page() {
    // [u8; 64] is only byte-aligned: its slots are 8-aligned, so the header
    // needs no padding up to 64 bytes.
    let cache: SlabCache<[u8; 64]> = SlabCache::new();
    let objects: Vec<_> = (0..1000).map(|_| cache.alloc([0; 64]).unwrap()).collect();
    let s = cache.stats();
    assert_eq!(s.pages, 1000_usize.div_ceil(s.slots_per_slab));
    assert_eq!(s.header_bytes % s.pages, 0);
    let header = s.header_bytes / s.pages;
    assert!((1..=64).contains(&header), "header of {header} bytes");
    assert!(header + s.slots_per_slab * 64 <= 4096);
    assert!(
        header + (s.slots_per_slab + 1) * 64 > 4096,
        "no room left for another slot"
    );
    drop(objects);
}

#[test]
fn the_reserve_is_configurable_and_dropping_the_cache_returns_its_pages() {
    let pages = CountingPages::new(GlobalPages::new());
    {
        let cache: SlabCache<[u64; 64], _> =
            SlabCache::with_config(&pages, CacheConfig::new().reserve(0).eager());
        assert_eq!(cache.config().reserve, 0);
        let a: Vec<_> = (0..100).map(|i| cache.alloc([i; 64]).unwrap()).collect();
        assert!(pages.outstanding() > 1);
        drop(a);
        flush_thread_cache(&cache);
        assert_eq!(
            pages.outstanding(),
            0,
            "eager, reserve 0: empty pages go back at once"
        );
    }
    {
        let cache: SlabCache<[u64; 64], _> =
            SlabCache::with_config(&pages, CacheConfig::new().reserve(5).eager());
        let a: Vec<_> = (0..500).map(|i| cache.alloc([i; 64]).unwrap()).collect();
        drop(a);
        flush_thread_cache(&cache);
        assert_eq!(pages.outstanding(), 5, "reserve 5");
        assert_eq!(cache.stats().empty_slabs, 5);
        cache.set_config(CacheConfig::new().reserve(3).eager());
        assert_eq!(
            pages.outstanding(),
            3,
            "a lower reserve gives pages back at once"
        );
        assert_eq!(cache.stats().empty_slabs, 3);
        // Dropping the cache gives the rest back.
    }
    assert_eq!(pages.outstanding(), 0);
    assert!(pages.handed_out() > 10);
}

#[test]
fn the_reserve_is_reused_before_taking_new_pages() {
    let pages = CountingPages::new(GlobalPages::new());
    let cache: SlabCache<[u64; 256], _> = SlabCache::new_in(&pages); // 2 KiB: 1 per slab
    for round in 0..100 {
        let a = cache.alloc([round; 256]).unwrap();
        let b = cache.alloc([round; 256]).unwrap();
        assert_eq!((a[0], b[255]), (round, round));
    }
    assert_eq!(
        pages.handed_out(),
        2,
        "alloc/free ping-pong never leaves the reserve"
    );
    assert_eq!(pages.given_back(), 0);
}

/// Word `i` of the pattern written into the object that outlives the others.
fn word(i: usize) -> u64 {
    (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// `shrink` while exactly one object is live on the cache's one page, in a
/// fresh page (one object allocated) and in a full page emptied but for one:
/// the page stays, and the object stays intact and usable. Once it is
/// dropped, the page goes back (at once with a reserve of 0 and eager
/// give-back, else at the next `shrink`).
fn shrink_keeps_the_page_of_one_live_object<P: PageAllocator>(cache: &SlabCache<[u64; 8], P>) {
    let per_slab = SlabCache::<[u64; 8], P>::SLOTS_PER_SLAB;
    for allocated in [1, per_slab] {
        let mut all: Vec<_> = (0..allocated as u64)
            .map(|i| cache.alloc([i; 8]).unwrap())
            .collect();
        assert_eq!(cache.stats().pages, 1, "{allocated} objects fill one page");
        let mut survivor = all.swap_remove(allocated / 2);
        drop(all);
        for (i, w) in survivor.iter_mut().enumerate() {
            *w = word(i);
        }

        assert_eq!(cache.shrink(), 0, "no empty page to give back");
        let s = cache.stats();
        assert_eq!(
            (s.pages, s.objects_in_use),
            (1, 1),
            "the page of the live object stays"
        );
        assert!(
            survivor.iter().enumerate().all(|(i, &w)| w == word(i)),
            "the live object is intact after shrink: {survivor:x?}"
        );
        survivor[3] = !survivor[3];
        assert_eq!(survivor[3], !word(3), "and usable");
        let neighbour = cache.alloc([9; 8]).unwrap();
        assert_eq!((*neighbour, cache.stats().pages), ([9; 8], 1));
        drop(neighbour);
        assert_eq!(SlabBox::into_inner(survivor)[7], word(7));
        flush_thread_cache(cache);

        let kept = cache.stats().pages;
        let config = cache.config();
        let expected = usize::from(config.reserve > 0 || config.decay > 0);
        assert_eq!(
            kept, expected,
            "the empty page, kept only for a reserve or the recent peak"
        );
        assert_eq!(cache.shrink(), kept);
        let s = cache.stats();
        assert_eq!((s.pages, s.objects_in_use), (0, 0), "the page went back");
    }
}

#[test]
fn shrink_keeps_a_page_with_one_live_object_and_the_object_intact() {
    shrink_keeps_the_page_of_one_live_object(&SlabCache::new());
    shrink_keeps_the_page_of_one_live_object(&SlabCache::with_config(
        ChunkedGlobalPages::global(),
        CacheConfig::new().reserve(0).eager(),
    ));
    // Straight from the global allocator, with the page source counting.
    for config in [
        CacheConfig::new().reserve(0).eager(),
        CacheConfig::new().reserve(0),
        CacheConfig::new(),
    ] {
        let reserve = config.reserve;
        let pages = CountingPages::new(GlobalPages::new());
        let cache = SlabCache::with_config(&pages, config);
        shrink_keeps_the_page_of_one_live_object(&cache);
        assert_eq!(pages.outstanding(), 0, "reserve {reserve}");
        assert_eq!(
            pages.handed_out(),
            2,
            "reserve {reserve}: one page per round"
        );
    }
}

// -------------------------------------------------------------- static use

static NUMBERS: SlabCache<u32> = SlabCache::new();

#[test]
fn a_cache_can_be_a_static() {
    let a = NUMBERS.alloc(7).unwrap();
    let mut b = NUMBERS.alloc(8).unwrap();
    *b += 1;
    assert_eq!(*a + *b, 16);
    assert!(NUMBERS.stats().objects_in_use >= 2);
    assert!(NUMBERS.stats().name.contains("u32"));
    assert!(format!("{NUMBERS:?}").contains("SlabCache"));
}

#[test]
fn occupancy_shows_exactly_the_slots_in_use() {
    let cache: SlabCache<[u64; 4]> = SlabCache::new();
    let per_slab = SlabCache::<[u64; 4]>::SLOTS_PER_SLAB;
    let mut live: Vec<_> = (0..per_slab as u64 + 10)
        .map(|i| Some(cache.alloc([i; 4]).unwrap()))
        .collect();
    // Free every third object, in both slabs.
    for slot in live.iter_mut().step_by(3) {
        *slot = None;
    }
    let expected: std::collections::BTreeSet<usize> = live
        .iter()
        .flatten()
        .map(|b| SlabBox::as_ptr(b).addr())
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    let mut slabs = 0;
    // Slots resting in this thread's cache are used, as far as slabs know.
    flush_thread_cache(&cache);
    cache.for_each_slab(|slab| {
        slabs += 1;
        assert_eq!(slab.slots_per_slab(), per_slab);
        assert_eq!(slab.slots().filter(|&used| used).count(), slab.in_use());
        for index in 0..slab.slots_per_slab() {
            if slab.is_used(index) {
                assert!(seen.insert(slab.slot_address(index)));
            }
        }
        assert_eq!(slab.to_string().len(), per_slab);
    });
    assert_eq!(slabs, 2);
    assert_eq!(seen, expected, "used slots are exactly the live objects");
}

#[test]
fn a_handle_is_one_word_as_a_box_is() {
    use std::mem::size_of;
    assert_eq!(size_of::<SlabBox<'_, u64>>(), size_of::<Box<u64>>());
    assert_eq!(
        size_of::<SlabBox<'_, [u8; 61]>>(),
        size_of::<Box<[u8; 61]>>()
    );
    assert_eq!(size_of::<SlabBox<'_, ()>>(), size_of::<Box<()>>());
    // The pointer is never null, so an `Option` costs nothing either.
    assert_eq!(size_of::<Option<SlabBox<'_, u64>>>(), size_of::<usize>());
}

#[test]
fn a_handle_finds_its_cache_from_its_slot() {
    let a: SlabCache<[u64; 2]> = SlabCache::new();
    let b: SlabCache<[u64; 2]> = SlabCache::new();
    let from_a: Vec<_> = (0..300).map(|i| a.alloc([i; 2]).unwrap()).collect();
    let from_b: Vec<_> = (0..300).map(|i| b.alloc([i; 2]).unwrap()).collect();
    assert!(from_a.iter().all(|h| std::ptr::eq(SlabBox::cache(h), &a)));
    assert!(from_b.iter().all(|h| std::ptr::eq(SlabBox::cache(h), &b)));
    // Dropped in an interleaved order, each slot goes back to its own cache.
    for (x, y) in from_a.into_iter().zip(from_b) {
        drop(y);
        drop(x);
    }
    flush_thread_cache(&a);
    flush_thread_cache(&b);
    assert_eq!(a.stats().objects_in_use, 0);
    assert_eq!(b.stats().objects_in_use, 0);
    // A zero-sized value has no slot; its handle holds the cache itself.
    let unit: SlabCache<()> = SlabCache::new();
    let h = unit.alloc(()).unwrap();
    assert!(std::ptr::eq(SlabBox::cache(&h), &unit));
}
