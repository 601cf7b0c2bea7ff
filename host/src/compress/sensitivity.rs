//! Pruning sensitivity, as in the Deep Compression paper's figure 5: each conv layer pruned
//! alone to each level, by the rule the fine-tuning uses (magnitude relative to the output
//! channel's largest), with no retraining, and scored on the validation set. A layer whose
//! accuracy holds at a level can take that per-layer target (`--layer-sparsity`) cheaply; one
//! that falls early needs a low target or fine-tuning budget.

use std::path::Path;

use anyhow::{Result, bail};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::layers::conv_weight_counts;
use super::prune::prune_one_layer;
use crate::data::{Normalization, Split};
use crate::eval::evaluate;
use crate::train::model::SqueezeNet;

/// The levels `sqz sensitivity` tries unless told otherwise.
pub const DEFAULT_LEVELS: [f64; 7] = [0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99];

/// One layer's accuracy at each level.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerSensitivity {
    /// The conv's name (`stem`, `fire2.squeeze`, ..., `classifier`).
    pub layer: String,
    /// Its weights.
    pub weights: usize,
    /// Validation accuracy with only this layer pruned, one per level.
    pub val_acc: Vec<f64>,
}

/// Every layer's sensitivity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sensitivity {
    /// The pruned fractions tried.
    pub levels: Vec<f64>,
    /// Validation images scored.
    pub images: usize,
    /// Validation accuracy unpruned.
    pub baseline: f64,
    /// One entry per conv, in network order.
    pub layers: Vec<LayerSensitivity>,
}

/// Prunes each layer of `net` (whose convs are named `names`) alone to each of `levels` and
/// scores it on `val`; `progress` is told after each evaluation.
pub fn analyse(
    net: &SqueezeNet,
    names: &[String],
    val: &Split,
    norm: Normalization,
    levels: &[f64],
    mut progress: impl FnMut(&str, f64, f64),
) -> Result<Sensitivity> {
    if let Some(l) = levels.iter().find(|l| !(0.0..=1.0).contains(*l)) {
        bail!("pruning level {l} is outside 0..=1");
    }
    let device = Device::flex();
    let weights = conv_weight_counts(net);
    if weights.len() != names.len() {
        bail!(
            "{} layer names for a network of {} convs",
            names.len(),
            weights.len()
        );
    }
    let baseline = evaluate(net, val, norm, &device).acc;
    let mut layers = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let mut val_acc = Vec::with_capacity(levels.len());
        for &level in levels {
            let pruned = prune_one_layer(net.clone(), i, level, &device);
            let acc = evaluate(&pruned, val, norm, &device).acc;
            progress(name, level, acc);
            val_acc.push(acc);
        }
        layers.push(LayerSensitivity {
            layer: name.clone(),
            weights: weights[i],
            val_acc,
        });
    }
    Ok(Sensitivity {
        levels: levels.to_vec(),
        images: val.len(),
        baseline,
        layers,
    })
}

impl Sensitivity {
    /// The table: one row per layer, its accuracy at each level, and the highest level that
    /// stays within `tolerance` (a fraction, 0.005 = half a point) of the unpruned accuracy.
    pub fn markdown(&self, tolerance: f64) -> String {
        let mut md = format!(
            "Validation accuracy with one layer pruned (relative magnitude, no retraining; {} images; unpruned {:.2} %).\n\n| layer | weights |",
            self.images,
            100.0 * self.baseline
        );
        for l in &self.levels {
            md.push_str(&format!(" {:.0} % |", 100.0 * l));
        }
        md.push_str(&format!(
            " highest within {:.1} pt |\n|---|---:|",
            100.0 * tolerance
        ));
        md.push_str(&"---:|".repeat(self.levels.len() + 1));
        md.push('\n');
        for l in &self.layers {
            md.push_str(&format!("| {} | {} |", l.layer, l.weights));
            for a in &l.val_acc {
                md.push_str(&format!(" {:.2} |", 100.0 * a));
            }
            match self.tolerated(l, tolerance) {
                Some(level) => md.push_str(&format!(" {:.0} % |\n", 100.0 * level)),
                None => md.push_str(" - |\n"),
            }
        }
        md
    }

    /// The highest level at which `layer` stays within `tolerance` of the unpruned accuracy,
    /// every lower level tried included.
    pub fn tolerated(&self, layer: &LayerSensitivity, tolerance: f64) -> Option<f64> {
        let mut best = None;
        let mut order: Vec<usize> = (0..self.levels.len()).collect();
        order.sort_by(|&a, &b| self.levels[a].total_cmp(&self.levels[b]));
        for i in order {
            if layer.val_acc[i] < self.baseline - tolerance {
                break;
            }
            best = Some(self.levels[i]);
        }
        best
    }

    /// Writes `sensitivity.md`, `sensitivity.json` and `sensitivity.png` into `dir`.
    pub fn write(&self, dir: &Path, tolerance: f64) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        crate::store::write_atomic(
            &dir.join("sensitivity.md"),
            self.markdown(tolerance).as_bytes(),
        )?;
        crate::store::write_atomic(
            &dir.join("sensitivity.json"),
            serde_json::to_string_pretty(self)?.as_bytes(),
        )?;
        let series: Vec<(String, Vec<(f64, f64)>)> = self
            .layers
            .iter()
            .map(|l| {
                let pts = self
                    .levels
                    .iter()
                    .zip(&l.val_acc)
                    .map(|(x, y)| (100.0 * x, 100.0 * y))
                    .collect();
                (l.layer.clone(), pts)
            })
            .collect();
        crate::chart::lines_png(
            &dir.join("sensitivity.png"),
            "Pruning sensitivity, one layer at a time, no retraining",
            "weights pruned (%)",
            "validation accuracy (%)",
            &series,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::model::SqueezeNetConfig;

    fn split(n: usize) -> Split {
        crate::data::fashion_mnist_split(
            (0..n * crate::data::PIXELS)
                .map(|i| ((i * 31) % 251) as u8)
                .collect(),
            (0..n).map(|i| (i % 10) as u8).collect(),
        )
    }

    #[test]
    fn unpruned_level_is_the_baseline_and_full_pruning_of_the_classifier_is_chance() {
        let cfg = SqueezeNetConfig::fashion_mnist();
        let net = SqueezeNet::new(&cfg, &Device::flex());
        let names = crate::compress::layers::conv_names(&cfg);
        let val = split(40);
        let mut calls = 0;
        let s = analyse(
            &net,
            &names,
            &val,
            Normalization::Unit,
            &[0.0, 1.0],
            |_, _, _| calls += 1,
        )
        .unwrap();
        assert_eq!(calls, 2 * names.len());
        assert_eq!(s.layers.len(), names.len());
        for l in &s.layers {
            // Nothing pruned: the same network, the same predictions.
            assert_eq!(l.val_acc[0], s.baseline, "{}", l.layer);
            assert!(l.weights > 0);
        }
        // The classifier with no weights outputs its bias alone: one class for every image,
        // 4 of the 40 (the labels cycle through the ten classes).
        let classifier = s.layers.last().unwrap();
        assert_eq!(classifier.layer, "classifier");
        assert_eq!(classifier.val_acc[1], 0.1);
        // A title, a blank line, the header, its rule and one row per layer.
        assert_eq!(s.markdown(0.005).lines().count(), 4 + names.len());
        assert!(
            analyse(
                &net,
                &names,
                &val,
                Normalization::Unit,
                &[1.5],
                |_, _, _| {}
            )
            .is_err()
        );
    }

    #[test]
    fn tolerated_stops_at_the_first_level_that_falls() {
        let s = Sensitivity {
            levels: vec![0.9, 0.5, 0.8],
            images: 100,
            baseline: 0.9,
            layers: vec![],
        };
        let layer = |acc: [f64; 3]| LayerSensitivity {
            layer: "l".into(),
            weights: 1,
            val_acc: acc.to_vec(),
        };
        // Levels in order 0.5, 0.8, 0.9.
        assert_eq!(s.tolerated(&layer([0.9, 0.9, 0.9]), 0.005), Some(0.9));
        assert_eq!(s.tolerated(&layer([0.9, 0.9, 0.8]), 0.005), Some(0.5));
        assert_eq!(s.tolerated(&layer([0.9, 0.8, 0.9]), 0.005), None);
        assert_eq!(s.tolerated(&layer([0.7, 0.9, 0.898]), 0.005), Some(0.8));
    }
}
