//! The `adjoint` binary end to end: dump, dot, run, and `FILE:LINE:COL:` errors with exit 1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn adjoint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_adjoint"))
        .args(args)
        .output()
        .expect("the adjoint binary runs")
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A scratch copy of `tests/data/mlp.adj` with `edit` applied, in a fresh temporary folder.
fn edited_mlp(tag: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let original = std::fs::read_to_string(repo_file("tests/data/mlp.adj")).unwrap();
    let dir = std::env::temp_dir().join(format!("adjoint-cli-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mlp.adj");
    std::fs::write(&path, edit(&original)).unwrap();
    path
}

#[test]
fn dump_prints_the_mlp_graph() {
    let path = repo_file("tests/data/mlp.adj");
    let out = adjoint(&["dump", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(printed.contains("matmul"), "{printed}");
    assert!(printed.contains("output \"loss\""), "{printed}");
    // The file is in canonical form: dumping it gives it back unchanged.
    assert_eq!(printed, std::fs::read_to_string(&path).unwrap());
}

#[test]
fn mlp_adj_is_the_w1_forward_graph() {
    let out = adjoint(&["workload", "W1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected = std::fs::read_to_string(repo_file("tests/data/mlp.adj")).unwrap();
    assert_eq!(
        text(&out.stdout),
        expected,
        "regenerate with: cargo run -p adjoint-cli -- workload W1 -o tests/data/mlp.adj"
    );
}

#[test]
fn misspelled_op_exits_1_with_file_line_col() {
    let path = edited_mlp("typo", |s| s.replacen("= matmul ", "= matmull ", 1));
    let out = adjoint(&["dump", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let prefix = format!("{}:", path.display());
    assert!(err.starts_with(&prefix), "{err}");
    let rest = &err[prefix.len()..];
    let mut parts = rest.splitn(3, ':');
    let line: usize = parts.next().unwrap().parse().expect("a line number");
    let col: usize = parts.next().unwrap().parse().expect("a column number");
    assert!(line > 1 && col > 1, "{err}");
    assert!(err.contains("matmull"), "{err}");
}

#[test]
fn shape_mismatch_exits_1_with_file_line_col() {
    // Declare the first weight with the wrong number of rows: its matmul no longer fits.
    let path = edited_mlp("shape", |s| {
        s.replacen("f32[64,128] = parameter", "f32[65,128] = parameter", 1)
    });
    let out = adjoint(&["dump", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with(&format!("{}:", path.display())), "{err}");
    assert!(err.contains("matmul"), "{err}");
    assert!(err.contains("[64,64]") && err.contains("[65,128]"), "{err}");
}

#[test]
fn run_evaluates_with_given_and_random_feeds() {
    let path = repo_file("tests/data/mlp.adj");
    let out = adjoint(&["run", path.to_str().unwrap(), "--random", "--seed", "3"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let loss: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("loss: f32[] = "))
        .expect("a loss line")
        .parse()
        .unwrap();
    assert!(loss.is_finite() && loss > 0.0, "{stdout}");

    let out = adjoint(&["run", path.to_str().unwrap(), "--feed", "x=1,2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("needs 4096 value(s), got 2"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn dot_marks_inputs_parameters_and_outputs() {
    let path = repo_file("tests/data/mlp.adj");
    let out = adjoint(&["dot", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dot = text(&out.stdout);
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(dot.contains("matmul") && dot.contains("[64,128]"), "{dot}");
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = adjoint(&["dump", "no/such/file.adj"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no/such/file.adj: cannot read"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn grad_appends_named_gradients() {
    let path = repo_file("tests/data/mlp.adj");
    let out = adjoint(&[
        "grad",
        path.to_str().unwrap(),
        "--loss",
        "loss",
        "--wrt",
        "w3,b3",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(printed.contains("output \"w3.grad\""), "{printed}");
    assert!(printed.contains("%b3.grad: f32[10]"), "{printed}");

    let out = adjoint(&[
        "grad",
        path.to_str().unwrap(),
        "--loss",
        "loss",
        "--wrt",
        "y",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an i32 input is not differentiable"
    );
}

#[test]
fn gradcheck_passes_on_the_mlp_and_reports_each_wrt() {
    let path = repo_file("tests/data/mlp.adj");
    let out = adjoint(&[
        "gradcheck",
        path.to_str().unwrap(),
        "--loss",
        "loss",
        "--wrt",
        "w2,b1",
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let report = text(&out.stdout);
    assert!(
        report.contains("w2") && report.contains("b1") && report.contains("PASS"),
        "{report}"
    );
}

#[test]
fn opt_and_plan_print_the_optimized_graph_and_the_plan() {
    let dir = std::env::temp_dir().join(format!("adjoint-cli-{}-plan", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let step = dir.join("w1_step.adj");
    let out = adjoint(&["workload", "W1", "--step", "-o", step.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let dumps = dir.join("dumps");
    let out = adjoint(&[
        "opt",
        step.to_str().unwrap(),
        "--dump",
        dumps.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("graph "),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("simplify"),
        "per-pass statistics: {}",
        text(&out.stderr)
    );
    let dumped = std::fs::read_dir(&dumps).unwrap().count();
    assert!(
        dumped >= 4,
        "a text and a DOT dump per pass, found {dumped} files"
    );

    let out = adjoint(&["plan", step.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    assert!(plan.contains("MatMul") && plan.contains("arena"), "{plan}");
    assert!(plan.contains("lower bound"), "{plan}");

    let out = adjoint(&["plan", step.to_str().unwrap(), "--kernels"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(listing.contains("== kernels =="), "{listing}");

    let out = adjoint(&["opt", step.to_str().unwrap(), "--passes", "fold,nonsense"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unknown pass `nonsense`"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_json_has_every_field_and_the_loss_falls() {
    let out = adjoint(&[
        "bench",
        "--workload",
        "W1",
        "--mode",
        "all",
        "--steps",
        "3",
        "--warmup",
        "1",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "one line per mode: {stdout}");
    for (line, mode) in lines.iter().zip(["interp", "jit-unfused", "jit-fused"]) {
        for field in [
            "workload",
            "mode",
            "excess_precision",
            "threads",
            "compile_ms",
            "step_us_median",
            "step_us_min",
            "steps",
            "gflops",
            "arena_bytes",
            "kernels",
            "loss_first",
            "loss_last",
        ] {
            assert!(
                line.contains(&format!("\"{field}\":")),
                "{field} missing in {line}"
            );
        }
        assert!(line.contains(&format!("\"mode\":\"{mode}\"")), "{line}");
        let number = |key: &str| -> f64 {
            let rest = &line[line.find(&format!("\"{key}\":")).unwrap() + key.len() + 3..];
            rest[..rest.find([',', '}']).unwrap()].parse().unwrap()
        };
        assert!(number("loss_last") < number("loss_first"), "{line}");
    }
    let out = adjoint(&["bench", "--workload", "W9"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn bench_rounds_every_16_bit_result_on_request_with_the_same_arena() {
    let run = |extra: &[&str]| {
        let mut args = vec![
            "bench",
            "--workload",
            "W1",
            "--mode",
            "jit-fused",
            "--precision",
            "bf16",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = adjoint(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let line = text(&out.stdout);
        assert!(line.contains("\"precision\":\"bf16\""), "{line}");
        let excess = !extra.contains(&"--no-excess-precision");
        assert!(
            line.contains(&format!("\"excess_precision\":{excess},")),
            "{line}"
        );
        let rest = &line[line.find("\"arena_bytes\":").unwrap() + 14..];
        rest[..rest.find([',', '}']).unwrap()].to_string()
    };
    // Excess precision changes which results are rounded, never what is stored.
    assert_eq!(run(&[]), run(&["--no-excess-precision"]));
}

#[test]
fn profile_prints_the_per_kernel_table_of_a_workload_or_a_file() {
    let out = adjoint(&["profile", "W1", "--warmup", "0", "--steps", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(
        printed.starts_with("W1 (mlp-small) training step: "),
        "{printed}"
    );
    assert!(printed.contains("GFLOP/s, measured now"), "{printed}");
    let low = adjoint(&[
        "profile",
        "W1",
        "--precision",
        "bf16",
        "--warmup",
        "0",
        "--steps",
        "1",
    ]);
    assert!(low.status.success(), "{}", text(&low.stderr));
    assert!(
        text(&low.stdout).starts_with("W1 (mlp-small) bf16 training step: "),
        "{}",
        text(&low.stdout)
    );
    let header = printed.lines().find(|l| l.starts_with("kernel")).unwrap();
    assert!(
        header.contains("µs/run") && header.contains("share"),
        "{printed}"
    );
    assert!(printed.contains("% of peak)"), "{printed}");
    assert!(!printed.contains("== kernels =="), "{printed}");

    let path = repo_file("tests/data/mlp.adj");
    let out = adjoint(&[
        "profile",
        path.to_str().unwrap(),
        "--steps",
        "1",
        "--kernels",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(printed.contains("== kernels =="), "{printed}");

    // One line per loop nest: W1's matmul kernels each have a product and an epilogue nest.
    let out = adjoint(&["profile", "W1", "--steps", "1", "--nests"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(printed.contains(" loop nests, fusion on"), "{printed}");
    assert!(
        printed.contains("_matmul_n0 ") && printed.contains("_matmul_n1 "),
        "{printed}"
    );

    let out = adjoint(&["profile", "W9"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("neither a workload"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn plan_and_bench_take_a_memory_budget() {
    let dir = std::env::temp_dir().join(format!("adjoint-cli-{}-budget", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let step = dir.join("w3_step.adj");
    let out = adjoint(&["workload", "W3", "--step", "-o", step.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let step = step.to_str().unwrap();

    // Keep-all is met by the default plan; the report names both extremes.
    let out = adjoint(&["plan", step, "--memory-budget", "1x"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    assert!(
        plan.contains("== memory budget ==") && plan.contains(": fits"),
        "{plan}"
    );
    assert!(
        plan.contains("keep-all") && plan.contains("recompute-all"),
        "{plan}"
    );
    assert!(
        plan.contains("keep  ") && plan.contains("recompute  "),
        "{plan}"
    );

    // Below every plan: the plan with the smallest arena is printed, then a clear error.
    let out = adjoint(&["plan", step, "--memory-budget", "1KiB"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("no plan fits the memory budget of 1024 bytes") && err.contains("smallest"),
        "{err}"
    );
    assert!(text(&out.stdout).contains("does not fit"));

    for bad in ["0", "-3MiB", "0x", "12 furlongs"] {
        let out = adjoint(&["plan", step, "--memory-budget", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(text(&out.stderr).contains("--memory-budget"), "{bad}");
    }

    let out = adjoint(&[
        "bench",
        "--workload",
        "W1",
        "--mode",
        "jit-fused",
        "--steps",
        "2",
        "--warmup",
        "0",
        "--memory-budget",
        "64MiB",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(line.contains("\"memory_budget\":67108864"), "{line}");
    let out = adjoint(&["bench", "--workload", "W1", "--memory-budget", "1KiB"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("smallest arena"));
    std::fs::remove_dir_all(&dir).unwrap();
}
