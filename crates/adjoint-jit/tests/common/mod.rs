//! Shared helpers: run a graph through the interpreter (the oracle) and the JIT, and compare.

#![allow(dead_code)]

use adjoint_ir::{DType, Feeds, Graph, HostTensor, Rng, Step};
use adjoint_jit::{compile, CompiledStep, MatmulKernel, Options};

/// The configurations every graph is checked in: fused and unfused on 1 and 2 threads with
/// the host matmul kernel (where the CPU has it), and with Cranelift-generated matmuls.
pub fn modes() -> Vec<Options> {
    let mut out = Vec::new();
    for fusion in [false, true] {
        for threads in [1, 2] {
            out.push(Options {
                fusion,
                threads,
                cache: false,
                ..Options::default()
            });
        }
        out.push(Options {
            fusion,
            threads: if fusion { 2 } else { 1 },
            cache: false,
            matmul: MatmulKernel::Generated,
            ..Options::default()
        });
    }
    out
}

/// [`modes`] with [`Options::excess_precision`] off: compiled code rounds every 16-bit result
/// as the interpreter does, so the two agree bit for bit.
pub fn exact_modes() -> Vec<Options> {
    modes()
        .into_iter()
        .map(|o| Options {
            excess_precision: false,
            ..o
        })
        .collect()
}

/// Tolerance of a dtype: relative error for values of magnitude at least 1, absolute below.
pub fn tolerance(d: DType) -> f64 {
    match d {
        DType::F32 => 1e-4,
        DType::F64 => 1e-10,
        // Two units in the last place: a 16-bit result rounds an f32 one that may differ.
        DType::Bf16 => 1.6e-2,
        DType::F16 => 2e-3,
        _ => 0.0,
    }
}

/// Asserts that `got` matches `want` element by element.
pub fn assert_close(what: &str, got: &HostTensor, want: &HostTensor) {
    assert_eq!(got.ty(), want.ty(), "{what}: type");
    let tol = tolerance(want.dtype());
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let ok = if b.is_nan() {
            a.is_nan()
        } else if b.is_infinite() {
            a == b
        } else {
            (a - b).abs() <= tol * b.abs().max(1.0)
        };
        assert!(ok, "{what}[{i}]: got {a}, want {b} (tolerance {tol})");
    }
}

/// Random feeds for every input and parameter of `g` (integers in `0..int_bound`).
pub fn random_feeds(g: &Graph, seed: u64, int_bound: u32) -> Feeds {
    let mut rng = Rng::new(seed);
    let mut feeds = Feeds::new();
    for &id in g.inputs().iter().chain(g.parameters()) {
        let name = g.leaf_name(id).unwrap().to_string();
        feeds.insert(name, HostTensor::random(g.ty(id), &mut rng, int_bound));
    }
    feeds
}

/// Compiles `g`, sets its parameters from `feeds`, and runs it once on the inputs.
pub fn run_jit(
    g: &Graph,
    feeds: &Feeds,
    opts: &Options,
) -> (CompiledStep, adjoint_jit::StepOutputs) {
    let mut step = compile(g, opts).unwrap_or_else(|e| panic!("compiling {}: {e}", g.name()));
    step.set_params(feeds).unwrap();
    let out = step
        .run_feeds(feeds)
        .unwrap_or_else(|e| panic!("running {}: {e}", g.name()));
    (step, out)
}

/// Checks every output and update of `g` against the interpreter in every mode.
pub fn check_graph(g: &Graph, feeds: &Feeds) {
    check_graph_in(g, feeds, &modes());
}

/// Checks every output and update of `g` against the interpreter in each of `modes`.
pub fn check_graph_in(g: &Graph, feeds: &Feeds, modes: &[Options]) {
    let want = adjoint_interp::run(g, feeds).unwrap();
    for opts in modes.iter().cloned() {
        let mode = format!(
            "{} (fusion {}, threads {}, matmul {:?})",
            g.name(),
            opts.fusion,
            opts.threads,
            opts.matmul
        );
        let (step, out) = run_jit(g, feeds, &opts);
        for (name, t) in &want.outputs {
            let got = out
                .output(name)
                .unwrap_or_else(|| panic!("{mode}: no output {name}"));
            assert_close(&format!("{mode} output {name}"), got, t);
        }
        for (name, t) in &want.updates {
            let got = step.param(name).unwrap();
            assert_close(&format!("{mode} update {name}"), &got, t);
        }
    }
}

/// The descriptor of one unbatched `m×n×k` product with the given element strides of `A`
/// (`[row, column]`), `B` and `C`, split for the thread pool.
pub fn gemm_desc(
    m: usize,
    n: usize,
    k: usize,
    a: [i64; 2],
    b: [i64; 2],
    c: [i64; 2],
) -> adjoint_jit::gemm::GemmDesc {
    adjoint_jit::gemm::GemmDesc::unbatched(m, n, k, a, b, c)
}
