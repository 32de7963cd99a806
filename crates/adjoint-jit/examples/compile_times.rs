//! Compile time of the W1–W4 training steps, by phase, with and without the graph passes.
//!
//! ```sh
//! cargo run --release -p adjoint-jit --example compile_times [-- REPEATS]
//! ```
//!
//! Each step is compiled `REPEATS` times (default 7) with the compile cache off; the table
//! gives the median of each phase in milliseconds: the graph passes, planning (remat, fusion,
//! memory plan and kernel IR), CLIF construction, Cranelift, and finalization.

use adjoint_jit::{compile, CompileStats, Options};
use std::time::Duration;

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn main() {
    let repeats: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("REPEATS is a whole number"))
        .unwrap_or(7)
        .max(1);
    let workloads = [
        adjoint_workloads::w1_mlp_small(0),
        adjoint_workloads::w2_mlp_wide(0),
        adjoint_workloads::w3_resmlp_ln(0),
        adjoint_workloads::w4_gpt_tiny(0),
    ];
    println!("median of {repeats} compiles, milliseconds");
    println!(
        "{:<4} {:<7} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>7}",
        "", "passes", "optimize", "plan", "clif", "cranelift", "finalize", "total", "kernels"
    );
    for w in &workloads {
        let graph = w.training_step().step.graph;
        for passes in [false, true] {
            let options = Options {
                passes,
                cache: false,
                verifier: false,
                ..Options::default()
            };
            let stats: Vec<CompileStats> = (0..repeats)
                .map(|_| compile(&graph, &options).unwrap().stats().clone())
                .collect();
            let phase =
                |f: &dyn Fn(&CompileStats) -> Duration| median(stats.iter().map(f).collect());
            println!(
                "{:<4} {:<7} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>8.2} {:>8.2} {:>7}",
                w.id,
                if passes { "on" } else { "off" },
                phase(&|s| s.optimizing),
                phase(&|s| s.planning),
                phase(&|s| s.codegen.lowering),
                phase(&|s| s.codegen.cranelift),
                phase(&|s| s.codegen.finalize),
                phase(&|s| s.total()),
                stats[0].kernels
            );
        }
    }
}
