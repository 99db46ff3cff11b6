//! Slabs in a static memory region: no heap in the allocation path.
//!
//! What this teaches:
//!
//! - `RegionPages` hands out pages carved from memory you give it — here a
//!   `static` array, as firmware or a kernel would — so neither the caches
//!   nor their pages ever touch a global allocator;
//! - one region can feed several caches at once (`&RegionPages` is a page
//!   allocator too): a typed `SlabCache` and a `SlabAllocator` below;
//! - running out of pages is an `Err` that hands the value back, never a
//!   panic, and freeing makes room again.
//!
//! A firmware whose memory is one fixed array can let
//! `minimal_slab::static_region!` declare it instead: a zero-sized page
//! source with the array behind it, no `unsafe`, and caches that hold no
//! address (all zeros in `.bss`). This example adds memory at run time, as
//! a kernel adds the RAM it finds, which that macro does not do.
//!
//! (The example itself uses `std` to print; only the slab allocations are
//! heap-free.)
//!
//! Run it with:
//!
//! ```text
//! cargo run --example static_region
//! ```

use core::alloc::Layout;
use core::mem::MaybeUninit;

use minimal_slab::{
    AllocError, NoFallback, PageAllocError, RegionPages, SlabAllocator, SlabBox, SlabCache,
};

const PAGE: usize = 4096;
const REGION_PAGES: usize = 16;

/// Page-aligned storage. A bare `[u8; N]` is only byte-aligned, and
/// `RegionPages` uses only whole pages aligned to the page size, so an
/// unaligned array would lose up to one page at its start.
#[repr(C, align(4096))]
struct PageAligned<T>(T);

/// The memory the slabs live in: 16 pages, reserved in the binary's `.bss`.
static mut MEMORY: PageAligned<[MaybeUninit<u8>; REGION_PAGES * PAGE]> =
    PageAligned([MaybeUninit::uninit(); REGION_PAGES * PAGE]);

/// The page source: empty at compile time, filled once at start-up.
static PAGES: RegionPages = RegionPages::empty();

/// A message buffer: 256 bytes, so 15 or so to a 4 KiB slab.
#[derive(Debug)]
struct Message {
    id: u64,
    len: usize,
    body: [u8; 240],
}

impl Message {
    fn new(id: u64, text: &str) -> Self {
        let mut body = [0; 240];
        let len = text.len().min(body.len());
        body[..len].copy_from_slice(&text.as_bytes()[..len]);
        Self { id, len, body }
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body[..self.len]).unwrap_or("<invalid>")
    }
}

/// A typed cache and a size-class allocator, both taking pages from `PAGES`.
static MESSAGES: SlabCache<Message, &RegionPages> = SlabCache::new_in(&PAGES);
static BYTES: SlabAllocator<&RegionPages> = SlabAllocator::new_in(&PAGES, NoFallback);

fn region_line(when: &str) {
    println!(
        "  [{when}] region: {} of {} pages available",
        PAGES.available(),
        PAGES.capacity()
    );
}

fn main() {
    // 1. Hand the static memory to the region, once. A raw pointer to a
    //    `static mut` is safe to take; turning it into a reference is not.
    let memory = &raw mut MEMORY;
    // SAFETY: this is the only place a reference to `MEMORY` is made (the
    // other uses below only take its address), and `main` runs it once, so
    // the `&'static mut` is unique; from here on the memory belongs to `PAGES`.
    let memory = unsafe { &mut (*memory).0 };
    let added = PAGES.add_memory(memory);
    println!("== start-up ==");
    println!(
        "  gave {} bytes at {:p} to the region: {added} pages of {PAGE} bytes",
        REGION_PAGES * PAGE,
        &raw const MEMORY
    );
    region_line("start");

    // 2. Some raw allocations from the size-class allocator take pages too.
    println!("\n== BYTES: raw allocations from the same region ==");
    let small = Layout::new::<[u64; 2]>();
    let raw: Vec<_> = (0..3)
        .map(|_| BYTES.allocate(small).expect("the region has pages"))
        .collect();
    println!("  3 x 16 bytes: {:p} {:p} {:p}", raw[0], raw[1], raw[2]);
    let page_base = |addr: usize| addr & !(PAGE - 1);
    let region = &raw const MEMORY as usize..&raw const MEMORY as usize + REGION_PAGES * PAGE;
    assert!(raw.iter().all(|p| region.contains(&p.as_ptr().addr())));
    println!("  all inside the static region: true");
    region_line("after BYTES");

    // 3. Fill the region with messages until it runs out.
    println!("\n== MESSAGES: allocate until the region is exhausted ==");
    println!(
        "  SLOT_SIZE = {}, SLOTS_PER_SLAB = {}",
        SlabCache::<Message, &RegionPages>::SLOT_SIZE,
        SlabCache::<Message, &RegionPages>::SLOTS_PER_SLAB
    );
    let mut inbox: Vec<SlabBox<'static, Message, &RegionPages>> = Vec::new();
    let failed = loop {
        let id = inbox.len() as u64;
        match MESSAGES.alloc(Message::new(id, &format!("message #{id}"))) {
            Ok(message) => inbox.push(message),
            Err(failed) => break failed,
        }
    };
    println!(
        "  {} messages stored, then alloc returned Err:",
        inbox.len()
    );
    println!("    {failed}");
    assert_eq!(
        failed.error(),
        AllocError::Pages(PageAllocError::RegionExhausted)
    );
    let refused = failed.into_value();
    println!(
        "    value handed back: id {}, text {:?}",
        refused.id,
        refused.text()
    );
    region_line("exhausted");

    // The size-class allocator shares the region, so a class without a slab
    // cannot grow either.
    let err = BYTES.allocate(Layout::new::<[u8; 100]>()).unwrap_err();
    println!("  BYTES.allocate(100 bytes) now: Err({err})");
    print!("{}", MESSAGES.stats());

    // 4. Free a few messages: their slots are free again, so the refused
    //    message fits without any new page.
    println!("\n== free some, allocate again ==");
    let freed: Vec<u64> = inbox.drain(..3).map(|m| m.id).collect();
    println!("  dropped messages {freed:?}");
    let stored = MESSAGES.alloc(refused).expect("a slot was freed");
    println!(
        "  alloc now succeeds: id {} {:?} at {:p} (page {:#x})",
        stored.id,
        stored.text(),
        SlabBox::as_ptr(&stored),
        page_base(SlabBox::as_ptr(&stored).addr())
    );
    inbox.push(stored);
    region_line("after reuse");

    // 5. Drop every message. Two emptied slabs stay as the cache's reserve;
    //    the others go back to the region, and `shrink` returns the reserve.
    println!("\n== drop all messages ==");
    drop(inbox);
    print!("{}", MESSAGES.stats());
    region_line("all dropped");
    let released = MESSAGES.shrink();
    println!("  MESSAGES.shrink() gave back {released} page(s)");
    region_line("after shrink");

    // The freed pages serve other caches: the 100-byte request works now.
    let layout = Layout::new::<[u8; 100]>();
    let p = BYTES
        .allocate(layout)
        .expect("pages came back to the region");
    println!("  BYTES.allocate(100 bytes) now: Ok({p:p})");

    println!("\n== BYTES.stats() ==");
    print!("{}", BYTES.stats());

    // SAFETY: `p` came from `BYTES.allocate(layout)` and is not used again.
    unsafe { BYTES.deallocate(p, layout) };
    for q in raw {
        // SAFETY: each came from `BYTES.allocate(small)`, freed once.
        unsafe { BYTES.deallocate(q, small) };
    }
    let released = BYTES.shrink_to_fit();
    println!("  freed everything; BYTES.shrink() gave back {released} page(s)");
    region_line("end");
    assert_eq!(PAGES.available(), PAGES.capacity());
}
