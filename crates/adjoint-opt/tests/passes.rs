//! Unit tests of the graph-to-graph passes on hand-built graphs: each rewrite fires where it
//! should, and only there.

use adjoint_ir::{Builder, DType, Graph, Literal, Op, TensorType};
use adjoint_opt::passes::pass_by_name;
use adjoint_opt::{optimize, PassOptions};

fn opt(g: &Graph) -> Graph {
    let (out, _) = optimize(g, &PassOptions::default()).unwrap();
    out.verify().unwrap();
    out
}

fn exact(g: &Graph) -> Graph {
    let (out, _) = optimize(g, &PassOptions::exact()).unwrap();
    out.verify().unwrap();
    out
}

/// The op names of the graph's non-leaf nodes in topological order.
fn ops(g: &Graph) -> Vec<String> {
    g.topo_order()
        .into_iter()
        .filter(|&id| !matches!(g.op(id), Op::Input { .. } | Op::Parameter { .. }))
        .map(|id| g.op(id).name().to_string())
        .collect()
}

#[test]
fn identities_disappear() {
    let b = Builder::new("ids");
    let x = b.input("x", DType::F32, [2, 3]);
    let y = x * b.scalar(DType::F32, 1.0);
    let y = y / b.scalar(DType::F32, 1.0);
    let y = y - b.scalar(DType::F32, 0.0);
    let y = -(-y);
    let y = y.transpose(0, 1).transpose(0, 1);
    let y = y.cast(DType::F32);
    b.output("y", y);
    let g = exact(&b.finish());
    assert_eq!(g.output("y"), g.leaf("x"));
    assert!(ops(&g).is_empty(), "{:?}", ops(&g));
}

#[test]
fn reshapes_and_permutes_compose() {
    let b = Builder::new("moves");
    let x = b.input("x", DType::F32, [2, 3, 4]);
    let r = x.reshape([6, 4]).reshape([4, 6]).reshape([24]);
    let p = x
        .permute(&[1, 2, 0])
        .permute(&[2, 0, 1])
        .permute(&[0, 2, 1]);
    b.output("r", r);
    b.output("p", p);
    let g = exact(&b.finish());
    let r = g.output("r").unwrap();
    assert_eq!(g.op(r), &Op::Reshape { shape: [24].into() });
    assert_eq!(g.operands(r)[0], g.leaf("x").unwrap());
    // [1,2,0] then [2,0,1] is the identity, then [0,2,1].
    let p = g.output("p").unwrap();
    assert_eq!(
        g.op(p),
        &Op::Permute {
            perm: [0, 2, 1].into_iter().collect()
        }
    );
    assert_eq!(g.operands(p)[0], g.leaf("x").unwrap());
}

#[test]
fn constants_fold_through_broadcasts() {
    let b = Builder::new("fold");
    let x = b.input("x", DType::F32, [3]);
    let c = b.full(DType::F32, [3], 2.0) + b.full(DType::F32, [3], 0.5);
    b.output("y", x * c);
    let g = exact(&b.finish());
    let y = g.output("y").unwrap();
    let c = g.operands(y)[1];
    assert!(matches!(g.op(c), Op::Broadcast { .. }));
    let Op::Constant(lit) = g.op(g.operands(c)[0]) else {
        panic!("expected a folded scalar, got {}", g.describe(c));
    };
    assert_eq!(lit.values(), &[2.5]);
}

#[test]
fn f32_folding_rounds_like_f32_arithmetic() {
    let b = Builder::new("round");
    let c = b.scalar(DType::F32, 0.1) + b.scalar(DType::F32, 0.2);
    b.output("c", c / b.scalar(DType::F32, 3.0));
    let g = exact(&b.finish());
    let Op::Constant(lit) = g.op(g.output("c").unwrap()) else {
        panic!("not folded");
    };
    assert_eq!(lit.values()[0], ((0.1f32 + 0.2f32) / 3.0f32) as f64);
}

#[test]
fn transcendental_functions_are_not_folded() {
    let b = Builder::new("exp");
    b.output("e", b.scalar(DType::F32, 1.0).exp());
    let g = opt(&b.finish());
    assert_eq!(ops(&g), ["constant", "exp"]);
}

#[test]
fn float_times_zero_stays_but_int_times_zero_folds() {
    let b = Builder::new("zero");
    let x = b.input("x", DType::F32, [2]);
    let i = b.input("i", DType::I32, [2]);
    b.output("x0", x * b.scalar(DType::F32, 0.0));
    b.output("i0", i * b.scalar(DType::I32, 0.0));
    let g = opt(&b.finish());
    assert_eq!(g.op(g.output("x0").unwrap()).name(), "mul");
    let i0 = g.output("i0").unwrap();
    assert_eq!(g.op(i0).name(), "broadcast");
}

#[test]
fn division_by_a_power_of_two_becomes_a_multiply() {
    let b = Builder::new("div");
    let x = b.input("x", DType::F32, [2]);
    b.output("q", x / b.scalar(DType::F32, 64.0));
    b.output("r", x / b.scalar(DType::F32, 3.0));
    let g = exact(&b.finish());
    let q = g.output("q").unwrap();
    assert_eq!(g.op(q).name(), "mul");
    let c = g.operands(q)[1];
    assert_eq!(
        g.op(g.operands(c)[0]),
        &Op::Constant(Literal::scalar(DType::F32, 1.0 / 64.0))
    );
    assert_eq!(g.op(g.output("r").unwrap()).name(), "div");
}

#[test]
fn select_on_a_constant_condition_picks_a_branch() {
    let b = Builder::new("sel");
    let x = b.input("x", DType::F32, [2]);
    let y = b.input("y", DType::F32, [2]);
    let t = b.full(DType::Bool, [2], 1.0);
    b.output("s", t.select(x, y));
    let g = exact(&b.finish());
    assert_eq!(g.output("s"), g.leaf("x"));
}

#[test]
fn sum_of_a_broadcast_becomes_a_multiply_only_when_inexact_rules_are_allowed() {
    let b = Builder::new("sumb");
    let x = b.input("x", DType::F32, [4]);
    b.output("s", x.broadcast_to([3, 4]).sum(&[0]));
    let g0 = b.finish();
    let g = opt(&g0);
    let s = g.output("s").unwrap();
    assert_eq!(g.op(s).name(), "mul");
    let c = g.operands(s)[1];
    assert_eq!(
        g.op(g.operands(c)[0]),
        &Op::Constant(Literal::scalar(DType::F32, 3.0))
    );
    let e = exact(&g0);
    assert_eq!(e.op(e.output("s").unwrap()).name(), "reduce_sum");
}

#[test]
fn reductions_over_unit_axes_become_reshapes() {
    let b = Builder::new("unit");
    let x = b.input("x", DType::F32, [4, 1]);
    b.output("m", x.max(&[1]));
    let g = exact(&b.finish());
    let m = g.output("m").unwrap();
    assert_eq!(g.op(m), &Op::Reshape { shape: [4].into() });
}

#[test]
fn cse_merges_duplicates_and_keeps_the_interface() {
    let mut g = Graph::new("dups");
    let f = |s: &[usize]| TensorType::new(DType::F32, s);
    let p = g
        .add(
            Op::Parameter {
                name: "w".into(),
                ty: f(&[2]),
            },
            &[],
        )
        .unwrap();
    let x = g
        .add(
            Op::Input {
                name: "x".into(),
                ty: f(&[2]),
            },
            &[],
        )
        .unwrap();
    let a1 = g.add_unchecked(Op::Binary(adjoint_ir::BinaryOp::Add), &[x, p], f(&[2]));
    let a2 = g.add_unchecked(Op::Binary(adjoint_ir::BinaryOp::Add), &[x, p], f(&[2]));
    let m = g
        .add(Op::Binary(adjoint_ir::BinaryOp::Mul), &[a1, a2])
        .unwrap();
    let dead = g.add(Op::Unary(adjoint_ir::UnaryOp::Exp), &[x]).unwrap();
    g.set_label(dead, "dead");
    g.set_label(m, "m");
    g.set_output("m", m);
    g.set_update(p, m).unwrap();
    let r = pass_by_name("cse", true).unwrap().run(&g).unwrap();
    let out = r.graph;
    out.verify().unwrap();
    assert_eq!(ops(&out), ["add", "mul"]);
    let m = out.output("m").unwrap();
    let ops_m = out.operands(m);
    assert_eq!(ops_m[0], ops_m[1]);
    assert_eq!(out.node(m).label.as_deref(), Some("m"));
    // Inputs and parameters keep their names; the update carries over.
    assert_eq!(out.leaf_name(out.inputs()[0]), Some("x"));
    assert_eq!(out.leaf_name(out.parameters()[0]), Some("w"));
    assert_eq!(out.updates(), &[(out.parameters()[0], m)]);
    assert!(r.changes > 0);
}

#[test]
fn dce_removes_only_dead_nodes() {
    let b = Builder::new("dce");
    let x = b.input("x", DType::F32, [2]);
    let _unused_input = b.input("u", DType::F32, [2]);
    let _dead = x.exp().named("dead");
    b.output("y", x.tanh());
    let g = b.finish();
    let r = pass_by_name("dce", true).unwrap().run(&g).unwrap();
    assert_eq!(r.changes, 1);
    assert_eq!(ops(&r.graph), ["tanh"]);
    assert_eq!(r.graph.inputs().len(), 2);
}

#[test]
fn the_manager_reports_every_pass_and_reaches_a_fixpoint() {
    let b = Builder::new("stats");
    let x = b.input("x", DType::F32, [2, 2]);
    b.output(
        "y",
        (x * b.scalar(DType::F32, 1.0)).reshape([4]).reshape([2, 2]),
    );
    let (g, report) = optimize(&b.finish(), &PassOptions::default()).unwrap();
    assert_eq!(g.output("y"), g.leaf("x"));
    // After the last change every pass ran once more and found nothing: a fixpoint. A pass
    // is not rerun on a graph that nothing changed since its own last run.
    let last_change = report.stats.iter().rposition(|s| s.changes > 0).unwrap();
    let after = &report.stats[last_change + 1..];
    let passes: std::collections::BTreeSet<&str> = after.iter().map(|s| s.pass).collect();
    assert_eq!(passes.len(), 4, "{report}");
    assert_eq!(after.len(), 4, "{report}");
    assert!(after.iter().all(|s| s.changes == 0));
    assert_eq!(report.nodes_after, 1);
    let text = report.to_string();
    assert!(
        text.contains("simplify") && text.contains("mul_one"),
        "{text}"
    );
}

#[test]
fn unknown_passes_are_reported() {
    let e = PassOptions::with_passes("fold,frobnicate").unwrap_err();
    assert_eq!(e.name, "frobnicate");
    let e = e.to_string();
    assert!(e.contains("frobnicate") && e.contains("simplify"), "{e}");
}

#[test]
fn dumps_are_numbered_in_pass_order() {
    let dir = std::env::temp_dir().join(format!("adjoint-opt-dump-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let b = Builder::new("dumped");
    let x = b.input("x", DType::F32, [2]);
    b.output("y", -(-x));
    let opts = PassOptions {
        dump_dir: Some(dir.clone()),
        ..PassOptions::with_passes("simplify,dce").unwrap()
    };
    let (_, report) = optimize(&b.finish(), &opts).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names[0].starts_with("dumped.000.input."), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("dumped.001.simplify.")));
    assert!(names.iter().any(|n| n.starts_with("dumped.002.dce.")));
    assert_eq!(report.dumped.len(), names.len());
    let after = std::fs::read_to_string(
        dir.join(
            names
                .iter()
                .find(|n| n.contains("001") && n.ends_with(".txt"))
                .unwrap(),
        ),
    )
    .unwrap();
    assert!(after.contains("output \"y\" = %x"), "{after}");
    assert!(
        names.iter().any(|n| n == "dumped.001.simplify.dot"),
        "{names:?}"
    );
    assert!(!after.contains("neg"), "{after}");
    std::fs::remove_dir_all(&dir).unwrap();
}
