//! The SVG loss chart.

mod common;
use common::TempDir;

use adjoint_nn::chart::{render_loss_chart, write_loss_chart, ChartError};

/// Checks that the XML elements of `svg` nest properly, with one `<svg>` root; returns how
/// many elements of each name there are for `names`.
fn check_well_formed(svg: &str, names: &[&str]) -> Vec<usize> {
    let mut stack: Vec<String> = Vec::new();
    let mut counts = vec![0; names.len()];
    let mut roots = 0;
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("unclosed tag") + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "mismatched </{name}>"
            );
            continue;
        }
        let name = tag
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap();
        if stack.is_empty() {
            roots += 1;
        }
        if let Some(i) = names.iter().position(|&n| n == name) {
            counts[i] += 1;
        }
        if !tag.ends_with('/') {
            stack.push(name.to_string());
        }
    }
    assert!(stack.is_empty(), "unclosed elements {stack:?}");
    assert_eq!(roots, 1, "one root element");
    counts
}

/// The contents of the `<text>` elements, trimmed.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .map(|t| {
            let body = &t[t.find('>').unwrap() + 1..];
            body[..body.find("</text>").unwrap()].trim().to_string()
        })
        .collect()
}

#[test]
fn writes_a_well_formed_svg_with_every_series_named() {
    let dir = TempDir::new("write");
    let path = dir.0.join("loss.svg");
    let train: Vec<(f64, f64)> = (0..200)
        .map(|s| (s as f64, 2.3 * (-(s as f64) / 50.0).exp()))
        .collect();
    let test_loss = [(0.0, 2.3), (100.0, 0.5), (199.0, 0.2)];
    let accuracy = [(0.0, 0.1), (100.0, 0.9), (199.0, 0.97)];
    write_loss_chart(
        &path,
        &[
            ("train loss", &train),
            ("test loss", &test_loss),
            ("test accuracy", &accuracy),
        ],
        "MLP on digits",
    )
    .unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.trim_start().starts_with("<svg"), "{}", &svg[..80]);
    assert!(svg.trim_end().ends_with("</svg>"));
    let counts = check_well_formed(&svg, &["svg", "polyline", "text"]);
    assert_eq!(counts[0], 1);
    // One polyline per series plus one per legend sample line.
    assert!(counts[1] >= 3, "{counts:?}");
    let texts = texts(&svg);
    for text in [
        "train loss",
        "test loss",
        "test accuracy",
        "MLP on digits",
        "step",
        "value",
    ] {
        assert!(
            texts.iter().any(|t| t == text),
            "no text {text:?} in {texts:?}"
        );
    }
    // Replaced atomically: only the chart remains.
    assert_eq!(dir.files(), ["loss.svg"]);
}

#[test]
fn non_finite_points_are_skipped_and_names_escaped() {
    let noisy = [
        (0.0, 1.0),
        (1.0, f64::NAN),
        (2.0, f64::INFINITY),
        (f64::NAN, 0.5),
        (3.0, 0.25),
    ];
    let nothing: [(f64, f64); 0] = [];
    let svg = render_loss_chart(&[("loss & <acc>", &noisy), ("empty", &nothing)], "t").unwrap();
    check_well_formed(&svg, &[]);
    let texts = texts(&svg);
    assert!(
        texts.iter().any(|t| t == "loss &amp; &lt;acc&gt;"),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t == "empty"),
        "an empty series keeps its legend entry: {texts:?}"
    );
    for bad in ["NaN", "inf"] {
        assert!(!svg.contains(bad), "{bad} leaked into the SVG");
    }
}

#[test]
fn a_single_point_still_draws() {
    let one = [(5.0, 0.7)];
    let svg = render_loss_chart(&[("loss", &one)], "one point").unwrap();
    check_well_formed(&svg, &[]);
    assert!(texts(&svg).iter().any(|t| t == "loss"), "{svg}");
}

#[test]
fn no_finite_data_is_an_error_and_writes_nothing() {
    let dir = TempDir::new("empty");
    let path = dir.0.join("loss.svg");
    let nan = [(0.0, f64::NAN), (1.0, f64::NEG_INFINITY)];
    let err = write_loss_chart(&path, &[("loss", &nan)], "t").unwrap_err();
    assert!(matches!(err, ChartError::NoData), "{err}");
    assert!(matches!(
        write_loss_chart(&path, &[], "t").unwrap_err(),
        ChartError::NoData
    ));
    assert!(dir.files().is_empty());

    let missing_dir = dir.0.join("no/such/dir/loss.svg");
    let err = write_loss_chart(&missing_dir, &[("loss", &[(0.0, 1.0)])], "t").unwrap_err();
    assert!(matches!(err, ChartError::Io { .. }), "{err}");
    assert!(err.to_string().contains("loss.svg"));
}

#[test]
fn a_training_chart_puts_accuracy_on_its_own_percent_axis() {
    use adjoint_nn::chart::render_training_chart;
    let loss = [(0.0, 2.3), (50.0, 0.4), (99.0, 0.3)];
    let accuracy = [(0.0, 0.1), (50.0, 0.9), (99.0, 0.95)];
    let svg = render_training_chart(
        &[("training loss", &loss)],
        &[("test accuracy", &accuracy)],
        "run",
    )
    .unwrap();
    check_well_formed(&svg, &[]);
    let t = texts(&svg);
    assert!(t.iter().any(|s| s == "training loss"), "{t:?}");
    assert!(
        t.iter().any(|s| s == "test accuracy (right axis, %)"),
        "{t:?}"
    );
    assert!(t.iter().any(|s| s == "loss"), "{t:?}");
    assert!(t.iter().any(|s| s == "accuracy (%)"), "{t:?}");
    // The percent axis runs to 100; the loss axis only to the loss's range.
    assert!(t.iter().any(|s| s == "100"), "{t:?}");
    // The first two lines in the dark blue and red of the fixed palette.
    let lower = svg.to_lowercase();
    assert!(
        lower.contains("#1f77b4") && lower.contains("#d62728"),
        "{svg}"
    );
}
