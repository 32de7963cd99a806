//! The core layers' shapes and parameter names, the losses and the schedules against values
//! computed by hand.

use adjoint_ir::{Builder, DType, Feeds, HostTensor};
use adjoint_nn::layers::{residual, Activation, Embedding, LayerNorm, Linear, LinearOptions, Mlp};
use adjoint_nn::loss::{
    accuracy, argmax_rows, binary_cross_entropy_with_logits, cross_entropy, mse,
};
use adjoint_nn::schedule::Schedule;
use adjoint_nn::{Initializer, Params};

fn f64s(shape: &[usize], v: &[f64]) -> HostTensor {
    HostTensor::from_f64(shape.to_vec(), v.to_vec()).unwrap()
}

/// Runs the graph of `b` with its output `out` through the interpreter.
fn eval(b: Builder, feeds: Feeds, out: &str) -> Vec<f64> {
    let r = adjoint_interp::run(&b.finish(), &feeds).unwrap();
    r.output(out).unwrap().to_f64_vec()
}

#[test]
fn layer_shapes_and_parameter_names() {
    let b = Builder::new("net");
    let mut p = Params::new(&b, 1);
    let ids = b.input("ids", DType::I32, [2, 5]);
    let emb = Embedding::new(&mut p, "tok", 50, 8);
    let h = emb.forward(ids);
    assert_eq!(h.shape().dims(), &[2, 5, 8]);
    let h = p.scope("block0", |p| {
        let ln = LayerNorm::new(p, "ln", 8);
        let mlp = Mlp::new(p, "mlp", 8, 32, 8, Activation::Gelu);
        residual(h, |x| mlp.forward(ln.forward(x)))
    });
    assert_eq!(h.shape().dims(), &[2, 5, 8]);
    let head = Linear::with_options(
        &mut p,
        "head",
        8,
        50,
        LinearOptions {
            bias: false,
            ..LinearOptions::default()
        },
    );
    assert_eq!((head.in_features(), head.out_features()), (8, 50));
    assert_eq!(head.forward(h).shape().dims(), &[2, 5, 50]);
    assert_eq!(
        p.trainable(),
        [
            "tok.weight",
            "block0.ln.gamma",
            "block0.ln.beta",
            "block0.mlp.fc1.weight",
            "block0.mlp.fc1.bias",
            "block0.mlp.fc2.weight",
            "block0.mlp.fc2.bias",
            "head.weight",
        ]
    );
    let init = p.initial_values();
    assert_eq!(init["tok.weight"].shape().dims(), &[50, 8]);
    assert!(init["block0.ln.gamma"]
        .to_f64_vec()
        .iter()
        .all(|&g| g == 1.0));
    assert!(init["block0.ln.beta"]
        .to_f64_vec()
        .iter()
        .all(|&g| g == 0.0));
    // PyTorch's default: U(-1/sqrt(in), 1/sqrt(in)) for the weight and the bias.
    let bound = 1.0 / 8f64.sqrt();
    let w = init["block0.mlp.fc1.weight"].to_f64_vec();
    assert!(w.iter().all(|v| v.abs() <= bound));
    assert!(w.iter().any(|v| v.abs() > bound / 2.0));
}

#[test]
fn linear_and_layer_norm_compute_the_textbook_formulas() {
    let b = Builder::new("net");
    let mut p = Params::new(&b, 0).with_dtype(DType::F64);
    let x = b.input("x", DType::F64, [1, 2]);
    let fc = Linear::with_options(
        &mut p,
        "fc",
        2,
        2,
        LinearOptions {
            weight_init: Some(Initializer::Constant(2.0)),
            bias_init: Some(Initializer::Constant(-1.0)),
            ..LinearOptions::default()
        },
    );
    let ln = LayerNorm::with_eps(&mut p, "ln", 2, 0.0);
    b.output("fc", fc.forward(x));
    b.output("ln", ln.forward(x));
    let mut feeds = p.initial_values().clone();
    feeds.insert("x".into(), f64s(&[1, 2], &[1.0, 3.0]));
    let r = adjoint_interp::run(&b.finish(), &feeds).unwrap();
    // [1, 3]·[[2, 2], [2, 2]] - 1 = [7, 7].
    assert_eq!(r.output("fc").unwrap().to_f64_vec(), [7.0, 7.0]);
    // mean 2, variance 1: [-1, 1].
    assert_eq!(r.output("ln").unwrap().to_f64_vec(), [-1.0, 1.0]);
}

#[test]
fn cross_entropy_with_label_smoothing_matches_hand_values() {
    let b = Builder::new("ce");
    let z = b.input("z", DType::F64, [1, 3]);
    let y = b.input("y", DType::I32, [1]);
    b.output("plain", cross_entropy(z, y, 0.0));
    b.output("smooth", cross_entropy(z, y, 0.3));
    let mut feeds = Feeds::new();
    feeds.insert("z".into(), f64s(&[1, 3], &[1.0, 2.0, 3.0]));
    feeds.insert("y".into(), HostTensor::from_i32([1], vec![2]).unwrap());
    let r = adjoint_interp::run(&b.finish(), &feeds).unwrap();
    // lse = 3 + ln(1 + e^-1 + e^-2) = 3.4076059644…
    let lse = 3.0 + (1.0 + (-1f64).exp() + (-2f64).exp()).ln();
    assert!((lse - 3.407_605_964_4).abs() < 1e-9);
    let plain = r.output("plain").unwrap().to_f64_vec()[0];
    assert!((plain - (lse - 3.0)).abs() < 1e-12, "{plain}");
    // (1-ε)(lse - z_y) + ε(lse - mean z) = lse - 0.7·3 - 0.3·2 = 0.7076059644…
    let smooth = r.output("smooth").unwrap().to_f64_vec()[0];
    assert!((smooth - 0.707_605_964_4).abs() < 1e-9, "{smooth}");
}

#[test]
fn cross_entropy_flattens_sequence_axes() {
    let b = Builder::new("ce");
    let z = b.input("z", DType::F64, [1, 2, 2]);
    let y = b.input("y", DType::I32, [1, 2]);
    b.output("loss", cross_entropy(z, y, 0.0));
    let mut feeds = Feeds::new();
    feeds.insert("z".into(), f64s(&[1, 2, 2], &[0.0, 0.0, 5.0, 5.0]));
    feeds.insert(
        "y".into(),
        HostTensor::from_i32([1, 2], vec![0, 1]).unwrap(),
    );
    // Two rows of equal logits: ln 2 each.
    let loss = eval(b, feeds, "loss")[0];
    assert!((loss - 2f64.ln()).abs() < 1e-12, "{loss}");
}

#[test]
fn bce_with_logits_is_stable_and_matches_hand_values() {
    let b = Builder::new("bce");
    let x = b.input("x", DType::F64, [4]);
    let y = b.input("y", DType::F64, [4]);
    b.output("loss", binary_cross_entropy_with_logits(x, y));
    let mut feeds = Feeds::new();
    feeds.insert("x".into(), f64s(&[4], &[-100.0, 0.0, 2.0, 1000.0]));
    feeds.insert("y".into(), f64s(&[4], &[0.0, 1.0, 1.0, 0.0]));
    let loss = eval(b, feeds, "loss")[0];
    // Per element: ≈0, ln 2, ln(1 + e^-2), 1000 (the naive form overflows on e^1000).
    let want = (0.0 + 2f64.ln() + (1.0 + (-2f64).exp()).ln() + 1000.0) / 4.0;
    assert!((loss - want).abs() < 1e-12, "{loss} vs {want}");
}

#[test]
fn mse_is_the_mean_of_squares() {
    let b = Builder::new("mse");
    let p = b.input("p", DType::F64, [2, 2]);
    let t = b.input("t", DType::F64, [2, 2]);
    b.output("loss", mse(p, t));
    let mut feeds = Feeds::new();
    feeds.insert("p".into(), f64s(&[2, 2], &[1.0, 2.0, 3.0, 4.0]));
    feeds.insert("t".into(), f64s(&[2, 2], &[1.0, 0.0, 3.0, 0.0]));
    assert_eq!(eval(b, feeds, "loss"), [(4.0 + 16.0) / 4.0]);
}

#[test]
fn accuracy_on_the_host() {
    let z = HostTensor::from_f32(
        [2, 2, 3],
        vec![0., 1., 0., 5., 0., 0., 0., 0., 1., 0., f32::NAN, 2.],
    )
    .unwrap();
    assert_eq!(argmax_rows(&z).unwrap(), [1, 0, 2, 2]);
    let y = HostTensor::from_i32([2, 2], vec![1, 0, 0, 2]).unwrap();
    assert_eq!(accuracy(&z, &y), Some(0.75));
    // Binary: one logit per label, positive means class 1.
    let z = HostTensor::from_f32([4], vec![-1.0, 2.0, 0.5, -0.1]).unwrap();
    let y = HostTensor::from_f32([4], vec![0.0, 1.0, 0.0, 0.0]).unwrap();
    assert_eq!(accuracy(&z, &y), Some(0.75));
    // Shapes that fit neither case.
    let y = HostTensor::from_i32([3], vec![0, 0, 0]).unwrap();
    assert_eq!(accuracy(&z, &y), None);
}

#[test]
fn schedules_match_hand_values() {
    assert_eq!(Schedule::Constant.lr(0.3, 1000), 0.3);
    let s = Schedule::step_decay(10, 0.5);
    let lrs: Vec<f64> = [0, 9, 10, 19, 20, 35]
        .iter()
        .map(|&k| s.lr(1.0, k))
        .collect();
    assert_eq!(lrs, [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]);
    let c = Schedule::warmup_cosine(4, 14, 0.1);
    // Warm-up: 1/4, 2/4, 3/4, 4/4.
    assert_eq!(
        [c.factor(0), c.factor(1), c.factor(2), c.factor(3)],
        [0.25, 0.5, 0.75, 1.0]
    );
    // Cosine over steps 4..14: step 6 is a fifth of the way, 0.1 + 0.9·(1 + cos(π/5))/2.
    let fifth = 0.1 + 0.45 * (1.0 + 0.809_016_994_374_947_4);
    assert!((c.factor(6) - fifth).abs() < 1e-15, "{}", c.factor(6));
    assert!(
        (c.factor(9) - 0.55).abs() < 1e-15,
        "half-way: (1 + 0.1) / 2"
    );
    assert_eq!(c.factor(14), 0.1);
    assert_eq!(c.factor(10_000), 0.1);
}
