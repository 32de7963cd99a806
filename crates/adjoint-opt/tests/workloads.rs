//! The W1–W4 training-step graphs through the whole pipeline: optimize, plan, check the memory
//! plan. `workload_numbers` prints the table in `docs/passes.md`:
//!
//! ```text
//! cargo test -p adjoint-opt --release --test workloads -- --nocapture workload_numbers
//! ```

mod common;

use adjoint_opt::{check_memory_plan, optimize, plan, PassOptions, PlanOptions};

#[test]
fn workload_numbers() {
    println!(
        "| workload | step nodes | optimized | planned | kernels | arena bytes | lower bound | \
         kept (remat) | kept (keep-all) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for w in adjoint_workloads::all(0) {
        let (step, _) = common::step_graph(&w);
        let (g, report) = optimize(&step, &PassOptions::default()).unwrap();
        g.verify().unwrap();
        let p = plan(&g, &PlanOptions::default());
        p.graph.verify().unwrap();
        check_memory_plan(&p.graph, &p.schedule, &p.memory)
            .unwrap_or_else(|e| panic!("{}: {e}", w.id));
        let keep = plan(
            &g,
            &PlanOptions {
                keep_all: true,
                ..PlanOptions::default()
            },
        );
        check_memory_plan(&keep.graph, &keep.schedule, &keep.memory).unwrap();
        let unfused = plan(
            &g,
            &PlanOptions {
                fuse: false,
                ..PlanOptions::default()
            },
        );
        check_memory_plan(&unfused.graph, &unfused.schedule, &unfused.memory).unwrap();
        assert!(
            p.remat.bytes_kept <= p.remat.bytes_kept_without_remat,
            "{}",
            w.id
        );
        assert!(
            p.schedule.groups.len() < unfused.schedule.groups.len(),
            "{}",
            w.id
        );
        println!(
            "| {} {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            w.id,
            w.name,
            report.nodes_before,
            report.nodes_after,
            p.graph.len(),
            p.schedule.groups.len(),
            p.memory.arena_bytes,
            p.memory.lower_bound,
            p.remat.bytes_kept,
            p.remat.bytes_kept_without_remat
        );
        if w.id == "W3" {
            let ratio = p.memory.arena_bytes as f64 / p.memory.lower_bound as f64;
            assert!(ratio <= 1.25, "W3 arena is {ratio:.3}x its lower bound");
        }
    }
}
