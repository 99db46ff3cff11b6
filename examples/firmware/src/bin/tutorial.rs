//! A typed cache shared by a main loop and an interrupt handler, on a
//! Cortex-M3 with no heap.
//!
//! What this teaches:
//!
//! - a `static_region!` is the whole page source: a `static` array of 1 KiB
//!   pages, which suit a small RAM better than the default 4 KiB, behind a
//!   zero-sized handle — no `unsafe`, and the region and the cache are all
//!   zeros, in `.bss` rather than `.data`;
//! - with minimal_slab's `critical-section` feature, and cortex-m's
//!   single-core critical-section implementation, the cache's lock masks
//!   interrupts, so the SysTick handler may allocate from the cache the main
//!   loop is using. With the default spin lock this program hangs the first
//!   time the timer interrupts the main loop inside the cache;
//! - the cache's statistics show that every object came back.
//!
//! It runs under QEMU, which emulates the ARM MPS2 AN385 board (from
//! `examples/firmware`):
//!
//! ```text
//! cargo run --release --target thumbv7m-none-eabi --bin tutorial --features cs,qemu
//! ```
//!
//! and exits with status 0 only if the timer interrupted the main loop
//! `TICKS` times, every allocation succeeded and every value read back was
//! the one written.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::{debug, hprintln};
use minimal_slab::{SlabBox, SlabCache, static_region};
use minimal_slab_firmware as _;

/// Timer interrupts to take before stopping.
const TICKS: u32 = 5_000;
/// Core clock cycles between two timer interrupts (the AN385 runs at
/// 25 MHz: 10 000 interrupts a second).
const RELOAD: u32 = 2_500;

/// A message: 32 bytes.
struct Message {
    seq: u32,
    words: [u32; 7],
}

impl Message {
    fn new(seq: u32) -> Self {
        Self {
            seq,
            words: [seq.wrapping_mul(2_654_435_761); 7],
        }
    }

    fn is_whole(&self) -> bool {
        self.words == Message::new(self.seq).words
    }
}

static_region! {
    /// Eight 1 KiB pages, aligned to the page size so that none is lost.
    struct Pages: 8 pages of 1024 bytes;
}
static MESSAGES: SlabCache<Message, Pages> = SlabCache::new_in(Pages);

/// Timer interrupts taken.
static TICKED: AtomicU32 = AtomicU32::new(0);
/// Objects the interrupt handler allocated, freed, and found whole.
static HANDLED: AtomicU32 = AtomicU32::new(0);
/// Allocations that failed, or values read back wrong, anywhere.
static FAULTS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    let tick = TICKED.load(Relaxed) + 1;
    TICKED.store(tick, Relaxed);
    // Two objects at once, so that the handler can need a slot the main
    // loop's slab does not have.
    match (
        MESSAGES.alloc(Message::new(tick)),
        MESSAGES.alloc(Message::new(!tick)),
    ) {
        (Ok(a), Ok(b)) if a.is_whole() && b.is_whole() && a.seq == tick => {
            HANDLED.store(HANDLED.load(Relaxed) + 2, Relaxed);
        }
        _ => {
            FAULTS.store(FAULTS.load(Relaxed) + 1, Relaxed);
        }
    }
}

#[entry]
fn main() -> ! {
    let mut core = cortex_m::Peripherals::take().expect("taken once, here");
    core.SYST.set_clock_source(SystClkSource::Core);
    core.SYST.set_reload(RELOAD);
    core.SYST.clear_current();
    core.SYST.enable_interrupt();
    core.SYST.enable_counter();

    // The main loop keeps a window of live messages and replaces the oldest
    // one at a time, while the timer interrupts it wherever it is.
    let mut window: [Option<SlabBox<'_, Message, _>>; 24] = [const { None }; 24];
    let mut seq = 0u32;
    let mut pairs = 0u64;
    while TICKED.load(Relaxed) < TICKS {
        let slot = &mut window[seq as usize % 24];
        if let Some(old) = slot.take()
            && !old.is_whole()
        {
            FAULTS.store(FAULTS.load(Relaxed) + 1, Relaxed);
        }
        match MESSAGES.alloc(Message::new(seq)) {
            Ok(message) => *slot = Some(message),
            Err(_) => FAULTS.store(FAULTS.load(Relaxed) + 1, Relaxed),
        }
        seq = seq.wrapping_add(1);
        pairs += 1;
    }
    core.SYST.disable_interrupt();
    core.SYST.disable_counter();
    window = [const { None }; 24];
    drop(window);

    let stats = MESSAGES.stats();
    let (ticked, handled, faults) = (
        TICKED.load(Relaxed),
        HANDLED.load(Relaxed),
        FAULTS.load(Relaxed),
    );
    hprintln!("main loop: {} allocations and frees", pairs);
    hprintln!(
        "SysTick: {} interrupts, {} objects allocated and freed in the handler",
        ticked,
        handled
    );
    hprintln!(
        "cache: {} objects in use, {} pages held ({} B, {} objects each), {} of {} pages free in the region",
        stats.objects_in_use,
        stats.pages,
        stats.page_size,
        stats.slots_per_slab,
        Pages.available(),
        Pages.capacity()
    );
    let ok = faults == 0 && ticked >= TICKS && handled == 2 * ticked && stats.objects_in_use == 0;
    hprintln!("{}: {} faults", if ok { "ok" } else { "FAILED" }, faults);
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}
