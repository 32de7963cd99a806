//! Every number given on the command line is validated: thread counts are capped at the
//! cores with a note, step counts and tolerances out of range are clear errors naming the
//! flag (clap's exit status 2), integer feeds that do not fit and tensors too large to fill
//! are clear errors (exit status 1) — never a panic, an abort or a silent change.

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

/// Writes `source` as `NAME.adj` in a fresh temporary folder of this test process.
fn graph_file(name: &str, source: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("adjoint-cli-numbers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.adj"));
    std::fs::write(&path, source).unwrap();
    path
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The value of `"threads":N` in a line of `bench --json`.
fn json_threads(stdout: &str) -> usize {
    let rest = stdout
        .split("\"threads\":")
        .nth(1)
        .unwrap_or_else(|| panic!("no threads field in {stdout}"));
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

/// Asserts a clap parse error (exit 2) whose message names `flag` and `value`.
fn assert_rejected(out: &Output, flag: &str, value: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
    assert!(err.contains(flag), "{flag} {value}: {err}");
    assert!(err.contains(value), "{flag} {value}: {err}");
    assert!(!err.contains("panicked"), "{flag} {value}: {err}");
}

#[test]
fn bench_threads_above_the_cores_are_capped_with_a_note() {
    let bench = |threads: &str| {
        adjoint(&[
            "bench",
            "--workload",
            "W1",
            "--mode",
            "jit-fused",
            "--threads",
            threads,
            "--warmup",
            "0",
            "--steps",
            "1",
            "--json",
        ])
    };
    let out = bench("100000");
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(json_threads(&text(&out.stdout)), cores());
    assert!(
        err.contains("note: --threads 100000 is more than the"),
        "{err}"
    );

    // 0 and `all` mean every core, without a note.
    for all in ["0", "all"] {
        let out = bench(all);
        let err = text(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert_eq!(json_threads(&text(&out.stdout)), cores());
        assert!(!err.contains("note"), "{err}");
    }

    for bad in ["-1", "1.5", "two", "99999999999999999999999"] {
        assert_rejected(&bench(bad), "--threads", bad);
    }
}

#[test]
fn profile_threads_above_the_cores_are_capped_with_a_note() {
    let out = adjoint(&[
        "profile",
        "W1",
        "--threads",
        "100000",
        "--warmup",
        "0",
        "--steps",
        "1",
        "--top",
        "1",
    ]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("note: --threads 100000 is more than the"),
        "{err}"
    );
    let stdout = text(&out.stdout);
    let threads = format!("fusion on, {} thread", cores());
    assert!(stdout.contains(&threads), "{stdout}");
}

#[test]
fn steps_and_warmup_out_of_range_are_clear_errors() {
    for command in ["bench", "profile"] {
        let run = |flag: &str, value: &str| {
            let mut args = vec![command];
            if command == "profile" {
                args.push("W1");
            }
            args.extend([flag, value]);
            adjoint(&args)
        };
        for bad in [
            "0",
            "1e12",
            "18446744073709551615",
            "18446744073709551616",
            "1000001",
            "-1",
            "2.5",
        ] {
            let out = run("--steps", bad);
            assert_rejected(&out, "--steps", bad);
            assert!(
                text(&out.stderr).contains("from 1 to 1000000"),
                "{}",
                text(&out.stderr)
            );
        }
        for bad in ["1e12", "18446744073709551615", "1000001", "-1"] {
            let out = run("--warmup", bad);
            assert_rejected(&out, "--warmup", bad);
            assert!(
                text(&out.stderr).contains("from 0 to 1000000"),
                "{}",
                text(&out.stderr)
            );
        }
    }
}

#[test]
fn gradcheck_tolerance_must_be_finite_and_positive() {
    let path = repo_file("tests/data/mlp.adj");
    for bad in ["nan", "NaN", "inf", "-inf", "-1e-6", "0", "-0", "tight"] {
        let out = adjoint(&[
            "gradcheck",
            path.to_str().unwrap(),
            "--loss",
            "loss",
            "--wrt",
            "b3",
            "--tolerance",
            bad,
        ]);
        assert_rejected(&out, "--tolerance", bad);
    }
}

#[test]
fn i32_feeds_take_only_whole_numbers_within_range() {
    let path = graph_file(
        "ints",
        "graph \"ints\" {\n  %i: i32[2] = input \"i\"\n  output \"o\" = %i\n}\n",
    );
    let run = |values: &str| {
        let feed = format!("i={values}");
        adjoint(&["run", path.to_str().unwrap(), "--feed", &feed])
    };
    for (values, bad) in [
        ("1e20,nan", "1e20"),
        ("0,nan", "nan"),
        ("1.5,2", "1.5"),
        ("2147483648,0", "2147483648"),
        ("0,-2147483649", "-2147483649"),
        ("inf,0", "inf"),
    ] {
        let out = run(values);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{values}: {err}");
        assert!(err.contains("--feed `i`"), "{values}: {err}");
        assert!(err.contains(&format!("`{bad}`")), "{values}: {err}");
    }
    // The extremes of the range are values, and arrive unchanged.
    let out = run("-2147483648,2147483647");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "o: i32[2] = [-2147483648, 2147483647]"
    );
}

/// A graph summing one f32 input of `n` elements.
fn sum_file(name: &str, n: u64) -> PathBuf {
    graph_file(
        name,
        &format!(
            "graph \"{name}\" {{\n  %x: f32[{n}] = input \"x\"\n  \
             %s: f32[] = reduce_sum %x axes=[0] keepdims=false\n  output \"s\" = %s\n}}\n"
        ),
    )
}

#[test]
fn random_feed_of_a_huge_input_is_a_clear_error() {
    // f32[2^40]: 4 TiB.
    let path = sum_file("tera", 1 << 40);
    for args in [&["--random"][..], &["--feed", "x=random"][..]] {
        let mut all = vec!["run", path.to_str().unwrap()];
        all.extend(args);
        let out = adjoint(&all);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(args[0]), "{args:?}: {err}");
        assert!(err.contains("`x` (f32[1099511627776])"), "{args:?}: {err}");
        assert!(err.contains("4398046511104 bytes"), "{args:?}: {err}");
    }
}

#[test]
fn random_i32_bound_keeps_values_within_i32() {
    let path = graph_file(
        "bound",
        "graph \"bound\" {\n  %i: i32[64] = input \"i\"\n  output \"o\" = %i\n}\n",
    );
    for bad in ["0", "2147483649", "4294967295", "-1"] {
        let out = adjoint(&[
            "run",
            path.to_str().unwrap(),
            "--random",
            "--int-bound",
            bad,
        ]);
        assert_rejected(&out, "--int-bound", bad);
    }
    let out = adjoint(&[
        "run",
        path.to_str().unwrap(),
        "--random",
        "--int-bound",
        "2147483648",
        "--max-values",
        "64",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let values = stdout
        .trim()
        .strip_prefix("o: i32[64] = [")
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        values.split(", ").all(|v| v.parse::<i32>().unwrap() >= 0),
        "{stdout}"
    );
}

#[test]
fn gradcheck_of_a_huge_input_is_a_clear_error() {
    // f32[2^40] is over the limit as it is; f32[3·2^30] (12 GiB) is under it, but not its
    // f64 copy (24 GiB), which the check differentiates in.
    for (n, what, bytes) in [
        (
            1u64 << 40,
            "gradcheck: `x` (f32[1099511627776])",
            "4398046511104 bytes",
        ),
        (
            3 << 30,
            "gradcheck (in f64): `x` (f64[3221225472])",
            "25769803776 bytes",
        ),
    ] {
        let path = sum_file(&format!("huge{n}"), n);
        let out = adjoint(&[
            "gradcheck",
            path.to_str().unwrap(),
            "--loss",
            "s",
            "--wrt",
            "x",
        ]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(what), "{err}");
        assert!(err.contains(bytes), "{err}");
    }
}

#[test]
fn float_feeds_that_overflow_are_clear_errors() {
    for (dtype, bad, why) in [
        ("f32", "1e39", "outside the f32 range"),
        ("f32", "1e400", "outside the f64 range"),
        ("f64", "-1e400", "outside the f64 range"),
    ] {
        let path = graph_file(
            &format!("float-{dtype}"),
            &format!("graph \"g\" {{\n  %v: {dtype}[2] = input \"v\"\n  output \"o\" = %v\n}}\n"),
        );
        let feed = format!("v=0,{bad}");
        let out = adjoint(&["run", path.to_str().unwrap(), "--feed", &feed]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{feed}: {err}");
        assert!(
            err.contains(&format!("--feed `v`: value 2 `{bad}`")),
            "{err}"
        );
        assert!(err.contains(why), "{err}");
        // Spelled infinities and NaN are float values.
        let out = adjoint(&["run", path.to_str().unwrap(), "--feed", "v=-inf,nan"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("[-inf, NaN]"),
            "{}",
            text(&out.stdout)
        );
    }
}
