//! Result types: the shape and dtype rule of every op, in one place.
//!
//! The builder, the verifier and the text parser all call [`result_type`], so a graph that one
//! of them accepts the others accept too.

use crate::op::{Op, TensorType};
use crate::shape::{can_broadcast_to, Dims, Shape, MAX_RANK};
use crate::{DType, TypeError};

/// The type of the result of `op` applied to operands of types `operands`, or why the operands
/// do not fit the op.
pub fn result_type(op: &Op, operands: &[&TensorType]) -> Result<TensorType, TypeError> {
    let arity = op.arity();
    if arity.map_or(operands.is_empty(), |n| operands.len() != n) {
        return Err(TypeError::Arity {
            expected: arity,
            got: operands.len(),
        });
    }
    let ty = infer(op, operands).map_err(TypeError::Rule)?;
    if ty.shape.rank() > MAX_RANK {
        return Err(TypeError::RankTooHigh {
            rank: ty.shape.rank(),
        });
    }
    ty.check_size()?;
    Ok(ty)
}

fn infer(op: &Op, xs: &[&TensorType]) -> Result<TensorType, String> {
    match op {
        Op::Input { ty, .. } | Op::Parameter { ty, .. } => Ok(ty.clone()),
        Op::Constant(lit) => Ok(lit.ty().clone()),
        Op::Iota { ty, axis } => {
            if !ty.dtype.is_numeric() {
                return Err(format!("iota needs a numeric dtype, got {}", ty.dtype));
            }
            if *axis >= ty.shape.rank() {
                return Err(format!("axis {axis} out of range for shape {}", ty.shape));
            }
            Ok(ty.clone())
        }
        Op::Unary(u) => {
            let x = xs[0];
            let ok = x.dtype.is_float() || (u.allows_int() && x.dtype == DType::I32);
            if !ok {
                return Err(format!("not defined for dtype {}", x.dtype));
            }
            Ok(x.clone())
        }
        Op::Binary(b) => {
            same_type(xs[0], xs[1])?;
            let ok = xs[0].dtype.is_float() || (b.allows_int() && xs[0].dtype == DType::I32);
            if !ok {
                return Err(format!("not defined for dtype {}", xs[0].dtype));
            }
            Ok(xs[0].clone())
        }
        Op::Compare(c) => {
            same_type(xs[0], xs[1])?;
            if xs[0].dtype == DType::Bool
                && !matches!(c, crate::CompareOp::Eq | crate::CompareOp::Ne)
            {
                return Err("bool operands can only be compared with eq or ne".into());
            }
            Ok(TensorType::new(DType::Bool, xs[0].shape.clone()))
        }
        Op::Select => {
            if xs[0].dtype != DType::Bool {
                return Err(format!("condition must be bool, got {}", xs[0]));
            }
            same_type(xs[1], xs[2])?;
            if xs[0].shape != xs[1].shape {
                return Err(format!(
                    "condition shape {} differs from value shape {}",
                    xs[0].shape, xs[1].shape
                ));
            }
            Ok(xs[1].clone())
        }
        Op::Cast { to } => Ok(TensorType::new(*to, xs[0].shape.clone())),
        Op::Broadcast { shape } => {
            if !can_broadcast_to(&xs[0].shape, shape) {
                return Err(format!("cannot broadcast {} to {shape}", xs[0].shape));
            }
            Ok(TensorType::new(xs[0].dtype, shape.clone()))
        }
        Op::Reshape { shape } => {
            if shape.try_numel() != xs[0].shape.try_numel() {
                let count = |s: &Shape| s.try_numel().map_or("too many".into(), |n| n.to_string());
                return Err(format!(
                    "cannot reshape {} ({} elements) to {shape} ({} elements)",
                    xs[0].shape,
                    count(&xs[0].shape),
                    count(shape)
                ));
            }
            Ok(TensorType::new(xs[0].dtype, shape.clone()))
        }
        Op::Permute { perm } => {
            let s = &xs[0].shape;
            if !is_permutation(perm, s.rank()) {
                return Err(format!("{perm:?} is not a permutation of the axes of {s}"));
            }
            let dims: Dims = perm.iter().map(|&p| s.dim(p)).collect();
            Ok(TensorType::new(xs[0].dtype, dims))
        }
        Op::Slice { ranges } => {
            let s = &xs[0].shape;
            if ranges.len() != s.rank() {
                return Err(format!(
                    "{} ranges given for rank-{} operand {s}",
                    ranges.len(),
                    s.rank()
                ));
            }
            let mut dims = Dims::new();
            for (axis, (r, &d)) in ranges.iter().zip(s.dims()).enumerate() {
                if r.step == 0 || r.start > r.stop || r.stop > d {
                    return Err(format!(
                        "range {}:{}:{} is not valid for axis {axis} of size {d}",
                        r.start, r.stop, r.step
                    ));
                }
                dims.push(r.len());
            }
            Ok(TensorType::new(xs[0].dtype, dims))
        }
        Op::Pad { low, high } => {
            let s = &xs[0].shape;
            if low.len() != s.rank() || high.len() != s.rank() {
                return Err(format!(
                    "padding given for {} and {} axes of rank-{} operand {s}",
                    low.len(),
                    high.len(),
                    s.rank()
                ));
            }
            let dims: Dims = (0..s.rank()).map(|i| low[i] + s.dim(i) + high[i]).collect();
            Ok(TensorType::new(xs[0].dtype, dims))
        }
        Op::Concat { axis } => {
            let first = xs[0];
            if *axis >= first.shape.rank() {
                return Err(format!(
                    "axis {axis} out of range for shape {}",
                    first.shape
                ));
            }
            let mut dims = Dims::from_slice(first.shape.dims());
            for x in &xs[1..] {
                let same_other_dims = x.shape.rank() == first.shape.rank()
                    && (0..first.shape.rank())
                        .all(|i| i == *axis || x.shape.dim(i) == first.shape.dim(i));
                if x.dtype != first.dtype || !same_other_dims {
                    return Err(format!(
                        "operands {first} and {x} differ outside axis {axis}"
                    ));
                }
                dims[*axis] += x.shape.dim(*axis);
            }
            Ok(TensorType::new(first.dtype, dims))
        }
        Op::Reduce { axes, keepdims, .. } => {
            let x = xs[0];
            if !x.dtype.is_numeric() {
                return Err(format!("not defined for dtype {}", x.dtype));
            }
            if !axes.windows(2).all(|w| w[0] < w[1]) || axes.iter().any(|&a| a >= x.shape.rank()) {
                return Err(format!(
                    "axes {axes:?} must be ascending, distinct and within rank {}",
                    x.shape.rank()
                ));
            }
            Ok(TensorType::new(
                x.dtype,
                reduced_shape(&x.shape, axes, *keepdims),
            ))
        }
        Op::MatMul => {
            let (a, b) = (xs[0], xs[1]);
            if a.dtype != b.dtype || !a.dtype.is_numeric() {
                return Err(format!(
                    "operand dtypes {} and {} must be the same number type",
                    a.dtype, b.dtype
                ));
            }
            let r = a.shape.rank();
            if r < 2 || b.shape.rank() != r {
                return Err(format!(
                    "operands must have the same rank of at least 2, got {} and {}",
                    a.shape, b.shape
                ));
            }
            if a.shape.dims()[..r - 2] != b.shape.dims()[..r - 2] {
                return Err(format!(
                    "batch dimensions of {} and {} differ",
                    a.shape, b.shape
                ));
            }
            let (k1, k2) = (a.shape.dim(r - 1), b.shape.dim(r - 2));
            if k1 != k2 {
                return Err(format!(
                    "contraction dimensions differ: {} has {k1} columns, {} has {k2} rows",
                    a.shape, b.shape
                ));
            }
            let mut dims = Dims::from_slice(a.shape.dims());
            dims[r - 1] = b.shape.dim(r - 1);
            Ok(TensorType::new(a.dtype, dims))
        }
        Op::Gather { axis } => {
            let (x, idx) = (xs[0], xs[1]);
            if idx.dtype != DType::I32 {
                return Err(format!("indices must be i32, got {idx}"));
            }
            if *axis >= x.shape.rank() {
                return Err(format!("axis {axis} out of range for shape {}", x.shape));
            }
            let d = x.shape.dims();
            let dims: Dims = d[..*axis]
                .iter()
                .chain(idx.shape.dims())
                .chain(&d[axis + 1..])
                .copied()
                .collect();
            Ok(TensorType::new(x.dtype, dims))
        }
        Op::ScatterAdd { axis, size } => {
            let (upd, idx) = (xs[0], xs[1]);
            if idx.dtype != DType::I32 {
                return Err(format!("indices must be i32, got {idx}"));
            }
            if !upd.dtype.is_numeric() {
                return Err(format!("not defined for dtype {}", upd.dtype));
            }
            let (u, k) = (upd.shape.dims(), idx.shape.rank());
            if u.len() < axis + k || u[*axis..axis + k] != *idx.shape.dims() {
                return Err(format!(
                    "update shape {} must hold index shape {} at axis {axis}",
                    upd.shape, idx.shape
                ));
            }
            let dims: Dims = u[..*axis]
                .iter()
                .chain(std::iter::once(size))
                .chain(&u[axis + k..])
                .copied()
                .collect();
            Ok(TensorType::new(upd.dtype, dims))
        }
    }
}

fn same_type(a: &TensorType, b: &TensorType) -> Result<(), String> {
    if a == b {
        Ok(())
    } else {
        Err(format!("operand types {a} and {b} differ"))
    }
}

fn is_permutation(perm: &[usize], rank: usize) -> bool {
    let mut seen = [false; MAX_RANK];
    perm.len() == rank
        && perm
            .iter()
            .all(|&p| p < rank && !std::mem::replace(&mut seen[p], true))
}

/// The shape of `s` with `axes` (ascending) removed or set to 1.
pub fn reduced_shape(s: &Shape, axes: &[usize], keepdims: bool) -> Shape {
    let dims: Dims = (0..s.rank())
        .filter_map(|i| match (axes.contains(&i), keepdims) {
            (false, _) => Some(s.dim(i)),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect();
    dims.into()
}
