//! `exp`: range reduction by `ln 2`, a polynomial on `[-ln2/2, ln2/2]`, and a scale by `2^n`
//! built from integer operations on the exponent field.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::Value;
use cranelift_frontend::FunctionBuilder;

use super::lanes::{map_unary, Lanes, Precision};
use super::MathOptions;

/// `(e^r - 1 - r) / r²` on `|r| <= 1.01 · ln2/2`, near-minimax (Chebyshev) fits.
/// Truncation error of `1 + r + r² P(r)`: 2^-26.5 relative (f32), 2^-61.2 (f64).
pub(crate) const EXP_F32: [f32; 5] = [5.0e-1, 1.6666573e-1, 4.166655e-2, 8.363774e-3, 1.3926927e-3];
const EXP_F64: [f64; 11] = [
    0.5,
    0.1666666666666667,
    0.04166666666666667,
    0.008333333333325544,
    0.0013888888888883327,
    0.00019841269876864356,
    2.4801587327007187e-05,
    2.755725283351691e-06,
    2.75572718102198e-07,
    2.5106274733573296e-08,
    2.0915442297780116e-09,
];

/// `ln 2 = LN2_HI + LN2_LO` with few enough bits in `LN2_HI` that `n · LN2_HI` is exact for
/// every `n` the clamped input can produce (|n| <= 150 in f32, 1076 in f64), FMA or not.
pub(crate) const LN2_HI_F32: f32 = 0.693_359_4; // 355/512 exactly
pub(crate) const LN2_LO_F32: f32 = -2.121_944_4e-4;
pub(crate) const LN2_HI_F64: f64 = 6.931_471_803_691_238e-1;
pub(crate) const LN2_LO_F64: f64 = 1.908_214_929_270_587_7e-10;

/// Emits `e^x` for `x` of type `f32x4`, `f64x2`, `f32` or `f64`.
///
/// `x` is split as `x = n ln2 + r` with `n = round(x / ln2)` (by the
/// add-and-subtract-`1.5·2^mantissa` trick, whose integer also gives `n` as bits) and a
/// two-constant Cody–Waite `r`; `e^r` is a polynomial, and `2^n` is applied with one integer
/// add of `n` into the exponent field. That add is exact wherever the result is normal; the
/// lanes where it is not are replaced at the end, with two comparisons of `x` itself:
/// above `ln(MAX)` (or NaN) by `x + inf`, below `ln(smallest normal)` by `+0`.
///
/// Special values: `exp(NaN) = NaN`, `exp(+inf) = +inf`, `exp(-inf) = +0`, overflow gives
/// `+inf`, and results below the smallest normal number flush to `+0` (as the other
/// frameworks' CPU backends do under flush-to-zero): no subnormal is ever computed, so there is
/// no slow path, and very negative inputs (masked softmax scores) cost the same as any other.
///
/// Accuracy (measured by `tests/math_accuracy.rs`, with or without FMA): f32 at most 1 ulp from
/// the correctly rounded result for every normal result (`x` in `[-87.34, 88.72]`); f64 at most
/// 1 ulp from Rust's `f64::exp` over `[-708.39, 709.78]`.
///
/// # Panics
///
/// If `x` has another type.
pub fn emit_exp(b: &mut FunctionBuilder<'_>, opts: MathOptions, x: Value) -> Value {
    map_unary(b, opts, "emit_exp", x, exp_flush)
}

/// `e^x` with results below the smallest normal number flushed to `+0` (see [`emit_exp`]).
fn exp_flush(l: &mut Lanes<'_, '_>, x: Value) -> Value {
    let lower = l.c(MIN_NORMAL_ARG_F32, MIN_NORMAL_ARG_F64);
    let upper = l.c(MAX_FINITE_ARG_F32, MAX_FINITE_ARG_F64);
    let tiny = l.cmp(FloatCC::LessThan, x, lower);
    let huge_or_nan = l.cmp(FloatCC::UnorderedOrGreaterThan, x, upper);

    let (t, n, r) = reduce_by_ln2(l, x);
    let neg_ln2_lo = l.c(-LN2_LO_F32, -LN2_LO_F64);
    let r = l.mul_add(n, neg_ln2_lo, r);
    let er = exp_poly(l, r);

    // For x in [ln(smallest normal), ln(MAX)], n is in [-126, 128] (f32; [-1022, 1024] in
    // f64) and e^r in [0.7, 1.42], with e^r >= 1 where n is the lowest and e^r < 1 where it is
    // the highest, so adding n to the exponent field of e^r gives a normal number: the result,
    // rounded once (by the polynomial).
    let scaled = add_to_exponent(l, er, t);

    let inf = l.cf(f64::INFINITY);
    let saturated = l.add(x, inf);
    let y = l.select(huge_or_nan, saturated, scaled);
    l.and_not(y, tiny)
}

/// The argument reduction of `e^x`: `t = x·log2(e) + 1.5·2^m`, which rounds `x·log2(e)` to
/// the integer `n` in its low mantissa bits; `n` as a float; and the exact first step of
/// `r = x - n·ln2`, `x - n·ln2_hi` (the caller subtracts `n·ln2_lo`, with or without a
/// correction of its own).
fn reduce_by_ln2(l: &mut Lanes<'_, '_>, x: Value) -> (Value, Value, Value) {
    let magic = l.cf(magic(l.prec()));
    let log2e = l.c(std::f32::consts::LOG2_E, std::f64::consts::LOG2_E);
    let t = l.mul_add(x, log2e, magic);
    let n = l.sub(t, magic);
    let neg_ln2_hi = l.c(-LN2_HI_F32, -LN2_HI_F64);
    let r = l.mul_add(n, neg_ln2_hi, x);
    (t, n, r)
}

/// `e^r` for `|r| <= 1.01 · ln2/2` as `1 + r·(1 + r·P(r))` by Horner's rule (one rounding
/// error of `r·P(r)` reaches the result scaled by `r`, well below half an ulp).
fn exp_poly(l: &mut Lanes<'_, '_>, r: Value) -> Value {
    exp_poly_scaled(l, r, 1.0)
}

/// `e^(s·h)` for `|s·h| <= 1.01 · ln2/2` and `s` a power of two, as [`exp_poly`] of `r = s·h`
/// with the coefficients of `r^k` multiplied by `s^k` (exactly), so that every intermediate is
/// the one `exp_poly(r)` has times a power of two and rounds the same way.
fn exp_poly_scaled(l: &mut Lanes<'_, '_>, h: Value, s: f64) -> Value {
    let mut c32 = vec![1.0_f32, 1.0];
    c32.extend(EXP_F32);
    let mut c64 = vec![1.0_f64, 1.0];
    c64.extend(EXP_F64);
    let mut sk = 1.0_f64;
    for (k, c) in c64.iter_mut().enumerate() {
        *c *= sk;
        if let Some(c) = c32.get_mut(k) {
            *c *= sk as f32;
        }
        sk *= s;
    }
    l.poly(h, &c32, &c64)
}

/// `v · 2^n` for `t = magic + n` (see [`magic`]) as an integer add into the exponent field of
/// `v`: exact, and valid only while the result is a normal number. The low bits of `t` hold
/// `n + 2^(m-1)` above the bits of `magic`, which end below bit `lane_bits - m`, so shifting
/// `t`'s bits up by `m` leaves exactly `n << m` (two's complement).
fn add_to_exponent(l: &mut Lanes<'_, '_>, v: Value, t: Value) -> Value {
    let m = l.prec().mantissa_bits();
    let tb = l.as_int(t);
    let k = l.shl(tb, m);
    let vb = l.as_int(v);
    let sum = l.iadd(vb, k);
    l.as_float(sum)
}

/// `e^(s·u)` for a power of two `s` and a `u` that the caller has clamped to a short range
/// whose results are normal (`tanh`: `e^(2|x|)` with `|x|` at most 10 in f32, 20 in f64),
/// without special values. Scaling by `s` is folded into the constants: `n = round(s·u/ln2)`,
/// `h = u - n·(ln2/s)` with one constant `ln2` rounded to the format (its error, `n` times that
/// of the constant, is negligible next to the caller's for the small `n` of such a range), and
/// `e^(s·h)` by [`exp_poly_scaled`]; `2^n` is added into the exponent field. A NaN `u` gives an
/// unspecified value, which the caller must not select.
pub(crate) fn exp_clamped(l: &mut Lanes<'_, '_>, u: Value, s: f64) -> Value {
    let prec = l.prec();
    let magic = l.cf(magic(prec));
    let s32 = s as f32;
    let log2e = l.c(s32 * std::f32::consts::LOG2_E, s * std::f64::consts::LOG2_E);
    let t = l.mul_add(u, log2e, magic);
    let n = l.sub(t, magic);
    let neg_ln2 = l.c(-std::f32::consts::LN_2 / s32, -std::f64::consts::LN_2 / s);
    let h = l.mul_add(n, neg_ln2, u);
    let er = exp_poly_scaled(l, h, s);
    add_to_exponent(l, er, t)
}

/// `e^(x + lo)` for a vector `x` and, if given, a correction `lo` with `|lo|` far below one ulp
/// of `x` (the low half of a double-length argument, already zero where `|x|` is large), with
/// gradual underflow: the correctly rounded subnormal, then `+0` (`pow` and `sigmoid`, whose
/// accuracy contracts cover subnormal results).
pub(crate) fn exp_vector(l: &mut Lanes<'_, '_>, x: Value, lo: Option<Value>) -> Value {
    let prec = l.prec();
    // The clamp sits just below where the result rounds to +0 and just above where it is
    // +inf. NaN passes through the clamp.
    let lower = l.c(-104.0, -746.0);
    let upper = l.cf(match prec {
        Precision::F32 => 89.0,
        Precision::F64 => 710.0,
    });
    let x = l.clamp(x, lower, upper);

    let (t, n, r) = reduce_by_ln2(l, x);
    let neg_ln2_lo = l.c(-LN2_LO_F32, -LN2_LO_F64);
    let r = match lo {
        None => l.mul_add(n, neg_ln2_lo, r),
        Some(lo) => {
            let tail = l.mul_add(n, neg_ln2_lo, lo);
            l.add(r, tail)
        }
    };

    // e^r = 1 + r + r²·P(r).
    let p = l.poly(r, &EXP_F32, &EXP_F64);
    let r2 = l.mul(r, r);
    let q = l.mul_add(r2, p, r);
    let one = l.cf(1.0);
    let er = l.add(one, q);

    scale_by_pow2(l, er, t)
}

/// The smallest `x` whose `e^x` is at least the smallest normal `f32` (`ln 2^-126` rounded up
/// to an `f32`); below it `exp` returns +0.
pub(crate) const MIN_NORMAL_ARG_F32: f32 = -87.336_54;
/// The same for `f64`: `ln 2^-1022` rounded up.
pub(crate) const MIN_NORMAL_ARG_F64: f64 = -708.396_418_532_264_1;
/// The largest `x` whose `e^x` rounds to a finite `f32` (below `ln MAX`, `0x42b17217`); above
/// it `exp` returns +inf.
pub(crate) const MAX_FINITE_ARG_F32: f32 = 88.722_83;
/// The same for `f64`.
pub(crate) const MAX_FINITE_ARG_F64: f64 = 709.782_712_893_384;

/// The rounding constant `1.5 · 2^mantissa_bits`: adding it to `|v| < 2^(mantissa_bits-1)`
/// rounds `v` to an integer `n` and leaves `n + 2^(mantissa_bits-1)` in the mantissa bits.
pub(crate) fn magic(prec: Precision) -> f64 {
    match prec {
        Precision::F32 => 12_582_912.0,
        Precision::F64 => 6_755_399_441_055_744.0,
    }
}

/// `v · 2^n` where `t = magic + n` (see [`magic`]) and `|n|` is below about `2·emax`.
///
/// `2^n` is applied as `2^n1 · 2^n2` with `n1 = floor(n/2)`, `n2 = n - n1`, each a valid
/// normal exponent, so that `v · 2^n1` is exact and only the second product rounds (into the
/// subnormal range, or to infinity, exactly as a single `v · 2^n` would).
fn scale_by_pow2(l: &mut Lanes<'_, '_>, v: Value, t: Value) -> Value {
    let prec = l.prec();
    let m = prec.mantissa_bits();
    // bits(t) = B + k with B = bits(2^m) (even) and k = n + 2^(m-1) in [0, 2^m).
    // h = bits(t) >> 1 = B/2 + floor(k/2), so n1 + bias = h + C and n2 + bias = (bits(t) - h) + C
    // with C = bias - 2^(m-2) - B/2.
    let (bias, b_bits) = match prec {
        Precision::F32 => (127_i64, i64::from(8_388_608.0_f32.to_bits())),
        Precision::F64 => (1023_i64, 4_503_599_627_370_496.0_f64.to_bits() as i64),
    };
    let c = bias - (1_i64 << (m - 2)) - b_bits / 2;
    let c = l.ci(c as i32, c);
    let tb = l.as_int(t);
    let h = l.ushr(tb, 1);
    let e1 = l.iadd(h, c);
    let rest = l.isub(tb, h);
    let e2 = l.iadd(rest, c);
    let e1 = l.shl(e1, m);
    let e2 = l.shl(e2, m);
    let s1 = l.as_float(e1);
    let s2 = l.as_float(e2);
    let v = l.mul(v, s1);
    l.mul(v, s2)
}
