//! The elementwise operations, as scalar CLIF and (where the x64 backend has them) as vector
//! CLIF.
//!
//! # NaN behaviour of `max` and `min`
//!
//! `Op::Binary(Max | Min)` propagates NaN from either operand. When the second operand is a
//! constant that is not NaN — ReLU is `max(x, 0)` — the code is the single-instruction
//! pattern `bitselect(fcmp lt x c, c, x)` (`maxps`/`minps` on x64), which returns `x` when `x`
//! is NaN, so NaN still propagates. Otherwise it is Cranelift's `fmax`/`fmin`, whose x64
//! lowering is a NaN-correct multi-instruction sequence.

use super::value::{const_scalar, float_cc, int_cc, little, scalar_type, vector_type};
use crate::math::{self, MathOptions};
use adjoint_ir::{BinaryOp, CompareOp, DType, UnaryOp};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

/// An elementwise operation with its operand dtype.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OpKind {
    /// A unary op on dtype `d`.
    Unary(UnaryOp),
    /// A binary op; `rhs_const` is the right operand's value when it is a non-NaN constant.
    Binary(BinaryOp, Option<f64>),
    /// A comparison.
    Compare(CompareOp),
    /// `select(cond, a, b)`.
    Select,
    /// Conversion to the given dtype.
    Cast(DType),
}

/// The scalar form: `args` are scalars of dtype `d` (for `Select`, `args[0]` is the `i8`
/// condition and `d` the value dtype; for `Cast`, `d` is the source dtype).
pub fn scalar_op(
    b: &mut FunctionBuilder<'_>,
    m: MathOptions,
    kind: OpKind,
    d: DType,
    args: &[Value],
) -> Value {
    let x = args[0];
    match kind {
        OpKind::Unary(op) => unary(b, m, op, d, x, false),
        OpKind::Binary(op, c) => binary(b, m, op, d, x, args[1], c, false),
        OpKind::Compare(op) => match d {
            DType::F32 | DType::F64 | DType::Bf16 | DType::F16 => {
                b.ins().fcmp(float_cc(op), x, args[1])
            }
            _ => b.ins().icmp(int_cc(op), x, args[1]),
        },
        OpKind::Select => b.ins().select(x, args[1], args[2]),
        OpKind::Cast(to) => cast_scalar(b, d, to, x),
    }
}

/// The vector form, or `None` when there is none (the caller computes lane by lane). `args`
/// are native vectors of `w` lanes.
pub fn vector_op(
    b: &mut FunctionBuilder<'_>,
    m: MathOptions,
    kind: OpKind,
    d: DType,
    w: u8,
    args: &[Value],
) -> Option<Value> {
    let x = args[0];
    Some(match kind {
        OpKind::Unary(op) if unary_has_vector_form(op, d) => unary(b, m, op, d, x, true),
        OpKind::Unary(_) => return None,
        OpKind::Binary(op, c) => binary(b, m, op, d, x, args[1], c, true),
        OpKind::Compare(op) => match d {
            DType::F32 | DType::F64 | DType::Bf16 | DType::F16 => {
                b.ins().fcmp(float_cc(op), x, args[1])
            }
            DType::I32 => b.ins().icmp(int_cc(op), x, args[1]),
            DType::Bool => {
                // Masks are all-ones or zero: equal masks compare equal.
                let mask = b.ins().icmp(int_cc(op), x, args[1]);
                return Some(mask);
            }
        },
        OpKind::Select => {
            let vt = vector_type(d, w);
            let mask = if b.func.dfg.value_type(x) == vt {
                x
            } else {
                b.ins().bitcast(vt, little(), x)
            };
            b.ins().bitselect(mask, args[1], args[2])
        }
        OpKind::Cast(to) => return cast_vector(b, d, to, w, x),
    })
}

/// True when [`unary`] has a vector form of `op` on dtype `d`.
fn unary_has_vector_form(op: UnaryOp, d: DType) -> bool {
    match op {
        // Built from two compares and selects per lane in the scalar form only.
        UnaryOp::Sign => false,
        UnaryOp::Neg | UnaryOp::Abs | UnaryOp::StopGradient => true,
        UnaryOp::Exp
        | UnaryOp::Log
        | UnaryOp::Sqrt
        | UnaryOp::Recip
        | UnaryOp::Tanh
        | UnaryOp::Sin
        | UnaryOp::Cos => d.is_float(),
    }
}

fn fconst_like(b: &mut FunctionBuilder<'_>, d: DType, v: f64, vector: bool) -> Value {
    let s = const_scalar(b, d, v);
    if vector {
        let vt = vector_type(d, if d == DType::F64 { 2 } else { 4 });
        b.ins().splat(vt, s)
    } else {
        s
    }
}

fn unary(
    b: &mut FunctionBuilder<'_>,
    m: MathOptions,
    op: UnaryOp,
    d: DType,
    x: Value,
    vector: bool,
) -> Value {
    let float = d.is_float();
    match op {
        UnaryOp::Neg if float => b.ins().fneg(x),
        UnaryOp::Neg => b.ins().ineg(x),
        UnaryOp::Abs if float => b.ins().fabs(x),
        UnaryOp::Abs => b.ins().iabs(x),
        UnaryOp::Exp => math::emit_exp(b, m, x),
        UnaryOp::Log => math::emit_log(b, m, x),
        UnaryOp::Tanh => math::emit_tanh(b, m, x),
        UnaryOp::Sin => math::emit_sin(b, m, x),
        UnaryOp::Cos => math::emit_cos(b, m, x),
        UnaryOp::Sqrt => b.ins().sqrt(x),
        UnaryOp::StopGradient => x,
        UnaryOp::Recip => {
            let one = fconst_like(b, d, 1.0, vector);
            b.ins().fdiv(one, x)
        }
        UnaryOp::Sign => {
            // Scalar only: 1 if x > 0, -1 if x < 0, else x itself (±0 or NaN; 0 for i32).
            let zero = const_scalar(b, d, 0.0);
            let one = const_scalar(b, d, 1.0);
            let minus = const_scalar(b, d, -1.0);
            let (pos, neg) = if float {
                (
                    b.ins().fcmp(FloatCC::GreaterThan, x, zero),
                    b.ins().fcmp(FloatCC::LessThan, x, zero),
                )
            } else {
                (
                    b.ins().icmp(IntCC::SignedGreaterThan, x, zero),
                    b.ins().icmp(IntCC::SignedLessThan, x, zero),
                )
            };
            let rest = b.ins().select(neg, minus, x);
            b.ins().select(pos, one, rest)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn binary(
    b: &mut FunctionBuilder<'_>,
    m: MathOptions,
    op: BinaryOp,
    d: DType,
    x: Value,
    y: Value,
    rhs_const: Option<f64>,
    vector: bool,
) -> Value {
    let float = d.is_float();
    match op {
        BinaryOp::Add if float => b.ins().fadd(x, y),
        BinaryOp::Add => b.ins().iadd(x, y),
        BinaryOp::Sub if float => b.ins().fsub(x, y),
        BinaryOp::Sub => b.ins().isub(x, y),
        BinaryOp::Mul if float => b.ins().fmul(x, y),
        BinaryOp::Mul => b.ins().imul(x, y),
        BinaryOp::Div => b.ins().fdiv(x, y),
        BinaryOp::Pow => math::emit_pow(b, m, x, y),
        BinaryOp::Max | BinaryOp::Min if !float => {
            if op == BinaryOp::Max {
                b.ins().smax(x, y)
            } else {
                b.ins().smin(x, y)
            }
        }
        BinaryOp::Max | BinaryOp::Min => {
            if rhs_const.is_some() {
                // y is not NaN: `x < y ? y : x` (max) or `y < x ? y : x` (min) returns x when
                // x is NaN. One maxps/minps on x64.
                let cmp = if op == BinaryOp::Max {
                    b.ins().fcmp(FloatCC::LessThan, x, y)
                } else {
                    b.ins().fcmp(FloatCC::LessThan, y, x)
                };
                if vector {
                    let vt = b.func.dfg.value_type(x);
                    let mask = b.ins().bitcast(vt, little(), cmp);
                    b.ins().bitselect(mask, y, x)
                } else {
                    b.ins().select(cmp, y, x)
                }
            } else if op == BinaryOp::Max {
                b.ins().fmax(x, y)
            } else {
                b.ins().fmin(x, y)
            }
        }
    }
}

fn cast_scalar(b: &mut FunctionBuilder<'_>, from: DType, to: DType, x: Value) -> Value {
    if from == to {
        return x;
    }
    match (from, to) {
        (DType::F32, DType::F64) => b.ins().fpromote(types::F64, x),
        (DType::F64, DType::F32) => b.ins().fdemote(types::F32, x),
        (DType::F32 | DType::F64, DType::I32) => b.ins().fcvt_to_sint_sat(types::I32, x),
        (DType::I32, DType::F32 | DType::F64) => b.ins().fcvt_from_sint(scalar_type(to), x),
        (DType::Bool, _) => {
            let one = const_scalar(b, to, 1.0);
            let zero = const_scalar(b, to, 0.0);
            b.ins().select(x, one, zero)
        }
        (DType::F32 | DType::F64, DType::Bool) => {
            let zero = const_scalar(b, from, 0.0);
            b.ins().fcmp(FloatCC::NotEqual, x, zero)
        }
        (DType::I32, DType::Bool) => b.ins().icmp_imm_s(IntCC::NotEqual, x, 0),
        _ => x,
    }
}

fn cast_vector(
    b: &mut FunctionBuilder<'_>,
    from: DType,
    to: DType,
    w: u8,
    x: Value,
) -> Option<Value> {
    if from == to {
        return Some(x);
    }
    Some(match (from, to) {
        (DType::F32, DType::I32) => b.ins().fcvt_to_sint_sat(types::I32X4, x),
        (DType::I32, DType::F32) => b.ins().fcvt_from_sint(types::F32X4, x),
        (DType::Bool, DType::F32 | DType::F64 | DType::I32)
            if vector_type(to, w).lane_bits() == vector_type(from, w).lane_bits() =>
        {
            // mask & bits(1)
            let vt = vector_type(to, w);
            let one = const_scalar(b, to, 1.0);
            let ones = b.ins().splat(vt, one);
            let mask = b.ins().bitcast(vt, little(), x);
            b.ins().band(mask, ones)
        }
        (DType::F32 | DType::F64, DType::Bool) => {
            let zero = const_scalar(b, from, 0.0);
            let zeros = b.ins().splat(vector_type(from, w), zero);
            b.ins().fcmp(FloatCC::NotEqual, x, zeros)
        }
        (DType::I32, DType::Bool) => {
            let zero = b.ins().iconst(types::I32, 0);
            let zeros = b.ins().splat(types::I32X4, zero);
            b.ins().icmp(IntCC::NotEqual, x, zeros)
        }
        _ => return None,
    })
}
