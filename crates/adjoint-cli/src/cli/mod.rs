//! Command-line definition and dispatch.

mod autodiff_cmds;
mod bench_cmd;
mod error;
mod feeds;
mod graph_cmds;
mod jit_cmds;
mod numbers;
mod opt_cmds;
mod profile_cmd;

use clap::{Args, Parser, Subcommand};
pub use error::CliError;
use std::path::PathBuf;

/// Adjoint: a tensor-graph compiler with a JIT-compiled backward pass.
#[derive(Parser, Debug)]
#[command(name = "adjoint", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How `bench` and `profile` run a compiled step: threads, warm-up and measured runs, seed.
#[derive(Args, Debug)]
pub struct Runs {
    /// Threads of the compiled step, or `0` / `all` for every core; more than the cores is
    /// capped at the core count.
    #[arg(long, default_value = "1", value_parser = numbers::parse_threads, allow_negative_numbers = true)]
    threads: usize,
    /// Untimed warm-up steps (0 to 1000000).
    #[arg(long, default_value_t = 3, value_parser = numbers::parse_warmup, allow_negative_numbers = true)]
    warmup: usize,
    /// Timed (or profiled) steps (1 to 1000000).
    #[arg(long, default_value_t = 20, value_parser = numbers::parse_steps, allow_negative_numbers = true)]
    steps: usize,
    /// Seed of the workload's data and parameters (or of a graph file's random feeds).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Parse and verify a graph, then print it in the text format.
    Dump {
        /// A graph in the `.adj` text format.
        file: PathBuf,
    },
    /// Write a graph as Graphviz DOT.
    Dot {
        /// A graph in the `.adj` text format.
        file: PathBuf,
        /// Where to write the DOT (standard output if absent).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Evaluate a graph with the reference interpreter and print its outputs and updates.
    Run {
        /// A graph in the `.adj` text format.
        file: PathBuf,
        /// A feed `NAME=V1,V2,...` (row-major, as many values as the shape holds; a scalar
        /// takes one) or `NAME=random`. Repeat for each input and parameter.
        #[arg(long = "feed", value_name = "NAME=VALUES")]
        feeds: Vec<String>,
        /// Fill every input and parameter not given with `--feed` with seeded random data
        /// (floats standard normal, i32 uniform in `0..--int-bound`, bools fair).
        #[arg(long)]
        random: bool,
        /// Seed for random feeds.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Exclusive upper bound of random i32 feeds (1 to 2147483648, so that every value
        /// is an i32).
        #[arg(long, default_value_t = 10, value_parser = numbers::parse_int_bound, allow_negative_numbers = true)]
        int_bound: u32,
        /// Print at most this many values per tensor.
        #[arg(long, default_value_t = 16)]
        max_values: usize,
        /// Run the graph compiled by the JIT instead of interpreted, then compare the two:
        /// any difference is reported and makes the exit status 1.
        #[arg(long)]
        jit: bool,
    },
    /// Parse and verify a graph (errors at FILE:LINE:COL), then run it with the interpreter
    /// and compiled in each of the fuzzer's configurations (fused and unfused, 1 and 2
    /// threads, host and generated matmuls) on the fuzzer's random feeds, and report every
    /// differing output or update (exit status 1 on a difference).
    Check {
        /// A graph in the `.adj` text format.
        file: PathBuf,
        /// Seed of the random feeds (the fuzzer's reproducers fail with seed 0).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Only parse and verify.
        #[arg(long)]
        verify_only: bool,
    },
    /// Differential fuzzing: random graphs and their training steps, compiled in every
    /// configuration with guard pages and IR checks, against the interpreter. Failing graphs
    /// are minimized and written as `.adj` reproducers (exit status 1).
    Fuzz {
        /// Cases to run (each is a graph and its training step), 1 to 1000000000.
        #[arg(long, default_value_t = 300, value_parser = numbers::parse_cases, allow_negative_numbers = true)]
        cases: u64,
        /// Which block of case numbers (cases start at SEED · 1000000).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Where reproducers (and `last.adj`, the graph being checked) are written.
        #[arg(long, default_value = "adjoint-fuzz")]
        out: PathBuf,
    },
    /// Write a benchmark workload's graph (W1, W2, W3, W4) in the text format.
    Workload {
        /// `W1` … `W4` or a workload name (`mlp-small`, …).
        id: String,
        /// The whole training step (forward, gradients, optimizer update) instead of the
        /// forward graph.
        #[arg(long)]
        step: bool,
        /// Precision of the training step's products and activations (with `--step`):
        /// `f32`, `bf16` or `f16`.
        #[arg(long, default_value = "f32")]
        precision: adjoint::autodiff::Precision,
        /// Where to write it (standard output if absent).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Time whole training steps (forward, backward, optimizer update) of the benchmark
    /// workloads; print a line (or a JSON object) per workload and mode.
    Bench {
        /// `W1`, `W2`, `W3`, `W4` or `all`.
        #[arg(long, default_value = "all")]
        workload: String,
        /// `interp`, `jit-unfused`, `jit-fused` or `all`.
        #[arg(long, default_value = "all")]
        mode: String,
        /// Precision of products and activations: `f32`, `bf16` or `f16` (f16 with dynamic
        /// loss scaling); parameters and the optimizer stay f32.
        #[arg(long, default_value = "f32")]
        precision: adjoint::autodiff::Precision,
        /// Round every 16-bit result as the interpreter does, instead of keeping results
        /// inside a kernel in f32 until they are stored (`Options::excess_precision`).
        #[arg(long)]
        no_excess_precision: bool,
        #[command(flatten)]
        runs: Runs,
        /// Print one JSON object per line.
        #[arg(long)]
        json: bool,
        /// Budget for the compiled step's arena: bytes (`1048576`, `64MiB`, `1.5GB`) or a
        /// fraction of the keep-everything arena (`0.5x`); forward values are recomputed in
        /// the backward to fit it.
        #[arg(long, value_parser = numbers::parse_memory_budget, allow_hyphen_values = true)]
        memory_budget: Option<adjoint::MemoryBudget>,
    },
    /// Profile a compiled step: time per kernel, its share, and its rate (GFLOP/s for matmul
    /// kernels, against the machine's matmul rate measured now; GB/s of compulsory traffic for
    /// the others), from the most expensive down.
    Profile {
        /// A workload (`W1` … `W4`: its whole training step) or a graph in the `.adj` text
        /// format (fed seeded random data).
        target: String,
        /// One kernel per node instead of fusion groups.
        #[arg(long)]
        no_fusion: bool,
        /// Precision of a workload's products and activations: `f32`, `bf16` or `f16` (f16
        /// with dynamic loss scaling).
        #[arg(long, default_value = "f32")]
        precision: adjoint::autodiff::Precision,
        /// Round every 16-bit result as the interpreter does, instead of keeping results
        /// inside a kernel in f32 until they are stored (`Options::excess_precision`).
        #[arg(long)]
        no_excess_precision: bool,
        #[command(flatten)]
        runs: Runs,
        /// Show only the N most expensive kernels (0: all).
        #[arg(long, default_value_t = 0)]
        top: usize,
        /// Also print the kernel IR (the loop nests the JIT generated code for).
        #[arg(long)]
        kernels: bool,
        /// One line per loop nest instead of per kernel (a matmul kernel's product and its
        /// epilogue apart; names `k3_matmul_n0`, as in `--kernels`).
        #[arg(long)]
        nests: bool,
    },
    /// Differentiate: print the graph with the gradients of LOSS with respect to the WRT nodes
    /// appended (outputs `NAME.grad`).
    Grad {
        /// A graph in the `.adj` text format.
        file: PathBuf,
        /// The scalar loss: an output, input, parameter or label name.
        #[arg(long)]
        loss: String,
        /// Comma-separated names to differentiate with respect to.
        #[arg(long, value_delimiter = ',', required = true)]
        wrt: Vec<String>,
        /// Where to write it (standard output if absent).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Check gradients against central finite differences in f64, with seeded random feeds.
    Gradcheck {
        /// A graph in the `.adj` text format.
        file: PathBuf,
        /// The scalar loss.
        #[arg(long)]
        loss: String,
        /// Comma-separated inputs or parameters to check.
        #[arg(long, value_delimiter = ',', required = true)]
        wrt: Vec<String>,
        /// Seed of the random feeds.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Largest relative error that passes: a finite number greater than 0.
        #[arg(long, default_value_t = 1e-6, value_parser = numbers::parse_tolerance, allow_hyphen_values = true)]
        tolerance: f64,
    },
    /// Run the optimization passes and print the optimized graph (and per-pass statistics on
    /// standard error).
    Opt {
        /// A graph in the `.adj` text format.
        file: PathBuf,
        /// Comma-separated passes to run (default: fold,simplify,cse,dce).
        #[arg(long)]
        passes: Option<String>,
        /// Print the graph after every pass, to standard error.
        #[arg(long)]
        print_after_all: bool,
        /// Dump the graph after every pass (text and DOT) into this directory.
        #[arg(long)]
        dump: Option<PathBuf>,
    },
    /// Optimize and plan: print the fusion groups, the keep/recompute decisions and the memory
    /// plan.
    Plan {
        /// A graph in the `.adj` text format.
        file: PathBuf,
        /// One kernel per node instead of fusion groups.
        #[arg(long)]
        no_fusion: bool,
        /// Keep every forward value the backward reads (no rematerialization).
        #[arg(long)]
        keep_all: bool,
        /// Also write the fused graph as DOT, one cluster per kernel, to this file.
        #[arg(long)]
        dot: Option<PathBuf>,
        /// Also compile the graph and print the kernel IR: the loop nests the JIT generates
        /// code for.
        #[arg(long)]
        kernels: bool,
        /// Budget for the arena: bytes (`1048576`, `64MiB`, `1.5GB`) or a fraction of the
        /// keep-everything arena (`0.5x`); the plan recomputes forward values in the backward
        /// to fit it and reports each decision and the extremes.
        #[arg(long, value_parser = numbers::parse_memory_budget, allow_hyphen_values = true)]
        memory_budget: Option<adjoint::MemoryBudget>,
    },
}

/// Parses the command line and runs the command.
pub fn main() -> Result<(), CliError> {
    let cli = Cli::parse();
    match cli.command {
        Command::Dump { file } => graph_cmds::dump(&file),
        Command::Dot { file, output } => graph_cmds::dot(&file, output.as_deref()),
        Command::Run {
            file,
            feeds,
            random,
            seed,
            int_bound,
            max_values,
            jit,
        } => {
            let opts = graph_cmds::RunOptions {
                feeds,
                random,
                seed,
                int_bound,
                max_values,
                jit,
            };
            graph_cmds::run(&file, &opts)
        }
        Command::Check {
            file,
            seed,
            verify_only,
        } => jit_cmds::check(&file, seed, verify_only),
        Command::Fuzz { cases, seed, out } => {
            jit_cmds::fuzz(&jit_cmds::FuzzOptions { cases, seed, out })
        }
        Command::Workload {
            id,
            step,
            precision,
            output,
        } => graph_cmds::workload(&id, step, precision, output.as_deref()),
        Command::Bench {
            workload,
            mode,
            precision,
            no_excess_precision,
            runs,
            json,
            memory_budget,
        } => bench_cmd::bench(&bench_cmd::BenchOptions {
            workload,
            mode,
            precision,
            excess_precision: !no_excess_precision,
            threads: numbers::resolve_threads(runs.threads),
            warmup: runs.warmup,
            steps: runs.steps,
            seed: runs.seed,
            json,
            memory_budget,
        }),
        Command::Profile {
            target,
            no_fusion,
            precision,
            no_excess_precision,
            runs,
            top,
            kernels,
            nests,
        } => profile_cmd::profile(&profile_cmd::ProfileOptions {
            target,
            fuse: !no_fusion,
            precision,
            excess_precision: !no_excess_precision,
            threads: numbers::resolve_threads(runs.threads),
            warmup: runs.warmup,
            steps: runs.steps,
            seed: runs.seed,
            kernels,
            nests,
            top,
        }),
        Command::Grad {
            file,
            loss,
            wrt,
            output,
        } => autodiff_cmds::grad(&file, &loss, &wrt, output.as_deref()),
        Command::Gradcheck {
            file,
            loss,
            wrt,
            seed,
            tolerance,
        } => autodiff_cmds::gradcheck(&file, &loss, &wrt, seed, tolerance),
        Command::Opt {
            file,
            passes,
            print_after_all,
            dump,
        } => opt_cmds::opt(&file, passes.as_deref(), print_after_all, dump),
        Command::Plan {
            file,
            no_fusion,
            keep_all,
            dot,
            kernels,
            memory_budget,
        } => opt_cmds::plan(
            &file,
            &opt_cmds::PlanFlags {
                fuse: !no_fusion,
                keep_all,
                dot,
                kernels,
                memory_budget,
            },
        ),
    }
}
