//! Where a cache's slabs come from when `available` has none: a retained
//! slab, or a new page from the page source.

use super::CacheCore;
use crate::checked::{CHECKED, OwnerTag};
use crate::error::AllocError;
use crate::page_allocator::{PageAllocator, page_size_of};
use crate::slab::{Slab, SlabGeometry};

impl CacheCore {
    /// A slab for `available` when it has none: a retained one, or else a
    /// fresh one on a new page ([`grow`](Self::grow)).
    ///
    /// Cold in `std` builds; without `std`, inlined where it has one caller
    /// (a firmware's typed cache), which saves the call and the result
    /// passed through memory (about 50 bytes of `scripts/size`'s program).
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`]; `available` is empty;
    /// `geometry` is the core's.
    #[cfg_attr(feature = "std", cold)]
    #[cfg_attr(not(feature = "std"), inline)]
    pub(super) unsafe fn refill<P: PageAllocator + ?Sized>(
        &mut self,
        pages: &P,
        owner: &OwnerTag,
        geometry: &SlabGeometry,
    ) -> Result<Slab, AllocError> {
        debug_assert!(self.available.head().is_none(), "refilled only when empty");
        // The slabs in use once the slab taken here is: with `available`
        // empty, the full ones and this one.
        let busy = self.full.len() + 1;
        // A core that keeps its pages retains none: it links no branch for
        // them, nor the peak they serve.
        let retained = if P::KEEP_PAGES {
            None
        } else {
            self.retained.head()
        };
        let slab = match retained {
            Some(slab) => {
                // SAFETY: the slab is on `retained`; exclusive access via
                // `&mut self`.
                unsafe { self.retained.remove(slab) };
                // SAFETY: on no list now.
                unsafe { self.available.push_front(slab) };
                self.empty += 1;
                slab
            }
            // SAFETY: forwarded from the caller; `retained` has no slab
            // either.
            None => unsafe { self.grow(pages, owner, geometry) }?,
        };
        // The slab is about to be in use too: the peak is noted here, off
        // the fast path (see `release`).
        if !P::KEEP_PAGES {
            self.decay.note_busy(busy);
        }
        Ok(slab)
    }

    /// A fresh slab on a new page, put on `available`, or the reason there
    /// is none. Nothing changes before the page source has answered.
    ///
    /// # Safety
    ///
    /// The shared contract on [`CacheCore`]; `available` and `retained`
    /// are empty; `geometry` is the core's.
    #[cfg_attr(feature = "std", cold)]
    #[cfg_attr(not(feature = "std"), inline(always))]
    unsafe fn grow<P: PageAllocator + ?Sized>(
        &mut self,
        pages: &P,
        owner: &OwnerTag,
        geometry: &SlabGeometry,
    ) -> Result<Slab, AllocError> {
        debug_assert_eq!(page_size_of::<P>(), geometry.page_size);
        // With `available` and `retained` empty, the full slabs are all the
        // pages held.
        debug_assert_eq!(self.full.len(), self.pages_held());
        if let Some(limit) = self.config.page_limit()
            && self.full.len() >= limit
        {
            return Err(AllocError::PageLimit { limit });
        }
        // SAFETY: `pages`, `owner` and `geometry` are this core's (the
        // caller's guarantees), and so is `expose_pages`.
        let slab = unsafe { Self::new_slab(pages, owner, geometry, self.expose_pages) }?;
        // SAFETY: just made on a page of `pages`, on no list.
        unsafe { self.list_new::<P>(slab) };
        Ok(slab)
    }

    /// A page of `pages` made into an empty slab of `geometry`, on no list
    /// and counted nowhere, or the reason there is none: a page source's
    /// refusal, or a misaligned page, which goes straight back. Needs no
    /// core, so that a grow may run it with the core's lock let go (see
    /// `unlocked`).
    ///
    /// # Safety
    ///
    /// `pages`, `owner` and `geometry` are those of the core the slab is
    /// for; `expose` is that core's `expose_pages`.
    #[inline(always)]
    pub(crate) unsafe fn new_slab<P: PageAllocator + ?Sized>(
        pages: &P,
        owner: &OwnerTag,
        geometry: &SlabGeometry,
        expose: bool,
    ) -> Result<Slab, AllocError> {
        debug_assert_eq!(page_size_of::<P>(), geometry.page_size);
        let page = pages.allocate_page()?;
        let page_size = geometry.page_size;
        // A source that promises aligned pages is taken at its word, but
        // in checked builds.
        if (!P::PAGES_ALIGNED || CHECKED) && page.as_ptr().addr() & (page_size - 1) != 0 {
            // SAFETY: the page came from `pages` a moment ago and is unused.
            unsafe { Self::give_back_page(pages, page) };
            return Err(AllocError::MisalignedPage {
                addr: page.as_ptr().addr(),
                page_size,
            });
        }
        if expose {
            let _ = page.as_ptr().expose_provenance();
        }
        // SAFETY: the page source's contract: `page_size` bytes, ours until
        // given back; aligned, as just checked.
        Ok(unsafe { Slab::init(page, geometry, owner.get()) })
    }

    /// Lists `slab`, new and empty, on `available`, with the front's
    /// address recorded in it (see `rehome`): the end of a growth, under
    /// the lock or after one made outside it (see `unlocked`).
    ///
    /// # Safety
    ///
    /// `slab` is a live slab just made for this core on a page of its page
    /// source `P`, with its geometry and owner, and on no list.
    #[inline(always)]
    pub(super) unsafe fn list_new<P: PageAllocator + ?Sized>(&mut self, slab: Slab) {
        #[cfg(feature = "std")]
        // SAFETY: the slab is live, and ours.
        unsafe {
            slab.set_home(self.home)
        };
        // SAFETY: the slab is live, on no list, and ours.
        unsafe { self.available.push_front(slab) };
        if !P::KEEP_PAGES {
            self.empty += 1;
        }
    }
}
