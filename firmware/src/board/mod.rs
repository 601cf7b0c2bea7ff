//! Board support, one module per board feature. Each exposes the same items:
//!
//! * `NAME`, `COST_UNIT`;
//! * `init() -> Port`: clocks, the host UART (`embedded_io::Read + Write`) and the cost counter;
//! * `cost_counter()` / `cost_since(start)`: inference cost in `COST_UNIT`;
//! * `fault_write(bytes)`: raw blocking UART write usable from fault handlers;
//! * `log_str(s)`: diagnostics to the debugger/emulator console (no-op where there is none);
//!   `log(args)` formatted, in the smoke build (mps2 boards);
//! * `stop(code) -> !`: end the program (QEMU: semihosting exit with `code`).

// The Cortex-M3 AN385 has the AN386's UART and counter: one module serves both.
#[cfg(any(feature = "mps2-an386", feature = "mps2-an385"))]
mod mps2_an386;
#[cfg(any(feature = "mps2-an386", feature = "mps2-an385"))]
pub use mps2_an386::*;

#[cfg(feature = "nucleo-f411re")]
mod nucleo_f411re;
#[cfg(feature = "nucleo-f411re")]
pub use nucleo_f411re::*;
