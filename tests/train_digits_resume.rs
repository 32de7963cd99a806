//! The main job's `--resume`: a run stopped part-way and resumed ends exactly where an
//! uninterrupted run ends; a second run into the same directory is refused without `--resume`
//! or `--overwrite`. The example's own code is compiled into this test and called directly.

#[path = "../examples/train_digits.rs"]
#[allow(dead_code)]
mod train_digits;

use adjoint::nn::checkpoint::load_checkpoint;
use adjoint::HostData;
use std::path::{Path, PathBuf};
use train_digits::{parse_args, run, Args};

fn out_dir(tag: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("adjoint-train-digits-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A short, bit-reproducible run (one thread) into `out`.
fn args(out: &Path, extra: &[&str]) -> Args {
    let mut argv: Vec<String> = ["--epochs", "2", "--threads", "1", "--quiet", "--out"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    argv.push(out.display().to_string());
    argv.extend(extra.iter().map(|s| s.to_string()));
    parse_args(argv).unwrap()
}

/// Every tensor of the checkpoint as raw bits, with the step.
fn checkpoint_bits(path: &Path) -> (u64, Vec<(String, Vec<u64>)>) {
    let ckpt = load_checkpoint(path).unwrap();
    let tensors = ckpt
        .tensors
        .iter()
        .map(|(n, t)| {
            let bits = match t.data() {
                HostData::F32(v) => v.iter().map(|x| x.to_bits() as u64).collect(),
                HostData::F64(v) => v.iter().map(|x| x.to_bits()).collect(),
                HostData::I32(v) => v.iter().map(|&x| x as u32 as u64).collect(),
                HostData::Bool(v) => v.iter().map(|&x| x as u64).collect(),
                HostData::Bf16(v) => v.iter().map(|x| x.to_bits() as u64).collect(),
                HostData::F16(v) => v.iter().map(|x| x.to_bits() as u64).collect(),
            };
            (n.clone(), bits)
        })
        .collect();
    (ckpt.step, tensors)
}

#[test]
fn an_interrupted_and_resumed_run_ends_where_an_uninterrupted_one_does() {
    let whole_dir = out_dir("whole");
    let whole = run(&args(&whole_dir, &[])).unwrap();
    assert_eq!(whole.step, 88, "2 epochs of 1438 / 32 = 44 steps");

    let split_dir = out_dir("split");
    // Stopped in the middle of the second epoch...
    let first = run(&args(&split_dir, &["--max-steps", "61"])).unwrap();
    assert_eq!(first.step, 61);
    assert_eq!(checkpoint_bits(&first.checkpoint).0, 61);
    // ...and continued.
    let resumed = run(&args(&split_dir, &["--resume"])).unwrap();
    assert_eq!(resumed.step, 88);
    assert_eq!(resumed.accuracy, whole.accuracy);
    let (a, b) = (
        checkpoint_bits(&whole.checkpoint),
        checkpoint_bits(&resumed.checkpoint),
    );
    assert_eq!(a.0, b.0);
    assert_eq!(a.1.len(), b.1.len());
    for ((name_a, bits_a), (name_b, bits_b)) in a.1.iter().zip(&b.1) {
        assert_eq!(name_a, name_b);
        assert!(bits_a == bits_b, "`{name_a}` differs after resuming");
    }
    let _ = std::fs::remove_dir_all(&whole_dir);
    let _ = std::fs::remove_dir_all(&split_dir);
}

#[test]
fn a_second_run_does_not_silently_replace_the_checkpoint() {
    let dir = out_dir("again");
    let first = run(&args(&dir, &["--max-steps", "3"])).unwrap();
    let before = std::fs::read(&first.checkpoint).unwrap();

    let refused = run(&args(&dir, &["--max-steps", "5"]))
        .err()
        .unwrap()
        .to_string();
    assert!(
        refused.contains("already holds a checkpoint (at step 3)"),
        "{refused}"
    );
    assert!(
        refused.contains("--resume") && refused.contains("--overwrite"),
        "{refused}"
    );
    assert_eq!(
        std::fs::read(&first.checkpoint).unwrap(),
        before,
        "untouched"
    );

    let over = run(&args(&dir, &["--max-steps", "2", "--overwrite"])).unwrap();
    assert_eq!(over.step, 2);
    assert_eq!(load_checkpoint(&over.checkpoint).unwrap().step, 2);

    let missing = out_dir("missing");
    let msg = run(&args(&missing, &["--resume"]))
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("no checkpoint at"), "{msg}");
    assert!(parse_args(["--resume".into(), "--overwrite".into()]).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_in_process_replicas_train_like_one_and_resume_on_one() {
    let one_dir = out_dir("one");
    let one = run(&args(&one_dir, &[])).unwrap();
    let two_dir = out_dir("two");
    let two = run(&args(&two_dir, &["--replicas", "2"])).unwrap();
    assert_eq!(two.step, one.step);
    // The same updates up to f32 summation order: the same test accuracy within an example.
    assert!(
        (two.accuracy - one.accuracy).abs() <= 1.0 / 359.0 + 1e-12,
        "{} on 2 replicas, {} on one",
        two.accuracy,
        one.accuracy
    );
    // A run stopped on two replicas continues on one.
    let split = out_dir("two-then-one");
    let first = run(&args(&split, &["--max-steps", "50", "--replicas", "2"])).unwrap();
    assert_eq!(checkpoint_bits(&first.checkpoint).0, 50);
    let resumed = run(&args(&split, &["--resume"])).unwrap();
    assert_eq!(resumed.step, 88);
    assert!((resumed.accuracy - one.accuracy).abs() <= 1.0 / 359.0 + 1e-12);
    assert!(parse_args(["--replicas".into(), "3".into()]).is_err());
    for d in [one_dir, two_dir, split] {
        let _ = std::fs::remove_dir_all(&d);
    }
}
