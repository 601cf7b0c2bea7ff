//! Test support (feature `testkit`), kept out of the library proper: the seeded generator
//! ([`Rng`]), the kernel suite that every implementation runs on the host and in QEMU
//! ([`suite`]), and, with `std` too, the example networks ([`example`], [`squeezenet`]).

pub mod rng;
pub mod suite;

#[cfg(feature = "std")]
pub mod example;
#[cfg(feature = "std")]
pub mod squeezenet;

pub use rng::Rng;
