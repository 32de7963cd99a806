//! What `grad` appends, without evaluating: hash-consing with the forward graph, labels and
//! outputs, zero gradients, and the errors.

use adjoint_autodiff::{grad, grad_named, GradError};
use adjoint_ir::{Builder, DType, Graph, NodeId, Op, UnaryOp};

fn count_ops(g: &Graph, pred: impl Fn(&Op) -> bool) -> usize {
    g.node_ids().filter(|&id| pred(g.op(id))).count()
}

#[test]
fn gradient_of_sum_exp_times_w_reuses_the_forward_exp() {
    let b = Builder::new("exp");
    let x = b.parameter("x", DType::F32, [3, 4]);
    let w = b.input("w", DType::F32, [3, 4]);
    let loss = (x.exp() * w).sum_all();
    let (loss, x) = (loss.id(), x.id());
    let forward = b.finish();
    assert_eq!(count_ops(&forward, |op| *op == Op::Unary(UnaryOp::Exp)), 1);
    let grads = grad(forward, loss, &[x]).unwrap();
    let g = &grads.graph;
    g.verify().unwrap();
    assert_eq!(count_ops(g, |op| *op == Op::Unary(UnaryOp::Exp)), 1);
    // dx = (1 broadcast * w) * exp(x): the multiplication's second operand is the forward exp.
    let dx = grads.of(x).unwrap();
    assert_eq!(g.op(dx), &Op::Binary(adjoint_ir::BinaryOp::Mul));
    let exp = g.operands(dx)[1];
    assert_eq!(g.op(exp), &Op::Unary(UnaryOp::Exp));
    assert_eq!(g.operands(exp)[0], x);
}

#[test]
fn gradients_are_labelled_and_declared_as_outputs() {
    let b = Builder::new("mlp");
    let x = b.input("x", DType::F32, [2, 3]);
    let w = b.parameter("w", DType::F32, [3, 2]);
    let loss = x.matmul(w).tanh().sum_all();
    b.output("loss", loss);
    let grads = grad_named(b.finish(), "loss", &["w", "x"]).unwrap();
    let g = &grads.graph;
    let dw = g.output("w.grad").unwrap();
    let dx = g.output("x.grad").unwrap();
    assert_eq!(grads.nodes(), vec![dw, dx]);
    assert_eq!(g.node(dw).label.as_deref(), Some("w.grad"));
    assert_eq!(g.ty(dw), g.ty(g.leaf("w").unwrap()));
    assert_eq!(g.ty(dx), g.ty(g.leaf("x").unwrap()));
    assert_eq!(g.find("w.grad"), Some(dw));
}

#[test]
fn a_wrt_node_the_loss_ignores_gets_zeros() {
    let b = Builder::new("unused");
    let x = b.parameter("x", DType::F64, [2]);
    let unused = b.parameter("u", DType::F64, [2, 2]);
    let loss = x.sum_all();
    let (loss, unused) = (loss.id(), unused.id());
    let grads = grad(b.finish(), loss, &[unused]).unwrap();
    let g = &grads.graph;
    let du = grads.of(unused).unwrap();
    assert_eq!(g.ty(du).to_string(), "f64[2,2]");
    let Op::Broadcast { .. } = g.op(du) else {
        panic!("expected a broadcast zero, got {}", g.describe(du));
    };
    let Op::Constant(lit) = g.op(g.operands(du)[0]) else {
        panic!("expected a constant");
    };
    assert!(lit.is_splat(0.0));
}

#[test]
fn only_nodes_between_wrt_and_loss_get_adjoints() {
    // loss = sum(tanh(a) * exp(c)) with respect to a only: no adjoint flows into exp(c), so no
    // cos/sin/... and no node using c is emitted besides the forward exp.
    let b = Builder::new("prune");
    let a = b.parameter("a", DType::F32, [4]);
    let c = b.parameter("c", DType::F32, [4]);
    let loss = (a.tanh() * c.exp()).sum_all();
    let (loss, a, c) = (loss.id(), a.id(), c.id());
    let forward = b.finish();
    let before = forward.len();
    let grads = grad(forward, loss, &[a]).unwrap();
    let g = &grads.graph;
    assert_eq!(g.users(c).len(), 1, "only the forward exp uses c");
    // Appended: the seed 1, its reshape to [1] and broadcast to [4] (reduce_sum's rule),
    // g·exp(c) (mul's rule for a), then tanh's rule: y², 1 broadcast to [4] (the seed constant
    // is reused), 1 - y², and the product. Nothing for c's side.
    assert_eq!(g.len() - before, 8);
}

#[test]
fn second_order_graphs_verify() {
    let b = Builder::new("second");
    let x = b.parameter("x", DType::F64, [3]);
    let loss = (x.sin() * x.exp()).sum_all().named("loss");
    let (loss_id, x_id) = (loss.id(), x.id());
    let first = grad(b.finish(), loss_id, &[x_id]).unwrap();
    let dx = first.of(x_id).unwrap();
    let b = Builder::from_graph(first.graph);
    let s = b.tensor(dx).sum_all();
    let s = s.id();
    let second = grad(b.finish(), s, &[x_id]).unwrap();
    second.graph.verify().unwrap();
    assert_eq!(
        second.graph.ty(second.of(x_id).unwrap()).to_string(),
        "f64[3]"
    );
}

fn err(r: Result<adjoint_autodiff::Gradients, GradError>) -> GradError {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn refuses_bad_requests_with_clear_messages() {
    let b = Builder::new("bad");
    let x = b.parameter("x", DType::F32, [3]);
    let i = b.input("i", DType::I32, [3]);
    let v = x.exp();
    let s = v.sum_all();
    let n = i.sum_all();
    let (x, i, v, s, n) = (x.id(), i.id(), v.id(), s.id(), n.id());
    let g = b.finish();

    let e = err(grad(g.clone(), v, &[x]));
    assert!(matches!(e, GradError::LossNotScalar { .. }));
    assert!(e.to_string().contains("f32[3]"), "{e}");
    assert!(e.to_string().contains("scalar"), "{e}");

    let e = err(grad(g.clone(), n, &[x]));
    assert!(matches!(e, GradError::LossNotFloat { .. }), "{e}");
    assert!(e.to_string().contains("i32[]"), "{e}");

    let e = err(grad(g.clone(), s, &[i]));
    assert!(matches!(e, GradError::NotDifferentiable { .. }), "{e}");
    assert!(e.to_string().contains("\"i\""), "{e}");

    let missing = NodeId::new(999);
    let e = err(grad(g.clone(), s, &[missing]));
    assert!(
        matches!(
            e,
            GradError::NotInGraph {
                role: "wrt",
                index: 999
            }
        ),
        "{e}"
    );
    let e = err(grad(g.clone(), missing, &[x]));
    assert!(
        matches!(e, GradError::NotInGraph { role: "loss", .. }),
        "{e}"
    );

    let e = err(grad_named(g, "nope", &["x"]));
    assert!(e.to_string().contains("`nope`"), "{e}");
}
