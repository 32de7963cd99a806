//! Gather (NumPy `take` along an axis) and scatter-add against hand-computed values:
//! 1-D and 2-D indices, out-of-range indices, repeated indices.

mod common;

use adjoint_ir::{Builder, HostTensor};
use common::*;

fn gather(x: HostTensor, idx: HostTensor, axis: isize) -> HostTensor {
    let b = Builder::new("gather");
    let xi = b.input("x", x.dtype(), x.shape().clone());
    let ii = b.input("i", idx.dtype(), idx.shape().clone());
    eval(&b, xi.gather(ii, axis), &feeds(vec![("x", x), ("i", idx)]))
}

fn scatter_add(upd: HostTensor, idx: HostTensor, axis: isize, size: usize) -> HostTensor {
    let b = Builder::new("scatter_add");
    let u = b.input("u", upd.dtype(), upd.shape().clone());
    let ii = b.input("i", idx.dtype(), idx.shape().clone());
    eval(
        &b,
        u.scatter_add(ii, axis, size),
        &feeds(vec![("u", upd), ("i", idx)]),
    )
}

/// [[1, 2], [3, 4], [5, 6]]
fn x32() -> HostTensor {
    f32s(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
}

#[test]
fn gather_with_1d_indices() {
    let got = gather(x32(), i32s(&[4], &[2, 0, 3, -1]), 0);
    assert_eq!(got.shape().dims(), &[4, 2]);
    assert_f32_exact(&got, &[5.0, 6.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0]);
    let got = gather(x32(), i32s(&[2], &[1, 5]), 1);
    assert_eq!(got.shape().dims(), &[3, 2]);
    assert_f32_exact(&got, &[2.0, 0.0, 4.0, 0.0, 6.0, 0.0]);
    let got = gather(
        i32s(&[4], &[10, 20, 30, 40]),
        i32s(&[3], &[3, i32::MIN, 3]),
        0,
    );
    assert_eq!(got.as_i32().unwrap(), &[40, 0, 40]);
    let got = gather(bools(&[2], &[true, false]), i32s(&[3], &[1, 0, 2]), 0);
    assert_eq!(got.as_bool().unwrap(), &[false, true, false]);
}

#[test]
fn gather_with_2d_indices() {
    let got = gather(
        f64s(&[4], &[10.0, 20.0, 30.0, 40.0]),
        i32s(&[2, 2], &[3, 0, 1, 1]),
        0,
    );
    assert_eq!(got.shape().dims(), &[2, 2]);
    assert_f64_exact(&got, &[40.0, 10.0, 20.0, 20.0]);
    // x [2, 3] = [[1,2,3],[4,5,6]] along axis 1 with [[2, 0], [1, 7]]: result [2, 2, 2].
    let x = f32s(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let got = gather(x, i32s(&[2, 2], &[2, 0, 1, 7]), 1);
    assert_eq!(got.shape().dims(), &[2, 2, 2]);
    assert_f32_exact(&got, &[3.0, 1.0, 2.0, 0.0, 6.0, 4.0, 5.0, 0.0]);
}

#[test]
fn scatter_add_accumulates_repeats_and_drops_out_of_range() {
    let upd = f32s(
        &[5, 2],
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
    );
    let got = scatter_add(upd, i32s(&[5], &[2, 0, 2, -1, 3]), 0, 3);
    assert_eq!(got.shape().dims(), &[3, 2]);
    assert_f32_exact(&got, &[3.0, 4.0, 0.0, 0.0, 6.0, 8.0]);

    let upd = i32s(&[2, 3], &[1, 2, 3, 4, 5, 6]);
    let got = scatter_add(upd, i32s(&[3], &[1, 1, 9]), 1, 2);
    assert_eq!(got.shape().dims(), &[2, 2]);
    assert_eq!(got.as_i32().unwrap(), &[0, 3, 0, 9]);

    let upd = f64s(&[2], &[0.5, 0.25]);
    let got = scatter_add(upd, i32s(&[2], &[0, 0]), 0, 2);
    assert_f64_exact(&got, &[0.75, 0.0]);
}

#[test]
fn scatter_add_with_2d_indices() {
    let upd = f32s(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let got = scatter_add(upd, i32s(&[2, 2], &[0, 1, 1, 1]), 0, 3);
    assert_eq!(got.shape().dims(), &[3]);
    assert_f32_exact(&got, &[1.0, 9.0, 0.0]);
    // upd [2, 2, 2] scattered along axis 1 of a [2, 3] result.
    let upd = i32s(&[2, 2, 2], &[1, 2, 3, 4, 5, 6, 7, 8]);
    let got = scatter_add(upd, i32s(&[2, 2], &[2, 0, 2, -5]), 1, 3);
    assert_eq!(got.shape().dims(), &[2, 3]);
    assert_eq!(got.as_i32().unwrap(), &[2, 0, 4, 6, 0, 12]);
}
