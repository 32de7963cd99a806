//! Rules for matmul, gather and scatter-add.

use adjoint_ir::{BuildError, Tensor};

/// `c = a @ b` (batched, equal batch axes): `da = g @ bᵀ`, `db = aᵀ @ g`, transposing the last
/// two axes with a permute.
pub(super) fn matmul<'b>(
    a: Tensor<'b>,
    b: Tensor<'b>,
    g: Tensor<'b>,
    need: &[bool],
) -> Result<Vec<Option<Tensor<'b>>>, BuildError> {
    let da = if need[0] {
        Some(g.try_matmul(b.try_transpose(-1, -2)?)?)
    } else {
        None
    };
    let db = if need[1] {
        Some(a.try_transpose(-1, -2)?.try_matmul(g)?)
    } else {
        None
    };
    Ok(vec![da, db])
}

/// `y = gather(x, idx, axis)`: add `g` back at the gathered positions,
/// `scatter_add(g, idx, axis, x.shape[axis])`. Repeated indices accumulate; out-of-range
/// indices (which read 0) get nothing.
pub(super) fn gather<'b>(
    x: Tensor<'b>,
    idx: Tensor<'b>,
    axis: usize,
    g: Tensor<'b>,
) -> Result<Tensor<'b>, BuildError> {
    let size = x.shape().dim(axis);
    g.try_scatter_add(idx, axis as isize, size)
}

/// `y = scatter_add(upd, idx, axis, size)`: each update element reads the adjoint of the
/// position it was added to, `gather(g, idx, axis)` (out-of-range indices read 0, matching the
/// updates that were dropped).
pub(super) fn scatter_add<'b>(
    idx: Tensor<'b>,
    axis: usize,
    g: Tensor<'b>,
) -> Result<Tensor<'b>, BuildError> {
    g.try_gather(idx, axis as isize)
}
