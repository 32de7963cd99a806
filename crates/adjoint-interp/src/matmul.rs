//! Batched matrix product `[..., m, k] @ [..., k, n] -> [..., m, n]` (equal batch dimensions).
//!
//! For each batch and each row `i`, the loop runs over `p` in `0..k` and adds `a[i, p] * b[p, :]`
//! to the output row (i-k-j order: every inner loop runs over contiguous rows). So each output
//! element is `((0 + a[i,0] b[0,j]) + a[i,1] b[1,j]) + …`, in increasing `p`, computed in the
//! element type (an `f32` product accumulates in `f32`; `i32` wraps), with a separate multiply
//! and add (no fused multiply-add).

use crate::element::{with_number, Element, Number};
use adjoint_ir::{HostData, Shape};

/// The product of `a` (shape `sa`) and `b` (shape `sb`).
pub(crate) fn matmul(a: &HostData, b: &HostData, sa: &Shape, sb: &Shape) -> HostData {
    let r = sa.rank();
    let (m, k, n) = (sa.dim(r - 2), sa.dim(r - 1), sb.dim(r - 1));
    let batch: usize = sa.dims()[..r - 2].iter().product();
    with_number!(a.dtype(), T => {
        T::into_data(matmul_typed::<T>(T::slice(a), T::slice(b), batch, m, k, n))
    })
}

fn matmul_typed<T: Number>(a: &[T], b: &[T], batch: usize, m: usize, k: usize, n: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; batch * m * n];
    if n == 0 {
        return out;
    }
    for bi in 0..batch {
        let a = &a[bi * m * k..(bi + 1) * m * k];
        let b = &b[bi * k * n..(bi + 1) * k * n];
        let c = &mut out[bi * m * n..(bi + 1) * m * n];
        for (c_row, a_row) in c.chunks_exact_mut(n).zip(a.chunks_exact(k.max(1))) {
            for (&a_ip, b_row) in a_row.iter().zip(b.chunks_exact(n)) {
                for (c_ij, &b_pj) in c_row.iter_mut().zip(b_row) {
                    *c_ij = c_ij.add(a_ip.mul(b_pj));
                }
            }
        }
    }
    out
}
