//! Movement ops (broadcast, reshape, permute, slice, pad, concat) and the computed leaves
//! (iota, constants) against values written out by hand.

mod common;

use adjoint_ir::{Builder, DType, HostTensor, SliceRange};
use common::*;

/// Feeds `x` as input "x" and returns `f(x)`.
fn with_x(
    x: HostTensor,
    f: impl for<'a> Fn(adjoint_ir::Tensor<'a>) -> adjoint_ir::Tensor<'a>,
) -> HostTensor {
    let b = Builder::new("movement");
    let xi = b.input("x", x.dtype(), x.shape().clone());
    let y = f(xi);
    eval(&b, y, &feeds(vec![("x", x)]))
}

fn iota_f32(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32).collect()
}

#[test]
fn broadcast_follows_numpy_broadcast_to() {
    let got = with_x(f32s(&[3], &[1.0, 2.0, 3.0]), |x| x.broadcast_to([2, 3]));
    assert_eq!(got.shape().dims(), &[2, 3]);
    assert_f32_exact(&got, &[1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);

    let got = with_x(f32s(&[2, 1], &[1.0, 2.0]), |x| x.broadcast_to([2, 3]));
    assert_f32_exact(&got, &[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);

    let got = with_x(f32s(&[], &[7.0]), |x| x.broadcast_to([2, 2]));
    assert_eq!(got.shape().dims(), &[2, 2]);
    assert_f32_exact(&got, &[7.0; 4]);

    let got = with_x(f32s(&[1, 3, 1], &[1.0, 2.0, 3.0]), |x| {
        x.broadcast_to([2, 3, 4])
    });
    assert_eq!(got.shape().dims(), &[2, 3, 4]);
    let block = [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0];
    let want: Vec<f32> = block.iter().chain(&block).copied().collect();
    assert_f32_exact(&got, &want);
}

#[test]
fn broadcast_other_dtypes() {
    let got = with_x(i32s(&[2, 1], &[5, -6]), |x| x.broadcast_to([3, 2, 2]));
    assert_eq!(
        got.as_i32().unwrap(),
        &[5, 5, -6, -6, 5, 5, -6, -6, 5, 5, -6, -6]
    );
    let got = with_x(bools(&[2], &[true, false]), |x| x.broadcast_to([2, 2]));
    assert_eq!(got.as_bool().unwrap(), &[true, false, true, false]);
    let got = with_x(f64s(&[1], &[0.5]), |x| x.broadcast_to([3]));
    assert_f64_exact(&got, &[0.5, 0.5, 0.5]);
}

#[test]
fn reshape_keeps_row_major_order() {
    let got = with_x(f32s(&[2, 3], &iota_f32(6)), |x| x.reshape([3, 2]));
    assert_eq!(got.shape().dims(), &[3, 2]);
    assert_f32_exact(&got, &iota_f32(6));
    let got = with_x(i32s(&[6], &[1, 2, 3, 4, 5, 6]), |x| x.reshape([1, 2, 3]));
    assert_eq!(got.shape().dims(), &[1, 2, 3]);
    assert_eq!(got.as_i32().unwrap(), &[1, 2, 3, 4, 5, 6]);
}

#[test]
fn permute_3d() {
    // x[a, b, c] = 12a + 4b + c; perm [2, 0, 1] gives y[i, j, k] = x[j, k, i].
    let got = with_x(f32s(&[2, 3, 4], &iota_f32(24)), |x| x.permute(&[2, 0, 1]));
    assert_eq!(got.shape().dims(), &[4, 2, 3]);
    #[rustfmt::skip]
    let want = [
        0.0, 4.0, 8.0, 12.0, 16.0, 20.0,
        1.0, 5.0, 9.0, 13.0, 17.0, 21.0,
        2.0, 6.0, 10.0, 14.0, 18.0, 22.0,
        3.0, 7.0, 11.0, 15.0, 19.0, 23.0,
    ];
    assert_f32_exact(&got, &want);

    // perm [1, 0, 2] on bools: swap the outer two axes of [2, 2, 1].
    let got = with_x(bools(&[2, 2, 1], &[true, false, false, false]), |x| {
        x.permute(&[1, 0, 2])
    });
    assert_eq!(got.as_bool().unwrap(), &[true, false, false, false]);
    let got = with_x(i32s(&[2, 2, 1], &[1, 2, 3, 4]), |x| x.permute(&[1, 0, 2]));
    assert_eq!(got.as_i32().unwrap(), &[1, 3, 2, 4]);
}

#[test]
fn slice_with_steps() {
    // x = [[0..5], [5..10], [10..15]]
    let x = || f32s(&[3, 5], &iota_f32(15));
    let r = |start, stop, step| SliceRange { start, stop, step };
    let got = with_x(x(), |x| x.slice_ranges(&[r(0, 3, 2), r(1, 5, 2)]));
    assert_eq!(got.shape().dims(), &[2, 2]);
    assert_f32_exact(&got, &[1.0, 3.0, 11.0, 13.0]);

    let got = with_x(x(), |x| x.slice(1, 4, 5, 3));
    assert_eq!(got.shape().dims(), &[3, 1]);
    assert_f32_exact(&got, &[4.0, 9.0, 14.0]);

    let got = with_x(x(), |x| x.slice(0, 1, 3, 1));
    assert_f32_exact(&got, &iota_f32(15)[5..]);

    let got = with_x(x(), |x| x.slice(0, 2, 2, 1));
    assert_eq!(got.shape().dims(), &[0, 5]);
    assert_eq!(got.numel(), 0);

    let got = with_x(i32s(&[7], &[0, 1, 2, 3, 4, 5, 6]), |x| x.slice(0, 1, 7, 3));
    assert_eq!(got.as_i32().unwrap(), &[1, 4]);
}

#[test]
fn pad_with_zeros() {
    let got = with_x(f32s(&[2, 2], &[1.0, 2.0, 3.0, 4.0]), |x| {
        x.pad(&[1, 0], &[0, 2])
    });
    assert_eq!(got.shape().dims(), &[3, 4]);
    #[rustfmt::skip]
    let want = [
        0.0, 0.0, 0.0, 0.0,
        1.0, 2.0, 0.0, 0.0,
        3.0, 4.0, 0.0, 0.0,
    ];
    assert_f32_exact(&got, &want);

    let got = with_x(i32s(&[2], &[7, 8]), |x| x.pad(&[2], &[1]));
    assert_eq!(got.as_i32().unwrap(), &[0, 0, 7, 8, 0]);
    let got = with_x(bools(&[1], &[true]), |x| x.pad(&[1], &[1]));
    assert_eq!(got.as_bool().unwrap(), &[false, true, false]);
    let got = with_x(f64s(&[1, 1], &[2.5]), |x| x.pad(&[0, 1], &[1, 0]));
    assert_f64_exact(&got, &[0.0, 2.5, 0.0, 0.0]);
}

#[test]
fn concat_three_operands() {
    let b = Builder::new("concat");
    let a = b.input("a", DType::F32, [2, 1]);
    let m = b.input("b", DType::F32, [2, 2]);
    let c = b.input("c", DType::F32, [2, 3]);
    let fs = feeds(vec![
        ("a", f32s(&[2, 1], &[1.0, 2.0])),
        ("b", f32s(&[2, 2], &[3.0, 4.0, 5.0, 6.0])),
        ("c", f32s(&[2, 3], &[7.0, 8.0, 9.0, 10.0, 11.0, 12.0])),
    ]);
    let got = eval(&b, b.concat(&[a, m, c], 1), &fs);
    assert_eq!(got.shape().dims(), &[2, 6]);
    #[rustfmt::skip]
    let want = [
        1.0, 3.0, 4.0, 7.0, 8.0, 9.0,
        2.0, 5.0, 6.0, 10.0, 11.0, 12.0,
    ];
    assert_f32_exact(&got, &want);

    let b = Builder::new("concat0");
    let a = b.input("a", DType::I32, [1, 2]);
    let m = b.input("b", DType::I32, [2, 2]);
    let c = b.input("c", DType::I32, [1, 2]);
    let fs = feeds(vec![
        ("a", i32s(&[1, 2], &[1, 2])),
        ("b", i32s(&[2, 2], &[3, 4, 5, 6])),
        ("c", i32s(&[1, 2], &[7, 8])),
    ]);
    let got = eval(&b, b.concat(&[a, m, c], 0), &fs);
    assert_eq!(got.shape().dims(), &[4, 2]);
    assert_eq!(got.as_i32().unwrap(), &[1, 2, 3, 4, 5, 6, 7, 8]);
}

#[test]
fn iota_counts_along_its_axis() {
    let b = Builder::new("iota");
    let got = eval(&b, b.iota(DType::F32, [2, 3], 1), &feeds(vec![]));
    assert_f32_exact(&got, &[0.0, 1.0, 2.0, 0.0, 1.0, 2.0]);
    let got = eval(&b, b.iota(DType::I32, [2, 3], 0), &feeds(vec![]));
    assert_eq!(got.as_i32().unwrap(), &[0, 0, 0, 1, 1, 1]);
    let got = eval(&b, b.iota(DType::F64, [2, 2, 2], 1), &feeds(vec![]));
    assert_f64_exact(&got, &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
}

#[test]
fn constants_convert_to_their_dtype() {
    let b = Builder::new("constants");
    let none = feeds(vec![]);
    let got = eval(&b, b.constant(DType::F32, [2], &[0.1, -2.0]), &none);
    assert_f32_exact(&got, &[0.1, -2.0]);
    let got = eval(&b, b.constant(DType::F64, [2], &[0.1, -2.0]), &none);
    assert_f64_exact(&got, &[0.1, -2.0]);
    let got = eval(&b, b.constant(DType::I32, [3], &[2.7, -2.7, 1e10]), &none);
    assert_eq!(got.as_i32().unwrap(), &[2, -2, i32::MAX]);
    let got = eval(&b, b.constant(DType::Bool, [2], &[0.0, 3.5]), &none);
    assert_eq!(got.as_bool().unwrap(), &[false, true]);
    let got = eval(&b, b.scalar(DType::F32, 1.5), &none);
    assert_eq!(got.shape().rank(), 0);
    assert_f32_exact(&got, &[1.5]);
    let got = eval(&b, b.full(DType::I32, [2, 2], 3.0), &none);
    assert_eq!(got.as_i32().unwrap(), &[3, 3, 3, 3]);
}
