//! Data that one thread writes kept off the lines another thread reads.
//!
//! Every allocation and free through a per-thread cache reads its cache's
//! ticket (and a typed cache's home address), and reads and writes its own
//! thread's table. Those reads must not share a cache line with anything
//! another thread writes often — a table's neighbour in memory (tables come
//! from `System`, back to back, and the placement of two threads' tables
//! is up to `System`), a size class's lock and counters, the fallback's
//! counters — or every such write takes the line from the reader: a cache
//! miss on a path of a few nanoseconds, which would depend on where the
//! allocator happened to put things. This is a precaution: the pair loop
//! on two threads scaled as well before it as after it on this project's
//! machine (1.97–1.98×, `cargo run -p minimal_slab_perf --release --bin
//! threads_loop`, which runs beside it a free list private to each thread,
//! the machine's own ceiling).
//!
//! 128 bytes, not 64: x86 processors fetch a line's neighbour with it (the
//! adjacent-line prefetcher), so two lines that pair up behave as one.

use core::ops::{Deref, DerefMut};

/// `T` alone on its cache lines: aligned to, and a multiple of, 128 bytes.
#[repr(align(128))]
pub(crate) struct OwnLines<T>(pub(crate) T);

impl<T> Deref for OwnLines<T> {
    type Target = T;

    #[inline(always)]
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for OwnLines<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}
