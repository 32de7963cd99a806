//! The builder broadcasts like NumPy: shapes aligned on the last axis, each pair of dimensions
//! equal or one of them 1, missing leading axes counting as 1. Cases written out from NumPy.

use adjoint_ir::shape::{broadcast_shapes, can_broadcast_to};
use adjoint_ir::{Builder, DType, Op, Shape};

fn s(d: &[usize]) -> Shape {
    Shape::new(d)
}

#[test]
fn broadcast_shapes_follow_numpy() {
    // (a, b, numpy.broadcast_shapes(a, b))
    let ok: &[(&[usize], &[usize], &[usize])] = &[
        (&[], &[], &[]),
        (&[], &[3], &[3]),
        (&[3], &[2, 3], &[2, 3]),
        (&[2, 1], &[2, 3], &[2, 3]),
        (&[2, 1], &[1, 3], &[2, 3]),
        (&[1, 3, 1], &[2, 1, 4], &[2, 3, 4]),
        (&[5, 1, 4], &[3, 1], &[5, 3, 4]),
        (&[8, 1, 6, 1], &[7, 1, 5], &[8, 7, 6, 5]),
        (&[0], &[1], &[0]),
        (&[1], &[0], &[0]),
    ];
    for (a, b, want) in ok {
        assert_eq!(broadcast_shapes(&s(a), &s(b)), Some(s(want)), "{a:?} {b:?}");
        assert_eq!(broadcast_shapes(&s(b), &s(a)), Some(s(want)), "{b:?} {a:?}");
    }
    // NumPy raises "operands could not be broadcast together" for these.
    let bad: &[(&[usize], &[usize])] = &[(&[3], &[4]), (&[2, 1], &[8, 4, 3]), (&[2, 3], &[3, 2])];
    for (a, b) in bad {
        assert_eq!(broadcast_shapes(&s(a), &s(b)), None, "{a:?} {b:?}");
    }
}

#[test]
fn broadcast_to_follows_numpy() {
    assert!(can_broadcast_to(&s(&[3]), &s(&[2, 3])));
    assert!(can_broadcast_to(&s(&[]), &s(&[2, 2])));
    assert!(can_broadcast_to(&s(&[1, 3, 1]), &s(&[2, 3, 4])));
    // broadcast_to never shrinks a dimension and never drops axes.
    assert!(!can_broadcast_to(&s(&[2, 3]), &s(&[3])));
    assert!(!can_broadcast_to(&s(&[2]), &s(&[2, 3])));
}

#[test]
fn binary_ops_insert_explicit_broadcast_nodes() {
    let b = Builder::new("bc");
    let x = b.input("x", DType::F32, [4, 3]);
    let v = b.input("v", DType::F32, [3]);
    let y = x + v;
    assert_eq!(y.shape(), s(&[4, 3]));
    let g = b.graph();
    let ops = g.operands(y.id());
    assert_eq!(ops[0], x.id(), "the full-size operand is used as is");
    assert_eq!(g.op(ops[1]), &Op::Broadcast { shape: s(&[4, 3]) });
    assert_eq!(g.operands(ops[1])[0], v.id());
}

#[test]
fn both_operands_can_grow() {
    let b = Builder::new("outer");
    let col = b.input("col", DType::F32, [3, 1]);
    let row = b.input("row", DType::F32, [1, 4]);
    assert_eq!((col * row).shape(), s(&[3, 4]));
    assert_eq!((col * 2.0).shape(), s(&[3, 1]));
    let z = b.input("z", DType::F32, [2]);
    assert_eq!((col + z).shape(), s(&[3, 2]));
    let err = col.try_add(b.input("q", DType::F32, [2, 4])).unwrap_err();
    assert!(
        err.to_string().contains("[3,1] and [2,4] do not broadcast"),
        "{err}"
    );
}

#[test]
fn matmul_broadcasts_batch_axes_and_promotes_vectors() {
    let b = Builder::new("mm");
    let a = b.input("a", DType::F32, [2, 1, 3, 4]);
    let m = b.input("m", DType::F32, [5, 4, 6]);
    assert_eq!(a.matmul(m).shape(), s(&[2, 5, 3, 6]));
    let w = b.input("w", DType::F32, [4, 6]);
    assert_eq!(a.matmul(w).shape(), s(&[2, 1, 3, 6]));
    let v = b.input("v", DType::F32, [4]);
    assert_eq!(a.matmul(v).shape(), s(&[2, 1, 3]));
    let u = b.input("u", DType::F32, [3]);
    assert_eq!(u.matmul(a).shape(), s(&[2, 1, 4]));
}
