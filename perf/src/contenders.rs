//! Every allocator and pool under test, behind one of these traits.
//!
//! - [`Pool`]: typed objects on one thread (`pair`, `batch`, `churn`, the
//!   memory table);
//! - [`SharedPool`]: typed objects shared by threads through `&self`; every
//!   shared pool is also a `Pool` and a `ThreadedPool`;
//! - [`ThreadedPool`]: what the `threads` workloads run on — a pool each
//!   thread reaches through a [`ThreadFront`] of its own: the shared pool
//!   itself, or a per-thread front such as `minimal_slab::LocalCache`;
//! - [`RawAlloc`]: `Layout` in, pointer out (`raw`).
//!
//! The `for_each_*` functions build each contender and hand it to a
//! visitor, so the benchmarks and the memory table run the same list.

use core::alloc::{GlobalAlloc, Layout};
use core::marker::PhantomData;
use core::ptr::NonNull;
use std::alloc::{System, handle_alloc_error};

use heapless::pool::boxed::BoxPool;
use mimalloc::MiMalloc;
use minimal_slab::{
    CacheConfig, ChunkedGlobalPages, GlobalAllocPages, GlobalPages, LocalAllocator, LocalBox,
    LocalCache, PageAllocator, SlabAllocator, SlabBox, SlabCache,
};

use crate::Value;
use crate::free_list::{FreeList, SlotIndex, SpinFreeList};

/// The contenders' names, as they appear in benchmark ids and tables.
pub mod names {
    /// The unsynchronised free list, the baseline of every ratio.
    pub const FREE_LIST: &str = "freelist";
    /// The free list behind a spin lock.
    pub const SPIN_FREE_LIST: &str = "spin-freelist";
    /// One unsynchronised free list per thread, shared by no one: what
    /// the machine itself lets a loop this short gain from a second thread
    /// (the `threads` workloads' ceiling; no hand-off).
    pub const PRIVATE_FREE_LIST: &str = "private-freelist";
    /// `minimal_slab::SlabCache<T>`, default configuration (4 KiB pages
    /// cut from 256 KiB chunks of the global allocator; empty pages kept
    /// for the recent peak).
    pub const SLAB_CACHE: &str = "slabcache";
    /// `minimal_slab::SlabCache<T>` giving every page beyond the reserve
    /// back at once (`CacheConfig::new().eager()`): the policy before the
    /// hysteresis.
    pub const SLAB_CACHE_EAGER: &str = "slabcache-eager";
    /// `minimal_slab::SlabCache<T>` taking each page from the global
    /// allocator on its own (`GlobalPages`): what chunks save.
    pub const SLAB_CACHE_PAGEWISE: &str = "slabcache-pagewise";
    /// `minimal_slab::SlabCache<T>` keeping every empty page
    /// (`CacheConfig::new().reserve(usize::MAX)`).
    pub const SLAB_CACHE_KEEP: &str = "slabcache-keep";
    /// `minimal_slab::SlabCache<T>` taking its pages from mimalloc
    /// (`GlobalAllocPages<MiMalloc>`), whose page-aligned allocations cost
    /// no more than a page: the slab layout's own memory cost, without the
    /// system allocator's price for alignment.
    pub const SLAB_CACHE_MIMALLOC_PAGES: &str = "slabcache-mipages";
    /// A `minimal_slab::LocalCache` (default magazine) in front of a
    /// `SlabCache<T>`: one front per thread.
    pub const SLAB_CACHE_LOCAL: &str = "slabcache-local";
    /// The same front, objects kept as one-word pointers
    /// (`LocalBox::into_raw`, freed through `LocalBox::from_raw`), as the
    /// free list keeps indices: what the two-word `LocalBox` costs.
    pub const SLAB_CACHE_LOCAL_PTR: &str = "slabcache-local-ptr";
    /// `minimal_slab::SlabAllocator`, raw `allocate`/`deallocate`.
    pub const SLAB_ALLOCATOR: &str = "slaballocator";
    /// A `minimal_slab::LocalAllocator` (default magazines) in front of a
    /// `SlabAllocator`.
    pub const SLAB_ALLOCATOR_LOCAL: &str = "slaballocator-local";
    /// `Box::new` on the system allocator.
    pub const BOX_SYSTEM: &str = "box-system";
    /// The same through `mimalloc::MiMalloc`'s `GlobalAlloc` methods.
    pub const BOX_MIMALLOC: &str = "box-mimalloc";
    /// The `slab` crate: `insert`/`remove`.
    pub const SLAB: &str = "slab";
    /// `heapless::pool::boxed`, a lock-free pool of static blocks.
    pub const HEAPLESS: &str = "heapless";
    /// `sharded_slab::Slab`: `insert`/`take`.
    pub const SHARDED_SLAB: &str = "sharded-slab";
    /// `std::alloc::System` (raw).
    pub const SYSTEM: &str = "system";
    /// `mimalloc::MiMalloc` (raw).
    pub const MIMALLOC: &str = "mimalloc";
    /// A `talc::TalcLock` over a static arena (raw).
    pub const TALC: &str = "talc";
}

use names::*;

/// A typed pool used from one thread.
pub trait Pool<T: Value> {
    /// What an allocation hands back: a box, a key or an index.
    type Handle;

    /// Stores `value` and returns its handle. Panics if out of memory.
    fn alloc(&mut self, value: T) -> Self::Handle;
    /// A number that identifies the allocation (its address or key), for
    /// `black_box`, so no allocation can be optimised away.
    fn address(handle: &Self::Handle) -> usize;
    /// Frees the object and returns its [`Value::key`], read back first.
    fn free(&mut self, handle: Self::Handle) -> u64;
    /// Gives back what memory the pool can once everything is freed, and
    /// returns the pages given back if the pool counts them.
    fn release_memory(&mut self) -> Option<usize> {
        None
    }
    /// Pages held, for pools that count them.
    fn held_pages(&self) -> Option<usize> {
        None
    }
}

/// A typed pool shared by threads through `&self`.
pub trait SharedPool<T: Value>: Sync {
    /// What an allocation hands back; it may be freed on another thread.
    type Handle: Send;

    /// As [`Pool::alloc`].
    fn alloc(&self, value: T) -> Self::Handle;
    /// As [`Pool::address`].
    fn address(handle: &Self::Handle) -> usize;
    /// As [`Pool::free`].
    fn free(&self, handle: Self::Handle) -> u64;
    /// As [`Pool::release_memory`].
    fn release_memory(&self) -> Option<usize> {
        None
    }
    /// As [`Pool::held_pages`].
    fn held_pages(&self) -> Option<usize> {
        None
    }
}

/// One thread's way into a [`ThreadedPool`]: a [`Pool`] whose handles
/// can be turned into ones that another thread may free.
pub trait ThreadFront<T: Value>: Pool<T> {
    /// A handle that may travel to, and be freed on, another thread.
    type Sent: Send;

    /// Makes `handle` one that another thread may free.
    fn send(handle: Self::Handle) -> Self::Sent;
    /// Frees an object that may have been allocated on another thread and
    /// returns its [`Value::key`], read back first.
    fn free_sent(&mut self, handle: Self::Sent) -> u64;
}

/// Work to run on one thread's front; see [`ThreadedPool::with_front`].
pub trait FrontVisitor<T: Value, S> {
    /// What the work returns.
    type Output;

    /// Runs the work on `front`.
    fn visit<F: ThreadFront<T, Sent = S>>(self, front: &mut F) -> Self::Output;
}

/// A typed pool that several threads use at once, each through a front of
/// its own (the `threads` workloads).
pub trait ThreadedPool<T: Value>: Sync {
    /// What the fronts send each other.
    type Sent: Send;

    /// Whether an object one front allocates may be freed by another (the
    /// hand-off workload); a pool of private fronts cannot.
    const HANDS_OFF: bool = true;

    /// Makes a front for the calling thread and runs `work` on it; the
    /// front gives back what it holds when `work` returns.
    fn with_front<W: FrontVisitor<T, Self::Sent>>(&self, work: W) -> W::Output;
}

/// A shared pool used as its own front: every thread calls it directly.
pub struct SharedFront<'p, P>(pub &'p P);

impl<T: Value, P: SharedPool<T>> Pool<T> for SharedFront<'_, P> {
    type Handle = P::Handle;

    #[inline]
    fn alloc(&mut self, value: T) -> P::Handle {
        self.0.alloc(value)
    }

    #[inline]
    fn address(handle: &P::Handle) -> usize {
        P::address(handle)
    }

    #[inline]
    fn free(&mut self, handle: P::Handle) -> u64 {
        self.0.free(handle)
    }
}

impl<T: Value, P: SharedPool<T>> ThreadFront<T> for SharedFront<'_, P> {
    type Sent = P::Handle;

    #[inline]
    fn send(handle: P::Handle) -> P::Handle {
        handle
    }

    #[inline]
    fn free_sent(&mut self, handle: P::Handle) -> u64 {
        self.0.free(handle)
    }
}

/// Makes each shared pool a [`Pool`] too, through `&self`, and a
/// [`ThreadedPool`] that every thread calls directly.
macro_rules! pool_from_shared {
    ($([$($generics:tt)*] $pool:ty),* $(,)?) => {$(
        impl<$($generics)*> Pool<T> for $pool {
            type Handle = <Self as SharedPool<T>>::Handle;

            #[inline]
            fn alloc(&mut self, value: T) -> Self::Handle {
                <Self as SharedPool<T>>::alloc(self, value)
            }

            #[inline]
            fn address(handle: &Self::Handle) -> usize {
                <Self as SharedPool<T>>::address(handle)
            }

            #[inline]
            fn free(&mut self, handle: Self::Handle) -> u64 {
                <Self as SharedPool<T>>::free(self, handle)
            }

            fn release_memory(&mut self) -> Option<usize> {
                <Self as SharedPool<T>>::release_memory(self)
            }

            fn held_pages(&self) -> Option<usize> {
                <Self as SharedPool<T>>::held_pages(self)
            }
        }

        impl<$($generics)*> ThreadedPool<T> for $pool {
            type Sent = <Self as SharedPool<T>>::Handle;

            fn with_front<W: FrontVisitor<T, Self::Sent>>(&self, work: W) -> W::Output {
                work.visit(&mut SharedFront(self))
            }
        }
    )*};
}

pool_from_shared! {
    [T: Value] SpinFreeList<T>,
    ['a, T: Value, P: PageAllocator + Sync] CacheRef<'a, T, P>,
    [T: Value] SlabAllocatorPool,
    [T: Value] SystemBox,
    [T: Value] MimallocBox,
    [T: Value] HeaplessBox<T>,
    [T: Value] ShardedSlab<T>,
}

#[cold]
#[inline(never)]
fn out_of_memory(contender: &str) -> ! {
    panic!("{contender}: out of memory")
}

// ------------------------------------------------------------ baselines --

impl<T: Value> Pool<T> for FreeList<T> {
    type Handle = SlotIndex;

    #[inline]
    fn alloc(&mut self, value: T) -> SlotIndex {
        FreeList::alloc(self, value)
    }

    #[inline]
    fn address(handle: &SlotIndex) -> usize {
        handle.get()
    }

    #[inline]
    fn free(&mut self, handle: SlotIndex) -> u64 {
        FreeList::free(self, handle).key()
    }
}

impl<T: Value> SharedPool<T> for SpinFreeList<T> {
    type Handle = SlotIndex;

    #[inline]
    fn alloc(&self, value: T) -> SlotIndex {
        SpinFreeList::alloc(self, value)
    }

    #[inline]
    fn address(handle: &SlotIndex) -> usize {
        handle.get()
    }

    #[inline]
    fn free(&self, handle: SlotIndex) -> u64 {
        SpinFreeList::free(self, handle).key()
    }
}

// --------------------------------------------------------- minimal_slab --

/// A `SlabCache` used by reference, so that its `SlabBox` handles can
/// borrow it.
pub struct CacheRef<'a, T, P: PageAllocator = ChunkedGlobalPages>(pub &'a SlabCache<T, P>);

impl<'a, T: Value, P: PageAllocator + Sync> SharedPool<T> for CacheRef<'a, T, P> {
    type Handle = SlabBox<'a, T, P>;

    #[inline]
    fn alloc(&self, value: T) -> SlabBox<'a, T, P> {
        match self.0.alloc(value) {
            Ok(handle) => handle,
            Err(_) => out_of_memory(SLAB_CACHE),
        }
    }

    #[inline]
    fn address(handle: &SlabBox<'a, T, P>) -> usize {
        SlabBox::as_ptr(handle).addr()
    }

    #[inline]
    fn free(&self, handle: SlabBox<'a, T, P>) -> u64 {
        handle.key()
    }

    fn release_memory(&self) -> Option<usize> {
        Some(self.0.shrink())
    }

    fn held_pages(&self) -> Option<usize> {
        Some(self.0.stats().pages)
    }
}

/// A `LocalCache` (a per-thread front of a `SlabCache`) used by
/// reference, so that its `LocalBox` handles can borrow it.
pub struct LocalCacheRef<'l, 'c, T, P: PageAllocator = ChunkedGlobalPages>(
    pub &'l LocalCache<'c, T, P>,
);

impl<'l, 'c, T: Value, P: PageAllocator + Sync> Pool<T> for LocalCacheRef<'l, 'c, T, P> {
    type Handle = LocalBox<'l, 'c, T, P>;

    #[inline]
    fn alloc(&mut self, value: T) -> LocalBox<'l, 'c, T, P> {
        match self.0.alloc(value) {
            Ok(handle) => handle,
            Err(_) => out_of_memory(SLAB_CACHE_LOCAL),
        }
    }

    #[inline]
    fn address(handle: &LocalBox<'l, 'c, T, P>) -> usize {
        LocalBox::as_ptr(handle).addr()
    }

    #[inline]
    fn free(&mut self, handle: LocalBox<'l, 'c, T, P>) -> u64 {
        handle.key()
    }

    /// Flushes the front first: slots resting in its magazine count as in
    /// use, and would keep their slabs from `shrink`.
    fn release_memory(&mut self) -> Option<usize> {
        self.0.flush();
        Some(self.0.cache().shrink())
    }

    fn held_pages(&self) -> Option<usize> {
        Some(self.0.cache().stats().pages)
    }
}

/// A `LocalCache` whose objects are kept as one-word pointers, taken back
/// into a `LocalBox` to be freed.
pub struct LocalCachePtr<'l, 'c, T>(pub &'l LocalCache<'c, T>);

impl<T: Value> Pool<T> for LocalCachePtr<'_, '_, T> {
    type Handle = NonNull<T>;

    #[inline]
    fn alloc(&mut self, value: T) -> NonNull<T> {
        match self.0.alloc(value) {
            Ok(handle) => LocalBox::into_raw(handle),
            Err(_) => out_of_memory(SLAB_CACHE_LOCAL_PTR),
        }
    }

    #[inline]
    fn address(handle: &NonNull<T>) -> usize {
        handle.as_ptr().addr()
    }

    #[inline]
    fn free(&mut self, handle: NonNull<T>) -> u64 {
        // SAFETY: every handle of this pool came from `LocalBox::into_raw`
        // on this front, and the workloads free each one once.
        unsafe { LocalBox::from_raw(self.0, handle) }.key()
    }

    fn release_memory(&mut self) -> Option<usize> {
        self.0.flush();
        Some(self.0.cache().shrink())
    }

    fn held_pages(&self) -> Option<usize> {
        Some(self.0.cache().stats().pages)
    }
}

impl<'c, T: Value> ThreadFront<T> for LocalCacheRef<'_, 'c, T> {
    type Sent = SlabBox<'c, T>;

    #[inline]
    fn send(handle: Self::Handle) -> SlabBox<'c, T> {
        LocalBox::into_shared(handle)
    }

    /// Keeps the slot in this thread's magazine, not the producer's.
    #[inline]
    fn free_sent(&mut self, handle: SlabBox<'c, T>) -> u64 {
        let key = handle.key();
        self.0.recycle(handle);
        key
    }
}

/// Free lists of which each thread makes its own: nothing shared.
pub struct PrivateFreeLists;

impl<T: Value> ThreadFront<T> for FreeList<T> {
    /// Only values travel: a slot cannot be freed into another thread's
    /// list (the `threads` bench runs no hand-off for this contender).
    type Sent = T;

    fn send(_handle: SlotIndex) -> T {
        unreachable!("private free lists hand nothing over")
    }

    fn free_sent(&mut self, value: T) -> u64 {
        value.key()
    }
}

impl<T: Value> ThreadedPool<T> for PrivateFreeLists {
    type Sent = T;
    const HANDS_OFF: bool = false;

    fn with_front<W: FrontVisitor<T, T>>(&self, work: W) -> W::Output {
        work.visit(&mut FreeList::<T>::new())
    }
}

/// A `SlabCache` that each thread uses through a `LocalCache` of its own.
pub struct LocalFronts<'c, T>(pub &'c SlabCache<T>);

impl<'c, T: Value> ThreadedPool<T> for LocalFronts<'c, T> {
    type Sent = SlabBox<'c, T>;

    fn with_front<W: FrontVisitor<T, Self::Sent>>(&self, work: W) -> W::Output {
        let local = self.0.local();
        work.visit(&mut LocalCacheRef(&local))
    }
}

/// A pointer to one object that this handle alone owns.
pub struct OwnedPtr<T>(NonNull<T>);

// SAFETY: the pointer is the only way to the object, so sending it sends
// the object, which is `Send`.
unsafe impl<T: Send> Send for OwnedPtr<T> {}

/// `SlabAllocator` serving typed objects through `allocate(Layout)`.
pub struct SlabAllocatorPool(pub SlabAllocator);

impl<T: Value> SharedPool<T> for SlabAllocatorPool {
    type Handle = OwnedPtr<T>;

    #[inline]
    fn alloc(&self, value: T) -> OwnedPtr<T> {
        let Ok(ptr) = self.0.allocate(Layout::new::<T>()) else {
            out_of_memory(SLAB_ALLOCATOR)
        };
        let ptr = ptr.cast::<T>();
        // SAFETY: fresh memory for a `T`, aligned as `T` asks.
        unsafe { ptr.write(value) };
        OwnedPtr(ptr)
    }

    #[inline]
    fn address(handle: &OwnedPtr<T>) -> usize {
        handle.0.addr().get()
    }

    #[inline]
    fn free(&self, handle: OwnedPtr<T>) -> u64 {
        // SAFETY: the handle owns a `T` written by `alloc`.
        let key = unsafe { handle.0.as_ref() }.key();
        // SAFETY: from `allocate` with this layout, through the pointer it
        // returned, and freed once: the handle is consumed.
        unsafe { self.0.deallocate(handle.0.cast(), Layout::new::<T>()) };
        key
    }

    fn release_memory(&self) -> Option<usize> {
        Some(self.0.shrink_to_fit())
    }

    fn held_pages(&self) -> Option<usize> {
        Some(self.0.stats().pages())
    }
}

/// A `LocalAllocator` (a per-thread front of a `SlabAllocator`) serving
/// typed objects through `allocate(Layout)`.
pub struct LocalAllocatorPool<'a>(pub LocalAllocator<'a>);

impl<T: Value> Pool<T> for LocalAllocatorPool<'_> {
    type Handle = OwnedPtr<T>;

    #[inline]
    fn alloc(&mut self, value: T) -> OwnedPtr<T> {
        let ptr = RawAlloc::allocate(&self.0, Layout::new::<T>()).cast::<T>();
        // SAFETY: fresh memory for a `T`, aligned as `T` asks.
        unsafe { ptr.write(value) };
        OwnedPtr(ptr)
    }

    #[inline]
    fn address(handle: &OwnedPtr<T>) -> usize {
        handle.0.addr().get()
    }

    #[inline]
    fn free(&mut self, handle: OwnedPtr<T>) -> u64 {
        // SAFETY: the handle owns a `T` written by `alloc`.
        let key = unsafe { handle.0.as_ref() }.key();
        // SAFETY: from `allocate` with this layout, through the pointer it
        // returned, and freed once: the handle is consumed.
        unsafe { self.0.deallocate(handle.0.cast(), Layout::new::<T>()) };
        key
    }

    /// Flushes the front first, as for [`LocalCacheRef`].
    fn release_memory(&mut self) -> Option<usize> {
        self.0.flush();
        Some(self.0.allocator().shrink_to_fit())
    }

    fn held_pages(&self) -> Option<usize> {
        Some(self.0.allocator().stats().pages())
    }
}

// ------------------------------------------------- general allocators --

/// `Box::new` and drop, on the system allocator (the benchmarks' global
/// allocator).
pub struct SystemBox;

impl<T: Value> SharedPool<T> for SystemBox {
    type Handle = Box<T>;

    #[inline]
    fn alloc(&self, value: T) -> Box<T> {
        Box::new(value)
    }

    #[inline]
    fn address(handle: &Box<T>) -> usize {
        (&raw const **handle).addr()
    }

    #[inline]
    fn free(&self, handle: Box<T>) -> u64 {
        handle.key()
    }
}

/// `Box::new` and drop spelled out on `mimalloc::MiMalloc`'s `GlobalAlloc`
/// methods (mimalloc is not the process's allocator).
pub struct MimallocBox;

impl<T: Value> SharedPool<T> for MimallocBox {
    type Handle = OwnedPtr<T>;

    #[inline]
    fn alloc(&self, value: T) -> OwnedPtr<T> {
        let layout = Layout::new::<T>();
        // SAFETY: `T` is not zero-sized (`Value` promises a `usize` at least).
        let raw = unsafe { MiMalloc.alloc(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<T>()) else {
            handle_alloc_error(layout)
        };
        // SAFETY: fresh memory for a `T`, aligned as `T` asks.
        unsafe { ptr.write(value) };
        OwnedPtr(ptr)
    }

    #[inline]
    fn address(handle: &OwnedPtr<T>) -> usize {
        handle.0.addr().get()
    }

    #[inline]
    fn free(&self, handle: OwnedPtr<T>) -> u64 {
        // SAFETY: the handle owns a `T` written by `alloc`.
        let key = unsafe { handle.0.as_ref() }.key();
        // SAFETY: from `MiMalloc.alloc` with this layout, freed once: the
        // handle is consumed.
        unsafe { MiMalloc.dealloc(handle.0.as_ptr().cast(), Layout::new::<T>()) };
        key
    }
}

// --------------------------------------------------------------- pools --

/// The `slab` crate: a `Vec` of entries and a free list of keys.
pub struct SlabCrate<T>(pub slab::Slab<T>);

impl<T: Value> Pool<T> for SlabCrate<T> {
    type Handle = usize;

    #[inline]
    fn alloc(&mut self, value: T) -> usize {
        self.0.insert(value)
    }

    #[inline]
    fn address(handle: &usize) -> usize {
        *handle
    }

    #[inline]
    fn free(&mut self, handle: usize) -> u64 {
        self.0.remove(handle).key()
    }

    fn release_memory(&mut self) -> Option<usize> {
        self.0.shrink_to_fit();
        None
    }
}

/// A `heapless` box pool: lock-free, over the static blocks
/// [`Value::give_heapless_blocks`] hands it.
pub struct HeaplessBox<T>(PhantomData<fn() -> T>);

impl<T: Value> HeaplessBox<T> {
    /// The pool of `T`, its blocks given.
    pub fn new() -> Self {
        T::give_heapless_blocks();
        Self(PhantomData)
    }
}

impl<T: Value> Default for HeaplessBox<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Value> SharedPool<T> for HeaplessBox<T> {
    type Handle = heapless::pool::boxed::Box<T::HeaplessPool>;

    #[inline]
    fn alloc(&self, value: T) -> Self::Handle {
        match <T::HeaplessPool as BoxPool>::alloc(value) {
            Ok(handle) => handle,
            Err(_) => out_of_memory(HEAPLESS),
        }
    }

    #[inline]
    fn address(handle: &Self::Handle) -> usize {
        (&raw const **handle).addr()
    }

    #[inline]
    fn free(&self, handle: Self::Handle) -> u64 {
        handle.key()
    }
}

/// `sharded_slab::Slab`: per-thread shards, lock-free.
pub struct ShardedSlab<T>(pub sharded_slab::Slab<T>);

impl<T: Value> SharedPool<T> for ShardedSlab<T> {
    type Handle = usize;

    #[inline]
    fn alloc(&self, value: T) -> usize {
        match self.0.insert(value) {
            Some(key) => key,
            None => out_of_memory(SHARDED_SLAB),
        }
    }

    #[inline]
    fn address(handle: &usize) -> usize {
        *handle
    }

    #[inline]
    fn free(&self, handle: usize) -> u64 {
        match self.0.take(handle) {
            Some(value) => value.key(),
            None => panic!("{SHARDED_SLAB}: key {handle:#x} not in the slab"),
        }
    }
}

// ------------------------------------------------------------ visitors --

/// Something to run on each single-thread contender; see [`for_each_pool`].
pub trait PoolVisitor<T: Value> {
    /// Whether to build and visit the contender `name` (default: all).
    fn wants(&mut self, name: &'static str) -> bool {
        let _ = name;
        true
    }
    /// Called with a fresh contender.
    fn visit<P: Pool<T>>(&mut self, name: &'static str, pool: &mut P);
}

/// Builds every single-thread contender for `T` and hands it to `visitor`,
/// the baseline first.
pub fn for_each_pool<T: Value>(visitor: &mut impl PoolVisitor<T>) {
    if visitor.wants(FREE_LIST) {
        visitor.visit(FREE_LIST, &mut FreeList::<T>::new());
    }
    if visitor.wants(SPIN_FREE_LIST) {
        visitor.visit(SPIN_FREE_LIST, &mut SpinFreeList::<T>::new());
    }
    if visitor.wants(SLAB_CACHE) {
        let cache = SlabCache::<T>::new();
        visitor.visit(SLAB_CACHE, &mut CacheRef(&cache));
    }
    if visitor.wants(SLAB_CACHE_EAGER) {
        let eager = CacheConfig::new().eager();
        let cache = SlabCache::<T>::with_config(ChunkedGlobalPages::global(), eager);
        visitor.visit(SLAB_CACHE_EAGER, &mut CacheRef(&cache));
    }
    if visitor.wants(SLAB_CACHE_KEEP) {
        let keep_pages = CacheConfig::new().reserve(usize::MAX);
        let cache = SlabCache::<T>::with_config(ChunkedGlobalPages::global(), keep_pages);
        visitor.visit(SLAB_CACHE_KEEP, &mut CacheRef(&cache));
    }
    if visitor.wants(SLAB_CACHE_PAGEWISE) {
        let cache = SlabCache::<T, _>::new_in(GlobalPages::new());
        visitor.visit(SLAB_CACHE_PAGEWISE, &mut CacheRef(&cache));
    }
    if visitor.wants(SLAB_CACHE_MIMALLOC_PAGES) {
        let cache = SlabCache::<T, _>::new_in(GlobalAllocPages::new(MiMalloc));
        visitor.visit(SLAB_CACHE_MIMALLOC_PAGES, &mut CacheRef(&cache));
    }
    if visitor.wants(SLAB_CACHE_LOCAL) {
        let cache = SlabCache::<T>::new();
        let local = cache.local();
        visitor.visit(SLAB_CACHE_LOCAL, &mut LocalCacheRef(&local));
    }
    if visitor.wants(SLAB_CACHE_LOCAL_PTR) {
        let cache = SlabCache::<T>::new();
        let local = cache.local();
        visitor.visit(SLAB_CACHE_LOCAL_PTR, &mut LocalCachePtr(&local));
    }
    if visitor.wants(SLAB_ALLOCATOR) {
        visitor.visit(SLAB_ALLOCATOR, &mut SlabAllocatorPool(SlabAllocator::new()));
    }
    if visitor.wants(SLAB_ALLOCATOR_LOCAL) {
        let heap = SlabAllocator::new();
        visitor.visit(SLAB_ALLOCATOR_LOCAL, &mut LocalAllocatorPool(heap.local()));
    }
    if visitor.wants(BOX_SYSTEM) {
        visitor.visit(BOX_SYSTEM, &mut SystemBox);
    }
    if visitor.wants(BOX_MIMALLOC) {
        visitor.visit(BOX_MIMALLOC, &mut MimallocBox);
    }
    if visitor.wants(SLAB) {
        visitor.visit(SLAB, &mut SlabCrate(slab::Slab::<T>::new()));
    }
    if visitor.wants(HEAPLESS) {
        visitor.visit(HEAPLESS, &mut HeaplessBox::<T>::new());
    }
    if visitor.wants(SHARDED_SLAB) {
        visitor.visit(
            SHARDED_SLAB,
            &mut ShardedSlab(sharded_slab::Slab::<T>::new()),
        );
    }
}

/// Something to run on each contender of the `threads` workloads; see
/// [`for_each_shared_pool`].
pub trait SharedVisitor<T: Value> {
    /// Called with a fresh contender.
    fn visit<P: ThreadedPool<T>>(&mut self, name: &'static str, pool: &P);
}

/// Builds every contender of the `threads` workload for `T` and hands it to
/// `visitor`.
pub fn for_each_shared_pool<T: Value>(visitor: &mut impl SharedVisitor<T>) {
    visitor.visit(PRIVATE_FREE_LIST, &PrivateFreeLists);
    visitor.visit(SPIN_FREE_LIST, &SpinFreeList::<T>::new());
    let cache = SlabCache::<T>::new();
    visitor.visit(SLAB_CACHE, &CacheRef(&cache));
    let cache = SlabCache::<T>::new();
    visitor.visit(SLAB_CACHE_LOCAL, &LocalFronts(&cache));
    visitor.visit(BOX_SYSTEM, &SystemBox);
    visitor.visit(BOX_MIMALLOC, &MimallocBox);
    visitor.visit(SHARDED_SLAB, &ShardedSlab(sharded_slab::Slab::<T>::new()));
}

// ----------------------------------------------------------------- raw --

/// An allocator of `Layout`s, used from one thread.
pub trait RawAlloc {
    /// Memory for `layout` (non-zero size). Panics if out of memory.
    fn allocate(&self, layout: Layout) -> NonNull<u8>;

    /// Frees memory from [`allocate`](Self::allocate).
    ///
    /// # Safety
    ///
    /// `ptr` came from `allocate(layout)` on this allocator, as returned,
    /// and has not been freed since; it is not used afterwards.
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout);
}

/// Any `GlobalAlloc`, called directly (not as the process's allocator).
pub struct Global<'a, A>(pub &'a A);

impl<A: GlobalAlloc + Sync> RawAlloc for Global<'_, A> {
    #[inline]
    fn allocate(&self, layout: Layout) -> NonNull<u8> {
        // SAFETY: the workloads ask for non-zero sizes only.
        let raw = unsafe { self.0.alloc(layout) };
        NonNull::new(raw).unwrap_or_else(|| handle_alloc_error(layout))
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's guarantees are `GlobalAlloc::dealloc`'s.
        unsafe { self.0.dealloc(ptr.as_ptr(), layout) }
    }
}

impl RawAlloc for SlabAllocator {
    #[inline]
    fn allocate(&self, layout: Layout) -> NonNull<u8> {
        match SlabAllocator::allocate(self, layout) {
            Ok(ptr) => ptr,
            Err(_) => out_of_memory(SLAB_ALLOCATOR),
        }
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's guarantees are `SlabAllocator::deallocate`'s
        // (the pointer is `allocate`'s own, not re-derived from a reference).
        unsafe { SlabAllocator::deallocate(self, ptr, layout) }
    }
}

/// Bytes of the static arena `talc` allocates from: a `batch` of 10 000
/// objects of 256 bytes needs under 3 MiB.
const TALC_ARENA_BYTES: usize = 16 << 20;

static mut TALC_ARENA: [u8; TALC_ARENA_BYTES] = [0; TALC_ARENA_BYTES];

/// `talc` over the static arena, behind a spin lock.
static TALC_HEAP: talc::TalcLock<spin::Mutex<()>, talc::source::Claim> = talc::TalcLock::new({
    let arena = &raw mut TALC_ARENA;
    // SAFETY: the arena is reached through `TALC_HEAP` alone, and both are
    // statics, so the memory is valid and unaliased for as long as `talc`
    // may use it.
    unsafe { talc::source::Claim::array(arena) }
});

impl RawAlloc for LocalAllocator<'_> {
    #[inline]
    fn allocate(&self, layout: Layout) -> NonNull<u8> {
        match LocalAllocator::allocate(self, layout) {
            Ok(ptr) => ptr,
            Err(_) => out_of_memory(SLAB_ALLOCATOR_LOCAL),
        }
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's guarantees are `LocalAllocator::deallocate`'s.
        unsafe { LocalAllocator::deallocate(self, ptr, layout) }
    }
}

/// Something to run on each raw allocator; see [`for_each_raw`].
pub trait RawVisitor {
    /// Called with each allocator.
    fn visit<A: RawAlloc>(&mut self, name: &'static str, alloc: &A);
}

/// Hands each raw allocator to `visitor`, `System` (the raw baseline) first.
/// `talc` is one static heap, shared by every call.
pub fn for_each_raw(visitor: &mut impl RawVisitor) {
    visitor.visit(SYSTEM, &Global(&System));
    visitor.visit(MIMALLOC, &Global(&MiMalloc));
    visitor.visit(TALC, &Global(&TALC_HEAP));
    visitor.visit(SLAB_ALLOCATOR, &SlabAllocator::new());
    let heap = SlabAllocator::new();
    visitor.visit(SLAB_ALLOCATOR_LOCAL, &heap.local());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allocates `count` objects through `pool`, frees them all, then
    /// releases memory: returns the pages held before and after.
    fn fill_free_release<P: Pool<[u64; 8]>>(pool: &mut P, count: u64) -> (usize, usize) {
        let handles: Vec<_> = (0..count).map(|key| pool.alloc([key; 8])).collect();
        let sum = handles
            .into_iter()
            .fold(0u64, |sum, handle| sum.wrapping_add(pool.free(handle)));
        assert_eq!(sum, count * (count - 1) / 2);
        let held = pool.held_pages().expect("minimal_slab counts its pages");
        pool.release_memory();
        (held, pool.held_pages().expect("still counted"))
    }

    #[test]
    fn local_cache_front_gives_every_page_back() {
        let cache = SlabCache::<[u64; 8]>::new();
        let local = cache.local();
        let (held, after) = fill_free_release(&mut LocalCacheRef(&local), 5_000);
        assert!(held > 2, "5 000 objects of 64 bytes need many pages");
        assert_eq!(after, 0);
        assert_eq!(local.cached(), 0);
        assert_eq!(cache.stats().objects_in_use, 0);
    }

    #[test]
    fn local_allocator_front_gives_every_page_back() {
        let heap = SlabAllocator::new();
        let mut pool = LocalAllocatorPool(heap.local());
        let (held, after) = fill_free_release(&mut pool, 5_000);
        assert!(held > 2, "5 000 objects of 64 bytes need many pages");
        assert_eq!(after, 0);
        assert_eq!(pool.0.cached(), 0);
        assert_eq!(heap.stats().objects_in_use(), 0);
    }

    #[test]
    fn local_fronts_park_sent_handles_and_flush_on_return() {
        /// Allocates one object, sends it, frees the sent handle on the
        /// same front and reports the cache's objects in use meanwhile.
        struct SendAndFree<'c>(&'c SlabCache<[u64; 8]>);

        impl<S> FrontVisitor<[u64; 8], S> for SendAndFree<'_> {
            type Output = usize;

            fn visit<F: ThreadFront<[u64; 8], Sent = S>>(self, front: &mut F) -> usize {
                let sent = F::send(front.alloc([9; 8]));
                assert_eq!(front.free_sent(sent), 9);
                self.0.stats().objects_in_use
            }
        }

        let cache = SlabCache::<[u64; 8]>::new();
        let parked = LocalFronts(&cache).with_front(SendAndFree(&cache));
        assert!(parked > 0, "the freed slot rests in the front's magazine");
        assert_eq!(
            cache.stats().objects_in_use,
            0,
            "the front flushed on return"
        );
    }
}
