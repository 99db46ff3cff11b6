//! The baseline: the runtime and the panic handler with no pool at all, so
//! that `scripts/size` can show what each pool adds.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use minimal_slab_firmware as _;

#[entry]
fn main() -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}
