//! A matmul with its epilogue, compiled with the epilogue run on each block of the product
//! inside the host kernel (`Options::block_epilogue`, the default) and as a second pass over
//! the whole output, timed alternately in one process: W2's and W4's weight-gradient kernels
//! with their SGD and Adam updates, and a forward layer with bias and ReLU.
//! `cargo run --release -p adjoint-jit --example epilogue_bench [threads]`
//!
//! Each line gives the best step time of each variant over several alternating rounds (the
//! graph is the one kernel) and their ratio.

use adjoint_ir::{Builder, DType, Feeds, Graph, HostTensor, Rng};
use adjoint_jit::{compile, CompiledStep, Options};
use std::time::{Duration, Instant};

/// `w ← w - lr·(xᵀ·dy)` with `w: m×n` and `k` rows of `x` and `dy` (W2's `dW` kernels).
fn sgd(m: usize, n: usize, k: usize) -> Graph {
    let b = Builder::new(&format!("sgd {m}x{n}x{k} (Aᵀ·B)"));
    let x = b.input("x", DType::F32, [k, m]);
    let dy = b.input("dy", DType::F32, [k, n]);
    let w = b.parameter("w", DType::F32, [m, n]);
    let g = x.transpose(0, 1).matmul(dy);
    b.update(w, w - g * 0.01);
    b.finish()
}

/// Adam's update of `w: m×n` from `g = xᵀ·dy` (W4's weight gradients): `m`, `v` and `w`.
fn adam(m: usize, n: usize, k: usize) -> Graph {
    let b = Builder::new(&format!("adam {m}x{n}x{k} (Aᵀ·B)"));
    let x = b.input("x", DType::F32, [k, m]);
    let dy = b.input("dy", DType::F32, [k, n]);
    let w = b.parameter("w", DType::F32, [m, n]);
    let mo = b.parameter("m", DType::F32, [m, n]);
    let v = b.parameter("v", DType::F32, [m, n]);
    let g = x.transpose(0, 1).matmul(dy);
    let m2 = mo * 0.9 + g * 0.1;
    let v2 = v * 0.999 + g * g * 0.001;
    b.update(mo, m2);
    b.update(v, v2);
    b.update(w, w - m2 * 1e-3 / (v2.sqrt() + 1e-8));
    b.finish()
}

/// `relu(x·w + bias)` with `x: m×k` (W2's first layer).
fn layer(m: usize, n: usize, k: usize) -> Graph {
    let b = Builder::new(&format!("relu(x·w + b) {m}x{n}x{k}"));
    let x = b.input("x", DType::F32, [m, k]);
    let w = b.parameter("w", DType::F32, [k, n]);
    let bias = b.parameter("bias", DType::F32, [n]);
    b.output("y", (x.matmul(w) + bias).relu());
    b.finish()
}

/// Random values for every input and parameter of `g`.
fn feeds(g: &Graph) -> Feeds {
    let mut rng = Rng::new(1);
    let mut f = Feeds::new();
    for &id in g.inputs().iter().chain(g.parameters()) {
        let name = g.leaf_name(id).unwrap().to_string();
        f.insert(name, HostTensor::random(g.ty(id), &mut rng, 4));
    }
    f
}

/// Best time of one step over at least ~0.15 s (and at least 10 steps).
fn best_step(step: &mut CompiledStep, inputs: &Feeds) -> Duration {
    let start = Instant::now();
    let mut best = Duration::MAX;
    let mut runs = 0;
    while runs < 10 || start.elapsed() < Duration::from_millis(150) {
        let t = Instant::now();
        step.run(inputs).unwrap();
        best = best.min(t.elapsed());
        runs += 1;
    }
    best
}

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .map_or(1, |t| t.parse().expect("threads: a number"));
    let graphs = [
        sgd(1024, 1024, 128),
        sgd(784, 1024, 128),
        adam(128, 512, 512),
        adam(512, 512, 128),
        layer(128, 1024, 784),
    ];
    println!(
        "{threads} thread(s), {} kernel; best step µs, epilogue per block vs second pass",
        adjoint_jit::gemm::selected_isa()
    );
    for g in &graphs {
        let all = feeds(g);
        let mut inputs = Feeds::new();
        for &id in g.inputs() {
            let name = g.leaf_name(id).unwrap();
            inputs.insert(name.to_string(), all[name].clone());
        }
        let mut steps: Vec<CompiledStep> = [true, false]
            .into_iter()
            .map(|block_epilogue| {
                let opts = Options {
                    threads,
                    cache: false,
                    block_epilogue,
                    ..Options::default()
                };
                let mut s = compile(g, &opts).unwrap();
                s.set_params(&all).unwrap();
                s.run(&inputs).unwrap();
                s
            })
            .collect();
        let fused = steps[0].stats().block_epilogues;
        let mut best = [Duration::MAX; 2];
        for _ in 0..5 {
            for (s, b) in steps.iter_mut().zip(best.iter_mut()) {
                *b = (*b).min(best_step(s, &inputs));
            }
        }
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "{:<36} per block {:>8.1}  second pass {:>8.1}  ratio {:.3}  ({fused} fused)",
            g.name(),
            us(best[0]),
            us(best[1]),
            us(best[0]) / us(best[1])
        );
    }
}
