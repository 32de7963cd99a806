//! Feed and graph errors: each is the right `InterpError`, found before anything runs, with a
//! message that names the feed and the types involved.

mod common;

use adjoint_interp::{eval_nodes, run, InterpError};
use adjoint_ir::{Builder, DType, Graph, NodeId, Op, TensorType, UnaryOp};
use common::*;
use std::error::Error;

/// y = exp(x) + w with x: f32[2,3] and w: f32[3].
fn graph() -> Graph {
    let b = Builder::new("errors");
    let x = b.input("x", DType::F32, [2, 3]);
    let w = b.parameter("w", DType::F32, [3]);
    b.output("y", x.exp() + w);
    b.finish()
}

fn ok_feeds() -> adjoint_ir::Feeds {
    feeds(vec![
        ("x", f32s(&[2, 3], &[0.0; 6])),
        ("w", f32s(&[3], &[1.0; 3])),
    ])
}

#[test]
fn correct_feeds_run() {
    let r = run(&graph(), &ok_feeds()).unwrap();
    assert_f32_exact(r.output("y").unwrap(), &[2.0; 6]);
}

#[test]
fn missing_feed() {
    let mut fs = ok_feeds();
    fs.remove("w");
    let err = run(&graph(), &fs).unwrap_err();
    assert_eq!(
        err,
        InterpError::MissingFeed {
            name: "w".into(),
            expected: TensorType::new(DType::F32, [3]),
        }
    );
    assert_eq!(
        err.to_string(),
        "missing feed `w`: the graph needs a tensor of type f32[3]"
    );
}

#[test]
fn wrong_shape() {
    let mut fs = ok_feeds();
    fs.insert("x".into(), f32s(&[3, 2], &[0.0; 6]));
    let err = run(&graph(), &fs).unwrap_err();
    assert_eq!(
        err,
        InterpError::FeedMismatch {
            name: "x".into(),
            expected: TensorType::new(DType::F32, [2, 3]),
            got: TensorType::new(DType::F32, [3, 2]),
        }
    );
    assert_eq!(
        err.to_string(),
        "feed `x` has type f32[3,2], but the graph expects f32[2,3]"
    );
}

#[test]
fn wrong_dtype() {
    let mut fs = ok_feeds();
    fs.insert("w".into(), f64s(&[3], &[1.0; 3]));
    let err = run(&graph(), &fs).unwrap_err();
    assert_eq!(
        err,
        InterpError::FeedMismatch {
            name: "w".into(),
            expected: TensorType::new(DType::F32, [3]),
            got: TensorType::new(DType::F64, [3]),
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains("`w`") && msg.contains("f64[3]") && msg.contains("f32[3]"),
        "{msg}"
    );
}

#[test]
fn unknown_feed() {
    let mut fs = ok_feeds();
    fs.insert("xx".into(), f32s(&[2, 3], &[0.0; 6]));
    let err = run(&graph(), &fs).unwrap_err();
    assert_eq!(err, InterpError::UnknownFeed { name: "xx".into() });
    assert_eq!(
        err.to_string(),
        "feed `xx` names no input or parameter of the graph"
    );
}

#[test]
fn leaves_that_nothing_needs_may_go_unfed() {
    let b = Builder::new("partial");
    let x = b.input("x", DType::F32, [2]);
    let unused = b.input("unused", DType::I32, [4]).id();
    let y = x * 3.0;
    b.output("y", y);
    let g = b.finish();
    let fs = feeds(vec![("x", f32s(&[2], &[1.0, -1.0]))]);
    assert_f32_exact(run(&g, &fs).unwrap().output("y").unwrap(), &[3.0, -3.0]);
    // But asking for a value that needs it is an error.
    let err = eval_nodes(&g, &fs, &[unused]).unwrap_err();
    assert!(matches!(err, InterpError::MissingFeed { ref name, .. } if name == "unused"));
}

#[test]
fn invalid_graph() {
    // exp on i32 with a recorded type: the verifier rejects it.
    let mut g = Graph::new("bad");
    let x = g
        .add(
            Op::Input {
                name: "x".into(),
                ty: TensorType::new(DType::I32, [2]),
            },
            &[],
        )
        .unwrap();
    let y = g.add_unchecked(
        Op::Unary(UnaryOp::Exp),
        &[x],
        TensorType::new(DType::I32, [2]),
    );
    g.set_output("y", y);
    let err = run(&g, &feeds(vec![("x", i32s(&[2], &[1, 2]))])).unwrap_err();
    let InterpError::Invalid(v) = &err else {
        panic!("expected Invalid, got {err:?}");
    };
    assert_eq!(v.node, Some(y));
    assert!(
        err.to_string()
            .starts_with("cannot interpret the graph: invalid node #1 exp"),
        "{err}"
    );
    assert!(err.source().is_some());
}

#[test]
fn node_not_in_graph() {
    let g = graph();
    let missing = NodeId::new(999);
    let err = eval_nodes(&g, &ok_feeds(), &[missing]).unwrap_err();
    assert!(
        matches!(err, InterpError::Invalid(ref v) if v.node == Some(missing)),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("not a node of this graph"),
        "{err}"
    );
}
