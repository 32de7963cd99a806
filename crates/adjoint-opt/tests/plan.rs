//! Fusion, rematerialization and memory planning on hand-built graphs and the W1–W4 forward
//! graphs; every plan goes through the checker.

use adjoint_ir::{Builder, DType, Graph, Op, Tensor};
use adjoint_opt::schedule::ROW_CACHE_LEN;
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
fn softmax_is_one_row_wise_kernel_with_exp_computed_once() {
    for (n, kernels) in [(10, 1), (ROW_CACHE_LEN, 1), (ROW_CACHE_LEN + 1, 2)] {
        let b = Builder::new("softmax");
        let x = b.input("x", DType::F32, [4, n]);
        b.output("p", x.softmax(-1));
        let g = b.finish();
        let p = checked(&g, &PlanOptions::default());
        // The row max and sum are row-level members, computed once per row. `exp` is read by
        // the sum and by the division: the kernel keeps a row's `exp` values as the sum
        // computes them (the row cache of code generation) and divides those. Rows longer than
        // the cache split in two kernels, the first (max, exp) storing `exp` for the second
        // (sum, divide), rather than computing `exp` twice per element.
        let kinds: Vec<GroupKind> = p.schedule.groups.iter().map(|g| g.kind).collect();
        assert_eq!(kinds, vec![GroupKind::RowWise; kernels], "rows of {n}: {p}");
        let exps = p
            .graph
            .node_ids()
            .filter(|&n| matches!(p.graph.op(n), Op::Unary(adjoint_ir::UnaryOp::Exp)))
            .count();
        assert_eq!(exps, 1);
    }
}

#[test]
fn layer_norm_stores_its_row_statistics_from_its_one_kernel() {
    // The row statistics are also read elsewhere (as a backward pass reads them): the row-wise
    // kernel stores them as extra outputs instead of leaving them to kernels of their own.
    let b = Builder::new("ln");
    let x = b.input("x", DType::F32, [6, 16]);
    let mean = x.sum_keepdims(&[-1]) * (1.0 / 16.0);
    let c = x - mean;
    let var = (c * c).sum_keepdims(&[-1]) * (1.0 / 16.0);
    let inv = (var + 1e-5).sqrt().recip();
    b.output("y", c * inv);
    b.output("var", var);
    b.output("mean", mean);
    let g = b.finish();
    let p = checked(&g, &PlanOptions::default());
    let kinds: Vec<GroupKind> = p.schedule.groups.iter().map(|g| g.kind).collect();
    assert_eq!(kinds, [GroupKind::RowWise], "{p}");
    assert_eq!(p.schedule.groups[0].outputs.len(), 3, "{p}");
}

#[test]
fn an_elementwise_chain_stores_the_values_read_later_from_one_kernel() {
    // `h ← sin(h) · 0.5`, 40 times, then a backward-like chain `g ← g · cos(h_i)` reading every
    // `h_i` in reverse: the first chain's kernels store each `h_i` as one of several outputs
    // (each is read later, by another kernel) instead of ending a kernel at every one.
    let b = Builder::new("chain");
    let x = b.input("x", DType::F32, [4, 8]);
    let mut h = x;
    let mut kept = Vec::new();
    for _ in 0..40 {
        kept.push(h);
        h = h.sin() * 0.5;
    }
    let mut g = h;
    for &k in kept.iter().rev() {
        g = g * k.cos();
    }
    b.output("y", g);
    let g = b.finish();
    let p = checked(&g, &PlanOptions::default());
    // 240 computed nodes at most 64 to a kernel: 4 kernels would do; a kernel per stored value
    // was 40 and more.
    let kernels = p.schedule.groups.len();
    assert!(kernels <= 8, "{kernels} kernels\n{p}");
    let most = p.schedule.groups.iter().map(|g| g.outputs.len()).max();
    assert!(most >= Some(10), "{p}");
}

#[test]
fn an_extra_output_never_makes_an_earlier_reader_wait() {
    // `e` is read by an early consumer `early` (an output computed right after it) and by the
    // end of the chain. Stored as an extra output of the chain's kernel, `early` would have to
    // wait for the whole chain: `e` stays the root of a kernel of its own instead.
    let b = Builder::new("early");
    let x = b.input("x", DType::F32, [4, 8]);
    let e = x.exp();
    let early = e.sum_keepdims(&[-1]);
    let mut h = e.sin();
    for _ in 0..6 {
        h = h.exp().sin();
    }
    b.output("early", early);
    b.output("y", h * e);
    let g = b.finish();
    let p = checked(&g, &PlanOptions::default());
    for grp in &p.schedule.groups {
        assert!(
            grp.outputs.len() == 1 || grp.kind == GroupKind::RowWise,
            "{p}"
        );
    }
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
    sgd_step_of(|a| a * 0.5, |a| a + 1.0)
}

/// A hand-written SGD step whose backward reads `h1 = f1(a)` and `h2 = f2(a)` of the matmul
/// output `a` (not `a` itself).
fn sgd_step_of(
    f1: impl for<'b> Fn(Tensor<'b>) -> Tensor<'b>,
    f2: impl for<'b> Fn(Tensor<'b>) -> Tensor<'b>,
) -> Graph {
    let b = Builder::new("sgd");
    let x = b.input("x", DType::F32, [8, 4]);
    let w = b.parameter("w", DType::F32, [4, 16]);
    let a = x.matmul(w).named("a");
    let h1 = f1(a).named("h1");
    let h2 = f2(a).named("h2");
    let loss = (h1 + h2).sum(&[0, 1]);
    b.output("loss", loss);
    // The shape of a tanh + exp backward: d loss / d a = (1 - h1^2) + h2.
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
fn remat_keeps_transcendentals_rather_than_recompute_them() {
    // Recomputing tanh and exp costs more time than writing and reading them back: the
    // default price keeps both, as keep-all does.
    let g = sgd_step_of(|a| a.tanh(), |a| a.exp());
    let p = checked(&g, &PlanOptions::default());
    assert!(p.remat.recomputed.is_empty(), "{p}");
    assert_eq!(p.remat.bytes_kept, 2 * 8 * 16 * 4, "{p}");
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

/// `loss = sum(t)` where `t = tanh(exp(tanh(a)))`, `a = x @ w`, and the backward reads `a`
/// and `t`: recomputing `t` from `a` costs three transcendentals per element.
fn transcendental_chain() -> Graph {
    let b = Builder::new("chain");
    let x = b.input("x", DType::F32, [8, 4]);
    let w = b.parameter("w", DType::F32, [4, 16]);
    let a = x.matmul(w).named("a");
    let t = a.tanh().exp().tanh().named("t");
    b.output("loss", t.sum(&[0, 1]));
    let g = (t * a).named("g");
    let dw = x.transpose(0, 1).matmul(g);
    b.update(w, w - dw * b.scalar(DType::F32, 0.01));
    b.finish()
}

#[test]
fn remat_prices_recomputation_by_flops() {
    let g = transcendental_chain();
    let p = checked(&g, &PlanOptions::default());
    // Recomputing `t` would cost 3 × 16 FLOPs per element: more than keeping its 4 bytes is
    // worth at the default price, so both `a` and `t` are kept.
    let labels: Vec<&str> = p
        .remat
        .kept
        .iter()
        .map(|&(n, _)| g.node(n).label.as_deref().unwrap_or("?"))
        .collect();
    assert!(labels.contains(&"t") && labels.contains(&"a"), "{p}");
    assert_eq!(p.remat.recompute_flops, 0, "{p}");
    // At a price of zero the cut recomputes the chain from `a`, and says what that costs.
    let (_, free) = adjoint_opt::remat::rematerialize_with(
        &g,
        "loss",
        &adjoint_opt::RematPolicy::MinCut {
            flop_price: 0.0,
            recompute_anchors: false,
        },
    );
    assert_eq!(free.kept.len(), 1);
    assert_eq!(free.recompute_flops, 8 * 16 * 3 * 16);
    assert!(free.saved.iter().any(|s| !s.kept));
}

/// GELU's shape of reuse: `a = 0.5·x` and `c = 1 + tanh(x)` feed `y = a·c` (a matmul operand,
/// so stored) and a later kernel reading the matmul's result. The later kernel computes `a`
/// and `c` again from `x` and `tanh(x)` (which it reads anyway) instead of loading them, so
/// neither is stored, and the planned graph computes the same bits.
#[test]
fn cheap_values_are_recomputed_by_their_readers_not_stored() {
    let b = Builder::new("gelu-like");
    let x = b.input("x", DType::F32, [32, 32]);
    let w = b.parameter("w", DType::F32, [32, 32]);
    let t = x.tanh();
    let a = x * 0.5;
    let c = t + 1.0;
    let y = a * c;
    let m = y.matmul(w);
    b.output("z", m * a * c + t);
    let g = b.finish();
    let p = checked(&g, &PlanOptions::default());
    let stored: Vec<&str> = p
        .schedule
        .groups
        .iter()
        .flat_map(|gr| gr.outputs.iter().map(|&n| p.graph.op(n).name()))
        .collect();
    // `y`, `tanh(x)` and `z` (the matmul's epilogue); neither `0.5·x` nor `1 + tanh(x)`.
    assert_eq!(stored, ["mul", "tanh", "add"], "{p}");
    assert_eq!(p.memory.arena_bytes, 3 * 32 * 32 * 4, "{p}");
    let mut feeds = adjoint_ir::Feeds::new();
    let xs: Vec<f32> = (0..32 * 32).map(|i| ((i as f32) * 0.37).sin()).collect();
    let ws: Vec<f32> = (0..32 * 32).map(|i| ((i as f32) * 0.11).cos()).collect();
    feeds.insert(
        "x".into(),
        adjoint_ir::HostTensor::from_f32([32, 32], xs).unwrap(),
    );
    feeds.insert(
        "w".into(),
        adjoint_ir::HostTensor::from_f32([32, 32], ws).unwrap(),
    );
    let bits = |graph: &Graph| -> Vec<u64> {
        let out = adjoint_interp::run(graph, &feeds).unwrap();
        let (_, z) = out.outputs.iter().find(|(name, _)| name == "z").unwrap();
        z.to_f64_vec().iter().map(|v| v.to_bits()).collect()
    };
    assert_eq!(bits(&g), bits(&p.graph));
}

/// A cheap value that a matmul reads as its operand stays stored: a matmul's operands are
/// loads, so a copy for the matmul's kernel would be one more kernel storing the same values.
#[test]
fn a_cheap_value_a_matmul_reads_is_not_recomputed() {
    let b = Builder::new("operand");
    let x = b.input("x", DType::F32, [16, 16]);
    let w = b.parameter("w", DType::F32, [16, 16]);
    let h = x * 0.5;
    b.output("t", h.tanh());
    b.output("y", h.matmul(w));
    let g = b.finish();
    let p = checked(&g, &PlanOptions::default());
    let muls = p
        .graph
        .node_ids()
        .filter(|&n| p.graph.op(n).name() == "mul")
        .count();
    assert_eq!(muls, 1, "{p}");
    assert_eq!(p.schedule.groups.len(), 2, "{p}");
}

#[test]
fn remat_keeps_an_activation_that_matmuls_read_in_both_parts() {
    // `h = relu(x @ w1)` feeds `h @ w2` in the forward and `hᵀ · dy` (w2's gradient) in the
    // backward: the forward writes `h` for its matmul, so a recomputed copy would only be a
    // second pass writing it again. `h` is kept, not recomputed.
    let b = Builder::new("mlp");
    let x = b.input("x", DType::F32, [8, 4]);
    let w1 = b.parameter("w1", DType::F32, [4, 16]);
    let w2 = b.parameter("w2", DType::F32, [16, 3]);
    let h = x.matmul(w1).relu().named("h");
    let loss = h.matmul(w2).square().sum_all();
    b.output("loss", loss);
    let (loss, params) = (loss.id(), [w1.id(), w2.id()]);
    let g = adjoint_autodiff::training_step(
        b.finish(),
        loss,
        &params,
        &adjoint_autodiff::Optimizer::sgd(0.1),
    )
    .unwrap()
    .graph;
    let p = checked(&g, &PlanOptions::default());
    let label = |n| g.node(n).label.as_deref();
    assert!(
        p.remat.kept.iter().any(|&(n, _)| label(n) == Some("h")),
        "{p}"
    );
    assert!(
        !p.remat.recomputed.iter().any(|&n| label(n) == Some("h")),
        "{p}"
    );
}
