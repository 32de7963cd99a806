//! `log`: exponent and mantissa split through the bits, then `log(1+f) = 2·atanh(f/(2+f))`
//! as an odd polynomial (the fdlibm scheme, branch-free).

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::Value;
use cranelift_frontend::FunctionBuilder;

use super::exp::{LN2_HI_F32, LN2_HI_F64, LN2_LO_F32, LN2_LO_F64};
use super::lanes::{map_unary, Lanes, Precision};
use super::MathOptions;

/// `T(z) ≈ (2·atanh(s) - 2s) / s³` with `z = s²`, `|s| <= (√2-1)/(√2+1)`, near-minimax fits.
/// Truncation error of `2s + s³ T(s²)`: 2^-31.6 relative (f32), 2^-57.6 (f64).
const LOG_F32: [f32; 4] = [6.666667e-1, 4.0000123e-1, 2.8550813e-1, 2.3330697e-1];
const LOG_F64: [f64; 7] = [
    0.666666666666667,
    0.3999999999989938,
    0.28571428626031065,
    0.2222221112572281,
    0.18182889786191042,
    0.15331699633543858,
    0.14616721179861816,
];

/// `(T(z) - 2/3) / z` for the double-length logarithm, where the `2/3` term is carried in
/// double-length arithmetic: truncation error of `2s + (2/3)s³ + s⁵ T1(s²)` is 2^-66.
const LOG_TAIL_F64: [f64; 8] = [
    0.4,
    0.2857142857142937,
    0.2222222222165554,
    0.1818181833547124,
    0.15384594954137945,
    0.13334805149611875,
    0.11706224135460942,
    0.11723306234080849,
];

/// `2/3 = TWO_THIRDS_HI + TWO_THIRDS_LO` (to 2^-107).
const TWO_THIRDS_HI: f64 = 0.666_666_666_666_666_6;
const TWO_THIRDS_LO: f64 = 3.700_743_415_417_188e-17;

/// Emits the natural logarithm of `x` (type `f32x4`, `f64x2`, `f32` or `f64`).
///
/// `x = 2^k · m` with `m` in `[√½, √2)` is read from the bits (subnormals are scaled up
/// first), `f = m - 1` is exact, and `log(1+f) = f - (f²/2 - s(f²/2 + R(s²)))` with
/// `s = f / (2+f)`; the result is `k·ln2_hi + (that + k·ln2_lo)`.
///
/// Special values: `log(±0) = -inf`, `log(x < 0) = NaN` (including `-inf`), `log(+inf) = +inf`,
/// `log(NaN) = NaN`, `log(1) = +0`.
///
/// Accuracy (measured by `tests/math_accuracy.rs`, with or without FMA): f32 at most 1 ulp from
/// the correctly rounded result over all positive floats, subnormals included; f64 at most
/// 1 ulp from Rust's `f64::ln`.
///
/// # Panics
///
/// If `x` has another type.
pub fn emit_log(b: &mut FunctionBuilder<'_>, opts: MathOptions, x: Value) -> Value {
    map_unary(b, opts, "emit_log", x, log_vector)
}

/// `log(x)` for a vector `x`.
pub(crate) fn log_vector(l: &mut Lanes<'_, '_>, x: Value) -> Value {
    let Reduced { k, f } = reduce(l, x);
    let two = l.cf(2.0);
    let d = l.add(f, two);
    let s = l.div(f, d);
    let z = l.mul(s, s);
    let t = l.poly(z, &LOG_F32, &LOG_F64);
    let big_r = l.mul(z, t);
    let half = l.cf(0.5);
    let ff = l.mul(f, f);
    let hfsq = l.mul(ff, half);
    let ln2_lo = l.c(LN2_LO_F32, LN2_LO_F64);
    let k_lo = l.mul(k, ln2_lo);
    let sum = l.add(hfsq, big_r);
    let inner = l.mul_add(s, sum, k_lo);
    let diff = l.sub(hfsq, inner);
    let log1p = l.sub(f, diff);
    let ln2_hi = l.c(LN2_HI_F32, LN2_HI_F64);
    let res = l.mul_add(k, ln2_hi, log1p);
    special_cases(l, x, res)
}

/// `log(a)` for a positive `f64x2` as an unevaluated sum `hi + lo` accurate to about 2^-64
/// relative (what `pow` needs so that `y · log(x)` keeps its low bits). `hi` follows the
/// special cases of [`emit_log`]; `lo` is meaningless where `hi` is not finite.
pub(crate) fn log_double_length(l: &mut Lanes<'_, '_>, a: Value) -> (Value, Value) {
    debug_assert_eq!(l.prec(), Precision::F64);
    let Reduced { k, f } = reduce(l, a);
    // s = f / (2 + f) as sh + sl: 2 + f = dh + dl exactly, then one correction step.
    let two = l.cf(2.0);
    let dh = l.add(f, two);
    let dh_minus_two = l.sub(dh, two);
    let dl = l.sub(f, dh_minus_two);
    let sh = l.div(f, dh);
    let (p, pe) = l.two_prod(sh, dh);
    let rem = l.sub(f, p);
    let rem = l.sub(rem, pe);
    let sh_dl = l.mul(sh, dl);
    let rem = l.sub(rem, sh_dl);
    let sl = l.div(rem, dh);

    // s³ as s3h + s3l.
    let (s2h, s2e) = l.two_prod(sh, sh);
    let two_sh = l.add(sh, sh);
    let s2l = l.mul_add(two_sh, sl, s2e);
    let (s3h, s3e) = l.two_prod(s2h, sh);
    let s3l = l.mul_add(s2h, sl, s3e);
    let s3l = l.mul_add(s2l, sh, s3l);

    // (2/3)·s³ as ch + cl.
    let c_hi = l.c(0.0, TWO_THIRDS_HI);
    let c_lo = l.c(0.0, TWO_THIRDS_LO);
    let (ch, ce) = l.two_prod(c_hi, s3h);
    let cl = l.mul_add(c_hi, s3l, ce);
    let cl = l.mul_add(c_lo, s3h, cl);

    // s⁵·T1(s²), small enough for plain arithmetic.
    let t1 = l.poly(s2h, &[], &LOG_TAIL_F64);
    let s5 = l.mul(s3h, s2h);
    let tail = l.mul(s5, t1);

    // k·ln2 + 2s + (2/3)s³ + tail.
    let ln2_hi = l.c(0.0, LN2_HI_F64);
    let ln2_lo = l.c(0.0, LN2_LO_F64);
    let k_hi = l.mul(k, ln2_hi);
    let (h, e) = l.two_sum(k_hi, two_sh);
    let (h, e2) = l.fast_two_sum(h, ch);
    let two_sl = l.add(sl, sl);
    let lo = l.add(e, e2);
    let lo = l.add(lo, two_sl);
    let lo = l.mul_add(k, ln2_lo, lo);
    let lo = l.add(lo, cl);
    let lo = l.add(lo, tail);
    let (hi, lo) = l.fast_two_sum(h, lo);
    (special_cases(l, a, hi), lo)
}

/// `x = 2^k · (1 + f)` with `1 + f` in `[√½, √2)`; `k` is a float holding an integer.
struct Reduced {
    k: Value,
    f: Value,
}

fn reduce(l: &mut Lanes<'_, '_>, x: Value) -> Reduced {
    let prec = l.prec();
    let m = prec.mantissa_bits();
    // Subnormals (and zero and negatives, fixed up later) are scaled into the normal range.
    let min_normal = l.c(f32::MIN_POSITIVE, f64::MIN_POSITIVE);
    let tiny = l.cmp(FloatCC::LessThan, x, min_normal);
    let up = match prec {
        Precision::F32 => 25,
        Precision::F64 => 54,
    };
    let scale = l.cf(2.0_f64.powi(up));
    let scaled = l.mul(x, scale);
    let xs = l.select(tiny, scaled, x);
    let up = l.cf(f64::from(up));
    let k_adjust = l.and(tiny, up);

    // Offsetting the bits by bits(1) - bits(√½) makes the exponent field floor(log2(x/√½))
    // + bias, and the low bits plus bits(√½) a mantissa in [√½, √2).
    let (one_bits, sqrt_half_bits) = match prec {
        Precision::F32 => (i64::from(1.0_f32.to_bits()), 0x3f35_04f3_i64),
        Precision::F64 => (1.0_f64.to_bits() as i64, 0x3fe6_a09e_667f_3bcd_i64),
    };
    let offset = one_bits - sqrt_half_bits;
    let offset = l.ci(offset as i32, offset);
    let bits = l.as_int(xs);
    let u = l.iadd(bits, offset);
    let mant_mask = (1_i64 << m) - 1;
    let mant_mask = l.ci(mant_mask as i32, mant_mask);
    let mant = l.iand(u, mant_mask);
    let sqrt_half = l.ci(sqrt_half_bits as i32, sqrt_half_bits);
    let mant = l.iadd(mant, sqrt_half);
    let mant = l.as_float(mant);
    let one = l.cf(1.0);
    let f = l.sub(mant, one);

    // k = biased exponent - bias - scaling, converted by planting it under 2^m.
    let biased = l.ushr(u, m);
    let two_m = 2.0_f64.powi(m as i32);
    let two_m_bits = match prec {
        Precision::F32 => i64::from((two_m as f32).to_bits()),
        Precision::F64 => two_m.to_bits() as i64,
    };
    let two_m_bits = l.ci(two_m_bits as i32, two_m_bits);
    let planted = l.ior(biased, two_m_bits);
    let planted = l.as_float(planted);
    let bias = match prec {
        Precision::F32 => 127.0,
        Precision::F64 => 1023.0,
    };
    let unplant = l.cf(two_m + bias);
    let k = l.sub(planted, unplant);
    let k = l.sub(k, k_adjust);
    Reduced { k, f }
}

/// Replaces `res` by the IEEE results for zero, negative, infinite and NaN `x`.
fn special_cases(l: &mut Lanes<'_, '_>, x: Value, res: Value) -> Value {
    let zero = l.cf(0.0);
    let is_zero = l.cmp(FloatCC::Equal, x, zero);
    let neg_inf = l.cf(f64::NEG_INFINITY);
    let res = l.select(is_zero, neg_inf, res);
    let is_neg = l.cmp(FloatCC::LessThan, x, zero);
    let nan = l.cf(f64::NAN);
    let res = l.select(is_neg, nan, res);
    let inf = l.cf(f64::INFINITY);
    let inf_or_nan = l.cmp(FloatCC::UnorderedOrGreaterThanOrEqual, x, inf);
    l.select(inf_or_nan, x, res)
}
