//! A region over a `static` array, declared by [`static_region!`]: a
//! zero-sized page source for firmware.
//!
//! The macro declares, private to the handle, the array (aligned to the
//! page size, so no byte is lost) and a [`RegionPages`] with no memory;
//! the handle passes the array's address to the region on every call, and
//! the region adds it at the first ([`RegionPages`]'s module says how).
//! So nothing stores an address: the handle is zero-sized, a cache on it
//! holds no pointer to its page source, and both the region and a
//! `static` cache on the handle are all zeros — zeroed RAM (`.bss`), no
//! initialised data (`.data`, which costs a firmware its flash as well as
//! its RAM). The address is a constant of the program, which the code
//! loads where it is needed.
//!
//! And no `unsafe` in the user's code: the array is named by the macro
//! alone, so the one reference to it is the region's, and the macro can
//! promise that ([`StaticRegion::new`]).

use core::mem::MaybeUninit;
use core::ptr::NonNull;

use super::{PageSize, RegionPages};
use crate::error::PageAllocError;

/// The region of a [`static_region!`] handle and its memory. Not part of
/// the API: the macro's expansion uses it.
#[doc(hidden)]
pub struct StaticRegion<S: PageSize> {
    region: &'static RegionPages<S>,
    memory: *mut [MaybeUninit<u8>],
}

impl<S: PageSize> StaticRegion<S> {
    /// `region`, whose memory is `memory`.
    ///
    /// # Safety
    ///
    /// `memory` is valid for reads and writes for the rest of the program,
    /// and given up to `region`: nothing else reads or writes it, and
    /// nothing adds it to any other region. `region` is used only through
    /// `StaticRegion`s of this same `memory` (its first call adds it).
    #[inline(always)]
    pub const unsafe fn new(
        region: &'static RegionPages<S>,
        memory: *mut [MaybeUninit<u8>],
    ) -> Self {
        Self { region, memory }
    }

    /// One page of the region.
    #[inline(always)]
    pub fn allocate_page(&self) -> Result<NonNull<u8>, PageAllocError> {
        self.region.allocate_page_with(self.memory)
    }

    /// Takes a page back.
    ///
    /// # Safety
    ///
    /// As for [`PageAllocator::deallocate_page`](super::PageAllocator::deallocate_page).
    #[inline(always)]
    pub unsafe fn deallocate_page(&self, page: NonNull<u8>) {
        // SAFETY: the caller's guarantees; a page handed out was added, so
        // the region has started.
        unsafe { super::PageAllocator::deallocate_page(self.region, page) }
    }

    /// Pages in the region: all of the array's.
    pub fn capacity(&self) -> usize {
        self.region.capacity_with(self.memory)
    }

    /// Pages not handed out right now.
    pub fn available(&self) -> usize {
        self.region.available_with(self.memory)
    }
}

/// Declares a zero-sized page source over a `static` array of whole pages:
/// the way to give a firmware's caches their memory.
///
/// `static_region!(pub struct Pages: 2 pages;)` declares a unit struct
/// `Pages` that is a [`PageAllocator`](crate::PageAllocator) of two 4 KiB
/// pages (`… 8 pages of 1024 bytes;` for other page sizes, a power of two
/// from 256 bytes to 1 GiB). The array, aligned to the page size so that
/// every byte is in a page, and the [`RegionPages`] that hands its pages
/// out are declared with it, private to it. A cache is given the handle
/// itself (`SlabCache<T, Pages>`, or `KeepPages<Pages>`), not a reference:
///
/// - no `unsafe`: the macro alone names the array, so the region's is the
///   one reference to it;
/// - no initialised data: the handle is zero-sized, so a cache on it holds
///   no address, and the region and a `static` cache under the default
///   configuration are all zeros — a firmware's zeroed RAM (`.bss`), not
///   `.data`, which costs flash as well as RAM (`bash scripts/size`);
/// - the region adds its array at its first use, as a region built with
///   [`RegionPages::new`] does.
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
            static REGION: $crate::RegionPages<$crate::typenum::U<$size>> =
                $crate::RegionPages::with_page_size();

            impl $name {
                #[inline(always)]
                fn region() -> $crate::page_allocator::StaticRegion<$crate::typenum::U<$size>> {
                    // SAFETY: `MEMORY` and `REGION` are private to this
                    // block, which names `MEMORY` here only: the region is
                    // used through this `StaticRegion` alone, with this
                    // memory, a static that nothing else touches.
                    unsafe {
                        $crate::page_allocator::StaticRegion::new(&REGION, &raw mut MEMORY.0)
                    }
                }

                /// Pages in the region.
                #[allow(dead_code)]
                $vis fn capacity(&self) -> usize {
                    Self::region().capacity()
                }

                /// Pages not handed out right now.
                #[allow(dead_code)]
                $vis fn available(&self) -> usize {
                    Self::region().available()
                }
            }

            // SAFETY: forwards both methods to the region, which upholds
            // the contract, and promises alignment as the region does.
            unsafe impl $crate::PageAllocator for $name {
                type PageSize = $crate::typenum::U<$size>;
                const PAGES_ALIGNED: bool = true;

                #[inline(always)]
                fn allocate_page(
                    &self,
                ) -> ::core::result::Result<::core::ptr::NonNull<u8>, $crate::PageAllocError> {
                    Self::region().allocate_page()
                }

                #[inline(always)]
                unsafe fn deallocate_page(&self, page: ::core::ptr::NonNull<u8>) {
                    // SAFETY: the caller's guarantees, for the same pages.
                    unsafe { Self::region().deallocate_page(page) }
                }
            }
        };
    };
}
