//! Host helpers for the firmware, outside the root workspace (the host CLI `sqz device ...`
//! wraps the same `host/src/link/`). Usage:
//!
//! ```text
//! sqz-fw-tools blob OUT [SEED]                       write shared's example blob (16x16x1)
//! sqz-fw-tools blob28 OUT [SEED]                     the same network for 28x28x1 input
//! sqz-fw-tools blob-v11 OUT [SEED]                   shared's SqueezeNet v1.1 28x28 shape, random
//!                                                    Huffman-sparse-codebook weights (~300 KB)
//! sqz-fw-tools eval ELF BLOB [N] [DATA_DIR]          N test images through QEMU vs host kernels:
//!                                                    Fashion-MNIST from DATA_DIR when the model
//!                                                    takes 28x28x1, else synthetic images
//! sqz-fw-tools eval-port TTY BLOB [N]                the same through a serial port (a board, or QEMU -serial pty)
//! sqz-fw-tools soak ELF BLOB [FRAMES] [PER_MILLE] [SEED]   corrupted-frame soak in QEMU
//! sqz-fw-tools corrupt-elf ELF BLOB OUT              flip one payload byte of the blob inside the ELF
//! sqz-fw-tools expect-refusal ELF                    boot ELF in QEMU, require ModelInvalid to hello
//! ```

// The tools use part of the link; its other re-exports and items stay unused here.
#[allow(dead_code, unused_imports)]
#[path = "../../../host/src/link/mod.rs"]
mod device;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail, ensure};
use device::{DeviceLink, Reply, SplitMix};
use shared::protocol::ErrorCode;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> Result<T> {
    match args.get(i) {
        None => Ok(default),
        Some(s) => s.parse().map_err(|_| anyhow::anyhow!("bad argument {s:?}")),
    }
}

fn run() -> Result<bool> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let need = |n: usize| -> Result<()> {
        ensure!(
            args.len() >= n,
            "missing arguments; see the usage in firmware/tools/src/main.rs"
        );
        Ok(())
    };
    match args.first().map(String::as_str) {
        Some("blob") => {
            need(2)?;
            let blob = shared::testkit::example::blob(arg(&args, 2, 1u64)?);
            std::fs::write(&args[1], &blob)
                .with_context(|| format!("while writing {}", args[1]))?;
            println!("wrote {} ({} B)", args[1], blob.len());
            Ok(true)
        }
        Some("blob28") => {
            need(2)?;
            let blob = example_28(arg(&args, 2, 1u64)?)?;
            std::fs::write(&args[1], &blob)
                .with_context(|| format!("while writing {}", args[1]))?;
            println!("wrote {} ({} B)", args[1], blob.len());
            Ok(true)
        }
        Some("blob-v11") => {
            need(2)?;
            let enc = shared::testkit::example::Enc::HuffSparseCodebook;
            let blob = shared::testkit::squeezenet::blob(arg(&args, 2, 1u64)?, 10, enc);
            std::fs::write(&args[1], &blob)
                .with_context(|| format!("while writing {}", args[1]))?;
            println!("wrote {} ({} B)", args[1], blob.len());
            Ok(true)
        }
        Some("eval") => {
            need(3)?;
            let link = DeviceLink::qemu(Path::new(&args[1]))?;
            let data = args.get(4).map(Path::new);
            eval_on(link, Path::new(&args[2]), arg(&args, 3, 200usize)?, data)
        }
        Some("eval-port") => {
            need(3)?;
            let link = DeviceLink::serial(Path::new(&args[1]), 115_200)?;
            eval_on(link, Path::new(&args[2]), arg(&args, 3, 200usize)?, None)
        }
        Some("soak") => {
            need(3)?;
            soak(
                Path::new(&args[1]),
                Path::new(&args[2]),
                arg(&args, 3, 2000usize)?,
                arg(&args, 4, 10u32)?,
                arg(&args, 5, 1u64)?,
            )
        }
        Some("corrupt-elf") => {
            need(4)?;
            corrupt_elf(
                Path::new(&args[1]),
                Path::new(&args[2]),
                Path::new(&args[3]),
            )
        }
        Some("expect-refusal") => {
            need(2)?;
            expect_refusal(Path::new(&args[1]))
        }
        _ => bail!("usage: see firmware/tools/src/main.rs"),
    }
}

/// Deterministic synthetic images: blobs of light on a dark background.
fn images(n: usize, len: usize, width: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = SplitMix(seed);
    (0..n)
        .map(|_| {
            let (cx, cy, r) = (
                rng.below(width),
                rng.below(len / width),
                2 + rng.below(width / 2),
            );
            let base = rng.below(40) as u8;
            (0..len)
                .map(|i| {
                    let (x, y) = (i % width, i / width);
                    let d = x.abs_diff(cx).pow(2) + y.abs_diff(cy).pow(2);
                    if d <= r * r {
                        255 - (d * 200 / (r * r).max(1)) as u8
                    } else {
                        base + rng.below(16) as u8
                    }
                })
                .collect()
        })
        .collect()
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("while reading {}", path.display()))
}

/// shared's example network (random weights) with a 28x28x1 input: the layers are size-agnostic
/// except the global average pool's multiplier, re-derived for the 7x7 it now averages.
fn example_28(seed: u64) -> Result<Vec<u8>> {
    use shared::format::{Dims, LayerDesc, ModelDesc};
    use shared::testkit::example;
    let e = example::build(seed);
    let mut layers = example::layers(&e);
    let classifier_scale = e.convs.last().context("example has convs")?.out_quant.scale;
    if let Some(LayerDesc::GlobalAvgPool(gap)) = layers.last_mut() {
        let m = shared::quant::pool_multiplier(classifier_scale, 7 * 7, gap.out_quant.scale);
        gap.multiplier = shared::quant::multiplier(m).context("pool multiplier out of range")?;
    }
    let desc = ModelDesc {
        model_id: seed ^ 0x28_28,
        input: Dims { h: 28, w: 28, c: 1 },
        input_quant: example::INPUT_QUANT,
        num_classes: 10,
        layers: &layers,
    };
    shared::format::encode(&desc).map_err(|e| anyhow::anyhow!("28x28 example does not encode: {e}"))
}

/// Reads an IDX file (optionally gzipped): `(payload, dims)`.
fn read_idx(path: &Path) -> Result<(Vec<u8>, Vec<usize>)> {
    let raw = read(path)?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&raw[..]), &mut out)
            .with_context(|| format!("while decompressing {}", path.display()))?;
        out
    } else {
        raw
    };
    ensure!(
        bytes.len() >= 4 && bytes[..3] == [0, 0, 8],
        "{} is not an IDX u8 file",
        path.display()
    );
    let n_dims = bytes[3] as usize;
    let dims: Vec<usize> = (0..n_dims)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .collect();
    let start = 4 + 4 * n_dims;
    ensure!(
        bytes.len() == start + dims.iter().product::<usize>(),
        "{}: size does not match its header",
        path.display()
    );
    Ok((bytes[start..].to_vec(), dims))
}

/// The Fashion-MNIST test split in `dir` (`t10k-*-idx*-ubyte[.gz]`): `(images, labels)`.
fn fashion_mnist_test(dir: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    let find = |stem: &str| -> Result<std::path::PathBuf> {
        [format!("{stem}.gz"), stem.to_owned()]
            .into_iter()
            .map(|f| dir.join(f))
            .find(|p| p.is_file())
            .with_context(|| format!("no {stem}[.gz] in {}", dir.display()))
    };
    let (images, dims) = read_idx(&find("t10k-images-idx3-ubyte")?)?;
    let (labels, _) = read_idx(&find("t10k-labels-idx1-ubyte")?)?;
    ensure!(
        dims[1..] == [28, 28] && dims[0] == labels.len(),
        "unexpected Fashion-MNIST shapes {dims:?}"
    );
    Ok((images, labels))
}

fn eval_on(mut link: DeviceLink, blob_path: &Path, n: usize, data: Option<&Path>) -> Result<bool> {
    let blob = read(blob_path)?;
    let info = link.info()?;
    println!("device: {info:?}");
    device::check_same_model(&info, &blob)?;
    let len = info.input_len();
    let report = match data {
        Some(dir) if info.input_dims == [28, 28, 1] => {
            let (images, labels) = fashion_mnist_test(dir)?;
            let n = n.min(labels.len());
            println!(
                "images: the first {n} Fashion-MNIST test images from {}",
                dir.display()
            );
            device::eval(
                &mut link,
                images.chunks(len).take(n),
                Some(&labels[..n]),
                device::host_reference(&blob)?,
                |_| {},
            )?
        }
        _ => {
            println!("images: {n} synthetic {:?} images", info.input_dims);
            let imgs = images(n, len, info.input_dims[1] as usize, 42);
            device::eval(
                &mut link,
                imgs.iter().map(Vec::as_slice),
                None,
                device::host_reference(&blob)?,
                |_| {},
            )?
        }
    };
    println!("eval: {report}");
    Ok(report.logits_match == report.images && report.images == n)
}

fn soak(elf: &Path, blob_path: &Path, frames: usize, per_mille: u32, seed: u64) -> Result<bool> {
    let blob = read(blob_path)?;
    // No -icount: the soak checks answers, not costs, and runs several times faster without it.
    let options = device::QemuOptions {
        icount: false,
        ..Default::default()
    };
    let mut link = DeviceLink::qemu_with(elf, &options)?;
    link.set_timeout(std::time::Duration::from_secs(10));
    let info = link.info()?;
    let imgs = images(16, info.input_len(), info.input_dims[1] as usize, 7);
    let views: Vec<&[u8]> = imgs.iter().map(Vec::as_slice).collect();
    let start = std::time::Instant::now();
    let report = device::soak(
        &mut link,
        &views,
        frames,
        per_mille,
        seed,
        device::host_reference(&blob)?,
        |_| {},
    )?;
    println!("soak: {report:?} in {:.1} s", start.elapsed().as_secs_f64());
    // The device must still be healthy afterwards.
    let after = link.info()?;
    println!(
        "soak: device still answers; stack HWM {} B",
        after.stack_hwm
    );
    Ok(report.passed())
}

fn corrupt_elf(elf: &Path, blob_path: &Path, out: &Path) -> Result<bool> {
    let mut image = read(elf)?;
    let blob = read(blob_path)?;
    let at = image
        .windows(blob.len())
        .position(|w| w == blob.as_slice())
        .with_context(|| format!("{} does not embed {}", elf.display(), blob_path.display()))?;
    // One bit in the middle of the payload: the header stays plausible, the CRC catches it.
    image[at + blob.len() / 2 + 12] ^= 0x10;
    std::fs::write(out, &image).with_context(|| format!("while writing {}", out.display()))?;
    println!(
        "corrupted byte {} of the blob at ELF offset {at:#x} -> {}",
        blob.len() / 2 + 12,
        out.display()
    );
    Ok(true)
}

fn expect_refusal(elf: &Path) -> Result<bool> {
    let mut link = DeviceLink::qemu(elf)?;
    let hello = link.request(&shared::protocol::Request::Hello)?;
    let classify = link.request(&shared::protocol::Request::Classify {
        seq: 1,
        pixels: &[0; 16 * 16],
    })?;
    println!("hello -> {hello:?}\nclassify -> {classify:?}");
    let refused = |r: &Reply| {
        matches!(
            r,
            Reply::Error {
                code: ErrorCode::ModelInvalid,
                ..
            }
        )
    };
    Ok(refused(&hello) && refused(&classify))
}
