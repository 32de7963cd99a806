//! The Trainer as replicas of a data-parallel group (threads of one process): the same
//! training as one trainer on the global batch, parameters broadcast from rank 0, checkpoints
//! from rank 0 only, and resumption with another number of replicas.

mod common;

use adjoint_autodiff::Optimizer;
use adjoint_ir::{Collective, DType, Feeds, InProcess};
use adjoint_nn::layers::{BatchNorm, Linear};
use adjoint_nn::loss::cross_entropy;
use adjoint_nn::schedule::Schedule;
use adjoint_nn::trainer::{Forward, Pass, TrainError, Trainer, TrainerOptions};
use adjoint_nn::Params;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn model<'b>(p: &mut Params<'b>, pass: &Pass) -> Forward<'b> {
    let b = p.builder();
    let x = b.input("x", DType::F32, [pass.batch_size, 64]);
    let y = b.input("y", DType::I32, [pass.batch_size]);
    let h = Linear::new(p, "fc1", 64, 32).forward(x).relu();
    let logits = Linear::new(p, "fc2", 32, 10).forward(h);
    Forward {
        loss: cross_entropy(logits, y, 0.0),
        logits: Some(logits),
    }
}

/// With synchronized batch norm between the layers.
fn bn_model<'b>(p: &mut Params<'b>, pass: &Pass) -> Forward<'b> {
    let b = p.builder();
    let x = b.input("x", DType::F32, [pass.batch_size, 64]);
    let y = b.input("y", DType::I32, [pass.batch_size]);
    let h = Linear::new(p, "fc1", 64, 32).forward(x);
    let bn = BatchNorm::new(p, "bn1", 32);
    let h = if pass.is_training() {
        bn.forward_train(h)
    } else {
        bn.forward_eval(h)
    };
    let logits = Linear::new(p, "fc2", 32, 10).forward(h.relu());
    Forward {
        loss: cross_entropy(logits, y, 0.0),
        logits: Some(logits),
    }
}

type Model = for<'b> fn(&mut Params<'b>, &Pass) -> Forward<'b>;

fn options(steps: u64, checkpoint: Option<PathBuf>) -> TrainerOptions {
    TrainerOptions {
        batch_size: 32,
        epochs: 100,
        max_steps: Some(steps),
        seed: 9,
        quiet: true,
        threads: 1,
        checkpoint,
        ..TrainerOptions::default()
    }
}

fn optimizer() -> Optimizer {
    Optimizer::momentum(0.05, 0.9)
}

/// Trains `replicas` in-process replicas for `steps` steps in all (resuming from `resume`
/// when given); replica `r` checkpoints to `checkpoint(r)`. Returns every replica's
/// parameters and its last evaluation's accuracy, if it evaluated.
fn train(
    replicas: usize,
    steps: u64,
    checkpoint: &(dyn Fn(usize) -> Option<PathBuf> + Sync),
    resume: Option<&Path>,
) -> Vec<(Feeds, Option<f64>)> {
    train_model(model, replicas, steps, checkpoint, resume)
}

/// [`train`] for any model function.
fn train_model(
    model: Model,
    replicas: usize,
    steps: u64,
    checkpoint: &(dyn Fn(usize) -> Option<PathBuf> + Sync),
    resume: Option<&Path>,
) -> Vec<(Feeds, Option<f64>)> {
    let (train, test) = common::digits(3);
    let group = InProcess::group(replicas);
    std::thread::scope(|s| {
        let jobs: Vec<_> = group
            .into_iter()
            .enumerate()
            .map(|(r, c)| {
                let (train, test) = (&train, &test);
                s.spawn(move || {
                    let c: Arc<dyn Collective> = Arc::new(c);
                    let mut t = Trainer::new_replica(
                        "dp_mlp",
                        model,
                        optimizer(),
                        Schedule::Constant,
                        options(steps, checkpoint(r)),
                        c,
                    )
                    .unwrap();
                    if let Some(path) = resume {
                        t.resume(path).unwrap();
                    }
                    let h = t.fit(train, Some(test)).unwrap();
                    let acc = h.last_evaluation().and_then(|e| e.accuracy);
                    (t.params(), acc)
                })
            })
            .collect();
        jobs.into_iter().map(|j| j.join().unwrap()).collect()
    })
}

fn max_difference(a: &Feeds, b: &Feeds) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .flat_map(|(n, t)| {
            let u = b[n].to_f64_vec();
            t.to_f64_vec()
                .into_iter()
                .zip(u)
                .map(|(x, y)| (x - y).abs())
                .collect::<Vec<_>>()
        })
        .fold(0.0, f64::max)
}

#[test]
fn two_replicas_train_like_one_on_the_global_batch() {
    let dir = tempdir("dp_two");
    let one = train(1, 20, &|_| None, None).remove(0);
    let ckpt = |r: usize| Some(dir.join(format!("rank{r}.safetensors")));
    let two = train(2, 20, &ckpt, None);
    assert_eq!(two[0].0, two[1].0, "the replicas hold the same parameters");
    let d = max_difference(&two[0].0, &one.0);
    assert!(
        d < 1e-4,
        "2 replicas drift {d} from one replica after 20 steps"
    );
    // Rank 0 evaluated and wrote its checkpoint; rank 1 did neither.
    assert!(two[0].1.unwrap() > 0.6, "{:?}", two[0].1);
    assert!(two[1].1.is_none());
    assert!(dir.join("rank0.safetensors").exists());
    assert!(!dir.join("rank1.safetensors").exists());
}

#[test]
fn a_two_replica_checkpoint_resumes_on_one_and_replicas_start_from_rank_0() {
    let dir = tempdir("dp_resume");
    let path = dir.join("ckpt.safetensors");
    let only_rank0 = |r: usize| (r == 0).then(|| path.clone());
    train(2, 10, &only_rank0, None);
    // Continue to step 20 on one replica, and compare with 20 uninterrupted steps on one.
    let resumed = train(1, 20, &|_| None, Some(&path)).remove(0);
    let straight = train(1, 20, &|_| None, None).remove(0);
    let d = max_difference(&resumed.0, &straight.0);
    assert!(d < 1e-4, "resumed on another replica count: drift {d}");

    // Rank 0 resumes and rank 1 does not: rank 1 still starts from rank 0's parameters and
    // step (the broadcast), so both end equal.
    let (train_set, _) = common::digits(3);
    let group = InProcess::group(2);
    let params: Vec<(Feeds, u64)> = std::thread::scope(|s| {
        let jobs: Vec<_> = group
            .into_iter()
            .enumerate()
            .map(|(r, c)| {
                let (train_set, path) = (&train_set, &path);
                s.spawn(move || {
                    let mut t = Trainer::new_replica(
                        "dp_mlp",
                        model,
                        optimizer(),
                        Schedule::Constant,
                        options(12, None),
                        Arc::new(c),
                    )
                    .unwrap();
                    if r == 0 {
                        t.resume(path).unwrap();
                    }
                    t.fit(train_set, None).unwrap();
                    (t.params(), t.step())
                })
            })
            .collect();
        jobs.into_iter().map(|j| j.join().unwrap()).collect()
    });
    assert_eq!(params[0], params[1]);
    assert_eq!(params[1].1, 12);
}

#[test]
fn batch_norm_is_synchronized_across_replicas() {
    let one = train_model(bn_model, 1, 10, &|_| None, None).remove(0);
    let two = train_model(bn_model, 2, 10, &|_| None, None);
    // Without synchronization each replica's running statistics would follow its own shard.
    assert_eq!(
        two[0].0, two[1].0,
        "the replicas hold the same parameters and statistics"
    );
    assert!(two[0].0.contains_key("bn1.running_mean"));
    let d = max_difference(&two[0].0, &one.0);
    assert!(
        d < 1e-4,
        "synchronized batch norm drifts {d} from one replica"
    );
}

#[test]
fn the_global_batch_must_split_evenly() {
    let c: Arc<dyn Collective> = Arc::new(InProcess::group(3).remove(0));
    let err = Trainer::new_replica(
        "dp_mlp",
        model,
        optimizer(),
        Schedule::Constant,
        options(1, None),
        c,
    )
    .err()
    .unwrap();
    assert!(matches!(err, TrainError::Config(_)), "{err}");
    assert!(
        err.to_string().contains("multiple of the 3 replicas"),
        "{err}"
    );
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("adjoint_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
