//! Vanishing gradients, measured: a 20-layer MLP of sigmoid layers, without residual
//! connections or normalization, next to the same depth with residual connections and layer
//! norm, both on the 8×8 digits.
//!
//! The sigmoid's derivative is at most 1/4, so in the plain net every layer the gradient flows
//! back through multiplies it by roughly `σ'·‖W‖ < 1`: by the first layer it has all but
//! vanished, and those layers cannot learn. In the residual net, `h + f(LN(h))` passes the
//! gradient through the identity as well, so every layer receives a gradient of similar size.
//!
//! The gradient norms are computed by the step graph itself: the gradient graph
//! (`adjoint_autodiff::grad`) gets one extra output per weight, the sum of squares of its
//! gradient, and the whole thing is JIT-compiled and run on a batch of 256 training images.
//! Then both nets train for the same number of SGD steps with the `Trainer` (which records the
//! same per-layer norms while training), and their test accuracies are compared.
//!
//! Run with `cargo run --release --example vanishing_gradients`.

use adjoint::autodiff::{grad, Optimizer};
use adjoint::ir::{Builder, DType, Feeds, HostTensor, Tensor};
use adjoint::jit::{compile, Options};
use adjoint::nn::data::{digits_path, load_digits, Dataset, Standardizer};
use adjoint::nn::layers::{LayerNorm, Linear};
use adjoint::nn::loss::cross_entropy;
use adjoint::nn::schedule::Schedule;
use adjoint::nn::trainer::{Forward, Mode, Pass, Trainer, TrainerOptions};
use adjoint::nn::Params;
use std::error::Error;

/// Hidden layers of each net.
const DEPTH: usize = 20;
/// Units per hidden layer.
const WIDTH: usize = 32;

/// The name of hidden layer `l` (1-based).
fn layer(l: usize) -> String {
    format!("layer{l:02}")
}

/// Inputs `x` `[N, 64]` and `y` `[N]`.
fn inputs<'b>(p: &Params<'b>, pass: &Pass) -> (Tensor<'b>, Tensor<'b>) {
    let b = p.builder();
    let x = b.input("x", DType::F32, [pass.batch_size, 64]);
    let y = b.input("y", DType::I32, [pass.batch_size]);
    (x, y)
}

/// 20 layers `h = σ(h·W + b)`, then a linear head.
fn plain<'b>(p: &mut Params<'b>, pass: &Pass) -> Forward<'b> {
    let (x, y) = inputs(p, pass);
    let mut h = x;
    for l in 1..=DEPTH {
        let fan_in = if l == 1 { 64 } else { WIDTH };
        h = Linear::new(p, &layer(l), fan_in, WIDTH)
            .forward(h)
            .sigmoid();
    }
    let logits = Linear::new(p, "head", WIDTH, 10).forward(h);
    Forward {
        loss: cross_entropy(logits, y, 0.0),
        logits: Some(logits),
    }
}

/// `h = σ(x·W₁ + b₁)`, then 19 residual layers `h = h + σ(LN(h)·W + b)`, then layer norm and a
/// linear head.
fn residual_ln<'b>(p: &mut Params<'b>, pass: &Pass) -> Forward<'b> {
    let (x, y) = inputs(p, pass);
    let mut h = Linear::new(p, &layer(1), 64, WIDTH).forward(x).sigmoid();
    for l in 2..=DEPTH {
        let norm = LayerNorm::new(p, &format!("ln{l:02}"), WIDTH);
        h = h + Linear::new(p, &layer(l), WIDTH, WIDTH)
            .forward(norm.forward(h))
            .sigmoid();
    }
    let norm = LayerNorm::new(p, "ln_head", WIDTH);
    let logits = Linear::new(p, "head", WIDTH, 10).forward(norm.forward(h));
    Forward {
        loss: cross_entropy(logits, y, 0.0),
        logits: Some(logits),
    }
}

/// The model functions' type.
type Model = for<'b> fn(&mut Params<'b>, &Pass) -> Forward<'b>;

/// `‖∂loss/∂W_l‖₂` of every hidden layer's weight at the initial parameters, on the first
/// `batch` examples of `data`.
fn initial_grad_norms(
    model: Model,
    data: &Dataset,
    batch: usize,
) -> Result<Vec<f64>, Box<dyn Error>> {
    let b = Builder::new("grad_norms");
    let mut p = Params::new(&b, 0);
    let pass = Pass {
        mode: Mode::Train,
        batch_size: batch,
    };
    let loss = model(&mut p, &pass).loss.id();
    let initial = p.into_initial_values();
    let graph = b.finish();
    let weights: Vec<_> = (1..=DEPTH)
        .map(|l| {
            graph
                .leaf(&format!("{}.weight", layer(l)))
                .ok_or("missing weight")
        })
        .collect::<Result<_, _>>()?;
    let grads = grad(graph, loss, &weights)?;
    let grad_nodes = grads.nodes();
    let b = Builder::from_graph(grads.graph);
    for (l, &g) in (1..=DEPTH).zip(&grad_nodes) {
        let sq = b.tensor(g).cast(DType::F64).square().sum_all();
        b.output(&format!("{}.grad_sq", layer(l)), sq);
    }
    let graph = b.finish();
    let mut step = compile(&graph, &Options::default())?;
    step.set_params(&initial)?;
    let rows: Vec<usize> = (0..batch).collect();
    let sample = data.select(&rows)?;
    let feeds = Feeds::from([
        ("x".to_string(), sample.features().clone()),
        ("y".to_string(), sample.labels().clone()),
    ]);
    let out = step.run(&feeds)?;
    (1..=DEPTH)
        .map(|l| {
            let sq = out
                .output(&format!("{}.grad_sq", layer(l)))
                .ok_or("missing output")?;
            Ok(HostTensor::to_f64_vec(sq)[0].sqrt())
        })
        .collect()
}

/// Trains `model` with SGD and returns the test accuracy and the last recorded hidden-layer
/// gradient norms.
fn train(
    name: &str,
    model: Model,
    train: &Dataset,
    test: &Dataset,
) -> Result<(f64, Vec<f64>), Box<dyn Error>> {
    let options = TrainerOptions {
        batch_size: 32,
        epochs: 8,
        grad_norm_every: 10,
        quiet: true,
        ..TrainerOptions::default()
    };
    let mut trainer = Trainer::new(
        name,
        model,
        Optimizer::momentum(0.05, 0.9),
        Schedule::Constant,
        options,
    )?;
    let history = trainer.fit(train, Some(test))?;
    let accuracy = history
        .last_evaluation()
        .and_then(|e| e.accuracy)
        .ok_or("no evaluation")?;
    let last = history.grad_norms.last().ok_or("no gradient norms")?;
    let norms = (1..=DEPTH)
        .map(|l| {
            let w = format!("{}.weight", layer(l));
            last.norms
                .iter()
                .find(|(n, _)| *n == w)
                .map(|&(_, v)| v)
                .ok_or("missing norm")
        })
        .collect::<Result<_, _>>()?;
    Ok((accuracy, norms))
}

fn main() -> Result<(), Box<dyn Error>> {
    let digits = load_digits(digits_path())?;
    let (train_set, test_set) = digits.split(0, 0.2)?;
    let scaler = Standardizer::fit(&train_set);
    let (train_set, test_set) = (scaler.apply(&train_set)?, scaler.apply(&test_set)?);

    let plain_norms = initial_grad_norms(plain, &train_set, 256)?;
    let residual_norms = initial_grad_norms(residual_ln, &train_set, 256)?;
    println!("gradient norm ‖∂loss/∂W‖ of each hidden layer at initialization (batch of 256):");
    println!(
        "{:>7}  {:>14}  {:>16}",
        "layer", "plain sigmoid", "residual + LN"
    );
    for l in 0..DEPTH {
        println!(
            "{:>7}  {:>14.3e}  {:>16.3e}",
            l + 1,
            plain_norms[l],
            residual_norms[l]
        );
    }
    let spread = |n: &[f64]| n[DEPTH - 1] / n[0];
    println!(
        "last layer / first layer:   plain {:.1e}   residual + LN {:.2}",
        spread(&plain_norms),
        spread(&residual_norms)
    );

    println!("\ntraining both for 8 epochs (SGD with momentum 0.9, rate 0.05, batch 32) ...");
    let (plain_acc, plain_after) = train("plain", plain, &train_set, &test_set)?;
    let (res_acc, res_after) = train("residual_ln", residual_ln, &train_set, &test_set)?;
    println!(
        "after training, first-layer gradient norm: plain {:.3e}, residual + LN {:.3e}",
        plain_after[0], res_after[0]
    );
    println!(
        "after training, last-layer gradient norm:  plain {:.3e}, residual + LN {:.3e}",
        plain_after[DEPTH - 1],
        res_after[DEPTH - 1]
    );
    println!(
        "test accuracy: plain {:.1}%, residual + LN {:.1}% (chance 10%)",
        100.0 * plain_acc,
        100.0 * res_acc
    );
    Ok(())
}
