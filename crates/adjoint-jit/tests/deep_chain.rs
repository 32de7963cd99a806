//! Graphs as deep as they are long: a chain of elementwise ops, its gradient and an SGD step
//! are built, planned (with and without keep-all) and compiled without any pass recursing on
//! the graph's depth, and the compiled step agrees with the interpreter.
//!
//! The always-on tests plan a 30,000-op chain (deeper than the 25,000 that overflowed the stack in
//! rematerialization before) and compile a 1,000-op one with both register allocators: compile
//! time is linear but dominated by Cranelift. `a_million_op_chain_plans_and_compiles` runs
//! chains of 10^4, 10^5 and 10^6 ops through every phase and is ignored by default:
//! `cargo test --release -p adjoint-jit --test deep_chain -- --ignored --nocapture` runs it and
//! prints the wall and CPU time of each phase (`ADJOINT_CHAIN_SIZES=10000,100000` chooses the
//! sizes, `ADJOINT_CHAIN_PLAN_ONLY=1` leaves out compiling). docs/reliability.md has the figures
//! of its last run.

use adjoint_autodiff::{training_step, Optimizer};
use adjoint_ir::{Builder, DType, Feeds, Graph, HostTensor};
use adjoint_jit::{compile, Options, RegisterAllocator};
use adjoint_opt::{plan, PlanOptions};
use std::time::Instant;

/// `n` elementwise ops on a parameter, alternating `sin` and a scaling, summed to a loss.
fn chain(n: usize) -> Graph {
    let b = Builder::new("chain");
    let w = b.parameter("w", DType::F32, [8]);
    let mut h = w;
    for i in 0..n {
        h = if i % 2 == 0 { h.sin() } else { h * 0.999 };
    }
    b.output("loss", h.sum_all());
    b.finish()
}

fn step(n: usize) -> Graph {
    let g = chain(n);
    let (loss, w) = (g.output("loss").unwrap(), g.leaf("w").unwrap());
    training_step(g, loss, &[w], &Optimizer::sgd(0.1))
        .unwrap()
        .graph
}

/// Seconds of CPU time this process has used (all threads), from `/proc/self/stat`; `None`
/// where that file does not exist. The machine running the long test may be shared, so the
/// CPU time says more about a phase's cost than the wall time.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces): utime and
    // stime are the 12th and 13th, in clock ticks (100 per second on Linux).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn timed<T>(what: &str, n: usize, f: impl FnOnce() -> T) -> T {
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let r = f();
    let wall = t.elapsed().as_secs_f64();
    match cpu.zip(cpu_seconds()) {
        Some((a, b)) => println!(
            "{n:>8} ops: {what:<28} {wall:>9.3} s wall {:>9.2} s cpu",
            b - a
        ),
        None => println!("{n:>8} ops: {what:<28} {wall:>9.3} s wall"),
    }
    r
}

/// Builds, verifies, prints, parses back, plans (with and without keep-all) and interprets the
/// step graph of an `n`-op chain; returns it.
fn plan_deep_chain(n: usize) -> Graph {
    let g = timed("build chain + gradient", n, || step(n));
    timed("verify", n, || g.verify().unwrap());
    let text = timed("print", n, || adjoint_ir::text::print(&g));
    let back = timed("parse", n, || adjoint_ir::text::parse(&text).unwrap());
    assert_eq!(back.len(), g.len());
    let passes = adjoint_opt::PassManager::new(&adjoint_opt::PassOptions::default()).unwrap();
    let (optimized, _) = timed("passes (simplify, CSE, DCE)", n, || passes.run(&g).unwrap());
    assert!(optimized.len() <= g.len());
    for keep_all in [false, true] {
        let what = if keep_all { "plan (keep-all)" } else { "plan" };
        let p = timed(what, n, || {
            plan(
                &g,
                &PlanOptions {
                    keep_all,
                    ..PlanOptions::default()
                },
            )
        });
        assert!(!p.schedule.groups.is_empty());
    }
    let feeds = feeds();
    timed("interpret", n, || adjoint_interp::run(&g, &feeds).unwrap());
    g
}

fn feeds() -> Feeds {
    let w = HostTensor::from_f32([8], (0..8).map(|i| i as f32 * 0.1).collect()).unwrap();
    let mut feeds = Feeds::new();
    feeds.insert("w".into(), w);
    feeds
}

/// Compiles the step graph `g` of an `n`-op chain and compares one run with the interpreter.
fn compile_deep_chain(n: usize, g: &Graph, register_allocator: RegisterAllocator) {
    let opts = Options {
        cache: false,
        verifier: false,
        register_allocator,
        ..Options::default()
    };
    let mut compiled = timed("compile", n, || compile(g, &opts).unwrap());
    let st = compiled.stats();
    println!(
        "{n:>8} ops: compile: passes {:.3} s, planning {:.3} s, lowering {:.3} s, cranelift {:.3} s, \
         finalize {:.3} s, {} kernels, {} functions, {} code bytes",
        st.optimizing.as_secs_f64(),
        st.planning.as_secs_f64(),
        st.codegen.lowering.as_secs_f64(),
        st.codegen.cranelift.as_secs_f64(),
        st.codegen.finalize.as_secs_f64(),
        st.kernels,
        st.functions,
        st.code_bytes,
    );
    let feeds = feeds();
    compiled.set_params(&feeds).unwrap();
    let out = timed("run compiled", n, || compiled.run(&Feeds::new()).unwrap());
    let expected = adjoint_interp::run(g, &feeds).unwrap();
    let got = out.output("loss").unwrap().to_f64_vec()[0];
    let want = expected.output("loss").unwrap().to_f64_vec()[0];
    assert!(
        (got - want).abs() <= 1e-3 * want.abs().max(1.0),
        "{got} vs {want}"
    );
    let got = compiled.param("w").unwrap().to_f64_vec();
    let want = expected.update("w").unwrap().to_f64_vec();
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-4, "{got:?} vs {want:?}");
    }
}

#[test]
fn a_30_000_op_chain_and_its_gradient_plan_without_recursion() {
    plan_deep_chain(30_000);
}

#[test]
fn a_1_000_op_chain_step_compiles_and_matches_the_interpreter() {
    let g = plan_deep_chain(1_000);
    compile_deep_chain(1_000, &g, RegisterAllocator::Backtracking);
    // What `RegisterAllocator::Auto` chooses for the deep chains of the ignored test.
    compile_deep_chain(1_000, &g, RegisterAllocator::SinglePass);
}

#[test]
#[ignore = "about 12 minutes in release on 2 shared cores, 7.4 GB at 10^6 ops; run with --release --ignored"]
fn a_million_op_chain_plans_and_compiles() {
    let sizes = std::env::var("ADJOINT_CHAIN_SIZES").map_or_else(
        |_| vec![10_000, 100_000, 1_000_000],
        |v| {
            v.split(',')
                .map(|n| {
                    n.trim()
                        .parse()
                        .expect("ADJOINT_CHAIN_SIZES: comma-separated op counts")
                })
                .collect()
        },
    );
    let plan_only = std::env::var_os("ADJOINT_CHAIN_PLAN_ONLY").is_some();
    for n in sizes {
        let g = plan_deep_chain(n);
        if !plan_only {
            compile_deep_chain(n, &g, RegisterAllocator::Auto);
        }
    }
}
