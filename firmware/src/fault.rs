//! Panic and HardFault handlers: report over the host link, then stop.
//!
//! The report is a `0x00` (ends any half-sent frame) and a [`Response::Fault`] frame with the
//! panic message or the faulting PC, LR and CFSR; then `board::stop` (QEMU: semihosting exit 1).
//! A fault inside the handler stops at once. A stack overflow (flip-link puts the stack below
//! the statics) hits the RAM boundary and faults instead of corrupting data.

use core::fmt::{self, Write as _};
use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m_rt::{ExceptionFrame, exception};
use shared::protocol::{MAX_RESPONSE, MAX_TEXT, Response, cobs_max_len, encode_response};

use crate::board;

static FAULTED: AtomicBool = AtomicBool::new(false);

/// Keeps the first [`MAX_TEXT`] bytes written, silently drops the rest.
struct Cut(heapless::String<MAX_TEXT>);

impl fmt::Write for Cut {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.0.push(c).is_err() {
                break;
            }
        }
        Ok(())
    }
}

/// Sends a fault report and stops.
fn report(args: fmt::Arguments<'_>) -> ! {
    cortex_m::interrupt::disable();
    if FAULTED.swap(true, Ordering::Relaxed) {
        board::stop(2);
    }
    let mut text = Cut(heapless::String::new());
    let _ = text.write_fmt(args);
    let mut scratch = [0u8; MAX_RESPONSE];
    let mut frame = [0u8; cobs_max_len(MAX_RESPONSE) + 1];
    let n = encode_response(&Response::Fault(&text.0), &mut scratch, &mut frame);
    board::fault_write(&[0]);
    board::fault_write(&frame[..n]);
    board::log(format_args!("sqz-firmware: {}\n", text.0.as_str()));
    board::stop(1)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    report(format_args!("{info}"))
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    // SAFETY: read-only access to the SCB fault status register.
    let cfsr = unsafe { (*cortex_m::peripheral::SCB::PTR).cfsr.read() };
    report(format_args!(
        "HardFault at pc={:#010x} lr={:#010x} cfsr={cfsr:#010x}",
        frame.pc(),
        frame.lr()
    ))
}
