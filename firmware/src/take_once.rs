//! A static that hands out one `&'static mut` to its value: the no-allocation way to own big
//! buffers (arena, protocol buffers) without `static mut` references.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// A value that can be taken mutably exactly once.
#[derive(Debug)]
pub struct TakeOnce<T> {
    taken: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reachable through the single `&mut` that `take` hands out.
unsafe impl<T: Send> Sync for TakeOnce<T> {}

impl<T> TakeOnce<T> {
    /// Wraps `value` (a `const` initialiser keeps it in `.bss`/`.data`, never on the stack).
    pub const fn new(value: T) -> Self {
        Self {
            taken: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, the first time; `None` afterwards.
    #[allow(clippy::mut_from_ref)] // handed out once, guarded by `taken`
    pub fn take(&'static self) -> Option<&'static mut T> {
        if test_and_set(&self.taken) {
            None
        } else {
            // SAFETY: `taken` was false, so no other reference exists, and none will be made.
            Some(unsafe { &mut *self.value.get() })
        }
    }
}

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
