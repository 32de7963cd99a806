//! `sin` and `cos`: Cody–Waite reduction by `π/2` into a quadrant and a double-length
//! remainder (or, for lanes beyond its range, the exact reduction of [`super::rem_pio2`]),
//! minimax polynomials on `[-π/4, π/4]`, and a per-lane quadrant select and sign.

use std::f32::consts as f32c;
use std::f64::consts as f64c;

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    types, AbiParam, BlockArg, InstBuilder, MemFlagsData, Signature, StackSlotData, StackSlotKind,
    Type, Value,
};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::FunctionBuilder;

use super::exp::magic;
use super::lanes::{map_unary, Lanes, Precision};
use super::rem_pio2::rem_pio2_into;
use super::MathOptions;

/// `(sin(√z) - √z) / z^{3/2}` and `(cos(√z) - 1 + z/2) / z²` on `z` in `[0, (1.02·π/4)²]`,
/// near-minimax fits. Truncation errors: sin 2^-26.1 / 2^-55.1 relative (f32 / f64), cos
/// 2^-29.6 / 2^-59.4.
const SIN_F32: [f32; 3] = [-1.6666664e-1, 8.3327005e-3, -1.9577722e-4];
const SIN_F64: [f64; 6] = [
    -0.16666666666666663,
    0.008333333333330428,
    -0.00019841269835985584,
    2.7557315709635293e-06,
    -2.505105158684691e-08,
    1.5912461499839467e-10,
];
const COS_F32: [f32; 3] = [4.1666664e-2, -1.3888255e-3, 2.453775e-5];
const COS_F64: [f64; 6] = [
    0.041666666666666664,
    -0.001388888888888707,
    2.4801587298282115e-05,
    -2.755731702592346e-07,
    2.0876096058995368e-09,
    -1.1379086634729478e-11,
];

/// `π/2` as three rounded pieces, for reduction with FMA (every product is exact inside `fma`,
/// so full-width pieces give ~76 bits in f32 and ~160 in f64).
const PIO2_FMA_F32: [f32; 3] = [f32c::FRAC_PI_2, -4.371139e-8, -1.7151245e-15];
const PIO2_FMA_F64: [f64; 3] = [
    f64c::FRAC_PI_2,
    6.123_233_995_736_766e-17,
    -1.497_384_904_859_169_8e-33,
];

/// `π/2` as 33-bit pieces (and a rounded rest), for reduction without FMA: `n · piece` is exact
/// for `|n| < 2^20`. Also used, in `f64x2`, for `f32` lanes without FMA.
const PIO2_SPLIT_F64: [f64; 4] = [
    1.570_796_326_734_125_6,
    6.077_100_506_303_966e-11,
    2.022_266_248_711_166_5e-21,
    8.478_427_660_368_9e-32,
];

/// Beyond these magnitudes (the range over which the inline reduction is tested to 1 ulp) a
/// lane is reduced exactly by [`rem_pio2_into`], one call per lane.
const CODY_WAITE_LIMIT_F32: f32 = 1.0e5;
const CODY_WAITE_LIMIT_F64: f64 = 1.0e6;

/// Emits `sin(x)` for `x` of type `f32x4`, `f64x2`, `f32` or `f64`.
///
/// `n = round(x · 2/π)`; `x - n·π/2 = y0 + y1` by Cody–Waite with three pieces of `π/2` and a
/// two-sum, accurate to far below an ulp of the remainder; `sin` or `cos` polynomial of
/// `y0 + y1` chosen by `n mod 4`, with the sign from bit 1 of `n`.
///
/// Domain: every finite `x`. A vector with a lane beyond `|x| > 1e5` (f32) or `|x| > 1e6`
/// (f64) branches to a cold block that reduces such lanes exactly (Payne–Hanek): inline in
/// `f64` for f32 lanes, by a call of [`super::rem_pio2`] per lane for f64 lanes. Vectors with
/// every lane in range never take it. `sin(±inf) = NaN`,
/// `sin(NaN) = NaN`, `sin(±0) = ±0`, and `sin(x) = x` for subnormal `x`.
///
/// Accuracy (measured by `tests/math_accuracy.rs`, with or without FMA): f32 at most 1 ulp from
/// the correctly rounded result; f64 at most 1 ulp from Rust's `f64::sin`, over the whole
/// range.
///
/// # Panics
///
/// If `x` has another type.
pub fn emit_sin(b: &mut FunctionBuilder<'_>, opts: MathOptions, x: Value) -> Value {
    map_unary(b, opts, "emit_sin", x, |l, x| sin_cos_vector(l, x, false))
}

/// Emits `cos(x)` for `x` of type `f32x4`, `f64x2`, `f32` or `f64`.
///
/// The same reduction and polynomials as [`emit_sin`], one quadrant further on. Domain and
/// special values as for [`emit_sin`], with `cos(±0) = 1`.
///
/// Accuracy (measured by `tests/math_accuracy.rs`, with or without FMA): f32 at most 1 ulp from
/// the correctly rounded result; f64 at most 1 ulp from Rust's `f64::cos`.
///
/// # Panics
///
/// If `x` has another type.
pub fn emit_cos(b: &mut FunctionBuilder<'_>, opts: MathOptions, x: Value) -> Value {
    map_unary(b, opts, "emit_cos", x, |l, x| sin_cos_vector(l, x, true))
}

fn sin_cos_vector(l: &mut Lanes<'_, '_>, x: Value, cos: bool) -> Value {
    let prec = l.prec();
    // x = n·π/2 + (y0 + y1), with the quadrant n mod 4 in the low bits of q.
    let (y0, y1, q) = reduce_any(l, x);

    // In the domain |y0| <= π/4 (plus rounding) and |y1| <= one ulp of it; far outside it the
    // reduction returns garbage, which these clamps keep finite (NaN passes through).
    let lim = l.c(0.8, 0.8);
    let neg_lim = l.c(-0.8, -0.8);
    let y0 = l.clamp(y0, neg_lim, lim);
    let tiny = l.cf(2.0_f64.powi(-20));
    let neg_tiny = l.cf(-(2.0_f64.powi(-20)));
    let y1 = l.clamp(y1, neg_tiny, tiny);

    let z = l.mul(y0, y0);
    let half = l.cf(0.5);
    let hz = l.mul(z, half);
    let one = l.cf(1.0);
    let w = l.sub(one, hz);
    // sin(y0 + y1) ≈ y0 + (y0·z·S(z) + y1·(1 - z/2)).
    let sp = l.poly(z, &SIN_F32, &SIN_F64);
    let v = l.mul(y0, z);
    let y1w = l.mul(y1, w);
    let st = l.mul_add(v, sp, y1w);
    let s = l.add(y0, st);
    // cos(y0 + y1) ≈ w + (((1 - w) - z/2) + (z²·C(z) - y0·y1)).
    let cp = l.poly(z, &COS_F32, &COS_F64);
    let one_minus_w = l.sub(one, w);
    let corr = l.sub(one_minus_w, hz);
    let zz = l.mul(z, z);
    let y0y1 = l.mul(y0, y1);
    let neg_y0y1 = l.neg(y0y1);
    let ct = l.mul_add(zz, cp, neg_y0y1);
    let ct = l.add(corr, ct);
    let c = l.add(w, ct);

    // Odd q takes the other polynomial, q >= 2 negates.
    let i_one = l.ci(1, 1);
    let q = if cos { l.iadd(q, i_one) } else { q };
    let q_odd = l.iand(q, i_one);
    let swap = l.ieq(q_odd, i_one);
    let res = l.select(swap, c, s);
    let i_two = l.ci(2, 2);
    let q_high = l.iand(q, i_two);
    let sign = l.shl(q_high, prec.lane_bits() - 2);
    let sign = l.as_float(sign);
    let res = l.xor(res, sign);
    if cos {
        res
    } else {
        // The reduction loses the sign of zero; sin(±0) = ±0.
        let zero = l.cf(0.0);
        let is_zero = l.cmp(FloatCC::Equal, x, zero);
        l.select(is_zero, x, res)
    }
}

/// Cody–Waite: `(y0, y1, q)` with `x - n·π/2 = y0 + y1` and `n mod 4` in the low bits of `q`,
/// accurate while `|x| <= 1e5` (f32) or `1e6` (f64).
fn cody_waite(l: &mut Lanes<'_, '_>, x: Value) -> (Value, Value, Value) {
    // t = x·2/π + 1.5·2^m: n = t - 1.5·2^m, and n mod 4 sits in the low bits of t.
    let magic = l.cf(magic(l.prec()));
    let two_over_pi = l.c(f32c::FRAC_2_PI, f64c::FRAC_2_PI);
    let t = l.mul_add(x, two_over_pi, magic);
    let n = l.sub(t, magic);
    let (y0, y1) = reduce(l, x, n);
    let q = l.as_int(t);
    (y0, y1, q)
}

/// `x - n·π/2` as `y0 + y1`, `|y1|` at most about half an ulp of `y0`.
fn reduce(l: &mut Lanes<'_, '_>, x: Value, n: Value) -> (Value, Value) {
    if !l.has_fma() && l.prec() == Precision::F32 {
        // Eight-bit pieces of π/2 would need too many steps in f32 without FMA: reduce in f64.
        let (x_lo, x_hi) = l.widen_f32x4(x);
        let (n_lo, n_hi) = l.widen_f32x4(n);
        let (r_lo, r_hi) = l.with_precision(Precision::F64, |l| {
            let (a0, a1) = reduce(l, x_lo, n_lo);
            let (b0, b1) = reduce(l, x_hi, n_hi);
            (l.add(a0, a1), l.add(b0, b1))
        });
        let y0 = l.narrow_f64x2(r_lo, r_hi);
        let y1 = l.cf(0.0);
        return (y0, y1);
    }
    let (r1, wh, wl) = if l.has_fma() {
        let [c1, c2, c3] = PIO2_FMA_F32;
        let [d1, d2, d3] = PIO2_FMA_F64;
        let neg_c1 = l.c(-c1, -d1);
        let c2 = l.c(c2, d2);
        let c3 = l.c(c3, d3);
        // Exact: the product is exact inside fma and the difference fits.
        let r1 = l.mul_add(n, neg_c1, x);
        let wh = l.mul(n, c2);
        let neg_wh = l.neg(wh);
        let wl = l.mul_add(n, c2, neg_wh);
        let wl = l.mul_add(n, c3, wl);
        (r1, wh, wl)
    } else {
        let [d1, d2, d3, d4] = PIO2_SPLIT_F64;
        let neg_c1 = l.c(0.0, -d1);
        let c2 = l.c(0.0, d2);
        let c3 = l.c(0.0, d3);
        let c4 = l.c(0.0, d4);
        // n·c1, n·c2 and n·c3 are exact; x - n·c1 is exact.
        let r1 = l.mul_add(n, neg_c1, x);
        let wh = l.mul(n, c2);
        let w4 = l.mul(n, c4);
        let wl = l.mul_add(n, c3, w4);
        (r1, wh, wl)
    };
    let y0 = l.sub(r1, wh);
    let lost = l.sub(r1, y0);
    let lost = l.sub(lost, wh);
    let y1 = l.sub(lost, wl);
    if l.has_fma() {
        (y0, y1)
    } else {
        // n·c3 can be many ulps of y0 here: renormalize so that |y1| <= ulp(y0)/2.
        l.fast_two_sum(y0, y1)
    }
}

/// `2/π` in 24-bit pieces: `TWO_OVER_PI_24[j]` is bits `24j+1 ..= 24j+24` of its binary
/// expansion (weights `2^-(24j+1)` to `2^-(24j+24)`). The product of an `f32` (24 significant
/// bits) with a piece is exact in `f64`, and the nine pieces leave out less than `2^-216` of
/// `2/π`, `2^-88` of a quadrant at the largest `f32`. Reproduced by `gen_coefficients.py`.
const TWO_OVER_PI_24: [f64; 9] = [
    0.6366197466850281,
    2.5682552973194106e-08,
    2.937095214933759e-16,
    3.2543794001732456e-23,
    1.2089613708828537e-29,
    5.667556795740071e-37,
    2.6204031112097215e-44,
    7.053957680880629e-52,
    1.582624282116559e-58,
];

/// `π/2` rounded to `f64`, and the rest.
const PIO2_HI: f64 = f64c::FRAC_PI_2;
const PIO2_LO: f64 = 6.123_233_995_736_766e-17;

/// The reduction of every lane of `x`: Cody–Waite if every live lane is within its range (or
/// NaN); otherwise a cold block that also reduces the lanes beyond it exactly and takes that
/// result for them (a lane's value never depends on its neighbours). Each branch computes its
/// own Cody–Waite result so that only `x` is live into the cold block, which keeps the register
/// allocator from spilling values on the common path. Returns the merged `(y0, y1, q)` with
/// the builder positioned after the merge.
fn reduce_any(l: &mut Lanes<'_, '_>, x: Value) -> (Value, Value, Value) {
    let prec = l.prec();
    let limit = l.c(CODY_WAITE_LIMIT_F32, CODY_WAITE_LIMIT_F64);
    let ax = l.abs(x);
    // Ordered: NaN lanes stay inline (and stay NaN).
    let big = l.cmp(FloatCC::GreaterThan, ax, limit);
    let big_bits = l.as_int(big);
    let (vty, ity) = (prec.vector(), prec.int_vector());
    let scalar = l.live_lanes() == 1;
    let b = l.builder();
    let any = if scalar {
        let lane0 = b.ins().extractlane(big_bits, 0);
        b.ins().icmp_imm_u(IntCC::NotEqual, lane0, 0)
    } else {
        b.ins().vany_true(big_bits)
    };
    let fast = b.create_block();
    let slow = b.create_block();
    let merge = b.create_block();
    b.append_block_param(merge, vty);
    b.append_block_param(merge, vty);
    b.append_block_param(merge, ity);
    b.ins().brif(any, slow, &[], fast, &[]);
    b.set_cold_block(slow);
    b.seal_block(slow);
    b.seal_block(fast);

    b.switch_to_block(fast);
    let (y0, y1, q) = cody_waite(l, x);
    let args = [BlockArg::Value(y0), BlockArg::Value(y1), BlockArg::Value(q)];
    l.builder().ins().jump(merge, &args);

    l.builder().switch_to_block(slow);
    let (y0, y1, q) = cody_waite(l, x);
    let (r0, r1, rq) = match prec {
        Precision::F32 => exact_reduction_f32(l, x),
        Precision::F64 => exact_reduction_f64_by_call(l, x, y0, y1, q),
    };
    // Recomputed here: a mask from before the branch would be live across the cold block.
    let limit = l.c(CODY_WAITE_LIMIT_F32, CODY_WAITE_LIMIT_F64);
    let ax = l.abs(x);
    let big = l.cmp(FloatCC::GreaterThan, ax, limit);
    let big_bits = l.as_int(big);
    let y0 = l.select(big, r0, y0);
    let y1 = l.select(big, r1, y1);
    let b = l.builder();
    let q = b.ins().bitselect(big_bits, rq, q);
    let args = [BlockArg::Value(y0), BlockArg::Value(y1), BlockArg::Value(q)];
    b.ins().jump(merge, &args);
    b.seal_block(merge);
    b.switch_to_block(merge);
    let params = b.block_params(merge);
    (params[0], params[1], params[2])
}

/// Payne–Hanek for `f32x4` lanes, inline and branch-free (no call, so nothing around the
/// kernel's loop is spilled): in `f64`, `x · 2/π` is the sum of the exact products of `x` with
/// the pieces [`TWO_OVER_PI_24`], each taken modulo 4 exactly, added in double length; the
/// nearest integer of the sum is the quadrant and the rest times `π/2` the remainder. The sum
/// is exact to about 2^-98 while the smallest remainder of an `f32` beyond 1e5 is 1.6e-9, so
/// the remainder keeps over 60 correct bits. Returns `(y0, y1, q)` for every lane.
fn exact_reduction_f32(l: &mut Lanes<'_, '_>, x: Value) -> (Value, Value, Value) {
    let scalar = l.live_lanes() == 1;
    let (x_lo, x_hi) = l.widen_f32x4(x);
    let (n_lo, y_lo) = l.with_precision(Precision::F64, |l| reduce_f32_in_f64(l, x_lo));
    let (n_hi, y_hi) = if scalar {
        (n_lo, y_lo)
    } else {
        l.with_precision(Precision::F64, |l| reduce_f32_in_f64(l, x_hi))
    };
    // y as y0 + y1 in f32, n (an integer of at most 18 in magnitude) as f32.
    let y0 = l.narrow_f64x2(y_lo, y_hi);
    let (b_lo, b_hi) = l.widen_f32x4(y0);
    let (d_lo, d_hi) = l.with_precision(Precision::F64, |l| {
        let d_lo = l.sub(y_lo, b_lo);
        let d_hi = l.sub(y_hi, b_hi);
        (d_lo, d_hi)
    });
    let y1 = l.narrow_f64x2(d_lo, d_hi);
    let n = l.narrow_f64x2(n_lo, n_hi);
    // The same encoding as the inline path: n mod 4 in the low bits of n + 1.5·2^23.
    let magic = l.cf(magic(Precision::F32));
    let t = l.add(n, magic);
    let q = l.as_int(t);
    (y0, y1, q)
}

/// For `f64x2` lanes holding `f32` values: `(n, y)` with `x = n·π/2 + y` to `f64` precision.
fn reduce_f32_in_f64(l: &mut Lanes<'_, '_>, x: Value) -> (Value, Value) {
    let m4 = l.cf(1.5 * 2.0_f64.powi(54));
    let exact_limit = l.cf(2.0_f64.powi(52));
    let zero = l.cf(0.0);
    let (mut s, mut c) = (zero, zero);
    for piece in TWO_OVER_PI_24 {
        let piece = l.cf(piece);
        // Exact: 24 × 24 significant bits.
        let t = l.mul(x, piece);
        // t mod 4: below 2^52 by rounding to a multiple of 4 (t + 1.5·2^54 has ulp 4);
        // from 2^52 up t has at most 48 significant bits, so it is a multiple of 32.
        let r4 = l.add(t, m4);
        let r4 = l.sub(r4, m4);
        let r = l.sub(t, r4);
        let at = l.abs(t);
        let small = l.cmp(FloatCC::LessThan, at, exact_limit);
        let r = l.and(small, r);
        let (sum, err) = l.two_sum(s, r);
        s = sum;
        c = l.add(c, err);
    }
    // |s| <= 18: round it to the quadrant n with the f64 rounding constant.
    let m52 = l.cf(magic(Precision::F64));
    let n = l.add(s, m52);
    let n = l.sub(n, m52);
    let f = l.sub(s, n);
    let f = l.add(f, c);
    let hi = l.c(0.0, PIO2_HI);
    let lo = l.c(0.0, PIO2_LO);
    let y = l.mul(f, lo);
    let y = l.mul_add(f, hi, y);
    // Infinite x: every product is infinite and masked to 0 above; x·0 makes the result NaN.
    let x0 = l.mul(x, zero);
    let y = l.add(y, x0);
    (n, y)
}

/// The C calling convention of the host, which [`rem_pio2_into`] uses.
fn host_call_conv() -> CallConv {
    if cfg!(windows) {
        CallConv::WindowsFastcall
    } else if cfg!(all(target_arch = "aarch64", target_vendor = "apple")) {
        CallConv::AppleAarch64
    } else {
        CallConv::SystemV
    }
}

/// Payne–Hanek for `f64x2` lanes: a call of [`rem_pio2_into`] (exact integer arithmetic) per
/// live lane, starting from the inline `(y0, y1, q)`. An `f64` needs up to 1200 bits of `2/π`
/// and the remainder of the hardest one is 2^-61 of a quadrant, beyond what double-length
/// arithmetic on a 5 KiB table would give exactly; the call costs spills of the values live
/// across it, measured in `docs/jit.md`.
fn exact_reduction_f64_by_call(
    l: &mut Lanes<'_, '_>,
    x: Value,
    y0: Value,
    y1: Value,
    q: Value,
) -> (Value, Value, Value) {
    let lanes = l.live_lanes();
    let b = l.builder();
    // The JIT runs in this process, so the helper's address is valid in the code.
    let ptr = Type::int(usize::BITS as u16).expect("pointer-sized integer type");
    let mut sig = Signature::new(host_call_conv());
    sig.params.push(AbiParam::new(types::F64));
    sig.params.push(AbiParam::new(ptr));
    sig.returns.push(AbiParam::new(types::I64));
    let sig = b.import_signature(sig);
    let helper: unsafe extern "C" fn(f64, *mut f64) -> u64 = rem_pio2_into;
    let callee = b.ins().iconst(ptr, helper as usize as i64);
    let slot = b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 16, 3));
    let out = b.ins().stack_addr(ptr, slot, 0);
    let mem = MemFlagsData::trusted();
    let (mut r0, mut r1, mut rq) = (y0, y1, q);
    for lane in 0..lanes {
        let xi = b.ins().extractlane(x, lane);
        let call = b.ins().call_indirect(sig, callee, &[xi, out]);
        let n = b.inst_results(call)[0];
        let a0 = b.ins().load(types::F64, mem, out, 0);
        let a1 = b.ins().load(types::F64, mem, out, 8);
        r0 = b.ins().insertlane(r0, a0, lane);
        r1 = b.ins().insertlane(r1, a1, lane);
        rq = b.ins().insertlane(rq, n, lane);
    }
    (r0, r1, rq)
}
