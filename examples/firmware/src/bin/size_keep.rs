//! `size_slab` with the opt-in compile-time policy for firmware: the same
//! cache and work, on `KeepPages` of the `static_region!`, whose pages the
//! cache keeps once taken (as heapless's pool keeps its blocks), so that
//! the code that gives pages back is not linked. `scripts/size` builds it
//! and reports its sections.
#![no_std]
#![no_main]

use core::hint::black_box;

use cortex_m_rt::entry;
use minimal_slab::{KeepPages, SlabCache, static_region};
use minimal_slab_firmware as _;

/// The object: 32 bytes.
struct Reading {
    sensor: u32,
    samples: [u32; 7],
}

static_region! {
    /// Two pages of memory, aligned to the page size so that none is lost.
    struct Pages: 2 pages;
}
static READINGS: SlabCache<Reading, KeepPages<Pages>> = SlabCache::new_in(KeepPages::new(Pages));

#[entry]
fn main() -> ! {
    for sensor in 0..3 {
        let first = READINGS.alloc(Reading {
            sensor,
            samples: [sensor; 7],
        });
        let second = READINGS.alloc(Reading {
            sensor: sensor + 1,
            samples: [0; 7],
        });
        let third = READINGS.alloc(Reading {
            sensor: sensor + 2,
            samples: [1; 7],
        });
        if let (Ok(first), Ok(second), Ok(third)) = (first, second, third) {
            black_box((first.sensor, second.samples[3], third.samples[6]));
        }
    }
    loop {
        cortex_m::asm::wfi();
    }
}
