//! W-style training steps compiled with the host matmul on every ISA this CPU runs (selected
//! with `select_isa`, as `ADJOINT_ISA` does), each compared with the interpreter; and
//! `ADJOINT_ISA` itself, read in a child process.
//!
//! This file has its own process: switching the ISA here cannot change another test file's.

mod common;

use adjoint_ir::{Builder, DType, Feeds, Graph};
use adjoint_jit::gemm::{select_isa, selected_isa, Isa};
use adjoint_jit::Options;
use adjoint_workloads::{gpt, mlp, GptConfig, MlpConfig};
use common::{assert_close, random_feeds, run_jit};
use std::sync::Mutex;

/// Tests that switch the process's ISA run one at a time.
static ISA_LOCK: Mutex<()> = Mutex::new(());

/// Training steps of W2- and W4-shaped models at sizes that cross every kernel's tile edges
/// (the classifier, 70 → 10, takes the narrow path), and a batched product with a transposed
/// operand.
fn graphs() -> Vec<(Graph, Feeds)> {
    let mut out = Vec::new();
    let wide = MlpConfig {
        batch: 33,
        inputs: 70,
        hidden: vec![50, 70],
        classes: 10,
    };
    let gpt_cfg = GptConfig {
        batch: 2,
        seq: 16,
        vocab: 40,
        width: 32,
        heads: 4,
        mlp_hidden: 64,
        layers: 1,
    };
    for w in [mlp("W2", "mlp-wide", &wide, 2), gpt(&gpt_cfg, 4)] {
        let t = w.training_step();
        out.push((t.step.graph, t.feeds));
    }
    let b = Builder::new("batched");
    let x = b.input("x", DType::F32, [3, 29, 45]);
    let y = b.input("y", DType::F32, [3, 33, 45]);
    b.output("xyt", x.matmul(y.transpose(-1, -2)));
    b.output("xtx", x.transpose(-1, -2).matmul(x));
    let g = b.finish();
    let feeds = random_feeds(&g, 7, 4);
    out.push((g, feeds));
    out
}

#[test]
fn compiled_steps_match_the_interpreter_on_every_isa() {
    let _guard = ISA_LOCK.lock().unwrap();
    let before = selected_isa();
    for isa in Isa::supported_all() {
        assert_eq!(select_isa(isa), isa);
        assert_eq!(selected_isa(), isa);
        for (g, feeds) in graphs() {
            let want = adjoint_interp::run(&g, &feeds).unwrap();
            for threads in [1, 2] {
                let opts = Options {
                    threads,
                    cache: false,
                    ..Options::default()
                };
                let (step, out) = run_jit(&g, &feeds, &opts);
                assert!(step.kernels().contains("host gemm"), "{isa} {}", g.name());
                let mode = format!("{isa} {} threads {threads}", g.name());
                for (name, t) in &want.outputs {
                    assert_close(
                        &format!("{mode} output {name}"),
                        out.output(name).unwrap(),
                        t,
                    );
                }
                for (name, t) in &want.updates {
                    assert_close(
                        &format!("{mode} update {name}"),
                        &step.param(name).unwrap(),
                        t,
                    );
                }
            }
        }
    }
    select_isa(before);
}

/// Run in a child process by the test below, with `ADJOINT_ISA` set.
#[test]
fn child_reports_the_isa_from_the_environment() {
    let Ok(want) = std::env::var("GEMM_ISA_CHILD_EXPECTS") else {
        return;
    };
    assert_eq!(selected_isa().name(), want);
}

#[test]
fn adjoint_isa_selects_a_path_and_an_unknown_or_missing_one_falls_back() {
    let exe = std::env::current_exe().unwrap();
    let best = Isa::detect();
    let mut cases: Vec<(String, Isa)> = Isa::ALL
        .into_iter()
        .map(|i| (i.name().to_string(), if i.supported() { i } else { best }))
        .collect();
    cases.push(("sse9".to_string(), best));
    for (env, want) in cases {
        let out = std::process::Command::new(&exe)
            .args([
                "--exact",
                "child_reports_the_isa_from_the_environment",
                "--test-threads=1",
                "--nocapture",
            ])
            .env("ADJOINT_ISA", &env)
            .env("GEMM_ISA_CHILD_EXPECTS", want.name())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "ADJOINT_ISA={env}: {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        if want.name() != env {
            assert!(stderr.contains("using"), "ADJOINT_ISA={env}: {stderr}");
        }
    }
}
