//! Building the same op on the same operands twice gives the same node; leaves never merge.

use adjoint_ir::{Builder, DType, Op};

#[test]
fn same_op_same_operands_is_one_node() {
    let b = Builder::new("cse");
    let x = b.input("x", DType::F32, [3]);
    let y = b.input("y", DType::F32, [3]);
    let (e1, e2) = (x.exp(), x.exp());
    assert_eq!(e1.id(), e2.id());
    assert_eq!((x + y).id(), (x + y).id());
    // Operand order matters: sub is not commutative, and add is not canonicalized here.
    assert_ne!((x - y).id(), (y - x).id());
    assert_ne!((x + y).id(), (y + x).id());
    // Scalar constants are shared too, so `x * 2.0` twice is one multiply.
    assert_eq!((x * 2.0).id(), (x * 2.0).id());
    let n = b.graph().len();
    let _ = (x.exp() + y) * 2.0;
    let _ = (x.exp() + y) * 2.0;
    assert_eq!(
        b.graph().len(),
        n + 2,
        "only the add and the multiply are new"
    );
}

#[test]
fn attributes_distinguish_nodes() {
    let b = Builder::new("attrs");
    let x = b.input("x", DType::F32, [2, 3]);
    assert_ne!(x.sum(&[0]).id(), x.sum(&[1]).id());
    assert_ne!(x.sum(&[1]).id(), x.sum_keepdims(&[1]).id());
    assert_ne!(x.sum(&[1]).id(), x.max(&[1]).id());
    assert_ne!(x.reshape([3, 2]).id(), x.reshape([6]).id());
    assert_eq!(x.transpose(0, 1).id(), x.permute(&[1, 0]).id());
}

#[test]
fn leaves_with_different_names_never_merge_and_names_are_unique() {
    let b = Builder::new("leaves");
    let a = b.parameter("a", DType::F32, [2]);
    let c = b.parameter("c", DType::F32, [2]);
    assert_ne!(a.id(), c.id());
    let err = b.try_input("a", DType::F32, [2]).unwrap_err();
    assert!(err.to_string().contains("`a` is already taken"), "{err}");
}

#[test]
fn identity_movements_emit_nothing() {
    let b = Builder::new("noop");
    let x = b.input("x", DType::F32, [2, 3]);
    let n = b.graph().len();
    assert_eq!(x.reshape([2, 3]).id(), x.id());
    assert_eq!(x.broadcast_to([2, 3]).id(), x.id());
    assert_eq!(x.permute(&[0, 1]).id(), x.id());
    assert_eq!(x.cast(DType::F32).id(), x.id());
    assert_eq!(x.slice(1, 0, 3, 1).id(), x.id());
    assert_eq!(b.graph().len(), n);
    assert!(matches!(b.graph().op(x.id()), Op::Input { .. }));
}
