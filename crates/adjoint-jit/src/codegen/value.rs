//! Values of a kernel body: one element, or `W` consecutive elements along the lane variable.
//!
//! A value computed for `W` lanes is held in one of three forms ([`Val`]): a scalar when it is
//! the same for every lane (a constant, a load that does not move along the lane variable), a
//! native 128-bit vector when its dtype fills one (`f32x4`, `i32x4`, `f64x2`; a `bool` is a
//! lane mask of the same width), or one scalar per lane otherwise (an `i32` in an `f64x2`
//! loop). Operations convert their operands to the form of their result; every operation has a
//! per-lane scalar implementation, and the common ones a vector one.

use adjoint_ir::DType;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, Endianness, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::FunctionBuilder;
use smallvec::SmallVec;

/// A value for the current lanes.
#[derive(Clone, Debug)]
pub enum Val {
    /// The same scalar in every lane.
    Uni(Value),
    /// A native vector (`bool`: an integer mask, all ones for true).
    Vec(Value),
    /// One scalar per lane (`bool`: `i8` 0 or 1).
    Lanes(SmallVec<[Value; 4]>),
}

/// The form a value of some dtype takes for `w` lanes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rep {
    /// [`Val::Uni`].
    Uni,
    /// [`Val::Vec`].
    Vec,
    /// [`Val::Lanes`].
    Lanes,
}

/// The scalar CLIF type of a dtype (`bool` is `i8`; a 16-bit float is held widened, as the
/// `f32` it converts to exactly).
pub fn scalar_type(d: DType) -> Type {
    match d {
        DType::F32 | DType::Bf16 | DType::F16 => types::F32,
        DType::F64 => types::F64,
        DType::I32 => types::I32,
        DType::Bool => types::I8,
    }
}

/// True when `w` lanes of `d` fill a native vector.
pub fn is_native(d: DType, w: u8) -> bool {
    matches!(
        (d, w),
        (
            DType::F32 | DType::Bf16 | DType::F16 | DType::I32 | DType::Bool,
            4
        ) | (DType::F64 | DType::Bool, 2)
    )
}

/// The vector CLIF type of `w` lanes of `d` (a mask type for `bool`).
pub fn vector_type(d: DType, w: u8) -> Type {
    match (d, w) {
        (DType::F32 | DType::Bf16 | DType::F16, _) => types::F32X4,
        (DType::I32, _) => types::I32X4,
        (DType::F64, _) => types::F64X2,
        (DType::Bool, 4) => types::I32X4,
        (DType::Bool, _) => types::I64X2,
    }
}

/// Flags of every load and store: unaligned, never trapping (addresses are in bounds).
pub fn mem() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// Flags of a bit-preserving vector `bitcast`.
pub fn little() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

/// A scalar constant of dtype `d`.
pub fn const_scalar(b: &mut FunctionBuilder<'_>, d: DType, v: f64) -> Value {
    match d {
        // A constant of a 16-bit type holds a value of that type, exact in f32.
        DType::F32 | DType::Bf16 | DType::F16 => b.ins().f32const(v as f32),
        DType::F64 => b.ins().f64const(v),
        DType::I32 => b.ins().iconst(types::I32, v as i32 as i64),
        DType::Bool => b.ins().iconst(types::I8, (v != 0.0) as i64),
    }
}

/// Lane `l` of `v` as a scalar of dtype `d`.
pub fn lane(b: &mut FunctionBuilder<'_>, v: &Val, d: DType, l: u8) -> Value {
    match v {
        Val::Uni(x) => *x,
        Val::Lanes(xs) => xs[l as usize],
        Val::Vec(x) => {
            let e = b.ins().extractlane(*x, l);
            if d == DType::Bool {
                b.ins().icmp_imm_s(IntCC::NotEqual, e, 0)
            } else {
                e
            }
        }
    }
}

/// A bool scalar (`i8` 0/1) as a mask lane of type `ty` (0 or all ones).
fn mask_lane(b: &mut FunctionBuilder<'_>, x: Value, ty: Type) -> Value {
    let wide = b.ins().uextend(ty, x);
    b.ins().ineg(wide)
}

/// `v` as a native vector of `w` lanes of `d`.
pub fn to_vec(b: &mut FunctionBuilder<'_>, v: &Val, d: DType, w: u8) -> Value {
    let vt = vector_type(d, w);
    let lane_ty = vt.lane_type();
    match v {
        Val::Vec(x) => *x,
        Val::Uni(x) => {
            let s = if d == DType::Bool {
                mask_lane(b, *x, lane_ty)
            } else {
                *x
            };
            b.ins().splat(vt, s)
        }
        Val::Lanes(xs) => {
            let s0 = if d == DType::Bool {
                mask_lane(b, xs[0], lane_ty)
            } else {
                xs[0]
            };
            let mut acc = b.ins().splat(vt, s0);
            for (l, &x) in xs.iter().enumerate().skip(1) {
                let s = if d == DType::Bool {
                    mask_lane(b, x, lane_ty)
                } else {
                    x
                };
                acc = b.ins().insertlane(acc, s, l as u8);
            }
            acc
        }
    }
}

/// `v` as one scalar per lane.
pub fn to_lanes(b: &mut FunctionBuilder<'_>, v: &Val, d: DType, w: u8) -> SmallVec<[Value; 4]> {
    (0..w).map(|l| lane(b, v, d, l)).collect()
}

/// Converts `v` to form `rep` for `w` lanes.
pub fn convert(b: &mut FunctionBuilder<'_>, v: Val, d: DType, w: u8, rep: Rep) -> Val {
    match (rep, &v) {
        (Rep::Uni, Val::Uni(_)) | (Rep::Vec, Val::Vec(_)) | (Rep::Lanes, Val::Lanes(_)) => v,
        (Rep::Vec, _) => Val::Vec(to_vec(b, &v, d, w)),
        (Rep::Lanes, _) => Val::Lanes(to_lanes(b, &v, d, w)),
        (Rep::Uni, _) => Val::Uni(lane(b, &v, d, 0)),
    }
}

/// The float condition code of a comparison.
pub fn float_cc(op: adjoint_ir::CompareOp) -> FloatCC {
    match op {
        adjoint_ir::CompareOp::Lt => FloatCC::LessThan,
        adjoint_ir::CompareOp::Le => FloatCC::LessThanOrEqual,
        adjoint_ir::CompareOp::Eq => FloatCC::Equal,
        adjoint_ir::CompareOp::Ne => FloatCC::NotEqual,
    }
}

/// The signed integer condition code of a comparison.
pub fn int_cc(op: adjoint_ir::CompareOp) -> IntCC {
    match op {
        adjoint_ir::CompareOp::Lt => IntCC::SignedLessThan,
        adjoint_ir::CompareOp::Le => IntCC::SignedLessThanOrEqual,
        adjoint_ir::CompareOp::Eq => IntCC::Equal,
        adjoint_ir::CompareOp::Ne => IntCC::NotEqual,
    }
}
