//! Indexed ops: gather (NumPy `take` along an axis) and its adjoint, scatter-add.
//!
//! Both view the indexed tensor as `[outer, size, inner]` (the axes before `axis`, the axis,
//! the axes after it) and move whole contiguous `inner` blocks.

use crate::element::{with_element, with_number, Element, Number};
use adjoint_ir::{HostData, Shape};

/// Sizes of the axes before `axis`, of `axis`, and after it.
fn split_at_axis(s: &Shape, axis: usize) -> (usize, usize, usize) {
    let d = s.dims();
    (
        d[..axis].iter().product(),
        d[axis],
        d[axis + 1..].iter().product(),
    )
}

/// The index `v` as a position in `0..size`, or `None` when it is out of range.
fn in_range(v: i32, size: usize) -> Option<usize> {
    usize::try_from(v).ok().filter(|&v| v < size)
}

/// `take(x, idx, axis)`: for every outer position and every index, the `inner` block of `x` at
/// that index, or zeros when the index lies outside `0..x.shape[axis]`.
pub(crate) fn gather(x: &HostData, idx: &[i32], from: &Shape, axis: usize) -> HostData {
    let (outer, size, inner) = split_at_axis(from, axis);
    with_element!(x.dtype(), T => {
        let src = T::slice(x);
        let zeros = vec![T::default(); inner];
        let mut out = Vec::with_capacity(outer * idx.len() * inner);
        for o in 0..outer {
            let rows = &src[o * size * inner..(o + 1) * size * inner];
            for &v in idx {
                match in_range(v, size) {
                    Some(p) => out.extend_from_slice(&rows[p * inner..(p + 1) * inner]),
                    None => out.extend_from_slice(&zeros),
                }
            }
        }
        T::into_data(out)
    })
}

/// `scatter_add(upd, idx)` into a result of shape `to`: zeros, then for every outer position
/// and every index in order, the matching `inner` block of `upd` added at that index.
/// Repeated indices accumulate (in index order); out-of-range indices are dropped.
pub(crate) fn scatter_add(upd: &HostData, idx: &[i32], to: &Shape, axis: usize) -> HostData {
    let (outer, size, inner) = split_at_axis(to, axis);
    with_number!(upd.dtype(), T => {
        T::into_data(scatter_typed::<T>(T::slice(upd), idx, outer, size, inner))
    })
}

fn scatter_typed<T: Number>(
    upd: &[T],
    idx: &[i32],
    outer: usize,
    size: usize,
    inner: usize,
) -> Vec<T> {
    let mut out = vec![T::ZERO; outer * size * inner];
    for o in 0..outer {
        let dst = &mut out[o * size * inner..(o + 1) * size * inner];
        for (t, &v) in idx.iter().enumerate() {
            let Some(p) = in_range(v, size) else {
                continue;
            };
            let src = &upd[(o * idx.len() + t) * inner..(o * idx.len() + t + 1) * inner];
            for (d, &u) in dst[p * inner..(p + 1) * inner].iter_mut().zip(src) {
                *d = d.add(u);
            }
        }
    }
    out
}
