//! The comparison: the same work as `size_slab` on heapless's `box_pool!`,
//! a lock-free pool of three 32-byte blocks.
#![no_std]
#![no_main]

use core::hint::black_box;

use cortex_m_rt::entry;
use heapless::pool::boxed::BoxBlock;
use minimal_slab_firmware as _;

/// The object: 32 bytes.
pub struct Reading {
    /// Which sensor read it.
    pub sensor: u32,
    /// What it read.
    pub samples: [u32; 7],
}

/// The pool's type and its one instance, as `box_pool!` declares them.
mod pool {
    heapless::box_pool!(READINGS: super::Reading);
}
use pool::READINGS;

static mut BLOCKS: [BoxBlock<Reading>; 3] = [const { BoxBlock::new() }; 3];

#[entry]
fn main() -> ! {
    let raw = &raw mut BLOCKS;
    // SAFETY: `main` runs once and nothing else names `BLOCKS`, so this is
    // the only reference to it, handed to the pool for good.
    let blocks = unsafe { &mut *raw };
    for block in blocks {
        READINGS.manage(block);
    }
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
