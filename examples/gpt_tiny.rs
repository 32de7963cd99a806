//! A tiny GPT (the W4 architecture: token and position embeddings, pre-LN blocks of causal
//! multi-head self-attention and a GELU MLP, a final layer norm and an unembedding) learns to
//! **sort a digit string**:
//!
//! ```text
//! 3 1 4 1 5 9 | 1 1 3 4 5 9
//! ```
//!
//! Each training sequence is 6 random digits, a separator, and the same digits in ascending
//! order. The model reads the first 12 tokens and is trained with next-token cross-entropy on
//! the 6 answer positions (the separator predicts the first answer digit, and so on).
//! Evaluation decodes greedily — each predicted digit is fed back in — on 1000 held-out strings
//! that never occur in training, and reports exact-match accuracy (chance: 10⁻⁶) and per-digit
//! accuracy (chance: 10%).
//!
//! The whole training step (forward, backward, Adam) is one JIT-compiled function, driven by
//! the training library's `Trainer` over a data set of token sequences
//! (`Dataset::sequences`: inputs `i32[n, 12]`, targets `i32[n, 6]`); the greedy decoding calls
//! `Trainer::predict`.
//!
//! Run with `cargo run --release --example gpt_tiny`.

use adjoint::autodiff::Optimizer;
use adjoint::ir::{DType, HostTensor, Rng, Tensor};
use adjoint::nn::data::Dataset;
use adjoint::nn::layers::{Embedding, LayerNorm, Linear, LinearOptions, TransformerBlock};
use adjoint::nn::loss::cross_entropy;
use adjoint::nn::schedule::Schedule;
use adjoint::nn::trainer::{Forward, Pass, Trainer, TrainerOptions};
use adjoint::nn::{Initializer, Params};
use std::collections::HashSet;
use std::error::Error;
use std::time::Instant;

/// Digits per string.
const DIGITS: usize = 6;
/// The separator token; digits are tokens 0..10.
const SEP: i32 = 10;
/// Vocabulary: ten digits and the separator.
const VOCAB: usize = 11;
/// Tokens the model reads: the digits, the separator and all answer digits but the last.
const SEQ: usize = 2 * DIGITS;

/// Sizes of the model and the run.
#[derive(Clone, Copy)]
struct Config {
    width: usize,
    heads: usize,
    mlp_hidden: usize,
    layers: usize,
    batch: usize,
    steps: usize,
    lr: f64,
}

/// The model's logits `[batch, SEQ, VOCAB]` for `tokens` `[batch, SEQ]`.
fn gpt<'b>(p: &mut Params<'b>, cfg: &Config, tokens: Tensor<'b>) -> Tensor<'b> {
    let embed = Embedding::with_init(
        p,
        "embed",
        VOCAB,
        cfg.width,
        Initializer::Normal { std: 0.02 },
    );
    let pos = p.get("pos", &[SEQ, cfg.width], Initializer::Normal { std: 0.02 });
    let mut h = embed.forward(tokens) + pos;
    for l in 0..cfg.layers {
        let block = TransformerBlock::new(
            p,
            &format!("block{l}"),
            cfg.width,
            cfg.heads,
            cfg.mlp_hidden,
        );
        h = block.forward(h);
    }
    let ln = LayerNorm::new(p, "ln_f", cfg.width);
    let options = LinearOptions {
        bias: false,
        ..LinearOptions::default()
    };
    let unembed = Linear::with_options(p, "unembed", cfg.width, VOCAB, options);
    unembed.forward(ln.forward(h))
}

/// The model function for the trainer: reads `x` `[batch, SEQ]`, returns the logits of the
/// answer positions `[batch, DIGITS, VOCAB]` and their mean cross-entropy against `y`
/// `[batch, DIGITS]`.
fn model<'b>(p: &mut Params<'b>, pass: &Pass, cfg: &Config) -> Forward<'b> {
    let b = p.builder();
    let tokens = b.input("x", DType::I32, [pass.batch_size, SEQ]);
    let answers = b.input("y", DType::I32, [pass.batch_size, DIGITS]);
    let logits = gpt(p, cfg, tokens).slice(1, DIGITS, SEQ, 1);
    Forward {
        loss: cross_entropy(logits, answers, 0.0),
        logits: Some(logits),
    }
}

/// The answer to `d`: its digits in ascending order.
fn answer_of(d: &[i32; DIGITS]) -> [i32; DIGITS] {
    let mut sorted = *d;
    sorted.sort_unstable();
    sorted
}

/// A random digit string.
fn digits(rng: &mut Rng) -> [i32; DIGITS] {
    std::array::from_fn(|_| rng.below(10) as i32)
}

/// Model input (digits, separator, answer without its last digit) and answer of `d`.
fn example(d: &[i32; DIGITS]) -> (Vec<i32>, Vec<i32>) {
    let answer = answer_of(d);
    let mut tokens = d.to_vec();
    tokens.push(SEP);
    tokens.extend_from_slice(&answer[..DIGITS - 1]);
    (tokens, answer.to_vec())
}

/// `count` training examples as a data set (drawn at random, never a held-out string).
fn training_set(
    rng: &mut Rng,
    count: usize,
    held_out: &HashSet<[i32; DIGITS]>,
) -> Result<Dataset, Box<dyn Error>> {
    let (mut tokens, mut answers) = (Vec::new(), Vec::new());
    while answers.len() < count * DIGITS {
        let d = digits(rng);
        if held_out.contains(&d) {
            continue;
        }
        let (t, a) = example(&d);
        tokens.extend(t);
        answers.extend(a);
    }
    Ok(Dataset::sequences(
        HostTensor::from_i32([count, SEQ], tokens)?,
        HostTensor::from_i32([count, DIGITS], answers)?,
        VOCAB,
    )?)
}

/// The held-out strings as a teacher-forced data set (the trainer's test loss and accuracy).
fn held_out_set(strings: &[[i32; DIGITS]]) -> Result<Dataset, Box<dyn Error>> {
    let (mut tokens, mut answers) = (Vec::new(), Vec::new());
    for d in strings {
        let (t, a) = example(d);
        tokens.extend(t);
        answers.extend(a);
    }
    Ok(Dataset::sequences(
        HostTensor::from_i32([strings.len(), SEQ], tokens)?,
        HostTensor::from_i32([strings.len(), DIGITS], answers)?,
        VOCAB,
    )?)
}

/// Greedy decoding of the answers to `strings` (each predicted digit fed back in):
/// `(exact matches, correct digits)`.
fn decode(
    trainer: &mut Trainer,
    strings: &[[i32; DIGITS]],
) -> Result<(usize, usize), Box<dyn Error>> {
    let n = strings.len();
    let mut tokens: Vec<i32> = Vec::with_capacity(n * SEQ);
    for d in strings {
        tokens.extend_from_slice(d);
        tokens.push(SEP);
        tokens.extend(std::iter::repeat_n(0, DIGITS - 1)); // filled in as decoding goes
    }
    let mut predicted = vec![[0i32; DIGITS]; n];
    for i in 0..DIGITS {
        let logits = trainer
            .predict(&HostTensor::from_i32([n, SEQ], tokens.clone())?)?
            .to_f64_vec();
        for (row, pred) in predicted.iter_mut().enumerate() {
            let at = (row * DIGITS + i) * VOCAB;
            let best = (0..VOCAB)
                .max_by(|&a, &b| logits[at + a].total_cmp(&logits[at + b]))
                .expect("nonempty vocabulary") as i32;
            pred[i] = best;
            if i + 1 < DIGITS {
                tokens[row * SEQ + DIGITS + 1 + i] = best;
            }
        }
    }
    let mut exact = 0;
    let mut correct = 0;
    for (d, pred) in strings.iter().zip(&predicted) {
        let right = answer_of(d)
            .iter()
            .zip(pred)
            .filter(|(a, b)| a == b)
            .count();
        correct += right;
        exact += usize::from(right == DIGITS);
    }
    Ok((exact, correct))
}

fn main() -> Result<(), Box<dyn Error>> {
    let cfg = Config {
        width: 64,
        heads: 4,
        mlp_hidden: 256,
        layers: 2,
        batch: 64,
        steps: 1500,
        lr: 2e-3,
    };
    let seed = 0;
    let eval_n = 1000;

    // Held-out strings, never drawn for training.
    let mut rng = Rng::derive(seed, "held-out");
    let mut held_out = HashSet::new();
    while held_out.len() < eval_n {
        held_out.insert(digits(&mut rng));
    }
    let held_out: Vec<[i32; DIGITS]> = held_out.into_iter().collect();
    let held_set: HashSet<_> = held_out.iter().copied().collect();
    // One epoch of `steps` batches, every example drawn at random.
    let mut rng = Rng::derive(seed, "training");
    let train = training_set(&mut rng, cfg.steps * cfg.batch, &held_set)?;
    let test = held_out_set(&held_out)?;

    let t0 = Instant::now();
    let options = TrainerOptions {
        batch_size: cfg.batch,
        epochs: 1,
        seed,
        eval_every: 500,
        log_every: 250,
        eval_batch_size: eval_n,
        ..TrainerOptions::default()
    };
    let optimizer = Optimizer::adam(cfg.lr).with_clip_global_norm(1.0);
    let mut trainer = Trainer::new(
        "gpt_tiny",
        move |p: &mut Params<'_>, pass: &Pass| model(p, pass, &cfg),
        optimizer,
        Schedule::Constant,
        options,
    )?;
    let parameters: usize = trainer.model_params().values().map(HostTensor::numel).sum();
    println!(
        "gpt_tiny: {} blocks, width {}, {} heads, MLP {}, {parameters} parameters; compiled in {:.2?}",
        cfg.layers,
        cfg.width,
        cfg.heads,
        cfg.mlp_hidden,
        t0.elapsed()
    );

    let t_train = Instant::now();
    trainer.fit(&train, Some(&test))?;
    let train_time = t_train.elapsed();
    let (exact, correct) = decode(&mut trainer, &held_out)?;
    println!(
        "trained {} steps of {} sequences in {:.1?}",
        trainer.step(),
        cfg.batch,
        train_time
    );
    println!(
        "held-out exact match: {exact}/{eval_n} = {:.1}%  (chance 1e-4 %)",
        100.0 * exact as f64 / eval_n as f64
    );
    println!(
        "held-out digit accuracy: {:.1}%  (chance 10%)",
        100.0 * correct as f64 / (eval_n * DIGITS) as f64
    );
    Ok(())
}
