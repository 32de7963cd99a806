//! Element types as Rust types: one trait per level of arithmetic, so that each kernel is written
//! once, generically, and monomorphized per dtype.
//!
//! - [`Element`]: every dtype the kernels compute in (`f32`, `f64`, `i32`, `bool`): storage
//!   and conversion. The 16-bit floats have no kernels: `node.rs` widens them to `f32` and
//!   rounds the result back.
//! - [`Number`]: the numeric dtypes (`f32`, `f64`, `i32`): `+ - *`, max/min, neg/abs/sign.
//! - [`Float`]: `f32` and `f64`: division, pow and the transcendental functions.
//!
//! Every operation is computed in the element type itself (an `f32` `exp` is `f32::exp`, never
//! a detour through `f64`), so results match what compiled code of that type produces. `i32`
//! arithmetic wraps (two's complement) and never panics.

use adjoint_ir::{DType, HostData};

/// A Rust type that holds the elements of one dtype.
pub(crate) trait Element: Copy + Default + PartialEq + 'static {
    /// The elements of `data`, which must have this dtype. The verifier and the feed checks
    /// guarantee that every operand has the dtype its op expects; a mismatch is a bug in the
    /// interpreter, hence a panic.
    fn slice(data: &HostData) -> &[Self];

    /// Wraps a vector of elements as host data.
    fn into_data(v: Vec<Self>) -> HostData;

    /// The value converted to `f64` (bools as 0/1). Exact for every dtype.
    fn to_f64(self) -> f64;

    /// Converts an `f64` as [`adjoint_ir::Op::Cast`] converts: rounding to nearest for `f32`,
    /// truncation toward zero with saturation (NaN→0) for `i32`, `x != 0` for `bool`.
    fn from_f64(v: f64) -> Self;
}

/// The numeric element types: `f32`, `f64` and `i32`.
pub(crate) trait Number: Element {
    /// The identity of `max`: `-inf` for floats, `i32::MIN` for `i32`.
    const LOWEST: Self;
    /// Additive identity.
    const ZERO: Self;

    /// `a + b` (wrapping for `i32`).
    fn add(self, b: Self) -> Self;
    /// `a - b` (wrapping for `i32`).
    fn sub(self, b: Self) -> Self;
    /// `a * b` (wrapping for `i32`).
    fn mul(self, b: Self) -> Self;
    /// Maximum; NaN if either is NaN; `max(-0, +0) = +0`.
    fn max(self, b: Self) -> Self;
    /// Minimum; NaN if either is NaN; `min(-0, +0) = -0`.
    fn min(self, b: Self) -> Self;
    /// `-x` (wrapping for `i32`: `-i32::MIN = i32::MIN`).
    fn neg(self) -> Self;
    /// `|x|` (wrapping for `i32`: `|i32::MIN| = i32::MIN`).
    fn abs(self) -> Self;
    /// `-1`, `0` or `1`; `sign(±0) = +0`, `sign(NaN) = NaN`.
    fn sign(self) -> Self;
    /// `a < b` (false when either is NaN).
    fn lt(self, b: Self) -> bool;
    /// `a <= b` (false when either is NaN).
    fn le(self, b: Self) -> bool;
}

/// The floating-point element types: `f32` and `f64`.
pub(crate) trait Float: Number {
    /// `a / b`.
    fn div(self, b: Self) -> Self;
    /// `a^b`, as `powf`.
    fn pow(self, b: Self) -> Self;
    /// `e^x`.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// `1/x`.
    fn recip(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Sine.
    fn sin(self) -> Self;
    /// Cosine.
    fn cos(self) -> Self;
}

macro_rules! impl_float {
    ($t:ident, $variant:ident) => {
        impl Element for $t {
            fn slice(data: &HostData) -> &[Self] {
                match data {
                    HostData::$variant(v) => v,
                    other => panic!(
                        "interpreter bug: expected {} data, found {}",
                        DType::$variant,
                        other.dtype()
                    ),
                }
            }

            fn into_data(v: Vec<Self>) -> HostData {
                HostData::$variant(v)
            }

            fn to_f64(self) -> f64 {
                self as f64
            }

            fn from_f64(v: f64) -> Self {
                v as $t
            }
        }

        impl Number for $t {
            const LOWEST: Self = $t::NEG_INFINITY;
            const ZERO: Self = 0.0;

            fn add(self, b: Self) -> Self {
                self + b
            }
            fn sub(self, b: Self) -> Self {
                self - b
            }
            fn mul(self, b: Self) -> Self {
                self * b
            }
            fn max(self, b: Self) -> Self {
                if self.is_nan() || b.is_nan() {
                    $t::NAN
                } else if self > b {
                    self
                } else if b > self {
                    b
                } else if self.is_sign_negative() {
                    // Equal: only ±0 can differ, and +0 is the larger.
                    b
                } else {
                    self
                }
            }
            fn min(self, b: Self) -> Self {
                if self.is_nan() || b.is_nan() {
                    $t::NAN
                } else if self < b {
                    self
                } else if b < self {
                    b
                } else if self.is_sign_negative() {
                    // Equal: only ±0 can differ, and -0 is the smaller.
                    self
                } else {
                    b
                }
            }
            fn neg(self) -> Self {
                -self
            }
            fn abs(self) -> Self {
                $t::abs(self)
            }
            fn sign(self) -> Self {
                if self > 0.0 {
                    1.0
                } else if self < 0.0 {
                    -1.0
                } else if self == 0.0 {
                    0.0
                } else {
                    self // NaN
                }
            }
            fn lt(self, b: Self) -> bool {
                self < b
            }
            fn le(self, b: Self) -> bool {
                self <= b
            }
        }

        impl Float for $t {
            fn div(self, b: Self) -> Self {
                self / b
            }
            fn pow(self, b: Self) -> Self {
                $t::powf(self, b)
            }
            fn exp(self) -> Self {
                $t::exp(self)
            }
            fn ln(self) -> Self {
                $t::ln(self)
            }
            fn sqrt(self) -> Self {
                $t::sqrt(self)
            }
            fn recip(self) -> Self {
                1.0 / self
            }
            fn tanh(self) -> Self {
                $t::tanh(self)
            }
            fn sin(self) -> Self {
                $t::sin(self)
            }
            fn cos(self) -> Self {
                $t::cos(self)
            }
        }
    };
}

impl_float!(f32, F32);
impl_float!(f64, F64);

impl Element for i32 {
    fn slice(data: &HostData) -> &[Self] {
        match data {
            HostData::I32(v) => v,
            other => panic!(
                "interpreter bug: expected i32 data, found {}",
                other.dtype()
            ),
        }
    }

    fn into_data(v: Vec<Self>) -> HostData {
        HostData::I32(v)
    }

    fn to_f64(self) -> f64 {
        self as f64
    }

    fn from_f64(v: f64) -> Self {
        // Rust's float-to-int `as` truncates toward zero, saturates and maps NaN to 0.
        v as i32
    }
}

impl Number for i32 {
    const LOWEST: Self = i32::MIN;
    const ZERO: Self = 0;

    fn add(self, b: Self) -> Self {
        self.wrapping_add(b)
    }
    fn sub(self, b: Self) -> Self {
        self.wrapping_sub(b)
    }
    fn mul(self, b: Self) -> Self {
        self.wrapping_mul(b)
    }
    fn max(self, b: Self) -> Self {
        Ord::max(self, b)
    }
    fn min(self, b: Self) -> Self {
        Ord::min(self, b)
    }
    fn neg(self) -> Self {
        self.wrapping_neg()
    }
    fn abs(self) -> Self {
        self.wrapping_abs()
    }
    fn sign(self) -> Self {
        self.signum()
    }
    fn lt(self, b: Self) -> bool {
        self < b
    }
    fn le(self, b: Self) -> bool {
        self <= b
    }
}

impl Element for bool {
    fn slice(data: &HostData) -> &[Self] {
        match data {
            HostData::Bool(v) => v,
            other => panic!(
                "interpreter bug: expected bool data, found {}",
                other.dtype()
            ),
        }
    }

    fn into_data(v: Vec<Self>) -> HostData {
        HostData::Bool(v)
    }

    fn to_f64(self) -> f64 {
        if self {
            1.0
        } else {
            0.0
        }
    }

    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
}

/// Runs `$body` with the type alias `$T` bound to the Rust type of `$dtype` (any dtype).
macro_rules! with_element {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            adjoint_ir::DType::F32 => {
                type $T = f32;
                $body
            }
            adjoint_ir::DType::F64 => {
                type $T = f64;
                $body
            }
            adjoint_ir::DType::I32 => {
                type $T = i32;
                $body
            }
            adjoint_ir::DType::Bool => {
                type $T = bool;
                $body
            }
            half @ (adjoint_ir::DType::Bf16 | adjoint_ir::DType::F16) => {
                panic!("interpreter bug: {half} data reached a kernel (node.rs computes it in f32)")
            }
        }
    };
}

/// Runs `$body` with `$T` bound to the Rust type of a numeric `$dtype`; `bool` is a bug (the
/// verifier rejects it for the ops that use this).
macro_rules! with_number {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            adjoint_ir::DType::F32 => {
                type $T = f32;
                $body
            }
            adjoint_ir::DType::F64 => {
                type $T = f64;
                $body
            }
            adjoint_ir::DType::I32 => {
                type $T = i32;
                $body
            }
            adjoint_ir::DType::Bool => {
                panic!("interpreter bug: a numeric op reached bool data past the verifier")
            }
            half @ (adjoint_ir::DType::Bf16 | adjoint_ir::DType::F16) => {
                panic!("interpreter bug: {half} data reached a kernel (node.rs computes it in f32)")
            }
        }
    };
}

/// Runs `$body` with `$T` bound to the Rust type of a float `$dtype`; other dtypes are a bug.
macro_rules! with_float {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            adjoint_ir::DType::F32 => {
                type $T = f32;
                $body
            }
            adjoint_ir::DType::F64 => {
                type $T = f64;
                $body
            }
            other => {
                panic!("interpreter bug: a float op reached {other} data past the verifier")
            }
        }
    };
}

pub(crate) use {with_element, with_float, with_number};
