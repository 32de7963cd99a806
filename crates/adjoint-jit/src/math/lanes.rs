//! One emitter for both lane types: every function in [`crate::math`] is written once against
//! [`Lanes`], which turns "multiply these", "compare those", "this constant" into the CLIF for
//! `f32x4` or `f64x2`.
//!
//! Scalars (`f32`, `f64`, used by loop tails) are computed in lane 0 of a vector
//! (`scalar_to_vector` in, `extractlane 0` out, both free or one move on x64). The vector form
//! costs the same instructions as scalar code would, and it keeps the integer work on the
//! exponent bits in XMM registers instead of moving every value to a general-purpose register
//! and back.
//!
//! Comparisons produce *float-typed* masks (the `fcmp` result bitcast to the float vector type),
//! so a mask can go straight into `bitselect`, `band` and `bor` with float operands. The
//! `bitselect(bitcast(fcmp lt a b), ..)` shape is also what the x64 backend matches to emit
//! `minps`/`maxps` and `blendvps`.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::immediates::{Ieee32, Ieee64};
use cranelift_codegen::ir::{
    types, ConstantData, Endianness, InstBuilder, MemFlagsData, Type, Value,
};
use cranelift_frontend::FunctionBuilder;

use super::MathOptions;

/// The floating-point format of the lanes being computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Precision {
    /// IEEE binary32: `f32x4` vectors, `i32x4` for the bit patterns.
    F32,
    /// IEEE binary64: `f64x2` vectors, `i64x2` for the bit patterns.
    F64,
}

impl Precision {
    /// The 128-bit float vector type.
    pub(crate) fn vector(self) -> Type {
        match self {
            Precision::F32 => types::F32X4,
            Precision::F64 => types::F64X2,
        }
    }

    /// The integer vector type with the same lanes, for bit manipulation.
    pub(crate) fn int_vector(self) -> Type {
        match self {
            Precision::F32 => types::I32X4,
            Precision::F64 => types::I64X2,
        }
    }

    /// Bits in one lane.
    pub(crate) fn lane_bits(self) -> u32 {
        match self {
            Precision::F32 => 32,
            Precision::F64 => 64,
        }
    }

    /// Explicitly stored significand bits.
    pub(crate) fn mantissa_bits(self) -> u32 {
        match self {
            Precision::F32 => 23,
            Precision::F64 => 52,
        }
    }
}

/// Flags for `bitcast`: the verifier wants an explicit byte order whenever the lane count
/// changes; giving it always keeps every bitcast valid.
fn little() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

/// Splits a value type into its precision and whether it is a scalar, or panics naming `what`.
fn classify(ty: Type, what: &str) -> (Precision, bool) {
    match ty {
        types::F32X4 => (Precision::F32, false),
        types::F64X2 => (Precision::F64, false),
        types::F32 => (Precision::F32, true),
        types::F64 => (Precision::F64, true),
        _ => panic!("{what}: unsupported type {ty}; expected f32x4, f64x2, f32 or f64"),
    }
}

/// Emits `body` for `x` of any supported type: vectors directly, scalars in lane 0.
pub(crate) fn map_unary(
    b: &mut FunctionBuilder<'_>,
    opts: MathOptions,
    what: &str,
    x: Value,
    body: impl FnOnce(&mut Lanes<'_, '_>, Value) -> Value,
) -> Value {
    let (prec, scalar) = classify(b.func.dfg.value_type(x), what);
    let v = if scalar {
        b.ins().scalar_to_vector(prec.vector(), x)
    } else {
        x
    };
    let r = body(
        &mut Lanes {
            b,
            opts,
            prec,
            scalar,
        },
        v,
    );
    if scalar {
        b.ins().extractlane(r, 0)
    } else {
        r
    }
}

/// Like [`map_unary`] for two operands of the same type.
pub(crate) fn map_binary(
    b: &mut FunctionBuilder<'_>,
    opts: MathOptions,
    what: &str,
    x: Value,
    y: Value,
    body: impl FnOnce(&mut Lanes<'_, '_>, Value, Value) -> Value,
) -> Value {
    let tx = b.func.dfg.value_type(x);
    let ty = b.func.dfg.value_type(y);
    assert_eq!(tx, ty, "{what}: operand types differ ({tx} and {ty})");
    let (prec, scalar) = classify(tx, what);
    let (vx, vy) = if scalar {
        let vx = b.ins().scalar_to_vector(prec.vector(), x);
        let vy = b.ins().scalar_to_vector(prec.vector(), y);
        (vx, vy)
    } else {
        (x, y)
    };
    let r = body(
        &mut Lanes {
            b,
            opts,
            prec,
            scalar,
        },
        vx,
        vy,
    );
    if scalar {
        b.ins().extractlane(r, 0)
    } else {
        r
    }
}

/// A function builder positioned inside a block, plus the lane format being computed.
pub(crate) struct Lanes<'a, 'f> {
    b: &'a mut FunctionBuilder<'f>,
    opts: MathOptions,
    prec: Precision,
    /// Only lane 0 carries a value (the others are whatever `scalar_to_vector` left there).
    scalar: bool,
}

impl<'f> Lanes<'_, 'f> {
    /// The lane format.
    pub(crate) fn prec(&self) -> Precision {
        self.prec
    }

    /// How many lanes carry values: 1 for a scalar computed in lane 0, else all of them.
    pub(crate) fn live_lanes(&self) -> u8 {
        match (self.scalar, self.prec) {
            (true, _) => 1,
            (false, Precision::F32) => 4,
            (false, Precision::F64) => 2,
        }
    }

    /// The underlying builder, for control flow that the lane operations do not cover.
    pub(crate) fn builder(&mut self) -> &mut FunctionBuilder<'f> {
        self.b
    }

    /// Whether `fma` may be emitted.
    pub(crate) fn has_fma(&self) -> bool {
        self.opts.fma
    }

    /// Runs `body` with the same builder but another lane format (for work done in `f64x2`
    /// on behalf of `f32x4` lanes).
    pub(crate) fn with_precision<R>(
        &mut self,
        prec: Precision,
        body: impl FnOnce(&mut Lanes<'_, 'f>) -> R,
    ) -> R {
        body(&mut Lanes {
            b: &mut *self.b,
            opts: self.opts,
            prec,
            scalar: self.scalar,
        })
    }

    // ---- constants -------------------------------------------------------------------------

    /// A constant in every lane; `v32` is used for `f32` lanes and `v64` for `f64` lanes.
    pub(crate) fn c(&mut self, v32: f32, v64: f64) -> Value {
        let s = match self.prec {
            Precision::F32 => self.b.ins().f32const(Ieee32::with_bits(v32.to_bits())),
            Precision::F64 => self.b.ins().f64const(Ieee64::with_bits(v64.to_bits())),
        };
        self.b.ins().splat(self.prec.vector(), s)
    }

    /// A constant that is exact in the current format.
    pub(crate) fn cf(&mut self, v: f64) -> Value {
        let narrow = v as f32;
        debug_assert!(
            self.prec == Precision::F64 || f64::from(narrow) == v || v.is_nan(),
            "{v} is not exact in f32"
        );
        self.c(narrow, v)
    }

    /// A float constant given by its bit pattern in each format.
    pub(crate) fn cbits(&mut self, b32: u32, b64: u64) -> Value {
        self.c(f32::from_bits(b32), f64::from_bits(b64))
    }

    /// An integer constant in every lane of the integer vector type.
    pub(crate) fn ci(&mut self, v32: i32, v64: i64) -> Value {
        let (lane, v) = match self.prec {
            Precision::F32 => (types::I32, i64::from(v32)),
            Precision::F64 => (types::I64, v64),
        };
        let s = self.b.ins().iconst(lane, v);
        self.b.ins().splat(self.prec.int_vector(), s)
    }

    /// `-0.0` in every lane: the sign bit alone.
    pub(crate) fn sign_bit(&mut self) -> Value {
        self.cbits(0x8000_0000, 0x8000_0000_0000_0000)
    }

    // ---- float arithmetic ------------------------------------------------------------------

    pub(crate) fn add(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fadd(a, b)
    }

    pub(crate) fn sub(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fsub(a, b)
    }

    pub(crate) fn mul(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fmul(a, b)
    }

    pub(crate) fn div(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().fdiv(a, b)
    }

    pub(crate) fn neg(&mut self, a: Value) -> Value {
        self.b.ins().fneg(a)
    }

    /// `|a|`: the sign bit cleared with a constant mask (one `andps`; Cranelift's `fabs`
    /// builds the mask with two more vector instructions at every use).
    pub(crate) fn abs(&mut self, a: Value) -> Value {
        let mask = self.cbits(0x7fff_ffff, 0x7fff_ffff_ffff_ffff);
        self.and(a, mask)
    }

    /// `a * b + c`: one rounding with FMA, two without.
    pub(crate) fn mul_add(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.opts.fma {
            self.b.ins().fma(a, b, c)
        } else {
            let p = self.b.ins().fmul(a, b);
            self.b.ins().fadd(p, c)
        }
    }

    /// The polynomial `c[0] + c[1] x + c[2] x² + …` by Horner's rule, with the coefficients of
    /// the current precision.
    pub(crate) fn poly(&mut self, x: Value, c32: &[f32], c64: &[f64]) -> Value {
        match self.prec {
            Precision::F32 => {
                let (last, rest) = c32.split_last().expect("empty polynomial");
                let mut acc = self.c(*last, 0.0);
                for &k in rest.iter().rev() {
                    let k = self.c(k, 0.0);
                    acc = self.mul_add(acc, x, k);
                }
                acc
            }
            Precision::F64 => {
                let (last, rest) = c64.split_last().expect("empty polynomial");
                let mut acc = self.c(0.0, *last);
                for &k in rest.iter().rev() {
                    let k = self.c(0.0, k);
                    acc = self.mul_add(acc, x, k);
                }
                acc
            }
        }
    }

    /// `a * b` exactly, as `(p, e)` with `p = fl(a * b)` and `p + e = a * b`: the FMA residual
    /// when FMA is available, Dekker's splitting otherwise (valid while `|a|, |b| < 2^996`).
    pub(crate) fn two_prod(&mut self, a: Value, b: Value) -> (Value, Value) {
        let p = self.mul(a, b);
        if self.opts.fma {
            let np = self.neg(p);
            let e = self.b.ins().fma(a, b, np);
            return (p, e);
        }
        let (ah, al) = self.split(a);
        let (bh, bl) = self.split(b);
        let hh = self.mul(ah, bh);
        let t = self.sub(hh, p);
        let hl = self.mul(ah, bl);
        let t = self.add(t, hl);
        let lh = self.mul(al, bh);
        let t = self.add(t, lh);
        let ll = self.mul(al, bl);
        let e = self.add(t, ll);
        (p, e)
    }

    /// Veltkamp's split of `a` into two halves whose products are exact.
    fn split(&mut self, a: Value) -> (Value, Value) {
        // 2^12 + 1 and 2^27 + 1.
        let k = self.c(4097.0, 134_217_729.0);
        let c = self.mul(k, a);
        let d = self.sub(c, a);
        let hi = self.sub(c, d);
        let lo = self.sub(a, hi);
        (hi, lo)
    }

    /// `a + b` exactly as `(s, e)` for any magnitudes (Knuth's two-sum).
    pub(crate) fn two_sum(&mut self, a: Value, b: Value) -> (Value, Value) {
        let s = self.add(a, b);
        let bb = self.sub(s, a);
        let ab = self.sub(s, bb);
        let da = self.sub(a, ab);
        let db = self.sub(b, bb);
        let e = self.add(da, db);
        (s, e)
    }

    /// `a + b` exactly as `(s, e)` when `|a| >= |b|` or `a` is zero (Dekker's fast two-sum).
    pub(crate) fn fast_two_sum(&mut self, a: Value, b: Value) -> (Value, Value) {
        let s = self.add(a, b);
        let t = self.sub(s, a);
        let e = self.sub(b, t);
        (s, e)
    }

    // ---- masks and selection ---------------------------------------------------------------

    /// `a <cc> b` per lane as an all-ones / all-zeros float-typed mask. Only the condition
    /// codes the x64 backend lowers for vectors are allowed (not `one` / `ueq`).
    pub(crate) fn cmp(&mut self, cc: FloatCC, a: Value, b: Value) -> Value {
        debug_assert!(!matches!(
            cc,
            FloatCC::OrderedNotEqual | FloatCC::UnorderedOrEqual
        ));
        let m = self.b.ins().fcmp(cc, a, b);
        self.b.ins().bitcast(self.prec.vector(), little(), m)
    }

    /// Integer equality of two integer vectors, as a float-typed mask.
    pub(crate) fn ieq(&mut self, a: Value, b: Value) -> Value {
        let m = self.b.ins().icmp(IntCC::Equal, a, b);
        self.b.ins().bitcast(self.prec.vector(), little(), m)
    }

    /// Per lane: `if mask { t } else { f }`.
    pub(crate) fn select(&mut self, mask: Value, t: Value, f: Value) -> Value {
        self.b.ins().bitselect(mask, t, f)
    }

    pub(crate) fn and(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().band(a, b)
    }

    pub(crate) fn or(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().bor(a, b)
    }

    pub(crate) fn xor(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().bxor(a, b)
    }

    /// `a & !b`.
    pub(crate) fn and_not(&mut self, a: Value, b: Value) -> Value {
        let nb = self.b.ins().bnot(b);
        self.b.ins().band(a, nb)
    }

    /// `max(x, lo)` that keeps a NaN `x` (one `maxps`/`maxpd`).
    pub(crate) fn at_least(&mut self, x: Value, lo: Value) -> Value {
        let m = self.cmp(FloatCC::LessThan, x, lo);
        self.select(m, lo, x)
    }

    /// `min(x, hi)` that keeps a NaN `x` (one `minps`/`minpd`).
    pub(crate) fn at_most(&mut self, x: Value, hi: Value) -> Value {
        let m = self.cmp(FloatCC::LessThan, hi, x);
        self.select(m, hi, x)
    }

    /// `x` clamped to `[lo, hi]`, NaN kept.
    pub(crate) fn clamp(&mut self, x: Value, lo: Value, hi: Value) -> Value {
        let x = self.at_least(x, lo);
        self.at_most(x, hi)
    }

    // ---- the bits of a float ---------------------------------------------------------------

    /// Reinterprets float lanes as integers.
    pub(crate) fn as_int(&mut self, x: Value) -> Value {
        self.b.ins().bitcast(self.prec.int_vector(), little(), x)
    }

    /// Reinterprets integer lanes as floats.
    pub(crate) fn as_float(&mut self, i: Value) -> Value {
        self.b.ins().bitcast(self.prec.vector(), little(), i)
    }

    pub(crate) fn iadd(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().iadd(a, b)
    }

    pub(crate) fn isub(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().isub(a, b)
    }

    pub(crate) fn iand(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().band(a, b)
    }

    pub(crate) fn ior(&mut self, a: Value, b: Value) -> Value {
        self.b.ins().bor(a, b)
    }

    /// Logical shift left of every lane by the same amount.
    pub(crate) fn shl(&mut self, a: Value, n: u32) -> Value {
        let n = self.b.ins().iconst(types::I32, i64::from(n));
        self.b.ins().ishl(a, n)
    }

    /// Logical shift right of every lane by the same amount.
    pub(crate) fn ushr(&mut self, a: Value, n: u32) -> Value {
        let n = self.b.ins().iconst(types::I32, i64::from(n));
        self.b.ins().ushr(a, n)
    }

    // ---- f32x4 <-> 2 x f64x2 ---------------------------------------------------------------

    /// Widens the four lanes of an `f32x4` to two `f64x2`: lanes 0–1 and lanes 2–3.
    pub(crate) fn widen_f32x4(&mut self, x: Value) -> (Value, Value) {
        let lo = self.b.ins().fvpromote_low(x);
        let bytes = self.b.ins().bitcast(types::I8X16, little(), x);
        // Bytes 8..16 moved down (a `pshufd`).
        let high = self.shuffle(bytes, bytes, |i| 8 + (i % 8));
        let high = self.b.ins().bitcast(types::F32X4, little(), high);
        let hi = self.b.ins().fvpromote_low(high);
        (lo, hi)
    }

    /// Rounds two `f64x2` to `f32` and packs them into one `f32x4` (inverse of
    /// [`Lanes::widen_f32x4`]).
    pub(crate) fn narrow_f64x2(&mut self, lo: Value, hi: Value) -> Value {
        let lo = self.b.ins().fvdemote(lo);
        let hi = self.b.ins().fvdemote(hi);
        let lo = self.b.ins().bitcast(types::I8X16, little(), lo);
        let hi = self.b.ins().bitcast(types::I8X16, little(), hi);
        // Low 8 bytes of each (a `punpcklqdq`).
        let both = self.shuffle(lo, hi, |i| if i < 8 { i } else { 8 + i });
        self.b.ins().bitcast(types::F32X4, little(), both)
    }

    /// `shuffle` of two `i8x16` with byte `i` of the result taken from `pick(i)` (0–15 from `a`,
    /// 16–31 from `b`).
    fn shuffle(&mut self, a: Value, b: Value, pick: impl Fn(u8) -> u8) -> Value {
        let mask: Vec<u8> = (0..16).map(pick).collect();
        let imm = self
            .b
            .func
            .dfg
            .immediates
            .push(ConstantData::from(mask.as_slice()));
        self.b.ins().shuffle(a, b, imm)
    }
}
