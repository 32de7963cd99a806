//! A small convolutional network on the 8×8 handwritten digits:
//!
//! ```text
//! x [N,1,8,8] → conv 3×3 (16) → batch norm → ReLU → max pool 2×2 → [N,16,4,4]
//!             → conv 3×3 (32) → batch norm → ReLU → max pool 2×2 → [N,32,2,2]
//!             → flatten → dropout 0.25 → linear 128→10
//! ```
//!
//! The convolutions are im2col (a constant-index `gather`) and one matrix product each, batch
//! norm trains on batch statistics and evaluates on its running statistics (updated in place by
//! every compiled step), and dropout masks are drawn fresh for every step. The `Trainer`
//! compiles the training step once, feeds the 64 pixel values of each example reshaped to
//! `[1, 8, 8]`, and evaluates on the held-out 20% with a second compiled graph.
//!
//! Run with `cargo run --release --example cnn_digits`.

use adjoint::autodiff::Optimizer;
use adjoint::ir::DType;
use adjoint::nn::data::{digits_path, load_digits, Standardizer};
use adjoint::nn::layers::{max_pool2d, BatchNorm, Conv2d, Dropout, Linear};
use adjoint::nn::loss::cross_entropy;
use adjoint::nn::schedule::Schedule;
use adjoint::nn::trainer::{Forward, Pass, Trainer, TrainerOptions};
use adjoint::nn::Params;
use std::error::Error;
use std::time::Instant;

/// Convolution, batch norm (in the pass's mode), ReLU and 2×2 max pooling.
fn conv_block<'b>(
    p: &mut Params<'b>,
    pass: &Pass,
    name: &str,
    x: adjoint::ir::Tensor<'b>,
    channels: [usize; 2],
) -> adjoint::ir::Tensor<'b> {
    let [c_in, c_out] = channels;
    let conv = Conv2d::new(p, &format!("{name}.conv"), c_in, c_out, [3, 3]).with_padding(1);
    let bn = BatchNorm::new(p, &format!("{name}.bn"), c_out);
    let h = conv.forward(x);
    let h = if pass.is_training() {
        bn.forward_train(h)
    } else {
        bn.forward_eval(h)
    };
    max_pool2d(h.relu(), 2)
}

/// The network: declares the inputs `x` (pixels as `[N, 1, 8, 8]`) and `y` (labels).
fn cnn<'b>(p: &mut Params<'b>, pass: &Pass) -> Forward<'b> {
    let n = pass.batch_size;
    let b = p.builder();
    let x = b.input("x", DType::F32, [n, 1, 8, 8]);
    let y = b.input("y", DType::I32, [n]);
    let h = conv_block(p, pass, "block1", x, [1, 16]);
    let h = conv_block(p, pass, "block2", h, [16, 32]);
    let h = h.reshape([n, 32 * 2 * 2]);
    let dropout = Dropout::new("dropout", 0.25);
    let h = if pass.is_training() {
        dropout.forward_train(p, h)
    } else {
        dropout.forward_eval(h)
    };
    let logits = Linear::new(p, "head", 128, 10).forward(h);
    Forward {
        loss: cross_entropy(logits, y, 0.0),
        logits: Some(logits),
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let digits = load_digits(digits_path())?;
    let (train, test) = digits.split(0, 0.2)?;
    let scaler = Standardizer::fit(&train);
    let (train, test) = (scaler.apply(&train)?, scaler.apply(&test)?);
    println!(
        "digits: {} training and {} test images of 8x8 pixels",
        train.len(),
        test.len()
    );
    let options = TrainerOptions {
        batch_size: 32,
        epochs: 15,
        seed: 0,
        ..TrainerOptions::default()
    };
    let t0 = Instant::now();
    let schedule = Schedule::warmup_cosine(20, 15 * (train.len() / 32) as u64, 0.05);
    let mut trainer = Trainer::new("cnn_digits", cnn, Optimizer::adam(3e-3), schedule, options)?;
    println!("compiled the training step in {:.2?}", t0.elapsed());
    let t1 = Instant::now();
    let evaluation = trainer
        .fit(&train, Some(&test))?
        .last_evaluation()
        .ok_or("no evaluation")?
        .clone();
    let accuracy = evaluation.accuracy.ok_or("no accuracy")?;
    println!(
        "trained {} steps in {:.1?}; test loss {:.4}, test accuracy {:.2}% ({} of {})",
        trainer.step(),
        t1.elapsed(),
        evaluation.loss,
        100.0 * accuracy,
        (accuracy * test.len() as f64).round(),
        test.len()
    );
    Ok(())
}
