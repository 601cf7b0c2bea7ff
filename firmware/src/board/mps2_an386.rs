//! MPS2 AN386 (Cortex-M4F) as emulated by QEMU `-M mps2-an386`, and AN385 (`-M mps2-an385`,
//! Cortex-M3: no FPU, no DSP extension), which has the same UART and counter.
//!
//! UART0 (CMSDK, 0x4000_4000) is the host link (`-serial` #0). Cost: the FPGAIO free-running
//! counter (0x4002_8018, 25 MHz); with `-icount shift=0` one instruction takes one virtual ns,
//! so instructions = ticks * 40.
//!
//! Orphan guard: once a host has sent something, [`IDLE_EXIT_S`] virtual seconds without input
//! end the emulator (exit 1), so a QEMU whose host was killed does not spin forever.

use shared::protocol::CostUnit;

use crate::cmsdk_uart::CmsdkUart;

unsafe extern "C" {
    fn DefaultHandler();
}

/// The device interrupt vectors: the firmware polls the UART and enables no interrupt, so the
/// table holds only the one entry cortex-m-rt's linker script requires (instead of the 240 of
/// a generic ARMv7-M build: 956 B of flash).
#[unsafe(link_section = ".vector_table.interrupts")]
#[unsafe(no_mangle)]
#[used]
static __INTERRUPTS: [unsafe extern "C" fn(); 1] = [DefaultHandler];

/// Board name (also the `cargo` feature).
#[cfg(feature = "mps2-an386")]
pub const NAME: &str = "mps2-an386";
/// Board name (also the `cargo` feature).
#[cfg(feature = "mps2-an385")]
pub const NAME: &str = "mps2-an385";
/// What [`cost_since`] counts.
pub const COST_UNIT: CostUnit = CostUnit::Instructions;
/// Virtual seconds without input, after the first byte, before the emulator exits.
pub const IDLE_EXIT_S: u32 = 60;

const UART0: usize = 0x4000_4000;
const FPGAIO_COUNTER: usize = 0x4002_8018;
const SYSCLK_HZ: u32 = 25_000_000;
/// Virtual ns per counter tick = instructions per tick under `-icount shift=0`.
const INSTRUCTIONS_PER_TICK: u32 = 40;

/// The host link: UART0 with the orphan guard.
#[derive(Debug)]
pub struct Port {
    uart: CmsdkUart,
    spoken: bool,
}

impl embedded_io::ErrorType for Port {
    type Error = core::convert::Infallible;
}

impl embedded_io::Read for Port {
    /// Blocks for the first byte (or exits, see the module docs), then takes what is waiting.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        let start = cost_counter();
        let first = loop {
            if let Some(b) = self.uart.try_read_byte() {
                break b;
            }
            if self.spoken && cost_counter().wrapping_sub(start) > IDLE_EXIT_S * SYSCLK_HZ {
                const _: () = assert!(IDLE_EXIT_S == 60, "update the message below");
                log_str("sqz-firmware: no input for 60 s, host gone: exiting\n");
                stop(1);
            }
        };
        self.spoken = true;
        buf[0] = first;
        let mut n = 1;
        while n < buf.len() {
            match self.uart.try_read_byte() {
                Some(b) => buf[n] = b,
                None => break,
            }
            n += 1;
        }
        Ok(n)
    }
}

impl embedded_io::Write for Port {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.uart.write(buf)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.uart.flush()
    }
}

/// Brings up the host UART at 115200 Bd.
pub fn init() -> Port {
    // SAFETY: UART0 is used only through this value (and by the fault handler after a stop).
    let uart = unsafe { CmsdkUart::new(UART0, SYSCLK_HZ, 115_200) };
    Port {
        uart,
        spoken: false,
    }
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
/// Writes `s` to the emulator console (semihosting stderr), with no formatting machinery.
pub fn log_str(s: &str) {
    cortex_m_semihosting::hio::hstderr()
        .map(|mut out| {
            let _ = out.write_all(s.as_bytes());
        })
        .ok();
}

/// Formatted diagnostics (smoke build only: the serve build keeps `core::fmt` out of flash).
#[cfg(feature = "smoke")]
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
