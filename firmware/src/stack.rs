//! The stack: split between thread code and fault handlers, and its high-water mark.
//!
//! With flip-link the stack region `_stack_end.._stack_start` lies below the statics, at the
//! bottom of RAM. [`run_on_process_stack`] gives its top [`HANDLER_STACK`] bytes to the main
//! stack pointer (MSP, used by exception handlers) and runs the program in thread mode on the
//! process stack pointer (PSP) below. A thread-mode stack overflow then runs off the start of
//! RAM and faults, and the HardFault handler still has a stack to report it from (with a single
//! stack the processor would lock up).
//!
//! High-water mark by painting: `cortex-m-rt`'s `paint-stack` feature fills the region with
//! [`PAINT`] before `main`; the deepest word no longer holding it marks the deepest use.

/// The word `cortex-m-rt` paints the stack with.
pub const PAINT: u32 = 0xCCCC_CCCC;

unsafe extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
}

/// Bytes at the top of the stack region kept for exception handlers (the fault report needs
/// about 1 KB).
pub const HANDLER_STACK: usize = 4096;

/// `(lowest, highest)` address of the whole stack region.
pub fn region() -> (usize, usize) {
    // Linker symbols: only their addresses are used.
    (
        &raw const _stack_end as usize,
        &raw const _stack_start as usize,
    )
}

/// `(lowest, highest)` address of the thread-mode (process) stack.
pub fn thread_region() -> (usize, usize) {
    let (lo, hi) = region();
    (lo, (hi - HANDLER_STACK) & !7)
}

/// Bytes of thread-mode stack.
pub fn size() -> usize {
    let (lo, hi) = thread_region();
    hi - lo
}

/// Runs `app` in thread mode on the process stack (see the module docs). Call first in `main`.
pub fn run_on_process_stack(app: extern "C" fn() -> !) -> ! {
    let (_, top) = thread_region();
    // SAFETY: `top` is 8-aligned, inside RAM, below the few bytes `main` used on the MSP, and
    // nothing else uses the memory below it; `app` never returns.
    unsafe { switch_to_psp(top, app) }
}

/// Sets PSP to `top`, selects PSP for thread mode (CONTROL.SPSEL) and jumps to `app`.
#[unsafe(naked)]
unsafe extern "C" fn switch_to_psp(top: usize, app: extern "C" fn() -> !) -> ! {
    core::arch::naked_asm!(
        "msr psp, r0",
        "mrs r2, control",
        "movs r3, #2", // Thumb-1 forms: the same code runs on ARMv6-M
        "orrs r2, r3",
        "msr control, r2",
        "isb",
        "bx r1",
    )
}

/// Deepest thread-mode stack use since reset, bytes (scans up from the bottom for the first
/// scrubbed word).
pub fn high_water_mark() -> usize {
    let (lo, hi) = thread_region();
    let mut p = lo;
    while p < hi {
        // SAFETY: inside the stack region, word aligned (cortex-m-rt aligns both ends to 4).
        if unsafe { core::ptr::read_volatile(p as *const u32) } != PAINT {
            break;
        }
        p += 4;
    }
    hi - p
}
