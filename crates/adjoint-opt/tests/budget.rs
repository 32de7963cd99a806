//! Planning under a memory budget: residual MLPs planned to fit budgets below what the default
//! plan needs, each plan checked and compared with the interpreter; a budget below every plan
//! is reported with the smallest arena reached, never a panic.

mod common;

use adjoint_interp::run;
use adjoint_ir::{Builder, DType, Feeds, Graph};
use adjoint_opt::{check_memory_plan, optimize, plan, PassOptions, Plan, PlanOptions};
use adjoint_workloads::{resmlp_ln, ResMlpConfig};

/// The optimized training step of a residual MLP with `blocks` blocks, and its feeds.
fn step_of(blocks: usize) -> (Graph, Feeds) {
    let cfg = ResMlpConfig {
        rows: 64,
        width: 8,
        hidden: 16,
        blocks,
    };
    let w = resmlp_ln(&cfg, 0);
    let (step, feeds) = common::step_graph(&w);
    (optimize(&step, &PassOptions::default()).unwrap().0, feeds)
}

fn checked(g: &Graph, keep_all: bool, budget: Option<usize>) -> Plan {
    let p = plan(
        g,
        &PlanOptions {
            keep_all,
            memory_budget: budget,
            ..PlanOptions::default()
        },
    );
    p.graph.verify().unwrap();
    check_memory_plan(&p.graph, &p.schedule, &p.memory).unwrap_or_else(|e| panic!("{e}"));
    p
}

/// Outputs and updates of `a` and `b` bitwise equal (a plan only duplicates nodes).
fn same_results(a: &Graph, b: &Graph, feeds: &Feeds) {
    let (ra, rb) = (run(a, feeds).unwrap(), run(b, feeds).unwrap());
    for ((na, ta), (nb, tb)) in ra
        .outputs
        .iter()
        .zip(&rb.outputs)
        .chain(ra.updates.iter().zip(&rb.updates))
    {
        assert_eq!(na, nb);
        let (va, vb) = (ta.to_f64_vec(), tb.to_f64_vec());
        assert!(
            va.iter().zip(&vb).all(|(x, y)| x.to_bits() == y.to_bits()),
            "`{na}` differs"
        );
    }
}

#[test]
fn half_the_default_arena_fits_by_checkpointing_segments() {
    let (g, feeds) = step_of(24);
    let default = checked(&g, false, None);
    let keep_all = checked(&g, true, None);
    let budget = default.memory.arena_bytes / 2;
    let p = checked(&g, false, Some(budget));
    let r = p.budget.as_ref().unwrap();
    assert!(r.fits, "{p}");
    assert!(p.memory.arena_bytes <= budget, "{p}");
    assert_eq!(r.arena_bytes, p.memory.arena_bytes);
    assert_eq!(r.keep_all_arena, keep_all.memory.arena_bytes);
    assert_eq!(r.default_arena, default.memory.arena_bytes);
    assert!(
        r.recompute_all_arena > budget,
        "recomputing everything at once does not help"
    );
    assert!(r.added_flops() > 0, "fitting costs recomputation: {r}");
    assert!(r.smallest_arena <= p.memory.arena_bytes);
    // The report shows the budget section and per-value decisions.
    let text = p.to_string();
    assert!(
        text.contains("== memory budget ==") && text.contains("recompute "),
        "{text}"
    );
    same_results(&g, &p.graph, &feeds);
}

#[test]
fn a_budget_the_default_plan_meets_changes_nothing() {
    let (g, _) = step_of(4);
    let default = checked(&g, false, None);
    let keep_all = checked(&g, true, None);
    // Exactly the default plan's arena: less than keeping every value needs.
    let budget = default.memory.arena_bytes;
    assert!(budget < keep_all.memory.arena_bytes);
    let p = checked(&g, false, Some(budget));
    let r = p.budget.as_ref().unwrap();
    assert!(r.fits && r.added_flops() == 0, "{r}");
    assert_eq!(p.memory.arena_bytes, default.memory.arena_bytes);
}

#[test]
fn a_budget_below_every_plan_reports_the_smallest_arena() {
    let (g, feeds) = step_of(8);
    let p = checked(&g, false, Some(1));
    let r = p.budget.as_ref().unwrap();
    assert!(!r.fits);
    assert_eq!(r.arena_bytes, r.smallest_arena);
    assert!(r.smallest_arena < r.default_arena, "{r}");
    assert!(r.to_string().contains("does not fit"));
    same_results(&g, &p.graph, &feeds);
}

#[test]
fn graphs_without_a_loss_are_planned_as_they_are() {
    let b = Builder::new("no_loss");
    let x = b.input("x", DType::F32, [16, 16]);
    b.output("y", x.exp() + 1.0);
    let g = b.finish();
    let p = checked(&g, false, Some(1));
    let r = p.budget.as_ref().unwrap();
    assert!(!r.fits);
    assert_eq!(r.arena_bytes, 16 * 16 * 4);
    let p = checked(&g, false, Some(1 << 20));
    assert!(p.budget.unwrap().fits);
}

#[test]
fn each_update_runs_right_after_its_gradient_so_gradients_do_not_pile_up() {
    let (g, _) = step_of(8);
    let p = checked(&g, false, None);
    let n = p.schedule.groups.len();
    let group_of = |v| {
        p.schedule
            .groups
            .iter()
            .position(|gr| gr.nodes.contains(&v))
    };
    let updates: Vec<_> = p.graph.updates().iter().map(|&(_, v)| v).collect();
    let mut live = vec![0usize; n];
    let mut weight_grads = 0;
    for v in p.graph.node_ids() {
        let is_weight_grad = p
            .graph
            .node(v)
            .label
            .as_deref()
            .is_some_and(|l| l.ends_with(".grad") && l.contains(".w"));
        if !is_weight_grad {
            continue;
        }
        weight_grads += 1;
        let stored =
            p.memory.buffers.iter().find(|b| {
                b.value == v && matches!(b.placement, adjoint_opt::Placement::Arena { .. })
            });
        match stored {
            Some(b) => {
                for slot in &mut live[b.first_group..=b.last_group.min(n - 1)] {
                    *slot += b.bytes;
                }
            }
            // Not stored at all: the kernel computing it must apply its update too.
            None => {
                let gi = group_of(v).expect("every node is in a group");
                assert!(
                    updates.iter().any(|&u| group_of(u) == Some(gi)),
                    "{} is neither stored nor fused into an update",
                    p.graph.describe(v)
                );
            }
        }
    }
    assert_eq!(weight_grads, 16, "two weight gradients per block");
    // One block's two weight gradients are 2 · 8 · 16 · 4 bytes; all eight blocks' would be
    // 8 times that if the optimizer ran at the end of the step.
    let one_block = 2 * 8 * 16 * 4;
    let most = live.iter().copied().max().unwrap_or(0);
    assert!(
        most <= one_block,
        "{most} bytes of weight gradients live at once"
    );
}
