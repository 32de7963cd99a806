//! Strided iteration: the offsets of an n-d index space, visited in row-major order, with an
//! odometer (one add per step, no division per element).
//!
//! Movement ops and reductions are all "walk one tensor in row-major order and read or write
//! another through strides": a broadcast reads with stride 0 on the replicated axes, a permute
//! reads with permuted strides, a slice with multiplied strides and an offset.

use adjoint_ir::{Dims, MAX_RANK};

/// Calls `f` with `base + Σ index[i] * strides[i]` for every index of the space `dims`, in
/// row-major order (the last axis fastest). Nothing is visited when a dimension is 0; a rank-0
/// space has one position, `base`.
pub(crate) fn for_each_offset(
    dims: &[usize],
    strides: &[usize],
    base: usize,
    mut f: impl FnMut(usize),
) {
    debug_assert_eq!(dims.len(), strides.len());
    if dims.contains(&0) {
        return;
    }
    let (dims, strides) = merge_axes(dims, strides);
    let rank = dims.len();
    if rank == 0 {
        f(base);
        return;
    }
    let (inner, inner_stride) = (dims[rank - 1], strides[rank - 1]);
    let mut index = [0usize; MAX_RANK];
    let mut offset = base;
    loop {
        let mut o = offset;
        for _ in 0..inner {
            f(o);
            o += inner_stride;
        }
        // Advance the odometer over the outer axes.
        let mut axis = rank - 1;
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            index[axis] += 1;
            offset += strides[axis];
            if index[axis] < dims[axis] {
                break;
            }
            offset -= strides[axis] * dims[axis];
            index[axis] = 0;
        }
    }
}

/// Copies the elements of `src` at the offsets of the space `dims`/`strides`/`base`, in
/// row-major order.
pub(crate) fn strided_copy<T: Copy>(
    src: &[T],
    dims: &[usize],
    strides: &[usize],
    base: usize,
) -> Vec<T> {
    let mut out = Vec::with_capacity(dims.iter().product());
    for_each_offset(dims, strides, base, |o| out.push(src[o]));
    out
}

/// Drops axes of size 1 and merges neighbouring axes that are contiguous with each other
/// (`strides[i] == strides[i + 1] * dims[i + 1]`): the same offsets in the same order, with
/// longer inner loops.
fn merge_axes(dims: &[usize], strides: &[usize]) -> (Dims, Dims) {
    let mut out_dims = Dims::new();
    let mut out_strides = Dims::new();
    for (&d, &s) in dims.iter().zip(strides) {
        if d == 1 {
            continue;
        }
        match (out_dims.last_mut(), out_strides.last_mut()) {
            (Some(pd), Some(ps)) if *ps == s * d => {
                *pd *= d;
                *ps = s;
            }
            _ => {
                out_dims.push(d);
                out_strides.push(s);
            }
        }
    }
    (out_dims, out_strides)
}

/// Row-major strides of `dims`.
pub(crate) fn row_major_strides(dims: &[usize]) -> Dims {
    let mut strides: Dims = Dims::from_elem(0, dims.len());
    let mut acc = 1;
    for (s, &d) in strides.iter_mut().zip(dims).rev() {
        *s = acc;
        acc *= d;
    }
    strides
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(dims: &[usize], strides: &[usize], base: usize) -> Vec<usize> {
        let mut v = Vec::new();
        for_each_offset(dims, strides, base, |o| v.push(o));
        v
    }

    #[test]
    fn row_major_offsets() {
        assert_eq!(offsets(&[2, 3], &[3, 1], 0), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(offsets(&[], &[], 7), vec![7]);
        assert_eq!(offsets(&[2, 0, 3], &[0, 3, 1], 0), Vec::<usize>::new());
    }

    #[test]
    fn transposed_offsets() {
        // A [2, 3] tensor read as its [3, 2] transpose.
        assert_eq!(offsets(&[3, 2], &[1, 3], 0), vec![0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn broadcast_and_based_offsets() {
        assert_eq!(offsets(&[2, 3], &[0, 1], 0), vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(offsets(&[2, 1, 2], &[10, 5, 2], 1), vec![1, 3, 11, 13]);
    }

    #[test]
    fn merging_keeps_order() {
        assert_eq!(
            merge_axes(&[2, 3, 4], &[12, 4, 1]),
            (Dims::from_slice(&[24]), Dims::from_slice(&[1]))
        );
        assert_eq!(
            merge_axes(&[2, 1, 3], &[1, 9, 2]),
            (Dims::from_slice(&[2, 3]), Dims::from_slice(&[1, 2]))
        );
    }

    #[test]
    fn strides_are_row_major() {
        assert_eq!(row_major_strides(&[2, 3, 4]).as_slice(), &[12, 4, 1]);
    }
}
