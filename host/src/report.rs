//! Reports a user would rather look at than read: metrics as CSV/JSON, training curves,
//! confusion matrices and scatter charts as PNG.
//!
//! Text in charts uses DejaVu Sans from the system (`fonts-dejavu-core`, installed by
//! `.ci/setup`); without it charts are still drawn, unlabelled, and a warning is printed.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use plotters::prelude::*;

use crate::data::CLASS_NAMES;
use crate::train::EpochMetrics;

const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers the chart font once; false when no font file exists.
fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        for p in FONT_PATHS {
            if let Ok(bytes) = std::fs::read(p) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        eprintln!("warning: DejaVuSans.ttf not found (apt-get install fonts-dejavu-core); charts will have no text");
        false
    })
}

/// Writes `metrics.csv` and `metrics.json` and redraws `curves.png` in `dir`.
pub fn write_metrics(dir: &Path, history: &[EpochMetrics]) -> Result<()> {
    let mut csv = String::from("epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n");
    for m in history {
        csv.push_str(&format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:.6e},{:.1}\n",
            m.epoch, m.train_loss, m.train_acc, m.val_loss, m.val_acc, m.lr, m.seconds
        ));
    }
    crate::train::write_atomic(&dir.join("metrics.csv"), csv.as_bytes())?;
    crate::train::write_atomic(
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
pub fn confusion_png(path: &Path, confusion: &[Vec<usize>], subtitle: &str) -> Result<()> {
    let text = font_ready();
    let n = confusion.len();
    let cell = 56i32;
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
                CLASS_NAMES.get(r).copied().unwrap_or("?").to_string(),
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
            let name = CLASS_NAMES.get(c).copied().unwrap_or("?");
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

/// A chart builder with the house margin, and a title and axis label areas when text can be
/// drawn.
fn titled_builder<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    text: bool,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(root);
    b.margin(16);
    if text {
        b.caption(title, ("sans-serif", 20))
            .x_label_area_size(40)
            .y_label_area_size(60);
    }
    b
}

/// One line per named series on shared axes (pruning sensitivity: accuracy against the share
/// pruned, one line per layer), coloured from a palette and labelled in a legend.
pub fn lines_png(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<()> {
    let text = font_ready();
    let root = BitMapBackend::new(path, (1100, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let all = || series.iter().flat_map(|(_, pts)| pts.iter());
    let (xmin, xmax) = all().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (ymin, ymax) = all().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    if xmin > xmax {
        bail!("{}: nothing to draw", path.display());
    }
    let pad_x = ((xmax - xmin) * 0.02).max(0.5);
    let pad_y = ((ymax - ymin) * 0.05).max(0.5);
    let mut b = titled_builder(&root, title, text);
    let mut chart = b.build_cartesian_2d(
        (xmin - pad_x)..(xmax + pad_x),
        (ymin - pad_y)..(ymax + pad_y),
    )?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let s = chart.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?;
        if text {
            s.label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 11))
            .draw()?;
    }
    root.present()
        .with_context(|| format!("while writing {}", path.display()))?;
    Ok(())
}

/// A labelled scatter chart (accuracy against parameters, for sweeps and compression stages).
pub fn scatter_png(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    points: &[(String, f64, f64)],
    log_x: bool,
) -> Result<()> {
    let text = font_ready();
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let (xmin, xmax) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (ymin, ymax) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.2), b.max(p.2)));
    let pad_y = ((ymax - ymin) * 0.1).max(0.005);
    let mut b = titled_builder(&root, title, text);
    let y_range = (ymin - pad_y)..(ymax + pad_y);
    if log_x {
        let mut chart = b.build_cartesian_2d((xmin * 0.8..xmax * 1.25).log_scale(), y_range)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()?;
        draw_points(&mut chart, points, text)?;
    } else {
        let pad_x = ((xmax - xmin) * 0.1).max(1.0);
        let mut chart = b.build_cartesian_2d((xmin - pad_x)..(xmax + pad_x), y_range)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()?;
        draw_points(&mut chart, points, text)?;
    }
    root.present()
        .with_context(|| format!("while writing {}", path.display()))?;
    Ok(())
}

fn draw_points<DB: DrawingBackend, X: Ranged<ValueType = f64>, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    points: &[(String, f64, f64)],
    text: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .draw_series(
            points
                .iter()
                .map(|p| Circle::new((p.1, p.2), 5, BLUE.filled())),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if text {
        chart
            .draw_series(
                points
                    .iter()
                    .map(|p| Text::new(p.0.clone(), (p.1, p.2), ("sans-serif", 13))),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}
