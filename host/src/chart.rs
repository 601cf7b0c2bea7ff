//! Charts shared by every stage: lines and labelled scatter plots as PNG (training sweeps,
//! pruning sensitivity, compression stages).
//!
//! Text in charts uses DejaVu Sans from the system (`fonts-dejavu-core`, installed by
//! `.ci/setup`); without it charts are still drawn, unlabelled, and a warning is printed.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use plotters::prelude::*;

const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Registers the chart font once; false when no font file exists.
pub fn font_ready() -> bool {
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
