//! The VJP rules on `bf16` and `f16` graphs: every rule that admits a float admits the 16-bit
//! ones. The finite-difference check runs the rules on the graph widened to f64 (so it checks
//! the gradient graph's structure, which the dtype does not change), and the 16-bit gradient
//! itself, evaluated in its own dtype, stays within a few 16-bit roundings of the f32 one.

mod common;

use adjoint_autodiff::grad;
use adjoint_interp::run;
use adjoint_ir::{Builder, DType, Feeds, HostTensor, Tensor, UnaryOp};
use common::{check_with, positive, weighted_sum};

const HALF: [DType; 2] = [DType::Bf16, DType::F16];

#[test]
fn unary_rules_admit_16_bit_floats() {
    for d in HALF {
        // stop_gradient has no gradient by definition (tests/primitives.rs checks it).
        let differentiable = UnaryOp::ALL
            .into_iter()
            .filter(|&u| u != UnaryOp::StopGradient);
        for (i, u) in differentiable.enumerate() {
            let needs_positive = matches!(u, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Recip);
            check_with(
                &format!("{} {d}", u.name()),
                i as u64,
                1e-6,
                |b| {
                    let x = b.parameter("x", d, [2, 3]);
                    (weighted_sum(x.try_unary(u).unwrap()), vec![x])
                },
                |name, v| {
                    if needs_positive && name == "x" {
                        positive(v)
                    }
                },
            );
        }
    }
}

type BinFn = for<'b> fn(Tensor<'b>, Tensor<'b>) -> Tensor<'b>;

#[test]
fn binary_reduce_matmul_and_cast_rules_admit_16_bit_floats() {
    let cases: [(&str, BinFn); 5] = [
        ("add", |a, b| a + b),
        ("mul", |a, b| a * b),
        ("div", |a, b| a / b),
        ("max", |a, b| a.maximum(b)),
        ("matmul", |a, b| a.matmul(b.transpose(0, 1))),
    ];
    for d in HALF {
        for (k, (what, f)) in cases.into_iter().enumerate() {
            check_with(
                &format!("{what} {d}"),
                50 + k as u64,
                1e-6,
                |b| {
                    let x = b.parameter("a", d, [3, 4]);
                    let y = b.parameter("b", d, [3, 4]);
                    (weighted_sum(f(x, y)), vec![x, y])
                },
                |name, v| {
                    if name == "b" {
                        positive(v)
                    }
                },
            );
        }
        check_with(
            &format!("softmax, layer norm, sum and casts {d}"),
            70,
            1e-6,
            |b| {
                let x = b.parameter("x", d, [3, 5]);
                let s = x.softmax(-1);
                let gamma = b.parameter("gamma", d, [5]);
                let beta = b.parameter("beta", d, [5]);
                let n = x.layer_norm(gamma, beta, 1e-5).cast(DType::F32).cast(d);
                let y = (s + n).sum(&[0]);
                (weighted_sum(y), vec![x, gamma, beta])
            },
            |_, _| {},
        );
    }
}

/// `sum(tanh(x @ w1) @ w2)` and the gradients of `w1` and `w2`, in dtype `d`, at the given
/// values (rounded to `d`).
fn mlp_grads(d: DType, xv: &[f64], w1v: &[f64], w2v: &[f64]) -> Vec<HostTensor> {
    let b = Builder::new("mlp");
    let x = b.input("x", d, [4, 8]);
    let w1 = b.parameter("w1", d, [8, 16]);
    let w2 = b.parameter("w2", d, [16, 2]);
    let loss = x.matmul(w1).tanh().matmul(w2).sum_all();
    let (loss, ws) = (loss.id(), [w1.id(), w2.id()]);
    let g = grad(b.finish(), loss, &ws).unwrap();
    let mut feeds = Feeds::new();
    feeds.insert("x".into(), HostTensor::from_f64_as(d, [4, 8], xv).unwrap());
    feeds.insert(
        "w1".into(),
        HostTensor::from_f64_as(d, [8, 16], w1v).unwrap(),
    );
    feeds.insert(
        "w2".into(),
        HostTensor::from_f64_as(d, [16, 2], w2v).unwrap(),
    );
    let out = run(&g.graph, &feeds).unwrap();
    ["w1.grad", "w2.grad"]
        .iter()
        .map(|n| out.output(n).unwrap().clone())
        .collect()
}

#[test]
fn gradients_in_16_bits_track_the_f32_ones() {
    let mut rng = adjoint_ir::Rng::new(3);
    let mut draw = |n: usize| -> Vec<f64> { (0..n).map(|_| rng.uniform_in(-1.0, 1.0)).collect() };
    let (xv, w1v, w2v) = (draw(32), draw(128), draw(32));
    // The 16-bit values, so that both runs start from the same point.
    let round = |d: DType, v: &[f64]| {
        HostTensor::from_f64_as(d, [v.len()], v)
            .unwrap()
            .to_f64_vec()
    };
    for (d, rtol) in [(DType::Bf16, 4e-2), (DType::F16, 5e-3)] {
        let (x, w1, w2) = (round(d, &xv), round(d, &w1v), round(d, &w2v));
        let low = mlp_grads(d, &x, &w1, &w2);
        let wide = mlp_grads(DType::F32, &x, &w1, &w2);
        for (l, w) in low.iter().zip(&wide) {
            assert_eq!(l.dtype(), d);
            let (l, w) = (l.to_f64_vec(), w.to_f64_vec());
            let scale = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (a, b) in l.iter().zip(&w) {
                assert!(
                    (a - b).abs() <= rtol * scale,
                    "{d}: {a} vs {b} (scale {scale})"
                );
            }
        }
    }
}
