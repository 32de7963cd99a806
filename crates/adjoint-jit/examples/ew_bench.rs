//! Nanoseconds per element of a few elementwise kernels (exp, tanh, GELU, add) on 256×512.
//! `cargo run --release -p adjoint-jit --example ew_bench`

use adjoint_ir::{Builder, DType, Feeds, HostTensor};
use adjoint_jit::{compile, Options};
use std::time::Instant;

fn main() {
    let n = 256 * 512;
    for (name, scale) in [
        ("exp", 1.0),
        ("exp_underflow", -200.0),
        ("tanh", 1.0),
        ("gelu", 1.0),
        ("add", 1.0),
    ] {
        let b = Builder::new(name);
        let x = b.input("x", DType::F32, [256, 512]);
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
            ..Options::default()
        };
        let mut s = compile(&g, &opts).expect("compiled");
        let mut feeds = Feeds::new();
        let data: Vec<f32> = (0..n).map(|i| scale * ((i % 97) as f32 / 97.0)).collect();
        feeds.insert(
            "x".into(),
            HostTensor::from_f32([256, 512], data).expect("a tensor"),
        );
        let mut best = f64::INFINITY;
        for _ in 0..50 {
            let t = Instant::now();
            s.run(&feeds).expect("a run");
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("{name}: {:.2} ns/element", best * 1e9 / n as f64);
    }
}
