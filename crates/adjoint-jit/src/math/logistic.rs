//! The logistic family: `tanh` and `sigmoid`, both built on [`exp_vector`].

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::Value;
use cranelift_frontend::FunctionBuilder;

use super::exp::{exp_clamped, exp_vector};
use super::lanes::{map_unary, Lanes};
use super::MathOptions;

/// Below this `|x|`, `tanh` is the odd polynomial; above, `1 - 2/(e^{2|x|} + 1)`, whose
/// cancellation at this point costs less than one ulp.
pub(crate) const TANH_SMALL: f64 = 0.625;

/// `(tanh(√z) - √z) / z^{3/2}` on `z` in `[0, 0.625²]`, near-minimax fits.
/// Truncation error of `x + x³ P(x²)`: 2^-25.8 relative (f32), 2^-54.1 (f64).
pub(crate) const TANH_F32: [f32; 5] = [
    -3.3333328e-1,
    1.333277e-1,
    -5.3850908e-2,
    2.099718e-2,
    -6.096714e-3,
];
const TANH_F64: [f64; 11] = [
    -0.3333333333333332,
    0.13333333333326658,
    -0.05396825396139557,
    0.021869488260559115,
    -0.008863229830925709,
    0.0035920589774734554,
    -0.001455309297534642,
    0.0005874372860094381,
    -0.00023077616269519857,
    7.959955735264808e-05,
    -1.724487449484433e-05,
];

/// Emits `tanh(x)` for `x` of type `f32x4`, `f64x2`, `f32` or `f64`.
///
/// For `|x| < 0.625` an odd polynomial `x + x³ P(x²)` (no cancellation near 0: `tanh(x) = x`
/// for tiny and subnormal `x`, and `tanh(-0) = -0`); above, `1 - 2/(e^{2|x|} + 1)` with `|x|`
/// clamped at [`TANH_SATURATED_F32`] (`F64`), beyond which the result rounds to exactly 1, so
/// the exponential needs no overflow or underflow handling. NaN takes the polynomial's lane.
/// The sign of `x` is put back last, so the result is odd exactly.
///
/// Special values: `tanh(±inf) = ±1`, `tanh(NaN) = NaN`.
///
/// Accuracy (measured by `tests/math_accuracy.rs`, with or without FMA): f32 at most 1 ulp
/// from the correctly rounded result over `[-10, 10]`; f64 at most 2 ulp from Rust's
/// `f64::tanh` over `[-20, 20]` (beyond, both are exactly ±1).
///
/// # Panics
///
/// If `x` has another type.
pub fn emit_tanh(b: &mut FunctionBuilder<'_>, opts: MathOptions, x: Value) -> Value {
    map_unary(b, opts, "emit_tanh", x, tanh_vector)
}

/// `|x|` from which `tanh` rounds to 1: `1 - 2e^{-2|x|}` is within half an ulp of 1 from about
/// 9.01 in f32 and 19.06 in f64.
pub(crate) const TANH_SATURATED_F32: f32 = 10.0;
const TANH_SATURATED_F64: f64 = 20.0;

fn tanh_vector(l: &mut Lanes<'_, '_>, x: Value) -> Value {
    let a = l.abs(x);

    let z = l.mul(a, a);
    let p = l.poly(z, &TANH_F32, &TANH_F64);
    let az = l.mul(a, z);
    let small = l.mul_add(az, p, a);

    let saturated = l.c(TANH_SATURATED_F32, TANH_SATURATED_F64);
    let a_clamped = l.at_most(a, saturated);
    let e = exp_clamped(l, a_clamped, 2.0);
    let one = l.cf(1.0);
    let two = l.cf(2.0);
    let e1 = l.add(e, one);
    let q = l.div(two, e1);
    let large = l.sub(one, q);

    // NaN compares unordered and takes the polynomial, which is NaN.
    let limit = l.cf(TANH_SMALL);
    let is_small = l.cmp(FloatCC::UnorderedOrLessThan, a, limit);
    let magnitude = l.select(is_small, small, large);
    // x and |x| differ in the sign bit alone.
    let sign = l.xor(x, a);
    l.or(magnitude, sign)
}

/// Emits the logistic function `1 / (1 + e^-x)` for `x` of type `f32x4`, `f64x2`, `f32` or
/// `f64`.
///
/// Computed from `t = e^-|x|` (never overflows) as `1/(1+t)` for `x >= 0` and `t/(1+t)` for
/// `x < 0`, so the left tail keeps full relative accuracy down to subnormal results.
///
/// Special values: `sigmoid(+inf) = 1`, `sigmoid(-inf) = +0`, `sigmoid(NaN) = NaN`.
///
/// Accuracy (measured by `tests/math_accuracy.rs`, with or without FMA): f32 at most 2 ulp
/// from the correctly rounded result over `[-110, 110]` (subnormal results included); f64 at
/// most 2 ulp from the same stable formula evaluated with Rust's `f64::exp`, over
/// `[-750, 750]`.
///
/// # Panics
///
/// If `x` has another type.
pub fn emit_sigmoid(b: &mut FunctionBuilder<'_>, opts: MathOptions, x: Value) -> Value {
    map_unary(b, opts, "emit_sigmoid", x, sigmoid_vector)
}

fn sigmoid_vector(l: &mut Lanes<'_, '_>, x: Value) -> Value {
    let a = l.abs(x);
    let minus_a = l.neg(a);
    let t = exp_vector(l, minus_a, None);
    let one = l.cf(1.0);
    let d = l.add(one, t);
    let zero = l.cf(0.0);
    let negative = l.cmp(FloatCC::LessThan, x, zero);
    let numerator = l.select(negative, t, one);
    l.div(numerator, d)
}
