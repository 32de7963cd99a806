//! The PyTorch options of the losses (`ignore_index`, class weights, label smoothing with
//! weights, `pos_weight`, `sum`/`none` reductions) against direct host computations of
//! PyTorch's documented formulas, and their gradients against finite differences.

use adjoint_autodiff::check_grads;
use adjoint_ir::{Builder, DType, Feeds, HostTensor, Tensor};
use adjoint_nn::loss::{
    binary_cross_entropy_with_logits_with, cross_entropy_with, mse_with, BceOptions,
    CrossEntropyOptions, Reduction,
};

const Z: [f64; 12] = [
    0.3, -1.2, 2.0, 0.5, 1.1, 0.0, -0.7, 0.4, -2.0, 1.5, 0.9, -0.3,
];
const Y: [i32; 4] = [2, -100, 0, 1];
const W: [f64; 3] = [0.5, 2.0, 1.5];

/// PyTorch's weighted, smoothed cross-entropy on the host: per-example values (0 when
/// ignored) and the weight sum of the counted examples.
fn host_ce(smoothing: f64, weights: &[f64; 3]) -> (Vec<f64>, f64) {
    let mut per = Vec::new();
    let mut total_w = 0.0;
    for (row, &y) in Z.chunks(3).zip(&Y) {
        if y == -100 {
            per.push(0.0);
            continue;
        }
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|z| (z - max).exp()).sum::<f64>().ln();
        let y = y as usize;
        let smooth: f64 = (0..3).map(|c| weights[c] * (lse - row[c])).sum();
        per.push((1.0 - smoothing) * weights[y] * (lse - row[y]) + smoothing / 3.0 * smooth);
        total_w += weights[y];
    }
    (per, total_w)
}

/// Builds the cross-entropy of the fixed logits (a parameter) with `options` made by `make`,
/// returns its value and checks its gradient.
fn run_ce(
    make: for<'b> fn(&'b Builder) -> CrossEntropyOptions<'b>,
    reduction_none: bool,
) -> Vec<f64> {
    let b = Builder::new("ce");
    let z = b.parameter("z", DType::F64, [4, 3]);
    let y = b.constant(DType::I32, [4], &Y.map(|v| v as f64));
    let loss = cross_entropy_with(z, y, make(&b));
    b.output("loss", loss);
    let scalar = if reduction_none {
        let r = b.constant(DType::F64, [4], &[1.0, -2.0, 0.5, 3.0]);
        (loss * r).sum_all()
    } else {
        loss
    };
    let (scalar, zid) = (scalar.id(), z.id());
    let graph = b.finish();
    let mut feeds = Feeds::new();
    feeds.insert(
        "z".into(),
        HostTensor::from_f64([4, 3], Z.to_vec()).unwrap(),
    );
    let report = check_grads(&graph, scalar, &[zid], &feeds, 1e-6).unwrap();
    assert!(report.passed(), "{report}");
    let out = adjoint_interp::run(&graph, &feeds).unwrap();
    out.output("loss").unwrap().to_f64_vec()
}

fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "{what}: got {got:?}, want {want:?}");
    }
}

fn weights(b: &Builder) -> Tensor<'_> {
    b.constant(DType::F64, [3], &W)
}

#[test]
fn cross_entropy_ignores_an_index_in_every_reduction() {
    let (per, _) = host_ce(0.0, &[1.0; 3]);
    let got = run_ce(
        |_| CrossEntropyOptions {
            ignore_index: Some(-100),
            ..Default::default()
        },
        false,
    );
    assert_close("mean", &got, &[per.iter().sum::<f64>() / 3.0]);
    let got = run_ce(
        |_| CrossEntropyOptions {
            ignore_index: Some(-100),
            reduction: Reduction::Sum,
            ..Default::default()
        },
        false,
    );
    assert_close("sum", &got, &[per.iter().sum::<f64>()]);
    let got = run_ce(
        |_| CrossEntropyOptions {
            ignore_index: Some(-100),
            reduction: Reduction::None,
            ..Default::default()
        },
        true,
    );
    assert_close("none", &got, &per);
}

#[test]
fn cross_entropy_with_class_weights_is_a_weighted_mean() {
    let (per, total_w) = host_ce(0.0, &W);
    let got = run_ce(
        |b| CrossEntropyOptions {
            ignore_index: Some(-100),
            weights: Some(weights(b)),
            ..Default::default()
        },
        false,
    );
    assert_close("weighted", &got, &[per.iter().sum::<f64>() / total_w]);
}

#[test]
fn cross_entropy_with_weights_and_smoothing_follows_pytorch() {
    let (per, total_w) = host_ce(0.2, &W);
    let got = run_ce(
        |b| CrossEntropyOptions {
            smoothing: 0.2,
            ignore_index: Some(-100),
            weights: Some(weights(b)),
            reduction: Reduction::Mean,
        },
        false,
    );
    assert_close(
        "weighted smoothed",
        &got,
        &[per.iter().sum::<f64>() / total_w],
    );
}

#[test]
fn bce_with_pos_weight_and_reductions() {
    let x = [-3.0, 0.5, 2.0, -0.2, 40.0, -40.0];
    let t = [1.0, 0.0, 1.0, 0.3, 0.0, 1.0];
    let pw = [2.0, 0.5, 3.0];
    let softplus = |v: f64| v.max(0.0) + (-v.abs()).exp().ln_1p();
    // -[p·y·log σ(x) + (1 - y)·log(1 - σ(x))], log σ(x) = -softplus(-x).
    let per: Vec<f64> = (0..6)
        .map(|i| pw[i % 3] * t[i] * softplus(-x[i]) + (1.0 - t[i]) * softplus(x[i]))
        .collect();
    for (reduction, want) in [
        (Reduction::Mean, vec![per.iter().sum::<f64>() / 6.0]),
        (Reduction::Sum, vec![per.iter().sum::<f64>()]),
        (Reduction::None, per.clone()),
    ] {
        let b = Builder::new("bce");
        let xs = b.parameter("x", DType::F64, [2, 3]);
        let ts = b.constant(DType::F64, [2, 3], &t);
        let options = BceOptions {
            pos_weight: Some(b.constant(DType::F64, [3], &pw)),
            reduction,
        };
        let loss = binary_cross_entropy_with_logits_with(xs, ts, options);
        b.output("loss", loss);
        let scalar = loss.sum_all();
        let (scalar, xid) = (scalar.id(), xs.id());
        let graph = b.finish();
        let mut feeds = Feeds::new();
        feeds.insert(
            "x".into(),
            HostTensor::from_f64([2, 3], x.to_vec()).unwrap(),
        );
        let out = adjoint_interp::run(&graph, &feeds).unwrap();
        assert_close("bce", &out.output("loss").unwrap().to_f64_vec(), &want);
        let report = check_grads(&graph, scalar, &[xid], &feeds, 1e-6).unwrap();
        assert!(report.passed(), "{report}");
    }
}

#[test]
fn mse_reductions() {
    let b = Builder::new("mse");
    let p = b.constant(DType::F64, [2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let t = b.constant(DType::F64, [2, 2], &[1.0, 0.0, 3.0, 0.0]);
    b.output("sum", mse_with(p, t, Reduction::Sum));
    b.output("none", mse_with(p, t, Reduction::None));
    let out = adjoint_interp::run(&b.finish(), &Feeds::new()).unwrap();
    assert_eq!(out.output("sum").unwrap().to_f64_vec(), [20.0]);
    assert_eq!(
        out.output("none").unwrap().to_f64_vec(),
        [0.0, 4.0, 0.0, 16.0]
    );
}
