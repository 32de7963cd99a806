//! `adjoint profile`: where a compiled step's time goes, kernel by kernel.

use super::feeds::{self, RandomFill};
use super::graph_cmds::load_graph;
use super::CliError;
use adjoint::jit::kernel::{BufferId, Expr, Kernel, Program};
use adjoint::jit::{Profile, Step};
use adjoint::{Builder, DType, Feeds, Graph, HostTensor, Options};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// Options of `adjoint profile`.
pub struct ProfileOptions {
    /// A workload id (`W1` … `W4`, `mlp-small`, …) or a `.adj` file.
    pub target: String,
    /// Fuse (otherwise one kernel per node).
    pub fuse: bool,
    /// Precision of a workload's products and activations.
    pub precision: adjoint::autodiff::Precision,
    /// Keep 16-bit results in f32 inside kernels (`Options::excess_precision`).
    pub excess_precision: bool,
    /// Threads of the compiled step.
    pub threads: usize,
    /// Untimed runs before profiling.
    pub warmup: usize,
    /// Profiled runs.
    pub steps: usize,
    /// Seed of the workload's (or the random feeds') data.
    pub seed: u64,
    /// Print the kernel IR after the table.
    pub kernels: bool,
    /// One line per loop nest instead of per kernel.
    pub nests: bool,
    /// Show only this many kernels (0: all).
    pub top: usize,
}

/// One kernel's (or nest's) line of the table.
struct Row {
    name: String,
    time: Duration,
    /// Matmul multiply-adds per run (the host gemm's m·n·k), if the kernel has a matmul nest.
    gemm_work: usize,
    /// Bytes of every buffer the kernel (or nest) reads or writes, each counted once: the
    /// least memory traffic a run needs.
    bytes: usize,
}

/// Profiles the target's step and prints the per-kernel table.
pub fn profile(opts: &ProfileOptions) -> Result<(), CliError> {
    let (graph, feeds, what) = target_graph(opts)?;
    let (optimized, _) = adjoint::opt::optimize(&graph, &adjoint::opt::PassOptions::default())
        .map_err(|e| CliError::general(format!("{what}: {e}")))?;
    let options = Options {
        fusion: opts.fuse,
        threads: opts.threads,
        cache: false,
        profile: true,
        excess_precision: opts.excess_precision,
        ..Options::default()
    };
    let mut step = adjoint::compile(&optimized, &options)
        .map_err(|e| CliError::general(format!("{what}: {e}")))?;
    let runs = opts.steps.max(1);
    let profile = profile_runs(&mut step, &feeds, opts.warmup, runs)
        .map_err(|e| CliError::general(format!("{what}: {e}")))?;
    let peak = measured_peak(opts.threads)?;
    let rows = rows(&profile, step.program(), opts.nests);
    println!(
        "{what}: {} {}, fusion {}, {} thread{}, {runs} profiled runs after {} warm-up",
        rows.len(),
        if opts.nests { "loop nests" } else { "kernels" },
        if opts.fuse { "on" } else { "off" },
        opts.threads,
        if opts.threads == 1 { "" } else { "s" },
        opts.warmup
    );
    println!(
        "peak: {peak:.1} GFLOP/s, measured now by the same JIT on a 512x512x512 f32 matmul \
         ({} thread{})",
        opts.threads,
        if opts.threads == 1 { "" } else { "s" }
    );
    let unit = if opts.nests { "loop nests" } else { "kernels" };
    print!("{}", table(&rows, runs, peak, opts.top, unit));
    if opts.kernels {
        println!("\n== kernels ==\n{}", step.kernels());
    }
    Ok(())
}

/// The graph to profile, its feeds, and how to call it: a workload's whole training step, or
/// a graph file with seeded random feeds.
fn target_graph(opts: &ProfileOptions) -> Result<(Graph, Feeds, String), CliError> {
    if let Some(w) = adjoint::workloads::by_id(&opts.target, opts.seed) {
        let t = w.training_step_with(&adjoint::autodiff::MixedPrecision::new(opts.precision));
        // `W2 (mlp-wide) training step`, or `W2 (mlp-wide) bf16 training step`.
        let precision = match opts.precision {
            adjoint::autodiff::Precision::F32 => String::new(),
            p => format!("{} ", p.name()),
        };
        let what = format!("{} ({}) {precision}training step", w.id, w.name);
        return Ok((t.step.graph, t.feeds, what));
    }
    let path = Path::new(&opts.target);
    if !path.exists() {
        return Err(CliError::general(format!(
            "`{}` is neither a workload (W1, W2, W3, W4) nor an existing file",
            opts.target
        )));
    }
    let graph = load_graph(path)?;
    let fill = RandomFill {
        all: true,
        seed: opts.seed,
        int_bound: 10,
    };
    let feeds = feeds::build(&graph, &[], &fill)?;
    Ok((graph, feeds, path.display().to_string()))
}

/// Runs `warmup` untimed steps, then profiles `runs` steps.
fn profile_runs(
    step: &mut adjoint::CompiledStep,
    feeds: &Feeds,
    warmup: usize,
    runs: usize,
) -> Result<Profile, String> {
    let err = |e: adjoint::jit::JitError| e.to_string();
    step.set_params(feeds).map_err(err)?;
    for _ in 0..warmup {
        step.run_feeds(feeds).map_err(err)?;
    }
    step.reset_profile();
    for _ in 0..runs {
        step.run_feeds(feeds).map_err(err)?;
    }
    Ok(step.profile().expect("profiling is on").clone())
}

/// The machine's matmul rate now: GFLOP/s of the JIT on a 512³ f32 matmul, best of 5 runs.
fn measured_peak(threads: usize) -> Result<f64, CliError> {
    const N: usize = 512;
    let b = Builder::new("peak");
    let x = b.input("a", DType::F32, [N, N]);
    let y = b.input("b", DType::F32, [N, N]);
    b.output("c", x.matmul(y));
    let options = Options {
        threads,
        cache: false,
        profile: true,
        ..Options::default()
    };
    let mut step = adjoint::compile(&b.finish(), &options)
        .map_err(|e| CliError::general(format!("measuring the peak: {e}")))?;
    let values: Vec<f32> = (0..N * N).map(|i| (i % 17) as f32 / 17.0).collect();
    let mut inputs = Feeds::new();
    for name in ["a", "b"] {
        let t = HostTensor::from_f32([N, N], values.clone()).map_err(CliError::general)?;
        inputs.insert(name.into(), t);
    }
    let mut best = f64::INFINITY;
    for _ in 0..6 {
        step.reset_profile();
        step.run(&inputs)
            .map_err(|e| CliError::general(format!("measuring the peak: {e}")))?;
        let t = step
            .profile()
            .expect("profiling is on")
            .total()
            .as_secs_f64();
        best = best.min(t);
    }
    Ok(2.0 * (N * N * N) as f64 / best / 1e9)
}

/// One row per kernel (its nests summed), or per nest with `by_nest`, from the most expensive
/// down.
fn rows(profile: &Profile, program: &Program, by_nest: bool) -> Vec<Row> {
    let mut rows: Vec<((usize, usize), Row)> = Vec::new();
    for e in &profile.entries {
        let is_gemm = program
            .kernels
            .get(e.kernel)
            .and_then(|k| k.nests.get(e.nest))
            .is_some_and(|n| n.gemm.is_some());
        let key = (e.kernel, if by_nest { e.nest } else { 0 });
        let i = match rows.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                let kernel = program.kernels.get(e.kernel);
                let name = match kernel {
                    Some(k) if !by_nest => k.name.clone(),
                    _ => e.name.clone(),
                };
                let nest = by_nest.then_some(e.nest);
                let bytes = kernel.map_or(0, |k| touched_bytes(program, k, nest));
                rows.push((
                    key,
                    Row {
                        name,
                        time: Duration::ZERO,
                        gemm_work: 0,
                        bytes,
                    },
                ));
                rows.len() - 1
            }
        };
        let row = &mut rows[i].1;
        row.time += e.total;
        if is_gemm {
            row.gemm_work += e.work;
        }
    }
    let mut rows: Vec<Row> = rows.into_iter().map(|(_, r)| r).collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.time));
    rows
}

/// The bytes of the distinct buffers `kernel` (or only its nest `nest`) loads from or stores
/// to (matmul operands included).
fn touched_bytes(program: &Program, kernel: &Kernel, nest: Option<usize>) -> usize {
    let mut buffers: BTreeSet<u32> = BTreeSet::new();
    let nests: Vec<_> = match nest {
        Some(n) => kernel.nests.get(n).into_iter().collect(),
        None => kernel.nests.iter().collect(),
    };
    let loads: Vec<_> = match nest {
        Some(_) => nests.iter().flat_map(|n| kernel.exprs_of(n)).collect(),
        None => (0..kernel.exprs.len())
            .map(|e| adjoint::jit::kernel::ExprId(e as u32))
            .collect(),
    };
    for e in loads {
        if let Expr::Load { buffer, .. } = kernel.expr(e).expr {
            buffers.insert(buffer.0);
        }
    }
    for nest in nests {
        buffers.extend(nest.stores.iter().map(|s| s.buffer.0));
        if let Some(g) = &nest.gemm {
            buffers.extend([g.a.0, g.b.0, g.c.0].map(|b: BufferId| b.0));
        }
    }
    buffers
        .iter()
        .filter_map(|&b| program.buffers.get(b as usize))
        .map(|b| b.shape.numel() * b.dtype.size_bytes())
        .sum()
}

/// The table: time per run, share, and the rate — GFLOP/s (and % of `peak`) for kernels with a
/// matmul, GB/s of compulsory traffic (every buffer touched, once) for the rest.
/// `unit` names the rows in the last line (`kernels`, `loop nests`).
fn table(rows: &[Row], runs: usize, peak: f64, top: usize, unit: &str) -> String {
    let total: Duration = rows.iter().map(|r| r.time).sum();
    let mut out = format!(
        "{:<32} {:>11} {:>7} {:>7} {:>16}\n",
        "kernel", "µs/run", "share", "cum.", "rate"
    );
    let mut cumulative = 0.0;
    let shown = if top == 0 {
        rows.len()
    } else {
        top.min(rows.len())
    };
    for r in &rows[..shown] {
        let per_run = r.time.as_secs_f64() / runs as f64;
        let share = if total > Duration::ZERO {
            100.0 * r.time.as_secs_f64() / total.as_secs_f64()
        } else {
            0.0
        };
        cumulative += share;
        let rate = if per_run <= 0.0 {
            "-".to_string()
        } else if r.gemm_work > 0 {
            let gflops = 2.0 * r.gemm_work as f64 / per_run / 1e9;
            format!(
                "{gflops:.1} GFLOP/s ({:.0}% of peak)",
                100.0 * gflops / peak
            )
        } else {
            format!("{:.2} GB/s", r.bytes as f64 / per_run / 1e9)
        };
        out.push_str(&format!(
            "{:<32} {:>11.1} {:>6.1}% {:>6.1}% {rate:>16}\n",
            r.name,
            per_run * 1e6,
            share,
            cumulative
        ));
    }
    if shown < rows.len() {
        out.push_str(&format!(
            "… {} more {unit} (--top 0 for all)\n",
            rows.len() - shown
        ));
    }
    out.push_str(&format!(
        "total {:.1} µs per run in kernels. rate: matmul kernels in GFLOP/s (2·m·n·k per \
         run); others in GB/s of compulsory traffic (each buffer read or written counted \
         once)\n",
        total.as_secs_f64() / runs as f64 * 1e6
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::{table, Row};
    use std::time::Duration;

    #[test]
    fn the_table_sorts_and_rates_each_kind() {
        let rows = vec![
            Row {
                name: "k0_matmul".into(),
                time: Duration::from_micros(300),
                gemm_work: 1_000_000,
                bytes: 12_000,
            },
            Row {
                name: "k1_relu".into(),
                time: Duration::from_micros(100),
                gemm_work: 0,
                bytes: 400_000,
            },
        ];
        let t = table(&rows, 1, 20.0, 0, "kernels");
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("kernel"), "{t}");
        // 2e6 flops in 300 µs = 6.7 GFLOP/s, a third of the 20 GFLOP/s peak.
        assert!(
            lines[1].starts_with("k0_matmul") && lines[1].contains("75.0%"),
            "{t}"
        );
        assert!(lines[1].contains("6.7 GFLOP/s (33% of peak)"), "{t}");
        assert!(
            lines[2].contains("4.00 GB/s") && lines[2].contains("100.0%"),
            "{t}"
        );
        let top1 = table(&rows, 1, 20.0, 1, "kernels");
        assert!(top1.contains("… 1 more kernels"), "{top1}");
    }
}
