//! Movement ops: broadcast, permute, slice, pad and concat (reshape needs no kernel: the
//! row-major elements stay as they are). Each reads its operand through strides.

use crate::element::{with_element, Element};
use crate::strided::{for_each_offset, row_major_strides, strided_copy};
use adjoint_ir::{Dims, HostData, Shape, SliceRange};

/// NumPy `broadcast_to(x, to)`: axes aligned on the last one; an operand axis of size 1 (or a
/// missing leading axis) is read with stride 0.
pub(crate) fn broadcast(x: &HostData, from: &Shape, to: &Shape) -> HostData {
    let src = row_major_strides(from.dims());
    let lead = to.rank() - from.rank();
    let strides: Dims = (0..to.rank())
        .map(|i| match i.checked_sub(lead) {
            Some(j) if from.dim(j) != 1 => src[j],
            _ => 0,
        })
        .collect();
    with_element!(x.dtype(), T => T::into_data(strided_copy(T::slice(x), to.dims(), &strides, 0)))
}

/// Axis permutation: result axis `i` is operand axis `perm[i]`.
pub(crate) fn permute(x: &HostData, from: &Shape, perm: &[usize]) -> HostData {
    let src = row_major_strides(from.dims());
    let dims: Dims = perm.iter().map(|&p| from.dim(p)).collect();
    let strides: Dims = perm.iter().map(|&p| src[p]).collect();
    with_element!(x.dtype(), T => T::into_data(strided_copy(T::slice(x), &dims, &strides, 0)))
}

/// Strided slice: along axis `i`, the indices `start, start + step, …` below `stop`.
pub(crate) fn slice(x: &HostData, from: &Shape, ranges: &[SliceRange]) -> HostData {
    let src = row_major_strides(from.dims());
    let dims: Dims = ranges.iter().map(SliceRange::len).collect();
    let strides: Dims = ranges.iter().zip(&src).map(|(r, &s)| r.step * s).collect();
    let base = ranges.iter().zip(&src).map(|(r, &s)| r.start * s).sum();
    with_element!(x.dtype(), T => T::into_data(strided_copy(T::slice(x), &dims, &strides, base)))
}

/// Zero padding: the operand is written into a zero tensor of shape `to`, starting at `low`.
pub(crate) fn pad(x: &HostData, from: &Shape, to: &Shape, low: &[usize]) -> HostData {
    let dst = row_major_strides(to.dims());
    let base = low.iter().zip(&dst).map(|(&l, &s)| l * s).sum();
    with_element!(x.dtype(), T => {
        let src = T::slice(x);
        let mut out = vec![T::default(); to.numel()];
        let mut i = 0;
        for_each_offset(from.dims(), &dst, base, |o| {
            out[o] = src[i];
            i += 1;
        });
        T::into_data(out)
    })
}

/// Joins `parts` (with shapes `shapes`) along `axis`: for each index of the axes before `axis`,
/// the contiguous blocks of the parts are appended one after the other.
pub(crate) fn concat(parts: &[&HostData], shapes: &[&Shape], axis: usize, to: &Shape) -> HostData {
    let outer: usize = to.dims()[..axis].iter().product();
    let blocks: Vec<usize> = shapes
        .iter()
        .map(|s| s.dims()[axis..].iter().product())
        .collect();
    with_element!(parts[0].dtype(), T => {
        let srcs: Vec<&[T]> = parts.iter().map(|p| T::slice(p)).collect();
        let mut out = Vec::with_capacity(to.numel());
        for o in 0..outer {
            for (src, &block) in srcs.iter().zip(&blocks) {
                out.extend_from_slice(&src[o * block..(o + 1) * block]);
            }
        }
        T::into_data(out)
    })
}
