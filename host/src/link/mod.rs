//! Host end of the serial link to the firmware (`shared::protocol`): a real board's serial port,
//! or the firmware ELF booted in QEMU (`mps2-an386`) with its UART on a loopback TCP socket.
//!
//! Every wait is bounded ([`DeviceLink::set_timeout`]); a device that does not answer in time
//! is an error, never a hang. Needs only `std`, `anyhow` and `shared`, so the firmware's host
//! tools (`firmware/tools`) compile these same files by path.
//!
//! [`serial`] is the link, [`check`] compares the device with the host kernels, [`soak`] sends
//! corrupted frames.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use host::link::DeviceLink;
//! let mut link = DeviceLink::qemu("firmware/target/thumbv7em-none-eabihf/release/sqz-firmware".as_ref())?;
//! let info = link.info()?;
//! let result = link.classify(&vec![0u8; info.input_len()])?;
//! println!("class {} in {} {:?}", result.class, result.cost, info.cost_unit);
//! # Ok(()) }
//! ```

pub mod check;
pub mod serial;
pub mod soak;

pub use check::{EvalReport, check_same_model, eval, host_reference};
pub use serial::{
    DEFAULT_TIMEOUT, DeviceInfo, DeviceLink, DeviceResult, QemuOptions, Reply, connect,
    encode_request,
};
pub use soak::{SoakReport, SplitMix, corrupt_frame, soak};
