//! `pow(x, y) = exp(y · log|x|)` with the sign and special cases of C99 / IEEE 754 `pow`.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

use super::exp::exp_vector;
use super::lanes::{map_binary, Lanes, Precision};
use super::log::{log_double_length, log_vector};
use super::MathOptions;

/// Emits `x^y` for `x` and `y` of the same type: `f32x4`, `f64x2`, `f32` or `f64`.
///
/// f64 lanes compute `log|x|` in double-length arithmetic (about 2^-64 relative), multiply by
/// `y` keeping the product's low half, and feed both halves to `exp`, so the error does not grow
/// with `|y · log x|`. f32 lanes are widened to f64 and use the plain f64 `log` and `exp`, which
/// is far more than f32 needs, then rounded once back to f32.
///
/// Special cases (as C99 `pow`): `pow(x, ±0) = 1` and `pow(1, y) = 1` even for NaN;
/// `pow(-1, ±inf) = 1`; otherwise NaN in either operand gives NaN; a finite `x < 0` with a
/// non-integer `y` gives NaN; for `x < 0` (including `-0` and `-inf`) with an odd integer `y`
/// the result is negative; `pow(±0, y < 0) = +inf` (`±inf` for odd `y`), `pow(±0, y > 0) = +0`
/// (`±0` for odd `y`); `pow(x, +inf)` is `+0` for `|x| < 1` and `+inf` for `|x| > 1` (the
/// reverse for `-inf`); `pow(+inf, y)` is `+inf` for `y > 0` and `+0` for `y < 0`, and
/// `pow(-inf, y)` the same with the sign of odd integer `y`. Overflow gives `+inf`, underflow
/// subnormals then `+0`.
///
/// Accuracy (measured by `tests/math_accuracy.rs`, with or without FMA): f32 correctly rounded
/// on all million sampled pairs (the f64 intermediate is good to about 2^-45, so the result is
/// always within 1 ulp); f64 at most 1 ulp from Rust's `f64::powf` for `x` in
/// `[2^-1000, 2^1000]` with `|y · log2 x| <= 1020`, for `x` in `[0.5, 2]` with `y` up to
/// `1020 / |log2 x|` (where a single-length `log x` would lose up to 1000 ulps), for negative `x`
/// with integer `y`, and for subnormal results.
///
/// # Panics
///
/// If `x` has another type, or `y` a different type from `x`.
pub fn emit_pow(b: &mut FunctionBuilder<'_>, opts: MathOptions, x: Value, y: Value) -> Value {
    if b.func.dfg.value_type(x) == types::F32 && b.func.dfg.value_type(y) == types::F32 {
        // One f64 lane instead of the four an f32x4 would widen to.
        let x = b.ins().fpromote(types::F64, x);
        let y = b.ins().fpromote(types::F64, y);
        let r = map_binary(b, opts, "emit_pow", x, y, |l, x, y| {
            pow_f64x2(l, x, y, false)
        });
        return b.ins().fdemote(types::F32, r);
    }
    map_binary(b, opts, "emit_pow", x, y, |l, x, y| match l.prec() {
        Precision::F64 => pow_f64x2(l, x, y, true),
        Precision::F32 => {
            let (x_lo, x_hi) = l.widen_f32x4(x);
            let (y_lo, y_hi) = l.widen_f32x4(y);
            let (r_lo, r_hi) = l.with_precision(Precision::F64, |l| {
                (
                    pow_f64x2(l, x_lo, y_lo, false),
                    pow_f64x2(l, x_hi, y_hi, false),
                )
            });
            l.narrow_f64x2(r_lo, r_hi)
        }
    })
}

/// `x^y` on `f64x2` lanes; `double_length` selects the accurate logarithm (needed for f64
/// results, not for f32 ones).
fn pow_f64x2(l: &mut Lanes<'_, '_>, x: Value, y: Value, double_length: bool) -> Value {
    let a = l.abs(x);
    let one = l.cf(1.0);
    let zero = l.cf(0.0);

    // |x|^y = e^(y·log|x|).
    let magnitude = if double_length {
        let (lh, ll) = log_double_length(l, a);
        let (ph, pe) = l.two_prod(y, lh);
        let pl = l.mul_add(y, ll, pe);
        // The low half matters only where exp is neither saturated nor fed a non-finite value
        // (where it may be NaN from inf - inf).
        let aph = l.abs(ph);
        let limit = l.cf(746.0);
        let in_range = l.cmp(FloatCC::LessThan, aph, limit);
        let pl = l.and(in_range, pl);
        exp_vector(l, ph, Some(pl))
    } else {
        let lg = log_vector(l, a);
        let p = l.mul(y, lg);
        exp_vector(l, p, None)
    };
    // |x| = 1: 1 for every y (y·0 is NaN for infinite y); NaN y is handled below.
    let a_is_one = l.cmp(FloatCC::Equal, a, one);
    let magnitude = l.select(a_is_one, one, magnitude);

    // Is y an integer, and an odd one? Below 2^52, adding 2^52 rounds |y| to an integer in the
    // low mantissa bits; from 2^52 to 2^53 |y| is an integer with its units bit at the bottom;
    // from 2^53 on it is even.
    let ay = l.abs(y);
    let two52 = l.cf(2.0_f64.powi(52));
    let two53 = l.cf(2.0_f64.powi(53));
    let below52 = l.cmp(FloatCC::LessThan, ay, two52);
    let shifted = l.add(ay, two52);
    let units = l.select(below52, shifted, ay);
    let back = l.sub(units, two52);
    let rounded = l.select(below52, back, ay);
    let is_int = l.cmp(FloatCC::Equal, rounded, ay);
    let units = l.as_int(units);
    let i_one = l.ci(1, 1);
    let low_bit = l.iand(units, i_one);
    let odd_bit = l.ieq(low_bit, i_one);
    let below53 = l.cmp(FloatCC::LessThan, ay, two53);
    let odd = l.and(is_int, odd_bit);
    let odd = l.and(odd, below53);

    // Negative x (by its sign bit, so -0 and -inf too) with odd y: negative result.
    let sign_bit = l.sign_bit();
    let x_sign = l.and(x, sign_bit);
    let flip = l.and(odd, x_sign);
    let res = l.xor(magnitude, flip);

    // Finite negative x with non-integer y: NaN.
    let neg_inf = l.cf(f64::NEG_INFINITY);
    let x_neg = l.cmp(FloatCC::LessThan, x, zero);
    let x_finite = l.cmp(FloatCC::GreaterThan, x, neg_inf);
    let neg_finite = l.and(x_neg, x_finite);
    let invalid = l.and_not(neg_finite, is_int);
    let nan = l.cf(f64::NAN);
    let res = l.select(invalid, nan, res);

    // y = ±0 or x = 1: exactly 1, whatever the other operand.
    let y_zero = l.cmp(FloatCC::Equal, y, zero);
    let x_one = l.cmp(FloatCC::Equal, x, one);
    let exact_one = l.or(y_zero, x_one);
    l.select(exact_one, one, res)
}
