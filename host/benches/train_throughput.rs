//! Training throughput of the default Fashion-MNIST SqueezeNet.
//!
//! Runs `W` warm-up steps, then `R` repeats of `N` timed training steps at batch `B` (default
//! 64) on the flex CPU backend: forward, cross-entropy with label smoothing 0.1, backward,
//! AdamW step, and reading the loss back (as `host train` does each step). Inputs are uniform
//! random images with random labels, drawn once before timing, so no data loading is measured;
//! the compute does not depend on the values. Prints images/s per repeat and the median, then
//! one JSON line (the last line of stdout) that `tests/bench/train_throughput.sh` reads.
//! Its PyTorch twin is `tests/bench/pytorch_train.py`.
//!
//! ```text
//! cargo bench -p sqz-host --bench train_throughput -- [--warmup 3] [--steps 10] [--repeats 3]
//!                                                     [--batch 64] [--seed 1] [--json FILE]
//! ```
//! `--json FILE` also appends the JSON line to FILE.

use std::io::Write;
use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use host::data::{CLASSES, PIXELS, SIDE};
use host::train::adamw::FusedAdamW;
use host::train::model::{SqueezeNet, SqueezeNetConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The default recipe's optimiser and loss settings (`TrainConfig::preset(Preset::Default)`).
const LR: f64 = 0.004;
const WEIGHT_DECAY: f32 = 0.02;
const LABEL_SMOOTHING: f32 = 0.1;
/// Distinct random batches cycled through, so no step reuses the previous step's input.
const POOL: usize = 4;

#[derive(Debug, Clone)]
struct Args {
    warmup: usize,
    steps: usize,
    repeats: usize,
    batch: usize,
    seed: u64,
    nchw: bool,
    json: Option<std::path::PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        warmup: 3,
        steps: 10,
        repeats: 3,
        batch: 64,
        seed: 1,
        nchw: false,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        // `cargo bench` passes `--bench` to every harness-less target; ignore it.
        if flag == "--bench" {
            continue;
        }
        if flag == "--nchw" {
            a.nchw = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag} needs a whole number, got {v:?}"))
        };
        match flag.as_str() {
            "--warmup" => a.warmup = number(&value)?,
            "--steps" => a.steps = number(&value)?,
            "--repeats" => a.repeats = number(&value)?,
            "--batch" => a.batch = number(&value)?,
            "--seed" => a.seed = number(&value)? as u64,
            "--json" => a.json = Some(value.into()),
            _ => {
                return Err(format!(
                    "unknown flag {flag}; known: --warmup --steps --repeats --batch --seed --json"
                ));
            }
        }
    }
    if a.steps == 0 || a.repeats == 0 || a.batch == 0 {
        return Err("--steps, --repeats and --batch must be at least 1".into());
    }
    Ok(a)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

fn main() {
    host::train::memory::keep_freed_memory();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("train_throughput: {e}");
            std::process::exit(2);
        }
    };
    let device = Device::flex().autodiff();
    device.seed(args.seed);
    let cfg = SqueezeNetConfig::fashion_mnist();
    let mut model = SqueezeNet::new(&cfg, &device);
    let params = model.trainable_params();
    let mut optim = FusedAdamW::init(WEIGHT_DECAY, 1e-8);
    let loss_fn = CrossEntropyLossConfig::new()
        .with_smoothing(Some(LABEL_SMOOTHING))
        .init(&device);

    // Host-side batches; each step turns one into tensors, as `make_batch` does in training.
    let mut rng = StdRng::seed_from_u64(args.seed);
    let batches: Vec<(Vec<f32>, Vec<i64>)> = (0..POOL)
        .map(|_| {
            let x = (0..args.batch * PIXELS)
                .map(|_| rng.random::<f32>())
                .collect();
            let y = (0..args.batch)
                .map(|_| rng.random_range(0..CLASSES as i64))
                .collect();
            (x, y)
        })
        .collect();

    let mut step = |i: usize, model: SqueezeNet| -> (SqueezeNet, f32) {
        let (x, y) = &batches[i % POOL];
        let x = Tensor::<4>::from_data(
            TensorData::new(x.clone(), [args.batch, 1, SIDE, SIDE]),
            &device,
        );
        let y = Tensor::<1, Int>::from_data(TensorData::new(y.clone(), [args.batch]), &device);
        let logits = if args.nchw {
            model.forward(x)
        } else {
            host::train::nhwc::logits(&model, x)
        };
        let loss = loss_fn.forward(logits, y);
        let value = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        (optim.step(LR, model, grads), value)
    };

    eprintln!(
        "burn flex+autodiff, SqueezeNet {:?} fashion_mnist, {params} parameters, batch {}, \
         {} warm-up + {} x {} timed steps, {} logical CPUs",
        cfg.version,
        args.batch,
        args.warmup,
        args.repeats,
        args.steps,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut last_loss = f32::NAN;
    let mut i = 0;
    for _ in 0..args.warmup {
        (model, last_loss) = step(i, model);
        i += 1;
    }
    let mut rates = Vec::with_capacity(args.repeats);
    for r in 0..args.repeats {
        let started = Instant::now();
        for _ in 0..args.steps {
            (model, last_loss) = step(i, model);
            i += 1;
        }
        let secs = started.elapsed().as_secs_f64();
        let rate = (args.steps * args.batch) as f64 / secs;
        eprintln!(
            "  repeat {}/{}: {:.1} images/s ({:.1} ms/step)",
            r + 1,
            args.repeats,
            rate,
            1e3 * secs / args.steps as f64
        );
        rates.push(rate);
    }
    if !last_loss.is_finite() {
        eprintln!("train_throughput: loss is {last_loss}; the measured steps diverged");
        std::process::exit(1);
    }
    let med = median(&rates);
    println!(
        "burn (flex, autodiff): {med:.1} images/s median at batch {} ({params} parameters)",
        args.batch
    );
    let json = serde_json::json!({
        "impl": "burn",
        "variant": "flex+autodiff",
        "batch": args.batch,
        "warmup": args.warmup,
        "steps": args.steps,
        "repeats": args.repeats,
        "images_per_s": med,
        "images_per_s_repeats": rates,
        "params": params,
        "final_loss": last_loss,
        "logical_cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
    });
    println!("{json}");
    if let Some(path) = &args.json {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| writeln!(f, "{json}"));
        if let Err(e) = written {
            eprintln!(
                "train_throughput: while appending to {}: {e}",
                path.display()
            );
            std::process::exit(1);
        }
    }
}
