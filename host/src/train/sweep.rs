//! The paper's design-space exploration (section 5) on a reduced budget: squeeze ratio (SR) at a
//! fixed 3x3 share, then the 3x3 share (pct_3x3) at a fixed SR. Each point trains the default
//! recipe for a few epochs on a subset and is scored on the validation set (never the test set).

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::model::SqueezeNet;
use super::recipe::{RunOptions, TrainConfig};
use super::run::train;
use crate::data::Split;
use burn::module::Module;

/// One point of the sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepPoint {
    /// Squeeze ratio.
    pub sr: f64,
    /// Share of 3x3 expand filters.
    pub pct_3x3: f64,
    /// Parameters of the network.
    pub params: usize,
    /// Multiply-accumulates per 28x28 image.
    pub macs: u64,
    /// Best validation accuracy.
    pub val_acc: f64,
    /// Wall seconds.
    pub seconds: f64,
}

/// The grid: SR in {1/8, 1/4, 1/2, 3/4, 1} at pct 0.5; pct in {0.01, 0.25, 0.75, 0.99} at SR 1/8.
pub fn grid() -> Vec<(f64, f64)> {
    let mut g: Vec<(f64, f64)> = [0.125, 0.25, 0.5, 0.75, 1.0]
        .iter()
        .map(|&sr| (sr, 0.5))
        .collect();
    g.extend([0.01, 0.25, 0.75, 0.99].iter().map(|&p| (0.125, p)));
    g
}

/// Runs every grid point with `base` (its epochs and train_limit set the budget) into `dir`.
pub fn sweep(
    base: &TrainConfig,
    train_split: &Split,
    val: &Split,
    dir: &Path,
    points: &[(f64, f64)],
) -> Result<Vec<SweepPoint>> {
    let mut out = Vec::new();
    for (i, &(sr, pct)) in points.iter().enumerate() {
        let mut cfg = base.clone();
        cfg.model.meta.sr = sr;
        cfg.model.meta.pct_3x3 = pct;
        let run_dir = dir.join(format!("sr{sr}_pct{pct}"));
        if run_dir.exists() {
            std::fs::remove_dir_all(&run_dir)
                .with_context(|| format!("while clearing {}", run_dir.display()))?;
        }
        eprintln!(
            "sweep point {}/{}: SR {sr}, pct_3x3 {pct}",
            i + 1,
            points.len()
        );
        let started = std::time::Instant::now();
        let (_, state, _) = train(
            &cfg,
            train_split,
            val,
            val,
            &run_dir,
            &RunOptions {
                skip_final: true,
                ..Default::default()
            },
        )?;
        let params = SqueezeNet::new(&cfg.model, &burn::tensor::Device::flex()).num_params();
        out.push(SweepPoint {
            sr,
            pct_3x3: pct,
            params,
            macs: super::model::macs(&cfg.model),
            val_acc: state.best.map(|b| b.0).unwrap_or(0.0),
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    let mut md = String::from(
        "| SR | pct_3x3 | parameters | MACs | val acc | seconds |\n|---|---|---|---|---|---|\n",
    );
    for p in &out {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {:.2} % | {:.0} |\n",
            p.sr,
            p.pct_3x3,
            p.params,
            p.macs,
            100.0 * p.val_acc,
            p.seconds
        ));
    }
    crate::store::write_atomic(&dir.join("sweep.md"), md.as_bytes())?;
    crate::store::write_atomic(
        &dir.join("sweep.json"),
        serde_json::to_string_pretty(&out)?.as_bytes(),
    )?;
    let pts: Vec<(String, f64, f64)> = out
        .iter()
        .map(|p| {
            (
                format!("SR {} / 3x3 {}", p.sr, p.pct_3x3),
                p.params as f64,
                100.0 * p.val_acc,
            )
        })
        .collect();
    crate::chart::scatter_png(
        &dir.join("sweep.png"),
        "SqueezeNet design space on Fashion-MNIST (reduced budget)",
        "parameters",
        "validation accuracy (%)",
        &pts,
        true,
    )?;
    Ok(out)
}
