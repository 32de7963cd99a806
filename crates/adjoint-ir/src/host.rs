//! Tensors in host memory: what users feed, what the interpreter and the runtime return.

use crate::half_float::{bf16, f16, f32_to_bf16, f32_to_f16};
use crate::op::TensorType;
use crate::rng::Rng;
use crate::shape::Shape;
use crate::DType;
use std::fmt;
use std::iter::repeat_with;

/// The elements of a [`HostTensor`], row-major, one variant per dtype.
#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    /// `f32` elements.
    F32(Vec<f32>),
    /// `f64` elements.
    F64(Vec<f64>),
    /// `i32` elements.
    I32(Vec<i32>),
    /// `bool` elements.
    Bool(Vec<bool>),
    /// `bf16` elements.
    Bf16(Vec<bf16>),
    /// `f16` elements.
    F16(Vec<f16>),
}

impl HostData {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            HostData::F32(_) => DType::F32,
            HostData::F64(_) => DType::F64,
            HostData::I32(_) => DType::I32,
            HostData::Bool(_) => DType::Bool,
            HostData::Bf16(_) => DType::Bf16,
            HostData::F16(_) => DType::F16,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            HostData::F32(v) => v.len(),
            HostData::F64(v) => v.len(),
            HostData::I32(v) => v.len(),
            HostData::Bool(v) => v.len(),
            HostData::Bf16(v) => v.len(),
            HostData::F16(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The elements of a [`HostTensor`] as mutable slices of their element type.
#[derive(Debug, PartialEq)]
pub enum HostDataMut<'a> {
    /// `f32` elements.
    F32(&'a mut [f32]),
    /// `f64` elements.
    F64(&'a mut [f64]),
    /// `i32` elements.
    I32(&'a mut [i32]),
    /// `bool` elements.
    Bool(&'a mut [bool]),
    /// `bf16` elements.
    Bf16(&'a mut [bf16]),
    /// `f16` elements.
    F16(&'a mut [f16]),
}

/// A dense row-major tensor in host memory.
///
/// ```
/// use adjoint_ir::{HostTensor, DType};
/// let t = HostTensor::from_f32([2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
/// assert_eq!(t.dtype(), DType::F32);
/// assert_eq!(t.to_f64_vec(), vec![1.0, 2.0, 3.0, 4.0]);
/// assert!(HostTensor::from_f32([3], vec![1.0]).is_err());
/// ```
#[derive(Clone, PartialEq)]
pub struct HostTensor {
    shape: Shape,
    data: HostData,
}

impl HostTensor {
    /// A tensor from a shape and matching data; an error if the element count differs.
    pub fn new(shape: impl Into<Shape>, data: HostData) -> Result<HostTensor, String> {
        let shape = shape.into();
        match shape.try_numel() {
            Some(n) if n == data.len() => {}
            Some(n) => {
                return Err(format!(
                    "shape {shape} needs {n} elements, got {}",
                    data.len()
                ))
            }
            None => {
                return Err(format!(
                    "shape {shape} has more elements than a usize can count"
                ))
            }
        }
        Ok(HostTensor { shape, data })
    }

    /// An `f32` tensor.
    pub fn from_f32(shape: impl Into<Shape>, v: Vec<f32>) -> Result<HostTensor, String> {
        HostTensor::new(shape, HostData::F32(v))
    }

    /// An `f64` tensor.
    pub fn from_f64(shape: impl Into<Shape>, v: Vec<f64>) -> Result<HostTensor, String> {
        HostTensor::new(shape, HostData::F64(v))
    }

    /// An `i32` tensor.
    pub fn from_i32(shape: impl Into<Shape>, v: Vec<i32>) -> Result<HostTensor, String> {
        HostTensor::new(shape, HostData::I32(v))
    }

    /// A `bool` tensor.
    pub fn from_bool(shape: impl Into<Shape>, v: Vec<bool>) -> Result<HostTensor, String> {
        HostTensor::new(shape, HostData::Bool(v))
    }

    /// A `bf16` tensor.
    pub fn from_bf16(shape: impl Into<Shape>, v: Vec<bf16>) -> Result<HostTensor, String> {
        HostTensor::new(shape, HostData::Bf16(v))
    }

    /// An `f16` tensor.
    pub fn from_f16(shape: impl Into<Shape>, v: Vec<f16>) -> Result<HostTensor, String> {
        HostTensor::new(shape, HostData::F16(v))
    }

    /// A tensor of `dtype` from `f64` values, rounded as [`crate::Literal`] rounds them
    /// (16-bit floats through `f32`).
    pub fn from_f64_as(
        dtype: DType,
        shape: impl Into<Shape>,
        v: &[f64],
    ) -> Result<HostTensor, String> {
        let data = match dtype {
            DType::F32 => HostData::F32(v.iter().map(|&x| x as f32).collect()),
            DType::F64 => HostData::F64(v.to_vec()),
            DType::I32 => HostData::I32(v.iter().map(|&x| x as i32).collect()),
            DType::Bool => HostData::Bool(v.iter().map(|&x| x != 0.0).collect()),
            DType::Bf16 => HostData::Bf16(v.iter().map(|&x| f32_to_bf16(x as f32)).collect()),
            DType::F16 => HostData::F16(v.iter().map(|&x| f32_to_f16(x as f32)).collect()),
        };
        HostTensor::new(shape, data)
    }

    /// A rank-0 `f32` tensor.
    pub fn scalar_f32(v: f32) -> HostTensor {
        HostTensor {
            shape: Shape::scalar(),
            data: HostData::F32(vec![v]),
        }
    }

    /// A tensor of zeros (false for bool).
    pub fn zeros(dtype: DType, shape: impl Into<Shape>) -> HostTensor {
        let shape = shape.into();
        let n = shape.numel();
        let data = match dtype {
            DType::F32 => HostData::F32(vec![0.0; n]),
            DType::F64 => HostData::F64(vec![0.0; n]),
            DType::I32 => HostData::I32(vec![0; n]),
            DType::Bool => HostData::Bool(vec![false; n]),
            DType::Bf16 => HostData::Bf16(vec![bf16::ZERO; n]),
            DType::F16 => HostData::F16(vec![f16::ZERO; n]),
        };
        HostTensor { shape, data }
    }

    /// [`HostTensor::zeros`], or an error (instead of an abort) when the element count
    /// overflows or the system refuses the memory.
    pub fn try_zeros(dtype: DType, shape: impl Into<Shape>) -> Result<HostTensor, String> {
        let ty = TensorType::new(dtype, shape);
        reserve(&ty)?;
        Ok(HostTensor::zeros(ty.dtype, ty.shape))
    }

    /// [`HostTensor::random`], or an error (instead of an abort) when the element count
    /// overflows or the system refuses the memory.
    pub fn try_random(
        ty: &TensorType,
        rng: &mut Rng,
        int_bound: u32,
    ) -> Result<HostTensor, String> {
        // The byte count is what allocation needs; it overflows whenever the count does.
        let n = ty
            .try_size_bytes()
            .and_then(|_| ty.shape.try_numel())
            .ok_or_else(|| {
                format!("a tensor of type {ty} has more bytes than a usize can count")
            })?;
        let bound = int_bound.max(1) as u64;
        let data = match ty.dtype {
            DType::F32 => HostData::F32(try_collect(ty, n, repeat_with(|| rng.normal() as f32))?),
            DType::F64 => HostData::F64(try_collect(ty, n, repeat_with(|| rng.normal()))?),
            DType::I32 => {
                HostData::I32(try_collect(ty, n, repeat_with(|| rng.below(bound) as i32))?)
            }
            DType::Bool => HostData::Bool(try_collect(ty, n, repeat_with(|| rng.below(2) == 1))?),
            DType::Bf16 => HostData::Bf16(try_collect(
                ty,
                n,
                repeat_with(|| f32_to_bf16(rng.normal() as f32)),
            )?),
            DType::F16 => HostData::F16(try_collect(
                ty,
                n,
                repeat_with(|| f32_to_f16(rng.normal() as f32)),
            )?),
        };
        Ok(HostTensor {
            shape: ty.shape.clone(),
            data,
        })
    }

    /// Seeded random data for a tensor of type `ty`: floats standard normal, i32 uniform in
    /// `0..int_bound`, bools fair coin flips. The same values as [`HostTensor::try_random`].
    ///
    /// # Panics
    ///
    /// If the memory cannot be allocated; [`HostTensor::try_random`] returns that as an error.
    pub fn random(ty: &TensorType, rng: &mut Rng, int_bound: u32) -> HostTensor {
        HostTensor::try_random(ty, rng, int_bound)
            .unwrap_or_else(|e| panic!("HostTensor::random: {e}"))
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// Type (dtype and shape).
    pub fn ty(&self) -> TensorType {
        TensorType::new(self.dtype(), self.shape.clone())
    }

    /// The elements.
    pub fn data(&self) -> &HostData {
        &self.data
    }

    /// The elements, mutably: their values can change, their count cannot (so the data always
    /// matches the shape, which the JIT relies on when it hands the buffer to native code).
    pub fn data_mut(&mut self) -> HostDataMut<'_> {
        match &mut self.data {
            HostData::F32(v) => HostDataMut::F32(v),
            HostData::F64(v) => HostDataMut::F64(v),
            HostData::I32(v) => HostDataMut::I32(v),
            HostData::Bool(v) => HostDataMut::Bool(v),
            HostData::Bf16(v) => HostDataMut::Bf16(v),
            HostData::F16(v) => HostDataMut::F16(v),
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The `f32` elements, if the dtype is `f32`.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            HostData::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The `f64` elements, if the dtype is `f64`.
    pub fn as_f64(&self) -> Option<&[f64]> {
        match &self.data {
            HostData::F64(v) => Some(v),
            _ => None,
        }
    }

    /// The `i32` elements, if the dtype is `i32`.
    pub fn as_i32(&self) -> Option<&[i32]> {
        match &self.data {
            HostData::I32(v) => Some(v),
            _ => None,
        }
    }

    /// The `bool` elements, if the dtype is `bool`.
    pub fn as_bool(&self) -> Option<&[bool]> {
        match &self.data {
            HostData::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The `bf16` elements, if the dtype is `bf16`.
    pub fn as_bf16(&self) -> Option<&[bf16]> {
        match &self.data {
            HostData::Bf16(v) => Some(v),
            _ => None,
        }
    }

    /// The `f16` elements, if the dtype is `f16`.
    pub fn as_f16(&self) -> Option<&[f16]> {
        match &self.data {
            HostData::F16(v) => Some(v),
            _ => None,
        }
    }

    /// Every element converted to `f64` (bools as 0/1).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match &self.data {
            HostData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            HostData::F64(v) => v.clone(),
            HostData::I32(v) => v.iter().map(|&x| x as f64).collect(),
            HostData::Bool(v) => v.iter().map(|&x| x as u8 as f64).collect(),
            HostData::Bf16(v) => v.iter().map(|&x| x.to_f64()).collect(),
            HostData::F16(v) => v.iter().map(|&x| x.to_f64()).collect(),
        }
    }

    /// [`HostTensor::to_f64_vec`], with a refused allocation as an error instead of an abort.
    pub fn try_to_f64_vec(&self) -> Result<Vec<f64>, String> {
        let ty = TensorType::new(DType::F64, self.shape.clone());
        let n = self.numel();
        match &self.data {
            HostData::F32(v) => try_collect(&ty, n, v.iter().map(|&x| f64::from(x))),
            HostData::F64(v) => try_collect(&ty, n, v.iter().copied()),
            HostData::I32(v) => try_collect(&ty, n, v.iter().map(|&x| f64::from(x))),
            HostData::Bool(v) => try_collect(&ty, n, v.iter().map(|&x| f64::from(u8::from(x)))),
            HostData::Bf16(v) => try_collect(&ty, n, v.iter().map(|&x| x.to_f64())),
            HostData::F16(v) => try_collect(&ty, n, v.iter().map(|&x| x.to_f64())),
        }
    }

    /// [`HostTensor::cast`], with a refused allocation as an error instead of an abort.
    pub fn try_cast(&self, dtype: DType) -> Result<HostTensor, String> {
        let v = self.try_to_f64_vec()?;
        let ty = TensorType::new(dtype, self.shape.clone());
        let n = v.len();
        let data = match dtype {
            DType::F32 => HostData::F32(try_collect(&ty, n, v.iter().map(|&x| x as f32))?),
            DType::F64 => HostData::F64(v),
            DType::I32 => HostData::I32(try_collect(&ty, n, v.iter().map(|&x| x as i32))?),
            DType::Bool => HostData::Bool(try_collect(&ty, n, v.iter().map(|&x| x != 0.0))?),
            DType::Bf16 => HostData::Bf16(try_collect(
                &ty,
                n,
                v.iter().map(|&x| f32_to_bf16(x as f32)),
            )?),
            DType::F16 => HostData::F16(try_collect(
                &ty,
                n,
                v.iter().map(|&x| f32_to_f16(x as f32)),
            )?),
        };
        Ok(HostTensor {
            shape: self.shape.clone(),
            data,
        })
    }

    /// The same values converted to `dtype` (as [`crate::Op::Cast`] converts).
    pub fn cast(&self, dtype: DType) -> HostTensor {
        if dtype == self.dtype() {
            return self.clone();
        }
        let v = self.to_f64_vec();
        HostTensor::from_f64_as(dtype, self.shape.clone(), &v).expect("same element count")
    }

    /// Same elements under a new shape with the same element count.
    pub fn reshape(self, shape: impl Into<Shape>) -> Result<HostTensor, String> {
        HostTensor::new(shape, self.data)
    }
}

impl fmt::Debug for HostTensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{} ", self.dtype(), self.shape)?;
        match &self.data {
            HostData::F32(v) => write!(f, "{v:?}"),
            HostData::F64(v) => write!(f, "{v:?}"),
            HostData::I32(v) => write!(f, "{v:?}"),
            HostData::Bool(v) => write!(f, "{v:?}"),
            HostData::Bf16(v) => write!(f, "{v:?}"),
            HostData::F16(v) => write!(f, "{v:?}"),
        }
    }
}

/// Named tensors fed to a graph (inputs and parameters by name), in a deterministic order.
pub type Feeds = std::collections::BTreeMap<String, HostTensor>;

/// Checks that the system grants the bytes of a tensor of type `ty` (reserved with
/// `try_reserve` and given back), so that allocating it right after does not abort.
/// The first `n` items of `items` (the elements of a tensor of type `ty`), in a vector
/// allocated fallibly.
fn try_collect<T>(
    ty: &TensorType,
    n: usize,
    items: impl Iterator<Item = T>,
) -> Result<Vec<T>, String> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        let bytes = n.saturating_mul(std::mem::size_of::<T>());
        format!("out of memory: cannot allocate {bytes} bytes for a tensor of type {ty}")
    })?;
    v.extend(items.take(n));
    Ok(v)
}

fn reserve(ty: &TensorType) -> Result<(), String> {
    let bytes = ty
        .try_size_bytes()
        .ok_or_else(|| format!("a tensor of type {ty} has more bytes than a usize can count"))?;
    let mut probe: Vec<u8> = Vec::new();
    probe.try_reserve_exact(bytes).map_err(|_| {
        format!("out of memory: cannot allocate {bytes} bytes for a tensor of type {ty}")
    })
}

#[cfg(test)]
mod fallible_tests {
    use super::*;

    #[test]
    fn try_conversions_match_the_infallible_ones() {
        let t = HostTensor::from_f32([3], vec![1.5, -2.25, 0.0]).unwrap();
        assert_eq!(t.try_to_f64_vec().unwrap(), t.to_f64_vec());
        for d in DType::ALL {
            assert_eq!(t.try_cast(d).unwrap(), t.cast(d));
        }
        let ty = TensorType::new(DType::F32, [5]);
        let a = HostTensor::try_random(&ty, &mut Rng::derive(1, "a"), 0).unwrap();
        let b = HostTensor::random(&ty, &mut Rng::derive(1, "a"), 0);
        assert_eq!(a, b);
    }

    #[test]
    fn a_tensor_beyond_memory_is_an_error() {
        let ty = TensorType::new(DType::F64, [1usize << 45]);
        let e = HostTensor::try_random(&ty, &mut Rng::derive(0, "x"), 2).unwrap_err();
        assert!(e.contains("out of memory"), "{e}");
    }
}
