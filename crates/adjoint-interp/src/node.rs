//! One node: its op applied to its operands' values, dispatched to the kernel that computes it.

use crate::{elementwise, index, leaf, matmul, movement, reduce};
use adjoint_ir::{HostData, HostTensor, Op, Shape, TensorType};

/// The value of a node with op `op` and result type `ty`, given its operands' values in order.
///
/// Inputs and parameters are not computed: their values come from the feeds. The graph has
/// passed the verifier and the feeds their checks, so operand types are exactly what `op`
/// expects.
pub(crate) fn compute(op: &Op, ty: &TensorType, xs: &[&HostTensor]) -> HostTensor {
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
