//! The commands that compare the JIT with the interpreter: `check`, `fuzz`, and `run --jit`
//! (its compiled half). The generator, comparison and minimizer are `adjoint::fuzz`.

use super::feeds::check_fits;
use super::graph_cmds::{load_graph, show};
use super::CliError;
use adjoint::fuzz::{self, Campaign};
use adjoint::{Feeds, Graph, Options};
use std::path::{Path, PathBuf};

/// The most bytes `check` fills with random data per input or parameter: checking is about
/// the code, not about tensors that do not fit in memory.
const CHECK_MAX_LEAF_BYTES: usize = 1 << 30;

/// `adjoint check FILE [--seed S] [--verify-only]`: parses and verifies the graph (errors at
/// `FILE:LINE:COL`), then runs it with the interpreter and compiled in every configuration
/// of the fuzzer on the fuzzer's random feeds, and reports every differing output and update.
pub fn check(path: &Path, seed: u64, verify_only: bool) -> Result<(), CliError> {
    let graph = load_graph(path)?;
    if verify_only {
        println!(
            "{}: ok ({} nodes, {} outputs, {} updates)",
            path.display(),
            graph.node_ids().count(),
            graph.outputs().len(),
            graph.updates().len()
        );
        return Ok(());
    }
    for &id in graph.inputs().iter().chain(graph.parameters()) {
        let name = graph.leaf_name(id).unwrap_or_default();
        let ty = graph.ty(id);
        check_fits(ty, name, "check")?;
        if ty.try_size_bytes().is_none_or(|b| b > CHECK_MAX_LEAF_BYTES) {
            return Err(CliError::in_file(
                path,
                format!(
                    "`{name}` ({ty}) is larger than the {CHECK_MAX_LEAF_BYTES} bytes `check` \
                     fills with random data"
                ),
            ));
        }
    }
    let feeds = adjoint::ir::random_graph::random_feeds(&graph, seed);
    let want = adjoint::interp::run(&graph, &feeds)
        .map_err(|e| CliError::in_file(path, format!("the interpreter failed: {e}")))?;
    let configs = fuzz::all_configs();
    let mut failed = 0;
    for opts in &configs {
        if let Err(why) = fuzz::check_config(&graph, &feeds, &want, opts) {
            failed += 1;
            println!("{} ({}):", path.display(), fuzz::describe(opts));
            for line in why.lines() {
                println!("  {line}");
            }
        }
    }
    if failed > 0 {
        return Err(CliError::in_file(
            path,
            format!(
                "the JIT differs from the interpreter in {failed} of {} configurations",
                configs.len()
            ),
        ));
    }
    println!(
        "{}: the JIT agrees with the interpreter in all {} configurations (seed {seed})",
        path.display(),
        configs.len()
    );
    Ok(())
}

/// Options of `adjoint fuzz`.
pub struct FuzzOptions {
    /// Cases to run.
    pub cases: u64,
    /// Block of case numbers.
    pub seed: u64,
    /// Where reproducers go.
    pub out: PathBuf,
}

/// `adjoint fuzz [--cases N] [--seed S] [--out DIR]`: the fuzzer's campaign; exit status 1 if
/// any graph differs (its minimized reproducer is written to DIR).
pub fn fuzz(opts: &FuzzOptions) -> Result<(), CliError> {
    let campaign = Campaign {
        cases: opts.cases,
        seed: opts.seed,
        out_dir: opts.out.clone(),
    };
    let step = (opts.cases / 10).max(1);
    let report = fuzz::run_campaign(&campaign, |done, total| {
        if done % step == 0 || done == total {
            eprintln!("adjoint fuzz: {done}/{total} cases");
        }
    })
    .map_err(|e| CliError::in_file(&opts.out, format!("cannot write: {e}")))?;
    for f in &report.failures {
        println!("{f}");
    }
    println!("{}", report.summary(&campaign));
    if report.failures.is_empty() {
        Ok(())
    } else {
        Err(CliError::general(format!(
            "{} graphs differ from the interpreter; reproducers are in {}",
            report.failures.len(),
            opts.out.display()
        )))
    }
}

/// The compiled half of `adjoint run --jit`: prints the outputs and updates of one compiled
/// step on `feeds` (16-bit results rounded after every operation, `Options::excess_precision`
/// off), then compares them with the interpreter's; a difference is an error listing every
/// differing value.
pub fn run_jit(
    path: &Path,
    graph: &Graph,
    feeds: &Feeds,
    max_values: usize,
) -> Result<(), CliError> {
    // Rounding every 16-bit result, as the interpreter it is compared with does (see
    // `adjoint::fuzz::configs`).
    let opts = Options {
        check_ir: true,
        excess_precision: false,
        ..Options::default()
    };
    let in_file = |what: &str, e: String| CliError::in_file(path, format!("{what}: {e}"));
    let mut step = adjoint::compile(graph, &opts).map_err(|e| in_file("compile", e.to_string()))?;
    step.set_params(feeds)
        .map_err(|e| in_file("parameters", e.to_string()))?;
    let out = step
        .run(&step.input_feeds(feeds))
        .map_err(|e| in_file("run", e.to_string()))?;
    for (name, _) in graph.outputs() {
        if let Some(value) = out.output(name) {
            println!("{name}: {}", show(value, max_values));
        }
    }
    for (name, _) in graph
        .updates()
        .iter()
        .map(|&(p, v)| (graph.leaf_name(p), v))
    {
        let Some(name) = name else { continue };
        if let Some(value) = step.param(name) {
            println!("update {name}: {}", show(&value, max_values));
        }
    }
    let want = adjoint::interp::run(graph, feeds)
        .map_err(|e| in_file("the interpreter failed", e.to_string()))?;
    fuzz::check_config(graph, feeds, &want, &opts).map_err(|why| {
        CliError::in_file(
            path,
            format!(
                "the JIT differs from the interpreter:\n  {}",
                why.replace('\n', "\n  ")
            ),
        )
    })
}
