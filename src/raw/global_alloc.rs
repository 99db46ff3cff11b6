//! `SlabAllocator` as a `GlobalAlloc`, and the entry points for pointers
//! whose borrow covers the object alone (see the module docs, Provenance).
//!
//! # Per-thread caches in the global allocator
//!
//! With `std`, `GlobalAlloc` takes the per-thread caches as the inherent
//! methods do, under these rules, which keep the allocator from calling
//! itself, from using thread-local storage the standard library has torn
//! down, and from writing where a caller's borrow forbids it:
//!
//! - nothing in the per-thread caches allocates through the global heap:
//!   the registry's orphan lists take their memory from `System`;
//! - the table's exit guard is armed once per thread, and a call that
//!   arrives while it is being armed (the standard library may allocate to
//!   register a destructor) takes the locked path; so does every call once
//!   the thread's exit guard has run;
//! - every thread-local access is `try_with`, and a refusal means the
//!   locked path;
//! - a `Box` being freed may still guard its object (a `Box` argument
//!   dropped in its callee is protected until the callee returns): the
//!   magazine writes the object's bytes only through the pointer `dealloc`
//!   was given, and the rest of the slot through the page's exposed
//!   provenance (`SlotReach::Object`), as the locked path does;
//! - a block of the fallback keeps its own pointer everywhere (only slots
//!   have page provenance to swap in).
//!
//! The exit guard is a POSIX thread-specific-data key on Linux, which runs
//! even for a thread that first allocates from another such key's
//! destructor (see `thread_cache`'s `current`); elsewhere it is a
//! `thread_local!` destructor, which a global allocator may register only
//! from Rust 1.92 (rust-lang/rust#144465): built by an older compiler for
//! another system, `GlobalAlloc` keeps to the locked path (`build.rs`
//! tells which), correct and slower. `MINIMAL_SLAB_GLOBAL_TLS=0` in the
//! build's environment asks for the locked path everywhere.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use super::{Entry, Fallback, SizeClassLimit, SlabAllocator, abort_on_misuse, resize};
use crate::cache::SlotReach;
#[cfg(all(feature = "std", not(loom), minimal_slab_global_tls))]
use crate::cache::class_size;
use crate::error::AllocError;
use crate::page_allocator::PageAllocator;

impl<P: PageAllocator, F: Fallback, M: SizeClassLimit> SlabAllocator<P, F, M> {
    /// Whether this build's `GlobalAlloc` methods cache blocks per thread
    /// (feature `std`; on Linux, or built by Rust 1.92 or later, whose
    /// standard library lets a global allocator register a thread-local
    /// destructor; and not built with `MINIMAL_SLAB_GLOBAL_TLS=0`). When
    /// `false`, they take each size class's lock on every call.
    pub const GLOBAL_ALLOC_PER_THREAD: bool = GLOBAL_PER_THREAD;

    /// The entry point for pointers whose borrow may cover the object alone
    /// (a `Box`'s), as the `GlobalAlloc` methods (`grow_in_place` false)
    /// and the `Allocator` impls (true) take them; a misuse aborts.
    fn narrowed(&self, layout: Layout, grow_in_place: bool) -> Entry<'_, P, F, M> {
        Entry {
            heap: self,
            reach: SlotReach::Object(layout.size()),
            report: abort_on_misuse,
            per_thread: GLOBAL_PER_THREAD,
            grow_in_place,
        }
    }

    /// `GlobalAlloc::alloc` (see the module doc for the per-thread path).
    #[inline]
    fn global_allocate(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        #[cfg(all(feature = "std", not(loom), minimal_slab_global_tls))]
        if let Some(class) = Self::class_index(layout) {
            return self.thread.take(&self.set, class, class_size(class));
        }
        self.allocate_with(layout, abort_on_misuse)
    }

    /// `GlobalAlloc::alloc` past its common case: a refill, a first call
    /// on this thread, the fallback (and every call, where the `GlobalAlloc`
    /// methods take the size classes' locks); a null pointer on failure.
    #[cfg_attr(
        all(feature = "std", not(loom), minimal_slab_global_tls),
        cold,
        inline(never)
    )]
    #[cfg_attr(not(all(feature = "std", not(loom), minimal_slab_global_tls)), inline)]
    fn alloc_uncached(&self, layout: Layout) -> *mut u8 {
        abort_on_unwind(|| {
            self.global_allocate(layout)
                .map_or(ptr::null_mut(), NonNull::as_ptr)
        })
    }

    /// [`deallocate`](Self::deallocate) for a pointer whose borrow may cover
    /// the object alone (a `Box`'s), as the `GlobalAlloc` methods take it. A
    /// misuse aborts.
    ///
    /// # Safety
    ///
    /// As for `deallocate`, except that `ptr` may be re-derived from a
    /// reference or a `Box` to the object.
    #[inline]
    pub(crate) unsafe fn deallocate_narrowed(&self, ptr: NonNull<u8>, layout: Layout) {
        // With the per-thread path, the magazine writes (in checked builds,
        // its poison) the object's bytes through `ptr` — a `Box` being
        // freed may still guard them — and the rest of the slot through the
        // page's exposed provenance, which is the pointer it keeps.
        let reach = SlotReach::Object(layout.size());
        if GLOBAL_PER_THREAD {
            // SAFETY: the caller's guarantees; `reach` says what `ptr`
            // covers, and class cores expose their pages.
            unsafe { self.deallocate_per_thread(ptr, layout, reach, abort_on_misuse) };
            return;
        }
        // SAFETY: as above.
        unsafe { self.deallocate_with(ptr, layout, reach, abort_on_misuse) }
    }

    /// [`reallocate`](Self::reallocate) for a pointer whose borrow may cover
    /// the object alone, as `GlobalAlloc::realloc` takes it (a block that
    /// grows within its class moves unless `grow_in_place`). A misuse
    /// aborts.
    ///
    /// # Safety
    ///
    /// As for [`deallocate_narrowed`](Self::deallocate_narrowed), and
    /// `new_size` is as for `reallocate`.
    pub(crate) unsafe fn reallocate_narrowed(
        &self,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
        grow_in_place: bool,
    ) -> Result<NonNull<u8>, AllocError> {
        let entry = self.narrowed(layout, grow_in_place);
        // SAFETY: the caller's guarantees; the entry point knows what `ptr`
        // covers.
        unsafe { resize(&entry, ptr, layout, new_size) }
    }
}

/// Whether `GlobalAlloc` goes through the per-thread caches.
const GLOBAL_PER_THREAD: bool = cfg!(all(feature = "std", not(loom), minimal_slab_global_tls));

/// Runs `body`, and aborts the process should it unwind: a `GlobalAlloc`
/// must not unwind, and a page source (user code) may panic. An `extern
/// "C"` function cannot unwind: a panic reaching its end aborts, after the
/// panic message is printed. Inlined, it costs nothing until then.
#[inline(always)]
#[allow(improper_ctypes_definitions)] // never called from outside Rust
extern "C" fn abort_on_unwind<R>(body: impl FnOnce() -> R) -> R {
    body()
}

// SAFETY: `allocate` returns memory valid for the layout (a class slot at
// least as large and as aligned, or the fallback's), never handed out twice
// (each class core's invariants), and `deallocate` routes by layout to where
// `alloc` got it. None unwinds: a misuse aborts, and a page source that
// panics aborts too (`abort_on_unwind`).
unsafe impl<P, F, M> GlobalAlloc for SlabAllocator<P, F, M>
where
    P: PageAllocator,
    F: Fallback,
    M: SizeClassLimit,
{
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // The common case inline, its pointer in a register, the rest out
        // of line: `global_allocate` called on every request, its `Result`
        // through memory, cost 25 M of the global workload's 3 225 M
        // instructions on one thread (`valgrind --tool=cachegrind
        // target/release/global_slab 1 20000`).
        #[cfg(all(feature = "std", not(loom), minimal_slab_global_tls))]
        if let Some(class) = Self::class_index(layout)
            && let Some(slot) = self.thread.take_cached(&self.set, class, class_size(class))
        {
            return slot.as_ptr();
        }
        self.alloc_uncached(layout)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(ptr) = NonNull::new(ptr) {
            // SAFETY: `GlobalAlloc::dealloc`'s contract is
            // `deallocate_narrowed`'s.
            abort_on_unwind(|| unsafe { self.deallocate_narrowed(ptr, layout) })
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(ptr) = NonNull::new(ptr) else {
            return ptr::null_mut();
        };
        // A block that moves from one size class to another, the common
        // case (a vector or a string that grows by doubling), when this
        // thread's magazine has a slot of the new class: alloc, copy and
        // dealloc as their `GlobalAlloc` methods would, without the
        // general path's dispatch.
        #[cfg(all(feature = "std", not(loom), minimal_slab_global_tls))]
        if let Ok(new_layout) = Layout::from_size_align(new_size, layout.align())
            && let Some(old_class) = Self::class_index(layout)
            && let Some(new_class) = Self::class_index(new_layout)
            && old_class != new_class
            && let Some(new) = self
                .thread
                .take_cached(&self.set, new_class, class_size(new_class))
        {
            // SAFETY: `ptr` is a live block of `layout` (the caller's
            // contract), `new` a slot of at least `new_size` bytes just
            // handed out to us: both valid for the bytes kept, and distinct.
            unsafe {
                ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), layout.size().min(new_size))
            };
            // SAFETY: `GlobalAlloc::realloc`'s contract on `ptr` and
            // `layout` is `dealloc`'s, which is `deallocate_narrowed`'s; on
            // success the caller never uses `ptr` again.
            abort_on_unwind(|| unsafe { self.deallocate_narrowed(ptr, layout) });
            return new.as_ptr();
        }
        // SAFETY: `GlobalAlloc::realloc`'s contract is `reallocate_narrowed`'s.
        let moved =
            abort_on_unwind(|| unsafe { self.reallocate_narrowed(ptr, layout, new_size, false) });
        moved.map_or(ptr::null_mut(), NonNull::as_ptr)
    }
}
