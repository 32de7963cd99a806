//! Times whole training steps of W1–W4 at benchmark size: interpreter, JIT unfused and JIT
//! fused, with compile times. `cargo run --release -p adjoint-jit --example step_timing [W1..]`

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
        let t = Instant::now();
        let reps = 3;
        for _ in 0..reps {
            adjoint_interp::run(&g, &feeds).unwrap();
        }
        let interp = t.elapsed().as_secs_f64() / reps as f64;
        print!("{id}: interp {:.2} ms", interp * 1e3);
        for (fusion, threads) in [(false, 1), (true, 1), (true, 0)] {
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
            let reps = 20;
            let t = Instant::now();
            let mut last = 0.0;
            for _ in 0..reps {
                last = s.run(&inputs).unwrap().output("loss").unwrap().to_f64_vec()[0];
            }
            let per = t.elapsed().as_secs_f64() / reps as f64;
            print!(" | fusion {fusion} threads {threads}: compile {:.0} ms ({} kernels, arena {} KiB), step {:.3} ms, loss {first:.4}->{last:.4}", ct.as_secs_f64()*1e3, s.stats().kernels, s.stats().arena_bytes/1024, per*1e3);
        }
        println!();
    }
}
