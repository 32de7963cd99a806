//! The W1–W4 workloads at test size: forward graphs and whole training steps (forward,
//! backward, optimizer update) compiled and compared with the interpreter over several steps.

mod common;

use adjoint_ir::{Feeds, Graph, Step};
use adjoint_workloads::{gpt, mlp, resmlp_ln, GptConfig, MlpConfig, ResMlpConfig, Workload};
use common::{assert_close, check_graph, modes, run_jit};

fn tiny_workloads() -> Vec<Workload> {
    vec![
        mlp("W1", "mlp-small", &MlpConfig::tiny(), 1),
        mlp("W2", "mlp-wide", &MlpConfig::tiny(), 2),
        resmlp_ln(&ResMlpConfig::tiny(), 3),
        gpt(&GptConfig::tiny(), 4),
    ]
}

/// The training step of a workload and feeds for its inputs, parameters and optimizer state.
fn step_graph(w: &Workload) -> (Graph, Feeds) {
    let t = w.training_step();
    (t.step.graph, t.feeds)
}

#[test]
fn forward_graphs_match_the_interpreter() {
    for w in tiny_workloads() {
        check_graph(&w.graph, &w.feeds);
    }
}

#[test]
fn training_steps_match_the_interpreter_over_three_steps() {
    for w in tiny_workloads() {
        let (g, feeds) = step_graph(&w);
        for opts in modes() {
            let mode = format!("{} fusion {} threads {}", w.id, opts.fusion, opts.threads);
            let (mut step, _) = run_jit(&g, &feeds, &opts);
            // The interpreter replays the same steps from the same start.
            let mut interp_feeds = feeds.clone();
            let mut want = adjoint_interp::run(&g, &interp_feeds).unwrap();
            for k in 0..3 {
                if k > 0 {
                    for (name, t) in &want.updates {
                        interp_feeds.insert(name.clone(), t.clone());
                    }
                    want = adjoint_interp::run(&g, &interp_feeds).unwrap();
                    let out = step.run_feeds(&w.feeds).unwrap();
                    assert_close(
                        &format!("{mode} step {k} loss"),
                        out.output("loss").unwrap(),
                        want.output("loss").unwrap(),
                    );
                }
                for (name, t) in &want.updates {
                    let got = step.param(name).unwrap();
                    assert_close(&format!("{mode} step {k} {name}"), &got, t);
                }
            }
        }
    }
}
