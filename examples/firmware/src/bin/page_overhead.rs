//! The table of overhead per page size, on a 32-bit microcontroller: the
//! host example `page_overhead` (this program includes its file) run on an
//! emulated Cortex-M3, whose 32-bit pointers make the slab header smaller
//! than on a 64-bit host. From `examples/firmware`:
//!
//! ```text
//! cargo run --release --target thumbv7m-none-eabi --bin page_overhead --features cs,qemu
//! ```
//!
//! It prints the table over semihosting and exits QEMU with status 0.
#![no_std]
#![no_main]

// cortex-m provides the critical-section implementation the locks use.
use cortex_m as _;
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hio};
use minimal_slab_firmware as _;

#[path = "../../../page_overhead.rs"]
mod page_overhead;

#[entry]
fn main() -> ! {
    let printed = match hio::hstdout() {
        Ok(mut out) => page_overhead::write_table(&mut out).is_ok(),
        Err(()) => false,
    };
    debug::exit(if printed {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        core::hint::spin_loop();
    }
}
