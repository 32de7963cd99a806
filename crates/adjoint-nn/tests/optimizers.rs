//! Optimizer updates run through the Trainer's compiled step, against values computed by hand.
//!
//! The model is one weight: `loss = mean((x·w - y)²)` over the batch `x = [1, 2]`, `y = [1, 3]`
//! (the labels, cast to f32 by the trainer), from `w = 0.5`. Its gradient is
//! `g(w) = mean(2x(xw - y)) = (2(w - 1) + 4(2w - 3)) / 2 = 5w - 7`, so `g(0.5) = -4.5`.

use adjoint_autodiff::Optimizer;
use adjoint_ir::{DType, HostTensor};
use adjoint_nn::data::Dataset;
use adjoint_nn::loss::mse;
use adjoint_nn::schedule::Schedule;
use adjoint_nn::trainer::{Forward, Pass, Trainer, TrainerOptions};
use adjoint_nn::{Initializer, Params};

fn data() -> Dataset {
    let x = HostTensor::from_f32([2, 1], vec![1.0, 2.0]).unwrap();
    let y = HostTensor::from_i32([2], vec![1, 3]).unwrap();
    Dataset::new(x, y, 4).unwrap()
}

fn model<'b>(p: &mut Params<'b>, pass: &Pass) -> Forward<'b> {
    let b = p.builder();
    let x = b.input("x", DType::F32, [pass.batch_size, 1]);
    let y = b.input("y", DType::F32, [pass.batch_size, 1]);
    let w = p.get("w", &[1, 1], Initializer::Constant(0.5));
    Forward {
        loss: mse(x.matmul(w), y),
        logits: None,
    }
}

/// `w` after `steps` steps of `opt` (one step per epoch: the batch is the whole set).
fn train(opt: Optimizer, steps: u64) -> Trainer {
    let opts = TrainerOptions {
        batch_size: 2,
        epochs: steps,
        quiet: true,
        threads: 1,
        ..TrainerOptions::default()
    };
    let mut t = Trainer::new("one_weight", model, opt, Schedule::Constant, opts).unwrap();
    t.fit(&data(), None).unwrap();
    t
}

fn value(t: &Trainer, name: &str) -> f64 {
    t.param(name).unwrap().to_f64_vec()[0]
}

fn grad(w: f64) -> f64 {
    5.0 * w - 7.0
}

fn assert_close(got: f64, want: f64) {
    assert!((got - want).abs() < 1e-6, "got {got}, want {want}");
}

#[test]
fn sgd_steps() {
    let t = train(Optimizer::sgd(0.1), 2);
    // w1 = 0.5 - 0.1·(-4.5) = 0.95; g(0.95) = -2.25; w2 = 0.95 + 0.225 = 1.175.
    assert_close(value(&t, "w"), 1.175);
    assert_eq!(t.history().train_loss.len(), 2);
    // loss(0.5) = ((0.5 - 1)² + (1 - 3)²) / 2 = 2.125.
    assert_close(t.history().train_loss[0].1, 2.125);
}

#[test]
fn momentum_steps() {
    let t = train(Optimizer::momentum(0.1, 0.9), 2);
    // buf1 = -4.5, w1 = 0.95; g2 = -2.25, buf2 = 0.9·(-4.5) - 2.25 = -6.3, w2 = 0.95 + 0.63.
    assert_close(value(&t, "w"), 1.58);
    assert_close(value(&t, "w.momentum"), -6.3);
}

#[test]
fn nesterov_steps() {
    let t = train(Optimizer::momentum(0.1, 0.9).with_nesterov(), 1);
    // buf1 = -4.5; w1 = 0.5 - 0.1·(g + 0.9·buf1) = 0.5 - 0.1·(-4.5 - 4.05) = 1.355.
    assert_close(value(&t, "w"), 1.355);
}

#[test]
fn adam_steps() {
    let t = train(Optimizer::adam(0.1), 2);
    // The moments run in f32, with β rounded to f32 (0.99900001…); the bias corrections are
    // computed in f64 from the exact β and cast once, as PyTorch does.
    let (b1f, b2f, eps, lr) = (0.9f32 as f64, 0.999f32 as f64, 1e-8, 0.1);
    let (b1, b2) = (0.9f64, 0.999f64);
    // Step 1: m = 0.1·g, v = 0.001·g², m̂ = g, v̂ = g², w1 = 0.5 - lr·g/(|g| + ε) ≈ 0.6.
    let g1 = grad(0.5);
    let (m1, v1) = (0.1 * g1, 0.001 * g1 * g1);
    let w1 = 0.5 - lr * (m1 / (1.0 - b1)) / (v1.sqrt() / (1.0 - b2).sqrt() + eps);
    assert!((w1 - 0.6).abs() < 1e-6, "{w1}");
    // Step 2: g(0.6) = -4.
    let g2 = grad(w1);
    assert!((g2 + 4.0).abs() < 1e-5, "{g2}");
    let (m2, v2) = (b1f * m1 + 0.1 * g2, b2f * v1 + 0.001 * g2 * g2);
    let w2 = w1 - lr * (m2 / (1.0 - b1 * b1)) / (v2.sqrt() / (1.0 - b2 * b2).sqrt() + eps);
    assert!((w2 - 0.699_52).abs() < 1e-5, "{w2}");
    assert_close(value(&t, "w"), w2);
    assert_close(value(&t, "w.adam_m"), m2);
    assert_close(value(&t, "w.adam_v"), v2);
    assert_eq!(value(&t, "adam.step"), 2.0);
}

#[test]
fn adamw_decays_the_weight_decoupled() {
    let t = train(Optimizer::adam(0.1).with_weight_decay(0.5), 1);
    // w1 = w - lr·λ·w - lr·m̂/(sqrt(v̂)+ε) = 0.5 - 0.025 + 0.1 = 0.575.
    assert_close(value(&t, "w"), 0.575);
}

#[test]
fn sgd_weight_decay_adds_to_the_gradient() {
    let t = train(Optimizer::sgd(0.1).with_weight_decay(0.5), 1);
    // g + λw = -4.5 + 0.25 = -4.25; w1 = 0.5 + 0.425 = 0.925.
    assert_close(value(&t, "w"), 0.925);
}

#[test]
fn global_norm_clipping_scales_the_gradient() {
    let t = train(Optimizer::sgd(0.1).with_clip_global_norm(1.0), 1);
    // ‖g‖ = 4.5 > 1: g·1/(4.5 + 1e-6) ≈ -1; w1 = 0.5 + 0.1·4.5/(4.5 + 1e-6).
    assert_close(value(&t, "w"), 0.5 + 0.1 * 4.5 / (4.5 + 1e-6));
    // The recorded gradient norm is the unclipped one.
    let t = {
        let opts = TrainerOptions {
            batch_size: 2,
            epochs: 1,
            quiet: true,
            grad_norm_every: 1,
            ..TrainerOptions::default()
        };
        let opt = Optimizer::sgd(0.1).with_clip_global_norm(1.0);
        let mut t = Trainer::new("one_weight", model, opt, Schedule::Constant, opts).unwrap();
        t.fit(&data(), None).unwrap();
        t
    };
    assert_eq!(t.gradient_norms().len(), 1);
    assert_eq!(t.gradient_norms()[0].norms[0].0, "w");
    assert_close(t.gradient_norms()[0].norms[0].1, 4.5);
}
