//! Not a module of `host`: the serial link (`host/src/link/`) for the firmware's host tools,
//! which compile it by path (`firmware/tools/src/main.rs`: `#[path]` to this file) and need
//! only `std`, `anyhow` and `shared`.

// The tools use part of the link; the rest of its re-exports would be unused there.
#[allow(unused_imports)]
#[path = "link/mod.rs"]
mod link;
pub use link::*;
