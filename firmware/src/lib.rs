//! sqz-firmware: serves int8 SqueezeNet inference over a COBS/postcard serial link.
//!
//! `main.rs` only wires the parts: [`board::init`] brings up the clock, the UART and the cost
//! counter; [`Device::boot`] validates the embedded blob into a static arena; [`serve`] runs the
//! protocol loop of [`shared::protocol::Server`] (tested on the host) over `embedded-io`.
//! [`fault`] reports panics and HardFaults over the same link and stops.
//!
//! Nothing allocates: the blob is in flash, the arena, input buffer and protocol buffers are
//! statics, sized at build time from the blob (`build.rs`).
#![no_std]
#![warn(missing_docs)]

pub mod board;
#[cfg(any(feature = "mps2-an386", feature = "mps2-an385"))]
pub mod cmsdk_uart;
pub mod config;
pub mod device;
pub mod fault;
pub mod flag;
pub mod model;
#[cfg(feature = "smoke")]
pub mod smoke;
pub mod stack;
pub mod take_once;
pub mod text;

pub use device::Device;

// memcpy, memmove and memset in 124 bytes instead of compiler_builtins' 3 KB (see mem.s);
// ARMv6-M (Thumb-1) keeps compiler_builtins'.
#[cfg(sqz_fw_thumb2)]
core::arch::global_asm!(include_str!("mem.s"), options(raw));

use embedded_io::{Read, Write};
use shared::protocol::Server;

use crate::take_once::TakeOnce;

static SERVER: TakeOnce<Server> = TakeOnce::new(Server::new());

/// Serves requests on `port` forever: every received frame gets exactly one response frame.
///
/// I/O errors (UART overrun, framing) are dropped: the byte stream resynchronises at the next
/// frame delimiter and the host sees an error or a timeout for that frame only.
pub fn serve<P: Read + Write>(port: &mut P, device: &mut Device) -> ! {
    let server = SERVER.take_once("serve ran twice");
    let mut buf = [0u8; 64];
    loop {
        let n = port.read(&mut buf).unwrap_or(0);
        for &byte in &buf[..n] {
            if let Some(frame) = server.push(byte, device) {
                // A write error leaves the host to time out and retry; nothing to do here.
                let _ = port.write_all(frame).and_then(|()| port.flush());
            }
        }
    }
}
