//! Checkpoints through the Trainer: bit-exact round trips, damaged files, exact resumption.

use adjoint_autodiff::Optimizer;
use adjoint_ir::{DType, Feeds, HostData};
use adjoint_nn::checkpoint::CheckpointErrorKind;
use adjoint_nn::data::{digits_path, load_digits, Dataset, Standardizer};
use adjoint_nn::layers::Linear;
use adjoint_nn::loss::cross_entropy;
use adjoint_nn::schedule::Schedule;
use adjoint_nn::trainer::{Forward, Pass, TrainError, Trainer, TrainerOptions};
use adjoint_nn::{Params, RandomKind};
use std::path::PathBuf;

fn digits() -> (Dataset, Dataset) {
    let digits = load_digits(digits_path()).unwrap();
    let (train, test) = digits.split(11, 0.2).unwrap();
    let scaler = Standardizer::fit(&train);
    (scaler.apply(&train).unwrap(), scaler.apply(&test).unwrap())
}

/// An MLP with a dropout mask drawn by the trainer at every step (training only), so that
/// exact resumption needs the same batches *and* the same random draws.
fn model<'b>(p: &mut Params<'b>, pass: &Pass) -> Forward<'b> {
    let b = p.builder();
    let x = b.input("x", DType::F32, [pass.batch_size, 64]);
    let y = b.input("y", DType::I32, [pass.batch_size]);
    let mut h = Linear::new(p, "fc1", 64, 32).forward(x).relu();
    if pass.is_training() {
        h = h * p.random_input(
            "mask",
            &[pass.batch_size, 32],
            RandomKind::DropoutMask { keep: 0.8 },
        );
    }
    let logits = Linear::new(p, "fc2", 32, 10).forward(h);
    Forward {
        loss: cross_entropy(logits, y, 0.1),
        logits: Some(logits),
    }
}

fn options(epochs: u64) -> TrainerOptions {
    TrainerOptions {
        batch_size: 32,
        epochs,
        seed: 5,
        quiet: true,
        threads: 1,
        ..TrainerOptions::default()
    }
}

fn trainer(opts: TrainerOptions) -> Trainer {
    let opt = Optimizer::adam(3e-3).with_clip_global_norm(5.0);
    Trainer::new(
        "resume_mlp",
        model,
        opt,
        Schedule::warmup_cosine(10, 80, 0.1),
        opts,
    )
    .unwrap()
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("adjoint-resume-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("ckpt.safetensors")
}

/// Every tensor's bits, for bit-exact comparison (NaN-safe).
fn bits(params: &Feeds) -> Vec<(String, Vec<u64>)> {
    params
        .iter()
        .map(|(n, t)| {
            let b = match t.data() {
                HostData::F32(v) => v.iter().map(|x| x.to_bits() as u64).collect(),
                HostData::F64(v) => v.iter().map(|x| x.to_bits()).collect(),
                HostData::I32(v) => v.iter().map(|&x| x as u32 as u64).collect(),
                HostData::Bool(v) => v.iter().map(|&x| x as u64).collect(),
                HostData::Bf16(v) => v.iter().map(|x| x.to_bits() as u64).collect(),
                HostData::F16(v) => v.iter().map(|x| x.to_bits() as u64).collect(),
            };
            (n.clone(), b)
        })
        .collect()
}

#[test]
fn a_checkpoint_round_trips_bit_exactly() {
    let (train, _) = digits();
    let path = temp("roundtrip");
    let mut a = trainer(TrainerOptions {
        max_steps: Some(7),
        ..options(1)
    });
    a.fit(&train, None).unwrap();
    a.save_checkpoint(&path).unwrap();
    let mut b = trainer(options(1));
    assert_ne!(
        bits(&a.params()),
        bits(&b.params()),
        "training moved the weights"
    );
    assert_eq!(b.resume(&path).unwrap(), 7);
    assert_eq!(b.step(), 7);
    assert_eq!(bits(&a.params()), bits(&b.params()));
    // Parameters, Adam moments and the step counter are all in the checkpoint.
    let names: Vec<String> = b.params().keys().cloned().collect();
    for n in [
        "fc1.weight",
        "fc1.weight.adam_m",
        "fc2.bias.adam_v",
        "adam.step",
    ] {
        assert!(names.iter().any(|m| m == n), "{n} missing from {names:?}");
    }
}

#[test]
fn resuming_mid_training_matches_uninterrupted_training_bit_for_bit() {
    let (train, test) = digits();
    let per_epoch = (train.len() / 32) as u64;
    let stop = per_epoch + per_epoch / 2; // in the middle of the second epoch
    let path = temp("mid");

    let mut whole = trainer(options(2));
    whole.fit(&train, Some(&test)).unwrap();

    let mut first = trainer(TrainerOptions {
        max_steps: Some(stop),
        checkpoint: Some(path.clone()),
        ..options(2)
    });
    first.fit(&train, Some(&test)).unwrap();
    assert_eq!(first.step(), stop);
    drop(first);

    let mut second = trainer(options(2));
    assert_eq!(second.resume(&path).unwrap(), stop);
    second.fit(&train, Some(&test)).unwrap();
    assert_eq!(second.step(), 2 * per_epoch);
    assert_eq!(bits(&whole.params()), bits(&second.params()));
    // The resumed history covers the steps after the checkpoint, with the same losses.
    let tail = &whole.history().train_loss[stop as usize..];
    assert_eq!(tail, &second.history().train_loss[..]);
    assert_eq!(
        whole.history().last_evaluation().unwrap().accuracy,
        second.history().last_evaluation().unwrap().accuracy
    );
}

#[test]
fn damaged_checkpoints_are_errors_that_leave_the_trainer_unchanged() {
    let (train, _) = digits();
    let path = temp("damaged");
    let mut t = trainer(TrainerOptions {
        max_steps: Some(3),
        checkpoint: Some(path.clone()),
        ..options(1)
    });
    t.fit(&train, None).unwrap();
    let good = std::fs::read(&path).unwrap();
    let mut fresh = trainer(options(1));
    let before = bits(&fresh.params());

    let truncated = path.with_file_name("truncated.safetensors");
    std::fs::write(&truncated, &good[..good.len() - 100]).unwrap();
    let err = fresh.resume(&truncated).unwrap_err();
    let TrainError::Checkpoint(e) = &err else {
        panic!("{err}")
    };
    assert!(
        matches!(e.kind(), CheckpointErrorKind::Truncated(_)),
        "{err}"
    );
    assert!(err.to_string().contains("truncated.safetensors"), "{err}");

    let corrupted = path.with_file_name("corrupted.safetensors");
    let mut bad = good.clone();
    let last = bad.len() - 5;
    bad[last] ^= 0x40; // a flipped bit in the tensor data: caught by the checksum
    std::fs::write(&corrupted, &bad).unwrap();
    let err = fresh.resume(&corrupted).unwrap_err();
    let TrainError::Checkpoint(e) = &err else {
        panic!("{err}")
    };
    assert!(
        matches!(e.kind(), CheckpointErrorKind::Corrupted(_)),
        "{err}"
    );

    let err = fresh
        .resume(path.with_file_name("missing.safetensors"))
        .unwrap_err();
    assert!(matches!(err, TrainError::Checkpoint(_)), "{err}");

    assert_eq!(fresh.step(), 0);
    assert_eq!(
        bits(&fresh.params()),
        before,
        "a failed resume changes nothing"
    );
    // The good checkpoint is untouched and still loads.
    assert_eq!(std::fs::read(&path).unwrap(), good);
    assert_eq!(fresh.resume(&path).unwrap(), 3);
}

#[test]
fn an_interrupted_save_leaves_the_previous_checkpoint_intact() {
    let (train, _) = digits();
    let path = temp("interrupted");
    let mut t = trainer(TrainerOptions {
        max_steps: Some(4),
        checkpoint: Some(path.clone()),
        ..options(1)
    });
    t.fit(&train, None).unwrap();
    let saved = bits(&t.params());
    // A crash in the middle of the next save leaves a partial temporary file beside the
    // checkpoint (saves write `.ckpt.safetensors.tmp-…` and rename it only when complete).
    let complete = std::fs::read(&path).unwrap();
    let partial = path.with_file_name(".ckpt.safetensors.tmp-crashed");
    std::fs::write(&partial, &complete[..complete.len() / 2]).unwrap();
    // A save that fails (its directory is gone) is an error, not a panic, and writes nothing.
    let err = t
        .save_checkpoint(path.with_file_name("no-such-dir/ckpt.safetensors"))
        .unwrap_err();
    assert!(matches!(err, TrainError::Checkpoint(_)), "{err}");
    let mut resumed = trainer(options(1));
    assert_eq!(resumed.resume(&path).unwrap(), 4);
    assert_eq!(bits(&resumed.params()), saved);
}

#[test]
fn a_checkpoint_of_another_model_or_run_is_refused() {
    let (train, _) = digits();
    let path = temp("mismatch");
    let mut t = trainer(TrainerOptions {
        max_steps: Some(2),
        ..options(1)
    });
    t.fit(&train, None).unwrap();
    t.save_checkpoint(&path).unwrap();
    // Another seed: the batches would differ, so the run would not continue.
    let mut other_seed = trainer(TrainerOptions {
        seed: 6,
        ..options(1)
    });
    let err = other_seed.resume(&path).unwrap_err();
    assert!(err.to_string().contains("seed 5"), "{err}");
    // Another optimizer: the checkpoint lacks the momentum buffers and has Adam's moments.
    let mut sgd = Trainer::new(
        "m",
        model,
        Optimizer::momentum(0.1, 0.9),
        Schedule::Constant,
        options(1),
    )
    .unwrap();
    let err = sgd.resume(&path).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("missing tensor `fc1.weight.momentum`"),
        "{msg}"
    );
    assert!(msg.contains("unexpected tensor `adam.step`"), "{msg}");
}

#[test]
fn a_checkpoint_with_a_non_finite_value_is_refused_naming_the_tensor() {
    let (train, _) = digits();
    let path = temp("nonfinite");
    let mut a = trainer(TrainerOptions {
        max_steps: Some(3),
        ..options(1)
    });
    a.fit(&train, None).unwrap();
    a.save_checkpoint(&path).unwrap();
    let mut ckpt = adjoint_nn::checkpoint::load_checkpoint(&path).unwrap();
    let bias = ckpt.tensors.get_mut("fc2.bias").unwrap();
    let mut values = bias.to_f64_vec();
    values[4] = f64::NAN;
    values[7] = f64::INFINITY;
    *bias = adjoint_ir::HostTensor::from_f64_as(bias.dtype(), [10], &values).unwrap();
    adjoint_nn::checkpoint::save_checkpoint(&path, &ckpt).unwrap();

    // Loading the file as such still works (to inspect a diverged run)...
    assert!(adjoint_nn::checkpoint::load_checkpoint(&path).is_ok());
    // ...but resuming from it is refused, naming the tensor, and leaves the trainer as it was.
    let mut b = trainer(options(1));
    let before = bits(&b.params());
    let err = b.resume(&path).unwrap_err();
    let TrainError::Checkpoint(e) = &err else {
        panic!("{err}")
    };
    match e.kind() {
        CheckpointErrorKind::NonFinite {
            name, index, count, ..
        } => assert_eq!((name.as_str(), *index, *count), ("fc2.bias", 4, 2)),
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("`fc2.bias`") && msg.contains("NaN"), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert_eq!(b.step(), 0);
    assert_eq!(bits(&b.params()), before);
}
