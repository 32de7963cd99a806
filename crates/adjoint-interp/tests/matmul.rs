//! Matrix products (2-D and batched) against hand-computed values, every numeric dtype.

mod common;

use adjoint_ir::{Builder, HostTensor};
use common::*;

fn matmul(a: HostTensor, b_val: HostTensor) -> HostTensor {
    let b = Builder::new("matmul");
    let x = b.input("a", a.dtype(), a.shape().clone());
    let y = b.input("b", b_val.dtype(), b_val.shape().clone());
    eval(&b, x.matmul(y), &feeds(vec![("a", a), ("b", b_val)]))
}

#[test]
fn matmul_2d() {
    // [[1,2,3],[4,5,6]] @ [[7,8],[9,10],[11,12]] = [[58,64],[139,154]]
    let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let b = [7.0, 8.0, 9.0, 10.0, 11.0, 12.0];
    let want = [58.0, 64.0, 139.0, 154.0];
    let got = matmul(
        f32s(&[2, 3], &a.map(|v| v as f32)),
        f32s(&[3, 2], &b.map(|v| v as f32)),
    );
    assert_eq!(got.shape().dims(), &[2, 2]);
    assert_f32_exact(&got, &want.map(|v| v as f32));
    assert_f64_exact(&matmul(f64s(&[2, 3], &a), f64s(&[3, 2], &b)), &want);
    let got = matmul(
        i32s(&[2, 3], &a.map(|v| v as i32)),
        i32s(&[3, 2], &b.map(|v| v as i32)),
    );
    assert_eq!(got.as_i32().unwrap(), &want.map(|v| v as i32));
    // A row vector times a column: [1, 2, 3] . [4, 5, 6] = 32.
    let got = matmul(
        f32s(&[1, 3], &[1.0, 2.0, 3.0]),
        f32s(&[3, 1], &[4.0, 5.0, 6.0]),
    );
    assert_f32_exact(&got, &[32.0]);
}

#[test]
fn matmul_batched() {
    // Batch 0: [[1,2],[3,4]] @ I; batch 1: [[5,6],[7,8]] @ [[2,1],[0,-1]] = [[10,-1],[14,-1]].
    let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    let b = [1.0, 0.0, 0.0, 1.0, 2.0, 1.0, 0.0, -1.0];
    let want = [1.0, 2.0, 3.0, 4.0, 10.0, -1.0, 14.0, -1.0];
    let got = matmul(f64s(&[2, 2, 2], &a), f64s(&[2, 2, 2], &b));
    assert_eq!(got.shape().dims(), &[2, 2, 2]);
    assert_f64_exact(&got, &want);
    let got = matmul(
        f32s(&[2, 2, 2], &a.map(|v| v as f32)),
        f32s(&[2, 2, 2], &b.map(|v| v as f32)),
    );
    assert_f32_exact(&got, &want.map(|v| v as f32));

    // Rank 4, batch [2, 1], [1, 2] @ [2, 3] per batch.
    let a = [1.0, 1.0, 2.0, -1.0];
    let b = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
    let got = matmul(f64s(&[2, 1, 1, 2], &a), f64s(&[2, 1, 2, 3], &b));
    assert_eq!(got.shape().dims(), &[2, 1, 1, 3]);
    assert_f64_exact(&got, &[5.0, 7.0, 9.0, 2.0, -1.0, 0.0]);
}

#[test]
fn matmul_i32_wraps_and_empty_contraction_is_zero() {
    let got = matmul(i32s(&[1, 2], &[65536, 1]), i32s(&[2, 1], &[65536, 5]));
    assert_eq!(got.as_i32().unwrap(), &[5]);
    let got = matmul(f32s(&[2, 0], &[]), f32s(&[0, 3], &[]));
    assert_eq!(got.shape().dims(), &[2, 3]);
    assert_f32_exact(&got, &[0.0; 6]);
}
