//! MPS2 AN386 (Cortex-M4F) as emulated by QEMU `-M mps2-an386`.
//!
//! UART0 (CMSDK, 0x4000_4000) is the host link (`-serial` #0). Cost: the FPGAIO free-running
//! counter (0x4002_8018, 25 MHz); with `-icount shift=0` one instruction takes one virtual ns,
//! so instructions = ticks * 40.

use shared::protocol::CostUnit;

use crate::cmsdk_uart::CmsdkUart;

/// Board name (also the `cargo` feature).
pub const NAME: &str = "mps2-an386";
/// What [`cost_since`] counts.
pub const COST_UNIT: CostUnit = CostUnit::Instructions;
/// The host link.
pub type Port = CmsdkUart;

const UART0: usize = 0x4000_4000;
const FPGAIO_COUNTER: usize = 0x4002_8018;
const SYSCLK_HZ: u32 = 25_000_000;
/// Virtual ns per counter tick = instructions per tick under `-icount shift=0`.
const INSTRUCTIONS_PER_TICK: u32 = 40;

/// Brings up the host UART at 115200 Bd.
pub fn init() -> Port {
    // SAFETY: UART0 is used only through this value (and by the fault handler after a stop).
    unsafe { CmsdkUart::new(UART0, SYSCLK_HZ, 115_200) }
}

/// Current counter value.
pub fn cost_counter() -> u32 {
    // SAFETY: read-only FPGAIO register.
    unsafe { core::ptr::read_volatile(FPGAIO_COUNTER as *const u32) }
}

/// Instructions since `start` (a [`cost_counter`] value), 40-instruction resolution.
pub fn cost_since(start: u32) -> u32 {
    cost_counter()
        .wrapping_sub(start)
        .saturating_mul(INSTRUCTIONS_PER_TICK)
}

/// Blocking raw write on UART0, for fault handlers.
pub fn fault_write(bytes: &[u8]) {
    // SAFETY: called only once the main program has stopped (fault path).
    let mut uart = unsafe { CmsdkUart::steal(UART0) };
    for &b in bytes {
        uart.write_byte(b);
    }
}

/// Prints to QEMU's console (semihosting, needs `-semihosting-config enable=on`).
pub fn log(args: core::fmt::Arguments<'_>) {
    cortex_m_semihosting::hio::hstderr()
        .map(|mut out| {
            let _ = core::fmt::Write::write_fmt(&mut out, args);
        })
        .ok();
}

/// Exits QEMU with status 0 (`code == 0`) or 1 (any other code).
pub fn stop(code: i32) -> ! {
    use cortex_m_semihosting::debug;
    debug::exit(if code == 0 {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}
