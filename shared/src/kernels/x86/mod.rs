//! x86-64: the `PMADDWD` micro-kernels of the host's wide driver (SSE2 always, AVX2 when the
//! CPU has it, which needs `std` for the run-time check).

pub(crate) mod wide;
