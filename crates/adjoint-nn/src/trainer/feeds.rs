//! Shaping host tensors into what a compiled graph's inputs declare.

use super::TrainError;
use adjoint_ir::{HostTensor, TensorType};

/// `t` cast to `ty`'s dtype and reshaped to its shape; an error naming the input if the element
/// counts differ.
pub(crate) fn conform(
    name: &str,
    t: &HostTensor,
    ty: &TensorType,
) -> Result<HostTensor, TrainError> {
    if t.numel() != ty.shape.numel() {
        return Err(TrainError::Config(format!(
            "the input `{name}` is declared {ty}, but a batch gives {} ({} elements, not {})",
            t.ty(),
            t.numel(),
            ty.shape.numel()
        )));
    }
    let cast = if t.dtype() == ty.dtype {
        t.clone()
    } else {
        t.cast(ty.dtype)
    };
    cast.reshape(ty.shape.clone())
        .map_err(|e| TrainError::Config(format!("reshaping the input `{name}`: {e}")))
}

/// The first `keep` of the `rows` leading-axis rows of `t`; `None` if `t`'s leading axis is not
/// `rows` long.
pub(crate) fn slice_rows(t: &HostTensor, rows: usize, keep: usize) -> Option<HostTensor> {
    let dims = t.shape().dims();
    if dims.first() != Some(&rows) || keep > rows {
        return None;
    }
    let per_row = t.numel() / rows.max(1);
    let values = t.to_f64_vec();
    let mut shape = dims.to_vec();
    shape[0] = keep;
    HostTensor::from_f64_as(t.dtype(), shape, &values[..keep * per_row]).ok()
}

/// Part `part` of `parts` equal parts of `t`'s leading axis (rows `part·n/parts ..
/// (part+1)·n/parts` of its `n` rows): a replica's shard of a global batch. `None` if `t` has
/// no leading axis or `parts` does not divide it.
pub(crate) fn shard_rows(t: &HostTensor, part: usize, parts: usize) -> Option<HostTensor> {
    let dims = t.shape().dims();
    let n = *dims.first()?;
    if parts == 0 || part >= parts || n % parts != 0 {
        return None;
    }
    let rows = n / parts;
    let per_row = t.numel() / n.max(1);
    let values = t.to_f64_vec();
    let mut shape = dims.to_vec();
    shape[0] = rows;
    let start = part * rows * per_row;
    HostTensor::from_f64_as(t.dtype(), shape, &values[start..start + rows * per_row]).ok()
}
