//! `adjoint bench`: time whole training steps of the W1–W4 workloads.

use super::CliError;
use adjoint::bench::{run_bench, BenchConfig, Mode};

/// Options of `adjoint bench`.
pub struct BenchOptions {
    /// `W1` … `W4`, or `all`.
    pub workload: String,
    /// A mode name, or `all`.
    pub mode: String,
    /// Precision of products and activations.
    pub precision: adjoint::autodiff::Precision,
    /// Keep 16-bit results in f32 inside kernels (`Options::excess_precision`).
    pub excess_precision: bool,
    /// Threads, already resolved (at least 1, at most the cores).
    pub threads: usize,
    /// Untimed warm-up steps, already validated.
    pub warmup: usize,
    /// Timed steps (at least 1), already validated.
    pub steps: usize,
    /// Seed of data and parameters.
    pub seed: u64,
    /// One JSON object per line instead of a table.
    pub json: bool,
    /// Budget for the compiled steps' arena.
    pub memory_budget: Option<adjoint::MemoryBudget>,
}

/// Runs the requested benchmarks, printing one line per (workload, mode).
pub fn bench(opts: &BenchOptions) -> Result<(), CliError> {
    let ids: Vec<&str> = if opts.workload.eq_ignore_ascii_case("all") {
        vec!["W1", "W2", "W3", "W4"]
    } else {
        vec![opts.workload.as_str()]
    };
    let modes: Vec<Mode> = if opts.mode == "all" {
        Mode::ALL.to_vec()
    } else {
        let mode = Mode::parse(&opts.mode).ok_or_else(|| {
            CliError::general(format!(
                "unknown mode `{}` (expected interp, jit-unfused, jit-fused or all)",
                opts.mode
            ))
        })?;
        vec![mode]
    };
    let config = BenchConfig {
        warmup: opts.warmup,
        steps: opts.steps,
        threads: opts.threads,
        seed: opts.seed,
        memory_budget: opts.memory_budget,
        precision: opts.precision,
        excess_precision: opts.excess_precision,
    };
    if !opts.json {
        println!("{}", legend(&config));
    }
    for id in ids {
        let workload = adjoint::workloads::by_id(id, config.seed).ok_or_else(|| {
            CliError::general(format!(
                "unknown workload `{id}` (expected W1, W2, W3, W4 or all)"
            ))
        })?;
        for &mode in &modes {
            let result = run_bench(&workload, mode, &config)
                .map_err(|e| CliError::general(format!("{id} {}: {e}", mode.name())))?;
            if opts.json {
                println!("{}", result.to_json());
            } else {
                println!("{result}");
            }
        }
    }
    Ok(())
}

/// The header of the table: what each column is and its unit.
fn legend(config: &BenchConfig) -> String {
    format!(
        "# one line per workload and mode; {} untimed warm-up steps, then {} timed steps\n\
         # compile: ms to compile the training step  step median (min): µs per whole training \
         step (forward, backward, update)\n\
         # GFLOP/s: the workload's matmul FLOPs per step / median step time  kernels: compiled \
         kernels  arena: bytes of the step's memory plan  loss: first -> last timed step",
        config.warmup, config.steps
    ) + &config.memory_budget.map_or_else(String::new, |b| {
        format!(
            "\n# memory budget {b}: the compiled steps recompute forward values to fit their \
             arena in it"
        )
    }) + if config.excess_precision {
        ""
    } else {
        "\n# no excess precision: every 16-bit result is rounded, as the interpreter does"
    }
}
