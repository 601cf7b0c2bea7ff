//! Training reports a user would rather look at than read: metrics as CSV/JSON, training
//! curves and confusion matrices as PNG.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;

use super::recipe::EpochMetrics;
use crate::chart::font_ready;

/// Writes `metrics.csv` and `metrics.json` and redraws `curves.png` in `dir`.
pub fn write_metrics(dir: &Path, history: &[EpochMetrics]) -> Result<()> {
    let mut csv = String::from("epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n");
    for m in history {
        csv.push_str(&format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:.6e},{:.1}\n",
            m.epoch, m.train_loss, m.train_acc, m.val_loss, m.val_acc, m.lr, m.seconds
        ));
    }
    crate::store::write_atomic(&dir.join("metrics.csv"), csv.as_bytes())?;
    crate::store::write_atomic(
        &dir.join("metrics.json"),
        serde_json::to_string_pretty(history)?.as_bytes(),
    )?;
    curves_png(&dir.join("curves.png"), history)
}

/// Loss and accuracy per epoch, train and validation.
pub fn curves_png(path: &Path, history: &[EpochMetrics]) -> Result<()> {
    let text = font_ready();
    let root = BitMapBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let n = history.len().max(2) as f64;
    let max_loss = history
        .iter()
        .flat_map(|m| [m.train_loss, m.val_loss])
        .fold(0.1f64, f64::max);
    let min_acc = history
        .iter()
        .flat_map(|m| [m.train_acc, m.val_acc])
        .fold(1.0f64, f64::min)
        .clamp(0.0, 0.99);
    for (area, title, range, series) in [
        (
            &left,
            "loss",
            0.0..max_loss * 1.05,
            [
                (
                    "train",
                    history
                        .iter()
                        .map(|m| (m.epoch as f64, m.train_loss))
                        .collect::<Vec<_>>(),
                ),
                (
                    "validation",
                    history
                        .iter()
                        .map(|m| (m.epoch as f64, m.val_loss))
                        .collect(),
                ),
            ],
        ),
        (
            &right,
            "accuracy",
            (min_acc - 0.01).max(0.0)..1.0,
            [
                (
                    "train",
                    history
                        .iter()
                        .map(|m| (m.epoch as f64, m.train_acc))
                        .collect(),
                ),
                (
                    "validation",
                    history
                        .iter()
                        .map(|m| (m.epoch as f64, m.val_acc))
                        .collect(),
                ),
            ],
        ),
    ] {
        let mut b = ChartBuilder::on(area);
        b.margin(12);
        if text {
            b.caption(title, ("sans-serif", 20))
                .x_label_area_size(30)
                .y_label_area_size(50);
        }
        let mut chart = b.build_cartesian_2d(1.0..n, range)?;
        if text {
            chart.configure_mesh().x_desc("epoch").draw()?;
        } else {
            chart.configure_mesh().disable_x_mesh().draw()?;
        }
        for ((name, pts), color) in series.into_iter().zip([BLUE, RED]) {
            let s = chart.draw_series(LineSeries::new(pts, color.stroke_width(2)))?;
            if text {
                s.label(name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            }
        }
        if text {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
    }
    root.present()
        .with_context(|| format!("while writing {}", path.display()))?;
    Ok(())
}

/// A confusion matrix, rows = true class, columns = predicted, cells shaded by row share.
pub fn confusion_png(
    path: &Path,
    confusion: &[Vec<usize>],
    classes: &[String],
    subtitle: &str,
) -> Result<()> {
    let n = confusion.len();
    // Names fit beside up to 30 classes; cells shrink so the picture stays under ~1,700 px.
    let text = font_ready() && n <= 30;
    let cell = (1_680 / n.max(1)).clamp(8, 56) as i32;
    let margin = if text { 130 } else { 10 };
    let size = (
        margin as u32 + cell as u32 * n as u32 + 20,
        margin as u32 + cell as u32 * n as u32 + 40,
    );
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    if text {
        root.draw(&Text::new(
            format!("confusion matrix ({subtitle}); rows: true, columns: predicted"),
            (10, 8),
            ("sans-serif", 16),
        ))?;
    }
    for (r, row) in confusion.iter().enumerate() {
        let total = row.iter().sum::<usize>().max(1) as f64;
        if text {
            root.draw(&Text::new(
                classes.get(r).map_or("?", String::as_str).to_string(),
                (6, margin + r as i32 * cell + cell / 2 - 6),
                ("sans-serif", 13),
            ))?;
        }
        for (c, &v) in row.iter().enumerate() {
            let share = v as f64 / total;
            let x0 = margin + c as i32 * cell;
            let y0 = margin + r as i32 * cell;
            let shade = (255.0 * (1.0 - share)) as u8;
            let color = if r == c {
                RGBColor(shade, 255, shade)
            } else {
                RGBColor(255, shade, shade)
            };
            root.draw(&Rectangle::new(
                [(x0, y0), (x0 + cell - 2, y0 + cell - 2)],
                color.filled(),
            ))?;
            if text {
                root.draw(&Text::new(
                    format!("{v}"),
                    (x0 + 6, y0 + cell / 2 - 6),
                    ("sans-serif", 13),
                ))?;
            }
        }
    }
    if text {
        for c in 0..n {
            let name = classes.get(c).map_or("?", String::as_str);
            let short: String = name.chars().take(7).collect();
            root.draw(&Text::new(
                short,
                (margin + c as i32 * cell + 2, margin - 18),
                ("sans-serif", 12),
            ))?;
        }
    }
    root.present()
        .with_context(|| format!("while writing {}", path.display()))?;
    Ok(())
}
