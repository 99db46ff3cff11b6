//! Misuse that unsafe callers can commit, and how checked builds find and
//! report it.
//!
//! This folder is the crate's checking kit, used by every layer above the
//! page sources: [`Misuse`] and its report (here), the poison that marks free
//! slots ([`poison`]), and the tag that tells one cache's slabs from another's
//! ([`owner`]). It knows nothing of slabs or caches; they call it.
//!
//! Checks run when the feature `checked` is on, and in every build with
//! `debug_assertions`. They cost a bitmap of one bit per slot in each slab
//! header (which slots are in a user's hands: see `slab::checks`), a few
//! comparisons per free, an atomic read-modify-write on that bitmap per
//! free and per allocation through a magazine (the per-thread caches, the
//! local fronts), and the poisoning of free slots (a fill per free, a scan
//! per reuse: see `poison`); release builds without the feature compile
//! them out entirely (`CHECKED` is a `const`).
//!
//! A misuse is detected while the cache lock is held but reported only after
//! it is released, so that the panic (which may allocate, and may reach a
//! global allocator built on this crate) never deadlocks on our own lock.

use core::fmt;
use core::ptr::NonNull;

pub(crate) mod owner;
pub(crate) mod poison;

pub(crate) use owner::OwnerTag;

/// Whether misuse checks are compiled in.
pub(crate) const CHECKED: bool = cfg!(any(feature = "checked", debug_assertions));

/// A misuse found while freeing a slot, or when a free slot is reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Misuse {
    /// The slot is already free.
    DoubleFree,
    /// The pointer is not a slot that this cache handed out.
    ForeignPointer,
    /// The pointer belongs to a slab of another object size: it was
    /// deallocated with a layout of another size class than its allocation's.
    WrongSizeClass {
        /// Slot size of the slab the pointer lies in.
        actual: usize,
        /// Slot size implied by the layout (or type) it was freed with.
        claimed: usize,
    },
    /// A free slot was written to: found when it was about to be handed out
    /// again (checked builds poison free slots, see `poison`).
    WriteAfterFree {
        /// Offset, from the slot's start, of the first byte found changed
        /// (0: the free-list link).
        offset: usize,
    },
}

/// How an entry point reports a misuse: [`Misuse::report`] panics; the
/// `GlobalAlloc` entry points, which must not unwind, abort instead.
pub(crate) type Report = fn(Misuse, NonNull<u8>) -> !;

impl Misuse {
    /// Panics with a message naming the misuse and the address.
    #[cold]
    #[track_caller]
    pub(crate) fn report(self, ptr: NonNull<u8>) -> ! {
        panic!("{}", Message { misuse: self, ptr })
    }
}

struct Message {
    misuse: Misuse,
    ptr: NonNull<u8>,
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ptr = self.ptr;
        match self.misuse {
            Misuse::DoubleFree => write!(f, "minimal_slab: double free of {ptr:p}"),
            Misuse::ForeignPointer => write!(
                f,
                "minimal_slab: foreign pointer {ptr:p} freed: it is not a slot this allocator handed out"
            ),
            Misuse::WrongSizeClass { actual, claimed } => write!(
                f,
                "minimal_slab: wrong layout when freeing {ptr:p}: it lies in a slab of {actual}-byte slots \
                 but was freed as a {claimed}-byte object"
            ),
            Misuse::WriteAfterFree { offset } => write!(
                f,
                "minimal_slab: write after free into {ptr:p}: byte {offset} of the slot changed \
                 while it was free (found when the slot next left its free list or magazine)"
            ),
        }
    }
}
