//! int8 kernels, in tiers as tract's `linalg` and CMSIS-NN lay theirs out. Layout: NHWC
//! activations (per image `h x w x c`, channels fastest), OHWI weights.
//!
//! * [`params`]: kernel parameters ([`ConvParams`], [`ConvQuant`], [`PoolParams`]), block sizes
//!   and each kernel's `*_scratch_len` companion.
//! * [`frame`]: the micro-kernel contract ([`DotKernel`]) and the drivers written against it.
//! * [`generic`]: the reference twins (`*_ref`, [`RefDot`]) and the portable kernels.
//! * `x86` (x86-64) and `arm` (Cortex-M4 DSP, cfg `sqz_dsp`): the same kernels with the
//!   instruction set's intrinsics or `asm!`.
//! * [`cost`]: which kernel pays for which layer (read by the dispatcher and the exporter).
//! * [`dispatch`]: the per-layer choice, by kernel name ([`conv_s8`], [`maxpool_s8`]).
//!
//! Every optimised kernel equals its reference twin bit for bit (`shared/tests/kernels.rs` on
//! the host, `shared/qemu/run-tests.sh` on the Cortex-M4: one suite, `testkit::suite`).

#[cfg(sqz_dsp)]
pub mod arm;
pub mod cost;
pub mod dispatch;
pub mod frame;
pub mod generic;
pub mod params;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use cost::{
    ZERO_SKIP_MIN_PIXELS, sparse_rows_pay, sparse_stem_pays, zero_skip_applies, zero_skip_pays,
};
pub use dispatch::{BestDot, conv_s8, conv_s8_next_strip, maxpool_s8};
pub use frame::packed::conv_packed_s8;
pub use frame::sparse::conv_sparse_s8;
pub use frame::wide::{conv_wide_portable_s8, conv_wide_s8};
pub use frame::{Capped, ConvIsa, DotKernel, SparseBlock, nibble_pair_table, sparse_entry};
pub use generic::add::{add_requant_s8, add_requant_s8_ref};
pub use generic::conv::conv_ref_s8;
pub use generic::pool::{
    avgpool_s8, avgpool_s8_ref, global_avgpool_s8, global_avgpool_s8_ref, maxpool_s8_portable,
    maxpool_s8_ref,
};
pub use generic::{PortableDot, PortableScalarDot, RefDot};
pub use params::{
    ConvParams, ConvQuant, MIN_BLOCK, PoolParams, ROW_BLOCK, SPARSE_GROUP, add_scratch_len,
    conv_scratch_full_len, conv_scratch_len, pool_scratch_len,
};

#[cfg(test)]
#[path = "arm/stem_sparse_text.rs"]
mod arm_stem_sparse_text;
