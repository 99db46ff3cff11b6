//! Free pages inside memory a page source owns, handed out without a search.
//!
//! Pages that came back are kept on an intrusive list (each one's first word
//! points to the next) and handed out again first; after them comes a run of
//! never-used pages, walked by a bump pointer. Both ends are O(1), and nothing
//! is written to a page before it is first handed out — which, on an operating
//! system that maps memory lazily, means a page never handed out never becomes
//! resident.
//!
//! Invariant: a page is on the stack iff it is on the returned list or lies in
//! the fresh run `[fresh, fresh + fresh_left × S)`; the two never overlap, and
//! neither holds a page that is handed out.

use core::ptr::NonNull;

use super::PageSize;

/// The first word of a page that came back.
struct ReturnedPage {
    next: Option<NonNull<ReturnedPage>>,
}

/// The free pages of one region or chunk.
pub(super) struct PageStack {
    /// Pages given back, most recent first.
    returned: Option<NonNull<ReturnedPage>>,
    /// The first never-used page, if `fresh_left > 0`.
    fresh: Option<NonNull<u8>>,
    /// How many never-used pages start at `fresh`.
    fresh_left: usize,
}

impl PageStack {
    /// A stack with no page.
    pub(super) const fn empty() -> Self {
        Self {
            returned: None,
            fresh: None,
            fresh_left: 0,
        }
    }

    /// Adds `pages` never-used pages of `S` bytes starting at `first`. What
    /// was left of the previous fresh run moves to the returned list, so
    /// there is one run at a time (a set-up-time loop, never on the
    /// allocation path).
    ///
    /// # Safety
    ///
    /// `[first, first + pages × S)` is valid for reads and writes, aligned to
    /// `S`, owned by the caller's page source alone, and on no stack.
    pub(super) unsafe fn add_fresh<S: PageSize>(&mut self, first: NonNull<u8>, pages: usize) {
        while let Some(page) = self.take_fresh::<S>() {
            // SAFETY: `page` was on this stack, so it is ours and unused.
            unsafe { self.push(page) };
        }
        self.fresh = Some(first);
        self.fresh_left = pages;
    }

    /// Takes a page: the last one given back, else the next never-used one.
    pub(super) fn pop<S: PageSize>(&mut self) -> Option<NonNull<u8>> {
        match self.returned {
            Some(link) => {
                // SAFETY: `link` heads the returned list, so it is a free page
                // of ours holding a `ReturnedPage` written by `push`.
                self.returned = unsafe { link.read() }.next;
                Some(link.cast())
            }
            None => self.take_fresh::<S>(),
        }
    }

    /// Puts a page back on the stack.
    ///
    /// # Safety
    ///
    /// `page` is a page (of at least a word, aligned to a word) of the memory
    /// this stack manages, handed out by `pop` and no longer used by anyone.
    pub(super) unsafe fn push(&mut self, page: NonNull<u8>) {
        let link = page.cast::<ReturnedPage>();
        // SAFETY: the page is ours again, large and aligned enough for the link.
        unsafe {
            link.write(ReturnedPage {
                next: self.returned,
            })
        };
        self.returned = Some(link);
    }

    /// Takes the next never-used page, if any.
    fn take_fresh<S: PageSize>(&mut self) -> Option<NonNull<u8>> {
        if self.fresh_left == 0 {
            return None;
        }
        let page = self.fresh?;
        self.fresh_left -= 1;
        self.fresh = if self.fresh_left == 0 {
            None
        } else {
            // SAFETY: another fresh page follows `page` in the same memory.
            Some(unsafe { page.byte_add(S::USIZE) })
        };
        Some(page)
    }
}
