//! The two intrusive structures every layer above builds on.
//!
//! Both keep their links inside the memory they manage, so they cost no
//! memory of their own and never allocate:
//!
//! - [`List`]: a doubly linked list of headers (slabs on a cache's lists,
//!   chunks on a chunked page source's partial list), O(1) insert and
//!   remove anywhere.
//! - [`FreeStack`]: the free blocks of one stretch of memory (slots of a
//!   slab, pages of a region or a chunk), a LIFO of blocks that came back
//!   plus a run of blocks never handed out, walked by a bump pointer.
//!
//! This is the bottom floor, beside `sync` and `checked`: it knows nothing
//! of pages, slabs or caches, and each user states in its own docs which
//! lock gives it the exclusive access these `unsafe fn`s ask for.

mod free_stack;
mod list;

pub(crate) use free_stack::{FreeStack, Run};
pub(crate) use list::{Linked, List};
