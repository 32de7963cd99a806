//! Deeper models in bounded memory: a residual MLP of 16 to 128 blocks trained with a
//! JIT-compiled step, keeping everything for the backward, with the default plan, and under a
//! memory budget that grows as √depth.
//!
//! ```sh
//! cargo run --release --example deep_memory                  # writes target/deep_memory/arena.svg
//! cargo run --release --example deep_memory -- --out /tmp/deep --steps 5
//! ```
//!
//! The model is W3's residual block (`h = h + gelu(layernorm(h) @ A + a) @ B + b`, Adam, MSE
//! loss) at 256 rows, width 64, hidden 128, stacked 16, 32, 64 and 128 deep. For each depth
//! the step is compiled three ways: `keep_all` (every forward value the backward reads is
//! held: the arena grows linearly with depth), the default plan (cheap elementwise values
//! recomputed: still linear), and `Options::memory_budget` set to half the default arena at
//! 16 blocks times √(depth / 16). The planner then checkpoints segments of the residual
//! stream, so the arena grows as √depth, at the price of recomputing the forward in the
//! backward. The table gives each arena, the median (and fastest) step time and the FLOPs
//! the budget adds;
//! every budgeted run is checked to reach the same loss as the default plan (within f32
//! rounding). The chart plots the arenas against depth.

use adjoint::ir::{Feeds, Graph, HostTensor};
use adjoint::jit::{compile, CompiledStep, Options};
use adjoint::nn::chart::write_line_chart;
use adjoint::workloads::{resmlp_ln, ResMlpConfig};
use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

/// Depths of the residual MLP.
const DEPTHS: [usize; 4] = [16, 32, 64, 128];

/// Command-line settings.
struct Args {
    /// Where the chart goes.
    out: PathBuf,
    /// Timed steps per configuration (after one untimed step).
    steps: usize,
    /// Threads of the compiled steps.
    threads: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        out: PathBuf::from("target/deep_memory"),
        steps: 5,
        threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => args.out = PathBuf::from(value()?),
            "--steps" => {
                let v = value()?;
                args.steps = match v.parse::<usize>() {
                    Ok(n) if (1..=1000).contains(&n) => n,
                    _ => return Err(format!("--steps takes 1 to 1000, got `{v}`")),
                }
            }
            "--threads" => {
                let v = value()?;
                args.threads = v
                    .parse()
                    .map_err(|_| format!("--threads takes a whole number, got `{v}`"))?;
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}` (expected --out DIR, --steps N, --threads N)"
                ))
            }
        }
    }
    Ok(args)
}

/// One compiled configuration, measured.
struct Run {
    arena: usize,
    recompute_flops: u64,
    compile_ms: f64,
    /// Median and fastest step.
    step_ms: (f64, f64),
    losses: Vec<f64>,
}

/// Compiles `graph` with `options`, runs one untimed and `steps` timed training steps.
fn measure(
    graph: &Graph,
    feeds: &Feeds,
    options: &Options,
    steps: usize,
) -> Result<Run, Box<dyn Error>> {
    let start = Instant::now();
    let mut step: CompiledStep = compile(graph, options)?;
    let compile_ms = start.elapsed().as_secs_f64() * 1e3;
    step.set_params(feeds)?;
    let inputs = step.input_feeds(feeds);
    let loss = |t: Option<&HostTensor>| -> Result<f64, Box<dyn Error>> {
        Ok(t.ok_or("the step has no loss")?.to_f64_vec()[0])
    };
    let mut losses = vec![loss(step.run(&inputs)?.output("loss"))?];
    let mut times = Vec::with_capacity(steps);
    for _ in 0..steps {
        let t = Instant::now();
        let out = step.run(&inputs)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        losses.push(loss(out.output("loss"))?);
    }
    times.sort_by(f64::total_cmp);
    let stats = step.stats();
    Ok(Run {
        arena: stats.arena_bytes,
        recompute_flops: stats.recompute_flops,
        compile_ms,
        step_ms: (times[times.len() / 2], times[0]),
        losses,
    })
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let base = Options {
        threads: args.threads,
        cache: false,
        verifier: false,
        ..Options::default()
    };
    println!(
        "residual MLP, 256 rows, width 64, hidden 128, Adam; {} timed steps, {} thread(s); \
         arena in MiB, step in ms: median (fastest)",
        args.steps, args.threads
    );
    println!(
        "| blocks | keep-all arena | default arena | budget | budget arena | default step | \
         budget step | added step time | added GFLOP/step |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut budget_16: Option<usize> = None;
    let (mut keep_pts, mut default_pts, mut budget_pts, mut arena_pts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for depth in DEPTHS {
        let cfg = ResMlpConfig {
            rows: 256,
            width: 64,
            hidden: 128,
            blocks: depth,
        };
        let t = resmlp_ln(&cfg, 0).training_step();
        let (graph, feeds) = (t.step.graph, t.feeds);
        let keep = measure(
            &graph,
            &feeds,
            &Options {
                keep_all: true,
                ..base.clone()
            },
            args.steps,
        )?;
        let default = measure(&graph, &feeds, &base, args.steps)?;
        let b16 = *budget_16.get_or_insert(default.arena / 2);
        let budget = (b16 as f64 * (depth as f64 / DEPTHS[0] as f64).sqrt()) as usize;
        let within = measure(
            &graph,
            &feeds,
            &Options {
                memory_budget: Some(budget),
                ..base.clone()
            },
            args.steps,
        )?;
        assert!(within.arena <= budget, "the arena is within the budget");
        for (a, b) in within.losses.iter().zip(&default.losses) {
            let close = (a - b).abs() <= 1e-5 * b.abs().max(1.0);
            assert!(
                close,
                "{depth} blocks: loss {a} under the budget, {b} by default"
            );
        }
        println!(
            "| {depth} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} ({:.1}) | {:.1} ({:.1}) | \
             {:+.0}% ({:+.0}%) | {:.2} |",
            mib(keep.arena),
            mib(default.arena),
            mib(budget),
            mib(within.arena),
            default.step_ms.0,
            default.step_ms.1,
            within.step_ms.0,
            within.step_ms.1,
            100.0 * (within.step_ms.0 / default.step_ms.0 - 1.0),
            100.0 * (within.step_ms.1 / default.step_ms.1 - 1.0),
            within
                .recompute_flops
                .saturating_sub(default.recompute_flops) as f64
                / 1e9,
        );
        eprintln!(
            "  {depth} blocks: compile {:.0} ms (keep-all), {:.0} ms (default), {:.0} ms \
             (budget); loss {:.5} -> {:.5}",
            keep.compile_ms,
            default.compile_ms,
            within.compile_ms,
            within.losses[0],
            within.losses[within.losses.len() - 1],
        );
        let x = depth as f64;
        keep_pts.push((x, mib(keep.arena)));
        default_pts.push((x, mib(default.arena)));
        budget_pts.push((x, mib(budget)));
        arena_pts.push((x, mib(within.arena)));
    }
    std::fs::create_dir_all(&args.out)?;
    let chart = args.out.join("arena.svg");
    write_line_chart(
        &chart,
        &[
            ("keep everything", &keep_pts),
            ("default plan", &default_pts),
            ("budget ∝ √depth", &budget_pts),
            ("arena under the budget", &arena_pts),
        ],
        "Arena of a residual MLP training step against depth",
        "residual blocks",
        "arena (MiB)",
    )?;
    println!("wrote {}", chart.display());
    Ok(())
}
