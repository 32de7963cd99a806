//! Golden (snapshot) tests: the optimized W1 training step in the text format, and its fusion
//! plan. Any change in what the passes or the planner do shows up as a diff of these files in
//! review. Regenerate them with
//!
//! ```text
//! UPDATE_GOLDEN=1 cargo test -p adjoint-opt --test golden
//! ```

mod common;

use adjoint_opt::{optimize, plan, PassOptions, PlanOptions};
use std::path::PathBuf;

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the golden file at line {} (run with UPDATE_GOLDEN=1 to accept)\n\
             expected: {:?}\nactual:   {:?}",
            path.display(),
            line + 1,
            expected.lines().nth(line),
            actual.lines().nth(line)
        );
    }
}

fn w1_optimized() -> adjoint_ir::Graph {
    let (step, _) = common::step_graph(&adjoint_workloads::w1_mlp_small(0));
    optimize(&step, &PassOptions::default()).unwrap().0
}

#[test]
fn optimized_w1_step_graph() {
    golden(
        "w1_step.optimized.txt",
        &adjoint_ir::text::print(&w1_optimized()),
    );
}

#[test]
fn w1_step_fusion_plan() {
    let p = plan(&w1_optimized(), &PlanOptions::default());
    golden("w1_step.plan.txt", &p.to_string());
}
