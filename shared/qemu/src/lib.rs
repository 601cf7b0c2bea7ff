//! Shared support for the QEMU binaries: semihosting output, exit, panic handler, counter.
#![no_std]

use core::panic::PanicInfo;
use cortex_m_semihosting::debug;
pub use cortex_m_semihosting::hprintln;

/// Exits QEMU with success or failure.
pub fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    #[allow(clippy::empty_loop)]
    loop {}
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    hprintln!("PANIC: {}", info);
    exit(false)
}

/// Enables SysTick as a free-running 24-bit down counter at the core clock.
pub fn counter_start() {
    // SAFETY: single-threaded bare-metal test program owning the SysTick.
    let mut p = unsafe { cortex_m::Peripherals::steal() };
    p.SYST
        .set_clock_source(cortex_m::peripheral::syst::SystClkSource::Core);
    p.SYST.set_reload(0x00FF_FFFF);
    p.SYST.clear_current();
    p.SYST.enable_counter();
}

/// MPS2 FPGAIO free-running counter (25 MHz of virtual time).
pub fn fpga_counter() -> u32 {
    // SAFETY: MMIO read of the FPGAIO COUNTER register on mps2-an386.
    unsafe { core::ptr::read_volatile(0x4002_8018 as *const u32) }
}

pub use shared::testkit::Rng;
