//! What every binary of this crate shares: the panic handler.
//!
//! Three handlers, chosen by feature:
//!
//! - none: stop (`loop {}`), the smallest a firmware can ship;
//! - `print-panic`: format the panic message into a static buffer, as a
//!   handler writing to a UART or a logger would, so that whatever the
//!   program's panics carry (messages, locations, `Debug` impls) is linked
//!   in and counted by `scripts/size`;
//! - `qemu`: print the message over semihosting and make QEMU exit with a
//!   failure, so that a panicking tutorial fails its run.
#![no_std]

use core::panic::PanicInfo;

#[cfg(all(not(feature = "print-panic"), not(feature = "qemu")))]
#[panic_handler]
fn panic(_: &PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

#[cfg(all(feature = "print-panic", not(feature = "qemu")))]
#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    use core::fmt::Write;
    use core::sync::atomic::{AtomicBool, Ordering};

    /// Bytes of the message, cut at the buffer's end.
    struct Message {
        bytes: [u8; 128],
        len: usize,
    }

    impl Write for Message {
        fn write_str(&mut self, text: &str) -> core::fmt::Result {
            for &byte in text.as_bytes() {
                if let Some(slot) = self.bytes.get_mut(self.len) {
                    *slot = byte;
                    self.len += 1;
                }
            }
            Ok(())
        }
    }

    static mut MESSAGE: Message = Message {
        bytes: [0; 128],
        len: 0,
    };
    /// Set by the first panic; a panic while formatting stops at once.
    static PANICKING: AtomicBool = AtomicBool::new(false);

    cortex_m::interrupt::disable();
    if PANICKING.swap(true, Ordering::Relaxed) {
        loop {
            core::hint::spin_loop();
        }
    }
    let raw = &raw mut MESSAGE;
    // SAFETY: interrupts are off, and only the first panic gets here and it
    // never returns, so this is the only reference to `MESSAGE` ever made.
    let message = unsafe { &mut *raw };
    let _ = write!(message, "{info}");
    // Keeps the message, as a UART would send it.
    core::hint::black_box(message);
    loop {
        core::hint::spin_loop();
    }
}

#[cfg(feature = "qemu")]
#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    use cortex_m_semihosting::{debug, hprintln};

    hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        core::hint::spin_loop();
    }
}
