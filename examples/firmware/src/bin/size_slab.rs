//! The measured firmware: one `static` typed cache of a 32-byte struct on a
//! `static_region!` (a zero-sized page source over a `static` array: the
//! region and the cache are all zeros, in `.bss`); three objects
//! allocated, used and freed. `scripts/size` builds it and reports its
//! sections.
#![no_std]
#![no_main]

use core::hint::black_box;

use cortex_m_rt::entry;
use minimal_slab::{SlabCache, static_region};
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
static READINGS: SlabCache<Reading, Pages> = SlabCache::new_in(Pages);

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
