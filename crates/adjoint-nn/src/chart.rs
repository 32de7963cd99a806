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
/// All series share one value axis (for losses and accuracies together, use
/// [`write_training_chart`], which gives accuracy its own axis); the x axis is the step. Each series gets its own colour and a legend entry. Points whose
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
    render(series, &[], title, ("step", "value"))
}

/// Writes an SVG line chart of `series` (each a name and its `(x, y)` points) with the axes
/// described `x_desc` and `y_desc`, atomically; points and errors as in [`write_loss_chart`].
///
/// ```
/// use adjoint_nn::chart::render_line_chart;
///
/// let arena = [(16.0, 1.5), (32.0, 2.9), (64.0, 5.8)];
/// let svg = render_line_chart(&[("keep all", &arena)], "Arena", "blocks", "MiB").unwrap();
/// assert!(svg.contains("blocks") && svg.contains("MiB"));
/// ```
pub fn write_line_chart(
    path: impl AsRef<Path>,
    series: &[(&str, &[(f64, f64)])],
    title: &str,
    x_desc: &str,
    y_desc: &str,
) -> Result<(), ChartError> {
    let path = path.as_ref();
    let svg = render_line_chart(series, title, x_desc, y_desc)?;
    write_atomically(path, |w| w.write_all(svg.as_bytes())).map_err(|source| ChartError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The SVG text of [`write_line_chart`]'s chart, without writing a file.
pub fn render_line_chart(
    series: &[(&str, &[(f64, f64)])],
    title: &str,
    x_desc: &str,
    y_desc: &str,
) -> Result<String, ChartError> {
    render(series, &[], title, (x_desc, y_desc))
}

/// Writes an SVG chart of a training run to `path`, atomically: the `losses` (training loss,
/// test loss, …) on the left axis, labelled "loss", and the `accuracies` — fractions in
/// `[0, 1]` — as percentages on a right axis from 0 to 100 %, so that neither is squeezed
/// into the other's scale. Points and errors as in [`write_loss_chart`].
///
/// ```
/// use adjoint_nn::chart::render_training_chart;
///
/// let loss = [(0.0, 2.3), (50.0, 0.4), (99.0, 0.3)];
/// let accuracy = [(0.0, 0.1), (50.0, 0.9), (99.0, 0.95)];
/// let svg = render_training_chart(&[("test loss", &loss)], &[("test accuracy", &accuracy)], "MLP")
///     .unwrap();
/// assert!(svg.contains("accuracy (%)") && svg.contains("test accuracy"));
/// ```
pub fn write_training_chart(
    path: impl AsRef<Path>,
    losses: &[(&str, &[(f64, f64)])],
    accuracies: &[(&str, &[(f64, f64)])],
    title: &str,
) -> Result<(), ChartError> {
    let path = path.as_ref();
    let svg = render_training_chart(losses, accuracies, title)?;
    write_atomically(path, |w| w.write_all(svg.as_bytes())).map_err(|source| ChartError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The SVG text of [`write_training_chart`]'s chart, without writing a file.
pub fn render_training_chart(
    losses: &[(&str, &[(f64, f64)])],
    accuracies: &[(&str, &[(f64, f64)])],
    title: &str,
) -> Result<String, ChartError> {
    render(losses, accuracies, title, ("step", "loss"))
}

/// The finite points of each series.
fn finite_series<'a>(series: &[(&'a str, &[(f64, f64)])]) -> Vec<(&'a str, Vec<(f64, f64)>)> {
    series
        .iter()
        .map(|&(name, points)| {
            let kept = points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            (name, kept)
        })
        .collect()
}

/// Renders `left` on a value axis and `right` (fractions) as percent on a secondary axis,
/// when there are any; `descs` describes the x axis and the left value axis.
fn render(
    left: &[(&str, &[(f64, f64)])],
    right: &[(&str, &[(f64, f64)])],
    title: &str,
    descs: (&str, &str),
) -> Result<String, ChartError> {
    let left = finite_series(left);
    let right: Vec<(&str, Vec<(f64, f64)>)> = finite_series(right)
        .into_iter()
        .map(|(n, p)| (n, p.into_iter().map(|(x, y)| (x, 100.0 * y)).collect()))
        .collect();
    let x_range = padded_range(
        left.iter()
            .chain(&right)
            .flat_map(|(_, p)| p.iter().map(|q| q.0)),
        0.0,
    )
    .ok_or(ChartError::NoData)?;
    let y_range = padded_range(left.iter().flat_map(|(_, p)| p.iter().map(|q| q.1)), 0.05)
        .unwrap_or(0.0..1.0);
    let mut svg = String::new();
    draw(&mut svg, &left, &right, title, descs, x_range, y_range)
        .map_err(|e| ChartError::Draw(e.to_string()))?;
    Ok(svg)
}

/// Line colours: dark enough to read on white (plotters' palette includes a pale yellow).
const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180), // blue
    RGBColor(214, 39, 40),  // red
    RGBColor(44, 140, 44),  // green
    RGBColor(148, 83, 189), // purple
    RGBColor(140, 86, 75),  // brown
    RGBColor(23, 130, 150), // teal
];

/// Draws the chart into `svg`.
fn draw(
    svg: &mut String,
    left: &[(&str, Vec<(f64, f64)>)],
    right: &[(&str, Vec<(f64, f64)>)],
    title: &str,
    (x_desc, left_desc): (&str, &str),
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
        .right_y_label_area_size(if right.is_empty() { 0 } else { 64 })
        .build_cartesian_2d(x_range.clone(), y_range)?
        .set_secondary_coord(x_range, 0.0..100.0);
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(left_desc)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    if !right.is_empty() {
        chart
            .configure_secondary_axes()
            .y_desc("accuracy (%)")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()?;
    }
    let colour = |i: usize| COLOURS[i % COLOURS.len()];
    for (i, (name, points)) in left.iter().enumerate() {
        let c = colour(i);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    for (i, (name, points)) in right.iter().enumerate() {
        let c = colour(left.len() + i);
        chart
            .draw_secondary_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))?
            .label(format!("{name} (right axis, %)"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
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
