//! Where one training step of the default Fashion-MNIST SqueezeNet spends its time, per op.
//!
//! Each op of the step is run alone at the shapes the step gives it, on burn's CPU backend with
//! autodiff: the convolutions' forward pass, their input gradient (input tracked, weights not)
//! and their weight gradient (weights tracked, input not), BatchNorm (+ReLU) forward and
//! backward, the fire modules' concatenation, the max pools, and the optimiser step; then the
//! whole step. A backward time is (forward + backward) minus the forward, less the cost of
//! seeding the backward pass (a sum of the output and its gradient), measured alone. `other` is
//! the whole step less the listed ops: the loss, dropout, ReLU without BatchNorm, autodiff's
//! own bookkeeping, memory.
//!
//! ```text
//! cargo bench -p sqz-host --bench train_profile -- [--layout nchw|nhwc] [--batch 64] [--repeats 5]
//! ```
//! `nchw` is burn's own convolution, BatchNorm, concatenation and pool (the trainer before the
//! channels-last path); `nhwc` is the path `sqz train` takes on the CPU (`host::train::nhwc`).
//! Prints a table (ms per step, share of the step) and one JSON line.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use host::train::adamw::FusedAdamW;
use host::train::model::{SqueezeNet, SqueezeNetConfig, pool_out};
use host::train::nhwc;
use host::train::{cpu_conv, cpu_ops};

/// One convolution of the network: input channels, output channels, kernel, input side.
#[derive(Clone, Copy)]
struct ConvShape {
    cin: usize,
    cout: usize,
    k: usize,
    side: usize,
}

/// The network's convolutions, BatchNorms (channels, side), concatenations (two widths, side)
/// and pools (channels, side), in step order.
struct Layers {
    convs: Vec<ConvShape>,
    norms: Vec<(usize, usize)>,
    concats: Vec<(usize, usize, usize)>,
    pools: Vec<(usize, usize)>,
}

fn layers(cfg: &SqueezeNetConfig) -> Layers {
    let (c1, k, _, _) = cfg.stem_geometry();
    let mut side = cfg.input_size;
    let mut l = Layers {
        convs: vec![ConvShape {
            cin: cfg.in_channels,
            cout: c1,
            k,
            side,
        }],
        norms: vec![(c1, side)],
        concats: vec![],
        pools: vec![(c1, side)],
    };
    side = pool_out(side);
    for (i, w) in cfg.fires().iter().enumerate() {
        for (cin, cout, k) in [
            (w.input, w.squeeze, 1),
            (w.squeeze, w.expand1, 1),
            (w.squeeze, w.expand3, 3),
        ] {
            l.convs.push(ConvShape { cin, cout, k, side });
            l.norms.push((cout, side));
        }
        l.concats.push((w.expand1, w.expand3, side));
        if cfg.pools_after_fire().contains(&i) {
            l.pools.push((w.output(), side));
            side = pool_out(side);
        }
    }
    let last = cfg.fires().last().map_or(c1, |w| w.output());
    l.convs.push(ConvShape {
        cin: last,
        cout: cfg.num_classes,
        k: 1,
        side,
    });
    l
}

fn median_ms(repeats: usize, mut f: impl FnMut()) -> f64 {
    f();
    f();
    let mut t: Vec<f64> = (0..repeats)
        .map(|_| {
            let s = Instant::now();
            f();
            1e3 * s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// Forces a tensor's computation (burn's CPU backend is eager; this also reads one value back).
fn done<const D: usize>(t: Tensor<D>) {
    let _ = t.sum().into_scalar::<f32>();
}

struct Profiler {
    device: Device,
    batch: usize,
    repeats: usize,
    nhwc: bool,
}

impl Profiler {
    fn rand<const D: usize>(&self, shape: [usize; D]) -> Tensor<D> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), &self.device)
    }

    /// Time of seeding a backward pass from an output of `shape`: sum, then its gradient.
    fn seed_ms<const D: usize>(&self, shape: [usize; D]) -> f64 {
        let y = self.rand(shape);
        median_ms(self.repeats, || {
            let _ = y.clone().require_grad().sum().backward();
        })
    }

    /// Forward, input-gradient and weight-gradient times of one convolution.
    fn conv(&self, c: ConvShape) -> [f64; 3] {
        let (b, s) = (self.batch, c.side);
        let w = self.rand([c.cout, c.cin, c.k, c.k]);
        let x4 = self.rand([b, c.cin, s, s]);
        let x2 = self.rand([b * s * s, c.cin]);
        let run = |x_grad: bool, w_grad: bool| {
            let w = if w_grad {
                w.clone().require_grad()
            } else {
                w.clone()
            };
            if self.nhwc {
                let x = if x_grad {
                    x2.clone().require_grad()
                } else {
                    x2.clone()
                };
                cpu_conv::conv(&[x], w, b, s).reshape([b, s, s, c.cout])
            } else {
                let x = if x_grad {
                    x4.clone().require_grad()
                } else {
                    x4.clone()
                };
                let p = c.k / 2;
                conv2d(x, w, None, ConvOptions::new([1, 1], [p, p], [1, 1], 1))
            }
        };
        let fwd = median_ms(self.repeats, || done(run(false, false)));
        let seed = self.seed_ms([b, s, s, c.cout]);
        let dx = median_ms(self.repeats, || {
            let _ = run(true, false).sum().backward();
        });
        let dw = median_ms(self.repeats, || {
            let _ = run(false, true).sum().backward();
        });
        [fwd, (dx - fwd - seed).max(0.0), (dw - fwd - seed).max(0.0)]
    }

    /// BatchNorm + ReLU, forward and backward.
    fn norm(&self, bn: &burn::nn::BatchNorm, c: usize, s: usize) -> [f64; 2] {
        let b = self.batch;
        let (x4, x2) = (self.rand([b, c, s, s]), self.rand([b * s * s, c]));
        let run = |track: bool| -> Tensor<2> {
            if self.nhwc {
                let x = if track {
                    x2.clone().require_grad()
                } else {
                    x2.clone()
                };
                cpu_ops::batch_norm_relu(bn, x, true)
            } else {
                let x = if track {
                    x4.clone().require_grad()
                } else {
                    x4.clone()
                };
                burn::tensor::activation::relu(bn.forward(x)).reshape([b * s * s, c])
            }
        };
        let fwd = median_ms(self.repeats, || done(run(false)));
        let both = median_ms(self.repeats, || {
            let _ = run(true).sum().backward();
        });
        [fwd, (both - fwd - self.seed_ms([b * s * s, c])).max(0.0)]
    }

    /// The fire's concatenation (NCHW only: the channels-last path keeps the two blocks apart).
    fn concat(&self, e1: usize, e3: usize, s: usize) -> f64 {
        if self.nhwc {
            return 0.0;
        }
        let b = self.batch;
        let (a, c) = (self.rand([b, e1, s, s]), self.rand([b, e3, s, s]));
        let run = || Tensor::cat(vec![a.clone().require_grad(), c.clone().require_grad()], 1);
        let both = median_ms(self.repeats, || {
            let _ = run().sum().backward();
        });
        (both - self.seed_ms([b, e1 + e3, s, s])).max(0.0)
    }

    /// The 3x3/2 max pool, forward and backward together.
    fn pool(&self, c: usize, s: usize) -> f64 {
        let b = self.batch;
        let (x4, x2) = (self.rand([b, c, s, s]), self.rand([b * s * s, c]));
        let o = pool_out(s);
        let both = median_ms(self.repeats, || {
            if self.nhwc {
                let _ = cpu_ops::max_pool(x2.clone().require_grad(), b, s)
                    .sum()
                    .backward();
            } else {
                let opts = MaxPoolOptions::new([3, 3])
                    .with_stride([2, 2])
                    .with_ceil_mode(true);
                let _ = max_pool2d(x4.clone().require_grad(), opts).sum().backward();
            }
        });
        (both - self.seed_ms([b * o * o, c])).max(0.0)
    }
}

/// The whole step and the optimiser step alone, as `host train` runs them.
fn whole_step(p: &Profiler, cfg: &SqueezeNetConfig) -> (f64, f64) {
    let mut model = SqueezeNet::new(cfg, &p.device);
    // burn's AdamW before, ours (the same arithmetic in one pass) after.
    let mut optim = if p.nhwc {
        FusedAdamW::init(0.02, 1e-8)
    } else {
        AdamWConfig::new()
            .with_weight_decay(0.02)
            .with_epsilon(1e-8)
            .init()
    };
    let loss_fn = CrossEntropyLossConfig::new()
        .with_smoothing(Some(0.1))
        .init(&p.device);
    let x = p.rand([p.batch, 1, cfg.input_size, cfg.input_size]);
    let labels: Vec<i64> = (0..p.batch as i64).map(|i| i % 10).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [p.batch]), &p.device);
    let grads = |m: &SqueezeNet| {
        let logits = if p.nhwc {
            nhwc::logits(m, x.clone())
        } else {
            m.forward(x.clone())
        };
        let loss = loss_fn.forward(logits, y.clone());
        let _ = loss.clone().into_scalar::<f32>();
        GradientsParams::from_grads(loss.backward(), m)
    };
    let step = median_ms(p.repeats, || {
        let g = grads(&model);
        model = optim.step(1e-3, model.clone(), g);
    });
    let mut opt: Vec<f64> = (0..p.repeats)
        .map(|_| {
            let g = grads(&model);
            let started = Instant::now();
            model = optim.step(1e-3, model.clone(), g);
            1e3 * started.elapsed().as_secs_f64()
        })
        .collect();
    opt.sort_by(f64::total_cmp);
    let opt = opt[opt.len() / 2];
    (step, opt)
}

fn main() {
    host::train::memory::keep_freed_memory();
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let (mut layout, mut batch, mut repeats) = ("nhwc".to_string(), 64usize, 5usize);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--layout" => layout = value,
            "--batch" => batch = value.parse().expect("--batch N"),
            "--repeats" => repeats = value.parse().expect("--repeats N"),
            _ => panic!("unknown flag {flag}; known: --layout --batch --repeats"),
        }
    }
    let p = Profiler {
        device: Device::flex().autodiff(),
        batch,
        repeats,
        nhwc: layout == "nhwc",
    };
    p.device.seed(1);
    let cfg = SqueezeNetConfig::fashion_mnist();
    let l = layers(&cfg);
    let net = SqueezeNet::new(&cfg, &p.device);
    let mut ms: BTreeMap<&str, f64> = BTreeMap::new();
    for c in &l.convs {
        let [f, dx, dw] = p.conv(*c);
        *ms.entry("1 conv forward").or_default() += f;
        *ms.entry("2 conv input gradient").or_default() += dx;
        *ms.entry("3 conv weight gradient").or_default() += dw;
    }
    let bns = std::iter::once(&net.stem).chain(
        net.fires
            .iter()
            .flat_map(|f| [&f.squeeze, &f.expand1, &f.expand3]),
    );
    for (cb, &(c, s)) in bns.zip(&l.norms) {
        let [f, b] = p.norm(cb.bn.as_ref().expect("BatchNorm"), c, s);
        *ms.entry("4 BatchNorm+ReLU forward").or_default() += f;
        *ms.entry("5 BatchNorm+ReLU backward").or_default() += b;
    }
    for &(a, b, s) in &l.concats {
        *ms.entry("6 concat (fwd+bwd)").or_default() += p.concat(a, b, s);
    }
    for &(c, s) in &l.pools {
        *ms.entry("7 max pool (fwd+bwd)").or_default() += p.pool(c, s);
    }
    let (step, opt) = whole_step(&p, &cfg);
    ms.insert("8 optimiser (AdamW)", opt);
    let listed: f64 = ms.values().sum();
    ms.insert("9 other", (step - listed).max(0.0));
    println!(
        "layout {layout}, batch {batch}: {step:.1} ms per step ({:.1} images/s)",
        1e3 * batch as f64 / step
    );
    println!("| op | ms per step | share |");
    println!("|---|---:|---:|");
    for (k, v) in &ms {
        println!("| {} | {v:.1} | {:.0} % |", &k[2..], 100.0 * v / step);
    }
    let json: serde_json::Map<String, serde_json::Value> = ms
        .iter()
        .map(|(k, v)| (k[2..].to_string(), serde_json::json!(v)))
        .collect();
    println!(
        "{}",
        serde_json::json!({"layout": layout, "batch": batch, "step_ms": step, "ops_ms": json})
    );
}
