//! Benchmarks of whole training steps: the W1–W4 workloads run by the interpreter, by the JIT
//! without fusion, and by the JIT with fusion. Shared by `adjoint bench` and the criterion
//! benches in `benches/`.

use adjoint_autodiff::{MixedPrecision, Precision};
use adjoint_ir::{Feeds, Graph, HostTensor};
use adjoint_jit::{CompiledStep, Options};
use adjoint_workloads::Workload;
use std::fmt;
use std::time::{Duration, Instant};

/// How a step is executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The reference interpreter, node at a time.
    Interp,
    /// The JIT with one kernel per node.
    JitUnfused,
    /// The JIT with fusion.
    JitFused,
}

impl Mode {
    /// Every mode.
    pub const ALL: [Mode; 3] = [Mode::Interp, Mode::JitUnfused, Mode::JitFused];

    /// `interp`, `jit-unfused`, `jit-fused`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Interp => "interp",
            Mode::JitUnfused => "jit-unfused",
            Mode::JitFused => "jit-fused",
        }
    }

    /// The mode called `name`.
    pub fn parse(name: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// A training step ready to run repeatedly: each [`Runner::step`] runs forward, backward and
/// the optimizer update, and the parameters carry over to the next call.
pub enum Runner {
    /// Interpreted: the step graph and the current feeds (parameters updated after each step).
    Interp {
        /// The step graph.
        graph: Box<Graph>,
        /// Inputs, parameters and optimizer state.
        feeds: Feeds,
    },
    /// Compiled: the native step (which owns the parameters) and its inputs.
    Jit {
        /// The compiled step.
        step: Box<CompiledStep>,
        /// The graph's inputs.
        inputs: Feeds,
    },
}

/// A prepared runner and what preparing it cost.
pub struct Prepared {
    /// The runner.
    pub runner: Runner,
    /// Time to compile (passes, planning, code generation); zero for the interpreter.
    pub compile: Duration,
    /// Bytes of the compiled step's arena (0 for the interpreter).
    pub arena_bytes: usize,
    /// Kernels of the compiled step (0 for the interpreter).
    pub kernels: usize,
    /// FLOPs the compiled step recomputes in its backward (0 for the interpreter).
    pub recompute_flops: u64,
}

/// Prepares `workload`'s training step for `mode` with `threads` threads (0 = all cores), in
/// `precision` (with the loss scaling it needs: [`MixedPrecision::new`]) and the default
/// [`Options::excess_precision`]. The compile cache is bypassed so that compile time is
/// measured.
pub fn prepare(
    workload: &Workload,
    mode: Mode,
    threads: usize,
    precision: Precision,
) -> Result<Prepared, BenchError> {
    prepare_within(workload, mode, threads, precision, None, true)
}

/// [`prepare`] with a memory budget for the compiled step's arena
/// ([`Options::memory_budget`]) and a choice of [`Options::excess_precision`] (`false`:
/// 16-bit results rounded after every operation); the interpreter ignores both.
pub fn prepare_within(
    workload: &Workload,
    mode: Mode,
    threads: usize,
    precision: Precision,
    memory_budget: Option<usize>,
    excess_precision: bool,
) -> Result<Prepared, BenchError> {
    let t = workload.training_step_with(&MixedPrecision::new(precision));
    let graph = t.step.graph;
    if mode == Mode::Interp {
        return Ok(Prepared {
            runner: Runner::Interp {
                graph: Box::new(graph),
                feeds: t.feeds,
            },
            compile: Duration::ZERO,
            arena_bytes: 0,
            kernels: 0,
            recompute_flops: 0,
        });
    }
    let options = Options {
        fusion: mode == Mode::JitFused,
        threads,
        cache: false,
        verifier: false,
        memory_budget,
        excess_precision,
        ..Options::default()
    };
    let start = Instant::now();
    let mut step = adjoint_jit::compile(&graph, &options)?;
    let compile = start.elapsed();
    step.set_params(&t.feeds)?;
    let inputs = step.input_feeds(&t.feeds);
    let stats = step.stats();
    let (arena_bytes, kernels, recompute_flops) =
        (stats.arena_bytes, stats.kernels, stats.recompute_flops);
    Ok(Prepared {
        runner: Runner::Jit {
            step: Box::new(step),
            inputs,
        },
        compile,
        arena_bytes,
        kernels,
        recompute_flops,
    })
}

impl Runner {
    /// Runs one training step and returns its loss.
    pub fn step(&mut self) -> Result<f64, BenchError> {
        let loss = match self {
            Runner::Interp { graph, feeds } => {
                let out = adjoint_interp::run(graph, feeds)?;
                for (name, value) in out.updates.iter() {
                    feeds.insert(name.clone(), value.clone());
                }
                scalar(out.output("loss"))?
            }
            Runner::Jit { step, inputs } => {
                let out = step.run(inputs)?;
                scalar(out.output("loss"))?
            }
        };
        Ok(loss)
    }
}

fn scalar(t: Option<&HostTensor>) -> Result<f64, BenchError> {
    t.and_then(|t| t.to_f64_vec().first().copied())
        .ok_or(BenchError::NoLoss)
}

/// Why a benchmark could not run.
#[derive(Debug)]
pub enum BenchError {
    /// The JIT refused to compile the step, or a compiled step failed.
    Jit(Box<adjoint_jit::JitError>),
    /// The interpreter failed.
    Interp(Box<adjoint_interp::InterpError>),
    /// The step has no scalar `loss` output.
    NoLoss,
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Jit(e) => e.fmt(f),
            BenchError::Interp(e) => e.fmt(f),
            BenchError::NoLoss => f.write_str("the step has no scalar `loss` output"),
        }
    }
}

impl std::error::Error for BenchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BenchError::Jit(e) => Some(e.as_ref()),
            BenchError::Interp(e) => Some(e.as_ref()),
            BenchError::NoLoss => None,
        }
    }
}

impl From<adjoint_jit::JitError> for BenchError {
    fn from(e: adjoint_jit::JitError) -> Self {
        BenchError::Jit(Box::new(e))
    }
}

impl From<adjoint_interp::InterpError> for BenchError {
    fn from(e: adjoint_interp::InterpError) -> Self {
        BenchError::Interp(Box::new(e))
    }
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Steps run before timing starts.
    pub warmup: usize,
    /// Timed steps.
    pub steps: usize,
    /// Threads (0 = all cores).
    pub threads: usize,
    /// Seed of the workload's data and parameters.
    pub seed: u64,
    /// Budget for the compiled step's arena (`None`: the default plan).
    pub memory_budget: Option<crate::MemoryBudget>,
    /// The precision of the step (products and activations).
    pub precision: Precision,
    /// Keep 16-bit results in f32 inside kernels ([`Options::excess_precision`]; the
    /// default is `true`).
    pub excess_precision: bool,
}

/// One measurement, in the fields of `adjoint bench --json`.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchResult {
    /// `W1` … `W4`.
    pub workload: String,
    /// The mode's name.
    pub mode: String,
    /// The precision's name (`f32`, `bf16`, `f16`).
    pub precision: String,
    /// Whether 16-bit results stayed in f32 inside kernels ([`Options::excess_precision`]).
    pub excess_precision: bool,
    /// Threads used.
    pub threads: usize,
    /// Compile time in milliseconds (0 for the interpreter).
    pub compile_ms: f64,
    /// Median step time in microseconds.
    pub step_us_median: f64,
    /// Fastest step in microseconds.
    pub step_us_min: f64,
    /// Timed steps.
    pub steps: usize,
    /// Matmul GFLOP/s at the median step time.
    pub gflops: f64,
    /// Arena bytes of the compiled step.
    pub arena_bytes: usize,
    /// Kernels of the compiled step.
    pub kernels: usize,
    /// The arena budget in bytes (`None`: no budget).
    pub memory_budget: Option<usize>,
    /// FLOPs the compiled step recomputes in its backward.
    pub recompute_flops: u64,
    /// Loss of the first timed step.
    pub loss_first: f64,
    /// Loss of the last timed step.
    pub loss_last: f64,
}

/// Runs `config.warmup` untimed and `config.steps` timed training steps of `workload`.
pub fn run_bench(
    workload: &Workload,
    mode: Mode,
    config: &BenchConfig,
) -> Result<BenchResult, BenchError> {
    let threads = if config.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        config.threads
    };
    let budget = match (&config.memory_budget, mode) {
        (Some(b), Mode::JitUnfused | Mode::JitFused) => {
            let graph = workload
                .training_step_with(&MixedPrecision::new(config.precision))
                .step
                .graph;
            let bytes = b
                .bytes_for(&graph)
                .map_err(|e| BenchError::Jit(Box::new(adjoint_jit::JitError::Pass(e))))?;
            Some(bytes)
        }
        _ => None,
    };
    let mut prepared = prepare_within(
        workload,
        mode,
        threads,
        config.precision,
        budget,
        config.excess_precision,
    )?;
    for _ in 0..config.warmup {
        prepared.runner.step()?;
    }
    let steps = config.steps.max(1);
    let mut times = Vec::with_capacity(steps);
    let mut losses = Vec::with_capacity(steps);
    for _ in 0..steps {
        let start = Instant::now();
        losses.push(prepared.runner.step()?);
        times.push(start.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    let median = if steps % 2 == 1 {
        times[steps / 2]
    } else {
        (times[steps / 2 - 1] + times[steps / 2]) / 2.0
    };
    Ok(BenchResult {
        workload: workload.id.to_string(),
        mode: mode.name().to_string(),
        precision: config.precision.name().to_string(),
        excess_precision: config.excess_precision,
        threads,
        compile_ms: prepared.compile.as_secs_f64() * 1e3,
        step_us_median: median,
        step_us_min: times[0],
        steps,
        gflops: workload.matmul_flops / (median * 1e-6) / 1e9,
        arena_bytes: prepared.arena_bytes,
        kernels: prepared.kernels,
        memory_budget: budget,
        recompute_flops: prepared.recompute_flops,
        loss_first: losses[0],
        loss_last: losses[steps - 1],
    })
}

impl BenchResult {
    /// One JSON object on one line.
    pub fn to_json(&self) -> String {
        format!(
            concat!(
                "{{\"workload\":\"{}\",\"mode\":\"{}\",\"precision\":\"{}\",",
                "\"excess_precision\":{},\"threads\":{},",
                "\"compile_ms\":{:.3},",
                "\"step_us_median\":{:.1},\"step_us_min\":{:.1},\"steps\":{},\"gflops\":{:.3},",
                "\"arena_bytes\":{},\"kernels\":{},\"memory_budget\":{},",
                "\"recompute_flops\":{},\"loss_first\":{},\"loss_last\":{}}}"
            ),
            self.workload,
            self.mode,
            self.precision,
            self.excess_precision,
            self.threads,
            self.compile_ms,
            self.step_us_median,
            self.step_us_min,
            self.steps,
            self.gflops,
            self.arena_bytes,
            self.kernels,
            self.memory_budget
                .map_or_else(|| "null".to_string(), |b| b.to_string()),
            self.recompute_flops,
            json_number(self.loss_first),
            json_number(self.loss_last),
        )
    }
}

/// JSON has no NaN or infinity: those become `null`.
fn json_number(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

impl fmt::Display for BenchResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:<11} {:<4} threads {}  compile {:>8.1} ms  step median {:>10.1} µs (min {:.1})  {:>6.2} GFLOP/s  kernels {}  arena {} B{}  loss {:.4} -> {:.4}",
            self.workload,
            self.mode,
            self.precision,
            self.threads,
            self.compile_ms,
            self.step_us_median,
            self.step_us_min,
            self.gflops,
            self.kernels,
            self.arena_bytes,
            self.memory_budget
                .map_or_else(String::new, |b| format!(" (budget {b} B, recomputes {} FLOP)", self.recompute_flops)),
            self.loss_first,
            self.loss_last
        )
    }
}
