//! The standard allocator traits for both fronts: `allocator_api2`'s
//! `Allocator` on stable Rust (feature `allocator-api2`), so that
//! `allocator_api2` and `hashbrown` collections live in slabs, and
//! `core::alloc::Allocator` on nightly Rust (feature `nightly`).
//!
//! The traits are implemented for shared references, `&SlabAllocator` and
//! `&SlabCache`: a collection holding one cannot outlive the allocator.
//!
//! # Blocks
//!
//! - A request a size class serves gets the whole slot: the slice returned is
//!   as long as the class (24 bytes asked, 32 answered). Every size from the
//!   one asked up to that length, with the same alignment, falls in the same
//!   class (the class is the next power of two of size and alignment), so
//!   the caller may free or resize with any of them. Requests beyond the
//!   classes get exactly their size from the fallback.
//! - A typed cache serves any layout its slot holds (size and alignment at
//!   most those of [`SlabCache::slot_layout`]) and answers the whole slot;
//!   anything else is an error, as a cache has one slot size only. Resizing
//!   within the slot stays in place.
//! - Zero-sized layouts get a dangling pointer aligned as asked; freeing one
//!   does nothing.
//! - `reallocate` keeps the old alignment, so a resize that changes the
//!   alignment moves the block: allocate, copy, free.
//!
//! # Provenance
//!
//! Collections do not all keep the pointer the allocator returned:
//! `allocator_api2`'s `Box` re-derives its pointer from a `&mut` to the value
//! (`Box::new_in` goes through `Box::leak`), so the pointer it frees with
//! covers the value alone, and the slab header lies beyond its reach. Every
//! impl here therefore frees and resizes the way `GlobalAlloc` does (see [the
//! raw front's provenance rules](crate::SlabAllocator#provenance)): the
//! header is reached through the page's exposed provenance, rebuilt from the
//! address, and a resize in place hands back a pointer rebuilt the same way.
//! The size classes expose their pages when they become slabs; a typed
//! cache's pages are exposed here, when a block is handed out through a
//! trait. Miri checks these paths in its permissive-provenance mode.

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use crate::cache::with_exposed_page_provenance;
use crate::error::AllocError;
use crate::page_allocator::PageAllocator;
use crate::raw::{self, Fallback, SizeClassLimit, SlabAllocator, unsupported};
use crate::typed::SlabCache;

/// What the bytes of a block beyond the kept ones hold: the difference
/// between `allocate` and `allocate_zeroed`, `grow` and `grow_zeroed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    Uninit,
    Zeroed,
}

/// The operations both allocator traits are made of, implemented once per
/// front; the trait impls only turn the error into their own.
///
/// # Safety
///
/// Implementors keep the `Allocator` contract: a block returned is valid for
/// reads and writes of the returned length, aligned as asked, and not handed
/// out again until freed; the returned length is at least the size asked, and
/// any layout with the same alignment and a size between the one asked and
/// the length returned frees or resizes the block.
unsafe trait Blocks {
    /// A block for `layout`.
    fn allocate_block(&self, layout: Layout, fill: Fill) -> Result<NonNull<[u8]>, AllocError>;

    /// Frees a block.
    ///
    /// # Safety
    ///
    /// As for `Allocator::deallocate`: `ptr` denotes a block allocated by this
    /// front and not freed since (no double free), `layout` fits it, and the
    /// block is not used afterwards (no use after free).
    unsafe fn deallocate_block(&self, ptr: NonNull<u8>, layout: Layout);

    /// Resizes a block to `new`, keeping its first `min(old, new)` bytes and,
    /// with [`Fill::Zeroed`], zeroing the rest of the returned length.
    ///
    /// # Safety
    ///
    /// As for `Allocator::grow` and `Allocator::shrink`: `ptr` denotes a block
    /// allocated by this front and `old` fits it. On success the old pointer
    /// is not used again; on failure the block is unchanged and still the
    /// caller's.
    unsafe fn resize_block(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
        fill: Fill,
    ) -> Result<NonNull<[u8]>, AllocError>;
}

/// The block for a zero-sized layout: a dangling pointer aligned as asked.
fn dangling(layout: Layout) -> NonNull<[u8]> {
    NonNull::slice_from_raw_parts(raw::dangling(layout), 0)
}

/// The block `[ptr, ptr + len)`, its bytes from `kept` on zeroed if asked.
///
/// # Safety
///
/// `ptr` is valid for writes of `len` bytes.
unsafe fn finish(ptr: NonNull<u8>, kept: usize, len: usize, fill: Fill) -> NonNull<[u8]> {
    if fill == Fill::Zeroed && len > kept {
        // SAFETY: `kept < len`, and the caller vouches for `len` bytes.
        let tail = unsafe { ptr.add(kept) };
        // SAFETY: as above: `len - kept` bytes from `tail` are in the block.
        unsafe { tail.write_bytes(0, len - kept) };
    }
    NonNull::slice_from_raw_parts(ptr, len)
}

impl<P: PageAllocator, F: Fallback, M: SizeClassLimit> SlabAllocator<P, F, M> {
    /// How many bytes the block for `layout` offers: its whole size class,
    /// or exactly the size asked of the fallback.
    fn block_len(layout: Layout) -> usize {
        if layout.size() == 0 {
            return 0;
        }
        Self::size_class(layout).unwrap_or(layout.size())
    }
}

// SAFETY: blocks come from the inherent `allocate`, whose pointer is valid for
// the whole slot of the class (or, from the fallback, for the size asked),
// which is the length returned; every size between the one asked and that
// length has the same class (`block_len`), so frees and resizes with any of
// them route where the block came from.
unsafe impl<P: PageAllocator, F: Fallback, M: SizeClassLimit> Blocks for SlabAllocator<P, F, M> {
    fn allocate_block(&self, layout: Layout, fill: Fill) -> Result<NonNull<[u8]>, AllocError> {
        let ptr = self.allocate(layout)?;
        // SAFETY: `allocate` returned a block of `block_len(layout)` bytes.
        Ok(unsafe { finish(ptr, 0, Self::block_len(layout), fill) })
    }

    unsafe fn deallocate_block(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's guarantees; the narrowed variant accepts a
        // pointer whose borrow covers the object alone (a `Box`'s).
        unsafe { self.deallocate_narrowed(ptr, layout) }
    }

    unsafe fn resize_block(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
        fill: Fill,
    ) -> Result<NonNull<[u8]>, AllocError> {
        let moved = if old.align() == new.align() {
            // SAFETY: the caller's guarantees, as the narrowed variant takes
            // them; `new` is a valid layout of the same alignment, so its size
            // rounded up to it does not overflow.
            unsafe { self.reallocate_narrowed(ptr, old, new.size(), true) }?
        } else {
            // `reallocate` keeps the old alignment: move the block instead.
            let moved = self.allocate(new)?;
            let kept = old.size().min(new.size());
            // SAFETY: the old block is valid for `old.size()` bytes, the new
            // one for `new.size()`, and they are distinct: the old one is
            // still allocated.
            unsafe { ptr::copy_nonoverlapping(ptr.as_ptr(), moved.as_ptr(), kept) };
            // SAFETY: the caller's guarantees; the contents live on in `moved`.
            unsafe { self.deallocate_narrowed(ptr, old) };
            moved
        };
        // SAFETY: `moved` is valid for the whole block of `new`: a fresh
        // allocation, the fallback's, or a pointer rebuilt for the whole slot
        // when the block stayed in place.
        Ok(unsafe { finish(moved, old.size(), Self::block_len(new), fill) })
    }
}

impl<T, P: PageAllocator> SlabCache<T, P> {
    /// Whether a slot can hold a block of `layout`.
    fn slot_holds(layout: Layout) -> bool {
        let slot = Self::slot_layout();
        layout.size() <= slot.size() && layout.align() <= slot.align()
    }
}

// SAFETY: a non-empty block is one slot from `allocate_slot`, valid for
// `SLOT_SIZE` bytes (the length returned) and aligned to the slot, and
// served only for layouts the slot holds; every size up to `SLOT_SIZE` names
// the same slot, so a free or resize with any of them is right.
unsafe impl<T, P: PageAllocator> Blocks for SlabCache<T, P> {
    fn allocate_block(&self, layout: Layout, fill: Fill) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            return Ok(dangling(layout));
        }
        if !Self::slot_holds(layout) {
            return Err(unsupported(layout));
        }
        // Non-empty and held by a slot, so `T` is not zero-sized and this is
        // a real slot with its page's provenance.
        let slot = self.allocate_slot()?.cast::<u8>();
        // It may come back narrowed to the value (a `Box`'s pointer), and the
        // typed core does not expose its pages: expose this one, so that
        // `deallocate_block` can reach its header from the address.
        let _ = slot.as_ptr().expose_provenance();
        // SAFETY: a slot is valid for `SLOT_SIZE` bytes.
        Ok(unsafe { finish(slot, 0, Self::SLOT_SIZE, fill) })
    }

    unsafe fn deallocate_block(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() == 0 {
            return; // a dangling pointer from `allocate_block`
        }
        // Rebuilt with the provenance `allocate_block` exposed, it reaches
        // the whole page, as `free_slot` needs.
        let slot = with_exposed_page_provenance(ptr).cast::<T>();
        // SAFETY: the caller's guarantees: a slot from `allocate_slot` on this
        // cache, not freed since and not used after.
        unsafe { self.free_slot(slot) }
    }

    unsafe fn resize_block(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
        fill: Fill,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if old.size() == 0 {
            // Nothing to keep, and the dangling pointer owns nothing.
            return self.allocate_block(new, fill);
        }
        if new.size() == 0 {
            // SAFETY: the caller's guarantees.
            unsafe { self.deallocate_block(ptr, old) };
            return Ok(dangling(new));
        }
        if !Self::slot_holds(new) {
            return Err(unsupported(new));
        }
        // The slot holds `new` too (aligned to the slot, so to `new`): stay
        // in place, with a pointer valid for the whole slot whatever the
        // caller's covered.
        let slot = with_exposed_page_provenance(ptr);
        // SAFETY: the rebuilt pointer reaches the whole slot, `SLOT_SIZE`
        // bytes.
        Ok(unsafe { finish(slot, old.size(), Self::SLOT_SIZE, fill) })
    }
}

/// Implements an allocator trait (`allocator_api2`'s or `core`'s, which have
/// the same methods) for a shared reference to a front, through [`Blocks`].
macro_rules! allocator_for_ref {
    (
        $(#[$doc:meta])*
        impl<$($param:ident: $bound:path),*> $allocator:path, $error:path, for $front:ty
    ) => {
        $(#[$doc])*
        // SAFETY: every method forwards to `Blocks`, whose contract is the
        // allocator's; a shared reference is a copy of the same allocator.
        unsafe impl<$($param: $bound),*> $allocator for &$front {
            #[inline]
            fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, $error> {
                Blocks::allocate_block(*self, layout, Fill::Uninit).map_err(|_| $error)
            }

            #[inline]
            fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, $error> {
                Blocks::allocate_block(*self, layout, Fill::Zeroed).map_err(|_| $error)
            }

            #[inline]
            unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
                // SAFETY: the trait's contract is `deallocate_block`'s.
                unsafe { Blocks::deallocate_block(*self, ptr, layout) }
            }

            unsafe fn grow(
                &self,
                ptr: NonNull<u8>,
                old_layout: Layout,
                new_layout: Layout,
            ) -> Result<NonNull<[u8]>, $error> {
                // SAFETY: the trait's contract is `resize_block`'s.
                unsafe { Blocks::resize_block(*self, ptr, old_layout, new_layout, Fill::Uninit) }
                    .map_err(|_| $error)
            }

            unsafe fn grow_zeroed(
                &self,
                ptr: NonNull<u8>,
                old_layout: Layout,
                new_layout: Layout,
            ) -> Result<NonNull<[u8]>, $error> {
                // SAFETY: the trait's contract is `resize_block`'s.
                unsafe { Blocks::resize_block(*self, ptr, old_layout, new_layout, Fill::Zeroed) }
                    .map_err(|_| $error)
            }

            unsafe fn shrink(
                &self,
                ptr: NonNull<u8>,
                old_layout: Layout,
                new_layout: Layout,
            ) -> Result<NonNull<[u8]>, $error> {
                // SAFETY: the trait's contract is `resize_block`'s.
                unsafe { Blocks::resize_block(*self, ptr, old_layout, new_layout, Fill::Uninit) }
                    .map_err(|_| $error)
            }
        }
    };
}

#[cfg(feature = "allocator-api2")]
allocator_for_ref! {
    /// `allocator_api2` collections in the size classes, on stable Rust
    /// (feature `allocator-api2`).
    ///
    /// A block from a size class is the whole slot (24 bytes asked, 32
    /// answered); larger requests go to the fallback, or fail with
    /// `AllocError` without one. Zero-sized layouts get a dangling pointer.
    /// Frees and in-place resizes reach the slab header through the page's
    /// exposed provenance, as `GlobalAlloc` does, because the pointer of
    /// `allocator_api2`'s `Box` covers its value alone.
    ///
    /// Called as methods, the inherent `allocate` and `deallocate` of
    /// `SlabAllocator` come first (and, until it is removed, the deprecated
    /// inherent `shrink`, now `shrink_to_fit`); name the trait to reach its
    /// methods: `Allocator::allocate(&&heap, layout)`.
    ///
    /// ```
    /// use allocator_api2::{boxed::Box, vec::Vec};
    /// use minimal_slab::{GlobalPages, SlabAllocator};
    /// use std::alloc::System;
    ///
    /// let heap = SlabAllocator::new_in(GlobalPages::new(), System);
    /// let mut squares = Vec::new_in(&heap);
    /// squares.extend((0..100u64).map(|i| i * i)); // 800 bytes: the fallback
    /// let answer = Box::new_in(42u32, &heap); // a slot of the 8-byte class
    /// assert_eq!(squares[9] + u64::from(*answer), 123);
    /// assert_eq!(heap.stats().objects_in_use(), 1);
    /// assert_eq!(heap.stats().fallback_allocations, 1);
    /// drop((squares, answer));
    /// assert_eq!(heap.stats().objects_in_use(), 0);
    /// ```
    ///
    /// `hashbrown` maps take the same allocator:
    ///
    /// ```
    /// use minimal_slab::{GlobalPages, SlabAllocator};
    ///
    /// let heap = SlabAllocator::new_in(GlobalPages::new(), std::alloc::System);
    /// let mut ages = hashbrown::HashMap::new_in(&heap);
    /// ages.insert("slab", 1);
    /// assert_eq!(ages["slab"], 1);
    /// assert!(heap.stats().objects_in_use() + heap.stats().fallback_allocations > 0);
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "allocator-api2")))]
    impl<P: PageAllocator, F: Fallback, M: SizeClassLimit>
        allocator_api2::alloc::Allocator, allocator_api2::alloc::AllocError,
        for SlabAllocator<P, F, M>
}

#[cfg(feature = "allocator-api2")]
allocator_for_ref! {
    /// `allocator_api2` boxes in a typed cache's slots, on stable Rust
    /// (feature `allocator-api2`).
    ///
    /// Any layout a slot holds is served — size and alignment at most those
    /// of [`SlabCache::slot_layout`] — with the whole slot; any other layout
    /// is an `AllocError`, as the cache has one slot size. Resizing within
    /// the slot stays in place. Zero-sized layouts get a dangling pointer.
    ///
    /// ```
    /// use allocator_api2::boxed::Box;
    /// use minimal_slab::SlabCache;
    ///
    /// struct Particle { pos: [f32; 3], vel: [f32; 3] }
    ///
    /// let particles: SlabCache<Particle> = SlabCache::new();
    /// let p = Box::new_in(Particle { pos: [0.0; 3], vel: [1.0; 3] }, &particles);
    /// assert_eq!(p.vel[0] + p.pos[0], 1.0);
    /// assert_eq!(particles.stats().objects_in_use, 1);
    ///
    /// // A smaller value fits a slot too; a larger one does not.
    /// let small = Box::new_in([7u32; 2], &particles);
    /// assert!(Box::try_new_in([0u8; 64], &particles).is_err());
    /// drop((p, small));
    /// assert_eq!(particles.stats().objects_in_use, 0);
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "allocator-api2")))]
    impl<T: Sized, P: PageAllocator>
        allocator_api2::alloc::Allocator, allocator_api2::alloc::AllocError,
        for SlabCache<T, P>
}

#[cfg(feature = "nightly")]
allocator_for_ref! {
    /// std's collections in the size classes, on nightly Rust (feature
    /// `nightly`): `Box::new_in`, `Vec::new_in` and the rest of
    /// `allocator_api`.
    ///
    /// The blocks and the provenance rules are those of the `allocator_api2`
    /// impl: whole slots from the classes, the rest from the fallback, and
    /// frees that accept a pointer whose borrow covers the value alone.
    ///
    /// ```
    /// #![feature(allocator_api)]
    /// use minimal_slab::{GlobalPages, SlabAllocator};
    /// use std::alloc::System;
    ///
    /// let heap = SlabAllocator::new_in(GlobalPages::new(), System);
    /// let boxed = Box::new_in([1u64, 2, 3], &heap); // the 32-byte class
    /// let mut list = Vec::new_in(&heap);
    /// list.extend_from_slice(&*boxed);
    /// assert_eq!(list, [1, 2, 3]);
    /// assert_eq!(heap.stats().objects_in_use(), 2);
    /// drop((boxed, list));
    /// assert_eq!(heap.stats().objects_in_use(), 0);
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "nightly")))]
    impl<P: PageAllocator, F: Fallback, M: SizeClassLimit>
        core::alloc::Allocator, core::alloc::AllocError,
        for SlabAllocator<P, F, M>
}

#[cfg(feature = "nightly")]
allocator_for_ref! {
    /// std's `Box` in a typed cache's slots, on nightly Rust (feature
    /// `nightly`). Layouts are served as by the `allocator_api2` impl: any
    /// layout a slot holds, with the whole slot; anything else is an
    /// `AllocError`.
    ///
    /// ```
    /// #![feature(allocator_api)]
    /// use minimal_slab::SlabCache;
    ///
    /// let cache: SlabCache<(u64, u64)> = SlabCache::new();
    /// let pair = Box::new_in((1, 2), &cache);
    /// assert_eq!(pair.0 + pair.1, 3);
    /// assert_eq!(cache.stats().objects_in_use, 1);
    /// assert!(Box::try_new_in([0u8; 32], &cache).is_err());
    /// drop(pair);
    /// assert_eq!(cache.stats().objects_in_use, 0);
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "nightly")))]
    impl<T: Sized, P: PageAllocator>
        core::alloc::Allocator, core::alloc::AllocError,
        for SlabCache<T, P>
}
