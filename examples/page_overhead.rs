//! What a slab page costs on a small-RAM part: the table of overhead per
//! page size and slot size.
//!
//! What this teaches:
//!
//! - every slab is one page that starts with a header (and the bitmap
//!   checked builds keep), then the slots; the bytes before slot 0 and after
//!   the last slot are lost. Small pages lose a larger share, small slots
//!   the most (their bitmap is longest);
//! - a cache takes one whole page before its first object, and with the
//!   default configuration keeps up to `CacheConfig::DEFAULT_RESERVE` empty
//!   slabs besides (more after a burst: see `CacheConfig`), so a region
//!   shared by several caches wants small pages and a reserve of 0 on a part
//!   with a few KiB of RAM.
//!
//! Every figure comes from the crate's own numbers: `SLOTS_PER_SLAB`, and
//! the `stats()` of a cache that really took one page of a `RegionPages` of
//! each size. Run it with:
//!
//! ```text
//! cargo run --example page_overhead
//! ```
//!
//! The header holds pointers, so the figures depend on the pointer width:
//! on a 64-bit host they are a little larger than on a 32-bit
//! microcontroller. `examples/firmware` prints the same table on an
//! emulated Cortex-M3 (its `page_overhead` program includes this file).

use core::fmt::{self, Write};
use core::mem::{MaybeUninit, size_of};

use minimal_slab::page_allocator::PageSize;
use minimal_slab::typenum::{U1024, U2048, U4096};
use minimal_slab::{CacheConfig, RegionPages, SlabCache};

/// Prints the table.
#[cfg(not(target_os = "none"))]
fn main() {
    let mut table = String::new();
    write_table(&mut table).expect("every region has a page for each cache");
    print!("{table}");
}

/// Two pages of the largest size, aligned so that no byte goes to
/// alignment: each measurement takes one page and gives it back.
#[repr(C, align(4096))]
struct Memory([MaybeUninit<u8>; 2 * 4096]);

static mut MEMORY_1K: Memory = Memory([MaybeUninit::uninit(); 2 * 4096]);
static mut MEMORY_2K: Memory = Memory([MaybeUninit::uninit(); 2 * 4096]);
static mut MEMORY_4K: Memory = Memory([MaybeUninit::uninit(); 2 * 4096]);
/// Where the arrays are: taking the address of a `static mut` is safe.
const BYTES_1K: *mut Memory = &raw mut MEMORY_1K;
const BYTES_2K: *mut Memory = &raw mut MEMORY_2K;
const BYTES_4K: *mut Memory = &raw mut MEMORY_4K;

static PAGES_1K: RegionPages<U1024> = RegionPages::with_memory(
    // SAFETY: the pointer is to a static, so valid and aligned, and nothing
    // else names that static: this is the one reference to it, given up to
    // the region.
    unsafe { &mut (*BYTES_1K).0 },
);
static PAGES_2K: RegionPages<U2048> = RegionPages::with_memory(
    // SAFETY: the pointer is to a static, so valid and aligned, and nothing
    // else names that static: this is the one reference to it, given up to
    // the region.
    unsafe { &mut (*BYTES_2K).0 },
);
static PAGES_4K: RegionPages<U4096> = RegionPages::with_memory(
    // SAFETY: the pointer is to a static, so valid and aligned, and nothing
    // else names that static: this is the one reference to it, given up to
    // the region.
    unsafe { &mut (*BYTES_4K).0 },
);

/// Writes the table, one row per page size and slot size, as Markdown.
pub fn write_table(out: &mut impl Write) -> fmt::Result {
    writeln!(
        out,
        "Overhead of one slab page ({}-bit pointers; default configuration, reserve {}):",
        usize::BITS,
        CacheConfig::DEFAULT_RESERVE
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "| page | slot | slots per page | header + bitmap + padding | tail | lost | RAM for the first object | RAM with the default reserve |"
    )?;
    writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    rows(&PAGES_1K, out)?;
    rows(&PAGES_2K, out)?;
    rows(&PAGES_4K, out)?;
    writeln!(out)?;
    writeln!(
        out,
        "Besides its pages, a static cache of these takes {} bytes and its region {} bytes.",
        size_of::<SlabCache<[u8; 32], &RegionPages<U1024>>>(),
        size_of::<RegionPages<U1024>>()
    )
}

/// The rows of one page size.
fn rows<S: PageSize>(pages: &RegionPages<S>, out: &mut impl Write) -> fmt::Result {
    row::<S, 8>(pages, out)?;
    row::<S, 16>(pages, out)?;
    row::<S, 32>(pages, out)?;
    row::<S, 64>(pages, out)?;
    row::<S, 128>(pages, out)
}

/// The row of objects of `N` bytes in pages of `S`: a cache on `pages`
/// takes its first page, and its statistics tell how that page is cut.
fn row<S: PageSize, const N: usize>(pages: &RegionPages<S>, out: &mut impl Write) -> fmt::Result {
    let cache: SlabCache<[u8; N], &RegionPages<S>> = SlabCache::new_in(pages);
    let before = pages.available();
    let first = cache.alloc([0; N]).map_err(|_| fmt::Error)?;
    let taken = before - pages.available();
    let stats = cache.stats();
    drop(first);

    let page = S::USIZE;
    let slots = SlabCache::<[u8; N], &RegionPages<S>>::SLOTS_PER_SLAB;
    assert_eq!((stats.pages, stats.slots_per_slab), (taken, slots));
    let header = stats.header_bytes; // of the one page held
    let tail = page - header - slots * stats.slot_size;
    // The share of the page that holds no slot, in tenths of a percent.
    let lost = ((header + tail) * 1000 + page / 2) / page;
    writeln!(
        out,
        "| {page} | {} | {slots} | {header} | {tail} | {}.{} % | {} | {} |",
        stats.slot_size,
        lost / 10,
        lost % 10,
        taken * page,
        (taken + CacheConfig::DEFAULT_RESERVE) * page,
    )
}
