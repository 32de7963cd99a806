//! Constant tensor data stored in the graph.

use crate::op::TensorType;
use crate::{DType, LiteralError};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The value of a [`crate::Op::Constant`]: a type and its elements in row-major order.
///
/// Elements are held as `f64`, which represents every `f32`, `bf16`, `f16`, `i32` and `bool`
/// value exactly;
/// [`Literal::new`] rounds each value to the dtype first, so a literal always holds values its
/// dtype can represent. Equality and hashing compare bit patterns (so `-0.0 != 0.0` and a NaN
/// equals itself), which is what hash-consing needs.
#[derive(Clone, Debug)]
pub struct Literal {
    ty: TensorType,
    values: Arc<[f64]>,
}

impl Literal {
    /// A literal of type `ty` with `values` (one per element, row-major), rounded to the dtype
    /// (f32 rounding; bf16 and f16 rounding through f32; i32 truncation toward zero with
    /// saturation; bool: nonzero is true).
    /// Returns an error if the element count does not match the shape.
    pub fn new(ty: TensorType, values: &[f64]) -> Result<Literal, LiteralError> {
        if ty.shape.try_numel() != Some(values.len()) {
            ty.check_size()?;
            return Err(LiteralError::Count {
                ty: Box::new(ty),
                got: values.len(),
            });
        }
        let values = values.iter().map(|&v| round_to(ty.dtype, v)).collect();
        Ok(Literal { ty, values })
    }

    /// A rank-0 literal.
    pub fn scalar(dtype: DType, value: f64) -> Literal {
        Literal {
            ty: TensorType::new(dtype, []),
            values: Arc::from([round_to(dtype, value)]),
        }
    }

    /// The literal's type.
    pub fn ty(&self) -> &TensorType {
        &self.ty
    }

    /// Its elements, row-major.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The single value of a one-element literal, or `None`.
    pub fn as_scalar(&self) -> Option<f64> {
        (self.values.len() == 1).then(|| self.values[0])
    }

    /// True when every element equals `v` (bitwise after rounding to the dtype).
    pub fn is_splat(&self, v: f64) -> bool {
        let v = round_to(self.ty.dtype, v);
        self.values.iter().all(|x| x.to_bits() == v.to_bits())
    }
}

/// Rounds `v` to a value the dtype can hold, returned as `f64`.
pub fn round_to(dtype: DType, v: f64) -> f64 {
    match dtype {
        DType::F64 => v,
        DType::F32 => v as f32 as f64,
        DType::Bf16 | DType::F16 => crate::half_float::round_f32(dtype, v as f32) as f64,
        DType::I32 => v as i32 as f64,
        DType::Bool => {
            if v != 0.0 {
                1.0
            } else {
                0.0
            }
        }
    }
}

impl PartialEq for Literal {
    fn eq(&self, other: &Literal) -> bool {
        self.ty == other.ty
            && self.values.len() == other.values.len()
            && self
                .values
                .iter()
                .zip(other.values.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

impl Eq for Literal {}

impl Hash for Literal {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.ty.hash(state);
        for v in self.values.iter() {
            v.to_bits().hash(state);
        }
    }
}
