//! The size classes on a tiny region, with or without `System` behind them,
//! driven by a fuzzed sequence of allocations, frees, resizes and shrinks.

#![no_main]

use std::alloc::{Layout, System};
use std::ptr::NonNull;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use minimal_slab::{AllocError, Fallback, NoFallback, SlabAllocator};
use minimal_slab_fuzz::{
    BusyPeak, FULL_CHECK_EVERY, Policy, Ranges, Region, TinyRegion, check_counters,
    expected_failure, fill, page_limit, verify,
};

#[derive(Arbitrary, Debug)]
struct Input {
    region_pages: u8,
    limit: u8,
    reserve: u8,
    with_fallback: bool,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Alloc { size: u16, align_log2: u8 },
    Free { index: u8 },
    Realloc { index: u8, new_size: u16 },
    Shrink,
}

type Heap<'r, F> = SlabAllocator<&'r Region, F>;

/// A live block, filled with the pattern of `id`.
struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
    id: u64,
}

struct Model<'h, 'r, F: Fallback> {
    heap: &'h Heap<'r, F>,
    region: &'r Region,
    with_fallback: bool,
    limit: Option<usize>,
    policy: Policy,
    /// Per size class.
    peaks: [BusyPeak; 6],
    live: Vec<Block>,
    /// Live blocks per size class, and the fallback's live blocks and
    /// bytes: kept as blocks come and go, so that checking the counters
    /// after each operation does not walk `live`.
    in_class: [usize; 6],
    fallback: (usize, usize),
    ranges: Ranges,
    next_id: u64,
}

impl<F: Fallback> Model<'_, '_, F> {
    /// The size class index serving `layout`; `None` for the fallback and
    /// for zero-sized layouts, which nothing counts.
    fn class_of(layout: Layout) -> Option<usize> {
        let class = Heap::<F>::size_class(layout).filter(|_| layout.size() > 0)?;
        Some(class.trailing_zeros() as usize - 3)
    }

    fn expected_failure(&self, layout: Layout) -> Option<AllocError> {
        if layout.size() == 0 {
            return None;
        }
        match Self::class_of(layout) {
            Some(class) => {
                let before = self.heap.stats().classes()[class];
                expected_failure(&before, self.limit, self.region)
            }
            None if self.with_fallback => None,
            None => Some(AllocError::UnsupportedLayout {
                size: layout.size(),
                align: layout.align(),
            }),
        }
    }

    fn adopt(&mut self, ptr: NonNull<u8>, layout: Layout) {
        self.next_id += 1;
        let id = self.next_id;
        let addr = ptr.as_ptr().addr();
        assert_eq!(
            addr % layout.align(),
            0,
            "block {id} misaligned for {layout:?}"
        );
        if layout.size() > 0 {
            self.ranges.insert(addr, layout.size(), id);
        }
        self.count(layout, true);
        // SAFETY: just handed out for `layout`: valid and ours alone.
        unsafe { fill(ptr, layout.size(), id) };
        self.live.push(Block { ptr, layout, id });
    }

    /// Counts a block of `layout` in (`live`) or out of the model's tallies.
    fn count(&mut self, layout: Layout, live: bool) {
        let tally = |n: &mut usize, by: usize| if live { *n += by } else { *n -= by };
        match Self::class_of(layout) {
            Some(class) => tally(&mut self.in_class[class], 1),
            None if layout.size() > 0 => {
                tally(&mut self.fallback.0, 1);
                tally(&mut self.fallback.1, layout.size());
            }
            None => {}
        }
    }

    fn forget(&mut self, index: usize) -> Block {
        let block = self.live.swap_remove(index);
        self.count(block.layout, false);
        if block.layout.size() > 0 {
            self.ranges.remove(block.ptr.as_ptr().addr(), block.id);
        }
        block
    }

    fn alloc(&mut self, layout: Layout) {
        let expected = self.expected_failure(layout);
        match self.heap.allocate(layout) {
            Ok(ptr) => {
                assert_eq!(expected, None, "allocating {layout:?}");
                self.adopt(ptr, layout);
            }
            Err(error) => assert_eq!(Some(error), expected, "allocating {layout:?}"),
        }
    }

    fn free(&mut self, index: u8) {
        if self.live.is_empty() {
            return;
        }
        let block = self.forget(usize::from(index) % self.live.len());
        // SAFETY: live, filled by `adopt`.
        unsafe { verify(block.ptr, block.layout.size(), block.id) };
        // SAFETY: from this heap with this layout, and gone from the model.
        unsafe { self.heap.deallocate(block.ptr, block.layout) };
    }

    fn realloc(&mut self, index: u8, new_size: usize) {
        if self.live.is_empty() {
            return;
        }
        let index = usize::from(index) % self.live.len();
        let (ptr, layout, id) = (
            self.live[index].ptr,
            self.live[index].layout,
            self.live[index].id,
        );
        let new_layout = Layout::from_size_align(new_size, layout.align()).expect("a small layout");
        let (old_class, new_class) = (Self::class_of(layout), Self::class_of(new_layout));
        let in_place = old_class.is_some() && old_class == new_class;
        let fallback_to_fallback = layout.size() > 0 && old_class.is_none() && new_class.is_none();
        let expected = if in_place || fallback_to_fallback {
            None
        } else {
            self.expected_failure(new_layout)
        };
        // SAFETY: live, from this heap with `layout`; on success the model
        // drops the old pointer below.
        match unsafe { self.heap.reallocate(ptr, layout, new_size) } {
            Ok(new) => {
                assert_eq!(expected, None, "resizing {layout:?} to {new_size}");
                assert!(
                    !in_place || new == ptr,
                    "a resize within the class stays in place"
                );
                // SAFETY: the first bytes came over from the filled old block.
                unsafe { verify(new, layout.size().min(new_size), id) };
                self.forget(index);
                self.adopt(new, new_layout);
            }
            Err(error) => {
                assert_eq!(Some(error), expected, "resizing {layout:?} to {new_size}");
                // SAFETY: a failed resize leaves the block live and ours.
                unsafe { verify(ptr, layout.size(), id) };
            }
        }
    }

    fn shrink(&self) {
        // `shrink_to_fit` first hands this thread's cached blocks back, which
        // can empty more slabs: flush them so the count below is the one it sees.
        self.heap.flush_thread_cache();
        let empty: usize = self
            .heap
            .stats()
            .classes()
            .iter()
            .map(|c| c.empty_slabs)
            .sum();
        assert_eq!(self.heap.shrink_to_fit(), empty);
        for (peak, class) in self.peaks.iter().zip(self.heap.stats().classes()) {
            peak.restart(class);
        }
    }

    /// Checks the counters against the model's tallies, and with `values`
    /// every live block's contents and the tallies against the live list.
    fn check(&self, values: bool) {
        if values {
            for b in &self.live {
                // SAFETY: every live block was filled by `adopt`.
                unsafe { verify(b.ptr, b.layout.size(), b.id) };
            }
            for (class, &tallied) in self.in_class.iter().enumerate() {
                let live = self
                    .live
                    .iter()
                    .filter(|b| Self::class_of(b.layout) == Some(class));
                assert_eq!(live.count(), tallied, "class {class} tally");
            }
            let fallback = self
                .live
                .iter()
                .filter(|b| b.layout.size() > 0 && Self::class_of(b.layout).is_none());
            let bytes = fallback.clone().map(|b| b.layout.size()).sum::<usize>();
            assert_eq!((fallback.count(), bytes), self.fallback, "fallback tally");
        }
        let stats = self.heap.stats();
        for ((s, &in_use), peak) in stats.classes().iter().zip(&self.in_class).zip(&self.peaks) {
            check_counters(s, in_use, self.limit, self.policy, peak);
        }
        assert_eq!(stats.fallback_allocations, self.fallback.0);
        assert_eq!(stats.fallback_bytes, self.fallback.1);
        assert_eq!(
            stats.pages() + self.region.available(),
            self.region.capacity(),
            "every page is held or in the region"
        );
    }
}

fn run<F: Fallback>(input: &Input, fallback: F, region: &Region) {
    let limit = page_limit(input.limit);
    let policy = Policy::from_byte(input.reserve);
    let heap: Heap<F> = SlabAllocator::with_config(region, fallback, policy.config(limit));
    let mut model = Model {
        heap: &heap,
        region,
        with_fallback: input.with_fallback,
        limit,
        policy,
        peaks: Default::default(),
        live: Vec::new(),
        in_class: [0; 6],
        fallback: (0, 0),
        ranges: Ranges::default(),
        next_id: 0,
    };
    for (i, op) in input.ops.iter().take(512).enumerate() {
        match *op {
            Op::Alloc { size, align_log2 } => {
                let size = usize::from(size) % 1500;
                let align = 1 << (align_log2 % 11);
                model.alloc(Layout::from_size_align(size, align).expect("a small layout"));
            }
            Op::Free { index } => model.free(index),
            Op::Realloc { index, new_size } => {
                model.realloc(index, usize::from(new_size) % 1500 + 1)
            }
            Op::Shrink => model.shrink(),
        }
        model.check(i % FULL_CHECK_EVERY == FULL_CHECK_EVERY - 1);
    }
    model.check(true);
    while !model.live.is_empty() {
        model.free(0);
        model.check(false);
    }
    model.shrink();
    assert_eq!(heap.stats().pages(), 0);
    assert_eq!(
        region.available(),
        region.capacity(),
        "every page went back to the region"
    );
}

fuzz_target!(|input: Input| {
    let region = TinyRegion::new(usize::from(input.region_pages % 8) + 1);
    if input.with_fallback {
        run(&input, System, region.pages());
    } else {
        run(&input, NoFallback, region.pages());
    }
});
