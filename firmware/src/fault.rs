//! Panic and HardFault handlers: report over the host link, then stop.
//!
//! The report is a `0x00` (ends any half-sent frame) and a [`Response::Fault`] frame with the
//! panic message or the faulting PC, LR and CFSR; then `board::stop` (QEMU: semihosting exit 1).
//! A fault inside the handler stops at once. A stack overflow (flip-link puts the stack below
//! the statics) hits the RAM boundary and faults instead of corrupting data; the handler runs on
//! its own stack (see [`crate::stack`]) and reports "stack overflow".

use core::fmt::{self, Write as _};
use core::sync::atomic::AtomicBool;

use cortex_m_rt::exception;
use shared::protocol::{MAX_RESPONSE, MAX_TEXT, Response, cobs_max_len, encode_response};

use crate::{board, stack};

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
    if crate::take_once::test_and_set(&FAULTED) {
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

const CFSR_MSTKERR: u32 = 1 << 4;
const CFSR_BSTKERR: u32 = 1 << 12;

/// The configurable fault status register (ARMv7-M; ARMv6-M has none: 0, and a stack overflow
/// is recognised by the stack pointer alone).
fn fault_status() -> u32 {
    #[cfg(target_has_atomic = "8")]
    {
        // SAFETY: read-only access to the SCB fault status register.
        unsafe { (*cortex_m::peripheral::SCB::PTR).cfsr.read() }
    }
    #[cfg(not(target_has_atomic = "8"))]
    {
        0
    }
}

#[exception(trampoline = false)]
unsafe fn HardFault() -> ! {
    let cfsr = fault_status();
    let psp = cortex_m::register::psp::read() as usize;
    let (lo, hi) = stack::thread_region();
    if cfsr & (CFSR_MSTKERR | CFSR_BSTKERR) != 0 || psp < lo + 32 {
        report(format_args!(
            "HardFault: stack overflow (psp={psp:#010x}, cfsr={cfsr:#010x})"
        ))
    }
    // Thread mode (the only code that runs) faulted on the process stack: the exception frame
    // is at PSP. Read it only when it lies inside the stack region.
    let (pc, lr) = if psp + 32 <= hi {
        // SAFETY: inside the thread stack; the processor stacked r0-r3, r12, lr, pc, xpsr there.
        unsafe {
            (
                core::ptr::read_volatile((psp + 24) as *const u32),
                core::ptr::read_volatile((psp + 20) as *const u32),
            )
        }
    } else {
        (0, 0)
    };
    report(format_args!(
        "HardFault at pc={pc:#010x} lr={lr:#010x} cfsr={cfsr:#010x}"
    ))
}

/// Recurses `depth` times with 1 KB frames: overflows the stack (CI check of flip-link).
#[cfg(feature = "stack-overflow-test")]
pub fn overflow_stack(depth: u32) -> u32 {
    let frame = core::hint::black_box([depth as u8; 1024]);
    if depth == 0 {
        0
    } else {
        overflow_stack(depth - 1).wrapping_add(u32::from(frame[7]))
    }
}
