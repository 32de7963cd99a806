//! The public API: `run` returns outputs and parameter updates in graph order; `eval_nodes`
//! evaluates any nodes, intermediate ones included.

mod common;

use adjoint_interp::{eval_nodes, run};
use adjoint_ir::{Builder, DType};
use common::*;

#[test]
fn eval_nodes_on_intermediate_values() {
    let b = Builder::new("chain");
    let x = b.input("x", DType::F64, [3]);
    let h = x * 2.0;
    let y = (h + 1.0).sum(&[0]);
    b.output("y", y);
    let ids = [h.id(), y.id(), h.id(), x.id()];
    let g = b.finish();
    let fs = feeds(vec![("x", f64s(&[3], &[1.0, 2.0, 3.0]))]);
    let vals = eval_nodes(&g, &fs, &ids).unwrap();
    assert_eq!(vals.len(), 4);
    assert_f64_exact(&vals[0], &[2.0, 4.0, 6.0]);
    assert_f64_exact(&vals[1], &[15.0]);
    assert_f64_exact(&vals[2], &[2.0, 4.0, 6.0]);
    assert_f64_exact(&vals[3], &[1.0, 2.0, 3.0]);
    assert!(eval_nodes(&g, &fs, &[]).unwrap().is_empty());
}

#[test]
fn run_returns_outputs_and_updates_in_graph_order() {
    // One SGD step on loss = sum((x * w - t)^2) with the gradient written out by hand:
    // dloss/dw = sum over rows of 2 (x w - t) x.
    let b = Builder::new("sgd");
    let x = b.input("x", DType::F32, [2, 2]);
    let t = b.input("t", DType::F32, [2, 2]);
    let w = b.parameter("w", DType::F32, [2]);
    let steps = b.parameter("steps", DType::I32, []);
    let err = x * w - t;
    b.output("loss", err.square().sum_all());
    b.output("pred", x * w);
    let grad = (err * x * 2.0).sum(&[0]);
    b.update(w, w - grad * 0.125);
    b.update(steps, steps + b.scalar(DType::I32, 1.0));
    let g = b.finish();

    let fs = feeds(vec![
        ("x", f32s(&[2, 2], &[1.0, 2.0, 3.0, 4.0])),
        ("t", f32s(&[2, 2], &[1.0, 0.0, 0.0, 4.0])),
        ("w", f32s(&[2], &[1.0, 1.0])),
        ("steps", i32s(&[], &[41])),
    ]);
    let r = run(&g, &fs).unwrap();
    // pred = [[1, 2], [3, 4]], err = [[0, 2], [3, 0]], loss = 13.
    let names: Vec<&str> = r.outputs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["loss", "pred"]);
    assert_f32_exact(r.output("loss").unwrap(), &[13.0]);
    assert_f32_exact(r.output("pred").unwrap(), &[1.0, 2.0, 3.0, 4.0]);
    // grad = [2*0*1 + 2*3*3, 2*2*2 + 2*0*4] = [18, 8]; w' = [1 - 2.25, 1 - 1].
    let names: Vec<&str> = r.updates.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["w", "steps"]);
    assert_f32_exact(r.update("w").unwrap(), &[-1.25, 0.0]);
    assert_eq!(r.update("steps").unwrap().as_i32().unwrap(), &[42]);
    assert!(r.output("w").is_none());
    assert!(r.update("loss").is_none());
}

#[test]
fn leaves_can_be_outputs_and_updates() {
    let b = Builder::new("passthrough");
    let x = b.input("x", DType::Bool, [2]);
    let p = b.parameter("p", DType::F32, [1]);
    let q = b.parameter("q", DType::F32, [1]);
    b.output("x", x);
    b.output("x_again", x);
    b.update(p, q); // p takes q's value
    b.update(q, p); // and q takes p's: a swap
    let g = b.finish();
    let fs = feeds(vec![
        ("x", bools(&[2], &[true, false])),
        ("p", f32s(&[1], &[1.0])),
        ("q", f32s(&[1], &[2.0])),
    ]);
    let r = run(&g, &fs).unwrap();
    assert_eq!(r.output("x").unwrap().as_bool().unwrap(), &[true, false]);
    assert_eq!(
        r.output("x_again").unwrap().as_bool().unwrap(),
        &[true, false]
    );
    assert_f32_exact(r.update("p").unwrap(), &[2.0]);
    assert_f32_exact(r.update("q").unwrap(), &[1.0]);
}

#[test]
fn long_chains_run() {
    // 2000 nodes deep: evaluation is iterative, not recursive.
    let b = Builder::new("deep");
    let x = b.input("x", DType::I32, [4]);
    let mut h = x;
    for i in 0..2000 {
        h = h + b.scalar(DType::I32, (i % 3) as f64);
    }
    let fs = feeds(vec![("x", i32s(&[4], &[0, 1, 2, 3]))]);
    // Σ (i mod 3) for i < 2000 = 666 * 3 + 0 + 1 = 1999.
    let got = eval(&b, h, &fs);
    assert_eq!(got.as_i32().unwrap(), &[1999, 2000, 2001, 2002]);
}
