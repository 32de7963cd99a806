//! Shortened versions of the `gpt_tiny`, `vanishing_gradients` and `cnn_digits` examples: the
//! same models at smaller sizes, checking that each shows what its example shows.

mod common;

use adjoint_autodiff::{grad, training_step, Optimizer};
use adjoint_ir::{Builder, DType, Feeds, Graph, HostTensor, Rng, Tensor};
use adjoint_jit::{compile, CompiledStep, Options};
use adjoint_nn::data::Dataset;
use adjoint_nn::layers::{
    max_pool2d, BatchNorm, Conv2d, Dropout, Embedding, LayerNorm, Linear, LinearOptions,
    TransformerBlock,
};
use adjoint_nn::loss::cross_entropy;
use adjoint_nn::schedule::Schedule;
use adjoint_nn::trainer::{Forward, Mode, Pass, Trainer, TrainerOptions};
use adjoint_nn::{Initializer, Params};
use std::collections::HashSet;

// ---------------------------------------------------------------------------------------------
// gpt_tiny: sorting digit strings

const DIGITS: usize = 4;
const SEP: i32 = 10;
const VOCAB: usize = 11;
const SEQ: usize = 2 * DIGITS;
const WIDTH: usize = 32;

/// The answer to `d`: its digits in ascending order.
fn sorted(d: &[i32; DIGITS]) -> [i32; DIGITS] {
    let mut s = *d;
    s.sort_unstable();
    s
}

/// Logits `[batch, SEQ, VOCAB]` of a one-block GPT.
fn gpt<'b>(p: &mut Params<'b>, tokens: Tensor<'b>) -> Tensor<'b> {
    let normal = Initializer::Normal { std: 0.02 };
    let embed = Embedding::with_init(p, "embed", VOCAB, WIDTH, normal);
    let pos = p.get("pos", &[SEQ, WIDTH], normal);
    let h = TransformerBlock::new(p, "block0", WIDTH, 2, 4 * WIDTH)
        .forward(embed.forward(tokens) + pos);
    let ln = LayerNorm::new(p, "ln_f", WIDTH);
    let no_bias = LinearOptions {
        bias: false,
        ..LinearOptions::default()
    };
    Linear::with_options(p, "unembed", WIDTH, VOCAB, no_bias).forward(ln.forward(h))
}

/// The compiled training step and the trained parameters' names.
fn gpt_train_step(batch: usize) -> (CompiledStep, Vec<String>) {
    let b = Builder::new("gpt_train");
    let mut p = Params::new(&b, 0);
    let tokens = b.input("tokens", DType::I32, [batch, SEQ]);
    let answers = b.input("answers", DType::I32, [batch, DIGITS]);
    let logits = gpt(&mut p, tokens)
        .slice(1, DIGITS, SEQ, 1)
        .reshape([batch * DIGITS, VOCAB]);
    let loss = logits.cross_entropy(answers.reshape([batch * DIGITS]));
    b.output("loss", loss);
    let loss = loss.id();
    let trainable = p.trainable().to_vec();
    let initial = p.into_initial_values();
    let graph = b.finish();
    let params: Vec<_> = trainable.iter().map(|n| graph.leaf(n).unwrap()).collect();
    let opt = Optimizer::adam(3e-3).with_clip_global_norm(1.0);
    let step = training_step(graph, loss, &params, &opt).unwrap();
    let mut compiled = compile(&step.graph, &Options::default()).unwrap();
    compiled.set_params(&initial).unwrap();
    compiled
        .set_params(&step.state.iter().cloned().collect())
        .unwrap();
    (compiled, trainable)
}

/// Greedy answers of the trained model for `strings`.
fn gpt_decode(eval: &mut CompiledStep, strings: &[[i32; DIGITS]]) -> Vec<[i32; DIGITS]> {
    let n = strings.len();
    let mut tokens: Vec<i32> = strings
        .iter()
        .flat_map(|d| d.iter().copied().chain([SEP]).chain([0; DIGITS - 1]))
        .collect();
    let mut out = vec![[0; DIGITS]; n];
    for i in 0..DIGITS {
        let x = HostTensor::from_i32([n, SEQ], tokens.clone()).unwrap();
        let run = eval.run(&Feeds::from([("tokens".to_string(), x)])).unwrap();
        let logits = run.output("logits").unwrap().to_f64_vec();
        for (row, pred) in out.iter_mut().enumerate() {
            let at = (row * SEQ + DIGITS + i) * VOCAB;
            let best = (0..VOCAB)
                .max_by(|&a, &b| logits[at + a].total_cmp(&logits[at + b]))
                .unwrap() as i32;
            pred[i] = best;
            if i + 1 < DIGITS {
                tokens[row * SEQ + DIGITS + 1 + i] = best;
            }
        }
    }
    out
}

#[test]
fn gpt_learns_to_sort_digit_strings_far_above_chance() {
    let batch = 32;
    let (mut step, trainable) = gpt_train_step(batch);
    let draw = |rng: &mut Rng| -> [i32; DIGITS] { std::array::from_fn(|_| rng.below(10) as i32) };
    let mut rng = Rng::new(99);
    let held_out: Vec<[i32; DIGITS]> = (0..200).map(|_| draw(&mut rng)).collect();
    let held: HashSet<_> = held_out.iter().copied().collect();
    let mut rng = Rng::new(1);
    let mut first_loss = None;
    let mut last_loss = 0.0;
    for _ in 0..300 {
        let (mut tokens, mut answers) = (Vec::new(), Vec::new());
        while answers.len() < batch * DIGITS {
            let d = draw(&mut rng);
            if held.contains(&d) {
                continue;
            }
            tokens.extend(
                d.iter()
                    .copied()
                    .chain([SEP])
                    .chain(sorted(&d).into_iter().take(DIGITS - 1)),
            );
            answers.extend(sorted(&d));
        }
        let feeds = Feeds::from([
            (
                "tokens".to_string(),
                HostTensor::from_i32([batch, SEQ], tokens).unwrap(),
            ),
            (
                "answers".to_string(),
                HostTensor::from_i32([batch, DIGITS], answers).unwrap(),
            ),
        ]);
        let loss = step
            .run(&feeds)
            .unwrap()
            .output("loss")
            .unwrap()
            .to_f64_vec()[0];
        assert!(loss.is_finite());
        first_loss.get_or_insert(loss);
        last_loss = loss;
    }
    // Chance: cross-entropy ln(11) ≈ 2.4 at the start.
    assert!(first_loss.unwrap() > 2.0, "first loss {first_loss:?}");
    assert!(last_loss < 1.0, "last loss {last_loss}");

    let b = Builder::new("gpt_eval");
    let mut p = Params::new(&b, 0);
    let tokens = b.input("tokens", DType::I32, [held_out.len(), SEQ]);
    b.output("logits", gpt(&mut p, tokens));
    drop(p);
    let mut eval = compile(&b.finish(), &Options::default()).unwrap();
    for name in &trainable {
        eval.set_param(name, &step.param(name).unwrap()).unwrap();
    }
    let predicted = gpt_decode(&mut eval, &held_out);
    let mut exact = 0;
    let mut digits_right = 0;
    for (d, pred) in held_out.iter().zip(&predicted) {
        let right = sorted(d).iter().zip(pred).filter(|(a, b)| a == b).count();
        digits_right += right;
        exact += usize::from(right == DIGITS);
    }
    let digit_acc = digits_right as f64 / (held_out.len() * DIGITS) as f64;
    let exact_acc = exact as f64 / held_out.len() as f64;
    eprintln!(
        "gpt: loss {first_loss:?} -> {last_loss}, digit accuracy {digit_acc}, exact {exact_acc}"
    );
    // Chance is 10% per digit and 0.01% per string.
    assert!(digit_acc > 0.6, "digit accuracy {digit_acc}");
    assert!(exact_acc > 0.2, "exact-match accuracy {exact_acc}");
}

// ---------------------------------------------------------------------------------------------
// vanishing_gradients

const DEPTH: usize = 20;
const HIDDEN: usize = 32;

fn layer(l: usize) -> String {
    format!("layer{l:02}")
}

/// 20 sigmoid layers and a head; returns the loss.
fn plain<'b>(p: &mut Params<'b>, x: Tensor<'b>, y: Tensor<'b>) -> Tensor<'b> {
    let mut h = x;
    for l in 1..=DEPTH {
        let fan_in = if l == 1 { 64 } else { HIDDEN };
        h = Linear::new(p, &layer(l), fan_in, HIDDEN)
            .forward(h)
            .sigmoid();
    }
    cross_entropy(Linear::new(p, "head", HIDDEN, 10).forward(h), y, 0.0)
}

/// A sigmoid input layer, 19 residual layers `h + σ(LN(h)·W + b)`, layer norm and a head.
fn residual_ln<'b>(p: &mut Params<'b>, x: Tensor<'b>, y: Tensor<'b>) -> Tensor<'b> {
    let mut h = Linear::new(p, &layer(1), 64, HIDDEN).forward(x).sigmoid();
    for l in 2..=DEPTH {
        let norm = LayerNorm::new(p, &format!("ln{l:02}"), HIDDEN);
        h = h + Linear::new(p, &layer(l), HIDDEN, HIDDEN)
            .forward(norm.forward(h))
            .sigmoid();
    }
    let norm = LayerNorm::new(p, "ln_head", HIDDEN);
    cross_entropy(
        Linear::new(p, "head", HIDDEN, 10).forward(norm.forward(h)),
        y,
        0.0,
    )
}

/// The gradient norm of every hidden layer's weight at initialization, from sum-of-squares
/// outputs appended to the gradient graph and run by the JIT.
fn hidden_grad_norms(
    model: for<'b> fn(&mut Params<'b>, Tensor<'b>, Tensor<'b>) -> Tensor<'b>,
    data: &Dataset,
) -> Vec<f64> {
    let n = 64;
    let b = Builder::new("norms");
    let mut p = Params::new(&b, 0);
    let x = b.input("x", DType::F32, [n, 64]);
    let y = b.input("y", DType::I32, [n]);
    let loss = model(&mut p, x, y).id();
    let initial = p.into_initial_values();
    let graph: Graph = b.finish();
    let weights: Vec<_> = (1..=DEPTH)
        .map(|l| graph.leaf(&format!("{}.weight", layer(l))).unwrap())
        .collect();
    let grads = grad(graph, loss, &weights).unwrap();
    let nodes = grads.nodes();
    let b = Builder::from_graph(grads.graph);
    for (l, &g) in (1..=DEPTH).zip(&nodes) {
        let sq = b.tensor(g).cast(DType::F64).square().sum_all();
        b.output(&format!("sq{l}"), sq);
    }
    let mut step = compile(&b.finish(), &Options::default()).unwrap();
    step.set_params(&initial).unwrap();
    let sample = data.select(&(0..n).collect::<Vec<_>>()).unwrap();
    let feeds = Feeds::from([
        ("x".to_string(), sample.features().clone()),
        ("y".to_string(), sample.labels().clone()),
    ]);
    let out = step.run(&feeds).unwrap();
    (1..=DEPTH)
        .map(|l| out.output(&format!("sq{l}")).unwrap().to_f64_vec()[0].sqrt())
        .collect()
}

#[test]
fn plain_sigmoid_gradients_vanish_and_residual_layer_norm_gradients_do_not() {
    let (train, _) = common::digits(0);
    let plain = hidden_grad_norms(plain, &train);
    let residual = hidden_grad_norms(residual_ln, &train);
    eprintln!("gradient norms, plain: {plain:?}");
    eprintln!("gradient norms, residual + LN: {residual:?}");
    assert!(plain
        .iter()
        .chain(&residual)
        .all(|v| v.is_finite() && *v > 0.0));
    let (first, last) = (plain[0], plain[DEPTH - 1]);
    assert!(
        last >= 100.0 * first,
        "plain net: first layer {first:e}, last layer {last:e}"
    );
    // The plain net's norms shrink toward the input layer nearly monotonically.
    assert!(plain[DEPTH / 2] < last && plain[0] < plain[DEPTH / 2]);
    let (first, last) = (residual[0], residual[DEPTH - 1]);
    let ratio = first.max(last) / first.min(last);
    assert!(
        ratio <= 10.0,
        "residual + LN net: first layer {first:e}, last layer {last:e}"
    );
}

// ---------------------------------------------------------------------------------------------
// cnn_digits

fn cnn<'b>(p: &mut Params<'b>, pass: &Pass) -> Forward<'b> {
    let n = pass.batch_size;
    let b = p.builder();
    let x = b.input("x", DType::F32, [n, 1, 8, 8]);
    let y = b.input("y", DType::I32, [n]);
    let conv = Conv2d::new(p, "conv1", 1, 8, [3, 3]).with_padding(1);
    let bn = BatchNorm::new(p, "bn1", 8);
    let h = conv.forward(x);
    let h = match pass.mode {
        Mode::Train => bn.forward_train(h),
        Mode::Eval => bn.forward_eval(h),
    };
    let h = max_pool2d(h.relu(), 2).reshape([n, 8 * 4 * 4]);
    let dropout = Dropout::new("dropout", 0.1);
    let h = match pass.mode {
        Mode::Train => dropout.forward_train(p, h),
        Mode::Eval => dropout.forward_eval(h),
    };
    let logits = Linear::new(p, "head", 128, 10).forward(h);
    Forward {
        loss: cross_entropy(logits, y, 0.0),
        logits: Some(logits),
    }
}

#[test]
fn a_small_cnn_learns_the_digits() {
    let (train, test) = common::digits(0);
    let options = TrainerOptions {
        batch_size: 32,
        epochs: 3,
        quiet: true,
        ..TrainerOptions::default()
    };
    let mut trainer = Trainer::new(
        "cnn",
        cnn,
        Optimizer::adam(3e-3),
        Schedule::Constant,
        options,
    )
    .unwrap();
    let history = trainer.fit(&train, Some(&test)).unwrap();
    let accuracy = history.last_evaluation().unwrap().accuracy.unwrap();
    eprintln!("cnn test accuracy {accuracy}");
    assert!(accuracy > 0.9, "test accuracy {accuracy}");
    // Batch norm's running statistics moved away from their initial zeros and ones.
    let mean = trainer.param("bn1.running_mean").unwrap().to_f64_vec();
    assert!(
        mean.iter().any(|&m| m.abs() > 1e-3),
        "running mean {mean:?}"
    );
}
