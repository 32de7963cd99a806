//! Data-parallel training steps: one step of W1 and of W3 on two replicas (threads of one
//! process, each fed half of a global batch of B rows) gives the same parameters as one
//! replica fed all B rows, within f32 summation-order rounding, on the interpreter and on
//! compiled code; and the gradients are reduced in buckets.

use adjoint_autodiff::{training_step, DataParallel, Optimizer, StepGraph};
use adjoint_interp::InterpStep;
use adjoint_ir::{Collective, Feeds, Graph, HostTensor, InProcess, Op, Step};
use adjoint_jit::{compile, Options};
use adjoint_workloads::{mlp, resmlp_ln, MlpConfig, ResMlpConfig, Workload};
use std::sync::Arc;

const REPLICAS: usize = 2;

/// W1 at its benchmark sizes with `batch` rows.
fn w1(batch: usize) -> Workload {
    let cfg = MlpConfig {
        batch,
        ..MlpConfig::w1()
    };
    mlp("W1", "mlp-small", &cfg, 7)
}

/// W3's structure (layer norm, GELU, residuals, Adam) at a size the interpreter runs quickly.
fn w3(rows: usize) -> Workload {
    let cfg = ResMlpConfig {
        rows,
        width: 16,
        hidden: 32,
        blocks: 2,
    };
    resmlp_ln(&cfg, 7)
}

/// The workload's training step, as one replica of `replicas` (bucketed by `bucket_bytes`).
fn step_graph(w: &Workload, dp: Option<DataParallel>) -> StepGraph {
    let loss = w.graph.output("loss").unwrap();
    let params = adjoint_autodiff::float_parameters(&w.graph);
    let mut opt: Optimizer = w.optimizer.clone();
    if let Some(dp) = dp {
        opt = opt.with_data_parallel_options(dp);
    }
    training_step(w.graph.clone(), loss, &params, &opt).unwrap()
}

/// Rows `part·n/parts .. (part+1)·n/parts` of a tensor whose first axis has `n` rows.
fn shard(t: &HostTensor, part: usize, parts: usize) -> HostTensor {
    let dims = t.shape().dims().to_vec();
    let rows = dims[0] / parts;
    let row = t.numel() / dims[0];
    let v = t.to_f64_vec()[part * rows * row..(part + 1) * rows * row].to_vec();
    let mut shape = dims;
    shape[0] = rows;
    HostTensor::from_f64_as(t.dtype(), shape, &v).unwrap()
}

/// Runs one step of `graph` on each replica: parameters and optimizer state from `full`
/// (the one-replica workload's feeds), each input its replica's shard of `full`'s. Returns
/// each replica's parameters afterwards.
fn run<S: Step + Send>(
    graph: &Graph,
    state: &Feeds,
    full: &Feeds,
    replicas: usize,
    make: &(dyn Fn(Graph) -> S + Sync),
) -> Vec<Feeds> {
    let group = InProcess::group(replicas);
    std::thread::scope(|s| {
        let jobs: Vec<_> = group
            .into_iter()
            .enumerate()
            .map(|(r, c)| {
                s.spawn(move || {
                    let mut step = make(graph.clone());
                    step.set_collective(Some(Arc::new(c) as Arc<dyn Collective>));
                    step.set_params(&params_of(&step, full)).unwrap();
                    step.set_params(state).unwrap();
                    let inputs: Feeds = step
                        .input_types()
                        .into_iter()
                        .map(|(n, _)| {
                            let t = shard(&full[&n], r, replicas);
                            (n, t)
                        })
                        .collect();
                    step.run(&inputs).unwrap();
                    step.params()
                })
            })
            .collect();
        jobs.into_iter().map(|j| j.join().unwrap()).collect()
    })
}

/// The entries of `feeds` naming parameters of `step`.
fn params_of(step: &impl Step, feeds: &Feeds) -> Feeds {
    step.param_types()
        .into_iter()
        .filter_map(|(n, _)| feeds.get(&n).map(|t| (n, t.clone())))
        .collect()
}

fn assert_close(what: &str, got: &Feeds, want: &Feeds) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (name, w) in want {
        let (g, w) = (got[name].to_f64_vec(), w.to_f64_vec());
        for (i, (a, b)) in g.iter().zip(&w).enumerate() {
            assert!(
                (a - b).abs() <= 2e-6 + 1e-4 * b.abs(),
                "{what}: {name}[{i}] is {a} on 2 replicas, {b} on one"
            );
        }
    }
}

/// One step of `make_workload(B)` on one replica against `make_workload(B/2)` on two.
fn check_workload(what: &str, make_workload: fn(usize) -> Workload, batch: usize) {
    let full = make_workload(batch);
    let one = step_graph(&full, None);
    let half = make_workload(batch / REPLICAS);
    let two = step_graph(&half, Some(DataParallel::new(REPLICAS)));
    let state = two.initial_state();
    let interp = |g: Graph| InterpStep::new(g).unwrap();
    let jit = |g: Graph| compile(&g, &Options::default()).unwrap();
    let reference = run(&one.graph, &state, &full.feeds, 1, &interp).remove(0);
    let engines: [(&str, Vec<Feeds>); 2] = [
        (
            "interp",
            run(&two.graph, &state, &full.feeds, REPLICAS, &interp),
        ),
        ("jit", run(&two.graph, &state, &full.feeds, REPLICAS, &jit)),
    ];
    for (engine, replicas) in engines {
        // Every replica holds exactly the same parameters...
        assert_eq!(replicas[0], replicas[1], "{what} {engine}");
        // ...which are those of one replica on the whole batch.
        assert_close(&format!("{what} {engine}"), &replicas[0], &reference);
    }
    // And the one-replica step compiled agrees too (the oracle's own check).
    let compiled = run(&one.graph, &state, &full.feeds, 1, &jit).remove(0);
    assert_close(&format!("{what} one replica jit"), &compiled, &reference);
}

#[test]
fn w1_on_two_replicas_matches_one_replica_on_the_whole_batch() {
    check_workload("W1", w1, 64);
}

#[test]
fn w3_on_two_replicas_matches_one_replica_on_the_whole_batch() {
    check_workload("W3", w3, 8);
}

fn all_reduces(g: &Graph) -> usize {
    g.node_ids()
        .filter(|&id| matches!(g.op(id), Op::AllReduce { .. }))
        .count()
}

#[test]
fn gradients_are_reduced_in_buckets() {
    let w = w3(4);
    let params = adjoint_autodiff::float_parameters(&w.graph).len();
    let bucketed = step_graph(&w, Some(DataParallel::new(REPLICAS)));
    assert_eq!(
        all_reduces(&bucketed.graph),
        1,
        "W3's gradients fit one bucket"
    );
    let each = DataParallel {
        replicas: REPLICAS,
        bucket_bytes: 0,
    };
    assert_eq!(all_reduces(&step_graph(&w, Some(each)).graph), params);
    // 1 KiB buckets: a.w (16x32 f32, 2 KiB) and b.w get buckets of their own, the vectors
    // share; fewer calls than parameters, more than one.
    let small = DataParallel {
        replicas: REPLICAS,
        bucket_bytes: 1024,
    };
    let n = all_reduces(&step_graph(&w, Some(small)).graph);
    assert!(n > 1 && n < params, "{n} buckets for {params} parameters");
    // One replica: no collective at all.
    assert_eq!(
        all_reduces(&step_graph(&w, Some(DataParallel::new(1))).graph),
        0
    );
}
