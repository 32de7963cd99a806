//! The main job: train an MLP on the bundled handwritten digits with a JIT-compiled step.
//!
//! ```sh
//! cargo run --release --example train_digits                      # 30 epochs into runs/train_digits/
//! cargo run --release --example train_digits -- --epochs 5 --out /tmp/digits
//! ```
//!
//! Loads `data/digits.csv.gz` (1797 8×8 images), splits it 80/20 stratified by class,
//! standardizes the pixels with the training split's statistics, trains a 64-128-64-10 ReLU MLP
//! with Adam under a warm-up + cosine learning-rate schedule (every step one native call:
//! forward, backward and update), evaluates on the test split after every epoch, then prints
//! the test accuracy and writes `loss.svg` (training loss, test loss, test accuracy) and
//! `checkpoint.safetensors` (parameters, Adam state, step) into the output directory.

use adjoint::nn::chart::write_loss_chart;
use adjoint::nn::data::{digits_path, load_digits, Standardizer};
use adjoint::nn::layers::Linear;
use adjoint::nn::loss::cross_entropy;
use adjoint::nn::schedule::Schedule;
use adjoint::nn::trainer::{Forward, Pass, Trainer, TrainerOptions};
use adjoint::nn::Params;
use adjoint::{autodiff::Optimizer, DType};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Command-line settings.
struct Args {
    out: PathBuf,
    epochs: u64,
}

const USAGE: &str = "usage: train_digits [--out DIR] [--epochs N]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        out: PathBuf::from("runs/train_digits"),
        epochs: 30,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--out" => args.out = PathBuf::from(value("--out")?),
            "--epochs" => {
                let v = value("--epochs")?;
                args.epochs = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("--epochs: `{v}` is not a positive whole number"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(args)
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

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let digits = load_digits(digits_path())?;
    let (train, test) = digits.split(42, 0.2)?;
    let scaler = Standardizer::fit(&train);
    let (train, test) = (scaler.apply(&train)?, scaler.apply(&test)?);
    println!(
        "digits: {} training and {} test examples of {} features, {} classes",
        train.len(),
        test.len(),
        train.num_features(),
        train.classes()
    );

    std::fs::create_dir_all(&args.out)?;
    let checkpoint = args.out.join("checkpoint.safetensors");
    let batch_size = 32;
    let steps = (train.len() / batch_size) as u64 * args.epochs;
    let options = TrainerOptions {
        batch_size,
        epochs: args.epochs,
        seed: 42,
        checkpoint: Some(checkpoint.clone()),
        ..TrainerOptions::default()
    };
    let schedule = Schedule::warmup_cosine(steps / 20, steps, 0.01);
    let mut trainer = Trainer::new("digits_mlp", mlp, Optimizer::adam(3e-3), schedule, options)?;
    let compiled = start.elapsed();
    println!(
        "compiled the training step ({} kernels) in {:.2} s; training {} epochs ({steps} steps)",
        trainer.compiled_step().stats().kernels,
        compiled.as_secs_f64(),
        args.epochs
    );

    let history = trainer.fit(&train, Some(&test))?.clone();
    let last = history
        .last_evaluation()
        .ok_or("no evaluation was recorded")?;
    let accuracy = last.accuracy.ok_or("the model has no logits")?;

    let chart = args.out.join("loss.svg");
    let train_loss = history.train_loss_points();
    let test_loss = history.eval_loss_points();
    let test_acc = history.eval_accuracy_points();
    write_loss_chart(
        &chart,
        &[
            ("training loss", &train_loss),
            ("test loss", &test_loss),
            ("test accuracy", &test_acc),
        ],
        "MLP on the digits (Adam, warm-up + cosine)",
    )?;

    println!(
        "test accuracy: {:.2}% ({} examples), test loss {:.4}, after {} steps in {:.1} s",
        accuracy * 100.0,
        test.len(),
        last.loss,
        trainer.step(),
        start.elapsed().as_secs_f64()
    );
    println!("wrote {} and {}", chart.display(), checkpoint.display());
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("train_digits: {e}");
            ExitCode::FAILURE
        }
    }
}
