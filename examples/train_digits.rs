//! The main job: train an MLP on the bundled handwritten digits with a JIT-compiled step.
//!
//! ```sh
//! cargo run --release --example train_digits                      # 30 epochs into runs/train_digits/
//! cargo run --release --example train_digits -- --epochs 5 --out /tmp/digits
//! cargo run --release --example train_digits -- --resume           # continue an interrupted run
//! cargo run --release --example train_digits -- --replicas 2       # data parallel, 2 threads
//! cargo build --release --features mpi --example train_digits     # data parallel over MPI:
//! mpirun -np 2 target/release/examples/train_digits --mpi
//! cargo run --release --example train_digits -- --precision bf16   # bf16 products and activations
//! ```
//!
//! A second run into a directory that holds a checkpoint is refused unless it says `--resume`
//! (continue exactly where the checkpoint left off: same batches, same schedule, same Adam
//! state; keep `--epochs`) or `--overwrite` (start over). A checkpoint is saved after every
//! epoch and at the end, so an interrupted run loses at most one epoch.
//!
//! Loads `data/digits.csv.gz` (1797 8×8 images), splits it 80/20 stratified by class,
//! standardizes the pixels with the training split's statistics, trains a 64-128-64-10 ReLU MLP
//! with Adam under a warm-up + cosine learning-rate schedule (every step one native call:
//! forward, backward and update), evaluates on the test split after every epoch, then prints
//! the test accuracy and writes `loss.svg` (training loss, test loss, test accuracy) and
//! `checkpoint.safetensors` (parameters, Adam state, step) into the output directory.
//!
//! With `--replicas N` the run is data parallel in this process (`docs/distributed.md`): N
//! trainers on N threads, each training on its shard of every global batch of 32 with the
//! gradients averaged over the replicas; rank 0 evaluates, prints, and writes the chart and
//! the checkpoint, which resumes with any number of replicas. With `--mpi` (a build with the
//! `mpi` feature, launched by `mpirun`) every MPI rank is one replica.

use adjoint::autodiff::{Optimizer, Precision};
use adjoint::ir::{Collective, InProcess};
use adjoint::nn::chart::write_training_chart;
use adjoint::nn::checkpoint::load_checkpoint;
use adjoint::nn::data::Dataset;
use adjoint::nn::data::{digits_path, load_digits, Standardizer};
use adjoint::nn::layers::Linear;
use adjoint::nn::loss::cross_entropy;
use adjoint::nn::schedule::Schedule;
use adjoint::nn::trainer::{Forward, Pass, Trainer, TrainerOptions};
use adjoint::nn::Params;
use adjoint::DType;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// Command-line settings.
pub struct Args {
    /// Where the chart and the checkpoint go.
    pub out: PathBuf,
    /// Epochs of the whole run (a resumed run counts the epochs before the checkpoint).
    pub epochs: u64,
    /// Continue from `<out>/checkpoint.safetensors`.
    pub resume: bool,
    /// Start over even if `<out>` holds a checkpoint.
    pub overwrite: bool,
    /// Stop after this many steps in total (an interruption on purpose; `--resume` continues).
    pub max_steps: Option<u64>,
    /// Threads of the compiled step (0 for every core; 1 makes every run bit-identical).
    pub threads: usize,
    /// No progress output.
    pub quiet: bool,
    /// Data-parallel replicas in this process (threads), 1 for none.
    pub replicas: usize,
    /// Every MPI rank is one data-parallel replica (launched by `mpirun`).
    pub mpi: bool,
    /// Precision of products and activations (parameters and Adam stay f32).
    pub precision: Precision,
}

impl Default for Args {
    fn default() -> Args {
        Args {
            out: PathBuf::from("runs/train_digits"),
            epochs: 30,
            resume: false,
            overwrite: false,
            max_steps: None,
            threads: 0,
            quiet: false,
            replicas: 1,
            mpi: false,
            precision: Precision::F32,
        }
    }
}

const USAGE: &str = "usage: train_digits [--out DIR] [--epochs N] [--resume | --overwrite] \
[--max-steps N] [--threads N] [--replicas N | --mpi] [--precision P] [--quiet]

  --out DIR      where loss.svg and checkpoint.safetensors go (default runs/train_digits)
  --epochs N     epochs of the whole run (default 30); keep it when resuming
  --resume       continue from DIR/checkpoint.safetensors where it left off
  --overwrite    start over, replacing the checkpoint in DIR
  --max-steps N  stop after N steps in total (--resume continues from there)
  --threads N    threads of the compiled step (default 0: every core; 1: bit-identical runs)
  --replicas N   data-parallel replicas as threads of this process (default 1); each
                 trains on 32/N examples of every batch of 32, N must divide 32
  --mpi          every MPI rank is one replica (build with --features mpi, run under
                 mpirun -np N with N dividing 32); rank 0 prints and writes the files
  --precision P  f32 (default), bf16 or f16 (f16 with dynamic loss scaling): the precision of
                 products and activations; parameters and the optimizer stay f32
  --quiet        no progress output";

/// A positive whole number, or an error naming the flag.
fn positive(flag: &str, v: &str) -> Result<u64, String> {
    v.parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or(format!("{flag}: `{v}` is not a positive whole number"))
}

/// The settings from the command line; `Err` holds the message for stderr.
pub fn parse_args(argv: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut args = Args::default();
    let mut it = argv.into_iter();
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--out" => args.out = PathBuf::from(value("--out")?),
            "--epochs" => args.epochs = positive("--epochs", &value("--epochs")?)?,
            "--max-steps" => {
                args.max_steps = Some(positive("--max-steps", &value("--max-steps")?)?)
            }
            "--threads" => {
                let v = value("--threads")?;
                args.threads = v
                    .parse()
                    .map_err(|_| format!("--threads: `{v}` is not a whole number"))?;
            }
            "--replicas" => {
                let n = positive("--replicas", &value("--replicas")?)?;
                if 32 % n != 0 {
                    return Err(format!("--replicas: {n} does not divide the batch of 32"));
                }
                args.replicas = n as usize;
            }
            "--mpi" => args.mpi = true,
            "--precision" => {
                let v = value("--precision")?;
                args.precision = v.parse().map_err(|e| format!("--precision: {e}"))?;
            }
            "--resume" => args.resume = true,
            "--overwrite" => args.overwrite = true,
            "--quiet" => args.quiet = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    if args.resume && args.overwrite {
        return Err(format!(
            "--resume and --overwrite contradict each other\n{USAGE}"
        ));
    }
    if args.mpi && args.replicas > 1 {
        return Err(format!(
            "--mpi and --replicas contradict each other: under MPI every rank is one \
             replica\n{USAGE}"
        ));
    }
    Ok(args)
}

/// How a run ended.
pub struct Outcome {
    /// The final test accuracy in `[0, 1]`.
    pub accuracy: f64,
    /// The steps done in total.
    pub step: u64,
    /// The checkpoint written.
    pub checkpoint: PathBuf,
}

/// The model: 64 pixels → 128 → 64 → 10 logits, ReLU between layers.
fn mlp<'b>(p: &mut Params<'b>, pass: &Pass) -> Forward<'b> {
    let b = p.builder();
    let x = b.input("x", DType::F32, [pass.batch_size, 64]);
    let y = b.input("y", DType::I32, [pass.batch_size]);
    let h = Linear::new(p, "fc1", 64, 128).forward(x).relu();
    let h = Linear::new(p, "fc2", 128, 64).forward(h).relu();
    let logits = Linear::new(p, "fc3", 64, 10).forward(h);
    Forward {
        loss: cross_entropy(logits, y, 0.0),
        logits: Some(logits),
    }
}

/// Trains (or continues training) as `args` say.
pub fn run(args: &Args) -> Result<Outcome, Box<dyn std::error::Error>> {
    run_in(args, None)
}

/// [`run`] as one rank of `world` (the MPI ranks), or of its own (`None`). Only rank 0
/// checks the output directory, prints and writes files; another rank's outcome has a NaN
/// accuracy.
pub fn run_in(
    args: &Args,
    world: Option<Arc<dyn Collective>>,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let start = Instant::now();
    let checkpoint = args.out.join("checkpoint.safetensors");
    let root = world.as_ref().is_none_or(|c| c.rank() == 0);
    // Like most training scripts (Hugging Face's `--overwrite_output_dir`, Lightning's
    // `ckpt_path`), never replace a previous run's checkpoint unless asked to. Only rank 0
    // looks: the others may run on machines that do not see the directory.
    let (exists, resume) = match root {
        true => (checkpoint.exists(), args.resume),
        false => (false, false),
    };
    match (exists, resume, args.overwrite) {
        (true, false, false) => {
            let step = load_checkpoint(&checkpoint)
                .map(|c| format!("at step {}", c.step))
                .unwrap_or_else(|e| format!("unreadable: {e}"));
            return Err(format!(
                "{} already holds a checkpoint ({step}); pass --resume to continue it, \
                 --overwrite to start over, or --out to write elsewhere",
                args.out.display()
            )
            .into());
        }
        (false, true, _) => {
            return Err(format!(
                "--resume: there is no checkpoint at {} to continue",
                checkpoint.display()
            )
            .into())
        }
        _ => {}
    }

    let digits = load_digits(digits_path())?;
    let (train, test) = digits.split(42, 0.2)?;
    let scaler = Standardizer::fit(&train);
    let (train, test) = (scaler.apply(&train)?, scaler.apply(&test)?);
    if root {
        println!(
            "digits: {} training and {} test examples of {} features, {} classes",
            train.len(),
            test.len(),
            train.num_features(),
            train.classes()
        );
        std::fs::create_dir_all(&args.out)?;
    }
    if world.is_some() {
        return train_on(args, &train, &test, world, start);
    }
    if args.replicas <= 1 {
        return train_on(args, &train, &test, None, start);
    }
    // One trainer per replica, each on its own thread; rank 0's outcome is the run's.
    let group = InProcess::group(args.replicas);
    let results: Vec<Result<Outcome, String>> = std::thread::scope(|s| {
        let jobs: Vec<_> = group
            .into_iter()
            .map(|c| {
                let (train, test) = (&train, &test);
                s.spawn(move || {
                    let c: Arc<dyn Collective> = Arc::new(c);
                    train_on(args, train, test, Some(c), start).map_err(|e| e.to_string())
                })
            })
            .collect();
        jobs.into_iter()
            .map(|j| {
                j.join()
                    .unwrap_or_else(|_| Err("a replica panicked".into()))
            })
            .collect()
    });
    let mut outcome = None;
    for r in results {
        let o = r?;
        outcome.get_or_insert(o);
    }
    Ok(outcome.expect("at least one replica"))
}

/// Trains on `train`, evaluating on `test`, as one replica of `collective`'s group (or alone),
/// from `start` (for the times printed). Only rank 0 prints and writes files.
fn train_on(
    args: &Args,
    train: &Dataset,
    test: &Dataset,
    collective: Option<Arc<dyn Collective>>,
    start: Instant,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let checkpoint = args.out.join("checkpoint.safetensors");
    let root = collective.as_ref().is_none_or(|c| c.rank() == 0);
    let say = |line: String| {
        if root {
            println!("{line}");
        }
    };
    let batch_size = 32;
    let per_epoch = (train.len() / batch_size) as u64;
    let steps = per_epoch * args.epochs;
    let options = TrainerOptions {
        batch_size,
        epochs: args.epochs,
        max_steps: args.max_steps,
        seed: 42,
        checkpoint: Some(checkpoint.clone()),
        // Every epoch, so that a run stopped any way at all loses at most one epoch.
        checkpoint_every: per_epoch,
        threads: args.threads,
        quiet: args.quiet,
        precision: args.precision,
        ..TrainerOptions::default()
    };
    let schedule = Schedule::warmup_cosine(steps / 20, steps, 0.01);
    let optimizer = Optimizer::adam(3e-3);
    let mut trainer = match collective {
        None => Trainer::new("digits_mlp", mlp, optimizer, schedule, options)?,
        Some(c) => Trainer::new_replica("digits_mlp", mlp, optimizer, schedule, options, c)?,
    };
    // Rank 0 reads the checkpoint; the others start from its parameters and step (the
    // trainer broadcasts them when training starts).
    if args.resume && root {
        let step = trainer.resume(&checkpoint)?;
        say(format!(
            "resumed from {} at step {step}",
            checkpoint.display()
        ));
    }
    let compiled = start.elapsed();
    let replicas = match trainer.replicas() {
        1 => String::new(),
        n => format!(" on {n} replicas of {} examples", batch_size / n),
    };
    say(format!(
        "compiled the training step ({} kernels) in {:.2} s; training {} epochs ({steps} \
         steps){replicas}",
        trainer.compiled_step().stats().kernels,
        compiled.as_secs_f64(),
        args.epochs
    ));

    let first_step = trainer.step();
    let fit_start = Instant::now();
    let history = trainer.fit(train, Some(test))?.clone();
    let fit_time = fit_start.elapsed().as_secs_f64();
    let stepped = trainer.step() - first_step.min(trainer.step());
    if !root {
        return Ok(Outcome {
            accuracy: f64::NAN,
            step: trainer.step(),
            checkpoint,
        });
    }
    let history_note = if args.resume {
        " (since the resume)"
    } else {
        ""
    };
    let last = history
        .last_evaluation()
        .ok_or("no evaluation was recorded")?;
    let accuracy = last.accuracy.ok_or("the model has no logits")?;

    let chart = args.out.join("loss.svg");
    let train_loss = history.train_loss_points();
    let test_loss = history.eval_loss_points();
    let test_acc = history.eval_accuracy_points();
    write_training_chart(
        &chart,
        &[("training loss", &train_loss), ("test loss", &test_loss)],
        &[("test accuracy", &test_acc)],
        &format!("MLP on the digits (Adam, warm-up + cosine){history_note}"),
    )?;

    println!(
        "test accuracy: {:.2}% ({} examples), test loss {:.4}, after {} steps in {:.1} s",
        accuracy * 100.0,
        test.len(),
        last.loss,
        trainer.step(),
        start.elapsed().as_secs_f64()
    );
    println!(
        "training: {stepped} steps in {fit_time:.2} s, {:.3} ms per step (evaluations included)",
        1e3 * fit_time / stepped.max(1) as f64
    );
    if args.precision == Precision::F16 {
        println!(
            "precision {}: {} steps skipped by loss scaling",
            args.precision,
            trainer.skipped_steps()
        );
    }
    println!("wrote {} and {}", chart.display(), checkpoint.display());
    Ok(Outcome {
        accuracy,
        step: trainer.step(),
        checkpoint,
    })
}

/// The MPI ranks as a collective (a build with the `mpi` feature).
#[cfg(feature = "mpi")]
fn mpi_world() -> Result<Arc<dyn Collective>, Box<dyn std::error::Error>> {
    Ok(Arc::new(adjoint::nn::MpiCollective::init()?))
}

/// Without the `mpi` feature there is no MPI backend to run on.
#[cfg(not(feature = "mpi"))]
fn mpi_world() -> Result<Arc<dyn Collective>, Box<dyn std::error::Error>> {
    Err(
        "--mpi needs a build with the MPI backend: cargo build --release --features mpi \
         --example train_digits (and an MPI library such as Open MPI)"
            .into(),
    )
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let world = match args.mpi.then(mpi_world).transpose() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("train_digits: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run_in(&args, world.clone()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            let rank = world
                .as_ref()
                .map_or(String::new(), |c| format!(" (rank {})", c.rank()));
            eprintln!("train_digits{rank}: {e}");
            if world.is_some() {
                // Leave without finalizing MPI, which could wait for ranks that wait for this
                // one: mpirun sees the failed rank and ends the job.
                std::process::exit(1);
            }
            ExitCode::FAILURE
        }
    }
}
