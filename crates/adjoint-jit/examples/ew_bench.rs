//! Nanoseconds per element of a few elementwise kernels (exp, tanh, GELU, add) on 256×512,
//! one thread: `run` is a whole `CompiledStep::run` (feeds checked, kernel, output copied out),
//! `kernel` the kernel's own time (`Options::profile`). Each figure is the minimum over many
//! runs, so other load on the machine inflates it less. With `EW_BENCH_INLINE=1` the steps
//! compute `exp` and `tanh` inline on 128-bit vectors even where the host's 512-bit routines
//! would run (`Options::host_math` off).
//! `cargo run --release -p adjoint-jit --example ew_bench`

use adjoint_ir::{Builder, DType, Feeds, HostTensor};
use adjoint_jit::{compile, CompiledStep, Options};
use std::time::{Duration, Instant};

const ROWS: usize = 256;
const COLS: usize = 512;
const RUNS: usize = 200;

fn main() {
    let n = ROWS * COLS;
    // Inputs `offset + scale · u` for u spread over [0, 1): `exp_underflow`'s are all below
    // -100, where every result flushes to zero.
    for (name, offset, scale) in [
        ("exp", 0.0, 1.0),
        ("exp_underflow", -100.0, -100.0),
        ("tanh", 0.0, 1.0),
        ("gelu", 0.0, 1.0),
        ("add", 0.0, 1.0),
    ] {
        let mut feeds = Feeds::new();
        let data: Vec<f32> = (0..n)
            .map(|i| offset + scale * ((i % 97) as f32 / 97.0))
            .collect();
        feeds.insert(
            "x".into(),
            HostTensor::from_f32([ROWS, COLS], data).expect("a tensor"),
        );
        let mut whole = step(name, false);
        let mut best_run = f64::INFINITY;
        for _ in 0..RUNS {
            let t = Instant::now();
            whole.run(&feeds).expect("a run");
            best_run = best_run.min(t.elapsed().as_secs_f64());
        }
        let mut profiled = step(name, true);
        let mut best_kernel = Duration::MAX;
        for _ in 0..RUNS {
            profiled.reset_profile();
            profiled.run(&feeds).expect("a run");
            let p = profiled.profile().expect("profiling is on");
            best_kernel = best_kernel.min(p.total());
        }
        println!(
            "{name:<14} run {:.3} ns/element   kernel {:.3} ns/element",
            best_run * 1e9 / n as f64,
            best_kernel.as_secs_f64() * 1e9 / n as f64
        );
    }
}

/// The one-kernel step `y = f(x)` for the named function.
fn step(name: &str, profile: bool) -> CompiledStep {
    let b = Builder::new(name);
    let x = b.input("x", DType::F32, [ROWS, COLS]);
    let y = match name {
        "exp" | "exp_underflow" => x.exp(),
        "tanh" => x.tanh(),
        "gelu" => x.gelu(),
        _ => x + 1.0,
    };
    b.output("y", y);
    let g = b.finish();
    let opts = Options {
        threads: 1,
        profile,
        host_math: std::env::var_os("EW_BENCH_INLINE").is_none(),
        ..Options::default()
    };
    compile(&g, &opts).expect("compiled")
}
