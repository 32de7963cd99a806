//! Rules for the reductions.

use adjoint_ir::infer::reduced_shape;
use adjoint_ir::{BuildError, ReduceOp, Tensor};

/// `y = reduce(x, axes)`.
///
/// Sum: `g` reshaped to keep the reduced axes (size 1), then broadcast back to `x`'s shape.
///
/// Max: the gradient goes to the positions equal to the maximum (mask `x == y`, broadcast);
/// when several positions tie for the maximum, each gets an equal share `g / count`.
pub(super) fn reduce<'b>(
    op: ReduceOp,
    axes: &[usize],
    x: Tensor<'b>,
    y: Tensor<'b>,
    g: Tensor<'b>,
) -> Result<Tensor<'b>, BuildError> {
    let s = x.shape();
    let kept = reduced_shape(&s, axes, true);
    let g_kept = g.try_reshape(kept.clone())?;
    match op {
        ReduceOp::Sum => g_kept.try_broadcast_to(s),
        ReduceOp::Max => {
            let axes: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
            let y_wide = y.try_reshape(kept)?.try_broadcast_to(s.clone())?;
            let mask = x.try_eq(y_wide)?.try_cast(x.dtype())?;
            let count = mask.try_sum_keepdims(&axes)?;
            let share = g_kept.try_div(count)?.try_broadcast_to(s)?;
            mask.try_mul(share)
        }
    }
}
