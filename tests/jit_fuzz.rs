//! Differential fuzzing of the JIT against the interpreter (`adjoint::fuzz`, where the
//! generator, the comparison and the minimizer live; `adjoint fuzz` runs the same campaign
//! from the command line).
//!
//! CI runs [`CI_CASES`] cases, and every reproducer in `crates/adjoint-jit/tests/data/` in
//! every configuration. The long campaign:
//! `ADJOINT_FUZZ_CASES=10000 ADJOINT_FUZZ_SEED=1 cargo test --release -p adjoint --test
//! jit_fuzz -- --nocapture`, or `adjoint fuzz --cases 10000 --seed 1`.

use adjoint::fuzz::{all_configs, check, describe, reproducers, run_campaign, Campaign};
use std::path::Path;

/// Cases per `cargo test` run.
const CI_CASES: u64 = 300;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn jit_agrees_with_the_interpreter_on_random_graphs() {
    let campaign = Campaign {
        cases: env_u64("ADJOINT_FUZZ_CASES", CI_CASES),
        seed: env_u64("ADJOINT_FUZZ_SEED", 0),
        out_dir: Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz"),
    };
    let report = run_campaign(&campaign, |_, _| {}).unwrap();
    println!("fuzz: {}", report.summary(&campaign));
    let failures: Vec<String> = report.failures.iter().map(|f| f.to_string()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn reproducers_agree_with_the_interpreter() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../adjoint-jit/tests/data");
    let files = reproducers(&dir).unwrap();
    assert!(!files.is_empty(), "no reproducers in {}", dir.display());
    let all = all_configs();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let g =
            adjoint::ir::text::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err((opts, why)) = check(&g, &all, 0) {
            panic!("{} ({}): {why}", path.display(), describe(&opts));
        }
    }
}
