//! Will it fit the part: the firmware's flash and RAM for a model against a board, before
//! training (from the untrained network, stored dense) and after compression (the blob).
//!
//! Flash = the firmware's code (measured in `firmware/BENCHMARKS.md`: the serve build carries
//! only the decoders, drivers and layer kinds its blob uses, 28.5 KB to 34.2 KB for the
//! SqueezeNets measured; [`FIRMWARE_CODE`] reserves 36 KB) + the
//! blob. RAM = the arena (from the blob's plan) + the input buffer + the firmware's other
//! statics ([`FIRMWARE_STATIC`]) + the stack ([`STACK_RESERVE`]; its measured high-water mark
//! is 13.4 KB to 14.0 KB). The serial link caps a served model at `MAX_CLASSES` logits; images
//! too large for one frame travel in parts.

use anyhow::{Result, bail};
use burn::tensor::Device;
use shared::protocol::{MAX_CLASSES, fits_one_frame};

use super::fold::FloatNet;
use super::quantize::{calibrate, dense_plan, quantize};
use crate::data::Split;
use crate::train::model::{SqueezeNet, SqueezeNetConfig, Stem};

/// Flash the firmware's code takes besides the blob: measured 28.5 KB with the shipped blob
/// (zero-skipping driver alone), 33.7 KB with its fast-decode twin, 34.2 KB for a
/// Huffman-sparse SqueezeNet v1.1 (43 KB for shared's example network, which uses every
/// decoder and layer kind: not a pipeline model).
pub const FIRMWARE_CODE: usize = 36 * 1024;
/// The firmware's static RAM besides the arena and the input buffer (measured 2.5 KB).
pub const FIRMWARE_STATIC: usize = 2_560;
/// Stack reserved (measured high-water mark 13.4 KB to 14.0 KB).
pub const STACK_RESERVE: usize = 16 * 1024;
/// The best compression of a dense int8 network measured here (the shipped model's smallest
/// coding is 9.3 % of its dense int8 weights): a network whose blob would not fit even at
/// [`BEST_RATIO`] of dense is refused before training.
pub const BEST_RATIO: f64 = 0.08;

/// What the shipped recipe reaches: its fast-decode blob is 11.8 % of its dense int8 weights.
pub const EXPECTED_RATIO: f64 = 0.12;

/// Boards the firmware is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Board {
    /// QEMU's MPS2 AN386 (Cortex-M4F), cut to 512 KB flash and 128 KB RAM like the Nucleo.
    Mps2An386,
    /// QEMU's MPS2 AN385 (Cortex-M3), the same map.
    Mps2An385,
    /// ST Nucleo-F411RE: STM32F411RE, 512 KB flash, 128 KB RAM.
    NucleoF411re,
}

/// The flash and RAM a model may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// What the numbers belong to.
    pub name: String,
    /// Flash, bytes.
    pub flash: usize,
    /// RAM, bytes.
    pub ram: usize,
}

impl Budget {
    /// A board's budget, with `--flash-kb` / `--ram-kb` overriding (or alone: a custom part).
    pub fn new(board: Option<Board>, flash_kb: Option<usize>, ram_kb: Option<usize>) -> Budget {
        let (name, flash, ram) = match board {
            Some(Board::Mps2An386) => ("mps2-an386", 512, 128),
            Some(Board::Mps2An385) => ("mps2-an385", 512, 128),
            Some(Board::NucleoF411re) | None => ("nucleo-f411re", 512, 128),
        };
        let custom = flash_kb.is_some() || ram_kb.is_some();
        Budget {
            name: if custom {
                format!("{name} with --flash-kb/--ram-kb")
            } else {
                name.to_string()
            },
            flash: flash_kb.unwrap_or(flash) * 1024,
            ram: ram_kb.unwrap_or(ram) * 1024,
        }
    }
}

/// What a model needs on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Blob bytes.
    pub blob: usize,
    /// Arena bytes.
    pub arena: usize,
    /// Input bytes (h * w * c).
    pub input: usize,
    /// Classes.
    pub classes: usize,
}

impl Footprint {
    /// Reads a blob's needs.
    pub fn of_blob(blob: &[u8]) -> Result<Footprint> {
        let m =
            shared::Model::from_bytes(blob).map_err(|e| anyhow::anyhow!("invalid blob: {e}"))?;
        Ok(Footprint {
            blob: blob.len(),
            arena: m.arena_len(),
            input: m.input_len(),
            classes: m.num_classes(),
        })
    }

    /// Flash: code + blob.
    pub fn flash(&self) -> usize {
        FIRMWARE_CODE + self.blob
    }

    /// RAM: arena + input + other statics + stack.
    pub fn ram(&self) -> usize {
        self.arena + self.input + FIRMWARE_STATIC + STACK_RESERVE
    }

    /// True when the logits fit one result frame (images of any size travel in parts).
    pub fn servable(&self) -> bool {
        self.classes <= MAX_CLASSES
    }

    /// The report lines (Markdown table rows) against `budget`.
    pub fn table(&self, budget: &Budget) -> String {
        let kb = |b: usize| format!("{:.1} KB", b as f64 / 1024.0);
        let verdict = |need: usize, have: usize| if need <= have { "fits" } else { "does NOT fit" };
        format!(
            "| {} | need | have | |\n|---|---:|---:|---|\n\
             | flash (code {} + blob {}) | {} | {} | {} |\n\
             | RAM (arena {} + input {} + statics {} + stack {}) | {} | {} | {} |\n\
             | serial link (<= {MAX_CLASSES} classes) | {} B image, {} classes | {} | {} |\n",
            budget.name,
            kb(FIRMWARE_CODE),
            kb(self.blob),
            kb(self.flash()),
            kb(budget.flash),
            verdict(self.flash(), budget.flash),
            kb(self.arena),
            kb(self.input),
            kb(FIRMWARE_STATIC),
            kb(STACK_RESERVE),
            kb(self.ram()),
            kb(budget.ram),
            verdict(self.ram(), budget.ram),
            self.input,
            self.classes,
            if fits_one_frame(self.input) {
                "one frame per image"
            } else {
                "image sent in parts"
            },
            if self.servable() {
                "served"
            } else {
                "too many classes to serve (the kernels still run it)"
            },
        )
    }

    /// An error saying what does not fit, if anything.
    pub fn check(&self, budget: &Budget) -> Result<()> {
        if self.flash() > budget.flash || self.ram() > budget.ram {
            bail!(
                "the model does not fit {}:\n{}",
                budget.name,
                self.table(budget)
            );
        }
        Ok(())
    }
}

/// Before training: the network `cfg` makes, quantised dense (calibrated on a few of `images`),
/// against `budget`. Refuses a network whose arena cannot fit, or whose blob would not fit even
/// compressed to [`BEST_RATIO`] of dense; returns the report otherwise.
pub fn precheck(cfg: &SqueezeNetConfig, images: &Split, budget: &Budget) -> Result<String> {
    let net = SqueezeNet::new(cfg, &Device::flex());
    let float = FloatNet::from_burn(&net, cfg);
    let few = images.slice(0..images.len().min(8));
    let ranges = calibrate(&float, &few, few.len());
    let dense = quantize(&float, &ranges, &dense_plan)?.blob(0)?;
    let fp = Footprint::of_blob(&dense)?;
    let best = Footprint {
        blob: (fp.blob as f64 * BEST_RATIO) as usize,
        ..fp
    };
    let expected = Footprint {
        blob: (fp.blob as f64 * EXPECTED_RATIO) as usize,
        ..fp
    };
    let report = format!(
        "fit before training: the blob estimated at {:.0} % of the {} dense int8 bytes (what the \
         shipped recipe reaches; the blob after compression is measured again):\n{}",
        100.0 * EXPECTED_RATIO,
        fp.blob,
        expected.table(budget)
    );
    if best.ram() > budget.ram {
        let hint = match cfg.stem {
            Stem::Small => "try a smaller --input-size, or the stride-2 stem (--stem paper)",
            Stem::Paper => "try a smaller --input-size",
        };
        bail!(
            "this network's activations cannot fit {} whatever the compression:\n{report}{hint}",
            budget.name
        );
    }
    if best.flash() > budget.flash {
        bail!(
            "this network's weights would not fit {} even compressed to {:.0} % of dense int8:\n\
             {report}try a narrower network (--base-e, --incr-e) or a part with more flash",
            budget.name,
            100.0 * BEST_RATIO
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_of_boards_and_custom_parts() {
        let nucleo = Budget::new(Some(Board::NucleoF411re), None, None);
        assert_eq!((nucleo.flash, nucleo.ram), (512 * 1024, 128 * 1024));
        let custom = Budget::new(Some(Board::Mps2An386), Some(256), Some(64));
        assert_eq!((custom.flash, custom.ram), (256 * 1024, 64 * 1024));
        assert!(custom.name.contains("--flash-kb"), "{}", custom.name);
    }

    #[test]
    fn what_does_not_fit_is_said() {
        let fp = Footprint {
            blob: 87_332,
            arena: 32_691,
            input: 784,
            classes: 10,
        };
        assert_eq!(fp.flash(), FIRMWARE_CODE + 87_332);
        assert!(fp.check(&Budget::new(None, None, None)).is_ok());
        let small = Budget::new(None, Some(96), Some(48));
        let err = format!("{:#}", fp.check(&small).unwrap_err());
        assert!(
            err.contains("does NOT fit") && err.contains("flash"),
            "{err}"
        );
        assert!(fp.servable());
        assert!(!Footprint { classes: 17, ..fp }.servable());
    }

    #[test]
    fn an_untrained_network_is_checked_before_training() {
        let cfg = SqueezeNetConfig::fashion_mnist();
        let images = crate::data::fashion_mnist_split(vec![128; 2 * 784], vec![0, 1]);
        let ok = precheck(&cfg, &images, &Budget::new(None, None, None)).unwrap();
        assert!(ok.contains("fits"), "{ok}");
        let err = precheck(&cfg, &images, &Budget::new(None, None, Some(40))).unwrap_err();
        assert!(
            format!("{err:#}").contains("activations cannot fit"),
            "{err:#}"
        );
        let err = precheck(&cfg, &images, &Budget::new(None, Some(40), None)).unwrap_err();
        assert!(
            format!("{err:#}").contains("weights would not fit"),
            "{err:#}"
        );
    }
}
