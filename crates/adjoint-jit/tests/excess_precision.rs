//! Excess precision (`Options::excess_precision`, on by default): inside a kernel, 16-bit
//! results stay in f32 and are rounded only where they are stored. The compiled step then
//! differs from the interpreter (which rounds every result) by at most the rounding errors the
//! interpreter makes along the chain, is at least as close to an f64 evaluation of the same
//! graph, and with the option off agrees with the interpreter bit for bit (`tests/half.rs`).
//! Run under `ADJOINT_ISA=avx512|avx2|generic` for the host matmul's paths.

mod common;

use adjoint_ir::{Builder, DType, Feeds, Graph, HostTensor, NodeId, Op, Rng};
use adjoint_jit::Options;
use common::{modes, run_jit};
use std::collections::HashSet;

/// The gap between 1 and the next value of `d`.
fn epsilon(d: DType) -> f64 {
    match d {
        DType::Bf16 => 2f64.powi(-7),
        DType::F16 => 2f64.powi(-10),
        other => panic!("{other} is not a 16-bit float"),
    }
}

/// GELU forward and backward as a transformer's MLP computes them: `y = gelu(h)` and the
/// gradient `dh` of `sum(y · dy)` with respect to `h`, where `h` is the input `x` or, with
/// `matmul`, `x · w + bias` (the host kernel's 16-bit product).
fn gelu_graph(d: DType, matmul: bool) -> Graph {
    let b = Builder::new(&format!("gelu_{d}_{matmul}"));
    let (rows, cols) = (37, 64);
    let h = if matmul {
        let x = b.input("x", d, [rows, 48]);
        let w = b.input("w", d, [48, cols]);
        let bias = b.input("bias", d, [cols]);
        x.matmul(w) + bias
    } else {
        b.input("x", d, [rows, cols])
    };
    let dy = b.input("dy", d, [rows, cols]);
    let y = h.gelu();
    b.output("y", y);
    let loss = (y * dy).sum_all();
    let (loss, h) = (loss.id(), h.id());
    let mut grads = adjoint_autodiff::grad(b.finish(), loss, &[h]).unwrap();
    let dh = grads.of(h).unwrap();
    grads.graph.set_output("dh", dh);
    grads.graph
}

/// Random feeds for [`gelu_graph`] in dtype `d` (normal values, `x` spread over GELU's
/// curved part and both tails), and the same values widened to f64.
fn gelu_feeds(g: &Graph, d: DType, seed: u64) -> (Feeds, Feeds) {
    let mut rng = Rng::new(seed);
    let (mut low, mut wide) = (Feeds::new(), Feeds::new());
    for &id in g.inputs() {
        let name = g.leaf_name(id).unwrap().to_string();
        let dims = g.ty(id).shape.dims().to_vec();
        let n: usize = dims.iter().product();
        let spread = if name == "x" { 2.5 } else { 1.0 };
        let v: Vec<f64> = (0..n).map(|_| rng.normal() * spread).collect();
        let t = HostTensor::from_f64_as(d, dims.clone(), &v).unwrap();
        // The 16-bit values exactly, as f64.
        let exact = HostTensor::from_f64_as(DType::F64, dims, &t.to_f64_vec()).unwrap();
        low.insert(name.clone(), t);
        wide.insert(name, exact);
    }
    (low, wide)
}

/// GELU's input `h` of [`gelu_graph`] for `feeds`, in f64 (`x`, or `x · w + bias`).
fn gelu_input(feeds: &Feeds, matmul: bool) -> Vec<f64> {
    let x = feeds["x"].to_f64_vec();
    if !matmul {
        return x;
    }
    let (w, bias) = (feeds["w"].to_f64_vec(), feeds["bias"].to_f64_vec());
    let (k, n) = (w.len() / bias.len(), bias.len());
    let mut h = Vec::with_capacity(x.len() / k * n);
    for row in x.chunks(k) {
        for (j, b) in bias.iter().enumerate() {
            h.push(
                b + row
                    .iter()
                    .enumerate()
                    .map(|(p, a)| a * w[p * n + j])
                    .sum::<f64>(),
            );
        }
    }
    h
}

/// The 16-bit operations `out` depends on in `g`: each rounds its result once in the
/// interpreter, so the chain's length.
fn roundings(g: &Graph, out: NodeId) -> usize {
    let mut seen = HashSet::new();
    let mut stack = vec![out];
    let mut count = 0;
    while let Some(n) = stack.pop() {
        if !seen.insert(n) {
            continue;
        }
        let leaf = matches!(
            g.op(n),
            Op::Input { .. } | Op::Parameter { .. } | Op::Constant(_)
        );
        if g.ty(n).dtype.is_half() && !leaf {
            count += 1;
        }
        stack.extend(g.operands(n).iter().copied());
    }
    count
}

fn output(outs: &adjoint_jit::StepOutputs, name: &str) -> Vec<f64> {
    outs.output(name).unwrap().to_f64_vec()
}

#[test]
fn agrees_with_the_interpreter_within_the_rounding_of_the_chain() {
    for d in [DType::Bf16, DType::F16] {
        for matmul in [false, true] {
            let g = gelu_graph(d, matmul);
            let (feeds, _) = gelu_feeds(&g, d, 7);
            let want = adjoint_interp::run(&g, &feeds).unwrap();
            let h = gelu_input(&feeds, matmul);
            let dy = feeds["dy"].to_f64_vec();
            for opts in modes() {
                assert!(opts.excess_precision, "on by default");
                let (_, out) = run_jit(&g, &feeds, &opts);
                for (name, t) in &want.outputs {
                    // Each of the chain's roundings moves a value by at most half a unit of
                    // its last place, relative to the magnitudes in play (GELU's input `h`,
                    // and for the gradient the incoming gradient too), and GELU and its
                    // derivative pass such a change on with a gain below 2. The stored
                    // results are rounded once more (one unit between the two).
                    let n = roundings(&g, g.output(name).unwrap()) + 2;
                    let got = output(&out, name);
                    for (i, (a, b)) in got.iter().zip(t.to_f64_vec()).enumerate() {
                        let scale = h[i].abs().max(1.0) * dy[i].abs().max(1.0);
                        let tol = n as f64 * epsilon(d) * scale;
                        assert!(
                            (a - b).abs() <= tol,
                            "{} {name}[{i}] (fusion {}, threads {}): {a} vs the interpreter's \
                             {b}, more than {tol} ({n} roundings)",
                            g.name(),
                            opts.fusion,
                            opts.threads,
                        );
                    }
                }
            }
        }
    }
}

/// The largest and the mean absolute difference between `got` and `exact`.
fn errors(got: &[f64], exact: &[f64]) -> (f64, f64) {
    let diffs: Vec<f64> = got.iter().zip(exact).map(|(a, b)| (a - b).abs()).collect();
    let max = diffs.iter().copied().fold(0.0, f64::max);
    (max, diffs.iter().sum::<f64>() / diffs.len() as f64)
}

#[test]
fn is_at_least_as_close_to_f64_as_rounding_every_result() {
    for d in [DType::Bf16, DType::F16] {
        let g = gelu_graph(d, false);
        let (feeds, wide) = gelu_feeds(&g, d, 8);
        let exact = adjoint_interp::run(&gelu_graph(DType::F64, false), &wide).unwrap();
        let compiled = |excess_precision| {
            let opts = Options {
                excess_precision,
                cache: false,
                ..Options::default()
            };
            run_jit(&g, &feeds, &opts).1
        };
        let (on, off) = (compiled(true), compiled(false));
        for name in ["y", "dh"] {
            let reference = exact.outputs.iter().find(|(n, _)| n == name).unwrap();
            let reference = reference.1.to_f64_vec();
            let (max_on, mean_on) = errors(&output(&on, name), &reference);
            let (max_off, mean_off) = errors(&output(&off, name), &reference);
            assert!(
                max_on <= max_off && mean_on < mean_off,
                "{d} {name}: excess precision is off f64 by {max_on} at most, {mean_on} on \
                 average; rounding every result by {max_off}, {mean_off}"
            );
        }
    }
}

#[test]
fn a_16_bit_value_is_rounded_where_it_is_stored() {
    // f16: `x · x` overflows f16 (300² > 65504) but `x · x · 0.001` does not. Rounding every
    // result gives infinity; excess precision keeps the product in f32 and rounds only the
    // stored quotient. A stored intermediate is rounded either way.
    let b = Builder::new("overflow");
    let x = b.input("x", DType::F16, [8]);
    let square = x * x;
    b.output("scaled", square * x.scalar_like(1e-3));
    let g = b.finish();
    let mut feeds = Feeds::new();
    let x = HostTensor::from_f64_as(DType::F16, [8], &[300.0; 8]).unwrap();
    feeds.insert("x".into(), x);
    let run = |excess_precision| {
        let opts = Options {
            excess_precision,
            cache: false,
            ..Options::default()
        };
        output(&run_jit(&g, &feeds, &opts).1, "scaled")
    };
    let interp = adjoint_interp::run(&g, &feeds).unwrap();
    assert!(interp.outputs[0].1.to_f64_vec()[0].is_infinite());
    assert!(run(false)[0].is_infinite());
    // 90 is an f16 value; the f32 product 90000 times the f32 value of f16(1e-3).
    let scale = HostTensor::from_f64_as(DType::F16, [1], &[1e-3])
        .unwrap()
        .to_f64_vec()[0];
    let want = HostTensor::from_f64_as(DType::F16, [1], &[(90000.0 * scale) as f32 as f64])
        .unwrap()
        .to_f64_vec()[0];
    assert_eq!(run(true), vec![want; 8]);
}

#[test]
fn the_option_is_part_of_the_compile_cache_key() {
    let g = gelu_graph(DType::Bf16, false);
    let (feeds, _) = gelu_feeds(&g, DType::Bf16, 9);
    let compile = |excess_precision| {
        let opts = Options {
            excess_precision,
            ..Options::default()
        };
        run_jit(&g, &feeds, &opts)
    };
    // Only this test of the file uses the cache, so nothing evicts its entries.
    let (_, on_out) = compile(true);
    let (off, off_out) = compile(false);
    assert!(
        !off.stats().cached,
        "a step rounding every result reused excess-precision code"
    );
    // The two steps round differently somewhere in 2368 GELUs.
    assert_ne!(output(&on_out, "y"), output(&off_out, "y"));
    let (again, _) = compile(true);
    assert!(
        again.stats().cached,
        "the same graph and options compiled again"
    );
}
