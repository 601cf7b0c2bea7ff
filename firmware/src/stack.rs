//! Stack high-water mark by painting: `cortex-m-rt`'s `paint-stack` feature fills the stack
//! region (`_stack_end..._stack_start`, below the statics when linked with flip-link) with
//! [`PAINT`] before `main`; the deepest word no longer holding it marks the deepest use.

/// The word `cortex-m-rt` paints the stack with.
pub const PAINT: u32 = 0xCCCC_CCCC;

unsafe extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
}

/// `(lowest, highest)` address of the stack region.
fn bounds() -> (usize, usize) {
    // Linker symbols: only their addresses are used.
    (
        &raw const _stack_end as usize,
        &raw const _stack_start as usize,
    )
}

/// Bytes reserved for the stack.
pub fn size() -> usize {
    let (lo, hi) = bounds();
    hi - lo
}

/// Deepest stack use since reset, bytes (scans up from the bottom for the first scrubbed word).
pub fn high_water_mark() -> usize {
    let (lo, hi) = bounds();
    let mut p = lo;
    while p < hi {
        // SAFETY: inside the stack region, word aligned (cortex-m-rt aligns both ends to 4).
        if unsafe { core::ptr::read_volatile(p as *const u32) } != PAINT {
            break;
        }
        p += 4;
    }
    hi - p
}
