//! `exp`: range reduction by `ln 2`, a polynomial on `[-ln2/2, ln2/2]`, and a scale by `2^n`
//! built from integer operations on the exponent field.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::Value;
use cranelift_frontend::FunctionBuilder;

use super::lanes::{map_unary, Lanes, Precision};
use super::MathOptions;

/// `(e^r - 1 - r) / r²` on `|r| <= 1.01 · ln2/2`, near-minimax (Chebyshev) fits.
/// Truncation error of `1 + r + r² P(r)`: 2^-26.5 relative (f32), 2^-61.2 (f64).
const EXP_F32: [f32; 5] = [5.0e-1, 1.6666573e-1, 4.166655e-2, 8.363774e-3, 1.3926927e-3];
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
/// `x` is clamped to a range just wider than where the result is finite and nonzero, then split
/// as `x = n ln2 + r` with `n = round(x / ln2)` (by the add-and-subtract-`1.5·2^mantissa` trick,
/// whose integer also gives `n` as bits) and a two-constant Cody–Waite `r`; `e^r` is a
/// polynomial and `2^n` is applied as two exponent-field products so that results between the
/// smallest subnormal and the largest finite value are rounded once.
///
/// Special values: `exp(NaN) = NaN`, `exp(+inf) = +inf`, `exp(-inf) = +0`, overflow gives
/// `+inf`, and results below the smallest normal number flush to `+0` (as the other
/// frameworks' CPU backends do under flush-to-zero), which keeps underflow off the CPU's slow
/// subnormal path.
///
/// Accuracy (measured by `tests/math_accuracy.rs`, with or without FMA): f32 at most 1 ulp from
/// the correctly rounded result for every normal result (`x` in `[-87.34, 89]`); f64 at most
/// 1 ulp from Rust's `f64::exp` over `[-708.39, 710]`.
///
/// # Panics
///
/// If `x` has another type.
pub fn emit_exp(b: &mut FunctionBuilder<'_>, opts: MathOptions, x: Value) -> Value {
    map_unary(b, opts, "emit_exp", x, |l, x| {
        exp_vector(l, x, None, Underflow::Flush)
    })
}

/// What `exp_vector` returns for results below the smallest normal number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Underflow {
    /// `+0`, without ever computing a subnormal (no slow path): `exp` and `tanh`.
    Flush,
    /// The correctly rounded subnormal, then `+0`: `pow` and `sigmoid`, whose accuracy
    /// contracts cover subnormal results.
    Gradual,
}

/// `e^(x + lo)` for a vector `x` and, if given, a correction `lo` with `|lo|` far below one ulp
/// of `x` (the low half of a double-length argument, already zero where `|x|` is large).
pub(crate) fn exp_vector(
    l: &mut Lanes<'_, '_>,
    x: Value,
    lo: Option<Value>,
    underflow: Underflow,
) -> Value {
    let prec = l.prec();
    // Results below the smallest normal number flush to +0: computing them would take the
    // CPU's slow path for subnormal operands and results (about 9x slower per element on
    // Sapphire Rapids), and softmax runs `exp` on masked -inf scores all the time. So `x` is
    // clamped from below at ln(smallest normal), whose result is normal, and the lanes below
    // it are replaced by +0 at the end. Above `hi` the result is +inf anyway. NaN passes
    // through the clamp and the comparison.
    // With gradual underflow the clamp sits just below where the result rounds to +0.
    let lower = match underflow {
        Underflow::Flush => l.c(MIN_NORMAL_ARG_F32, MIN_NORMAL_ARG_F64),
        Underflow::Gradual => l.c(-104.0, -746.0),
    };
    let flush = (underflow == Underflow::Flush).then(|| l.cmp(FloatCC::LessThan, x, lower));
    let upper = l.cf(match prec {
        Precision::F32 => 89.0,
        Precision::F64 => 710.0,
    });
    let x = l.clamp(x, lower, upper);

    // t = x·log2(e) + 1.5·2^m rounds x·log2(e) to the integer n in the low mantissa bits.
    let magic = l.cf(magic(prec));
    let log2e = l.c(std::f32::consts::LOG2_E, std::f64::consts::LOG2_E);
    let t = l.mul_add(x, log2e, magic);
    let n = l.sub(t, magic);

    // r = x - n·ln2, in two steps; the first is exact.
    let neg_ln2_hi = l.c(-LN2_HI_F32, -LN2_HI_F64);
    let neg_ln2_lo = l.c(-LN2_LO_F32, -LN2_LO_F64);
    let r = l.mul_add(n, neg_ln2_hi, x);
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

    let y = scale_by_pow2(l, er, t);
    match flush {
        Some(mask) => {
            let zero = l.cf(0.0);
            l.select(mask, zero, y)
        }
        None => y,
    }
}

/// The smallest `x` whose `e^x` is at least the smallest normal `f32` (`ln 2^-126` rounded up
/// to an `f32`); below it `exp` returns +0.
pub(crate) const MIN_NORMAL_ARG_F32: f32 = -87.336_54;
/// The same for `f64`: `ln 2^-1022` rounded up.
pub(crate) const MIN_NORMAL_ARG_F64: f64 = -708.396_418_532_264_1;

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
