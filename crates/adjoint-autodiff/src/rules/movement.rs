//! Rules for the movement ops: broadcast, permute, slice, pad and concat (reshape is inline in
//! the dispatcher: the adjoint is reshaped back).

use super::zeros_like;
use adjoint_ir::{BuildError, DType, SliceRange, Tensor};

/// `y = broadcast_to(x, S)`: sum `g` over the axes the broadcast created or stretched (the
/// leading axes `x` lacks and the axes where `x` has size 1), keeping them, then reshape to
/// `x`'s shape.
pub(super) fn broadcast<'b>(x: Tensor<'b>, g: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
    let (s, big) = (x.shape(), g.shape());
    let lead = big.rank() - s.rank();
    let axes: Vec<isize> = (0..big.rank())
        .filter(|&i| i < lead || (s.dim(i - lead) == 1 && big.dim(i) != 1))
        .map(|i| i as isize)
        .collect();
    let summed = if axes.is_empty() {
        g
    } else {
        g.try_sum_keepdims(&axes)?
    };
    summed.try_reshape(s)
}

/// `y = permute(x, perm)`: permute `g` by the inverse permutation.
pub(super) fn permute<'b>(perm: &[usize], g: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
    let mut inverse = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    g.try_permute(&inverse)
}

/// `y = slice(x, ranges)`: put `g` back where the slice took its elements, zeros elsewhere.
///
/// Each strided axis (step > 1) is restored with one `scatter_add` along that axis whose indices
/// are `start + step·iota` (so the zeros between the taken elements come for free); the
/// remaining unit-step axes are restored together with one `pad` of `start` zeros before and
/// `dim - start - len` after. An empty slice gets a zero adjoint.
pub(super) fn slice<'b>(
    x: Tensor<'b>,
    ranges: &[SliceRange],
    g: Tensor<'b>,
) -> Result<Tensor<'b>, BuildError> {
    if ranges.iter().any(|r| r.is_empty()) {
        return zeros_like(x);
    }
    let s = x.shape();
    let b = g.builder();
    let mut out = g;
    let mut low = vec![0; s.rank()];
    let mut high = vec![0; s.rank()];
    for (axis, r) in ranges.iter().enumerate() {
        let d = s.dim(axis);
        if r.step > 1 {
            let n = r.len();
            let idx = b
                .try_iota(DType::I32, [n], 0)?
                .try_mul(b.scalar(DType::I32, r.step as f64))?
                .try_add(b.scalar(DType::I32, r.start as f64))?;
            out = out.try_scatter_add(idx, axis as isize, d)?;
        } else {
            low[axis] = r.start;
            high[axis] = d - r.start - r.len();
        }
    }
    if low.iter().chain(&high).any(|&p| p > 0) {
        out = out.try_pad(&low, &high)?;
    }
    Ok(out)
}

/// `y = pad(x, low, high)`: slice the interior back out of `g`.
pub(super) fn pad<'b>(
    x: Tensor<'b>,
    low: &[usize],
    g: Tensor<'b>,
) -> Result<Tensor<'b>, BuildError> {
    let ranges: Vec<SliceRange> = x
        .shape()
        .dims()
        .iter()
        .zip(low)
        .map(|(&d, &l)| SliceRange {
            start: l,
            stop: l + d,
            step: 1,
        })
        .collect();
    g.try_slice_ranges(&ranges)
}

/// `y = concat(x0, x1, …; axis)`: operand `i` gets the slice of `g` it occupies along `axis`.
pub(super) fn concat<'b>(
    xs: &[Tensor<'b>],
    axis: usize,
    g: Tensor<'b>,
    need: &[bool],
) -> Result<Vec<Option<Tensor<'b>>>, BuildError> {
    let mut offset = 0;
    let mut out = Vec::with_capacity(xs.len());
    for (x, &needed) in xs.iter().zip(need) {
        let len = x.shape().dim(axis);
        out.push(if needed {
            Some(g.try_slice(axis as isize, offset, offset + len, 1)?)
        } else {
            None
        });
        offset += len;
    }
    Ok(out)
}
