//! Reductions (sum and max) over a set of axes.
//!
//! **Accumulation order.** The operand is walked once in row-major order, and each element is
//! combined into the accumulator of its output position (reached through strides that are 0 on
//! the reduced axes). So every output accumulates its elements in the natural row-major order of
//! the reduced indices, starting from the identity (0 for sum, `-inf` / `i32::MIN` for max), in
//! the element type itself: an `f32` sum is a plain left-to-right `f32` sum, an `i32` sum wraps.
//! Max propagates NaN (once an accumulator is NaN it stays NaN).

use crate::element::{with_number, Element, Number};
use crate::strided::{for_each_offset, row_major_strides};
use adjoint_ir::{Dims, HostData, ReduceOp, Shape};

/// `op` over `axes` (ascending) of an operand of shape `from`. The result has one element per
/// combination of the kept axes, row-major (with or without `keepdims`, the order is the same).
pub(crate) fn reduce(op: ReduceOp, x: &HostData, from: &Shape, axes: &[usize]) -> HostData {
    let kept: Vec<usize> = (0..from.rank()).filter(|a| !axes.contains(a)).collect();
    let kept_dims: Dims = kept.iter().map(|&a| from.dim(a)).collect();
    let kept_strides = row_major_strides(&kept_dims);
    let mut out_strides: Dims = Dims::from_elem(0, from.rank());
    for (&a, &s) in kept.iter().zip(&kept_strides) {
        out_strides[a] = s;
    }
    let numel = kept_dims.iter().product();
    with_number!(x.dtype(), T => {
        T::into_data(reduce_into::<T>(op, T::slice(x), from, &out_strides, numel))
    })
}

fn reduce_into<T: Number>(
    op: ReduceOp,
    x: &[T],
    from: &Shape,
    out_strides: &[usize],
    numel: usize,
) -> Vec<T> {
    match op {
        ReduceOp::Sum => accumulate(x, from, out_strides, numel, T::ZERO, T::add),
        ReduceOp::Max => accumulate(x, from, out_strides, numel, T::LOWEST, T::max),
    }
}

fn accumulate<T: Number>(
    x: &[T],
    from: &Shape,
    out_strides: &[usize],
    numel: usize,
    identity: T,
    combine: impl Fn(T, T) -> T,
) -> Vec<T> {
    let mut acc = vec![identity; numel];
    let mut i = 0;
    for_each_offset(from.dims(), out_strides, 0, |o| {
        acc[o] = combine(acc[o], x[i]);
        i += 1;
    });
    acc
}
