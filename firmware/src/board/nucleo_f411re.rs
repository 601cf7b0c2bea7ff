//! ST Nucleo-F411RE (STM32F411RE, Cortex-M4F) through `stm32f4xx-hal` (embedded-hal 1.0).
//!
//! Host link: USART2 on PA2 (TX) / PA3 (RX), wired to the ST-LINK virtual COM port
//! (`/dev/ttyACM0` on Linux), 115200 8N1. Clock: HSI + PLL at 100 MHz. Cost: DWT cycle counter.

use embedded_hal_nb::serial::Read as _;
use shared::protocol::CostUnit;
use stm32f4xx_hal::pac::{self, USART2};
use stm32f4xx_hal::prelude::*;
use stm32f4xx_hal::rcc::Config;
use stm32f4xx_hal::serial::Serial;

/// Board name (also the `cargo` feature).
pub const NAME: &str = "nucleo-f411re";
/// What [`cost_since`] counts.
pub const COST_UNIT: CostUnit = CostUnit::Cycles;

/// USART2 as `embedded-io` `Read` (via embedded-hal-nb) and `Write` (the HAL's own).
pub struct Port {
    serial: Serial<USART2>,
}

impl core::fmt::Debug for Port {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Port(USART2)")
    }
}

impl embedded_io::ErrorType for Port {
    type Error = stm32f4xx_hal::serial::Error;
}

impl embedded_io::Read for Port {
    /// Blocks for one byte (the HAL has no FIFO worth draining).
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        buf[0] = nb::block!(self.serial.read())?;
        Ok(1)
    }
}

impl embedded_io::Write for Port {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        embedded_io::Write::write(&mut self.serial, buf)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        embedded_io::Write::flush(&mut self.serial)
    }
}

/// Clocks to 100 MHz, USART2 at 115200 Bd, DWT cycle counter on.
pub fn init() -> Port {
    // Fixed panic messages: `expect` would link `core::fmt` for its text (about 1 KB).
    let Some(dp) = pac::Peripherals::take() else {
        panic!("board init ran twice")
    };
    let Some(mut cp) = cortex_m::Peripherals::take() else {
        panic!("board init ran twice")
    };
    cp.DCB.enable_trace();
    cp.DWT.enable_cycle_counter();
    let mut rcc = dp.RCC.freeze(Config::hsi().sysclk(100.MHz()));
    let gpioa = dp.GPIOA.split(&mut rcc);
    let Ok(serial) = Serial::new(dp.USART2, (gpioa.pa2, gpioa.pa3), 115_200.bps(), &mut rcc) else {
        panic!("USART2 cannot run at 115200 Bd from 100 MHz")
    };
    Port { serial }
}

/// Current cycle count.
pub fn cost_counter() -> u32 {
    cortex_m::peripheral::DWT::cycle_count()
}

/// Cycles since `start` (a [`cost_counter`] value); wraps after 42 s at 100 MHz.
pub fn cost_since(start: u32) -> u32 {
    cost_counter().wrapping_sub(start)
}

/// Blocking raw write on USART2, for fault handlers (the UART was set up by [`init`]).
pub fn fault_write(bytes: &[u8]) {
    // SAFETY: called only once the main program has stopped (fault path).
    let usart = unsafe { pac::USART2::steal() };
    for &b in bytes {
        while usart.sr().read().txe().bit_is_clear() {}
        // SAFETY: any 9-bit value is a valid DR write; `b` fits in 8 bits.
        usart.dr().write(|w| unsafe { w.dr().bits(b as u16) });
    }
    while usart.sr().read().tc().bit_is_clear() {}
}

/// No console without a debugger; the fault text goes over the UART instead.
pub fn log_str(_s: &str) {}

/// Stops with interrupts off (a debugger sees the core idling here).
pub fn stop(_code: i32) -> ! {
    cortex_m::interrupt::disable();
    loop {
        cortex_m::asm::wfi();
    }
}
