//! GFLOP/s of the host matmul kernel on the W2 shapes (and others given as `MxNxK`).
//! `cargo run --release -p adjoint-jit --example gemm_bench [128x1024x784 ...]`

use adjoint_jit::gemm::{available, sgemm_row_major};
use std::time::Instant;

fn main() {
    if !available() {
        println!("the host matmul kernel needs AVX2 and FMA");
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shapes: Vec<(usize, usize, usize)> = if args.is_empty() {
        vec![
            (128, 1024, 784),
            (128, 1024, 1024),
            (1024, 1024, 1024),
            (256, 512, 256),
        ]
    } else {
        args.iter()
            .map(|s| {
                let v: Vec<usize> = s.split('x').map(|x| x.parse().expect("a size")).collect();
                (v[0], v[1], v[2])
            })
            .collect()
    };
    for (m, n, k) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.2).collect();
        let mut c = vec![0.0f32; m * n];
        let mut best = f64::INFINITY;
        for _ in 0..10 {
            let t = Instant::now();
            sgemm_row_major(&a, &b, &mut c, m, n, k);
            best = best.min(t.elapsed().as_secs_f64());
        }
        let gflops = 2.0 * (m * n * k) as f64 / best / 1e9;
        println!("{m}x{n}x{k}: {:.3} ms, {gflops:.1} GFLOP/s", best * 1e3);
    }
}
