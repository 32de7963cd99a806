//! The 16-bit floats in generated code: conversions between `f32` and the bits of a `bf16` or
//! an `f16`, in integer arithmetic (and an exact f32 addition or multiplication by a power of
//! two where that saves steps), for a scalar (`f32` / `i32`) or a vector of four (`f32x4` /
//! `i32x4`).
//!
//! Generated code holds a 16-bit value widened, as the `f32` it equals; it converts on load,
//! on store, and — unless `Options::excess_precision` keeps results in f32 inside a kernel —
//! after each operation that produces a 16-bit value (rounding). The conversions
//! are bit arithmetic rather than `vcvtneps2bf16` / `vcvtps2ph`, which Cranelift does not
//! expose, so they run on every x86-64 (and any other target) and give the same bits as the
//! interpreter's (`adjoint_ir::half_float`): round to nearest with ties to even, overflow to
//! infinity, subnormals kept, NaN quieted with its sign and top payload bits.

use super::value::little;
use adjoint_ir::DType;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, InstBuilder, Type, Value};
use cranelift_frontend::FunctionBuilder;

/// The integer type of the same shape as the float value `x` (`i32` or `i32x4`).
fn int_type(b: &FunctionBuilder<'_>, x: Value) -> Type {
    if b.func.dfg.value_type(x).is_vector() {
        types::I32X4
    } else {
        types::I32
    }
}

/// The float type of the same shape as the integer value `x` (`f32` or `f32x4`).
fn float_type(b: &FunctionBuilder<'_>, x: Value) -> Type {
    if b.func.dfg.value_type(x).is_vector() {
        types::F32X4
    } else {
        types::F32
    }
}

/// The constant `c` of type `ty` (splat for a vector).
fn k(b: &mut FunctionBuilder<'_>, ty: Type, c: u32) -> Value {
    if ty.is_vector() {
        let s = b.ins().iconst(types::I32, c as i32 as i64);
        b.ins().splat(ty, s)
    } else {
        b.ins().iconst(ty, c as i32 as i64)
    }
}

fn ushr(b: &mut FunctionBuilder<'_>, x: Value, n: i64) -> Value {
    let n = b.ins().iconst(types::I32, n);
    b.ins().ushr(x, n)
}

fn shl(b: &mut FunctionBuilder<'_>, x: Value, n: i64) -> Value {
    let n = b.ins().iconst(types::I32, n);
    b.ins().ishl(x, n)
}

/// `cond ? a : c` for a scalar condition (`i8`) or a lane mask (a vector).
fn choose(b: &mut FunctionBuilder<'_>, cond: Value, a: Value, c: Value) -> Value {
    if b.func.dfg.value_type(cond).is_vector() {
        b.ins().bitselect(cond, a, c)
    } else {
        b.ins().select(cond, a, c)
    }
}

/// Signed comparison with a constant (the operands here are below 2^31).
fn cmp(b: &mut FunctionBuilder<'_>, cc: IntCC, x: Value, c: u32) -> Value {
    let ty = b.func.dfg.value_type(x);
    let c = k(b, ty, c);
    b.ins().icmp(cc, x, c)
}

/// The f32 bits `u` plus `0x7FFF` plus their lowest kept bit (bit 16): their top half is `u`
/// rounded to the nearest bf16, ties to even (for a finite `u`).
fn bf16_biased(b: &mut FunctionBuilder<'_>, ity: Type, u: Value) -> Value {
    let lsb = ushr(b, u, 16);
    let one = k(b, ity, 1);
    let lsb = b.ins().band(lsb, one);
    let bias = k(b, ity, 0x7FFF);
    let r = b.ins().iadd(u, bias);
    b.ins().iadd(r, lsb)
}

/// The bits of `x` (an `f32` or `f32x4`) rounded to `d` (`bf16` or `f16`), in the low 16 bits
/// of each `i32` lane.
pub fn narrow(b: &mut FunctionBuilder<'_>, x: Value, d: DType) -> Value {
    let ity = int_type(b, x);
    let u = b.ins().bitcast(ity, little(), x);
    match d {
        DType::Bf16 => {
            // Round to nearest even: add 0x7FFF plus the lowest kept bit, keep the top half.
            let r = bf16_biased(b, ity, u);
            let rounded = ushr(b, r, 16);
            // NaN: the top half with the quiet bit set.
            let top = ushr(b, u, 16);
            let quiet = k(b, ity, 0x0040);
            let nan = b.ins().bor(top, quiet);
            let is_nan = b.ins().fcmp(FloatCC::Unordered, x, x);
            choose(b, is_nan, nan, rounded)
        }
        DType::F16 => {
            let sign_mask = k(b, ity, 0x8000_0000);
            let sign = b.ins().band(u, sign_mask);
            let a = b.ins().bxor(u, sign);
            // Infinity, overflow and NaN (quiet, top 10 payload bits kept).
            let man_mask = k(b, ity, 0x007F_FFFF);
            let man = b.ins().band(a, man_mask);
            let man = ushr(b, man, 13);
            let qnan = k(b, ity, 0x7E00);
            let nan = b.ins().bor(qnan, man);
            let inf = k(b, ity, 0x7C00);
            let is_nan = cmp(b, IntCC::SignedGreaterThan, a, 0x7F80_0000);
            let big = choose(b, is_nan, nan, inf);
            // Subnormal or zero: adding 0.5 aligns the 10 mantissa bits at the bottom of the
            // f32 and rounds them to nearest even (the hardware's f32 addition does).
            let fty = float_type(b, x);
            let af = b.ins().bitcast(fty, little(), a);
            let half = if fty.is_vector() {
                let s = b.ins().f32const(0.5);
                b.ins().splat(fty, s)
            } else {
                b.ins().f32const(0.5)
            };
            let sum = b.ins().fadd(af, half);
            let sum = b.ins().bitcast(ity, little(), sum);
            let magic = k(b, ity, 0x3F00_0000);
            let sub = b.ins().isub(sum, magic);
            // Normal: rebias the exponent and round to nearest even at bit 13.
            let odd = ushr(b, a, 13);
            let one = k(b, ity, 1);
            let odd = b.ins().band(odd, one);
            let rebias = k(b, ity, 0xC800_0FFF); // ((15 - 127) << 23) + 0xFFF
            let r = b.ins().iadd(a, rebias);
            let r = b.ins().iadd(r, odd);
            let norm = ushr(b, r, 13);
            let is_sub = cmp(b, IntCC::SignedLessThan, a, 0x3880_0000);
            let small = choose(b, is_sub, sub, norm);
            let is_big = cmp(b, IntCC::SignedGreaterThanOrEqual, a, 0x4780_0000);
            let mag = choose(b, is_big, big, small);
            let s16 = ushr(b, sign, 16);
            b.ins().bor(mag, s16)
        }
        other => unreachable!("narrow to {other}"),
    }
}

/// The `f32` (or `f32x4`) equal to the `d` value whose bits are in the low 16 bits of each lane
/// of `h` (an `i32` or `i32x4`, the upper bits zero). Exact; a signalling NaN is made quiet.
pub fn widen(b: &mut FunctionBuilder<'_>, h: Value, d: DType) -> Value {
    let ity = b.func.dfg.value_type(h);
    let fty = if ity.is_vector() {
        types::F32X4
    } else {
        types::F32
    };
    let bits = match d {
        DType::Bf16 => {
            let u = shl(b, h, 16);
            // NaN: set the quiet bit.
            let abs_mask = k(b, ity, 0x7FFF_FFFF);
            let a = b.ins().band(u, abs_mask);
            let is_nan = cmp(b, IntCC::SignedGreaterThan, a, 0x7F80_0000);
            let quiet = k(b, ity, 0x0040_0000);
            let q = b.ins().bor(u, quiet);
            choose(b, is_nan, q, u)
        }
        DType::F16 => {
            let abs_mask = k(b, ity, 0x7FFF);
            let a = b.ins().band(h, abs_mask);
            // The f16 exponent and mantissa moved to the f32's fields (`a << 13`) read as an
            // f32 of value `|x| · 2^-112` — a subnormal f16 as a subnormal f32 — so one exact
            // multiplication by 2^112 rebiases a normal value and normalizes a subnormal one
            // (generated code never sets the flush-to-zero modes).
            let o = shl(b, a, 13);
            let o = b.ins().bitcast(fty, little(), o);
            let scale = if fty.is_vector() {
                let s = b.ins().f32const(2f32.powi(112));
                b.ins().splat(fty, s)
            } else {
                b.ins().f32const(2f32.powi(112))
            };
            let mag = b.ins().fmul(o, scale);
            let mag = b.ins().bitcast(ity, little(), mag);
            // Infinity and NaN (f16 exponent 31, here 2^16 and up): the largest exponent,
            // the payload kept and a NaN made quiet.
            let exp_ones = k(b, ity, 0x7F80_0000);
            let special = b.ins().bor(mag, exp_ones);
            let quiet = k(b, ity, 0x0040_0000);
            let quieted = b.ins().bor(special, quiet);
            let is_nan = cmp(b, IntCC::SignedGreaterThan, a, 0x7C00);
            let special = choose(b, is_nan, quieted, special);
            let is_special = cmp(b, IntCC::SignedGreaterThanOrEqual, a, 0x7C00);
            let mag = choose(b, is_special, special, mag);
            let sign_mask = k(b, ity, 0x8000);
            let sign = b.ins().band(h, sign_mask);
            let sign = shl(b, sign, 16);
            b.ins().bor(mag, sign)
        }
        other => unreachable!("widen from {other}"),
    };
    b.ins().bitcast(fty, little(), bits)
}

/// `x` (an `f32` or `f32x4`) rounded to the nearest `d` value, widened back: what a 16-bit
/// result holds.
pub fn round(b: &mut FunctionBuilder<'_>, x: Value, d: DType) -> Value {
    if d == DType::Bf16 {
        // `widen(narrow(x))` in fewer operations (every 16-bit result pays it): round to
        // nearest even and clear the low half; a NaN keeps its top half with the quiet bit
        // set. A rounded finite value is never a NaN pattern, so nothing else changes.
        let ity = int_type(b, x);
        let fty = float_type(b, x);
        let u = b.ins().bitcast(ity, little(), x);
        let r = bf16_biased(b, ity, u);
        let quiet = k(b, ity, 0x0040_0000);
        let q = b.ins().bor(u, quiet);
        let is_nan = b.ins().fcmp(FloatCC::Unordered, x, x);
        let bits = choose(b, is_nan, q, r);
        let top = k(b, ity, 0xFFFF_0000);
        let bits = b.ins().band(bits, top);
        return b.ins().bitcast(fty, little(), bits);
    }
    if d == DType::F16 {
        // `widen(narrow(x))` in a third of the operations. The magnitude `a` is rounded to
        // f16's precision by the f32 adder: `(a + c) - c` with `c = 2^(e + 13)` (`e` the
        // exponent of `a`) makes the sum's last place f16's at `e`, and with `c = 0.5` (at
        // least) f16's subnormal step 2^-24; the sum rounds to nearest even and the subtraction
        // is exact. Magnitudes from 65520 up are infinity; a NaN keeps its top ten payload
        // bits, quiet. The sign is put back last (so a tiny negative value gives -0).
        let ity = int_type(b, x);
        let fty = float_type(b, x);
        let u = b.ins().bitcast(ity, little(), x);
        let sign_mask = k(b, ity, 0x8000_0000);
        let sign = b.ins().band(u, sign_mask);
        let a_bits = b.ins().bxor(u, sign);
        let a = b.ins().bitcast(fty, little(), a_bits);
        let exp_mask = k(b, ity, 0x7F80_0000);
        let e = b.ins().band(a_bits, exp_mask);
        let shift = k(b, ity, 13 << 23);
        let ce = b.ins().iadd(e, shift);
        let least = k(b, ity, 126 << 23);
        let ce = b.ins().smax(ce, least);
        let c = b.ins().bitcast(fty, little(), ce);
        let y = b.ins().fadd(a, c);
        let y = b.ins().fsub(y, c);
        let y = b.ins().bitcast(ity, little(), y);
        let quiet = k(b, ity, 0x0040_0000);
        let q = b.ins().bor(a_bits, quiet);
        let keep = k(b, ity, 0xFFFF_E000);
        let nan = b.ins().band(q, keep);
        let inf = k(b, ity, 0x7F80_0000);
        let is_nan = cmp(b, IntCC::SignedGreaterThan, a_bits, 0x7F80_0000);
        let special = choose(b, is_nan, nan, inf);
        let is_big = cmp(b, IntCC::SignedGreaterThanOrEqual, a_bits, 0x477F_F000);
        let mag = choose(b, is_big, special, y);
        let bits = b.ins().bor(mag, sign);
        return b.ins().bitcast(fty, little(), bits);
    }
    let h = narrow(b, x, d);
    widen(b, h, d)
}
