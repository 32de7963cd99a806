//! One node: its op applied to its operands' values, dispatched to the kernel that computes it.

use crate::{elementwise, index, leaf, matmul, movement, reduce};
use adjoint_ir::half_float::{f32_to_bf16, f32_to_f16};
use adjoint_ir::{DType, HostData, HostTensor, Literal, Op, Shape, TensorType};

/// The value of a node with op `op` and result type `ty`, given its operands' values in order.
///
/// Inputs and parameters are not computed: their values come from the feeds. The graph has
/// passed the verifier and the feeds their checks, so operand types are exactly what `op`
/// expects.
///
/// A node that reads or produces a 16-bit float (`bf16`, `f16`) is computed in `f32`: its
/// 16-bit operands are widened (exactly), the op runs on `f32` values with `f32` in place of
/// the 16-bit type, and a 16-bit result is rounded once, to nearest with ties to even. So a
/// sum, a product or a scatter-add accumulates in `f32` and rounds only what it stores.
pub(crate) fn compute(op: &Op, ty: &TensorType, xs: &[&HostTensor]) -> HostTensor {
    if ty.dtype.is_half() || xs.iter().any(|x| x.dtype().is_half()) {
        return compute_half(op, ty, xs);
    }
    compute_exact(op, ty, xs)
}

/// [`compute`] of a node that touches a 16-bit float: in `f32`, rounded on store.
fn compute_half(op: &Op, ty: &TensorType, xs: &[&HostTensor]) -> HostTensor {
    let wide: Vec<HostTensor> = xs.iter().map(|x| widen(x)).collect();
    let wide_refs: Vec<&HostTensor> = wide.iter().collect();
    let wide_ty = TensorType::new(ty.dtype.compute(), ty.shape.clone());
    let wide_op = match op {
        Op::Cast { to } => Op::Cast { to: to.compute() },
        Op::Iota { ty, axis } => Op::Iota {
            ty: TensorType::new(ty.dtype.compute(), ty.shape.clone()),
            axis: *axis,
        },
        Op::Constant(lit) => Op::Constant(
            Literal::new(
                TensorType::new(lit.ty().dtype.compute(), lit.ty().shape.clone()),
                lit.values(),
            )
            .expect("same element count"),
        ),
        other => other.clone(),
    };
    let out = compute_exact(&wide_op, &wide_ty, &wide_refs);
    narrow(out, ty.dtype)
}

/// A 16-bit float tensor widened to `f32` (exact); any other tensor as it is.
fn widen(x: &HostTensor) -> HostTensor {
    let data = match x.data() {
        HostData::Bf16(v) => HostData::F32(v.iter().map(|h| h.to_f32()).collect()),
        HostData::F16(v) => HostData::F32(v.iter().map(|h| h.to_f32()).collect()),
        _ => return x.clone(),
    };
    HostTensor::new(x.shape().clone(), data).expect("same element count")
}

/// An `f32` tensor rounded to `dtype` when that is a 16-bit float (to nearest, ties to even);
/// any other tensor as it is.
fn narrow(x: HostTensor, dtype: DType) -> HostTensor {
    let data = match (x.as_f32(), dtype) {
        (Some(v), DType::Bf16) => HostData::Bf16(v.iter().map(|&f| f32_to_bf16(f)).collect()),
        (Some(v), DType::F16) => HostData::F16(v.iter().map(|&f| f32_to_f16(f)).collect()),
        _ => return x,
    };
    HostTensor::new(x.shape().clone(), data).expect("same element count")
}

/// [`compute`] of a node of the types the kernels implement: no 16-bit floats.
fn compute_exact(op: &Op, ty: &TensorType, xs: &[&HostTensor]) -> HostTensor {
    let data = |i: usize| xs[i].data();
    let shape = |i: usize| xs[i].shape();
    let out: HostData = match op {
        Op::Input { name, .. } | Op::Parameter { name, .. } => {
            panic!("interpreter bug: leaf `{name}` must be read from the feeds")
        }
        Op::Constant(lit) => leaf::constant(lit),
        Op::Iota { ty, axis } => leaf::iota(ty, *axis),
        Op::Unary(u) => elementwise::unary(*u, data(0)),
        Op::Binary(b) => elementwise::binary(*b, data(0), data(1)),
        Op::Compare(c) => elementwise::compare(*c, data(0), data(1)),
        Op::Select => elementwise::select(data(0), data(1), data(2)),
        Op::Cast { to } => elementwise::cast(data(0), *to),
        Op::Broadcast { shape: to } => movement::broadcast(data(0), shape(0), to),
        Op::Reshape { .. } => data(0).clone(),
        Op::Permute { perm } => movement::permute(data(0), shape(0), perm),
        Op::Slice { ranges } => movement::slice(data(0), shape(0), ranges),
        Op::Pad { low, .. } => movement::pad(data(0), shape(0), &ty.shape, low),
        Op::Concat { axis } => {
            let parts: Vec<&HostData> = xs.iter().map(|x| x.data()).collect();
            let shapes: Vec<&Shape> = xs.iter().map(|x| x.shape()).collect();
            movement::concat(&parts, &shapes, *axis, &ty.shape)
        }
        Op::Reduce { op, axes, .. } => reduce::reduce(*op, data(0), shape(0), axes),
        Op::MatMul => matmul::matmul(data(0), data(1), shape(0), shape(1)),
        Op::Gather { axis } => {
            with_indices(xs[1], |idx| index::gather(data(0), idx, shape(0), *axis))
        }
        Op::ScatterAdd { axis, .. } => with_indices(xs[1], |idx| {
            index::scatter_add(data(0), idx, &ty.shape, *axis)
        }),
        Op::AllReduce { .. } => {
            panic!("interpreter bug: all_reduce is run by the executor, with its collective")
        }
    };
    HostTensor::new(ty.shape.clone(), out).unwrap_or_else(|e| {
        panic!(
            "interpreter bug: {} produced the wrong element count: {e}",
            op.name()
        )
    })
}

/// Calls `f` with the elements of an `i32` index tensor.
fn with_indices(idx: &HostTensor, f: impl FnOnce(&[i32]) -> HostData) -> HostData {
    match idx.as_i32() {
        Some(v) => f(v),
        None => panic!(
            "interpreter bug: indices of dtype {} passed the verifier",
            idx.dtype()
        ),
    }
}
