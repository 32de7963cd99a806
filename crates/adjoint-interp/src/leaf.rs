//! Leaves computed from the graph alone: constants and iota.

use crate::element::{with_element, with_number, Element};
use crate::strided::for_each_offset;
use adjoint_ir::{Dims, HostData, Literal, TensorType};

/// The elements of a literal, converted from their stored `f64` values to its dtype (exact:
/// [`Literal::new`] has already rounded them to values the dtype holds).
pub(crate) fn constant(lit: &Literal) -> HostData {
    with_element!(lit.ty().dtype, T => {
        T::into_data(lit.values().iter().map(|&v| T::from_f64(v)).collect())
    })
}

/// `0, 1, 2, …` along `axis`, repeated over the other axes.
pub(crate) fn iota(ty: &TensorType, axis: usize) -> HostData {
    let dims = ty.shape.dims();
    // Walk the result in row-major order and read the position along `axis` from a
    // "tensor" that holds 0, 1, 2, … with stride 1 on `axis` and 0 elsewhere.
    let strides: Dims = (0..dims.len()).map(|a| usize::from(a == axis)).collect();
    with_number!(ty.dtype, T => {
        let mut out = Vec::with_capacity(ty.shape.numel());
        for_each_offset(dims, &strides, 0, |i| out.push(T::from_f64(i as f64)));
        T::into_data(out)
    })
}
