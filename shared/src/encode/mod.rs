//! Blob building helpers (feature `std`): owned weight encodings and convolutions that lend
//! [`WeightsDesc`](crate::weights::WeightsDesc) / [`ConvDesc`](crate::format::ConvDesc) views
//! to `format::encode` ([`owned`]). `example` and `squeezenet` are the test fixtures of
//! `testkit` (feature `testkit`), here under their former paths.

pub mod owned;

pub use owned::*;

#[cfg(feature = "testkit")]
pub use crate::testkit::{example, squeezenet};
