//! Elementwise ops: unary, binary, compare, select and cast. Each is one tight loop over
//! contiguous slices (the verifier guarantees equal shapes, so element `i` meets element `i`).

use crate::element::{with_element, with_float, with_number, Element, Float, Number};
use adjoint_ir::{BinaryOp, CompareOp, DType, HostData, UnaryOp};

/// `f` applied to every element.
fn map<T: Copy, U>(x: &[T], f: impl Fn(T) -> U) -> Vec<U> {
    x.iter().map(|&v| f(v)).collect()
}

/// `f` applied to every pair of elements at the same position.
fn zip_map<T: Copy, U>(a: &[T], b: &[T], f: impl Fn(T, T) -> U) -> Vec<U> {
    debug_assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
}

/// A unary op on float or `i32` data (`i32` only for neg, abs and sign).
pub(crate) fn unary(op: UnaryOp, x: &HostData) -> HostData {
    if x.dtype() == DType::I32 {
        let v = i32::slice(x);
        return HostData::I32(match op {
            UnaryOp::Neg => map(v, Number::neg),
            UnaryOp::Abs => map(v, Number::abs),
            UnaryOp::Sign => map(v, Number::sign),
            UnaryOp::StopGradient => v.to_vec(),
            other => panic!(
                "interpreter bug: {} on i32 passed the verifier",
                other.name()
            ),
        });
    }
    with_float!(x.dtype(), T => T::into_data(unary_float::<T>(op, T::slice(x))))
}

fn unary_float<T: Float>(op: UnaryOp, x: &[T]) -> Vec<T> {
    match op {
        UnaryOp::Neg => map(x, T::neg),
        UnaryOp::Exp => map(x, T::exp),
        UnaryOp::Log => map(x, T::ln),
        UnaryOp::Sqrt => map(x, T::sqrt),
        UnaryOp::Recip => map(x, T::recip),
        UnaryOp::Tanh => map(x, T::tanh),
        UnaryOp::Sin => map(x, T::sin),
        UnaryOp::Cos => map(x, T::cos),
        UnaryOp::Abs => map(x, T::abs),
        UnaryOp::Sign => map(x, T::sign),
        UnaryOp::StopGradient => x.to_vec(),
    }
}

/// A binary op on two operands of the same dtype and length.
pub(crate) fn binary(op: BinaryOp, a: &HostData, b: &HostData) -> HostData {
    match op {
        BinaryOp::Div | BinaryOp::Pow => with_float!(a.dtype(), T => {
            let (a, b) = (T::slice(a), T::slice(b));
            T::into_data(if op == BinaryOp::Div {
                zip_map(a, b, T::div)
            } else {
                zip_map(a, b, T::pow)
            })
        }),
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Max | BinaryOp::Min => {
            with_number!(a.dtype(), T => {
                T::into_data(binary_number::<T>(op, T::slice(a), T::slice(b)))
            })
        }
    }
}

fn binary_number<T: Number>(op: BinaryOp, a: &[T], b: &[T]) -> Vec<T> {
    match op {
        BinaryOp::Add => zip_map(a, b, T::add),
        BinaryOp::Sub => zip_map(a, b, T::sub),
        BinaryOp::Mul => zip_map(a, b, T::mul),
        BinaryOp::Max => zip_map(a, b, T::max),
        BinaryOp::Min => zip_map(a, b, T::min),
        BinaryOp::Div | BinaryOp::Pow => {
            panic!("interpreter bug: {} dispatched as a numeric op", op.name())
        }
    }
}

/// A comparison of two operands of the same dtype; the result is `bool`. Floats compare as IEEE
/// 754 does: every comparison with NaN is false except `ne`.
pub(crate) fn compare(op: CompareOp, a: &HostData, b: &HostData) -> HostData {
    let out = match a.dtype() {
        DType::Bool => {
            let (a, b) = (bool::slice(a), bool::slice(b));
            match op {
                CompareOp::Eq => zip_map(a, b, |x, y| x == y),
                CompareOp::Ne => zip_map(a, b, |x, y| x != y),
                CompareOp::Lt | CompareOp::Le => {
                    panic!("interpreter bug: {} on bool passed the verifier", op.name())
                }
            }
        }
        dtype => with_number!(dtype, T => compare_number::<T>(op, T::slice(a), T::slice(b))),
    };
    HostData::Bool(out)
}

fn compare_number<T: Number>(op: CompareOp, a: &[T], b: &[T]) -> Vec<bool> {
    match op {
        CompareOp::Lt => zip_map(a, b, T::lt),
        CompareOp::Le => zip_map(a, b, T::le),
        CompareOp::Eq => zip_map(a, b, |x, y| x == y),
        CompareOp::Ne => zip_map(a, b, |x, y| x != y),
    }
}

/// `select(cond, a, b)`: `a[i]` where `cond[i]`, else `b[i]`.
pub(crate) fn select(cond: &HostData, a: &HostData, b: &HostData) -> HostData {
    let cond = bool::slice(cond);
    with_element!(a.dtype(), T => {
        let (a, b) = (T::slice(a), T::slice(b));
        T::into_data(
            cond.iter()
                .zip(a.iter().zip(b))
                .map(|(&c, (&x, &y))| if c { x } else { y })
                .collect(),
        )
    })
}

/// Converts every element to `to`.
///
/// Every conversion goes through `f64`, which is exact: every `f32`, `i32` and `bool` value is
/// an `f64` value, so `S → f64 → T` rounds once, exactly like a direct `S → T` conversion
/// (float→i32 truncates toward zero and saturates, NaN→0; bool→number is 0/1; number→bool is
/// `x != 0`, so NaN→true).
pub(crate) fn cast(x: &HostData, to: DType) -> HostData {
    if x.dtype() == to {
        return x.clone();
    }
    with_element!(x.dtype(), S => {
        let x = S::slice(x);
        with_element!(to, T => T::into_data(map(x, |v| T::from_f64(v.to_f64()))))
    })
}
