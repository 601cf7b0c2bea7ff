//! int8 kernels. Layout: NHWC activations (per image `h x w x c`, channels fastest), OHWI
//! weights. Each kernel has a plain reference twin (`*_ref`) that the fast paths equal bit for
//! bit, and a `*_scratch_len` companion.

pub mod add;
#[cfg(sqz_dsp)]
pub mod arm;
pub mod conv;
pub mod dot;
pub mod pool;
pub mod wide;

pub use add::{add_requant_s8, add_requant_s8_ref, add_scratch_len};
pub use conv::{
    ConvParams, ConvQuant, ROW_BLOCK, SPARSE_GROUP, conv_1x1_s8, conv_3x3_s8, conv_general_s8,
    conv_ref_s8, conv_s8, conv_s8_next_strip, conv_scratch_full_len, conv_scratch_len,
    sparse_rows_pay, sparse_stem_pays, zero_skip_applies, zero_skip_pays,
};
pub use dot::{BestDot, DotKernel, PortableDot, PortableScalarDot, RefDot};
pub use pool::{
    PoolParams, avgpool_s8, avgpool_s8_ref, global_avgpool_s8, global_avgpool_s8_ref, maxpool_s8,
    maxpool_s8_ref, pool_scratch_len,
};
#[cfg(test)]
mod arm_stem_sparse_text;
