//! Panic and HardFault handlers: report over the host link, then stop.
//!
//! The report is a `0x00` (ends any half-sent frame) and a [`Response::Fault`] frame with the
//! panic message or the faulting PC, LR and CFSR; then `board::stop` (QEMU: semihosting exit 1).
//! A fault inside the handler stops at once. A stack overflow (flip-link puts the stack below
//! the statics) hits the RAM boundary and faults instead of corrupting data; the handler runs on
//! its own stack (see [`crate::stack`]) and reports "stack overflow".

use core::sync::atomic::AtomicBool;

use cortex_m_rt::exception;
use shared::protocol::{MAX_RESPONSE, MAX_TEXT, Response, cobs_max_len, encode_response};

use crate::text::{push, push_dec, push_hex};
use crate::{board, stack};

static FAULTED: AtomicBool = AtomicBool::new(false);

type Report = heapless::String<MAX_TEXT>;

/// Sends a fault report and stops.
fn report(text: &Report) -> ! {
    cortex_m::interrupt::disable();
    if crate::flag::test_and_set(&FAULTED) {
        board::stop(2);
    }
    let mut scratch = [0u8; MAX_RESPONSE];
    let mut frame = [0u8; cobs_max_len(MAX_RESPONSE) + 1];
    let n = encode_response(&Response::Fault(text), &mut scratch, &mut frame);
    board::fault_write(&[0]);
    board::fault_write(&frame[..n]);
    board::log_str("sqz-firmware: ");
    board::log_str(text);
    board::log_str("\n");
    board::stop(1)
}

/// `panicked at FILE:LINE: MESSAGE` (a message that needs formatting is named, not formatted:
/// no formatting machinery in flash).
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut t = Report::new();
    push(&mut t, "panicked at ");
    if let Some(l) = info.location() {
        push(&mut t, l.file());
        push(&mut t, ":");
        push_dec(&mut t, l.line());
    }
    push(&mut t, ": ");
    push(
        &mut t,
        info.message().as_str().unwrap_or("(a formatted message)"),
    );
    report(&t)
}

/// Reports `what` (a fixed message: a bug the firmware found in itself) and stops.
pub fn fatal(what: &str) -> ! {
    let mut t = Report::new();
    push(&mut t, "fatal: ");
    push(&mut t, what);
    report(&t)
}

/// `NAME=0x........` appended to a report.
fn field(t: &mut Report, name: &str, v: u32) {
    push(t, name);
    push(t, "=");
    push_hex(t, v);
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
    let mut t = Report::new();
    if cfsr & (CFSR_MSTKERR | CFSR_BSTKERR) != 0 || psp < lo + 32 {
        push(&mut t, "HardFault: stack overflow (");
        field(&mut t, "psp", psp as u32);
        field(&mut t, ", cfsr", cfsr);
        push(&mut t, ")");
        report(&t)
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
    push(&mut t, "HardFault at ");
    field(&mut t, "pc", pc);
    field(&mut t, " lr", lr);
    field(&mut t, " cfsr", cfsr);
    report(&t)
}

/// Recurses `depth` times with 1 KB frames: overflows the stack (CI check of flip-link).
/// Every level also returns once through the stack ([`return_through_stack`]): QEMU's MPS2
/// boards ignore writes below RAM and read zeros there, so the first return address popped
/// from below RAM (0) faults, as a real part faults on the first access below RAM.
#[cfg(feature = "stack-overflow-test")]
pub fn overflow_stack(depth: u32) -> u32 {
    let frame = core::hint::black_box([depth as u8; 1024]);
    let probe = return_through_stack(depth);
    if depth == 0 {
        probe
    } else {
        overflow_stack(depth - 1).wrapping_add(u32::from(frame[7]) ^ probe)
    }
}

/// A call that saves its return address on the stack and pops it (not a leaf, not inlined).
#[cfg(feature = "stack-overflow-test")]
#[inline(never)]
fn return_through_stack(v: u32) -> u32 {
    core::hint::black_box(leaf(v)).wrapping_add(1)
}

#[cfg(feature = "stack-overflow-test")]
#[inline(never)]
fn leaf(v: u32) -> u32 {
    core::hint::black_box(v)
}
