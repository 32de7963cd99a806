//! The composite builders (relu, sigmoid, gelu, softmax, log_softmax, logsumexp, mean, var,
//! layer_norm, cross_entropy, mse) run through the interpreter, against values computed by
//! hand or in f64 on the test side.

mod common;

use adjoint_ir::{Builder, DType, HostTensor, Tensor};
use common::*;

type UnaryFn = for<'a> fn(Tensor<'a>) -> Tensor<'a>;

fn apply(x: HostTensor, f: UnaryFn) -> HostTensor {
    let b = Builder::new("composite");
    let xi = b.input("x", x.dtype(), x.shape().clone());
    eval(&b, f(xi), &feeds(vec![("x", x)]))
}

const XS: [f64; 7] = [-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0];

fn reference(f: impl Fn(f64) -> f64) -> Vec<f64> {
    XS.iter().map(|&x| f(x)).collect()
}

fn xs32() -> HostTensor {
    HostTensor::from_f64_as(DType::F32, [7], &XS).unwrap()
}

fn xs64() -> HostTensor {
    f64s(&[7], &XS)
}

#[test]
fn relu() {
    let want = [0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 3.0];
    assert_f64_exact(&apply(xs64(), |x| x.relu()), &want);
    assert_f32_exact(&apply(xs32(), |x| x.relu()), &want.map(|v| v as f32));
    // relu(-0) = +0, relu(NaN) = NaN.
    let got = apply(f32s(&[2], &[-0.0, f32::NAN]), |x| x.relu());
    assert_f32_exact(&got, &[0.0, f32::NAN]);
}

#[test]
fn sigmoid() {
    let want = reference(|x| 1.0 / (1.0 + (-x).exp()));
    assert_close(&apply(xs64(), |x| x.sigmoid()), &want, 1e-15);
    assert_close(&apply(xs32(), |x| x.sigmoid()), &want, 1e-6);
    // sigmoid(0) = 0.5 exactly, and the tails saturate without NaN.
    let got = apply(f32s(&[3], &[0.0, -200.0, 200.0]), |x| x.sigmoid());
    assert_f32_exact(&got, &[0.5, 0.0, 1.0]);
}

#[test]
fn gelu() {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    let want = reference(|x| 0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh()));
    assert_close(&apply(xs64(), |x| x.gelu()), &want, 1e-14);
    assert_close(&apply(xs32(), |x| x.gelu()), &want, 1e-6);
    // Hand values: gelu(1) ≈ 0.841192, gelu(-1) ≈ -0.158808.
    let got = apply(f64s(&[2], &[1.0, -1.0]), |x| x.gelu());
    assert_close(&got, &[0.841192, -0.158808], 1e-6);
}

/// Softmax of each row, in f64.
fn softmax_rows(x: &[f64], cols: usize) -> Vec<f64> {
    x.chunks(cols)
        .flat_map(|row| {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = row.iter().map(|v| (v - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(move |v| v / s)
        })
        .collect()
}

#[test]
fn softmax_rows_sum_to_one_and_large_logits_are_stable() {
    let x = [1.0, 2.0, 3.0, 1000.0, 1001.0, 1002.0, -5.0, 0.0, 5.0];
    // Hand values: softmax([0, 1, 2]) = [0.0900306, 0.2447285, 0.6652410].
    let hand = [0.09003057, 0.24472847, 0.66524096];
    for got in [
        apply(f32s(&[3, 3], &x.map(|v| v as f32)), |x| x.softmax(-1)),
        apply(f64s(&[3, 3], &x), |x| x.softmax(1)),
    ] {
        let v = got.to_f64_vec();
        assert!(v.iter().all(|p| p.is_finite()), "{got:?}");
        for row in v.chunks(3) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-6, "{row:?}");
        }
        assert_close(&got, &softmax_rows(&x, 3), 1e-6);
        for row in v[..6].chunks(3) {
            for (p, h) in row.iter().zip(hand) {
                assert!((p - h).abs() < 1e-6, "{row:?}");
            }
        }
    }
    // Along axis 0 of a [2, 2]: columns sum to one.
    let got = apply(f64s(&[2, 2], &[0.0, 1.0, 0.0, 3.0]), |x| x.softmax(0));
    let (a, b) = (1.0 / (1.0 + 2f64.exp()), 1.0 / (1.0 + (-2f64).exp()));
    assert_close(&got, &[0.5, a, 0.5, b], 1e-15);
}

#[test]
fn log_softmax_and_logsumexp() {
    let x = [1.0, 2.0, 3.0, 1000.0, 1000.0, 1000.0];
    let want: Vec<f64> = softmax_rows(&x, 3).iter().map(|p| p.ln()).collect();
    assert_close(
        &apply(f64s(&[2, 3], &x), |x| x.log_softmax(-1)),
        &want,
        1e-14,
    );
    let got = apply(f32s(&[2, 3], &x.map(|v| v as f32)), |x| x.log_softmax(-1));
    assert_close(&got, &want, 1e-6);

    // logsumexp([1,2,3]) = 3 + ln(1 + e^-1 + e^-2) ≈ 3.4076059644; logsumexp(1000 × 3) =
    // 1000 + ln 3.
    let lse0 = 3.0 + (1.0 + (-1f64).exp() + (-2f64).exp()).ln();
    let lse1 = 1000.0 + 3f64.ln();
    assert!((lse0 - 3.4076059644).abs() < 1e-9);
    let got = apply(f64s(&[2, 3], &x), |x| x.logsumexp(&[1]));
    assert_eq!(got.shape().dims(), &[2]);
    assert_close(&got, &[lse0, lse1], 1e-15);
    let got = apply(f32s(&[2, 3], &x.map(|v| v as f32)), |x| x.logsumexp(&[-1]));
    assert_close(&got, &[lse0, lse1], 1e-6);
}

#[test]
fn mean_and_var() {
    // x = [[1, 2, 3], [2, 4, 9]]
    let x = [1.0, 2.0, 3.0, 2.0, 4.0, 9.0];
    let got = apply(f64s(&[2, 3], &x), |x| x.mean(&[1]));
    assert_f64_exact(&got, &[2.0, 5.0]);
    let got = apply(f32s(&[2, 3], &x.map(|v| v as f32)), |x| x.mean(&[0]));
    assert_f32_exact(&got, &[1.5, 3.0, 6.0]);
    let got = apply(f64s(&[2, 3], &x), |x| x.mean(&[0, 1]));
    assert_close(&got, &[21.0 / 6.0], 1e-15);
    // Biased variance: row 0: (1 + 0 + 1) / 3; row 1: (9 + 1 + 16) / 3.
    let got = apply(f64s(&[2, 3], &x), |x| x.var(&[1]));
    assert_close(&got, &[2.0 / 3.0, 26.0 / 3.0], 1e-15);
    let got = apply(f32s(&[2, 3], &x.map(|v| v as f32)), |x| x.var(&[0]));
    assert_close(&got, &[0.25, 1.0, 9.0], 1e-7);
}

#[test]
fn layer_norm() {
    let x = [1.0, 2.0, 3.0, 2.0, 4.0, 9.0];
    let gamma = [1.0, 2.0, 0.5];
    let beta = [0.0, 1.0, -1.0];
    let eps = 1e-5;
    let want: Vec<f64> = x
        .chunks(3)
        .flat_map(|row| {
            let mean = row.iter().sum::<f64>() / 3.0;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 3.0;
            let inv = 1.0 / (var + eps).sqrt();
            (0..3).map(move |i| (row[i] - mean) * inv * gamma[i] + beta[i])
        })
        .collect();
    for dtype in [DType::F32, DType::F64] {
        let b = Builder::new("layer_norm");
        let xi = b.input("x", dtype, [2, 3]);
        let g = b.parameter("gamma", dtype, [3]);
        let be = b.parameter("beta", dtype, [3]);
        let y = xi.layer_norm(g, be, eps);
        let fs = feeds(vec![
            ("x", HostTensor::from_f64_as(dtype, [2, 3], &x).unwrap()),
            (
                "gamma",
                HostTensor::from_f64_as(dtype, [3], &gamma).unwrap(),
            ),
            ("beta", HostTensor::from_f64_as(dtype, [3], &beta).unwrap()),
        ]);
        let tol = if dtype == DType::F32 { 1e-6 } else { 1e-14 };
        assert_close(&eval(&b, y, &fs), &want, tol);
    }
    // Row 0 by hand (gamma 1, beta 0, eps 0): (x - 2) / sqrt(2/3) = [-1.2247449, 0, 1.2247449].
    let b = Builder::new("layer_norm_hand");
    let xi = b.input("x", DType::F64, [3]);
    let one = b.constant(DType::F64, [3], &[1.0; 3]);
    let zero = b.constant(DType::F64, [3], &[0.0; 3]);
    let got = eval(
        &b,
        xi.layer_norm(one, zero, 0.0),
        &feeds(vec![("x", f64s(&[3], &x[..3]))]),
    );
    assert_close(&got, &[-1.224744871391589, 0.0, 1.224744871391589], 1e-15);
}

fn cross_entropy(logits: HostTensor, labels: &[i32]) -> HostTensor {
    let b = Builder::new("cross_entropy");
    let l = b.input("logits", logits.dtype(), logits.shape().clone());
    let y = b.input("labels", DType::I32, [labels.len()]);
    let fs = feeds(vec![
        ("logits", logits),
        ("labels", i32s(&[labels.len()], labels)),
    ]);
    eval(&b, l.cross_entropy(y), &fs)
}

#[test]
fn cross_entropy_2x3_by_hand() {
    // logits [[1, 2, 3], [1, 1, 1]], labels [2, 0]:
    // row 0: lse = 3.4076059644, minus logit 3 → 0.4076059644;
    // row 1: lse = 1 + ln 3 = 2.0986122887, minus logit 1 → ln 3 = 1.0986122887;
    // mean = 0.7531091265.
    let logits = [1.0, 2.0, 3.0, 1.0, 1.0, 1.0];
    let got = cross_entropy(f64s(&[2, 3], &logits), &[2, 0]);
    assert_eq!(got.shape().rank(), 0);
    assert_close(&got, &[0.7531091265], 1e-10);
    let got = cross_entropy(f32s(&[2, 3], &logits.map(|v| v as f32)), &[2, 0]);
    assert_close(&got, &[0.7531091265], 1e-6);
    // An out-of-range label selects no logit: row 1 contributes its full lse.
    let got = cross_entropy(f64s(&[2, 3], &logits), &[2, 5]);
    assert_close(&got, &[(0.4076059644 + 2.0986122887) / 2.0], 1e-10);
}

#[test]
fn mse() {
    // ((1-0)^2 + (2-4)^2 + (-1-(-1))^2 + (0.5-2)^2) / 4 = (1 + 4 + 0 + 2.25) / 4 = 1.8125
    let b = Builder::new("mse");
    let p = b.input("p", DType::F32, [2, 2]);
    let t = b.input("t", DType::F32, [2, 2]);
    let fs = feeds(vec![
        ("p", f32s(&[2, 2], &[1.0, 2.0, -1.0, 0.5])),
        ("t", f32s(&[2, 2], &[0.0, 4.0, -1.0, 2.0])),
    ]);
    let got = eval(&b, p.mse(t), &fs);
    assert_f32_exact(&got, &[1.8125]);
}
