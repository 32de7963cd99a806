//! A matmul with its epilogue, compiled with the epilogue run on each block of the product
//! inside the host kernel (`Options::block_epilogue = true`) and as a second pass over the
//! whole output (the default), timed alternately in one process: W2's and W4's weight-gradient kernels
//! with their SGD and Adam updates, a forward layer with bias and ReLU, and the whole training
//! steps of W2 and W4.
//! `cargo run --release -p adjoint-jit --example epilogue_bench [threads]`
//!
//! Each line gives the best step time of each variant over several alternating rounds and
//! their ratio (on one thread also the best CPU time of the thread, which time spent
//! descheduled by other processes does not inflate), and how many epilogues ran block by
//! block.

use adjoint_ir::{Builder, DType, Feeds, Graph, HostTensor, Rng};
use adjoint_jit::{compile, CompiledStep, Options, Step};
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

/// CPU time of the calling thread: on one thread, less disturbed than the wall time by other
/// processes on a shared machine (time the thread is descheduled does not count).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Best wall time and best CPU time of the calling thread of one step, over at least ~0.15 s
/// (and at least 10 steps).
fn best_step(step: &mut CompiledStep, feeds: &Feeds) -> [Duration; 2] {
    let start = Instant::now();
    let mut best = [Duration::MAX; 2];
    let mut runs = 0;
    while runs < 10 || start.elapsed() < Duration::from_millis(150) {
        let (t, c) = (Instant::now(), thread_cpu());
        step.run_feeds(feeds).unwrap();
        best[0] = best[0].min(t.elapsed());
        best[1] = best[1].min(thread_cpu() - c);
        runs += 1;
    }
    best
}

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .map_or(1, |t| t.parse().expect("threads: a number"));
    let mut cases: Vec<(Graph, Feeds)> = [
        sgd(1024, 1024, 128),
        sgd(784, 1024, 128),
        adam(128, 512, 512),
        adam(512, 512, 128),
        layer(128, 1024, 784),
    ]
    .into_iter()
    .map(|g| {
        let f = feeds(&g);
        (g, f)
    })
    .collect();
    if std::env::var("EPI_PARTS").is_ok() {
        let b = Builder::new("gemm only 1024");
        let x = b.input("x", DType::F32, [128, 1024]);
        let dy = b.input("dy", DType::F32, [128, 1024]);
        b.output("g", x.transpose(0, 1).matmul(dy));
        let g = b.finish();
        let f = feeds(&g);
        cases.push((g, f));
        let b = Builder::new("sgd only 1024");
        let gi = b.input("g", DType::F32, [1024, 1024]);
        let w = b.parameter("w", DType::F32, [1024, 1024]);
        b.update(w, w - gi * 0.01);
        let g = b.finish();
        let f = feeds(&g);
        cases.push((g, f));
    }
    for id in ["W2", "W4"] {
        let t = adjoint_workloads::by_id(id, 0).unwrap().training_step();
        cases.push((t.step.graph, t.feeds));
    }
    println!(
        "{threads} thread(s), {} kernel; best step µs, epilogue per block vs second pass",
        adjoint_jit::gemm::selected_isa()
    );
    for (g, all) in &cases {
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
                s.set_params(all).unwrap();
                s.run_feeds(all).unwrap();
                s
            })
            .collect();
        let fused = steps[0].stats().block_epilogues;
        // [variant][wall, thread CPU]
        let mut best = [[Duration::MAX; 2]; 2];
        for _ in 0..5 {
            for (s, b) in steps.iter_mut().zip(best.iter_mut()) {
                let t = best_step(s, all);
                b[0] = b[0].min(t[0]);
                b[1] = b[1].min(t[1]);
            }
        }
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let cpu = if threads == 1 {
            format!(
                "  cpu {:>8.1} / {:>8.1} ratio {:.3}",
                us(best[0][1]),
                us(best[1][1]),
                us(best[0][1]) / us(best[1][1])
            )
        } else {
            String::new()
        };
        println!(
            "{:<30} per block {:>8.1}  second pass {:>8.1}  ratio {:.3}{cpu}  ({fused} fused)",
            g.name(),
            us(best[0][0]),
            us(best[1][0]),
            us(best[0][0]) / us(best[1][0])
        );
    }
}
