//! The dispatcher: picks, per layer, the kernel that runs it, by name. Conv: the target's own
//! whole-conv kernel if it takes the layer (`arm::conv_3x3_c1_s8` on the Cortex-M4 stem, the
//! host's [`conv_wide_s8`]), else the zero-skipping [`conv_sparse_s8`] where sparse rows pay
//! (`cost::zero_skip_applies`), else the packed [`conv_packed_s8`] over the micro-kernel `K`.
//! Max pool: `arm::maxpool_s8_dsp` or [`maxpool_s8_portable`].

use crate::caps::Caps;
#[cfg(sqz_dsp)]
use crate::kernels::arm::{conv_3x3_c1_s8, maxpool_s8_dsp};
use crate::kernels::frame::packed::conv_packed_s8;
use crate::kernels::frame::sparse::conv_sparse_s8;
use crate::kernels::frame::wide::{conv_wide_portable_s8, conv_wide_s8};
use crate::kernels::frame::{ConvIsa, DotKernel};
use crate::kernels::generic::pool::maxpool_s8_portable;
use crate::kernels::params::{ConvParams, ConvQuant, PoolParams, conv_scratch_len};
use crate::weights::RowDecoder;

/// The kernel `run` uses on this target: the Cortex-M4 DSP path on `thumbv7em` (cfg `sqz_dsp`,
/// set by build.rs), the portable path elsewhere.
#[cfg(sqz_dsp)]
pub type BestDot = crate::kernels::arm::ArmDot;
/// The kernel `run` uses on this target.
#[cfg(not(sqz_dsp))]
pub type BestDot = crate::kernels::generic::PortableDot;

/// Int8 convolution, any kernel, stride and padding, over the micro-kernel `K`.
///
/// * `input`: `p.input` NHWC int8; `out`: `p.output.h * p.output.w * p.out_channel_stride`
///   int8, channels `out_channel_offset..+output.c` of each pixel written, others untouched.
/// * `w`: `cout` rows of `k = kh * kw * cin` (OHWI), dense or compressed.
/// * `acc = bias[c] + sum((x - in_zp) * w)` (padded taps hold `in_zp`), then
///   `quant::requantize` (fused ReLU).
/// * `scratch.len() >= conv_scratch_len(p, w.is_dense())`; a longer scratch buys larger
///   weight blocks.
///
/// Preconditions (checked by `Model::from_bytes`, only `debug_assert`ed here): consistent dims,
/// buffer lengths as above.
pub fn conv_s8<K: DotKernel>(
    p: &ConvParams,
    q: &ConvQuant<'_>,
    input: &[i8],
    w: &RowDecoder<'_, K::Caps>,
    out: &mut [i8],
    scratch: &mut [i8],
) {
    // SAFETY: `next_strip` false: no contract.
    unsafe { conv_strip::<K>(p, q, input, w, out, scratch, false) }
}

/// [`conv_s8`] on the next row strip of a layer (`p` describing the strip): the previous call
/// was `conv_s8` or this function on the same `w`, `q` and `scratch` slice, and nothing wrote
/// the scratch since, so kernels may reuse per-layer state left in it (the stem's records).
/// A function of its own rather than a run-time flag, which cost instructions per strip.
///
/// # Safety
/// That contract: the previous call on this `scratch` slice was [`conv_s8`] or this function
/// with the same kernel `K`, `w` and `q`, and the scratch was not written since (a kernel may
/// follow code addresses it left there: the Cortex-M4 zero-skipping stem does).
pub unsafe fn conv_s8_next_strip<K: DotKernel>(
    p: &ConvParams,
    q: &ConvQuant<'_>,
    input: &[i8],
    w: &RowDecoder<'_, K::Caps>,
    out: &mut [i8],
    scratch: &mut [i8],
) {
    // SAFETY: the caller's contract, passed on.
    unsafe { conv_strip::<K>(p, q, input, w, out, scratch, true) }
}

/// # Safety
/// With `next_strip`, the contract of [`conv_s8_next_strip`].
#[cfg_attr(not(sqz_dsp), allow(unused_variables))]
unsafe fn conv_strip<K: DotKernel>(
    p: &ConvParams,
    q: &ConvQuant<'_>,
    input: &[i8],
    w: &RowDecoder<'_, K::Caps>,
    out: &mut [i8],
    scratch: &mut [i8],
    next_strip: bool,
) {
    debug_assert!(scratch.len() >= conv_scratch_len(p, w.is_dense()));
    debug_assert!(input.len() >= p.input.len());
    // The target's whole-conv kernels decline (returning `false`, nothing written) when the
    // layer or the scratch does not suit them.
    let done = match K::CONV {
        #[cfg(sqz_dsp)]
        ConvIsa::ArmDsp => {
            (K::Caps::STEM_DENSE || K::Caps::STEM_SPARSE)
                && p.input.c == 1
                && p.kernel == [3, 3]
                // SAFETY: with `next_strip`, the caller's contract, which is the stem's `reuse`.
                && unsafe { conv_3x3_c1_s8(p, q, input, w, out, scratch, next_strip) }
        }
        ConvIsa::Wide => conv_wide_s8(p, q, input, w, out, scratch),
        ConvIsa::WidePortable => conv_wide_portable_s8(p, q, input, w, out, scratch),
        _ => false,
    };
    if done {
        return;
    }
    if conv_sparse_s8::<K>(p, q, input, w, out, scratch) {
        return;
    }
    // A build without the packed driver runs only blobs whose every conv the zero-skipping
    // driver takes (checked at validation, `caps::Caps::PACKED`).
    if K::Caps::PACKED {
        conv_packed_s8::<K>(p, q, input, w, out, scratch)
    }
}

/// Max pool; padded taps are ignored (every window holds at least one valid tap, checked by the
/// model). Output quantisation equals the input's. Input `p.input`, output `p.output`, NHWC.
/// On the Cortex-M4 (`sqz_dsp`) channels go 4 at a time (`arm::maxpool_s8_dsp`) when
/// `c % 4 == 0`.
/// Without `C::MAXPOOL_ANY_CHANNELS` the Cortex-M4 build has no portable kernel (a model that
/// needs it is refused at boot, see `caps`).
pub fn maxpool_s8<C: Caps>(p: &PoolParams, input: &[i8], out: &mut [i8]) {
    #[cfg(sqz_dsp)]
    if p.input.c.is_multiple_of(4) {
        return maxpool_s8_dsp(p, input, out);
    } else if !C::MAXPOOL_ANY_CHANNELS {
        return;
    }
    maxpool_s8_portable(p, input, out)
}
