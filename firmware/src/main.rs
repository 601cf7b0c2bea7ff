//! Entry point: wire the board, the device and the protocol loop (logic lives in the library).
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use firmware::{Device, board};

#[entry]
fn main() -> ! {
    #[allow(unused_mut, unused_variables)]
    let mut port = board::init();
    let mut device = Device::boot();
    #[cfg(feature = "smoke")]
    firmware::smoke::run(&mut device);
    #[cfg(not(feature = "smoke"))]
    firmware::serve(&mut port, &mut device)
}
