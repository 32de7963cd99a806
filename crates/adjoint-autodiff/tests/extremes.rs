//! Every saturating composite and every unary primitive at extreme inputs (±10, ±100, ±1e4,
//! ±inf, 0), in f32 and f64: the value and the gradient of `sum(f(x))` computed by the
//! interpreter are compared with an independent host reference (f64 `std` functions in a
//! stable form, or the known limit). Wherever the reference value is finite, the gradient must
//! be finite too unless the true derivative is itself infinite.

use adjoint_autodiff::grad;
use adjoint_ir::{Builder, DType, Feeds, HostTensor, Tensor};

/// The sweep points; all exact in f32.
const POINTS: [f64; 13] = [
    f64::NEG_INFINITY,
    -1e4,
    -1000.0,
    -100.0,
    -80.0,
    -10.0,
    0.0,
    10.0,
    80.0,
    100.0,
    1000.0,
    1e4,
    f64::INFINITY,
];

/// `f(x)` and `sum(f(x))`'s gradient at `xs`, computed by the interpreter in `dtype`.
fn value_and_grad(
    dtype: DType,
    xs: &[f64],
    f: for<'b> fn(Tensor<'b>) -> Tensor<'b>,
) -> (Vec<f64>, Vec<f64>) {
    let b = Builder::new("extreme");
    let x = b.parameter("x", dtype, [xs.len()]);
    let y = f(x);
    b.output("y", y);
    let loss = y.sum_all();
    let (loss, xid) = (loss.id(), x.id());
    let grads = grad(b.finish(), loss, &[xid]).unwrap();
    let mut feeds = Feeds::new();
    let t = HostTensor::from_f64_as(dtype, [xs.len()], xs).unwrap();
    feeds.insert("x".into(), t);
    let out = adjoint_interp::run(&grads.graph, &feeds).unwrap();
    let get = |name: &str| out.output(name).unwrap().to_f64_vec();
    (get("y"), get("x.grad"))
}

/// Whether `got` matches `want` to the tolerance of `dtype` (equal infinities, both NaN, or a
/// relative error within the dtype's budget with an absolute floor below its normal range).
fn close(dtype: DType, got: f64, want: f64) -> bool {
    close_abs(dtype, got, want, 0.0)
}

/// [`close`] with a further absolute tolerance of `eps_units` machine epsilons of `dtype`.
fn close_abs(dtype: DType, got: f64, want: f64, eps_units: f64) -> bool {
    let (rtol, atol) = match dtype {
        DType::F32 => (1e-5, 1e-43 + eps_units * f32::EPSILON as f64),
        _ => (1e-12, 1e-320 + eps_units * f64::EPSILON),
    };
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return got == want;
    }
    (got - want).abs() <= atol + rtol * want.abs()
}

/// Checks `f` against `reference` (value, derivative) at every point, in f32 and f64.
fn sweep(name: &str, f: for<'b> fn(Tensor<'b>) -> Tensor<'b>, reference: fn(f64) -> (f64, f64)) {
    sweep_with(name, f, reference, 0.0);
}

/// [`sweep`] allowing the value and the gradient an absolute error of `grad_eps` machine
/// epsilons.
fn sweep_with(
    name: &str,
    f: for<'b> fn(Tensor<'b>) -> Tensor<'b>,
    reference: fn(f64) -> (f64, f64),
    grad_eps: f64,
) {
    for dtype in [DType::F32, DType::F64] {
        let (ys, gs) = value_and_grad(dtype, &POINTS, f);
        for ((&x, &y), &g) in POINTS.iter().zip(&ys).zip(&gs) {
            let (want_y, want_g) = reference(x);
            // The reference is computed in f64; an f32 result is that value rounded.
            let (want_y, want_g) = match dtype {
                DType::F32 => (want_y as f32 as f64, want_g as f32 as f64),
                _ => (want_y, want_g),
            };
            assert!(
                close_abs(dtype, y, want_y, grad_eps),
                "{name}({x}) in {dtype}: value {y}, want {want_y}"
            );
            if want_y.is_finite() {
                assert!(
                    g.is_finite() || want_g.is_infinite(),
                    "{name}'({x}) in {dtype}: gradient {g} is not finite, the value {y} is"
                );
                assert!(
                    close_abs(dtype, g, want_g, grad_eps),
                    "{name}'({x}) in {dtype}: gradient {g}, want {want_g}"
                );
            }
        }
    }
}

/// `e^-|x|`, at most 1.
fn tail(x: f64) -> f64 {
    (-x.abs()).exp()
}

/// The logistic function and its derivative `e^-|x| / (1 + e^-|x|)²`, both without overflow.
fn logistic(x: f64) -> (f64, f64) {
    let e = tail(x);
    let s = if x >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    };
    let d = if x.is_infinite() {
        0.0
    } else {
        e / ((1.0 + e) * (1.0 + e))
    };
    (s, d)
}

#[test]
fn sigmoid_extremes() {
    sweep("sigmoid", |x| x.sigmoid(), logistic);
}

/// The case of issue 16: PyTorch gives `[1.8e-35, 0, 0]` for `grad(sum(sigmoid(x)))` (f32).
#[test]
fn sigmoid_gradient_matches_pytorch_in_f32() {
    let (_, g) = value_and_grad(DType::F32, &[-80.0, -100.0, -1000.0], |x| x.sigmoid());
    assert!((g[0] - 1.8048513e-35).abs() < 1e-40, "{g:?}");
    assert!(g[1].is_finite() && g[1] < 1e-43 && g[1] >= 0.0, "{g:?}");
    assert_eq!(g[2], 0.0, "{g:?}");
}

#[test]
fn softplus_and_log_sigmoid_extremes() {
    sweep(
        "softplus",
        |x| x.softplus(),
        |x| (x.max(0.0) + tail(x).ln_1p(), logistic(x).0),
    );
    sweep(
        "log_sigmoid",
        |x| x.log_sigmoid(),
        |x| (x.min(0.0) - tail(x).ln_1p(), logistic(-x).0),
    );
}

#[test]
fn softplus_is_accurate_where_one_plus_e_rounds_to_one() {
    // softplus(-30) = e^-30 (to rounding) although 1 + e^-30 == 1 in f32 and f64 alike.
    for dtype in [DType::F32, DType::F64] {
        let (y, g) = value_and_grad(dtype, &[-30.0, -20.0, -5.0], |x| x.softplus());
        for (i, x) in [-30.0f64, -20.0, -5.0].into_iter().enumerate() {
            let want = x.exp().ln_1p();
            let tol = if dtype == DType::F32 { 1e-6 } else { 1e-14 };
            assert!((y[i] - want).abs() <= tol * want, "{dtype} {x}: {}", y[i]);
            assert!((g[i] - logistic(x).0).abs() <= tol * g[i], "{dtype} {x}");
        }
    }
}

/// The tanh-form GELU `x · sigmoid(2 sqrt(2/pi) (x + 0.044715 x³))` (the same function as
/// `0.5 x (1 + tanh(…))`, without cancellation) and its derivative; at `|x| >= 100` the gate is
/// within `e^-71514` of 0 or 1, so the value is 0 or `x`; NaN at `-inf`, as PyTorch's formula.
fn gelu_tanh(x: f64) -> (f64, f64) {
    if x == f64::NEG_INFINITY {
        return (f64::NAN, f64::NAN);
    }
    if x <= -100.0 {
        return (0.0, 0.0);
    }
    if x >= 100.0 {
        return (x, 1.0);
    }
    let c = (2.0 / std::f64::consts::PI).sqrt();
    let z = c * (x + 0.044715 * x * x * x);
    let (s, ds) = logistic(2.0 * z);
    let dz = c * (1.0 + 3.0 * 0.044715 * x * x);
    (x * s, s + x * ds * 2.0 * dz)
}

#[test]
fn gelu_extremes() {
    // 1 + tanh cancels for negative x: values and gradients are accurate to an absolute
    // rounding error there (as PyTorch's), e.g. gelu(-10) is 0 instead of -1.6e-37 in f32.
    sweep_with("gelu", |x| x.gelu(), gelu_tanh, 4.0);
}

#[test]
fn relu_extremes() {
    // At 0 the gradient of max(x, 0) is shared half and half with the constant (a tie).
    sweep(
        "relu",
        |x| x.relu(),
        |x| {
            let d = if x > 0.0 {
                1.0
            } else if x == 0.0 {
                0.5
            } else {
                0.0
            };
            (x.max(0.0), d)
        },
    );
}

#[test]
fn unary_primitive_extremes() {
    sweep("exp", |x| x.exp(), |x| (x.exp(), x.exp()));
    sweep("neg", |x| -x, |x| (-x, -1.0));
    sweep(
        "abs",
        |x| x.abs(),
        |x| (x.abs(), x.signum() * (x != 0.0) as u8 as f64),
    );
    // tanh' is computed as 1 - tanh², accurate to an absolute epsilon (as PyTorch's): at
    // |x| = 10 in f32 tanh rounds to ±1 and the derivative to 0.
    sweep_with(
        "tanh",
        |x| x.tanh(),
        |x| {
            let e = (-2.0 * x.abs()).exp();
            // 1 - tanh² = 4e / (1 + e)² with e = e^-2|x|.
            (x.tanh(), 4.0 * e / ((1.0 + e) * (1.0 + e)))
        },
        2.0,
    );
    // The log, sqrt and recip of negative numbers are NaN (skipped); at 0 the derivative is
    // infinite and so is the computed one.
    sweep("log", |x| x.log(), |x| (x.ln(), 1.0 / x));
    sweep("sqrt", |x| x.sqrt(), |x| (x.sqrt(), 0.5 / x.sqrt()));
    sweep("recip", |x| x.recip(), |x| (1.0 / x, -1.0 / (x * x)));
    sweep("sin", |x| x.sin(), |x| (x.sin(), x.cos()));
    sweep("cos", |x| x.cos(), |x| (x.cos(), -x.sin()));
    sweep("square", |x| x.square(), |x| (x * x, 2.0 * x));
}

/// The value of `f(x)` (output `y`) and the gradient of `loss(f(x))` at the rows `x` `[R, C]`.
fn rows_value_and_grad(
    dtype: DType,
    rows: &[&[f64]],
    f: for<'b> fn(Tensor<'b>) -> Tensor<'b>,
    loss: for<'b> fn(Tensor<'b>) -> Tensor<'b>,
) -> (Vec<f64>, Vec<f64>) {
    let (r, c) = (rows.len(), rows[0].len());
    let b = Builder::new("rows");
    let x = b.parameter("x", dtype, [r, c]);
    let y = f(x);
    b.output("y", y);
    let l = loss(y);
    let (l, xid) = (l.id(), x.id());
    let grads = grad(b.finish(), l, &[xid]).unwrap();
    let flat: Vec<f64> = rows.iter().flat_map(|row| row.iter().copied()).collect();
    let mut feeds = Feeds::new();
    feeds.insert(
        "x".into(),
        HostTensor::from_f64_as(dtype, [r, c], &flat).unwrap(),
    );
    let out = adjoint_interp::run(&grads.graph, &feeds).unwrap();
    let get = |name: &str| out.output(name).unwrap().to_f64_vec();
    (get("y"), get("x.grad"))
}

fn assert_all_close(dtype: DType, what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            close(dtype, *g, *w),
            "{what} in {dtype}: got {got:?}, want {want:?}"
        );
    }
}

const NEG_INF: f64 = f64::NEG_INFINITY;

#[test]
fn softmax_with_masked_and_extreme_rows() {
    // Rows: all masked; one masked entry; a huge spread; equal huge values.
    let rows: [&[f64]; 4] = [
        &[NEG_INF, NEG_INF, NEG_INF],
        &[0.0, NEG_INF, 0.0],
        &[1e4, -1e4, 0.0],
        &[1e4, 1e4, 1e4],
    ];
    // The loss weights the entries 1, 2, 3 in every row.
    fn weighted(y: Tensor<'_>) -> Tensor<'_> {
        let w = y.builder().constant(y.dtype(), [1, 3], &[1.0, 2.0, 3.0]);
        (y * w).sum_all()
    }
    let third = 1.0 / 3.0;
    let want_y = [
        0.0, 0.0, 0.0, 0.5, 0.0, 0.5, 1.0, 0.0, 0.0, third, third, third,
    ];
    // d/dx_j sum_k w_k y_k = y_j (w_j - sum_k w_k y_k); a fully masked row gets 0.
    let want_g = [
        0.0, 0.0, 0.0, -0.5, 0.0, 0.5, 0.0, 0.0, 0.0, -third, 0.0, third,
    ];
    for dtype in [DType::F32, DType::F64] {
        let (y, g) = rows_value_and_grad(dtype, &rows[1..], |x| x.softmax(-1), weighted);
        assert_all_close(dtype, "softmax", &y, &want_y[3..]);
        for (a, b) in g.iter().zip(&want_g[3..]) {
            assert!(a.is_finite() && (a - b).abs() < 1e-6, "{dtype}: {g:?}");
        }
        // With the guarded softmax a fully masked row gives zeros, not NaN.
        let (y, g) = rows_value_and_grad(dtype, &rows, |x| x.softmax_or_zeros(-1), weighted);
        assert_all_close(dtype, "softmax_or_zeros", &y, &want_y);
        for (a, b) in g.iter().zip(&want_g) {
            assert!(a.is_finite() && (a - b).abs() < 1e-6, "{dtype}: {g:?}");
        }
    }
}

#[test]
fn logsumexp_and_log_softmax_with_masked_and_extreme_rows() {
    let rows: [&[f64]; 3] = [&[0.0, NEG_INF], &[1e4, 1e4], &[-1e4, -1e4]];
    let ln2 = 2f64.ln();
    for dtype in [DType::F32, DType::F64] {
        let (y, g) = rows_value_and_grad(dtype, &rows, |x| x.logsumexp(&[1]), |y| y.sum_all());
        assert_all_close(dtype, "logsumexp", &y, &[0.0, 1e4 + ln2, -1e4 + ln2]);
        assert_all_close(dtype, "logsumexp'", &g, &[1.0, 0.0, 0.5, 0.5, 0.5, 0.5]);
        // log_softmax of a row with a masked entry: [0, -inf]; the gradient of its first
        // entry is finite.
        fn first(y: Tensor<'_>) -> Tensor<'_> {
            y.slice(1, 0, 1, 1).sum_all()
        }
        let (y, g) = rows_value_and_grad(dtype, &[&[0.0, NEG_INF]], |x| x.log_softmax(1), first);
        assert_eq!(y, [0.0, NEG_INF], "{dtype}");
        assert_all_close(dtype, "log_softmax'", &g, &[0.0, 0.0]);
    }
}

#[test]
fn cross_entropy_with_a_masked_logit_is_finite() {
    // Logits [0, -inf, 1], label 2: loss = log(1 + e) - 1, gradient softmax - onehot.
    for dtype in [DType::F32, DType::F64] {
        let b = Builder::new("ce");
        let z = b.parameter("z", dtype, [1, 3]);
        let y = b.constant(DType::I32, [1], &[2.0]);
        let loss = z.cross_entropy(y);
        b.output("loss", loss);
        let (loss, zid) = (loss.id(), z.id());
        let grads = grad(b.finish(), loss, &[zid]).unwrap();
        let mut feeds = Feeds::new();
        let t = HostTensor::from_f64_as(dtype, [1, 3], &[0.0, NEG_INF, 1.0]).unwrap();
        feeds.insert("z".into(), t);
        let out = adjoint_interp::run(&grads.graph, &feeds).unwrap();
        let l = out.output("loss").unwrap().to_f64_vec();
        let e = 1f64.exp();
        assert_all_close(dtype, "ce", &l, &[(1.0 + e).ln() - 1.0]);
        let g = out.output("z.grad").unwrap().to_f64_vec();
        let p0 = 1.0 / (1.0 + e);
        assert_all_close(dtype, "ce'", &g, &[p0, 0.0, -p0]);
    }
}
