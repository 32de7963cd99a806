//! `scaled_dot_product_attention`: result types, the primitives it emits, the causal mask and
//! the errors of its `try_` twin. (Its values are checked against the interpreter in
//! adjoint-nn's layer tests, since this crate has no evaluator.)

use adjoint_ir::{Builder, DType, Op};

/// Number of nodes of `g` whose op satisfies `pred`.
fn count(g: &adjoint_ir::Graph, pred: impl Fn(&Op) -> bool) -> usize {
    g.node_ids().filter(|&id| pred(g.op(id))).count()
}

#[test]
fn result_has_query_rows_and_value_columns() {
    let b = Builder::new("sdpa");
    let q = b.input("q", DType::F32, [2, 3, 5, 4]);
    let k = b.input("k", DType::F32, [2, 3, 7, 4]);
    let v = b.input("v", DType::F32, [2, 3, 7, 6]);
    let out = q.scaled_dot_product_attention(k, v, false);
    assert_eq!(out.ty().to_string(), "f32[2,3,5,6]");
    let rank2 = b.input("q2", DType::F64, [3, 2]);
    let out = rank2.scaled_dot_product_attention(rank2, rank2, true);
    assert_eq!(out.ty().to_string(), "f64[3,2]");
}

#[test]
fn causal_attention_adds_exactly_one_mask_select() {
    let build = |causal: bool| {
        let b = Builder::new("sdpa");
        let q = b.input("q", DType::F32, [1, 4, 2]);
        let out = q.scaled_dot_product_attention(q, q, causal);
        b.output("out", out);
        b.finish()
    };
    let (plain, causal) = (build(false), build(true));
    let selects = |g: &adjoint_ir::Graph| count(g, |op| matches!(op, Op::Select));
    let iotas = |g: &adjoint_ir::Graph| count(g, |op| matches!(op, Op::Iota { .. }));
    assert_eq!(selects(&plain), 0);
    assert_eq!(selects(&causal), 1);
    assert_eq!(iotas(&plain), 0);
    assert_eq!(iotas(&causal), 2);
    // Two matmuls (scores and the weighted sum of values) either way.
    let matmuls = |g: &adjoint_ir::Graph| count(g, |op| matches!(op, Op::MatMul));
    assert_eq!(matmuls(&plain), 2);
    assert_eq!(matmuls(&causal), 2);
    assert!(causal.verify().is_ok());
}

#[test]
fn mismatched_operands_are_refused_at_the_call() {
    let b = Builder::new("bad");
    let q = b.input("q", DType::F32, [2, 5, 4]);
    let k3 = b.input("k3", DType::F32, [2, 5, 3]);
    let call_line = line!() + 1;
    let err = q.try_scaled_dot_product_attention(k3, q, false);
    let err = err.unwrap_err();
    assert_eq!(err.op, "scaled_dot_product_attention");
    assert_eq!(err.location.line(), call_line);
    assert!(err.to_string().contains("f32[2,5,3]"), "{err}");

    let k7 = b.input("k7", DType::F32, [2, 7, 4]);
    let v7 = b.input("v7", DType::F32, [2, 7, 4]);
    assert!(q.try_scaled_dot_product_attention(k7, v7, false).is_ok());
    let err = q
        .try_scaled_dot_product_attention(k7, v7, true)
        .unwrap_err();
    assert!(err.to_string().contains("Sq == Sk"), "{err}");
    let err = q
        .try_scaled_dot_product_attention(k7, q, false)
        .unwrap_err();
    assert_eq!(err.op, "scaled_dot_product_attention");

    let other_batch = b.input("kb", DType::F32, [3, 5, 4]);
    let err = q
        .try_scaled_dot_product_attention(other_batch, other_batch, false)
        .unwrap_err();
    assert_eq!(err.op, "scaled_dot_product_attention");
    let vector = b.input("vec", DType::F32, [4]);
    assert!(vector
        .try_scaled_dot_product_attention(vector, vector, false)
        .is_err());
}

#[test]
#[should_panic(expected = "scaled_dot_product_attention")]
fn panicking_form_names_the_op() {
    let b = Builder::new("bad");
    let q = b.input("q", DType::F32, [2, 5, 4]);
    let k = b.input("k", DType::F32, [2, 6, 4]);
    let _ = q.scaled_dot_product_attention(k, k, true);
}
