//! Reductions over single, multiple and all axes, with and without keepdims, against
//! hand-computed values; NaN, empty reductions, i32 wrapping and the summation order.

mod common;

use adjoint_ir::{Builder, HostTensor, Tensor};
use common::*;

type ReduceFn = for<'a> fn(Tensor<'a>) -> Tensor<'a>;

fn reduce(x: HostTensor, f: ReduceFn) -> HostTensor {
    let b = Builder::new("reduce");
    let xi = b.input("x", x.dtype(), x.shape().clone());
    eval(&b, f(xi), &feeds(vec![("x", x)]))
}

/// x[a, b, c] = 6a + 2b + c, shape [2, 3, 2].
fn x_f32() -> HostTensor {
    f32s(&[2, 3, 2], &(0..12).map(|i| i as f32).collect::<Vec<_>>())
}

fn check(got: &HostTensor, dims: &[usize], want: &[f64]) {
    assert_eq!(got.shape().dims(), dims, "shape of {got:?}");
    assert_eq!(got.to_f64_vec(), want, "values of {got:?}");
}

#[test]
fn sum_over_axes() {
    check(
        &reduce(x_f32(), |x| x.sum(&[0])),
        &[3, 2],
        &[6.0, 8.0, 10.0, 12.0, 14.0, 16.0],
    );
    check(
        &reduce(x_f32(), |x| x.sum(&[1])),
        &[2, 2],
        &[6.0, 9.0, 24.0, 27.0],
    );
    check(
        &reduce(x_f32(), |x| x.sum(&[-1])),
        &[2, 3],
        &[1.0, 5.0, 9.0, 13.0, 17.0, 21.0],
    );
    check(
        &reduce(x_f32(), |x| x.sum(&[0, 2])),
        &[3],
        &[14.0, 22.0, 30.0],
    );
    check(
        &reduce(x_f32(), |x| x.sum_keepdims(&[0, 2])),
        &[1, 3, 1],
        &[14.0, 22.0, 30.0],
    );
    check(
        &reduce(x_f32(), |x| x.sum_keepdims(&[1])),
        &[2, 1, 2],
        &[6.0, 9.0, 24.0, 27.0],
    );
    check(&reduce(x_f32(), |x| x.sum(&[0, 1, 2])), &[], &[66.0]);
    check(
        &reduce(x_f32(), |x| x.sum_keepdims(&[0, 1, 2])),
        &[1, 1, 1],
        &[66.0],
    );
    // No axes: the identity.
    check(
        &reduce(f32s(&[2], &[1.5, 2.5]), |x| x.sum(&[])),
        &[2],
        &[1.5, 2.5],
    );
}

#[test]
fn max_over_axes() {
    check(
        &reduce(x_f32(), |x| x.max(&[1])),
        &[2, 2],
        &[4.0, 5.0, 10.0, 11.0],
    );
    check(
        &reduce(x_f32(), |x| x.max(&[0, 2])),
        &[3],
        &[7.0, 9.0, 11.0],
    );
    check(
        &reduce(x_f32(), |x| x.max_keepdims(&[2])),
        &[2, 3, 1],
        &[1.0, 3.0, 5.0, 7.0, 9.0, 11.0],
    );
    check(&reduce(x_f32(), |x| x.max(&[0, 1, 2])), &[], &[11.0]);
    check(
        &reduce(x_f32(), |x| x.max_keepdims(&[0, 1, 2])),
        &[1, 1, 1],
        &[11.0],
    );
}

#[test]
fn other_dtypes() {
    let x = f64s(&[2, 2], &[-1.5, 2.0, 0.25, -8.0]);
    assert_f64_exact(&reduce(x.clone(), |x| x.sum(&[1])), &[0.5, -7.75]);
    assert_f64_exact(&reduce(x, |x| x.max(&[0])), &[0.25, 2.0]);
    let x = i32s(&[2, 3], &[1, -2, 3, 4, 5, -6]);
    assert_eq!(
        reduce(x.clone(), |x| x.sum(&[0])).as_i32().unwrap(),
        &[5, 3, -3]
    );
    assert_eq!(
        reduce(x.clone(), |x| x.max(&[1])).as_i32().unwrap(),
        &[3, 5]
    );
    assert_eq!(reduce(x, |x| x.sum(&[0, 1])).as_i32().unwrap(), &[5]);
    // i32 sums wrap.
    let x = i32s(&[3], &[i32::MAX, 1, 1]);
    assert_eq!(
        reduce(x, |x| x.sum(&[0])).as_i32().unwrap(),
        &[i32::MIN + 1]
    );
}

#[test]
fn max_propagates_nan() {
    let nan = f32::NAN;
    let x = f32s(&[3, 2], &[1.0, nan, nan, 2.0, -f32::INFINITY, 3.0]);
    assert_f32_exact(&reduce(x.clone(), |x| x.max(&[1])), &[nan, nan, 3.0]);
    assert_f32_exact(&reduce(x.clone(), |x| x.max(&[0])), &[nan, nan]);
    assert_f32_exact(
        &reduce(x, |x| x.sum(&[1])),
        &[nan, nan, f32::NEG_INFINITY + 3.0],
    );
    let x = f64s(&[2], &[f64::NAN, 5.0]);
    assert_f64_exact(&reduce(x, |x| x.max(&[0])), &[f64::NAN]);
}

#[test]
fn empty_reductions_give_the_identity() {
    let x = || f32s(&[2, 0], &[]);
    assert_f32_exact(&reduce(x(), |x| x.sum(&[1])), &[0.0, 0.0]);
    assert_f32_exact(&reduce(x(), |x| x.max(&[1])), &[f32::NEG_INFINITY; 2]);
    let got = reduce(x(), |x| x.sum(&[0]));
    assert_eq!(got.shape().dims(), &[0]);
    let x = i32s(&[0, 2], &[]);
    assert_eq!(
        reduce(x.clone(), |x| x.max(&[0])).as_i32().unwrap(),
        &[i32::MIN; 2]
    );
    assert_eq!(reduce(x, |x| x.sum(&[0])).as_i32().unwrap(), &[0, 0]);
    let x = f64s(&[0], &[]);
    assert_f64_exact(&reduce(x, |x| x.max(&[0])), &[f64::NEG_INFINITY]);
}

#[test]
fn sums_accumulate_in_row_major_order_in_the_element_type() {
    // In f32, ((1e8 + 1) - 1e8) + 1 = 1 (1e8 + 1 rounds to 1e8); a pairwise sum would give 0
    // and a compensated or f64 sum 2.
    let v = [1e8, 1.0, -1e8, 1.0];
    assert_f32_exact(&reduce(f32s(&[4], &v), |x| x.sum(&[0])), &[1.0]);
    // The same along a non-contiguous axis, and over two axes in row-major order.
    assert_f32_exact(&reduce(f32s(&[4, 1], &v), |x| x.sum(&[0])), &[1.0]);
    assert_f32_exact(&reduce(f32s(&[2, 2], &v), |x| x.sum(&[0, 1])), &[1.0]);
    // Reading the same elements in column order, (1e8 - 1e8) + (1 + 1) = 2.
    let t = [1e8, -1e8, 1.0, 1.0];
    assert_f32_exact(&reduce(f32s(&[2, 2], &t), |x| x.sum(&[0, 1])), &[2.0]);
}
