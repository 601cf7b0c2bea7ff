//! A set-once flag without read-modify-write atomics on every core.

use core::sync::atomic::{AtomicBool, Ordering};

/// Sets `flag` and returns its old value, atomically: one `swap` where the core has
/// read-modify-write atomics (ARMv7-M), a critical section on ARMv6-M (single core: masking
/// interrupts is enough).
pub fn test_and_set(flag: &AtomicBool) -> bool {
    #[cfg(target_has_atomic = "8")]
    {
        flag.swap(true, Ordering::AcqRel)
    }
    #[cfg(not(target_has_atomic = "8"))]
    {
        cortex_m::interrupt::free(|_| {
            let was = flag.load(Ordering::Acquire);
            flag.store(true, Ordering::Release);
            was
        })
    }
}
