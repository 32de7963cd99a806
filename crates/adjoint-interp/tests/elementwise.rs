//! Unary, binary, compare, select and cast against hand-computed values, for every dtype each
//! op supports, including the special values (NaN, ±inf, -0, i32 wrapping and saturation).

mod common;

use adjoint_ir::{Builder, DType, HostTensor, Tensor, UnaryOp};
use common::*;

/// A builder function of two tensors.
type BinFn = for<'a> fn(Tensor<'a>, Tensor<'a>) -> Tensor<'a>;

const NAN: f32 = f32::NAN;
const INF: f32 = f32::INFINITY;

/// The unary op `u` applied to a one-input graph fed `x`.
fn unary(u: UnaryOp, x: HostTensor) -> HostTensor {
    let b = Builder::new("unary");
    let xi = b.input("x", x.dtype(), x.shape().clone());
    let y = xi.try_unary(u).unwrap();
    eval(&b, y, &feeds(vec![("x", x)]))
}

/// `f(a, b)` on a two-input graph.
fn binary(a: HostTensor, b_val: HostTensor, f: BinFn) -> HostTensor {
    let b = Builder::new("binary");
    let x = b.input("a", a.dtype(), a.shape().clone());
    let y = b.input("b", b_val.dtype(), b_val.shape().clone());
    let out = f(x, y);
    eval(&b, out, &feeds(vec![("a", a), ("b", b_val)]))
}

// x = [0, -0, 1, -2, 0.5, inf, -inf, NaN]
const X32: [f32; 8] = [0.0, -0.0, 1.0, -2.0, 0.5, INF, -INF, NAN];

#[test]
fn exact_unary_ops_f32() {
    let x = || f32s(&[8], &X32);
    assert_f32_exact(
        &unary(UnaryOp::Neg, x()),
        &[-0.0, 0.0, -1.0, 2.0, -0.5, -INF, INF, NAN],
    );
    assert_f32_exact(
        &unary(UnaryOp::Abs, x()),
        &[0.0, 0.0, 1.0, 2.0, 0.5, INF, INF, NAN],
    );
    assert_f32_exact(
        &unary(UnaryOp::Sign, x()),
        &[0.0, 0.0, 1.0, -1.0, 1.0, 1.0, -1.0, NAN],
    );
    assert_f32_exact(
        &unary(UnaryOp::Recip, x()),
        &[INF, -INF, 1.0, -0.5, 2.0, 0.0, -0.0, NAN],
    );
    assert_f32_exact(
        &unary(UnaryOp::Sqrt, x()),
        &[
            0.0,
            -0.0,
            1.0,
            NAN,
            std::f32::consts::FRAC_1_SQRT_2,
            INF,
            NAN,
            NAN,
        ],
    );
}

#[test]
fn transcendental_unary_ops_f32() {
    let x = || f32s(&[8], &X32);
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    let cases: [(UnaryOp, [f64; 8]); 5] = [
        (
            UnaryOp::Exp,
            [
                1.0,
                1.0,
                std::f64::consts::E,
                0.135_335_28,
                1.648_721_3,
                inf,
                0.0,
                nan,
            ],
        ),
        (
            UnaryOp::Log,
            [-inf, -inf, 0.0, nan, -std::f64::consts::LN_2, inf, nan, nan],
        ),
        (
            UnaryOp::Tanh,
            [
                0.0,
                -0.0,
                0.761_594_2,
                -0.964_027_6,
                0.462_117_16,
                1.0,
                -1.0,
                nan,
            ],
        ),
        (
            UnaryOp::Sin,
            [
                0.0,
                -0.0,
                0.841_470_96,
                -0.909_297_4,
                0.479_425_55,
                nan,
                nan,
                nan,
            ],
        ),
        (
            UnaryOp::Cos,
            [
                1.0,
                1.0,
                0.540_302_3,
                -0.416_146_84,
                0.877_582_56,
                nan,
                nan,
                nan,
            ],
        ),
    ];
    for (op, want) in cases {
        let got = unary(op, x());
        assert_close(&got, &want, 1e-6);
    }
}

/// An `f32` function of one argument.
type F32Fn = fn(f32) -> f32;

#[test]
fn f32_math_is_computed_in_f32() {
    // Exactly what compiled f32 code calling the f32 functions produces.
    let xs: Vec<f32> = (0..200).map(|i| (i as f32 - 100.0) * 0.173).collect();
    let x = || f32s(&[xs.len()], &xs);
    let fns: [(UnaryOp, F32Fn); 4] = [
        (UnaryOp::Exp, f32::exp),
        (UnaryOp::Tanh, f32::tanh),
        (UnaryOp::Sin, f32::sin),
        (UnaryOp::Cos, f32::cos),
    ];
    for (op, f) in fns {
        let want: Vec<f32> = xs.iter().map(|&v| f(v)).collect();
        assert_f32_exact(&unary(op, x()), &want);
    }
}

#[test]
fn unary_ops_f64() {
    let x = || {
        f64s(
            &[8],
            &[
                0.0,
                -0.0,
                1.0,
                -2.0,
                0.5,
                f64::INFINITY,
                -f64::INFINITY,
                f64::NAN,
            ],
        )
    };
    let (nan, inf) = (f64::NAN, f64::INFINITY);
    assert_f64_exact(
        &unary(UnaryOp::Neg, x()),
        &[-0.0, 0.0, -1.0, 2.0, -0.5, -inf, inf, nan],
    );
    assert_f64_exact(
        &unary(UnaryOp::Abs, x()),
        &[0.0, 0.0, 1.0, 2.0, 0.5, inf, inf, nan],
    );
    assert_f64_exact(
        &unary(UnaryOp::Sign, x()),
        &[0.0, 0.0, 1.0, -1.0, 1.0, 1.0, -1.0, nan],
    );
    assert_f64_exact(
        &unary(UnaryOp::Recip, x()),
        &[inf, -inf, 1.0, -0.5, 2.0, 0.0, -0.0, nan],
    );
    assert_f64_exact(
        &unary(UnaryOp::Sqrt, x()),
        &[
            0.0,
            -0.0,
            1.0,
            nan,
            std::f64::consts::FRAC_1_SQRT_2,
            inf,
            nan,
            nan,
        ],
    );
    let cases: [(UnaryOp, [f64; 8]); 5] = [
        (
            UnaryOp::Exp,
            [
                1.0,
                1.0,
                std::f64::consts::E,
                0.1353352832366127,
                1.6487212707001282,
                inf,
                0.0,
                nan,
            ],
        ),
        (
            UnaryOp::Log,
            [-inf, -inf, 0.0, nan, -std::f64::consts::LN_2, inf, nan, nan],
        ),
        (
            UnaryOp::Tanh,
            [
                0.0,
                -0.0,
                0.7615941559557649,
                -0.9640275800758169,
                0.46211715726000974,
                1.0,
                -1.0,
                nan,
            ],
        ),
        (
            UnaryOp::Sin,
            [
                0.0,
                -0.0,
                0.8414709848078965,
                -0.9092974268256817,
                0.479425538604203,
                nan,
                nan,
                nan,
            ],
        ),
        (
            UnaryOp::Cos,
            [
                1.0,
                1.0,
                0.5403023058681398,
                -0.4161468365471424,
                0.8775825618903728,
                nan,
                nan,
                nan,
            ],
        ),
    ];
    for (op, want) in cases {
        assert_close(&unary(op, x()), &want, 1e-15);
    }
}

#[test]
fn unary_ops_i32_wrap() {
    let x = || i32s(&[5], &[0, 5, -7, i32::MIN, i32::MAX]);
    let neg = unary(UnaryOp::Neg, x());
    assert_eq!(neg.as_i32().unwrap(), &[0, -5, 7, i32::MIN, -i32::MAX]);
    let abs = unary(UnaryOp::Abs, x());
    assert_eq!(abs.as_i32().unwrap(), &[0, 5, 7, i32::MIN, i32::MAX]);
    let sign = unary(UnaryOp::Sign, x());
    assert_eq!(sign.as_i32().unwrap(), &[0, 1, -1, -1, 1]);
}

// a, b cover ordinary values, NaN on either side, infinities and signed zeros.
const A32: [f32; 8] = [1.0, -2.0, 0.5, NAN, INF, 3.0, -0.0, 0.0];
const B32: [f32; 8] = [2.0, 3.0, -4.0, 1.0, INF, NAN, 0.0, -0.0];

#[test]
fn binary_ops_f32() {
    let ab = || (f32s(&[8], &A32), f32s(&[8], &B32));
    let run = |f: BinFn| {
        let (a, b) = ab();
        binary(a, b, f)
    };
    assert_f32_exact(
        &run(|a, b| a + b),
        &[3.0, 1.0, -3.5, NAN, INF, NAN, 0.0, 0.0],
    );
    assert_f32_exact(
        &run(|a, b| a - b),
        &[-1.0, -5.0, 4.5, NAN, NAN, NAN, -0.0, 0.0],
    );
    assert_f32_exact(
        &run(|a, b| a * b),
        &[2.0, -6.0, -2.0, NAN, INF, NAN, -0.0, -0.0],
    );
    assert_f32_exact(
        &run(|a, b| a / b),
        &[0.5, -2.0 / 3.0, -0.125, NAN, NAN, NAN, NAN, NAN],
    );
    assert_f32_exact(
        &run(|a, b| a.maximum(b)),
        &[2.0, 3.0, 0.5, NAN, INF, NAN, 0.0, 0.0],
    );
    assert_f32_exact(
        &run(|a, b| a.minimum(b)),
        &[1.0, -2.0, -4.0, NAN, INF, NAN, -0.0, -0.0],
    );
    assert_f32_exact(
        &run(|a, b| a.pow(b)),
        &[1.0, -8.0, 16.0, NAN, INF, NAN, 1.0, 1.0],
    );
    // powf rules: a negative base to a fractional power is NaN; 1^NaN is 1.
    let pow = binary(
        f32s(&[3], &[-8.0, 1.0, 2.0]),
        f32s(&[3], &[1.0 / 3.0, NAN, 0.5]),
        |a, b| a.pow(b),
    );
    assert_f32_exact(&pow, &[NAN, 1.0, std::f32::consts::SQRT_2]);
}

#[test]
fn binary_ops_f64() {
    let a: Vec<f64> = A32.iter().map(|&v| v as f64).collect();
    let b: Vec<f64> = B32.iter().map(|&v| v as f64).collect();
    let (nan, inf) = (f64::NAN, f64::INFINITY);
    let run = |f: BinFn| binary(f64s(&[8], &a), f64s(&[8], &b), f);
    assert_f64_exact(
        &run(|a, b| a + b),
        &[3.0, 1.0, -3.5, nan, inf, nan, 0.0, 0.0],
    );
    assert_f64_exact(
        &run(|a, b| a - b),
        &[-1.0, -5.0, 4.5, nan, nan, nan, -0.0, 0.0],
    );
    assert_f64_exact(
        &run(|a, b| a * b),
        &[2.0, -6.0, -2.0, nan, inf, nan, -0.0, -0.0],
    );
    assert_f64_exact(
        &run(|a, b| a / b),
        &[0.5, -0.6666666666666666, -0.125, nan, nan, nan, nan, nan],
    );
    assert_f64_exact(
        &run(|a, b| a.maximum(b)),
        &[2.0, 3.0, 0.5, nan, inf, nan, 0.0, 0.0],
    );
    assert_f64_exact(
        &run(|a, b| a.minimum(b)),
        &[1.0, -2.0, -4.0, nan, inf, nan, -0.0, -0.0],
    );
    assert_f64_exact(
        &run(|a, b| a.pow(b)),
        &[1.0, -8.0, 16.0, nan, inf, nan, 1.0, 1.0],
    );
}

#[test]
fn binary_ops_i32_wrap() {
    let a = [i32::MAX, i32::MIN, 7, -3, 65536, i32::MAX];
    let b = [1, 1, -2, 5, 65536, 2];
    let run = |f: BinFn| {
        binary(i32s(&[6], &a), i32s(&[6], &b), f)
            .as_i32()
            .unwrap()
            .to_vec()
    };
    assert_eq!(
        run(|a, b| a + b),
        [i32::MIN, i32::MIN + 1, 5, 2, 131072, i32::MIN + 1]
    );
    assert_eq!(
        run(|a, b| a - b),
        [i32::MAX - 1, i32::MAX, 9, -8, 0, i32::MAX - 2]
    );
    assert_eq!(run(|a, b| a * b), [i32::MAX, i32::MIN, -14, -15, 0, -2]);
    assert_eq!(
        run(|a, b| a.maximum(b)),
        [i32::MAX, 1, 7, 5, 65536, i32::MAX]
    );
    assert_eq!(run(|a, b| a.minimum(b)), [1, i32::MIN, -2, -3, 65536, 2]);
}

fn compare_all(a: HostTensor, b: HostTensor) -> Vec<Vec<bool>> {
    let fs: [BinFn; 6] = [
        |a, b| a.lt(b),
        |a, b| a.le(b),
        |a, b| a.eq(b),
        |a, b| a.ne(b),
        |a, b| a.gt(b),
        |a, b| a.ge(b),
    ];
    fs.iter()
        .map(|f| binary(a.clone(), b.clone(), *f).as_bool().unwrap().to_vec())
        .collect()
}

#[test]
fn comparisons_follow_ieee_for_floats() {
    let (t, f) = (true, false);
    // lt, le, eq, ne, gt, ge of a = [1, 2, NaN, -0, 3] against b = [2, 2, NaN, 0, 1].
    let want = vec![
        vec![t, f, f, f, f],
        vec![t, t, f, t, f],
        vec![f, t, f, t, f],
        vec![t, f, t, f, t],
        vec![f, f, f, f, t],
        vec![f, t, f, t, t],
    ];
    let a = [1.0, 2.0, f64::NAN, -0.0, 3.0];
    let b = [2.0, 2.0, f64::NAN, 0.0, 1.0];
    assert_eq!(compare_all(f64s(&[5], &a), f64s(&[5], &b)), want);
    let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
    let b32: Vec<f32> = b.iter().map(|&v| v as f32).collect();
    assert_eq!(compare_all(f32s(&[5], &a32), f32s(&[5], &b32)), want);
}

#[test]
fn comparisons_i32_and_bool() {
    let (t, f) = (true, false);
    let got = compare_all(i32s(&[3], &[1, 2, i32::MIN]), i32s(&[3], &[2, 2, i32::MAX]));
    assert_eq!(
        got,
        vec![
            vec![t, f, t],
            vec![t, t, t],
            vec![f, t, f],
            vec![t, f, t],
            vec![f, f, f],
            vec![f, t, f],
        ]
    );
    let a = || bools(&[4], &[t, t, f, f]);
    let b = || bools(&[4], &[t, f, t, f]);
    assert_eq!(
        binary(a(), b(), |a, b| a.eq(b)).as_bool().unwrap(),
        &[t, f, f, t]
    );
    assert_eq!(
        binary(a(), b(), |a, b| a.ne(b)).as_bool().unwrap(),
        &[f, t, t, f]
    );
}

/// `select(cond, a, b)` on three inputs.
fn select(cond: &[bool], a: HostTensor, b_val: HostTensor) -> HostTensor {
    let b = Builder::new("select");
    let c = b.input("c", DType::Bool, [cond.len()]);
    let x = b.input("a", a.dtype(), a.shape().clone());
    let y = b.input("b", b_val.dtype(), b_val.shape().clone());
    let out = c.select(x, y);
    let fs = feeds(vec![
        ("c", bools(&[cond.len()], cond)),
        ("a", a),
        ("b", b_val),
    ]);
    eval(&b, out, &fs)
}

#[test]
fn select_every_dtype() {
    let c = [true, false, false, true];
    let got = select(
        &c,
        f32s(&[4], &[1.0, 2.0, 3.0, NAN]),
        f32s(&[4], &[-1.0, NAN, -3.0, -4.0]),
    );
    assert_f32_exact(&got, &[1.0, NAN, -3.0, NAN]);
    let got = select(
        &c,
        f64s(&[4], &[1.0, 2.0, 3.0, 4.0]),
        f64s(&[4], &[-1.0, -2.0, -3.0, -4.0]),
    );
    assert_f64_exact(&got, &[1.0, -2.0, -3.0, 4.0]);
    let got = select(&c, i32s(&[4], &[1, 2, 3, 4]), i32s(&[4], &[-1, -2, -3, -4]));
    assert_eq!(got.as_i32().unwrap(), &[1, -2, -3, 4]);
    let got = select(&c, bools(&[4], &[true; 4]), bools(&[4], &[false; 4]));
    assert_eq!(got.as_bool().unwrap(), &c);
}

fn cast(x: HostTensor, to: DType) -> HostTensor {
    let b = Builder::new("cast");
    let xi = b.input("x", x.dtype(), x.shape().clone());
    let y = xi.cast(to);
    let out = eval(&b, y, &feeds(vec![("x", x)]));
    assert_eq!(out.dtype(), to);
    out
}

#[test]
fn casts_from_f32() {
    let x = f32s(&[5], &[1.5, -0.0, NAN, INF, 0.1]);
    assert_f64_exact(
        &cast(x, DType::F64),
        &[1.5, -0.0, f64::NAN, f64::INFINITY, 0.10000000149011612],
    );
    // Truncation toward zero, saturation, NaN → 0.
    let x = f32s(&[7], &[2.9, -2.9, NAN, 3e9, -3e9, -0.5, -INF]);
    assert_eq!(
        cast(x, DType::I32).as_i32().unwrap(),
        &[2, -2, 0, i32::MAX, i32::MIN, 0, i32::MIN]
    );
    let x = f32s(&[4], &[0.0, -0.0, 2.5, NAN]);
    assert_eq!(
        cast(x, DType::Bool).as_bool().unwrap(),
        &[false, false, true, true]
    );
}

#[test]
fn casts_from_f64() {
    let x = f64s(&[4], &[0.1, 1e40, -1e40, f64::NAN]);
    assert_f32_exact(&cast(x, DType::F32), &[0.1, INF, -INF, NAN]);
    let x = f64s(&[5], &[2147483647.9, -2147483648.9, 1e300, -7.99, f64::NAN]);
    assert_eq!(
        cast(x, DType::I32).as_i32().unwrap(),
        &[i32::MAX, i32::MIN, i32::MAX, -7, 0]
    );
    let x = f64s(&[3], &[0.0, 1e-300, -0.0]);
    assert_eq!(
        cast(x, DType::Bool).as_bool().unwrap(),
        &[false, true, false]
    );
}

#[test]
fn casts_from_i32() {
    // 2^24 + 1 rounds to the nearest even f32, 2^24.
    let x = i32s(&[3], &[16_777_217, -3, i32::MAX]);
    assert_f32_exact(&cast(x, DType::F32), &[16_777_216.0, -3.0, 2_147_483_648.0]);
    let x = i32s(&[2], &[i32::MIN, 5]);
    assert_f64_exact(&cast(x, DType::F64), &[-2_147_483_648.0, 5.0]);
    let x = i32s(&[3], &[0, -1, 7]);
    assert_eq!(
        cast(x, DType::Bool).as_bool().unwrap(),
        &[false, true, true]
    );
}

#[test]
fn casts_from_bool() {
    let x = || bools(&[2], &[true, false]);
    assert_f32_exact(&cast(x(), DType::F32), &[1.0, 0.0]);
    assert_f64_exact(&cast(x(), DType::F64), &[1.0, 0.0]);
    assert_eq!(cast(x(), DType::I32).as_i32().unwrap(), &[1, 0]);
}

#[test]
fn cast_to_the_same_dtype_is_the_identity() {
    // The builder never emits it, but the op set allows it.
    use adjoint_ir::{Graph, Op, TensorType};
    let mut g = Graph::new("same");
    let ty = TensorType::new(DType::F32, [3]);
    let x = g
        .add(
            Op::Input {
                name: "x".into(),
                ty,
            },
            &[],
        )
        .unwrap();
    let y = g.add(Op::Cast { to: DType::F32 }, &[x]).unwrap();
    g.set_output("y", y);
    let fs = feeds(vec![("x", f32s(&[3], &[-0.0, NAN, 1.5]))]);
    let r = adjoint_interp::run(&g, &fs).unwrap();
    assert_f32_exact(r.output("y").unwrap(), &[-0.0, NAN, 1.5]);
}
