//! Times whole training steps of W1–W4 at benchmark size: interpreter, JIT unfused, JIT fused
//! on one thread and on every core, with compile times (median step time of the timed runs).
//! `cargo run --release -p adjoint-jit --example step_timing [W1..]`

use adjoint_autodiff::{float_parameters, training_step, Optimizer};
use adjoint_ir::Feeds;
use adjoint_jit::{compile, Options};
use adjoint_workloads::OptimizerSpec;
use std::time::Instant;

fn main() {
    let ids: Vec<String> = std::env::args().skip(1).collect();
    let ids = if ids.is_empty() {
        vec!["W1".into(), "W2".into(), "W3".into(), "W4".into()]
    } else {
        ids
    };
    for id in ids {
        let w = adjoint_workloads::by_id(&id, 0).expect("a workload id");
        let opt = match w.optimizer {
            OptimizerSpec::Sgd { lr } => Optimizer::sgd(lr),
            OptimizerSpec::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => Optimizer::adam_with(lr, beta1, beta2, eps),
        };
        let loss = w.graph.output("loss").unwrap();
        let step = training_step(w.graph.clone(), loss, &float_parameters(&w.graph), &opt).unwrap();
        let (g, _) =
            adjoint_opt::optimize(&step.graph, &adjoint_opt::PassOptions::default()).unwrap();
        let mut feeds = w.feeds.clone();
        for (n, v) in &step.state {
            feeds.insert(n.clone(), v.clone());
        }
        let reps = if id == "W1" { 50 } else { 5 };
        let interp = median(
            (0..reps)
                .map(|_| {
                    let t = Instant::now();
                    adjoint_interp::run(&g, &feeds).unwrap();
                    t.elapsed().as_secs_f64()
                })
                .collect(),
        );
        print!("{id}: interp {:.2} ms", interp * 1e3);
        for (fusion, threads) in [(false, 1), (true, 1), (true, 2)] {
            let opts = Options {
                fusion,
                threads,
                cache: false,
                ..Options::default()
            };
            let t = Instant::now();
            let mut s = compile(&g, &opts).unwrap();
            let ct = t.elapsed();
            s.set_params(&feeds).unwrap();
            let inputs: Feeds = feeds
                .iter()
                .filter(|(n, _)| s.inputs().iter().any(|(i, _)| i == *n))
                .map(|(n, t)| (n.clone(), t.clone()))
                .collect();
            let first = s.run(&inputs).unwrap().output("loss").unwrap().to_f64_vec()[0];
            let reps = if id == "W1" { 200 } else { 20 };
            let mut last = 0.0;
            let times = (0..reps)
                .map(|_| {
                    let t = Instant::now();
                    last = s.run(&inputs).unwrap().output("loss").unwrap().to_f64_vec()[0];
                    t.elapsed().as_secs_f64()
                })
                .collect();
            let per = median(times);
            print!(" | fusion {fusion} threads {threads}: compile {:.0} ms ({} kernels, arena {} KiB), step {:.3} ms, loss {first:.4}->{last:.4}", ct.as_secs_f64()*1e3, s.stats().kernels, s.stats().arena_bytes/1024, per*1e3);
        }
        println!();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
