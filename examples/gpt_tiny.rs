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
//! The whole training step (forward, backward, Adam) is one JIT-compiled function, driven here
//! by a hand-written loop over `adjoint_jit::compile` and `CompiledStep::run`.
//!
//! Run with `cargo run --release --example gpt_tiny`.

use adjoint::autodiff::{training_step, Optimizer};
use adjoint::ir::{Builder, DType, Feeds, Graph, HostTensor, Rng, Tensor};
use adjoint::jit::{compile, CompiledStep, Options};
use adjoint::nn::layers::{Embedding, LayerNorm, Linear, LinearOptions, TransformerBlock};
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

/// The training graph: mean cross-entropy of the answer positions against `answers`.
fn train_graph(cfg: &Config, seed: u64) -> (Graph, Vec<String>, Feeds) {
    let b = Builder::new("gpt_tiny_train");
    let mut p = Params::new(&b, seed);
    let tokens = b.input("tokens", DType::I32, [cfg.batch, SEQ]);
    let answers = b.input("answers", DType::I32, [cfg.batch, DIGITS]);
    let logits = gpt(&mut p, cfg, tokens);
    let answer_logits = logits
        .slice(1, DIGITS, SEQ, 1)
        .reshape([cfg.batch * DIGITS, VOCAB]);
    let loss = answer_logits.cross_entropy(answers.reshape([cfg.batch * DIGITS]));
    b.output("loss", loss);
    let trainable = p.trainable().to_vec();
    let initial = p.into_initial_values();
    (b.finish(), trainable, initial)
}

/// The evaluation graph: logits of every position for `batch` sequences.
fn eval_graph(cfg: &Config, batch: usize) -> Graph {
    let b = Builder::new("gpt_tiny_eval");
    let mut p = Params::new(&b, 0);
    let tokens = b.input("tokens", DType::I32, [batch, SEQ]);
    b.output("logits", gpt(&mut p, cfg, tokens));
    b.finish()
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

/// Greedy decoding of the answers to `strings`: `(exact matches, correct digits)`.
fn evaluate(
    step: &mut CompiledStep,
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
        let feeds = Feeds::from([(
            "tokens".to_string(),
            HostTensor::from_i32([n, SEQ], tokens.clone())?,
        )]);
        let out = step.run(&feeds)?;
        let logits = out.output("logits").ok_or("no logits")?.to_f64_vec();
        for (row, pred) in predicted.iter_mut().enumerate() {
            let at = (row * SEQ + DIGITS + i) * VOCAB;
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
    let t0 = Instant::now();
    let (graph, trainable, initial) = train_graph(&cfg, seed);
    let params: Vec<_> = trainable
        .iter()
        .map(|n| graph.leaf(n).expect("declared"))
        .collect();
    let loss = graph.output("loss").expect("declared");
    let step_graph = training_step(
        graph,
        loss,
        &params,
        &Optimizer::adam(cfg.lr).with_clip_global_norm(1.0),
    )?;
    let mut step = compile(&step_graph.graph, &Options::default())?;
    step.set_params(&initial)?;
    step.set_params(&step_graph.state.iter().cloned().collect())?;
    let eval_n = 1000;
    let mut eval = compile(&eval_graph(&cfg, eval_n), &Options::default())?;
    println!(
        "gpt_tiny: {} blocks, width {}, {} heads, MLP {}, {} parameters; compiled in {:.2?}",
        cfg.layers,
        cfg.width,
        cfg.heads,
        cfg.mlp_hidden,
        initial.values().map(HostTensor::numel).sum::<usize>(),
        t0.elapsed()
    );

    // Held-out strings, never drawn for training.
    let mut rng = Rng::derive(seed, "held-out");
    let mut held_out = HashSet::new();
    while held_out.len() < eval_n {
        held_out.insert(digits(&mut rng));
    }
    let held_out: Vec<[i32; DIGITS]> = held_out.into_iter().collect();
    let held_set: HashSet<_> = held_out.iter().copied().collect();

    let mut rng = Rng::derive(seed, "training");
    let t_train = Instant::now();
    let mut recent = Vec::new();
    for s in 1..=cfg.steps {
        let (mut tokens, mut answers) = (Vec::new(), Vec::new());
        while answers.len() < cfg.batch * DIGITS {
            let d = digits(&mut rng);
            if held_set.contains(&d) {
                continue;
            }
            let (t, a) = example(&d);
            tokens.extend(t);
            answers.extend(a);
        }
        let feeds = Feeds::from([
            (
                "tokens".to_string(),
                HostTensor::from_i32([cfg.batch, SEQ], tokens)?,
            ),
            (
                "answers".to_string(),
                HostTensor::from_i32([cfg.batch, DIGITS], answers)?,
            ),
        ]);
        let out = step.run(&feeds)?;
        let l = out.output("loss").ok_or("no loss")?.to_f64_vec()[0];
        if !l.is_finite() {
            return Err(format!("the loss became {l} at step {s}").into());
        }
        recent.push(l);
        if s % 250 == 0 {
            let mean = recent.iter().sum::<f64>() / recent.len() as f64;
            println!(
                "step {s:>5}  loss {mean:.4}  ({:.0} steps/s)",
                s as f64 / t_train.elapsed().as_secs_f64()
            );
            recent.clear();
        }
    }
    let train_time = t_train.elapsed();
    for name in &trainable {
        eval.set_param(name, &step.param(name).ok_or("missing parameter")?)?;
    }
    let (exact, correct) = evaluate(&mut eval, &held_out)?;
    println!(
        "trained {} steps of {} sequences in {:.1?}",
        cfg.steps, cfg.batch, train_time
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
