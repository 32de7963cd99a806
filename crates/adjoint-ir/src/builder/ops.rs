//! Arithmetic operators on tensor handles and scalars: `a + b`, `x * 2.0`, `1.0 - p`, `-x`.
//!
//! A scalar operand becomes a constant of the tensor's dtype. Operators panic on shape or dtype
//! errors at the caller's location; use the `try_` methods to get a `Result`.

use super::{unwrap_build, Tensor};
use std::ops::{Add, Div, Mul, Neg, Sub};

macro_rules! binary_operator {
    ($trait:ident, $method:ident, $try_method:ident) => {
        impl<'b> $trait<Tensor<'b>> for Tensor<'b> {
            type Output = Tensor<'b>;
            #[track_caller]
            fn $method(self, rhs: Tensor<'b>) -> Tensor<'b> {
                unwrap_build(self.$try_method(rhs))
            }
        }

        impl<'b> $trait<f64> for Tensor<'b> {
            type Output = Tensor<'b>;
            #[track_caller]
            fn $method(self, rhs: f64) -> Tensor<'b> {
                let rhs = self.scalar_like(rhs);
                unwrap_build(self.$try_method(rhs))
            }
        }

        impl<'b> $trait<Tensor<'b>> for f64 {
            type Output = Tensor<'b>;
            #[track_caller]
            fn $method(self, rhs: Tensor<'b>) -> Tensor<'b> {
                let lhs = rhs.scalar_like(self);
                unwrap_build(lhs.$try_method(rhs))
            }
        }
    };
}

binary_operator!(Add, add, try_add);
binary_operator!(Sub, sub, try_sub);
binary_operator!(Mul, mul, try_mul);
binary_operator!(Div, div, try_div);

impl<'b> Neg for Tensor<'b> {
    type Output = Tensor<'b>;
    #[track_caller]
    fn neg(self) -> Tensor<'b> {
        unwrap_build(self.try_neg())
    }
}
