//! `size_slab` written the former way: the cache on a `&RegionPages` built
//! by `RegionPages::new` over a `static mut` array (one `unsafe` block).
//! The region and the cache hold addresses, so both are initialised data
//! (`.data`: flash and RAM). `scripts/size` builds it and reports its
//! sections.
#![no_std]
#![no_main]

use core::hint::black_box;
use core::mem::MaybeUninit;

use cortex_m_rt::entry;
use minimal_slab::{RegionPages, SlabCache};
use minimal_slab_firmware as _;

/// The object: 32 bytes.
struct Reading {
    sensor: u32,
    samples: [u32; 7],
}

/// Two pages of memory, aligned to the page size so that none is lost.
#[repr(C, align(4096))]
struct Memory([MaybeUninit<u8>; 2 * 4096]);

static mut MEMORY: Memory = Memory([MaybeUninit::uninit(); 2 * 4096]);
/// Where `MEMORY` is: taking the address of a `static mut` is safe.
const MEMORY_BYTES: *mut Memory = &raw mut MEMORY;
static PAGES: RegionPages = RegionPages::new(
    // SAFETY: the pointer is to a static, so valid and aligned, and nothing
    // else names `MEMORY`: this is the one reference to it, given up to the
    // region.
    unsafe { &mut (*MEMORY_BYTES).0 },
);
static READINGS: SlabCache<Reading, &RegionPages> = SlabCache::new_in(&PAGES);

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
