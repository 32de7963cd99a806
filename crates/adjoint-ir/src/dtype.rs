//! Element types.

use std::fmt;
use std::str::FromStr;

/// The element type of a tensor.
///
/// `F32`, `F64`, `Bf16` and `F16` are differentiable; `I32` holds indices and labels; `Bool`
/// holds the masks that comparisons produce and `select` consumes.
///
/// `Bf16` and `F16` are storage types: every operation on them widens its operands to `f32`
/// (exactly), computes in `f32` and rounds the result to the 16-bit type, to nearest with ties
/// to even (see [`DType::compute`] and `docs/ir.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// 32-bit IEEE float.
    F32,
    /// 64-bit IEEE float.
    F64,
    /// 32-bit signed integer.
    I32,
    /// Boolean mask.
    Bool,
    /// bfloat16: the top half of an `f32` (8 exponent bits, 7 stored mantissa bits).
    Bf16,
    /// IEEE 754 binary16 (5 exponent bits, 10 stored mantissa bits).
    F16,
}

impl DType {
    /// Every dtype, in a fixed order.
    pub const ALL: [DType; 6] = [
        DType::F32,
        DType::F64,
        DType::I32,
        DType::Bool,
        DType::Bf16,
        DType::F16,
    ];

    /// The name used in the text format: `f32`, `f64`, `i32`, `bool`, `bf16`, `f16`.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I32 => "i32",
            DType::Bool => "bool",
            DType::Bf16 => "bf16",
            DType::F16 => "f16",
        }
    }

    /// Bytes per element in a dense buffer.
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 => 8,
            DType::Bool => 1,
            DType::Bf16 | DType::F16 => 2,
        }
    }

    /// True for the floats: `f32`, `f64`, `bf16` and `f16`.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::Bf16 | DType::F16)
    }

    /// True for the 16-bit floats `bf16` and `f16`, which are stored in 16 bits and computed
    /// in `f32`.
    pub fn is_half(self) -> bool {
        matches!(self, DType::Bf16 | DType::F16)
    }

    /// The type arithmetic on this dtype is carried out in: `f32` for `bf16` and `f16` (whose
    /// values it holds exactly), the dtype itself otherwise.
    pub fn compute(self) -> DType {
        if self.is_half() {
            DType::F32
        } else {
            self
        }
    }

    /// True for the types arithmetic works on: floats and `i32`.
    pub fn is_numeric(self) -> bool {
        self != DType::Bool
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DType::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| {
                format!("unknown dtype `{s}` (expected f32, f64, bf16, f16, i32 or bool)")
            })
    }
}
