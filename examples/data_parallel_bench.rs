//! Step time of a benchmark workload trained data parallel: one compiled training step per
//! replica, each fed its shard of a global batch, gradients averaged in the step.
//!
//! ```sh
//! cargo run --release --example data_parallel_bench -- --workload w2 --replicas 2
//! cargo build --release --features mpi --example data_parallel_bench
//! mpirun -np 2 target/release/examples/data_parallel_bench --workload w2 --mpi
//! ```
//!
//! Prints the wall time per step on rank 0: the replicas meet at a barrier, run `--warmup`
//! steps, meet again, then run `--steps` steps, timed from the second barrier to the end of
//! the last step. Each compiled step uses `--threads` threads (default 1). The global batch
//! is the workload's (W1 64, W2 128, W3 256 rows) unless `--batch` sets it; every replica
//! gets an equal share.

use adjoint::autodiff::{float_parameters, training_step};
use adjoint::ir::{Collective, Feeds, InProcess, Op};
use adjoint::workloads::{mlp, resmlp_ln, MlpConfig, ResMlpConfig, Workload};
use adjoint::{compile, Options};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

struct Args {
    workload: String,
    replicas: usize,
    mpi: bool,
    steps: usize,
    warmup: usize,
    threads: usize,
    /// The global batch (`None`: the workload's).
    batch: Option<usize>,
}

const USAGE: &str = "usage: data_parallel_bench [--workload w1|w2|w3] [--replicas N | --mpi] \
[--steps N] [--warmup N] [--threads N] [--batch N]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        workload: "w2".into(),
        replicas: 1,
        mpi: false,
        steps: 50,
        warmup: 5,
        threads: 1,
        batch: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        let mut number = |flag: &str| -> Result<usize, String> {
            let v = value()?;
            v.parse()
                .map_err(|_| format!("{flag}: `{v}` is not a whole number"))
        };
        match flag.as_str() {
            "--workload" => args.workload = value()?,
            "--replicas" => args.replicas = number("--replicas")?.max(1),
            "--steps" => args.steps = number("--steps")?.max(1),
            "--warmup" => args.warmup = number("--warmup")?,
            "--threads" => args.threads = number("--threads")?,
            "--batch" => args.batch = Some(number("--batch")?.max(1)),
            "--mpi" => args.mpi = true,
            _ => return Err(USAGE.into()),
        }
    }
    Ok(args)
}

/// The workload with `rows` rows per replica.
fn workload(name: &str, rows: usize) -> Result<Workload, String> {
    Ok(match name {
        "w1" => mlp(
            "W1",
            "mlp-small",
            &MlpConfig {
                batch: rows,
                ..MlpConfig::w1()
            },
            0,
        ),
        "w2" => mlp(
            "W2",
            "mlp-wide",
            &MlpConfig {
                batch: rows,
                ..MlpConfig::w2()
            },
            0,
        ),
        "w3" => resmlp_ln(
            &ResMlpConfig {
                rows,
                ..ResMlpConfig::default()
            },
            0,
        ),
        other => return Err(format!("unknown workload `{other}`\n{USAGE}")),
    })
}

fn global_batch(args: &Args) -> usize {
    if let Some(b) = args.batch {
        return b;
    }
    match args.workload.as_str() {
        "w1" => MlpConfig::w1().batch,
        "w2" => MlpConfig::w2().batch,
        _ => ResMlpConfig::default().rows,
    }
}

/// Runs the benchmark as one replica of `world`; returns the seconds per step and the number
/// of all-reduces a step makes.
fn replica(args: &Args, world: Arc<dyn Collective>) -> Result<(f64, usize), String> {
    let n = world.size();
    let batch = global_batch(args);
    if !batch.is_multiple_of(n) {
        return Err(format!("{n} replicas do not divide the batch of {batch}"));
    }
    let w = workload(&args.workload, batch / n)?;
    let loss = w.graph.output("loss").ok_or("no loss output")?;
    let opt = w.optimizer.clone().with_data_parallel(n);
    let step = training_step(w.graph.clone(), loss, &float_parameters(&w.graph), &opt)
        .map_err(|e| e.to_string())?;
    let calls = step
        .graph
        .node_ids()
        .filter(|&id| matches!(step.graph.op(id), Op::AllReduce { .. }))
        .count();
    let options = Options {
        threads: args.threads,
        ..Options::default()
    };
    let mut compiled = compile(&step.graph, &options).map_err(|e| e.to_string())?;
    compiled.set_collective(Some(Arc::clone(&world)));
    compiled.set_params(&w.feeds).map_err(|e| e.to_string())?;
    compiled
        .set_params(&step.initial_state())
        .map_err(|e| e.to_string())?;
    let inputs: Feeds = compiled.input_feeds(&w.feeds);
    let sync = |c: &Arc<dyn Collective>| c.barrier().map_err(|e| e.to_string());
    sync(&world)?;
    for _ in 0..args.warmup {
        compiled.run(&inputs).map_err(|e| e.to_string())?;
    }
    sync(&world)?;
    let t = Instant::now();
    for _ in 0..args.steps {
        compiled.run(&inputs).map_err(|e| e.to_string())?;
    }
    let per_step = t.elapsed().as_secs_f64() / args.steps as f64;
    // Keep the parameters honest: every replica must end with rank 0's.
    let name = &step.params.first().ok_or("no trained parameter")?.name;
    let mut check = compiled.param(name).ok_or("no parameter value")?;
    let mine = check.clone();
    adjoint::ir::collective::broadcast_tensor(&*world, &mut check, 0).map_err(|e| e.to_string())?;
    if check != mine {
        return Err("the replicas' parameters differ".into());
    }
    Ok((per_step, calls))
}

#[cfg(feature = "mpi")]
fn mpi_world() -> Result<Arc<dyn Collective>, String> {
    Ok(Arc::new(
        adjoint::nn::MpiCollective::init().map_err(|e| e.to_string())?,
    ))
}

#[cfg(not(feature = "mpi"))]
fn mpi_world() -> Result<Arc<dyn Collective>, String> {
    Err("--mpi needs a build with --features mpi".into())
}

fn run(args: &Args) -> Result<(), String> {
    let ((per_step, calls), n, how) = if args.mpi {
        let world = mpi_world()?;
        let n = world.size();
        let rank = world.rank();
        let s = replica(args, world)?;
        if rank != 0 {
            return Ok(());
        }
        (s, n, "MPI ranks")
    } else {
        let group = InProcess::group(args.replicas);
        let results: Vec<Result<(f64, usize), String>> = std::thread::scope(|s| {
            let jobs: Vec<_> = group
                .into_iter()
                .map(|c| s.spawn(move || replica(args, Arc::new(c))))
                .collect();
            jobs.into_iter()
                .map(|j| {
                    j.join()
                        .unwrap_or_else(|_| Err("a replica panicked".into()))
                })
                .collect()
        });
        let mut first = None;
        for r in results {
            first.get_or_insert(r?);
        }
        (
            first.expect("one replica"),
            args.replicas,
            "in-process replicas",
        )
    };
    let batch = global_batch(args);
    println!(
        "{}: global batch {batch} on {n} {how} ({} rows each, {} thread(s) per step): \
         {:.3} ms per step over {} steps, {calls} all-reduce(s) per step",
        args.workload.to_uppercase(),
        batch / n,
        args.threads,
        per_step * 1e3,
        args.steps
    );
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(|a| run(&a)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("data_parallel_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
