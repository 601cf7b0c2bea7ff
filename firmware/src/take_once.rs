//! A static that hands out one `&'static mut` to its value: the no-allocation way to own big
//! buffers (arena, protocol buffers) without `static mut` references.

use core::cell::UnsafeCell;
use core::sync::atomic::AtomicBool;

use crate::flag::test_and_set;

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

impl<T> TakeOnce<T> {
    /// The value, the first time; a second take is a bug, reported as a fault naming `who`
    /// (a fixed message: `Option::expect` would link `core::fmt` for its text).
    pub fn take_once(&'static self, who: &'static str) -> &'static mut T {
        match self.take() {
            Some(value) => value,
            None => crate::fault::fatal(who),
        }
    }
}
