//! The SqueezeNet forward pass in channels-last layout for training on CPUs.
//!
//! Same modules, same parameters, same function as [`SqueezeNet::forward`]; only the layout of
//! the activations differs. Activations live as `[pixels, channels]` matrices (pixels = batch x
//! height x width, in that order), so every 1x1 convolution is one matrix product over the whole
//! batch and a 3x3 convolution is one product over its im2col matrix. burn's NCHW convolution
//! runs one small product per image instead (9 output pixels in the last stage), far from what
//! the CPU can do; here each product is tall and the backward passes are products too. The ops
//! burn lacks for this layout are in [`super::cpu_conv`] (the convolution) and
//! [`super::cpu_ops`] (BatchNorm+ReLU, im2col, the max pool), dropout in [`super::dropout`].

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
#[cfg(test)]
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor, activation::relu};

use super::model::{ConvBn, Fire, SqueezeNet};

/// Activations of a batch: column blocks of one `[batch * side * side, channels]` matrix, rows
/// in (image, row, column) order. A fire module's output stays as its two expand blocks: the
/// layers after it (1x1 convs, pools, dropout) work block by block, so no concatenation (and
/// no slicing of its gradient) is ever made.
#[derive(Clone)]
struct Act {
    parts: Vec<Tensor<2>>,
    batch: usize,
    side: usize,
}

impl Act {
    fn with(&self, parts: Vec<Tensor<2>>) -> Act {
        Act {
            parts,
            batch: self.batch,
            side: self.side,
        }
    }

    /// The whole matrix (one block: no copy).
    fn joined(&self) -> Tensor<2> {
        match self.parts.as_slice() {
            [one] => one.clone(),
            parts => Tensor::cat(parts.to_vec(), 1),
        }
    }

    #[cfg(test)]
    fn image(&self) -> Tensor<4> {
        let x = self.joined();
        let c = x.dims()[1];
        x.reshape([self.batch, self.side, self.side, c])
    }
}

/// im2col of a stride-1, `pad`-padded `k x k` window: `[pixels, k * k * channels]`, from burn's
/// own slicing: the reference twin of [`super::cpu_ops::im2col`].
#[cfg(test)]
fn im2col(a: &Act, k: usize, pad: usize) -> Tensor<2> {
    let img = a.image();
    let c = img.dims()[3];
    let padded = img.pad(
        [(0, 0), (pad, pad), (pad, pad), (0, 0)],
        PadMode::Constant(0.0),
    );
    let out = a.side + 2 * pad + 1 - k;
    let taps: Vec<Tensor<4>> = (0..k)
        .flat_map(|dy| (0..k).map(move |dx| (dy, dx)))
        .map(|(dy, dx)| {
            padded
                .clone()
                .slice([0..a.batch, dy..dy + out, dx..dx + out, 0..c])
        })
        .collect();
    Tensor::cat(taps, 3).reshape([a.batch * out * out, k * k * c])
}

/// A stride-1, same-size convolution (padding `k / 2`): one op ([`super::cpu_conv`]); a 1x1
/// conv takes the blocks as they are, a larger kernel their join.
fn conv(conv: &Conv2d, a: &Act) -> Tensor<2> {
    let [_, _, k, _] = conv.weight.dims();
    let joined;
    let parts = if k == 1 {
        a.parts.as_slice()
    } else {
        joined = [a.joined()];
        &joined[..]
    };
    let y = super::cpu_conv::conv(parts, conv.weight.val(), a.batch, a.side);
    match &conv.bias {
        Some(b) => y + b.val().unsqueeze_dim(0),
        None => y,
    }
}

/// A stride-1 convolution, then BatchNorm, then ReLU if `relu`.
fn conv_bn(cb: &ConvBn, a: &Act, relu_after: bool) -> Tensor<2> {
    let y = conv(&cb.conv, a);
    match &cb.bn {
        Some(bn) => super::cpu_ops::batch_norm_relu(bn, y, relu_after),
        None if relu_after => relu(y),
        None => y,
    }
}

fn fire(f: &Fire, a: &Act) -> Act {
    let s = a.with(vec![conv_bn(&f.squeeze, a, true)]);
    let e1 = conv_bn(&f.expand1, &s, true);
    let e3 = conv_bn(&f.expand3, &s, true);
    let out = a.with(vec![e1, e3]);
    if let Some(conv) = &f.bypass_conv {
        a.with(vec![out.joined() + conv_bn(conv, a, false)])
    } else if f.identity_bypass {
        a.with(vec![out.joined() + a.joined()])
    } else {
        out
    }
}

/// The 3x3/2 ceil-mode max pool, block by block.
fn max_pool(a: &Act) -> Act {
    let parts = a
        .parts
        .iter()
        .map(|p| super::cpu_ops::max_pool(p.clone(), a.batch, a.side));
    Act {
        parts: parts.collect(),
        batch: a.batch,
        side: super::model::pool_out(a.side),
    }
}

/// Logits of `input` as [`SqueezeNet::forward`] computes them, the fastest way this device has:
/// channels-last on burn's CPU backend when the stem keeps the image size (the small stem),
/// burn's NCHW convolutions otherwise (the GPU backends, the paper's strided stems).
pub fn logits(net: &SqueezeNet, input: Tensor<4>) -> Tensor<2> {
    if runs_channels_last(net, &input) {
        forward(net, input)
    } else {
        net.forward(input)
    }
}

/// Whether [`logits`] takes the channels-last path for this network and input.
pub fn runs_channels_last(net: &SqueezeNet, input: &Tensor<4>) -> bool {
    let [_, _, k, _] = net.stem.conv.weight.dims();
    let p = k / 2;
    input.device().without_autodiff() == Device::flex()
        && net.stem.conv.stride == [1, 1]
        && net.stem.conv.padding == PaddingConfig2d::Explicit(p, p, p, p)
}

/// Logits of a `[batch, channels, side, side]` batch, computed channels-last.
///
/// Supports the small (3x3/1, padding 1) stem only; other stems use [`SqueezeNet::forward`].
pub fn forward(net: &SqueezeNet, input: Tensor<4>) -> Tensor<2> {
    let [b, c, h, _] = input.dims();
    let a = Act {
        parts: vec![input.permute([0, 2, 3, 1]).reshape([b * h * h, c])],
        batch: b,
        side: h,
    };
    let mut a = max_pool(&a.with(vec![conv_bn(&net.stem, &a, true)]));
    for (i, f) in net.fires.iter().enumerate() {
        a = fire(f, &a);
        if net.pools_after.contains(&i) {
            a = max_pool(&a);
        }
    }
    let dropped = a.with(
        a.parts
            .iter()
            .map(|p| super::dropout::dropout(&net.dropout, p.clone()))
            .collect(),
    );
    let y = relu(conv(&net.classifier, &dropped));
    let classes = y.dims()[1];
    y.reshape([b, a.side * a.side, classes])
        .mean_dim(1)
        .reshape([b, classes])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    #[test]
    fn fast_im2col_and_its_gradient_match_the_slicing_twin() {
        let device = Device::flex().autodiff();
        device.seed(3);
        let (batch, side, c) = (2, 5, 3);
        let x = Tensor::<2>::random([batch * side * side, c], Distribution::Default, &device)
            .require_grad();
        let a = Act {
            parts: vec![x.clone()],
            batch,
            side,
        };
        let want = im2col(&a, 3, 1);
        let got = super::super::cpu_ops::im2col(x.clone(), batch, side, 3);
        assert_eq!(max_abs_diff(want.clone(), got.clone()), 0.0);
        let weights = Tensor::<2>::random(want.dims(), Distribution::Default, &device);
        let g_want = (want * weights.clone()).sum().backward();
        let g_got = (got * weights).sum().backward();
        let (gw, gg) = (x.grad(&g_want).unwrap(), x.grad(&g_got).unwrap());
        assert!(max_abs_diff(gw, gg) <= 1e-5);
    }
}
