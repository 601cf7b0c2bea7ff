//! ARM CMSDK APB UART (the MPS2 boards' UARTs; QEMU `cmsdk-apb-uart`) behind `embedded-io`.
//!
//! Four registers: `DATA` (+0x0), `STATE` (+0x4: bit 0 TX full, bit 1 RX full), `CTRL` (+0x8:
//! bit 0 TX enable, bit 1 RX enable) and `BAUDDIV` (+0x10, at least 16). Polled, no interrupts.

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};

const DATA: usize = 0x00;
const STATE: usize = 0x04;
const CTRL: usize = 0x08;
const BAUDDIV: usize = 0x10;
const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
const CTRL_TX_EN: u32 = 1 << 0;
const CTRL_RX_EN: u32 = 1 << 1;

/// One CMSDK UART at a fixed base address.
#[derive(Debug)]
pub struct CmsdkUart {
    base: usize,
}

impl CmsdkUart {
    /// Takes the UART at `base` and enables it at `clock_hz / baud`.
    ///
    /// # Safety
    /// `base` must be a CMSDK UART that nothing else drives (except [`CmsdkUart::steal`] in a
    /// fault handler, after everything else has stopped).
    pub unsafe fn new(base: usize, clock_hz: u32, baud: u32) -> Self {
        let uart = Self { base };
        uart.write_reg(BAUDDIV, (clock_hz / baud).max(16));
        uart.write_reg(CTRL, CTRL_TX_EN | CTRL_RX_EN);
        // Drop any stale byte. In QEMU a DATA read also makes the character backend poll for
        // input again; without it, bytes that arrived before RX was enabled can sit unread.
        let _ = uart.read_reg(DATA);
        uart
    }

    /// The UART at `base`, as configured by an earlier [`CmsdkUart::new`].
    ///
    /// # Safety
    /// Only for fault handlers: it aliases the UART owned by the main program.
    pub unsafe fn steal(base: usize) -> Self {
        Self { base }
    }

    fn read_reg(&self, off: usize) -> u32 {
        // SAFETY: `base` is a CMSDK UART (contract of `new`/`steal`).
        unsafe { read_volatile((self.base + off) as *const u32) }
    }

    fn write_reg(&self, off: usize, value: u32) {
        // SAFETY: `base` is a CMSDK UART (contract of `new`/`steal`).
        unsafe { write_volatile((self.base + off) as *mut u32, value) }
    }

    /// Blocks until a byte arrives.
    pub fn read_byte(&mut self) -> u8 {
        while self.read_reg(STATE) & STATE_RX_FULL == 0 {}
        self.read_reg(DATA) as u8
    }

    /// A received byte, if one is waiting.
    pub fn try_read_byte(&mut self) -> Option<u8> {
        (self.read_reg(STATE) & STATE_RX_FULL != 0).then(|| self.read_reg(DATA) as u8)
    }

    /// Blocks until the transmitter takes `byte`.
    pub fn write_byte(&mut self, byte: u8) {
        while self.read_reg(STATE) & STATE_TX_FULL != 0 {}
        self.write_reg(DATA, byte as u32);
    }
}

impl embedded_io::ErrorType for CmsdkUart {
    type Error = Infallible;
}

impl embedded_io::Read for CmsdkUart {
    /// Blocks for the first byte, then takes whatever else is already waiting.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let Some((first, rest)) = buf.split_first_mut() else {
            return Ok(0);
        };
        *first = self.read_byte();
        let mut n = 1;
        for slot in rest {
            match self.try_read_byte() {
                Some(b) => *slot = b,
                None => break,
            }
            n += 1;
        }
        Ok(n)
    }
}

impl embedded_io::Write for CmsdkUart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for &b in buf {
            self.write_byte(b);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        while self.read_reg(STATE) & STATE_TX_FULL != 0 {}
        Ok(())
    }
}
