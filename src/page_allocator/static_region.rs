//! A region over a `static` array, declared by [`static_region!`]: a
//! zero-sized page source for firmware.
//!
//! The macro declares, private to the handle, the array (aligned to the
//! page size, a whole number of pages) and a [`StaticPages`]: the free
//! pages' stack behind a lock, no more. The handle passes the array on
//! every call, and the pages are taken from it as a [`RegionPages`]
//! takes them from its memory: the pages given back first, then the
//! never-used ones in order. So nothing stores an address: the handle is
//! zero-sized, a cache on it holds no pointer to its page source, and the
//! stack and a `static` cache on the handle are all zeros — zeroed RAM
//! (`.bss`), no initialised data (`.data`, which costs a firmware its
//! flash as well as its RAM).
//!
//! Not a [`RegionPages`] inside: the array's address and length are
//! constants of the program, so the run of never-used pages is a constant
//! too, rebuilt at each call instead of stored, aligned and counted at
//! run time — less code, and no first call that adds the memory.
//!
//! And no `unsafe` in the user's code: the array is named by the macro
//! alone, so the stack is the one user of it, and the macro can promise
//! what [`StaticPages`]' methods ask.

use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr::NonNull;

use super::PageSize;
#[cfg(doc)]
use super::RegionPages;
use crate::error::PageAllocError;
use crate::intrusive::{FreeStack, Run};
use crate::sync::{Mutex, const_fn_unless_loom};

/// The free pages of a [`static_region!`]'s array. Not part of the API:
/// the macro's expansion uses it.
///
/// Invariant: a page of the array is free iff it is on the stack (given
/// back, or not yet reached by the run); the array is the same on every
/// call (its methods' safety contract).
#[doc(hidden)]
pub struct StaticPages<S: PageSize> {
    free: Mutex<Stack>,
    _size: PhantomData<S>,
}

/// The free pages' stack, whose links lie in the array. It keeps no
/// count of the pages out: [`available`](StaticPages::available), the only
/// reader, walks the free ones instead, so that taking a page and giving
/// one back update one word less.
struct Stack(FreeStack<false>);

// SAFETY: the stack's pointers lead only into the array, which it owns
// exclusively (the contract of `StaticPages`' methods); moving the stack
// to another thread moves that ownership with it.
unsafe impl Send for Stack {}

impl<S: PageSize> StaticPages<S> {
    const_fn_unless_loom! {
        /// No page handed out yet: all zeros.
        pub const fn new() -> Self {
            Self {
                free: Mutex::new(Stack(FreeStack::new())),
                _size: PhantomData,
            }
        }
    }

    /// The array's pages, as the stack's run.
    #[inline(always)]
    fn run(memory: *mut [MaybeUninit<u8>]) -> Run {
        Run {
            base: memory.cast(),
            size: S::USIZE,
            count: memory.len() / S::USIZE,
        }
    }

    /// One page of `memory`.
    ///
    /// # Safety
    ///
    /// `memory` is valid for reads and writes for the rest of the program,
    /// aligned to `S`, at most `u32::MAX` pages long, and given up to this
    /// stack: nothing else reads or writes it, and every call on this
    /// stack passes the same `memory`.
    #[inline(always)]
    pub unsafe fn allocate_page(
        &self,
        memory: *mut [MaybeUninit<u8>],
    ) -> Result<NonNull<u8>, PageAllocError> {
        let mut free = self.free.lock();
        // SAFETY: the lock gives us the stack; the caller's guarantees make
        // `memory`'s whole pages its run, the same on every call.
        unsafe { free.0.pop(Self::run(memory)) }.ok_or(PageAllocError::RegionExhausted)
    }

    /// Takes a page back.
    ///
    /// # Safety
    ///
    /// `page` came from [`allocate_page`](Self::allocate_page) here and is
    /// not used any more (as for
    /// [`PageAllocator::deallocate_page`](super::PageAllocator::deallocate_page)).
    #[inline(always)]
    pub unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        debug_assert!(
            page.as_ptr().addr().is_multiple_of(S::USIZE),
            "static_region!: page {page:p} given back is not one of ours (misaligned)"
        );
        let mut free = self.free.lock();
        // SAFETY: the caller's guarantees: a page of ours, free again.
        unsafe { free.0.push(page) };
    }

    /// Pages of `memory` not handed out right now. Walks the pages given
    /// back.
    ///
    /// # Safety
    ///
    /// As for [`allocate_page`](Self::allocate_page).
    pub unsafe fn available(&self, memory: *mut [MaybeUninit<u8>]) -> usize {
        let free = self.free.lock();
        // SAFETY: the lock gives us the stack; the caller's guarantees make
        // `memory`'s whole pages its run, the same on every call.
        unsafe { free.0.free_blocks(Self::run(memory)) }
    }
}

impl<S: PageSize> Default for StaticPages<S> {
    fn default() -> Self {
        Self::new()
    }
}

/// Declares a zero-sized page source over a `static` array of whole pages:
/// the way to give a firmware's caches their memory.
///
/// `static_region!(pub struct Pages: 2 pages;)` declares a unit struct
/// `Pages` that is a [`PageAllocator`](crate::PageAllocator) of two 4 KiB
/// pages (`… 8 pages of 1024 bytes;` for other page sizes, a power of two
/// from 256 bytes to 1 GiB; at most `u32::MAX` pages). The array, aligned
/// to the page size so that every byte is in a page, and the stack of its
/// free pages are declared with it, private to it. A cache is given the handle
/// itself (`SlabCache<T, Pages>`, or `KeepPages<Pages>`), not a reference:
///
/// - no `unsafe`: the macro alone names the array, so the region's is the
///   one reference to it;
/// - no initialised data: the handle is zero-sized, so a cache on it holds
///   no address, and the region and a `static` cache under the default
///   configuration are all zeros — a firmware's zeroed RAM (`.bss`), not
///   `.data`, which costs flash as well as RAM (`bash scripts/size`);
/// - less code than a [`RegionPages`]: the array's place and size are
///   constants, so nothing about it is stored, aligned or counted at run
///   time.
///
/// `Pages.capacity()` and `Pages.available()` count its pages, as on a
/// region. Every handle of a type is the same region (a `Copy` unit
/// struct): caches given `Pages` share its pages.
///
/// ```
/// use minimal_slab::{KeepPages, SlabCache, static_region};
///
/// struct Reading {
///     sensor: u32,
///     samples: [u32; 7],
/// }
///
/// static_region! {
///     /// The readings' memory: two 4 KiB pages.
///     pub struct Pages: 2 pages;
/// }
/// static READINGS: SlabCache<Reading, Pages> = SlabCache::new_in(Pages);
///
/// let reading = READINGS.alloc(Reading { sensor: 7, samples: [0; 7] }).ok().unwrap();
/// assert_eq!(reading.sensor, 7);
/// assert_eq!(Pages.capacity(), 2);
/// assert_eq!(Pages.available(), 1);
///
/// // Smaller pages, kept by the cache once taken (`KeepPages`):
/// static_region! {
///     struct Small: 4 pages of 1024 bytes;
/// }
/// static SAMPLES: SlabCache<[u16; 4], KeepPages<Small>> = SlabCache::new_in(KeepPages::new(Small));
/// assert_eq!(*SAMPLES.alloc([1, 2, 3, 4]).ok().unwrap(), [1, 2, 3, 4]);
/// assert_eq!(Small.capacity(), 4);
/// ```
#[macro_export]
macro_rules! static_region {
    ($(#[$attr:meta])* $vis:vis struct $name:ident : $pages:tt pages;) => {
        $crate::static_region! {
            $(#[$attr])* $vis struct $name: $pages pages of 4096 bytes;
        }
    };
    ($(#[$attr:meta])* $vis:vis struct $name:ident : $pages:tt pages of $size:literal bytes;) => {
        $(#[$attr])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        $vis struct $name;

        const _: () = {
            /// The pages, aligned to their size.
            #[repr(C, align($size))]
            struct Memory([::core::mem::MaybeUninit<u8>; $pages * $size]);

            static mut MEMORY: Memory =
                Memory([::core::mem::MaybeUninit::uninit(); $pages * $size]);
            static FREE: $crate::page_allocator::StaticPages<$crate::typenum::U<$size>> =
                $crate::page_allocator::StaticPages::new();

            impl $name {
                /// The array: named here only.
                #[inline(always)]
                fn memory() -> *mut [::core::mem::MaybeUninit<u8>] {
                    ::core::ptr::slice_from_raw_parts_mut((&raw mut MEMORY).cast(), $pages * $size)
                }

                /// Pages in the region: all of the array's.
                #[allow(dead_code)]
                $vis const fn capacity(&self) -> usize {
                    $pages
                }

                /// Pages not handed out right now.
                #[allow(dead_code)]
                $vis fn available(&self) -> usize {
                    // As for `allocate_page` below: the same memory, that
                    // nothing else touches.
                    // SAFETY: as just said.
                    unsafe { FREE.available(Self::memory()) }
                }
            }

            // SAFETY: the pages are the array's, handed out by `FREE`, which
            // hands each out once until it is given back; aligned to the
            // page size (the array is, and the pages step by it).
            unsafe impl $crate::PageAllocator for $name {
                type PageSize = $crate::typenum::U<$size>;
                const PAGES_ALIGNED: bool = true;

                #[inline(always)]
                fn allocate_page(
                    &self,
                ) -> ::core::result::Result<::core::ptr::NonNull<u8>, $crate::PageAllocError> {
                    // `MEMORY` is a static, aligned to the page size, and
                    // named only by `memory`, whose pointer goes to `FREE`
                    // alone (both are private to this block): the same
                    // memory on every call, that nothing else touches.
                    // SAFETY: as just said.
                    unsafe { FREE.allocate_page(Self::memory()) }
                }

                #[inline(always)]
                unsafe fn deallocate_page(&self, page: ::core::ptr::NonNull<u8>) {
                    // SAFETY: the caller's guarantees, for the same pages.
                    unsafe { FREE.deallocate_page(page) }
                }
            }
        };
    };
}
