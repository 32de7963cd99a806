//! `Options::memory_budget`: a 64-block residual MLP compiled under half the keep-everything
//! arena and under half the default arena trains like the keep-everything step and like the
//! interpreter, within the budget; a budget below every plan is a clear error.

mod common;

use adjoint_ir::{Feeds, Graph, HostTensor, Step};
use adjoint_jit::{compile, JitError, Options};
use adjoint_workloads::{resmlp_ln, ResMlpConfig};
use common::assert_close;

const BLOCKS: usize = 64;
const STEPS: usize = 4;

/// The training step of a 64-block residual MLP (Adam) and feeds for everything it reads.
fn deep_step() -> (Graph, Feeds) {
    let cfg = ResMlpConfig {
        rows: 32,
        width: 8,
        hidden: 16,
        blocks: BLOCKS,
    };
    let t = resmlp_ln(&cfg, 7).training_step();
    (t.step.graph, t.feeds)
}

fn options(budget: Option<usize>, keep_all: bool) -> Options {
    Options {
        cache: false,
        threads: 1,
        keep_all,
        memory_budget: budget,
        ..Options::default()
    }
}

/// Losses of `STEPS` steps, and the parameters after them.
fn train(g: &Graph, feeds: &Feeds, opts: &Options) -> (Vec<HostTensor>, Feeds, usize) {
    let mut step = compile(g, opts).unwrap_or_else(|e| panic!("compiling: {e}"));
    step.set_params(feeds).unwrap();
    let mut losses = Vec::new();
    for _ in 0..STEPS {
        let out = step.run_feeds(feeds).unwrap();
        losses.push(out.output("loss").unwrap().clone());
    }
    let mut params = Feeds::new();
    for &p in g.parameters() {
        let name = g.leaf_name(p).unwrap();
        params.insert(name.to_string(), step.param(name).unwrap());
    }
    (losses, params, step.stats().arena_bytes)
}

#[test]
fn a_deep_residual_mlp_trains_the_same_within_half_the_arena() {
    let (g, feeds) = deep_step();
    let (keep_losses, keep_params, keep_arena) = train(&g, &feeds, &options(None, true));
    let (_, _, default_arena) = train(&g, &feeds, &options(None, false));
    // The interpreter replays the same steps.
    let mut interp_feeds = feeds.clone();
    let mut interp_losses = Vec::new();
    for _ in 0..STEPS {
        let r = adjoint_interp::run(&g, &interp_feeds).unwrap();
        interp_losses.push(r.output("loss").unwrap().clone());
        for (name, t) in &r.updates {
            interp_feeds.insert(name.clone(), t.clone());
        }
    }
    // Half the keep-everything arena, then half of what the default plan needs (which takes
    // checkpointing segments of the residual stream).
    for budget in [keep_arena / 2, default_arena / 2] {
        let (losses, params, arena) = train(&g, &feeds, &options(Some(budget), false));
        assert!(arena <= budget, "arena {arena} over the budget {budget}");
        for (k, ((got, keep), interp)) in losses
            .iter()
            .zip(&keep_losses)
            .zip(&interp_losses)
            .enumerate()
        {
            assert_close(
                &format!("budget {budget} step {k} loss vs keep-all"),
                got,
                keep,
            );
            assert_close(
                &format!("budget {budget} step {k} loss vs interp"),
                got,
                interp,
            );
        }
        for (name, t) in &params {
            assert_close(&format!("budget {budget} {name}"), t, &keep_params[name]);
        }
    }
    assert!(
        losses_fall(&keep_losses),
        "the model trains: {keep_losses:?}"
    );
}

fn losses_fall(losses: &[HostTensor]) -> bool {
    let v: Vec<f64> = losses.iter().map(|t| t.to_f64_vec()[0]).collect();
    v.last() < v.first()
}

#[test]
fn a_budget_below_every_plan_is_an_error_naming_the_smallest_arena() {
    let (g, _) = deep_step();
    let err = compile(&g, &options(Some(1024), false))
        .err()
        .expect("no 64-block plan fits in 1 KiB");
    match &err {
        JitError::OverBudget {
            budget,
            smallest,
            keep_all,
        } => {
            assert_eq!(*budget, 1024);
            assert!(smallest > budget && smallest < keep_all, "{err}");
            // The smallest arena reached does compile under a budget of exactly that size.
            let step = compile(&g, &options(Some(*smallest), false)).unwrap();
            assert!(step.stats().arena_bytes <= *smallest);
        }
        other => panic!("expected OverBudget, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("memory budget of 1024 bytes"), "{text}");
    assert!(text.contains("smallest arena"), "{text}");
}
