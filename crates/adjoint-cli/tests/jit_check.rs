//! `adjoint check`, `adjoint fuzz` and `adjoint run --jit`: the JIT compared with the
//! interpreter from the command line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn adjoint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_adjoint"))
        .args(args)
        .output()
        .expect("the adjoint binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// A fresh temporary folder of this test process.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("adjoint-cli-jit-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn graph_file(name: &str, source: &str) -> PathBuf {
    let path = scratch(name).join(format!("{name}.adj"));
    std::fs::write(&path, source).unwrap();
    path
}

/// `log(exp(60·x))`: the JIT's `exp` flushes results below the smallest normal f32 to 0
/// (documented in `math::emit_exp`), so where `60·x < -87.3` the JIT gives `-inf` and the
/// interpreter a finite value: a real, explainable difference for the tools to report.
const FLUSH: &str = "graph flush {
  %x: f32[16] = input \"x\"
  %c: f32[] = constant 60
  %b: f32[16] = broadcast %c shape=[16]
  %s: f32[16] = mul %x, %b
  %e: f32[16] = exp %s
  %l: f32[16] = log %e
  output \"y\" = %l
}
";

#[test]
fn check_passes_every_reproducer_of_the_fuzzer() {
    let dir = repo_file("crates/adjoint-jit/tests/data");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "adj"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    for f in files {
        let out = adjoint(&["check", f.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}: {}{}",
            f.display(),
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).contains("agrees with the interpreter in all 8 configurations"),
            "{}",
            text(&out.stdout)
        );
    }
}

#[test]
fn check_reports_parse_and_type_errors_with_line_and_column() {
    let bad = graph_file(
        "badtype",
        "graph g {\n  %x: f32[2] = input \"x\"\n  %y: f32[3] = exp %x\n  output \"y\" = %y\n}\n",
    );
    let out = adjoint(&["check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("badtype.adj:3:7:"), "{err}");
    assert!(err.contains("f32[3]"), "{err}");

    let typo = graph_file(
        "typo",
        "graph g {\n  %x: f32[2] = input \"x\"\n  %y: f32[2] = expp %x\n  output \"y\" = %y\n}\n",
    );
    let out = adjoint(&["check", "--verify-only", typo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("typo.adj:3:"),
        "{}",
        text(&out.stderr)
    );

    let out = adjoint(&[
        "check",
        "--verify-only",
        repo_file("tests/data/mlp.adj").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(": ok (41 nodes"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn check_reports_every_configuration_that_differs() {
    let path = graph_file("flush", FLUSH);
    let out = adjoint(&["check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches("output y: element").count(), 8, "{stdout}");
    assert!(stdout.contains("got -inf"), "{stdout}");
    assert!(
        stdout.contains("(fusion off, threads 2, matmul Generated):"),
        "{stdout}"
    );
    assert!(
        text(&out.stderr).contains("differs from the interpreter in 8 of 8 configurations"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn run_jit_prints_the_compiled_results_and_compares_them() {
    let mlp = repo_file("tests/data/mlp.adj");
    let out = adjoint(&["run", mlp.to_str().unwrap(), "--random", "--jit"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let jit = text(&out.stdout);
    assert!(jit.starts_with("loss: f32[] = "), "{jit}");
    let out = adjoint(&["run", mlp.to_str().unwrap(), "--random"]);
    let interp = text(&out.stdout);
    let value = |s: &str| -> f64 { s.trim().rsplit(' ').next().unwrap().parse().unwrap() };
    assert!((value(&jit) - value(&interp)).abs() <= 1e-3 * value(&interp).abs());

    let path = graph_file("flush_run", FLUSH);
    let feed = "x=-1.5,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1";
    let out = adjoint(&["run", path.to_str().unwrap(), "--feed", feed, "--jit"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("y: f32[16] = [-inf, 0"),
        "{}",
        text(&out.stdout)
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("the JIT differs from the interpreter"),
        "{err}"
    );
    assert!(err.contains("element 0: got -inf, want -90"), "{err}");
}

#[test]
fn fuzz_runs_a_campaign_and_validates_its_numbers() {
    let dir = scratch("fuzz");
    let out = adjoint(&[
        "fuzz",
        "--cases",
        "4",
        "--seed",
        "3",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("4 cases from seed 3: 8 graphs, 32 compiled runs, 0 failures"),
        "{}",
        text(&out.stdout)
    );
    assert!(dir.join("last.adj").exists());
    for bad in ["0", "-1", "1e3", "1000000001", "many"] {
        let out = adjoint(&["fuzz", "--cases", bad]);
        assert_eq!(out.status.code(), Some(2), "--cases {bad}");
        assert!(
            text(&out.stderr).contains("--cases"),
            "{}",
            text(&out.stderr)
        );
    }
}
