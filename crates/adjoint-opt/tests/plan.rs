//! Fusion, rematerialization and memory planning on hand-built graphs and the W1–W4 forward
//! graphs; every plan goes through the checker.

use adjoint_ir::{Builder, DType, Graph, Op};
use adjoint_opt::{
    check_memory_plan, optimize, plan, GroupKind, PassOptions, Placement, Plan, PlanOptions,
};

fn checked(g: &Graph, opts: &PlanOptions) -> Plan {
    let p = plan(g, opts);
    p.graph.verify().unwrap();
    check_memory_plan(&p.graph, &p.schedule, &p.memory).unwrap_or_else(|e| panic!("{e}\n{p}"));
    p
}

fn group_ops(p: &Plan, i: usize) -> Vec<&'static str> {
    p.schedule.groups[i]
        .nodes
        .iter()
        .map(|&n| p.graph.op(n).name())
        .collect()
}

#[test]
fn a_dense_layer_is_one_matmul_kernel() {
    let b = Builder::new("dense");
    let x = b.input("x", DType::F32, [8, 4]);
    let w = b.parameter("w", DType::F32, [4, 16]);
    let bias = b.parameter("b", DType::F32, [16]);
    b.output("h", (x.matmul(w) + bias).relu());
    let p = checked(&b.finish(), &PlanOptions::default());
    assert_eq!(p.schedule.groups.len(), 1, "{p}");
    assert_eq!(p.schedule.groups[0].kind, GroupKind::MatMul);
    let mut ops = group_ops(&p, 0);
    ops.sort_unstable();
    assert_eq!(
        ops,
        ["add", "broadcast", "broadcast", "constant", "matmul", "max"]
    );
    // One output buffer of 8*16 f32, alive until the end.
    assert_eq!(p.memory.arena_bytes, 8 * 16 * 4);
    assert_eq!(p.memory.lower_bound, 8 * 16 * 4);
}

#[test]
fn softmax_materializes_the_shared_shifted_value_once() {
    let b = Builder::new("softmax");
    let x = b.input("x", DType::F32, [4, 10]);
    b.output("p", x.softmax(-1));
    let g = b.finish();
    let p = checked(&g, &PlanOptions::default());
    // max → (x - max) shared by exp and ... : every computed node appears once (the checker
    // verifies that), and the reductions are in reduction kernels.
    let kinds: Vec<GroupKind> = p.schedule.groups.iter().map(|g| g.kind).collect();
    assert_eq!(
        kinds.iter().filter(|&&k| k == GroupKind::Reduction).count(),
        2,
        "{p}"
    );
    let exps = p
        .graph
        .node_ids()
        .filter(|&n| matches!(p.graph.op(n), Op::Unary(adjoint_ir::UnaryOp::Exp)))
        .count();
    assert_eq!(exps, 1);
    assert!(p.schedule.groups.len() <= 4, "{p}");
}

#[test]
fn unfused_plans_have_one_kernel_per_node() {
    let b = Builder::new("softmax");
    let x = b.input("x", DType::F32, [4, 10]);
    b.output("p", x.softmax(-1));
    let g = b.finish();
    let opts = PlanOptions {
        fuse: false,
        ..PlanOptions::default()
    };
    let p = checked(&g, &opts);
    assert_eq!(p.schedule.groups.len(), g.len() - 1);
}

/// One SGD step of `loss = sum(tanh(x @ w))` with a hand-written backward.
fn sgd_step() -> Graph {
    let b = Builder::new("sgd");
    let x = b.input("x", DType::F32, [8, 4]);
    let w = b.parameter("w", DType::F32, [4, 16]);
    let a = x.matmul(w).named("a");
    let h1 = a.tanh().named("h1");
    let h2 = a.exp().named("h2");
    let loss = (h1 + h2).sum(&[0, 1]);
    b.output("loss", loss);
    // d loss / d a = (1 - h1^2) + h2
    let one = b.full(DType::F32, [8, 16], 1.0);
    let da = (one - h1 * h1 + h2).named("a.grad");
    let dw = x.transpose(0, 1).matmul(da).named("w.grad");
    let w_new = w - dw * b.scalar(DType::F32, 0.01);
    b.update(w, w_new);
    b.finish()
}

#[test]
fn sgd_update_is_written_in_place_after_every_reader() {
    let g = sgd_step();
    let p = checked(&g, &PlanOptions::default());
    let w = p.graph.leaf("w").unwrap();
    let w_new = p.graph.update_of(w).unwrap();
    let buf = p.memory.buffer(w_new).unwrap();
    assert_eq!(buf.placement, Placement::Parameter { param: w });
    // The update is fused into the weight-gradient matmul's epilogue.
    let writer = &p.schedule.groups[buf.first_group];
    assert_eq!(writer.kind, GroupKind::MatMul, "{p}");
    assert!(writer.nodes.contains(&w_new));
}

#[test]
fn remat_keeps_the_matmul_output_and_recomputes_what_it_feeds() {
    let g = sgd_step();
    let p = checked(&g, &PlanOptions::default());
    let bytes = 8 * 16 * 4;
    assert_eq!(p.remat.bytes_kept_without_remat, 2 * bytes, "{p}");
    assert_eq!(p.remat.bytes_kept, bytes, "{p}");
    assert_eq!(p.remat.kept.len(), 1);
    assert_eq!(g.node(p.remat.kept[0].0).label.as_deref(), Some("a"));
    let mut recomputed: Vec<&str> = p
        .remat
        .recomputed
        .iter()
        .map(|&n| g.node(n).label.as_deref().unwrap())
        .collect();
    recomputed.sort_unstable();
    assert_eq!(recomputed, ["h1", "h2"]);
    assert!(p.graph.find("h1.remat").is_some());

    let keep = checked(
        &g,
        &PlanOptions {
            keep_all: true,
            ..PlanOptions::default()
        },
    );
    assert_eq!(keep.remat.bytes_kept, 2 * bytes);
    assert!(keep.remat.recomputed.is_empty());
}

#[test]
fn the_checker_rejects_overlapping_live_buffers() {
    let b = Builder::new("two");
    let x = b.input("x", DType::F32, [64]);
    let y = x.exp();
    let z = x.tanh();
    b.output("s", (y.sum(&[0]) + z.sum(&[0])).named("s"));
    let p = checked(&b.finish(), &PlanOptions::default());
    let mut bad = p.memory.clone();
    // Put every arena buffer at offset 0: some are live together.
    for buf in &mut bad.buffers {
        if let Placement::Arena { offset } = &mut buf.placement {
            *offset = 0;
        }
    }
    let e = check_memory_plan(&p.graph, &p.schedule, &bad)
        .unwrap_err()
        .to_string();
    assert!(e.contains("overlap"), "{e}");
    let mut short = p.memory.clone();
    short.buffers[0].last_group = 0;
    short.buffers[0].first_group = 0;
    assert!(check_memory_plan(&p.graph, &p.schedule, &short).is_err());
}

#[test]
fn workload_forward_graphs_optimize_and_plan() {
    for w in adjoint_workloads::all(0) {
        let (g, report) = optimize(&w.graph, &PassOptions::default()).unwrap();
        g.verify().unwrap();
        assert!(report.nodes_after <= report.nodes_before, "{}", w.id);
        let p = checked(&g, &PlanOptions::default());
        let unfused = Schedule::unfused(&g);
        assert!(p.schedule.groups.len() < unfused.groups.len(), "{}", w.id);
        assert!(p.memory.lower_bound <= p.memory.arena_bytes);
    }
}

use adjoint_opt::Schedule;

/// The gradient step of an `n`-op chain of `sin` and scaling on an `f32[dim]` parameter.
fn chain_step(n: usize, dim: usize) -> Graph {
    let b = Builder::new("chain");
    let w = b.parameter("w", DType::F32, [dim]);
    let mut h = w;
    for i in 0..n {
        h = if i % 2 == 0 { h.sin() } else { h * 0.999 };
    }
    b.output("loss", h.sum_all());
    let (loss, w) = (h.sum_all().id(), w.id());
    let g = b.finish();
    adjoint_autodiff::training_step(g, loss, &[w], &adjoint_autodiff::Optimizer::sgd(0.1))
        .unwrap()
        .graph
}

#[test]
fn plans_with_many_buffers_are_placed_in_lifetime_order_and_check() {
    // Keep-all on a 12,000-op chain: more than GREEDY_MAX_BUFFERS arena buffers, so the
    // n log n placement runs; the checker confirms no two live buffers overlap.
    let opts = PlanOptions {
        keep_all: true,
        ..PlanOptions::default()
    };
    let p = checked(&chain_step(12_000, 5), &opts);
    let arena = p
        .memory
        .buffers
        .iter()
        .filter(|b| matches!(b.placement, Placement::Arena { .. }))
        .count();
    assert!(arena > adjoint_opt::memory::GREEDY_MAX_BUFFERS, "{arena}");
    // Forward values kept for the backward are live together: the arena holds them all, and
    // frees nothing it could reuse beyond that.
    assert!(p.memory.arena_bytes >= p.memory.lower_bound);
    assert!(
        p.memory.arena_bytes <= 2 * p.memory.lower_bound + 64 * arena,
        "{}",
        p.memory.arena_bytes
    );
}
