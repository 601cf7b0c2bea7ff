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
        if self.taken.swap(true, Ordering::AcqRel) {
            None
        } else {
            // SAFETY: `taken` was false, so no other reference exists, and none will be made.
            Some(unsafe { &mut *self.value.get() })
        }
    }
}
