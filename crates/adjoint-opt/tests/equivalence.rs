//! The interpreter is the oracle: every pass, the whole pipeline and the planned graph
//! (rematerialized, constants and movement ops copied per user) compute the same outputs and
//! updates as the graph they started from.
//!
//! - bit-exact passes and [`PassOptions::exact`]: every element bitwise equal (NaN equals NaN);
//! - the default pipeline, which also applies the inexact rules (`add_zero`, `pow_two`,
//!   `sum_unit_axes`, `sum_of_broadcast`): within `1e-5 · (1 + |reference|)` relative, for the
//!   values of the tamed random graphs and the workloads;
//! - the planned graph of an optimized graph: bitwise equal to that optimized graph (it only
//!   duplicates nodes).

mod common;

use adjoint_autodiff::{float_parameters, training_step, Optimizer};
use adjoint_interp::{run, Evaluation};
use adjoint_ir::random_graph::{random_feeds, random_graph};
use adjoint_ir::{Builder, Feeds, Graph};
use adjoint_opt::passes::pass_by_name;
use adjoint_opt::{check_memory_plan, optimize, plan, PassOptions, PlanOptions, PASS_NAMES};
use proptest::prelude::*;

const TOLERANCE: f64 = 1e-5;

/// Compares two evaluations; `tol: None` asks for bitwise equality.
fn same(a: &Evaluation, b: &Evaluation, tol: Option<f64>) -> Result<(), String> {
    let pairs = a
        .outputs
        .iter()
        .zip(&b.outputs)
        .chain(a.updates.iter().zip(&b.updates));
    if a.outputs.len() != b.outputs.len() || a.updates.len() != b.updates.len() {
        return Err("different numbers of outputs or updates".into());
    }
    for ((na, ta), (nb, tb)) in pairs {
        if na != nb || ta.shape() != tb.shape() || ta.dtype() != tb.dtype() {
            return Err(format!("`{na}` and `{nb}` differ in name or type"));
        }
        for (i, (x, y)) in ta.to_f64_vec().into_iter().zip(tb.to_f64_vec()).enumerate() {
            let ok = match tol {
                None => x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                Some(t) => {
                    (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= t * (1.0 + x.abs())
                }
            };
            if !ok {
                return Err(format!("`{na}`[{i}]: {x} before, {y} after"));
            }
        }
    }
    Ok(())
}

fn eval(g: &Graph, feeds: &Feeds) -> Evaluation {
    run(g, feeds).unwrap_or_else(|e| panic!("interpreter: {e}"))
}

/// Every pass alone, the exact pipeline, the default pipeline and the plan of each.
fn check_everything(g: &Graph, feeds: &Feeds) -> Result<(), String> {
    let reference = eval(g, feeds);
    for name in PASS_NAMES {
        let r = pass_by_name(name, false)
            .unwrap()
            .run(g)
            .map_err(|e| e.to_string())?;
        r.graph.verify().map_err(|e| e.to_string())?;
        same(&reference, &eval(&r.graph, feeds), None).map_err(|e| format!("{name}: {e}"))?;
    }
    let (exact, _) = optimize(g, &PassOptions::exact()).map_err(|e| e.to_string())?;
    same(&reference, &eval(&exact, feeds), None).map_err(|e| format!("exact pipeline: {e}"))?;
    let (full, _) = optimize(g, &PassOptions::default()).map_err(|e| e.to_string())?;
    let full_eval = eval(&full, feeds);
    same(&reference, &full_eval, Some(TOLERANCE)).map_err(|e| format!("pipeline: {e}"))?;
    for opts in [
        PlanOptions::default(),
        PlanOptions {
            keep_all: true,
            ..PlanOptions::default()
        },
        PlanOptions {
            fuse: false,
            ..PlanOptions::default()
        },
    ] {
        let p = plan(&full, &opts);
        p.graph.verify().map_err(|e| e.to_string())?;
        check_memory_plan(&p.graph, &p.schedule, &p.memory).map_err(|e| e.to_string())?;
        same(&full_eval, &eval(&p.graph, feeds), None).map_err(|e| format!("plan: {e}"))?;
    }
    Ok(())
}

/// A random graph with a scalar `loss` (the sum of its first float output) and an SGD step on
/// its float parameters: a gradient graph of a random graph.
fn random_step(seed: u64) -> Option<Graph> {
    let g = random_graph(seed, 30);
    let first = g
        .outputs()
        .iter()
        .map(|&(_, id)| id)
        .find(|&id| g.ty(id).dtype.is_float())?;
    let params = float_parameters(&g);
    if params.is_empty() {
        return None;
    }
    let b = Builder::from_graph(g);
    let loss = b.tensor(first).sum_all();
    b.output("loss", loss);
    let g = b.finish();
    let loss = g.output("loss")?;
    training_step(g, loss, &params, &Optimizer::sgd(0.1))
        .ok()
        .map(|s| s.graph)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_graphs_compute_the_same_after_every_pass(seed in 0u64..1_000_000) {
        let g = random_graph(seed, 40);
        let feeds = random_feeds(&g, seed);
        check_everything(&g, &feeds).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn random_gradient_graphs_compute_the_same_after_every_pass(seed in 0u64..1_000_000) {
        let Some(g) = random_step(seed) else {
            return Ok(());
        };
        let feeds = random_feeds(&g, seed);
        check_everything(&g, &feeds).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn tiny_workload_steps_compute_the_same_after_every_pass() {
    use adjoint_workloads::*;
    let tiny = [
        mlp("W1", "mlp-small", &MlpConfig::tiny(), 0),
        resmlp_ln(&ResMlpConfig::tiny(), 0),
        gpt(&GptConfig::tiny(), 0),
    ];
    for w in &tiny {
        let (g, feeds) = common::step_graph(w);
        check_everything(&g, &feeds).unwrap_or_else(|e| panic!("{}: {e}", w.id));
    }
}

#[test]
fn the_w1_step_computes_the_same_after_the_pipeline() {
    let (g, feeds) = common::step_graph(&adjoint_workloads::w1_mlp_small(0));
    check_everything(&g, &feeds).unwrap();
}

/// Guards against a vacuous property test: the generators produce gradient graphs, and the
/// passes do rewrite the random graphs.
#[test]
fn the_random_cases_exercise_the_passes() {
    let steps = (0..20).filter_map(random_step).count();
    assert!(steps >= 5, "only {steps} of 20 seeds gave a gradient graph");
    let hits: usize = (0..20)
        .map(|s| {
            let (_, r) = optimize(&random_graph(s, 40), &PassOptions::default()).unwrap();
            r.stats.iter().map(|s| s.changes).sum::<usize>()
        })
        .sum();
    assert!(
        hits >= 20,
        "the passes changed only {hits} things in 20 random graphs"
    );
}
