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
use super::rem_pio2::{
    rem_pio2_lanes_f32, rem_pio2_lanes_f64, LANES_SLOT_BYTES, LIMIT_F32, LIMIT_F64,
};
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
/// lane is reduced exactly by [`rem_pio2_lanes_f32`] / [`rem_pio2_lanes_f64`].
const CODY_WAITE_LIMIT_F32: f32 = LIMIT_F32;
const CODY_WAITE_LIMIT_F64: f64 = LIMIT_F64;

/// Emits `sin(x)` for `x` of type `f32x4`, `f64x2`, `f32` or `f64`.
///
/// `n = round(x · 2/π)`; `x - n·π/2 = y0 + y1` by Cody–Waite with three pieces of `π/2` and a
/// two-sum, accurate to far below an ulp of the remainder; `sin` or `cos` polynomial of
/// `y0 + y1` chosen by `n mod 4`, with the sign from bit 1 of `n`.
///
/// Domain: every finite `x`. A vector with a lane beyond `|x| > 1e5` (f32) or `|x| > 1e6`
/// (f64) branches to a cold block that reduces such lanes exactly (Payne–Hanek, by one call of
/// [`super::rem_pio2`]'s vector helper); vectors with every lane in range never take it.
/// `sin(±inf) = NaN`, `sin(NaN) = NaN`, `sin(±0) = ±0`, and `sin(x) = x` for subnormal `x`.
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
    // x = n·π/2 + (y0 + y1), with the quadrant n mod 4 in the low bits of q (x comes back
    // through the cold block's merge).
    let (y0, y1, q, x) = reduce_any(l, x);

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

/// The reduction of every lane of `x`: Cody–Waite, and if any live lane is beyond its range
/// (or infinite), a cold block that has those lanes reduced exactly by one call of
/// [`rem_pio2_lanes_f32`] / [`rem_pio2_lanes_f64`]. The inline results and `x` go to the helper
/// through a stack slot and come back from it, so no vector value is live across the call (the
/// register allocator would otherwise keep it in memory on the common path too); the helper
/// replaces only the lanes beyond the range (a lane's value never depends on its neighbours).
/// Returns the merged `(y0, y1, q, x)` with the builder positioned after the merge.
fn reduce_any(l: &mut Lanes<'_, '_>, x: Value) -> (Value, Value, Value, Value) {
    let prec = l.prec();
    let (y0, y1, q) = cody_waite(l, x);
    let limit = l.c(CODY_WAITE_LIMIT_F32, CODY_WAITE_LIMIT_F64);
    let ax = l.abs(x);
    // Ordered: NaN lanes stay inline (and stay NaN). The helpers test the same condition.
    let big = l.cmp(FloatCC::GreaterThan, ax, limit);
    let big_bits = l.as_int(big);
    let (vty, ity) = (prec.vector(), prec.int_vector());
    let lanes = l.live_lanes();
    let b = l.builder();
    let any = if lanes == 1 {
        let lane0 = b.ins().extractlane(big_bits, 0);
        b.ins().icmp_imm_u(IntCC::NotEqual, lane0, 0)
    } else {
        b.ins().vany_true(big_bits)
    };
    let slow = b.create_block();
    let merge = b.create_block();
    for ty in [vty, vty, ity, vty] {
        b.append_block_param(merge, ty);
    }
    let args = [y0, y1, q, x].map(BlockArg::Value);
    b.ins().brif(any, slow, &[], merge, &args);
    b.set_cold_block(slow);
    b.seal_block(slow);
    b.switch_to_block(slow);

    // The JIT runs in this process, so the helper's address is valid in the code.
    let ptr = Type::int(usize::BITS as u16).expect("pointer-sized integer type");
    let mut sig = Signature::new(host_call_conv());
    sig.params.push(AbiParam::new(ptr));
    sig.params.push(AbiParam::new(types::I64));
    let sig = b.import_signature(sig);
    type Helper = unsafe extern "C" fn(*mut u8, u64);
    let helper: Helper = match prec {
        Precision::F32 => rem_pio2_lanes_f32,
        Precision::F64 => rem_pio2_lanes_f64,
    };
    let callee = b.ins().iconst(ptr, helper as usize as i64);
    let slot = b.create_sized_stack_slot(StackSlotData::new(
        StackSlotKind::ExplicitSlot,
        LANES_SLOT_BYTES,
        4,
    ));
    let base = b.ins().stack_addr(ptr, slot, 0);
    let mem = MemFlagsData::trusted();
    for (k, v) in [x, y0, y1, q].into_iter().enumerate() {
        b.ins().store(mem, v, base, 16 * k as i32);
    }
    let n = b.ins().iconst(types::I64, i64::from(lanes));
    b.ins().call_indirect(sig, callee, &[base, n]);
    let x = b.ins().load(vty, mem, base, 0);
    let y0 = b.ins().load(vty, mem, base, 16);
    let y1 = b.ins().load(vty, mem, base, 32);
    let q = b.ins().load(ity, mem, base, 48);
    let args = [y0, y1, q, x].map(BlockArg::Value);
    b.ins().jump(merge, &args);
    b.seal_block(merge);
    b.switch_to_block(merge);
    let p = b.block_params(merge);
    (p[0], p[1], p[2], p[3])
}

/// The C calling convention of the host, which the reduction helpers use.
fn host_call_conv() -> CallConv {
    if cfg!(windows) {
        CallConv::WindowsFastcall
    } else if cfg!(all(target_arch = "aarch64", target_vendor = "apple")) {
        CallConv::AppleAarch64
    } else {
        CallConv::SystemV
    }
}
