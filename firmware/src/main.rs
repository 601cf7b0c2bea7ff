//! Entry point: wire the board, the device and the protocol loop (logic lives in the library).
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use firmware::{Device, board};

#[entry]
fn main() -> ! {
    firmware::stack::run_on_process_stack(app)
}

/// The program, in thread mode on the process stack.
#[cfg_attr(
    any(
        feature = "panic-test",
        feature = "hardfault-test",
        feature = "stack-overflow-test"
    ),
    allow(unreachable_code, unused_mut, unused_variables)
)]
extern "C" fn app() -> ! {
    #[allow(unused_mut, unused_variables)]
    let mut port = board::init();
    let mut device = Device::boot();
    #[cfg(feature = "panic-test")]
    panic!("panic-test: deliberate panic after boot");
    #[cfg(feature = "hardfault-test")]
    // SAFETY: deliberately faulting read of unmapped memory (CI checks the HardFault report).
    unsafe {
        core::ptr::read_volatile(0xF000_0000 as *const u32);
    }
    #[cfg(feature = "stack-overflow-test")]
    firmware::fault::overflow_stack(u32::MAX);
    #[cfg(feature = "smoke")]
    firmware::smoke::run(&mut device);
    #[cfg(not(feature = "smoke"))]
    firmware::serve(&mut port, &mut device)
}
