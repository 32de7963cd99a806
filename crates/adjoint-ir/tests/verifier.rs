//! The verifier rejects each kind of bad node with a message that names it.

use adjoint_ir::{AllReduceKind, BinaryOp, DType, Graph, Op, Shape, TensorType, UnaryOp};

fn f32s(d: &[usize]) -> TensorType {
    TensorType::new(DType::F32, Shape::new(d))
}

fn input(g: &mut Graph, name: &str, ty: TensorType) -> adjoint_ir::NodeId {
    g.add(
        Op::Input {
            name: name.into(),
            ty,
        },
        &[],
    )
    .unwrap()
}

fn assert_rejects(g: &Graph, needle: &str, node_desc: &str) {
    let err = g.verify().expect_err("the graph is invalid");
    let msg = err.to_string();
    assert!(msg.contains(needle), "expected `{needle}` in: {msg}");
    assert!(
        msg.contains(node_desc),
        "expected the node `{node_desc}` named in: {msg}"
    );
}

#[test]
fn a_well_formed_graph_passes() {
    let mut g = Graph::new("ok");
    let x = input(&mut g, "x", f32s(&[2]));
    let y = g.add(Op::Unary(UnaryOp::Exp), &[x]).unwrap();
    g.set_output("y", y);
    g.verify().unwrap();
}

#[test]
fn wrong_arity_is_rejected() {
    let mut g = Graph::new("arity");
    let x = input(&mut g, "x", f32s(&[2]));
    let bad = g.add_unchecked(Op::Binary(BinaryOp::Add), &[x], f32s(&[2]));
    g.set_label(bad, "half_add");
    assert_rejects(&g, "takes 2 operand(s), got 1", "add \"half_add\"");
}

#[test]
fn wrong_recorded_type_is_rejected() {
    let mut g = Graph::new("type");
    let x = input(&mut g, "x", f32s(&[2]));
    let bad = g.add_unchecked(Op::Unary(UnaryOp::Exp), &[x], f32s(&[3]));
    assert_rejects(
        &g,
        "recorded type f32[3] but the op computes f32[2]",
        &format!("#{}", bad.index()),
    );
}

#[test]
fn operand_type_errors_are_rejected() {
    let mut g = Graph::new("shapes");
    let a = input(&mut g, "a", f32s(&[2, 3]));
    let b = input(&mut g, "b", f32s(&[4, 5]));
    g.add_unchecked(Op::MatMul, &[a, b], f32s(&[2, 5]));
    assert_rejects(&g, "contraction dimensions differ", "matmul");

    let mut g = Graph::new("dtypes");
    let i = input(&mut g, "i", TensorType::new(DType::I32, Shape::new(&[2])));
    g.add_unchecked(
        Op::Unary(UnaryOp::Exp),
        &[i],
        TensorType::new(DType::I32, Shape::new(&[2])),
    );
    assert_rejects(&g, "not defined for dtype i32", "exp");
}

#[test]
fn all_reduce_needs_floats_and_a_replica() {
    let sum = |replicas| Op::AllReduce {
        kind: AllReduceKind::Sum,
        replicas,
    };
    let mut g = Graph::new("ints");
    let ty = TensorType::new(DType::I32, Shape::new(&[2]));
    let i = input(&mut g, "i", ty.clone());
    g.add_unchecked(sum(2), &[i], ty);
    assert_rejects(&g, "all_reduce needs f32 or f64, got i32", "all_reduce_sum");

    let mut g = Graph::new("nobody");
    let x = input(&mut g, "x", f32s(&[2]));
    g.add_unchecked(sum(0), &[x], f32s(&[2]));
    assert_rejects(&g, "at least 1 replica", "all_reduce_sum");

    // The builder's try_ twin reports the same rule.
    let b = adjoint_ir::Builder::new("built");
    let x = b.input("x", DType::I32, [3]);
    let err = x.try_all_reduce(AllReduceKind::Mean, 2).unwrap_err();
    assert!(err.to_string().contains("f32 or f64"), "{err}");
    let y = b
        .input("y", DType::F64, [3])
        .all_reduce(AllReduceKind::Mean, 2);
    assert_eq!(y.shape(), Shape::new(&[3]));
}

#[test]
fn cycles_are_rejected() {
    let mut g = Graph::new("cycle");
    let x = input(&mut g, "x", f32s(&[2]));
    let a = g.add(Op::Unary(UnaryOp::Exp), &[x]).unwrap();
    let b = g.add(Op::Unary(UnaryOp::Log), &[a]).unwrap();
    g.set_operand(a, 0, b);
    assert_rejects(&g, "lies on a cycle", "#");
}

#[test]
fn duplicate_leaf_names_are_rejected() {
    let mut g = Graph::new("names");
    input(&mut g, "x", f32s(&[2]));
    g.add_unchecked(
        Op::Parameter {
            name: "x".into(),
            ty: f32s(&[2]),
        },
        &[],
        f32s(&[2]),
    );
    assert_rejects(&g, "name `x` is also used", "parameter \"x\"");
}

#[test]
fn bad_operand_positions_are_rejected() {
    let mut g = Graph::new("slots");
    let x = input(&mut g, "x", f32s(&[2]));
    let y = input(&mut g, "y", f32s(&[2]));
    let add = g.add(Op::Binary(BinaryOp::Add), &[x, y]).unwrap();
    // Rewire operand 1 into slot 0 as well: slot 0 twice, slot 1 missing.
    g.set_operand(add, 1, x);
    g.set_operand(add, 0, y);
    g.set_operand(add, 5, x);
    assert_rejects(&g, "operand positions", "add");
}

#[test]
fn updates_must_target_parameters_of_the_same_type() {
    let mut g = Graph::new("updates");
    let w = g
        .add(
            Op::Parameter {
                name: "w".into(),
                ty: f32s(&[2]),
            },
            &[],
        )
        .unwrap();
    let x = input(&mut g, "x", f32s(&[2]));
    let wide = input(&mut g, "wide", f32s(&[3]));
    assert_eq!(
        g.set_update(x, w).unwrap_err(),
        adjoint_ir::GraphError::NotAParameter { op: "input" }
    );
    assert!(g
        .set_update(w, wide)
        .unwrap_err()
        .to_string()
        .contains("does not match"));
    g.set_update(w, x).unwrap();
    g.verify().unwrap();
}
