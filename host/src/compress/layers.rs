//! The network's convs as the compression stages see them: their names, their weights read and
//! written in place, the BatchNorm-free twin of a folded network, counts and sparsity.

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor, TensorData};

use super::fold::FloatNet;
use crate::train::model::{SqueezeNet, SqueezeNetConfig};

/// Names of the convs in [`convs_mut`] order for the network `cfg` describes: `stem`,
/// `fire2.squeeze`, `fire2.expand1x1`, `fire2.expand3x3`, `fire2.bypass` (complex bypass only),
/// ..., `classifier`. Fires are numbered from 2, as in the SqueezeNet paper.
pub fn conv_names(cfg: &SqueezeNetConfig) -> Vec<String> {
    let mut v = vec!["stem".to_string()];
    for (j, w) in cfg.fires().iter().enumerate() {
        let n = j + 2;
        v.extend(["squeeze", "expand1x1", "expand3x3"].map(|p| format!("fire{n}.{p}")));
        if cfg.fire_bypass(w) == crate::train::model::FireBypass::Conv {
            v.push(format!("fire{n}.bypass"));
        }
    }
    v.push("classifier".to_string());
    v
}

/// Every conv of the network, in [`FloatNet::convs`] order.
pub fn convs_mut(net: &mut SqueezeNet) -> Vec<&mut Conv2d> {
    let mut v = vec![&mut net.stem.conv];
    for f in &mut net.fires {
        v.push(&mut f.squeeze.conv);
        v.push(&mut f.expand1.conv);
        v.push(&mut f.expand3.conv);
        if let Some(b) = &mut f.bypass_conv {
            v.push(&mut b.conv);
        }
    }
    v.push(&mut net.classifier);
    v
}

pub fn convs(net: &SqueezeNet) -> Vec<&Conv2d> {
    let mut v = vec![&net.stem.conv];
    for f in &net.fires {
        v.extend([&f.squeeze.conv, &f.expand1.conv, &f.expand3.conv]);
        if let Some(b) = &f.bypass_conv {
            v.push(&b.conv);
        }
    }
    v.push(&net.classifier);
    v
}

pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

pub fn set_weight(conv: &mut Conv2d, w: Vec<f32>, device: &Device) {
    let dims = conv.weight.val().dims();
    let t = Tensor::<4>::from_data(TensorData::new(w, dims), device);
    // Trainable on an autodiff device; a plain one (evaluation only) has no gradients.
    let t = if device.is_autodiff() {
        t.require_grad()
    } else {
        t
    };
    let p = std::mem::replace(
        &mut conv.weight,
        Param::from_tensor(Tensor::zeros([1; 4], device)),
    );
    conv.weight = p.map(|_| t);
}

/// The folded network as a BatchNorm-free burn network of the same shape (for centroid
/// fine-tuning, which needs the folded weights to be the trained ones).
pub fn unfolded(float: &FloatNet, cfg: &SqueezeNetConfig, device: &Device) -> SqueezeNet {
    let plain = SqueezeNetConfig {
        batch_norm: false,
        ..cfg.clone()
    };
    let mut net = SqueezeNet::new(&plain, device);
    for (conv, f) in convs_mut(&mut net).into_iter().zip(float.convs()) {
        set_weight(conv, f.weight.clone(), device);
        let b = Tensor::<1>::from_data(TensorData::new(f.bias.clone(), [f.cout]), device)
            .require_grad();
        conv.bias = Some(Param::from_tensor(b));
    }
    net
}

/// Weights of each conv of `net`, in network order.
pub fn conv_weight_counts(net: &SqueezeNet) -> Vec<usize> {
    convs(net)
        .iter()
        .map(|c| c.weight.val().dims().iter().product())
        .collect()
}

/// Fraction of zero conv weights.
pub fn sparsity_of(net: &SqueezeNet) -> f64 {
    let (mut zero, mut all) = (0usize, 0usize);
    for c in convs(net) {
        let w = values(c.weight.val());
        zero += w.iter().filter(|x| **x == 0.0).count();
        all += w.len();
    }
    zero as f64 / all.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_names_follow_the_network_for_every_bypass() {
        use crate::train::model::Bypass;
        for bypass in [Bypass::None, Bypass::Simple, Bypass::Complex] {
            let cfg = SqueezeNetConfig {
                bypass,
                ..SqueezeNetConfig::fashion_mnist()
            };
            let names = conv_names(&cfg);
            let net = SqueezeNet::new(&cfg, &Device::flex());
            assert_eq!(names.len(), convs(&net).len(), "{bypass:?}");
            let bypasses = names.iter().filter(|n| n.ends_with(".bypass")).count();
            let convs_with = net.fires.iter().filter(|f| f.bypass_conv.is_some()).count();
            assert_eq!(bypasses, convs_with, "{bypass:?}");
        }
    }
}
