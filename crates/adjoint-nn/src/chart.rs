//! Loss curves as SVG line charts (plotters).

use crate::checkpoint::write_atomically;
use plotters::prelude::*;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Width and height of the chart in pixels.
const SIZE: (u32, u32) = (900, 540);

/// Why a chart could not be drawn or written.
#[derive(Debug)]
pub enum ChartError {
    /// No series has a single finite point: there is nothing to draw.
    NoData,
    /// plotters failed while drawing.
    Draw(String),
    /// Writing the file failed.
    Io {
        /// The chart file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl fmt::Display for ChartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChartError::NoData => write!(
                f,
                "cannot draw a chart: no series has a finite (step, value) point"
            ),
            ChartError::Draw(m) => write!(f, "cannot draw the chart: {m}"),
            ChartError::Io { path, source } => {
                write!(f, "cannot write chart {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for ChartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ChartError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Writes an SVG line chart of `series` — each a name and its `(step, value)` points, for
/// example training loss, test loss and test accuracy — to `path`, atomically (a temporary
/// file renamed over `path`; see [`write_atomically`]).
///
/// All series share one value axis (losses and accuracies in `[0, 1]` read well together);
/// the x axis is the step. Each series gets its own colour and a legend entry. Points whose
/// step or value is NaN or infinite are skipped (the line joins its finite neighbours); a
/// series left without points still appears in the legend. **If no series has any finite
/// point, nothing is written and the result is [`ChartError::NoData`].**
///
/// ```
/// use adjoint_nn::chart::write_loss_chart;
///
/// let train: Vec<(f64, f64)> = (0..100).map(|s| (s as f64, 2.3 / (1.0 + s as f64 / 10.0))).collect();
/// let test = [(0.0, 2.3), (50.0, 0.4), (99.0, 0.3)];
/// let path = std::env::temp_dir().join(format!("adjoint-chart-doc-{}.svg", std::process::id()));
/// write_loss_chart(&path, &[("train loss", &train), ("test loss", &test)], "MLP on digits").unwrap();
/// let svg = std::fs::read_to_string(&path).unwrap();
/// assert!(svg.starts_with("<svg") && svg.contains("test loss"));
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn write_loss_chart(
    path: impl AsRef<Path>,
    series: &[(&str, &[(f64, f64)])],
    title: &str,
) -> Result<(), ChartError> {
    let path = path.as_ref();
    let svg = render_loss_chart(series, title)?;
    write_atomically(path, |w| w.write_all(svg.as_bytes())).map_err(|source| ChartError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The SVG text of [`write_loss_chart`]'s chart, without writing a file.
pub fn render_loss_chart(
    series: &[(&str, &[(f64, f64)])],
    title: &str,
) -> Result<String, ChartError> {
    let finite: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|&(name, points)| {
            let kept = points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            (name, kept)
        })
        .collect();
    let all = || finite.iter().flat_map(|(_, p)| p.iter());
    let (x_range, y_range) = match (
        padded_range(all().map(|p| p.0), 0.0),
        padded_range(all().map(|p| p.1), 0.05),
    ) {
        (Some(x), Some(y)) => (x, y),
        _ => return Err(ChartError::NoData),
    };

    let mut svg = String::new();
    draw(&mut svg, &finite, title, x_range, y_range)
        .map_err(|e| ChartError::Draw(e.to_string()))?;
    Ok(svg)
}

/// Draws the chart into `svg`.
fn draw(
    svg: &mut String,
    series: &[(&str, Vec<(f64, f64)>)],
    title: &str,
    x_range: Range<f64>,
    y_range: Range<f64>,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range, y_range)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("value")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}

/// The range spanned by `values`, widened by `margin` of its width on each side (or by 1 on
/// each side when all values are equal); `None` for no values.
fn padded_range(values: impl Iterator<Item = f64>, margin: f64) -> Option<Range<f64>> {
    let (lo, hi) = values.fold(None, |acc: Option<(f64, f64)>, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })?;
    if hi > lo {
        let pad = (hi - lo) * margin;
        Some(lo - pad..hi + pad)
    } else {
        Some(lo - 1.0..hi + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::padded_range;

    #[test]
    fn ranges_are_padded_and_never_empty() {
        assert_eq!(
            padded_range([1.0, 3.0, 2.0].into_iter(), 0.5),
            Some(0.0..4.0)
        );
        assert_eq!(padded_range([2.0].into_iter(), 0.05), Some(1.0..3.0));
        assert_eq!(padded_range(std::iter::empty(), 0.05), None);
    }
}
