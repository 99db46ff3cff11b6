//! Model-based property tests: random sequences of operations run against the
//! typed API (`SlabCache<T>`, three object types at once) and the raw API
//! (`SlabAllocator`, with and without a fallback), each beside a reference
//! model that is just the list of objects that should be live.
//!
//! After every step: each live object still holds its own pattern, no two
//! live objects overlap, each is aligned as asked, the counters agree with
//! the model, and the pages the caches say they hold are the pages their
//! page allocator has out. The model also predicts exactly which allocations
//! fail (page limits are small and drawn per case); a failed typed `alloc`
//! must hand its value back. At the end everything is freed and shrunk, and
//! no page may remain.
//!
//! Each case draws the caches' give-back policy too: eager (`decay` 0: no
//! empty slab beyond the reserve, ever), or the hysteresis over short
//! windows (so that sequences this long see windows end) or the default
//! ones (empty slabs beyond the reserve only while the cache holds no more
//! pages than it had in use at once since its last `shrink` or change of
//! configuration).
//!
//! Operations are a `Vec` of an enum, so a failing case shrinks to the
//! shortest sequence (and the smallest indices) that still fails.

mod common;

use std::alloc::{Layout, System};
use std::cell::Cell;
use std::fmt::Debug;
use std::mem::{align_of, size_of};
use std::ptr::NonNull;

use common::{CountingPages, Ranges, fill, verify};
use minimal_slab::typenum::U1024;
use minimal_slab::{
    AllocError, CacheConfig, CacheStats, Fallback, GlobalPages, NoFallback, SlabAllocator, SlabBox,
    SlabCache,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// Small pages, so that a handful of objects fills one and the page limits
/// drawn below are reached by short sequences.
type Pages = CountingPages<GlobalPages<U1024>>;

/// Longest operation sequence; Miri interprets every step, so it gets few.
const MAX_OPS: usize = if cfg!(miri) { 24 } else { 300 };

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if cfg!(miri) {
        config.cases = 6;
        // Miri's isolation forbids the file access a regression file needs.
        config.failure_persistence = None;
    } else {
        // Beside this file (`model.proptest-regressions`): the default looks
        // for a `lib.rs` next to the source, which an integration test lacks.
        config.failure_persistence = Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        )));
    }
    config
}

/// Owns an allocator under test and drops it, except while a failed check
/// unwinds: the allocator may be broken then, and tearing it down could
/// panic again, which aborts the run before proptest can shrink the case.
struct UnlessPanicking<T>(Option<T>);

impl<T> std::ops::Deref for UnlessPanicking<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.0.as_ref().expect("present until dropped")
    }
}

impl<T> Drop for UnlessPanicking<T> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            std::mem::forget(self.0.take());
        }
    }
}

/// How a case configures its caches.
#[derive(Clone, Copy, Debug)]
struct Policy {
    limit: Option<usize>,
    reserve: usize,
    decay: usize,
}

impl Policy {
    fn config(&self) -> CacheConfig {
        let config = CacheConfig::new().reserve(self.reserve).decay(self.decay);
        match self.limit {
            Some(limit) => config.page_limit(limit),
            None => config,
        }
    }

    fn eager(&self) -> bool {
        self.decay == 0
    }
}

/// An optional page cap (mostly small, sometimes none), a reserve, and
/// eager give-back or the hysteresis over short or default windows.
fn policy() -> impl Strategy<Value = Policy> {
    let decay = prop_oneof![Just(0), 1..=40_usize, Just(CacheConfig::DEFAULT_DECAY)];
    (prop::option::weighted(0.8, 0..=4_usize), 0..=2_usize, decay).prop_map(
        |(limit, reserve, decay)| Policy {
            limit,
            reserve,
            decay,
        },
    )
}

/// The most slabs a cache has had in use at once since its last `shrink`
/// or change of configuration, as its counters showed them.
#[derive(Default)]
struct BusyPeak(Cell<usize>);

impl BusyPeak {
    fn busy(s: &CacheStats) -> usize {
        s.full_slabs + s.partial_slabs
    }

    fn see(&self, s: &CacheStats) -> usize {
        self.0.set(self.0.get().max(Self::busy(s)));
        self.0.get()
    }

    /// After `shrink` or `set_config`: the peak restarts.
    fn restart(&self, s: &CacheStats) {
        self.0.set(Self::busy(s));
    }
}

/// How many pages an operation may give back, with `before` the counters
/// before it: its own page when eager, the empty slabs kept for the peak
/// too when a window of the hysteresis ends.
fn may_give_back(before: &CacheStats, policy: Policy, own: usize) -> usize {
    if policy.eager() {
        own
    } else {
        own + before.empty_slabs
    }
}

/// What every cache's counters must satisfy whatever happened before.
/// Each operation allocates at most one slot of a cache, so `peak`, seeing
/// the counters after each, sees the true peak.
fn check_counters(s: &CacheStats, in_use: usize, policy: Policy, peak: &BusyPeak) {
    assert_eq!(s.objects_in_use, in_use, "objects in use: {s:?}");
    // Slots out of their slabs: objects, and free slots resting in this
    // thread's cache (`std`).
    let used = s.objects_in_use + s.cached_slots;
    assert_eq!(s.pages * s.slots_per_slab, used + s.free_slots);
    assert_eq!(s.full_slabs + s.partial_slabs + s.empty_slabs, s.pages);
    // Full slabs hold `slots_per_slab` used slots, partial ones between one
    // and one fewer, empty ones none.
    let full = s.full_slabs * s.slots_per_slab;
    assert!(
        full + s.partial_slabs <= used,
        "lists disagree with counts: {s:?}"
    );
    assert!(
        used <= full + s.partial_slabs * (s.slots_per_slab - 1),
        "lists disagree with counts: {s:?}"
    );
    let peak = peak.see(s);
    if policy.eager() {
        assert!(
            s.empty_slabs <= policy.reserve,
            "eager: more empty slabs than the reserve: {s:?}"
        );
    } else {
        assert!(
            s.empty_slabs <= policy.reserve || s.pages <= peak,
            "empty slabs beyond the reserve and beyond the peak of {peak}: {s:?}"
        );
    }
    if let Some(limit) = policy.limit {
        assert!(s.pages <= limit, "pages beyond the limit: {s:?}");
    }
}

/// The failure an allocation into a cache holding `in_use` objects must
/// meet: with pages from the global allocator, only the page cap can refuse,
/// and only once every slot under it is taken.
fn expected_failure(in_use: usize, per_slab: usize, limit: Option<usize>) -> Option<AllocError> {
    limit
        .filter(|&limit| in_use == limit * per_slab)
        .map(|limit| AllocError::PageLimit { limit })
}

// ---------------------------------------------------------------- typed API

/// A value whose every word depends on the id of the object holding it.
trait Payload: Sized + PartialEq + Debug {
    fn for_id(id: u64) -> Self;
}

fn word(id: u64, i: usize) -> u64 {
    id.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(i as u32) ^ i as u64
}

/// `8 × N` bytes, aligned to 8.
#[derive(Debug, PartialEq)]
struct Words<const N: usize>([u64; N]);

impl<const N: usize> Payload for Words<N> {
    fn for_id(id: u64) -> Self {
        Self(std::array::from_fn(|i| word(id, i)))
    }
}

/// 24 bytes of data, but aligned (and so sized) to 64.
#[derive(Debug, PartialEq)]
#[repr(align(64))]
struct Aligned([u64; 3]);

impl Payload for Aligned {
    fn for_id(id: u64) -> Self {
        Self(std::array::from_fn(|i| word(id, i)))
    }
}

type Cache<'p, T> = SlabCache<T, &'p Pages>;
type Handle<'c, T> = SlabBox<'c, T, &'c Pages>;

#[derive(Clone, Debug)]
enum TypedOp {
    Alloc { lane: usize },
    Free { lane: usize, index: usize },
    Rewrite { lane: usize, index: usize },
    Shrink { lane: usize },
    SetReserve { lane: usize, slabs: usize },
}

const LANES: usize = 3;

fn typed_op() -> impl Strategy<Value = TypedOp> {
    let lane = 0..LANES;
    prop_oneof![
        6 => lane.clone().prop_map(|lane| TypedOp::Alloc { lane }),
        3 => (lane.clone(), 0..64_usize).prop_map(|(lane, index)| TypedOp::Free { lane, index }),
        1 => (lane.clone(), 0..64_usize)
            .prop_map(|(lane, index)| TypedOp::Rewrite { lane, index }),
        1 => lane.clone().prop_map(|lane| TypedOp::Shrink { lane }),
        1 => (lane, 0..=3_usize).prop_map(|(lane, slabs)| TypedOp::SetReserve { lane, slabs }),
    ]
}

/// One typed cache, the objects the model says are live in it, and its
/// settings.
struct Lane<'c, T> {
    cache: &'c Cache<'c, T>,
    live: Vec<(u64, Handle<'c, T>)>,
    policy: Policy,
    peak: BusyPeak,
}

/// The operations, type-erased so that one sequence drives all the lanes.
trait TypedLane {
    fn alloc(&mut self, id: u64, ranges: &mut Ranges);
    fn free(&mut self, index: usize, ranges: &mut Ranges);
    fn rewrite(&mut self, index: usize, id: u64, ranges: &mut Ranges);
    fn shrink(&mut self);
    fn set_reserve(&mut self, slabs: usize);
    fn live(&self) -> usize;
    /// Checks every live value and the counters; returns the pages held.
    fn check(&self) -> usize;
}

impl<T: Payload> Lane<'_, T> {
    fn addr(handle: &Handle<'_, T>) -> usize {
        SlabBox::as_ptr(handle).addr()
    }
}

impl<T: Payload> TypedLane for Lane<'_, T> {
    fn alloc(&mut self, id: u64, ranges: &mut Ranges) {
        let before = self.cache.stats();
        let per_slab = Cache::<T>::SLOTS_PER_SLAB;
        let expected = expected_failure(self.live.len(), per_slab, self.policy.limit);
        match self.cache.alloc(T::for_id(id)) {
            Ok(handle) => {
                assert_eq!(expected, None, "allocation {id} succeeded");
                let addr = Self::addr(&handle);
                assert_eq!(addr % align_of::<T>(), 0, "object {id} misaligned");
                ranges.insert(addr, size_of::<T>(), id);
                assert_eq!(*handle, T::for_id(id));
                let after = self.cache.stats();
                // Free slots rest in the slabs or in this thread's cache.
                if before.free_slots + before.cached_slots == 0 {
                    assert_eq!(
                        after.pages,
                        before.pages + 1,
                        "a page is taken when no slot is free"
                    );
                } else {
                    // Without a page taken; the allocation that ends a
                    // window gives back the empty slabs beyond the peak.
                    let gone = before.pages - after.pages;
                    assert!(
                        gone <= may_give_back(&before, self.policy, 0),
                        "an allocation gave back {gone} pages: {before:?} -> {after:?}"
                    );
                }
                self.live.push((id, handle));
            }
            Err(failed) => {
                assert_eq!(Some(failed.error()), expected, "allocation {id} failed");
                assert_eq!(
                    failed.into_value(),
                    T::for_id(id),
                    "the value comes back intact"
                );
                assert_eq!(
                    self.cache.stats(),
                    before,
                    "a failed allocation changes nothing"
                );
            }
        }
    }

    fn free(&mut self, index: usize, ranges: &mut Ranges) {
        if self.live.is_empty() {
            return;
        }
        let before = self.cache.stats();
        let (id, handle) = self.live.remove(index % self.live.len());
        ranges.remove(Self::addr(&handle), id);
        // Both ways out of a handle: drop it, or move the value out.
        if id % 2 == 0 {
            assert_eq!(*handle, T::for_id(id));
            drop(handle);
        } else {
            assert_eq!(SlabBox::into_inner(handle), T::for_id(id));
        }
        let after = self.cache.stats();
        // Its own page when eager, or, when the free overflows this thread's
        // cache (`std`), the pages that the batch it gives back empties.
        let own = if cfg!(feature = "std") {
            before.pages
        } else {
            1
        };
        let gone = before.pages - after.pages;
        assert!(
            gone <= may_give_back(&before, self.policy, own),
            "a free gives back at most its own page, and those kept for a \
             past peak: {before:?} -> {after:?}"
        );
    }

    fn rewrite(&mut self, index: usize, id: u64, ranges: &mut Ranges) {
        if self.live.is_empty() {
            return;
        }
        let len = self.live.len();
        let (old_id, handle) = &mut self.live[index % len];
        let addr = Self::addr(handle);
        ranges.remove(addr, *old_id);
        ranges.insert(addr, size_of::<T>(), id);
        **handle = T::for_id(id);
        *old_id = id;
    }

    fn shrink(&mut self) {
        let before = self.cache.stats();
        let released = self.cache.shrink();
        let after = self.cache.stats();
        // This thread's cached slots go back first: the slabs they empty go
        // too.
        assert_eq!(
            (after.empty_slabs, after.cached_slots),
            (0, 0),
            "shrink gives back every empty slab and every cached slot"
        );
        assert_eq!(released, before.pages - after.pages);
        assert!(released >= before.empty_slabs, "{before:?} -> {after:?}");
        self.peak.restart(&after);
    }

    fn set_reserve(&mut self, slabs: usize) {
        let before = self.cache.stats();
        self.policy.reserve = slabs;
        self.cache.set_config(self.policy.config());
        let kept = before.empty_slabs.min(slabs);
        let after = self.cache.stats();
        self.peak.restart(&after);
        assert_eq!(
            after.empty_slabs, kept,
            "a lower reserve gives back the rest"
        );
        assert_eq!(after.pages, before.pages - (before.empty_slabs - kept));
    }

    fn live(&self) -> usize {
        self.live.len()
    }

    fn check(&self) -> usize {
        for (id, handle) in &self.live {
            assert_eq!(**handle, T::for_id(*id), "object {id} changed while live");
        }
        let s = self.cache.stats();
        assert_eq!(s.slots_per_slab, Cache::<T>::SLOTS_PER_SLAB);
        check_counters(&s, self.live.len(), self.policy, &self.peak);
        s.pages
    }
}

impl<T> Drop for Lane<'_, T> {
    fn drop(&mut self) {
        // As for `UnlessPanicking`: a failed check leaves the handles to leak.
        if std::thread::panicking() {
            self.live.drain(..).for_each(std::mem::forget);
        }
    }
}

fn new_lane<'c, T: Payload>(cache: &'c Cache<'c, T>, policy: Policy) -> Lane<'c, T> {
    let lane = Lane {
        cache,
        live: Vec::new(),
        policy,
        peak: BusyPeak::default(),
    };
    cache.set_config(policy.config());
    lane
}

fn run_typed(settings: [Policy; LANES], ops: &[TypedOp]) {
    let pages = Pages::new(GlobalPages::with_page_size());
    let small: UnlessPanicking<Cache<Words<2>>> = UnlessPanicking(Some(SlabCache::new_in(&pages)));
    let aligned: UnlessPanicking<Cache<Aligned>> = UnlessPanicking(Some(SlabCache::new_in(&pages)));
    let large: UnlessPanicking<Cache<Words<40>>> = UnlessPanicking(Some(SlabCache::new_in(&pages)));
    let mut lanes: [Box<dyn TypedLane + '_>; LANES] = [
        Box::new(new_lane(&small, settings[0])),
        Box::new(new_lane(&aligned, settings[1])),
        Box::new(new_lane(&large, settings[2])),
    ];
    let mut ranges = Ranges::default();
    let mut next_id = 0_u64;
    let mut new_id = || {
        next_id += 1;
        next_id
    };

    for op in ops {
        match *op {
            TypedOp::Alloc { lane } => lanes[lane].alloc(new_id(), &mut ranges),
            TypedOp::Free { lane, index } => lanes[lane].free(index, &mut ranges),
            TypedOp::Rewrite { lane, index } => lanes[lane].rewrite(index, new_id(), &mut ranges),
            TypedOp::Shrink { lane } => lanes[lane].shrink(),
            TypedOp::SetReserve { lane, slabs } => lanes[lane].set_reserve(slabs),
        }
        let held: usize = lanes.iter().map(|lane| lane.check()).sum();
        assert_eq!(
            held,
            pages.outstanding(),
            "the caches hold the pages given out"
        );
    }

    for lane in &mut lanes {
        while lane.live() > 0 {
            lane.free(0, &mut ranges);
            lane.check();
        }
        lane.shrink();
        assert_eq!(
            lane.check(),
            0,
            "no page is held once all is freed and shrunk"
        );
    }
    assert_eq!(ranges.len(), 0);
    assert_eq!(pages.outstanding(), 0);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn typed_caches_agree_with_the_model(
        settings in prop::array::uniform3(policy()),
        ops in prop::collection::vec(typed_op(), 0..MAX_OPS),
    ) {
        run_typed(settings, &ops);
    }
}

// ------------------------------------------------------------------ raw API

type Heap<'p, F> = SlabAllocator<&'p Pages, F>;

#[derive(Clone, Debug)]
enum RawOp {
    Alloc { size: usize, align: usize },
    Free { index: usize },
    Realloc { index: usize, new_size: usize },
    Shrink,
}

/// Mostly layouts the size classes serve, at every alignment up to the
/// class; some larger than the largest class, some aligned beyond it, and
/// some zero-sized.
fn layout() -> impl Strategy<Value = (usize, usize)> {
    prop_oneof![
        8 => (1..=256_usize, 0..=8_u32),
        1 => (257..=1500_usize, 0..=4_u32),
        1 => (1..=64_usize, 9..=10_u32),
        1 => (Just(0_usize), 0..=6_u32),
    ]
    .prop_map(|(size, align_log2)| (size, 1 << align_log2))
}

fn raw_op() -> impl Strategy<Value = RawOp> {
    prop_oneof![
        6 => layout().prop_map(|(size, align)| RawOp::Alloc { size, align }),
        3 => (0..64_usize).prop_map(|index| RawOp::Free { index }),
        2 => (0..64_usize, prop_oneof![1..=64_usize, 1..=1500_usize])
            .prop_map(|(index, new_size)| RawOp::Realloc { index, new_size }),
        1 => Just(RawOp::Shrink),
    ]
}

/// One live raw block, filled with the pattern of `id`.
struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
    id: u64,
}

struct RawModel<'h, 'p, F: Fallback> {
    heap: &'h Heap<'p, F>,
    has_fallback: bool,
    policy: Policy,
    /// One per size class.
    peaks: Vec<BusyPeak>,
    live: Vec<Block>,
    ranges: Ranges,
    next_id: u64,
}

impl<F: Fallback> RawModel<'_, '_, F> {
    fn class_of(layout: Layout) -> Option<usize> {
        if layout.size() == 0 {
            return None; // zero-sized: no class, no fallback, nothing counted
        }
        Heap::<F>::size_class(layout).map(|class| class.trailing_zeros() as usize - 3)
    }

    fn in_class(&self, class: usize) -> usize {
        self.live
            .iter()
            .filter(|b| Self::class_of(b.layout) == Some(class))
            .count()
    }

    /// How allocating `layout` must fail, if it must.
    fn expected_failure(&self, layout: Layout) -> Option<AllocError> {
        if layout.size() == 0 {
            return None;
        }
        match Self::class_of(layout) {
            Some(class) => {
                let per_slab = self.heap.stats().classes()[class].slots_per_slab;
                expected_failure(self.in_class(class), per_slab, self.policy.limit)
            }
            None if self.has_fallback => None,
            None => Some(AllocError::UnsupportedLayout {
                size: layout.size(),
                align: layout.align(),
            }),
        }
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Records a block just handed out, after checking where it is, and
    /// fills it.
    fn adopt(&mut self, ptr: NonNull<u8>, layout: Layout) {
        let id = self.new_id();
        let addr = ptr.as_ptr().addr();
        assert_eq!(
            addr % layout.align(),
            0,
            "block {id} misaligned for {layout:?}"
        );
        if let Some(class) = Heap::<F>::size_class(layout).filter(|_| layout.size() > 0) {
            assert_eq!(
                addr % class,
                0,
                "block {id} not aligned to its class {class}"
            );
        }
        if layout.size() > 0 {
            self.ranges.insert(addr, layout.size(), id);
        }
        // SAFETY: just handed out for `layout`: valid and ours alone.
        unsafe { fill(ptr, layout.size(), id) };
        self.live.push(Block { ptr, layout, id });
    }

    fn forget_range(&mut self, block: &Block) {
        if block.layout.size() > 0 {
            self.ranges.remove(block.ptr.as_ptr().addr(), block.id);
        }
    }

    fn alloc(&mut self, layout: Layout) {
        let expected = self.expected_failure(layout);
        let before = self.heap.stats();
        match self.heap.allocate(layout) {
            Ok(ptr) => {
                assert_eq!(expected, None, "allocating {layout:?} succeeded");
                self.adopt(ptr, layout);
            }
            Err(error) => {
                assert_eq!(Some(error), expected, "allocating {layout:?} failed");
                assert_eq!(
                    self.heap.stats(),
                    before,
                    "a failed allocation changes nothing"
                );
            }
        }
    }

    fn free(&mut self, index: usize) {
        if self.live.is_empty() {
            return;
        }
        let block = self.live.remove(index % self.live.len());
        // SAFETY: the block is live and filled by `adopt`.
        unsafe { verify(block.ptr, block.layout.size(), block.id) };
        self.forget_range(&block);
        // SAFETY: allocated from this heap with this layout, and gone from
        // the model, so never used again.
        unsafe { self.heap.deallocate(block.ptr, block.layout) };
    }

    fn realloc(&mut self, index: usize, new_size: usize) {
        if self.live.is_empty() {
            return;
        }
        let index = index % self.live.len();
        let (old_ptr, old_layout, old_id) = {
            let b = &self.live[index];
            (b.ptr, b.layout, b.id)
        };
        let new_layout = Layout::from_size_align(new_size, old_layout.align()).unwrap();
        let old_class = Self::class_of(old_layout);
        let in_place = old_class.is_some() && old_class == Self::class_of(new_layout);
        let moved_in_fallback =
            old_layout.size() > 0 && old_class.is_none() && Self::class_of(new_layout).is_none();
        let expected = if in_place || moved_in_fallback {
            None // the fallback, if it served the old block, can serve this one
        } else {
            self.expected_failure(new_layout)
        };
        // SAFETY: the block is live, from this heap with `old_layout`; on
        // success the model replaces it below and never uses the old pointer.
        match unsafe { self.heap.reallocate(old_ptr, old_layout, new_size) } {
            Ok(new_ptr) => {
                assert_eq!(
                    expected, None,
                    "resizing {old_layout:?} to {new_size} succeeded"
                );
                if in_place {
                    assert_eq!(new_ptr, old_ptr, "a resize within the class stays in place");
                }
                let kept = old_layout.size().min(new_size);
                // SAFETY: the first `kept` bytes came over from the old
                // block, which `adopt` filled.
                unsafe { verify(new_ptr, kept, old_id) };
                let old = self.live.remove(index);
                self.forget_range(&old);
                self.adopt(new_ptr, new_layout);
            }
            Err(error) => {
                assert_eq!(
                    Some(error),
                    expected,
                    "resizing {old_layout:?} to {new_size} failed"
                );
                // SAFETY: a failed resize leaves the old block live and ours.
                unsafe { verify(old_ptr, old_layout.size(), old_id) };
            }
        }
    }

    fn shrink(&mut self) {
        let before = self.heap.stats();
        let empty: usize = before.classes().iter().map(|c| c.empty_slabs).sum();
        let released = self.heap.shrink_to_fit();
        let after = self.heap.stats();
        // This thread's cached blocks go back first (`std`): the slabs they
        // empty go too.
        assert!(released >= empty, "shrink gives back every empty slab");
        assert_eq!(after.pages(), before.pages() - released);
        assert!(
            after
                .classes()
                .iter()
                .all(|c| (c.empty_slabs, c.cached_slots) == (0, 0))
        );
        for (peak, class) in self.peaks.iter().zip(after.classes()) {
            peak.restart(class);
        }
    }

    fn check(&self, pages: &Pages) {
        for b in &self.live {
            // SAFETY: every live block was filled by `adopt`.
            unsafe { verify(b.ptr, b.layout.size(), b.id) };
        }
        let stats = self.heap.stats();
        for (class, s) in stats.classes().iter().enumerate() {
            assert_eq!(s.slot_size, 8 << class);
            check_counters(s, self.in_class(class), self.policy, &self.peaks[class]);
        }
        let in_fallback: Vec<_> = self
            .live
            .iter()
            .filter(|b| b.layout.size() > 0 && Self::class_of(b.layout).is_none())
            .collect();
        assert_eq!(stats.fallback_allocations, in_fallback.len());
        assert_eq!(
            stats.fallback_bytes,
            in_fallback.iter().map(|b| b.layout.size()).sum::<usize>()
        );
        assert_eq!(
            stats.pages(),
            pages.outstanding(),
            "the classes hold the pages given out"
        );
    }
}

fn run_raw<F: Fallback>(fallback: F, has_fallback: bool, policy: Policy, ops: &[RawOp]) {
    let pages = Pages::new(GlobalPages::with_page_size());
    let heap: UnlessPanicking<Heap<F>> = UnlessPanicking(Some(SlabAllocator::with_config(
        &pages,
        fallback,
        policy.config(),
    )));
    let classes = heap.stats().classes().len();
    let mut model = RawModel {
        heap: &heap,
        has_fallback,
        policy,
        peaks: (0..classes).map(|_| BusyPeak::default()).collect(),
        live: Vec::new(),
        ranges: Ranges::default(),
        next_id: 0,
    };
    for op in ops {
        match *op {
            RawOp::Alloc { size, align } => {
                model.alloc(Layout::from_size_align(size, align).unwrap());
            }
            RawOp::Free { index } => model.free(index),
            RawOp::Realloc { index, new_size } => model.realloc(index, new_size),
            RawOp::Shrink => model.shrink(),
        }
        model.check(&pages);
    }
    while !model.live.is_empty() {
        model.free(0);
        model.check(&pages);
    }
    model.shrink();
    model.check(&pages);
    assert_eq!(model.ranges.len(), 0);
    assert_eq!(
        heap.stats().pages(),
        0,
        "no page is held once all is freed and shrunk"
    );
    assert_eq!(pages.outstanding(), 0);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn raw_allocator_without_fallback_agrees_with_the_model(
        settings in policy(),
        ops in prop::collection::vec(raw_op(), 0..MAX_OPS),
    ) {
        run_raw(NoFallback, false, settings, &ops);
    }

    #[test]
    fn raw_allocator_with_system_fallback_agrees_with_the_model(
        settings in policy(),
        ops in prop::collection::vec(raw_op(), 0..MAX_OPS),
    ) {
        run_raw(System, true, settings, &ops);
    }
}
