//! Not a module of `host`: the serial link ([`link`], `host/src/link/`) for the firmware's host
//! tools, which compile it by path (`firmware/tools/src/main.rs`: `#[path]` to this file) and
//! need only `std`, `anyhow` and `shared`.

#[path = "link/mod.rs"]
mod link;
pub use link::*;
