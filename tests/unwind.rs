//! A page source that panics. A page source is user code behind
//! `unsafe impl PageAllocator`, and its contract lets it panic: the caches
//! must keep their counts right and lose no slot, and the per-thread fronts
//! must be whole for whatever runs during the unwind — a panic hook that
//! uses the same front included.
//!
//! Every test here makes `Flaky` (pages from `System`, with a switch that
//! makes the next `allocate_page` or `deallocate_page` panic) panic once in
//! the middle of an operation, catches the panic, and checks the cache
//! against what is known independently of its counters: the pages the page
//! source has out, and the slabs `for_each_slab` walks.
//!
//! - A panic hook that uses the front whose refill or drain is unwinding
//!   (undefined behaviour when the front lent out `&mut` to its magazine;
//!   Miri, under Stacked and Tree Borrows, is what sees that part).
//! - `shrink`, a lower reserve (`set_config`) and `Drop` whose page source
//!   panics: counters that stay right, the rest given back later.
//! - A free into a full magazine whose drain panics: the freed slot is not
//!   lost.
//! - A flush whose first page return panics: every slot accounted for, the
//!   slabs not yet given back on the cache's lists.
//!
//! Panic hooks are process-global: every test takes `HOOK_LOCK`, installs
//! its own hook (quiet, or one that uses the front) and puts the default one
//! back when done.

mod common;

use common::flush_thread_cache;
use std::alloc::{Layout, System};
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::LocalKey;

use minimal_slab::page_allocator::GlobalAllocPages;
use minimal_slab::typenum::{U1024, U4096};
use minimal_slab::{
    CacheConfig, CacheStats, LocalAllocator, LocalBox, LocalCache, NoFallback, PageAllocError,
    PageAllocator, SlabAllocator, SlabCache,
};

/// The object of every test: a kilobyte, so that a 4 KiB slab holds three
/// of them and a few frees empty a slab.
type Block = [u8; 1024];

/// The raw allocator's size classes go up to 1 KiB: its largest class is
/// `Block`'s, again three slots a slab.
type RawHeap<'p> = SlabAllocator<&'p Flaky, NoFallback, U1024>;

/// The layout the raw front allocates.
const LAYOUT: Layout = Layout::new::<Block>();

/// Index of the 1 KiB size class (classes are 8, 16, …, 1024 bytes).
const RAW_CLASS: usize = (1024 / 8usize).trailing_zeros() as usize;

/// The slots a front's magazine holds (the default, 32).
const MAGAZINE: usize = 32;

/// What a magazine gives back when it overflows: half of it.
const BATCH: usize = MAGAZINE / 2;

/// Whether this build keeps the batches magazines overflow with in the
/// cache's depot (builds without checks), rather than in the slabs.
const DEPOT: bool = !cfg!(any(debug_assertions, feature = "checked"));

/// How many batches the depot of a cache of 1 KiB slots holds: 4 MiB of
/// slots in batches of 32, the most a magazine gives back at once.
const DEPOT_BATCHES: usize = (4 << 20) / (1024 * 32);

// ---------------------------------------------------------------------------
// The page source.

/// The panic `Flaky` raises: recognised by the hooks and by the tests, so a
/// test that catches some other panic (an overflow in the counters, a
/// failed assertion in the library) fails.
#[derive(Debug)]
struct PagePanic(&'static str);

/// A page the page source has out, kept so that pages a panicking `Drop`
/// leaked can be given back at the end of a test (and so that Miri's leak
/// check sees no leak).
struct OutPage(NonNull<u8>);

// SAFETY: a page is plain memory owned by whoever holds it; `OutPage` is only
// a record kept under `Flaky::out`'s lock, dereferenced by no one but the
// page source giving the page back.
unsafe impl Send for OutPage {}

/// 4 KiB pages from `System`, one allocation each, that panics on demand:
/// once armed, the next `allocate_page` panics before allocating, or the next
/// `deallocate_page` gives the page back and then panics (the page counts as
/// given back, as the trait's contract says). It keeps the pages it has out.
struct Flaky {
    inner: GlobalAllocPages<System>,
    panic_on_allocate: AtomicBool,
    panic_on_deallocate: AtomicBool,
    allocate_calls: AtomicUsize,
    deallocate_calls: AtomicUsize,
    /// Pages given back that were not out: a double free or a foreign page.
    foreign: AtomicUsize,
    out: Mutex<Vec<OutPage>>,
}

impl Flaky {
    const fn new() -> Self {
        Self {
            inner: GlobalAllocPages::new(System),
            panic_on_allocate: AtomicBool::new(false),
            panic_on_deallocate: AtomicBool::new(false),
            allocate_calls: AtomicUsize::new(0),
            deallocate_calls: AtomicUsize::new(0),
            foreign: AtomicUsize::new(0),
            out: Mutex::new(Vec::new()),
        }
    }

    fn out(&self) -> MutexGuard<'_, Vec<OutPage>> {
        self.out.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next `allocate_page` panics.
    fn arm_allocate(&self) {
        self.panic_on_allocate.store(true, Ordering::SeqCst);
    }

    /// The next `deallocate_page` panics, after giving its page back.
    fn arm_deallocate(&self) {
        self.panic_on_deallocate.store(true, Ordering::SeqCst);
    }

    /// Whether an armed panic has not happened (yet).
    fn still_armed(&self) -> bool {
        self.panic_on_allocate.load(Ordering::SeqCst)
            || self.panic_on_deallocate.load(Ordering::SeqCst)
    }

    fn disarm(&self) {
        self.panic_on_allocate.store(false, Ordering::SeqCst);
        self.panic_on_deallocate.store(false, Ordering::SeqCst);
    }

    /// Pages handed out and not given back.
    fn outstanding(&self) -> usize {
        self.out().len()
    }

    fn deallocate_calls(&self) -> usize {
        self.deallocate_calls.load(Ordering::SeqCst)
    }

    fn foreign(&self) -> usize {
        self.foreign.load(Ordering::SeqCst)
    }

    /// Gives back every page still out, and returns how many: for pages a
    /// cache leaked (its `Drop` unwound), once that cache is gone.
    fn reclaim_leaked(&self) -> usize {
        let leaked = std::mem::take(&mut *self.out());
        for page in &leaked {
            // SAFETY: the page came from `inner` and is still out; the cache
            // that held it is gone (the caller's word), so no one uses it.
            unsafe { self.inner.deallocate_page(page.0) };
        }
        leaked.len()
    }
}

// SAFETY: pages come from `GlobalAllocPages<System>`, which keeps the
// contract; this wrapper only records them, and panics either before a page
// is handed out or after it was given back.
unsafe impl PageAllocator for Flaky {
    type PageSize = U4096;

    fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        self.allocate_calls.fetch_add(1, Ordering::SeqCst);
        if self.panic_on_allocate.swap(false, Ordering::SeqCst) {
            panic::panic_any(PagePanic("allocate_page"));
        }
        let page = self.inner.allocate_page()?;
        self.out().push(OutPage(page));
        Ok(page)
    }

    unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        self.deallocate_calls.fetch_add(1, Ordering::SeqCst);
        {
            let mut out = self.out();
            match out.iter().position(|held| held.0 == page) {
                Some(i) => {
                    out.swap_remove(i);
                }
                None => {
                    // Not ours to give back: count it, touch nothing.
                    self.foreign.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
        }
        // SAFETY: the page came from `inner` (it was out), and the caller
        // promises no one uses it any more.
        unsafe { self.inner.deallocate_page(page) };
        if self.panic_on_deallocate.swap(false, Ordering::SeqCst) {
            panic::panic_any(PagePanic("deallocate_page"));
        }
    }
}

// ---------------------------------------------------------------------------
// Panic hooks.

/// Serialises the tests: each installs a process-wide panic hook.
static HOOK_LOCK: Mutex<()> = Mutex::new(());

thread_local! {
    /// Whether the hook installed by this thread's test should use the
    /// front: only for the test's own `PagePanic`, on the test's thread.
    static HOOK_ACTIVE: Cell<bool> = const { Cell::new(false) };
    /// Blocks the test lends the hook: it frees one into the front (a push
    /// onto the magazine) and allocates it again (a pop).
    static STASH: RefCell<Vec<NonNull<u8>>> = const { RefCell::new(Vec::new()) };
    /// What the hook saw: the front's `cached()` at each run.
    static SEEN: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Holds `HOOK_LOCK` and a hook of this test's; puts the default hook back
/// when dropped.
struct HookGuard {
    _lock: MutexGuard<'static, ()>,
}

/// Installs a hook that runs `work` for a `PagePanic` raised on this thread
/// and says nothing else about it; other panics (a failing assertion) go to
/// the default hook, which prints them.
fn install_hook(work: impl Fn() + Send + Sync + 'static) -> HookGuard {
    let lock = HOOK_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let default = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<PagePanic>().is_some() {
            if HOOK_ACTIVE.with(Cell::get) {
                work();
            }
        } else {
            default(info);
        }
    }));
    HOOK_ACTIVE.with(|active| active.set(true));
    STASH.with(|stash| stash.borrow_mut().clear());
    SEEN.with(|seen| seen.borrow_mut().clear());
    HookGuard { _lock: lock }
}

/// A hook that only keeps the deliberate panics quiet.
fn quiet_hook() -> HookGuard {
    install_hook(|| {})
}

impl Drop for HookGuard {
    fn drop(&mut self) {
        HOOK_ACTIVE.with(|active| active.set(false));
        // Changing the hook from a panicking thread panics again: a failing
        // test leaves its hook, which stays quiet on other threads, in place
        // for the next one to replace.
        if !std::thread::panicking() {
            drop(panic::take_hook()); // the default hook again
        }
    }
}

/// The work of a hook that uses the front in `key` — this thread's, the one
/// whose page source is panicking: it records what the front holds, frees a
/// block lent through `STASH` into it and allocates one back. Neither
/// reaches the shared cache (whose lock the panicking call holds): the free
/// happens only into a magazine with room, and the allocation then pops
/// that very block.
fn hook_using<R: Rig + 'static>(key: &'static LocalKey<R>) -> impl Fn() + Send + Sync + 'static {
    move || {
        key.with(|rig| {
            let cached = rig.cached();
            SEEN.with(|seen| seen.borrow_mut().push(cached));
            let lent = STASH.with(|stash| stash.borrow_mut().pop());
            if let Some(block) = lent {
                if cached < MAGAZINE {
                    // SAFETY: lent by the test: taken from this rig and not
                    // freed since; the test no longer uses it.
                    unsafe { rig.give(block) };
                    let again = rig.take();
                    STASH.with(|stash| stash.borrow_mut().push(again));
                } else {
                    STASH.with(|stash| stash.borrow_mut().push(block));
                }
            }
        });
    }
}

/// Asserts that `caught` is the page source's deliberate panic, raised in
/// `call` (`allocate_page` or `deallocate_page`).
fn assert_page_panic<T>(caught: Result<T, Box<dyn Any + Send>>, what: &str, call: &str) {
    match caught {
        Ok(_) => panic!("{what}: the page source was expected to panic, and did not"),
        Err(payload) => match payload.downcast::<PagePanic>() {
            Ok(ours) => assert_eq!(ours.0, call, "{what}: the panic came from another call"),
            Err(other) => {
                let message = other
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| other.downcast_ref::<&str>().copied())
                    .unwrap_or("(not a string)");
                panic!("{what}: unwound with another panic than the page source's: {message}");
            }
        },
    }
}

// ---------------------------------------------------------------------------
// The two fronts, seen through one interface.

/// A per-thread front and its shared cache (its 1 KiB class, for the raw
/// one), through what the scenarios need.
trait Rig {
    /// One block, from the front (panics if the page source does).
    fn take(&self) -> NonNull<u8>;
    /// Frees `block` into the front.
    ///
    /// # Safety
    ///
    /// `block` came from `take` on this rig (or another front of the same
    /// cache), is not freed twice and not used afterwards.
    unsafe fn give(&self, block: NonNull<u8>);
    fn cached(&self) -> usize;
    fn flush(&self);
    /// The shared cache's counters.
    fn stats(&self) -> CacheStats;
    /// `in_use` of each slab the shared cache walks.
    fn slabs(&self) -> Vec<usize>;
    /// The shared cache's `shrink`.
    fn shrink(&self) -> usize;
    fn pages(&self) -> &Flaky;
    /// `count` blocks from another front of the same cache (which then
    /// flushes).
    fn take_elsewhere(&self, count: usize) -> Vec<NonNull<u8>>;
    /// Frees `blocks` into another front of the same cache, which then
    /// flushes.
    ///
    /// # Safety
    ///
    /// As for [`give`](Self::give), for each block.
    unsafe fn give_elsewhere(&self, blocks: Vec<NonNull<u8>>);
}

/// The typed front.
struct Typed<'c>(LocalCache<'c, Block, &'c Flaky>);

impl Rig for Typed<'_> {
    fn take(&self) -> NonNull<u8> {
        LocalBox::into_raw(self.0.alloc([7; 1024]).unwrap()).cast()
    }

    unsafe fn give(&self, block: NonNull<u8>) {
        // SAFETY: the caller's guarantees: the pointer `into_raw` gave, of
        // this front's cache, with no other handle.
        drop(unsafe { LocalBox::from_raw(&self.0, block.cast::<Block>()) });
    }

    fn cached(&self) -> usize {
        self.0.cached()
    }

    fn flush(&self) {
        self.0.flush();
    }

    fn stats(&self) -> CacheStats {
        self.0.cache().stats()
    }

    fn slabs(&self) -> Vec<usize> {
        let mut slabs = Vec::new();
        self.0
            .cache()
            .for_each_slab(|slab| slabs.push(slab.in_use()));
        slabs
    }

    fn shrink(&self) -> usize {
        self.0.cache().shrink()
    }

    fn pages(&self) -> &Flaky {
        self.0.cache().page_allocator()
    }

    fn take_elsewhere(&self, count: usize) -> Vec<NonNull<u8>> {
        let other = self.0.cache().local();
        (0..count)
            .map(|_| LocalBox::into_raw(other.alloc([7; 1024]).unwrap()).cast())
            .collect()
    }

    unsafe fn give_elsewhere(&self, blocks: Vec<NonNull<u8>>) {
        let other = self.0.cache().local();
        for block in blocks {
            // SAFETY: the caller's guarantees: a pointer `into_raw` gave, of
            // this cache, with no other handle.
            drop(unsafe { LocalBox::from_raw(&other, block.cast::<Block>()) });
        }
    }
}

/// The raw front, used for one size class.
struct Raw<'a>(LocalAllocator<'a, &'a Flaky, NoFallback, U1024>);

impl Rig for Raw<'_> {
    fn take(&self) -> NonNull<u8> {
        self.0.allocate(LAYOUT).unwrap()
    }

    unsafe fn give(&self, block: NonNull<u8>) {
        // SAFETY: the caller's guarantees: allocated with `LAYOUT` by a
        // front of this allocator, freed once.
        unsafe { self.0.deallocate(block, LAYOUT) };
    }

    fn cached(&self) -> usize {
        self.0.cached()
    }

    fn flush(&self) {
        self.0.flush();
    }

    fn stats(&self) -> CacheStats {
        self.0.allocator().stats().classes()[RAW_CLASS]
    }

    fn slabs(&self) -> Vec<usize> {
        let mut slabs = Vec::new();
        self.0.allocator().for_each_slab(|class, slab| {
            if class == LAYOUT.size() {
                slabs.push(slab.in_use());
            }
        });
        slabs
    }

    fn shrink(&self) -> usize {
        self.0.allocator().shrink_to_fit()
    }

    fn pages(&self) -> &Flaky {
        self.0.allocator().page_allocator()
    }

    fn take_elsewhere(&self, count: usize) -> Vec<NonNull<u8>> {
        let other = self.0.allocator().local();
        (0..count)
            .map(|_| other.allocate(LAYOUT).unwrap())
            .collect()
    }

    unsafe fn give_elsewhere(&self, blocks: Vec<NonNull<u8>>) {
        let other = self.0.allocator().local();
        for block in blocks {
            // SAFETY: the caller's guarantees: allocated with `LAYOUT` by a
            // front of this allocator, freed once.
            unsafe { other.deallocate(block, LAYOUT) };
        }
    }
}

/// Checks the shared cache's counters against what is known without them:
/// the slabs it walks, the pages its page source has out, and the blocks
/// in use — `held` by the test (or lent to the hook) plus those resting in
/// the front's magazine. Slots in the cache's depot are in use as far as
/// their slabs know.
fn assert_consistent<R: Rig>(rig: &R, held: usize, when: &str) {
    let stats = rig.stats();
    let slabs = rig.slabs();
    let per = stats.slots_per_slab;
    let count = |keep: &dyn Fn(usize) -> bool| slabs.iter().filter(|&&n| keep(n)).count();
    assert_eq!(
        stats.pages,
        slabs.len(),
        "{when}: pages against slabs walked"
    );
    assert_eq!(
        stats.pages,
        rig.pages().outstanding(),
        "{when}: pages against the pages the page source has out"
    );
    assert_eq!(stats.empty_slabs, count(&|n| n == 0), "{when}: empty slabs");
    assert_eq!(stats.full_slabs, count(&|n| n == per), "{when}: full slabs");
    assert_eq!(
        stats.partial_slabs,
        count(&|n| n > 0 && n < per),
        "{when}: partial slabs"
    );
    assert_eq!(
        stats.objects_in_use + stats.depot_slots,
        slabs.iter().sum::<usize>(),
        "{when}: objects in use and in the depot against the slabs' own counts"
    );
    assert_eq!(
        stats.objects_in_use,
        held + rig.cached(),
        "{when}: objects in use against those held and cached"
    );
    assert_eq!(
        stats.free_slots + stats.objects_in_use + stats.depot_slots,
        stats.pages * per,
        "{when}: free slots"
    );
    assert_eq!(rig.pages().foreign(), 0, "{when}: a page given back twice");
}

/// Frees `held`, flushes the front and shrinks the cache: nothing may be
/// left in use, no page held.
fn give_everything_back<R: Rig>(rig: &R, held: Vec<NonNull<u8>>) {
    for block in held {
        // SAFETY: taken from this rig and not freed since.
        unsafe { rig.give(block) };
    }
    rig.flush();
    assert_eq!(rig.cached(), 0);
    assert_eq!(rig.stats().objects_in_use, 0, "a slot was lost");
    rig.shrink();
    assert_eq!(rig.stats().pages, 0);
    assert_eq!(rig.pages().outstanding(), 0, "pages still out after shrink");
    assert_eq!(rig.pages().foreign(), 0, "a page given back twice");
}

/// The pages (slab addresses) of `blocks`, with the blocks on each.
fn by_page(blocks: Vec<NonNull<u8>>) -> Vec<Vec<NonNull<u8>>> {
    let mut pages = BTreeMap::<usize, Vec<NonNull<u8>>>::new();
    for block in blocks {
        pages
            .entry(block.as_ptr().addr() & !(4096 - 1))
            .or_default()
            .push(block);
    }
    pages.into_values().collect()
}

// ---------------------------------------------------------------------------
// Scenarios, for either front.

/// A refill whose page source panics: the front's magazine is empty, the
/// cache has no free slot, and `allocate_page` panics. The front and the
/// cache must be as before (the refill asks for a page only while its batch
/// is empty, so it has no slot to lose), and work on.
fn refill_panics<R: Rig>(rig: &R) {
    // Every slot in use: none in the magazine, none free in the cache, so
    // the next allocation needs a page.
    let mut held = vec![rig.take()];
    while rig.cached() > 0 || rig.stats().free_slots > 0 {
        held.push(rig.take());
    }
    // One block lent to the hook, if there is one.
    STASH.with(|stash| stash.borrow_mut().extend(held.pop()));
    assert_consistent(rig, held.len() + 1, "before the refill");
    let pages_before = rig.pages().outstanding();

    rig.pages().arm_allocate();
    assert_page_panic(
        catch_unwind(AssertUnwindSafe(|| rig.take())),
        "refill",
        "allocate_page",
    );
    assert!(!rig.pages().still_armed());
    held.extend(STASH.with(|stash| stash.borrow_mut().drain(..).collect::<Vec<_>>()));

    assert_eq!(rig.cached(), 0, "the failed refill cached nothing");
    assert_eq!(rig.pages().outstanding(), pages_before);
    assert_consistent(rig, held.len(), "after the refill panicked");
    // The front works on.
    for _ in 0..5 {
        held.push(rig.take());
    }
    assert_consistent(rig, held.len(), "after more allocations");

    // A refill that finds fewer free slots in the cache than a batch: it may
    // take them and stop short, or ask for a page as well — but should that
    // panic, the slots it had taken must not be lost.
    rig.flush();
    if rig.stats().free_slots == 0 {
        let mut slabs = by_page(std::mem::take(&mut held));
        let shared = slabs
            .iter_mut()
            .find(|blocks| blocks.len() >= 2)
            .expect("a slab holding two blocks");
        let block = shared.pop().expect("two blocks");
        // SAFETY: taken above, freed once.
        unsafe { rig.give(block) };
        rig.flush();
        held = slabs.concat();
    }
    let free = rig.stats().free_slots;
    assert!(free > 0 && free < BATCH, "{free} free slots");
    rig.pages().arm_allocate();
    match catch_unwind(AssertUnwindSafe(|| rig.take())) {
        Ok(block) => held.push(block),
        caught => assert_page_panic(caught, "short refill", "allocate_page"),
    }
    rig.pages().disarm();
    assert_consistent(rig, held.len(), "after a short refill");
    give_everything_back(rig, held);
}

/// A free into a full magazine whose drain empties slabs, the first of whose
/// page returns panics (reserve 0). The freed block must be in the magazine
/// (bug: it was pushed only after the drain, and lost when the drain
/// unwound), and everything else where it was.
///
/// A build with a depot keeps a drained batch there while it has room: the
/// depot is filled first, through another front, so that this drain goes
/// to the slabs (blocks taken before the scenario's, so that no slab holds
/// both).
fn drain_panics<R: Rig>(rig: &R) {
    let filler = match DEPOT {
        true => rig.take_elsewhere(MAGAZINE + DEPOT_BATCHES * BATCH),
        false => Vec::new(),
    };
    let blocks: Vec<_> = (0..=MAGAZINE).map(|_| rig.take()).collect();
    // One block lent to the hook.
    let lent = rig.take();
    STASH.with(|stash| stash.borrow_mut().push(lent));
    // SAFETY: taken above, freed once.
    unsafe { rig.give_elsewhere(filler) };
    assert_eq!(
        rig.stats().depot_slots,
        DEPOT_BATCHES * BATCH * DEPOT as usize
    );
    rig.flush();
    assert_consistent(rig, blocks.len() + 1, "before the frees");

    let (fill, last) = blocks.split_at(MAGAZINE);
    for &block in fill {
        // SAFETY: taken above, freed once.
        unsafe { rig.give(block) };
    }
    assert_eq!(rig.cached(), MAGAZINE);
    let calls_before = rig.pages().deallocate_calls();

    rig.pages().arm_deallocate();
    let last = last[0];
    // SAFETY: taken above, freed once (whether or not the drain unwinds).
    let caught = catch_unwind(AssertUnwindSafe(|| unsafe { rig.give(last) }));
    assert_page_panic(caught, "drain", "deallocate_page");
    assert_eq!(
        rig.pages().deallocate_calls() - calls_before,
        1,
        "the first page return panicked"
    );
    let held: Vec<_> = STASH.with(|stash| stash.borrow_mut().drain(..).collect());
    assert_eq!(held.len(), 1);

    assert_eq!(
        rig.cached(),
        MAGAZINE - BATCH + 1,
        "half the magazine went back, the freed block stayed"
    );
    assert_consistent(rig, held.len(), "after the drain panicked");
    give_everything_back(rig, held);
}

/// A flush of a magazine holding four slabs' worth of blocks (reserve 0):
/// four pages to give back, the first of which panics. Every slot must be
/// back on its slab, the three slabs not given back on the cache's lists,
/// and a later `shrink` must return them.
fn flush_panics<R: Rig>(rig: &R) {
    let per = rig.stats().slots_per_slab;
    let blocks: Vec<_> = (0..4 * per).map(|_| rig.take()).collect();
    rig.flush();
    for block in blocks {
        // SAFETY: taken above, freed once.
        unsafe { rig.give(block) };
    }
    assert_consistent(rig, 0, "before the flush");
    let pages_before = rig.stats().pages;
    assert!(pages_before >= 2, "several pages to give back");
    let calls_before = rig.pages().deallocate_calls();

    rig.pages().arm_deallocate();
    assert_page_panic(
        catch_unwind(AssertUnwindSafe(|| rig.flush())),
        "flush",
        "deallocate_page",
    );
    assert_eq!(
        rig.pages().deallocate_calls() - calls_before,
        1,
        "the first page return panicked, the others were not tried"
    );

    assert_eq!(rig.cached(), 0, "the flush took every slot");
    let stats = rig.stats();
    assert_eq!(stats.objects_in_use, 0, "every slot is back on its slab");
    assert_eq!(stats.pages, pages_before - 1, "one page went back");
    assert_eq!(stats.empty_slabs, pages_before - 1, "the rest are listed");
    assert_consistent(rig, 0, "after the flush panicked");
    assert_eq!(rig.shrink(), pages_before - 1);
    give_everything_back(rig, Vec::new());
}

/// How a scenario gives empty slabs back while the page source panics.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Release {
    /// `shrink` (`shrink_to_fit` for the raw allocator).
    Shrink,
    /// `set_config` with the reserve lowered from 10 to 1.
    LowerReserve,
}

/// A cache (reserve 10) with one full slab, one partial one and several
/// empty ones; `release` gives the empty ones back and the page source
/// panics on the first. The counters must stay right (bug: `empty` was
/// decremented after the page went back, so the cache counted an empty slab
/// it no longer held), the rest must go back later, and — with
/// `shrink_at_end` false — the cache's `Drop` gives them back.
fn release_panics<R: Rig>(
    rig: &R,
    release: Release,
    set_config: &dyn Fn(CacheConfig),
    shrink_at_end: bool,
) {
    let per = rig.stats().slots_per_slab;
    let blocks: Vec<_> = (0..6 * per).map(|_| rig.take()).collect();
    rig.flush();
    let mut pages = by_page(blocks);
    // One slab kept full, one partial (one block kept), the others emptied.
    let full = pages
        .iter()
        .position(|blocks| blocks.len() == per)
        .expect("a full slab");
    let mut held = pages.swap_remove(full);
    let mut freed = pages.concat();
    held.push(freed.pop().expect("a second slab"));
    for block in freed {
        // SAFETY: taken above, freed once.
        unsafe { rig.give(block) };
    }
    rig.flush();
    let stats = rig.stats();
    let empty = stats.empty_slabs;
    assert!(empty >= 4, "several empty slabs ({empty})");
    assert_eq!((stats.full_slabs, stats.partial_slabs), (1, 1));
    assert_consistent(rig, held.len(), "before the release");

    rig.pages().arm_deallocate();
    let caught = catch_unwind(AssertUnwindSafe(|| match release {
        Release::Shrink => drop(rig.shrink()),
        Release::LowerReserve => set_config(CacheConfig::new().reserve(1)),
    }));
    assert_page_panic(caught, "release", "deallocate_page");
    rig.pages().disarm();

    let stats = rig.stats();
    assert_eq!(
        stats.empty_slabs,
        empty - 1,
        "one page went back; the slabs not given back are listed, empty"
    );
    assert_eq!((stats.full_slabs, stats.partial_slabs), (1, 1));
    assert_eq!(stats.objects_in_use, held.len());
    assert_consistent(rig, held.len(), "after the release panicked");

    if release == Release::LowerReserve {
        // Lowering it again releases down to the reserve.
        set_config(CacheConfig::new().reserve(1));
        assert_eq!(rig.stats().empty_slabs, 1);
        assert_consistent(rig, held.len(), "after the reserve was lowered again");
    }
    if shrink_at_end {
        let left = rig.stats().empty_slabs;
        assert_eq!(rig.shrink(), left, "shrink gives back the rest");
        assert_consistent(rig, held.len(), "after shrink");
        assert_eq!(rig.stats().pages, 2);
        give_everything_back(rig, held);
    } else {
        for block in held {
            // SAFETY: taken above, freed once.
            unsafe { rig.give(block) };
        }
        rig.flush();
        assert_eq!(rig.stats().objects_in_use, 0);
        assert_consistent(rig, 0, "before the drop");
    }
}

// ---------------------------------------------------------------------------
// Bug 1: a panic hook that uses the front whose page source panics.

#[test]
fn typed_refill_panics_while_the_hook_uses_the_same_front() {
    static PAGES: Flaky = Flaky::new();
    static CACHE: SlabCache<Block, &Flaky> =
        SlabCache::with_config(&PAGES, CacheConfig::new().reserve(0).eager());
    thread_local! {
        static FRONT: Typed<'static> = Typed(CACHE.local());
    }
    let _hook = install_hook(hook_using(&FRONT));
    FRONT.with(refill_panics);
    let seen = SEEN.with(|seen| seen.borrow().clone());
    assert_eq!(seen.first(), Some(&0), "the hook ran, on an empty magazine");
}

#[test]
fn typed_drain_panics_while_the_hook_uses_the_same_front() {
    static PAGES: Flaky = Flaky::new();
    static CACHE: SlabCache<Block, &Flaky> =
        SlabCache::with_config(&PAGES, CacheConfig::new().reserve(0).eager());
    thread_local! {
        static FRONT: Typed<'static> = Typed(CACHE.local());
    }
    let _hook = install_hook(hook_using(&FRONT));
    FRONT.with(drain_panics);
    let seen = SEEN.with(|seen| seen.borrow().clone());
    assert_eq!(
        seen,
        [MAGAZINE - BATCH + 1],
        "the hook ran once, with the freed block already in the magazine"
    );
}

#[test]
fn raw_refill_panics_while_the_hook_uses_the_same_front() {
    static PAGES: Flaky = Flaky::new();
    static HEAP: RawHeap<'static> =
        SlabAllocator::with_size_classes(&PAGES, NoFallback, CacheConfig::new().reserve(0).eager());
    thread_local! {
        static FRONT: Raw<'static> = Raw(HEAP.local());
    }
    let _hook = install_hook(hook_using(&FRONT));
    FRONT.with(refill_panics);
    let seen = SEEN.with(|seen| seen.borrow().clone());
    assert_eq!(seen.first(), Some(&0), "the hook ran, on an empty magazine");
}

#[test]
fn raw_drain_panics_while_the_hook_uses_the_same_front() {
    static PAGES: Flaky = Flaky::new();
    static HEAP: RawHeap<'static> =
        SlabAllocator::with_size_classes(&PAGES, NoFallback, CacheConfig::new().reserve(0).eager());
    thread_local! {
        static FRONT: Raw<'static> = Raw(HEAP.local());
    }
    let _hook = install_hook(hook_using(&FRONT));
    FRONT.with(drain_panics);
    let seen = SEEN.with(|seen| seen.borrow().clone());
    assert_eq!(
        seen,
        [MAGAZINE - BATCH + 1],
        "the hook ran once, with the freed block already in the magazine"
    );
}

// ---------------------------------------------------------------------------
// Bug 2: counters when a page goes back from shrink, set_config or Drop.

/// A typed cache over `pages` with a reserve of 10.
fn typed_cache(pages: &Flaky) -> SlabCache<Block, &Flaky> {
    SlabCache::with_config(pages, CacheConfig::new().reserve(10))
}

/// A raw allocator over `pages` with a reserve of 10.
fn raw_heap(pages: &Flaky) -> RawHeap<'_> {
    SlabAllocator::with_size_classes(pages, NoFallback, CacheConfig::new().reserve(10))
}

/// Runs `release_panics` on a typed cache, then drops the cache, which must
/// not panic, and must leave no page out.
fn typed_release(release: Release, shrink_at_end: bool) {
    let _hook = quiet_hook();
    let pages = Flaky::new();
    let cache = typed_cache(&pages);
    {
        let rig = Typed(cache.local());
        release_panics(
            &rig,
            release,
            &|config| cache.set_config(config),
            shrink_at_end,
        );
    }
    let dropped = catch_unwind(AssertUnwindSafe(|| drop(cache)));
    assert!(dropped.is_ok(), "the cache's Drop panicked");
    assert_eq!(pages.outstanding(), 0, "Drop gave every page back");
    assert_eq!(pages.foreign(), 0);
}

/// As `typed_release`, on the raw allocator (`shrink_to_fit`).
fn raw_release(shrink_at_end: bool) {
    let _hook = quiet_hook();
    let pages = Flaky::new();
    let heap = raw_heap(&pages);
    {
        let rig = Raw(heap.local());
        let no_set_config = |_| unreachable!("the raw allocator has no set_config");
        release_panics(&rig, Release::Shrink, &no_set_config, shrink_at_end);
    }
    let dropped = catch_unwind(AssertUnwindSafe(|| drop(heap)));
    assert!(dropped.is_ok(), "the allocator's Drop panicked");
    assert_eq!(pages.outstanding(), 0, "Drop gave every page back");
    assert_eq!(pages.foreign(), 0);
}

#[test]
fn typed_shrink_that_panics_keeps_the_counts_and_shrinks_later() {
    typed_release(Release::Shrink, true);
}

#[test]
fn typed_shrink_that_panics_then_drop_gives_the_rest_back() {
    typed_release(Release::Shrink, false);
}

#[test]
fn typed_lower_reserve_that_panics_keeps_the_counts_and_shrinks_later() {
    typed_release(Release::LowerReserve, true);
}

#[test]
fn typed_lower_reserve_that_panics_then_drop_gives_the_rest_back() {
    typed_release(Release::LowerReserve, false);
}

#[test]
fn raw_shrink_to_fit_that_panics_keeps_the_counts_and_shrinks_later() {
    raw_release(true);
}

#[test]
fn raw_shrink_to_fit_that_panics_then_drop_gives_the_rest_back() {
    raw_release(false);
}

/// Empty slabs in a cache kept by its reserve, nothing in use.
fn fill_reserve<R: Rig>(rig: &R) -> usize {
    let per = rig.stats().slots_per_slab;
    let blocks: Vec<_> = (0..5 * per).map(|_| rig.take()).collect();
    for block in blocks {
        // SAFETY: taken above, freed once.
        unsafe { rig.give(block) };
    }
    rig.flush();
    let stats = rig.stats();
    assert_eq!(stats.objects_in_use, 0);
    assert!(stats.empty_slabs >= 4);
    assert_consistent(rig, 0, "before the drop");
    stats.empty_slabs
}

#[test]
fn typed_drop_whose_page_source_panics_unwinds_once() {
    let _hook = quiet_hook();
    let pages = Flaky::new();
    let cache = typed_cache(&pages);
    let empty = fill_reserve(&Typed(cache.local()));

    pages.arm_deallocate();
    // A second panic while unwinding would abort the test process.
    assert_page_panic(
        catch_unwind(AssertUnwindSafe(|| drop(cache))),
        "drop",
        "deallocate_page",
    );
    // The page being given back counts as given back; the slabs not yet
    // given back leak with the cache.
    let leaked = pages.reclaim_leaked();
    assert!(leaked < empty, "{leaked} of {empty} pages leaked");
    assert_eq!(pages.foreign(), 0);
}

#[test]
fn raw_drop_whose_page_source_panics_unwinds_once() {
    let _hook = quiet_hook();
    let pages = Flaky::new();
    let heap = raw_heap(&pages);
    let empty = fill_reserve(&Raw(heap.local()));

    pages.arm_deallocate();
    assert_page_panic(
        catch_unwind(AssertUnwindSafe(|| drop(heap))),
        "drop",
        "deallocate_page",
    );
    let leaked = pages.reclaim_leaked();
    assert!(leaked < empty, "{leaked} of {empty} pages leaked");
    assert_eq!(pages.foreign(), 0);
}

// ---------------------------------------------------------------------------
// Bug 3: the slot freed into a full magazine whose drain unwinds.

#[test]
fn typed_free_into_a_full_magazine_whose_drain_panics_loses_no_slot() {
    let _hook = quiet_hook();
    let pages = Flaky::new();
    let cache = SlabCache::with_config(&pages, CacheConfig::new().reserve(0).eager());
    drain_panics(&Typed(cache.local()));
}

#[test]
fn raw_free_into_a_full_magazine_whose_drain_panics_loses_no_slot() {
    let _hook = quiet_hook();
    let pages = Flaky::new();
    let heap: RawHeap<'_> =
        SlabAllocator::with_size_classes(&pages, NoFallback, CacheConfig::new().reserve(0).eager());
    drain_panics(&Raw(heap.local()));
}

// ---------------------------------------------------------------------------
// Batch frees: a flush whose first page return panics.

#[test]
fn typed_flush_whose_first_page_return_panics_accounts_for_every_slot() {
    let _hook = quiet_hook();
    let pages = Flaky::new();
    let cache = SlabCache::with_config(&pages, CacheConfig::new().reserve(0).eager());
    flush_panics(&Typed(cache.local()));
}

#[test]
fn raw_flush_whose_first_page_return_panics_accounts_for_every_slot() {
    let _hook = quiet_hook();
    let pages = Flaky::new();
    let heap: RawHeap<'_> =
        SlabAllocator::with_size_classes(&pages, NoFallback, CacheConfig::new().reserve(0).eager());
    flush_panics(&Raw(heap.local()));
}

// ---------------------------------------------------------------------------
// The direct paths: one free, one allocation, no front.

#[test]
fn a_single_free_whose_page_return_panics_keeps_the_counts() {
    let _hook = quiet_hook();
    let pages = Flaky::new();
    let cache: SlabCache<Block, &Flaky> =
        SlabCache::with_config(&pages, CacheConfig::new().reserve(0).eager());
    let per = SlabCache::<Block, &Flaky>::SLOTS_PER_SLAB;
    let mut boxes: Vec<_> = (0..2 * per)
        .map(|_| cache.alloc([1; 1024]).unwrap())
        .collect();
    let last = boxes.pop().unwrap();
    // Empty the second slab but for `last`.
    boxes.truncate(per);
    assert_eq!(cache.stats().objects_in_use, per + 1);

    pages.arm_deallocate();
    // With `std` the free rests in this thread's cache; the flush that
    // returns it (with the two before it) to its slab gives the page back.
    let free = || {
        drop(last);
        flush_thread_cache(&cache);
    };
    assert_page_panic(
        catch_unwind(AssertUnwindSafe(free)),
        "free",
        "deallocate_page",
    );
    let stats = cache.stats();
    assert_eq!(stats.objects_in_use, per);
    assert_eq!(stats.pages, 1);
    assert_eq!(pages.outstanding(), 1);
    assert_eq!((stats.full_slabs, stats.empty_slabs), (1, 0));

    // An allocation whose page source panics changes nothing.
    pages.arm_allocate();
    let caught = catch_unwind(AssertUnwindSafe(|| cache.alloc([2; 1024]).is_ok()));
    assert_page_panic(caught, "allocation", "allocate_page");
    assert_eq!(cache.stats(), stats);
    assert_eq!(pages.outstanding(), 1);

    drop(boxes);
    flush_thread_cache(&cache);
    assert_eq!(cache.stats().objects_in_use, 0);
    assert_eq!(
        pages.outstanding(),
        0,
        "eager, reserve 0: the page went back"
    );
    assert_eq!(pages.foreign(), 0);
}

// ---------------------------------------------------------------------------
// A front of several size classes dropped while its page source panics.

#[test]
fn a_raw_front_dropped_while_a_page_return_panics_gives_back_every_class() {
    let _hook = quiet_hook();
    let pages = Flaky::new();
    // Classes up to 1 KiB; no reserve and eager, so every emptied slab goes
    // back.
    let heap: RawHeap<'_> =
        SlabAllocator::with_size_classes(&pages, NoFallback, CacheConfig::new().reserve(0).eager());
    let small = Layout::new::<[u8; 64]>();
    let front = heap.local();
    for layout in [small, LAYOUT] {
        let block = front.allocate(layout).unwrap();
        // SAFETY: allocated just above with `layout`, not used again.
        unsafe { front.deallocate(block, layout) };
    }
    assert!(front.cached() > 2, "both classes have cached slots");

    pages.arm_deallocate();
    assert_page_panic(
        catch_unwind(AssertUnwindSafe(|| drop(front))),
        "a front's drop",
        "deallocate_page",
    );
    // Every class's slots went back before the first page did, so none is
    // left in use, whichever class's page return panicked.
    assert_eq!(heap.stats().objects_in_use(), 0);
    heap.shrink_to_fit();
    assert_eq!(heap.stats().pages(), 0);
    assert_eq!(pages.outstanding(), 0);
    assert_eq!(pages.foreign(), 0);
}

// ---------------------------------------------------------------------------
// `GlobalAlloc` must not unwind: a panicking page source aborts instead.

/// Set in the child process that `global_alloc_aborts_when_its_page_source_panics`
/// starts.
const ABORT_CHILD: &str = "MINIMAL_SLAB_UNWIND_ABORT_CHILD";

#[test]
#[cfg_attr(miri, ignore = "starts a child process")]
fn global_alloc_aborts_when_its_page_source_panics() {
    if std::env::var_os(ABORT_CHILD).is_some() {
        let pages = Flaky::new();
        let heap: RawHeap<'_> =
            SlabAllocator::with_size_classes(&pages, NoFallback, CacheConfig::new());
        pages.arm_allocate();
        // SAFETY: a valid, non-zero layout.
        let _ = catch_unwind(AssertUnwindSafe(|| unsafe {
            std::alloc::GlobalAlloc::alloc(&heap, LAYOUT)
        }));
        // Reached only if the panic unwound out of `alloc`.
        std::process::exit(0);
    }
    let _lock = HOOK_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "global_alloc_aborts_when_its_page_source_panics",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(ABORT_CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&child.stderr);
    assert!(
        !child.status.success(),
        "the child ended normally: the panic unwound out of `alloc`"
    );
    assert!(
        stderr.contains("panic in a function that cannot unwind"),
        "{stderr}"
    );
}
