//! The data-parallel acceptance check over MPI: one training step of W1 and of W3's structure
//! on every MPI rank, each fed its shard of a global batch, must leave every rank with the
//! same parameters, equal to those of one replica fed the whole batch within f32
//! summation-order rounding — on the interpreter and on compiled code.
//!
//! ```sh
//! cargo build --features mpi --example data_parallel_check
//! mpirun -np 2 target/debug/examples/data_parallel_check
//! ```
//!
//! Every rank computes the one-replica reference itself, checks its own parameters against it
//! and against rank 0's (broadcast), prints one line, and exits non-zero on a mismatch, which
//! fails the `mpirun` job. (`crates/adjoint-jit/tests/data_parallel.rs` is the same check on
//! in-process replicas.)

use adjoint::autodiff::{float_parameters, training_step, StepGraph};
use adjoint::interp::InterpStep;
use adjoint::ir::collective::broadcast_tensor;
use adjoint::ir::{Collective, Feeds, Graph, HostTensor, Step};
use adjoint::nn::MpiCollective;
use adjoint::workloads::{mlp, resmlp_ln, MlpConfig, ResMlpConfig, Workload};
use adjoint::{compile, Options};
use std::process::ExitCode;
use std::sync::Arc;

/// W1 at its benchmark sizes with `batch` rows.
fn w1(batch: usize) -> Workload {
    let cfg = MlpConfig {
        batch,
        ..MlpConfig::w1()
    };
    mlp("W1", "mlp-small", &cfg, 7)
}

/// W3's structure (layer norm, GELU, residuals, Adam) with `rows` rows.
fn w3(rows: usize) -> Workload {
    let cfg = ResMlpConfig {
        rows,
        width: 16,
        hidden: 32,
        blocks: 2,
    };
    resmlp_ln(&cfg, 7)
}

fn step_graph(w: &Workload, replicas: usize) -> StepGraph {
    let loss = w.graph.output("loss").expect("a loss output");
    let params = float_parameters(&w.graph);
    let opt = w.optimizer.clone().with_data_parallel(replicas);
    training_step(w.graph.clone(), loss, &params, &opt).expect("differentiable")
}

/// Rows `part·n/parts ..` of a tensor with `n` rows.
fn shard(t: &HostTensor, part: usize, parts: usize) -> HostTensor {
    let dims = t.shape().dims().to_vec();
    let rows = dims[0] / parts;
    let row = t.numel() / dims[0];
    let v = t.to_f64_vec()[part * rows * row..(part + 1) * rows * row].to_vec();
    let mut shape = dims;
    shape[0] = rows;
    HostTensor::from_f64_as(t.dtype(), shape, &v).expect("a shard")
}

/// One step of `graph` on `step` fed this rank's shard of `full`; the parameters afterwards.
fn one_step(
    mut step: impl Step,
    world: Option<&Arc<dyn Collective>>,
    state: &Feeds,
    full: &Feeds,
) -> Feeds {
    let (rank, size) = world.map_or((0, 1), |c| (c.rank(), c.size()));
    step.set_collective(world.cloned());
    let params: Feeds = step
        .param_types()
        .into_iter()
        .filter_map(|(n, _)| full.get(&n).map(|t| (n, t.clone())))
        .collect();
    step.set_params(&params).expect("parameters");
    step.set_params(state).expect("optimizer state");
    let inputs: Feeds = step
        .input_types()
        .into_iter()
        .map(|(n, _)| {
            let t = shard(&full[&n], rank, size);
            (n, t)
        })
        .collect();
    step.run(&inputs).expect("one step");
    step.params()
}

/// The largest difference beyond `2e-6 + 1e-4·|want|` between two parameter sets (0 when
/// every element is within it).
fn excess(got: &Feeds, want: &Feeds) -> f64 {
    let mut worst = 0.0f64;
    for (name, w) in want {
        let g = got
            .get(name)
            .map(HostTensor::to_f64_vec)
            .unwrap_or_default();
        let w = w.to_f64_vec();
        if g.len() != w.len() {
            return f64::INFINITY;
        }
        for (a, b) in g.iter().zip(&w) {
            worst = worst.max((a - b).abs() - (2e-6 + 1e-4 * b.abs()));
        }
    }
    worst.max(0.0)
}

/// Whether `mine` equals rank 0's parameters bit for bit. Every rank broadcasts every
/// tensor, in the map's (sorted) order, so the calls match on all ranks.
fn same_as_root(world: &Arc<dyn Collective>, mine: &Feeds) -> bool {
    let mut equal = true;
    for t in mine.values() {
        let mut root = t.clone();
        broadcast_tensor(&**world, &mut root, 0).expect("broadcast");
        equal &= root == *t;
    }
    equal
}

fn check(
    what: &str,
    make: fn(usize) -> Workload,
    batch: usize,
    world: &Arc<dyn Collective>,
) -> bool {
    let n = world.size();
    let full = make(batch);
    let reference_graph = step_graph(&full, 1);
    let state = reference_graph.initial_state();
    let one = |g: Graph| InterpStep::new(g).expect("verifies");
    let reference = one_step(one(reference_graph.graph), None, &state, &full.feeds);
    let graph = step_graph(&make(batch / n), n).graph;
    let interp = one_step(one(graph.clone()), Some(world), &state, &full.feeds);
    let jit_step = compile(&graph, &Options::default()).expect("compiles");
    let jit = one_step(jit_step, Some(world), &state, &full.feeds);
    let mut ok = true;
    for (engine, params) in [("interp", &interp), ("jit", &jit)] {
        let beyond = excess(params, &reference);
        let equal = same_as_root(world, params);
        let verdict = if beyond == 0.0 && equal {
            "ok"
        } else {
            "MISMATCH"
        };
        println!(
            "rank {}/{n}: {what} {engine}: one step on {} of {batch} rows: {verdict} \
             (beyond rounding {beyond:e}, equal to rank 0: {equal})",
            world.rank(),
            batch / n
        );
        ok &= beyond == 0.0 && equal;
    }
    ok
}

fn main() -> ExitCode {
    let world: Arc<dyn Collective> = match MpiCollective::init() {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("data_parallel_check: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !64usize.is_multiple_of(world.size()) || !8usize.is_multiple_of(world.size()) {
        eprintln!("data_parallel_check: run on 1, 2, 4 or 8 ranks (they split batches of 8)");
        return ExitCode::FAILURE;
    }
    // Both checks run on every rank whatever the first found (`&`, not `&&`), so the ranks
    // make the same collective calls.
    let ok = check("W1", w1, 64, &world) & check("W3", w3, 8, &world);
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
