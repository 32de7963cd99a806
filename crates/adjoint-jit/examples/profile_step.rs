//! Per-nest wall times of one workload's training step.
//! `cargo run --release -p adjoint-jit --example profile_step -- W3 [fused|unfused] [threads]`
//! (`KEEP_ALL=1`: keep every forward value the backward needs, no rematerialization).

use adjoint_jit::{compile, Options, Step};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let id = args.first().map_or("W3", String::as_str);
    let fusion = args.get(1).is_none_or(|m| m != "unfused");
    let threads = args.get(2).and_then(|t| t.parse().ok()).unwrap_or(1);
    let top = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(25);
    let w = adjoint_workloads::by_id(id, 0).expect("a workload id");
    let training = w.training_step();
    let step = training.step;
    let t = std::time::Instant::now();
    let (g, _) = adjoint_opt::optimize(&step.graph, &adjoint_opt::PassOptions::default())
        .expect("optimized");
    println!("passes {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    let feeds = training.feeds;
    let opts = Options {
        fusion,
        threads,
        cache: false,
        profile: true,
        keep_all: std::env::var_os("KEEP_ALL").is_some(),
        ..Options::default()
    };
    let mut s = compile(&g, &opts).expect("compiled");
    let st = s.stats();
    println!(
        "compile {:.1} ms: planning {:.1}, lowering {:.1}, cranelift {:.1}, finalize {:.1} ({} kernels, {} functions)",
        st.total().as_secs_f64() * 1e3,
        st.planning.as_secs_f64() * 1e3,
        st.codegen.lowering.as_secs_f64() * 1e3,
        st.codegen.cranelift.as_secs_f64() * 1e3,
        st.codegen.finalize.as_secs_f64() * 1e3,
        st.kernels,
        st.functions
    );
    s.set_params(&feeds).expect("parameters");
    s.run_feeds(&feeds).expect("a run");
    s.reset_profile();
    for _ in 0..10 {
        s.run_feeds(&feeds).expect("a run");
    }
    let p = s.profile().expect("profiling on");
    println!(
        "{id} fusion {fusion} threads {threads}: {:.3} ms per step in nests",
        p.total().as_secs_f64() * 1e3 / 10.0
    );
    let text = p.to_string();
    for line in text.lines().take(top + 1) {
        println!("{line}");
    }
    if std::env::var_os("PROFILE_KERNELS").is_some() {
        println!("{}", s.kernels());
    }
}
