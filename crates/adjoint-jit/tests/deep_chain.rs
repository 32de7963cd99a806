//! Graphs as deep as they are long: a chain of elementwise ops, its gradient and an SGD step
//! are built, planned (with and without keep-all) and compiled without any pass recursing on
//! the graph's depth, and the compiled step agrees with the interpreter.
//!
//! The always-on tests plan a 30,000-op chain (deeper than the 25,000 that overflowed the stack in
//! rematerialization before) and compile a 1,000-op one: compile time is linear but dominated
//! by Cranelift, about 5 ms per function in the dev profile. `a_million_op_chain_plans_and_compiles`
//! runs chains of 10^4, 10^5 and 10^6 ops through every phase and is ignored by default:
//! `cargo test --release -p adjoint-jit --test deep_chain -- --ignored --nocapture` runs it and
//! prints the time of each phase.

use adjoint_autodiff::{training_step, Optimizer};
use adjoint_ir::{Builder, DType, Feeds, Graph, HostTensor};
use adjoint_jit::{compile, Options};
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

fn timed<T>(what: &str, n: usize, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    println!(
        "{n:>8} ops: {what:<28} {:>9.3} s",
        t.elapsed().as_secs_f64()
    );
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
fn compile_deep_chain(n: usize, g: &Graph) {
    let opts = Options {
        cache: false,
        verifier: false,
        ..Options::default()
    };
    let mut compiled = timed("compile", n, || compile(g, &opts).unwrap());
    let st = compiled.stats();
    println!(
        "{n:>8} ops: compile: planning {:.3} s, lowering {:.3} s, cranelift {:.3} s, {} kernels",
        st.planning.as_secs_f64(),
        st.codegen.lowering.as_secs_f64(),
        st.codegen.cranelift.as_secs_f64(),
        st.kernels,
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
    compile_deep_chain(1_000, &g);
}

#[test]
#[ignore = "about half an hour in release (Cranelift compiles ~0.6 functions per op); run with --release --ignored"]
fn a_million_op_chain_plans_and_compiles() {
    for n in [10_000, 100_000, 1_000_000] {
        let g = plan_deep_chain(n);
        compile_deep_chain(n, &g);
    }
}
