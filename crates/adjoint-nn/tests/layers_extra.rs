//! BatchNorm, Dropout, MultiHeadAttention, Conv2d (and pooling), Rnn, Gru, Lstm and the stacked
//! Recurrent: values against
//! direct host computations, gradients against finite differences, and the JIT against the
//! interpreter.

use adjoint_autodiff::check_grads;
use adjoint_ir::{Builder, DType, Feeds, Graph, HostTensor, NodeId, Rng, Tensor};
use adjoint_jit::{compile, Options};
use adjoint_nn::layers::{
    avg_pool2d, avg_pool2d_with, max_pool2d, max_pool2d_with, AttentionOptions, BatchNorm,
    CellKind, Conv2d, Conv2dOptions, Dropout, Gru, Lstm, MultiHeadAttention, Pool2d, Recurrent,
    RecurrentOptions, Rnn,
};
use adjoint_nn::{Params, RandomKind};

/// A layer graph ready for checking: `y` (output `y`), `loss = sum(y ⊙ c)` for a fixed random
/// `c` (output `loss`), the nodes to differentiate, and feeds for every leaf.
struct Case {
    graph: Graph,
    loss: NodeId,
    wrt: Vec<NodeId>,
    feeds: Feeds,
}

/// Builds a case: `build` declares inputs and layers and returns the layer output. Every input
/// is fed standard normal values (seeded), except those in `preset`; the gradient is taken with
/// respect to every trainable parameter and every float input not in `preset`.
fn case(
    name: &str,
    preset: Feeds,
    build: impl for<'b> FnOnce(&'b Builder, &mut Params<'b>) -> Tensor<'b>,
) -> Case {
    let b = Builder::new(name);
    let mut params = Params::new(&b, 7);
    let y = build(&b, &mut params);
    let mut rng = Rng::new(11);
    let weights = HostTensor::random(&y.ty(), &mut rng, 0).to_f64_vec();
    let c = b.constant(y.dtype(), y.shape(), &weights);
    let loss = (y * c).sum_all();
    b.output("y", y);
    b.output("loss", loss);
    let trainable: Vec<String> = params.trainable().to_vec();
    let mut feeds = params.into_initial_values();
    let loss = loss.id();
    let graph = b.finish();
    let mut wrt: Vec<NodeId> = trainable
        .iter()
        .map(|n| graph.leaf(n).expect("declared"))
        .collect();
    for &id in graph.inputs() {
        let leaf = graph.leaf_name(id).unwrap().to_string();
        if let Some(t) = preset.get(&leaf) {
            feeds.insert(leaf, t.clone());
        } else {
            feeds.insert(leaf, HostTensor::random(graph.ty(id), &mut rng, 3));
            if graph.ty(id).dtype.is_float() {
                wrt.push(id);
            }
        }
    }
    Case {
        graph,
        loss,
        wrt,
        feeds,
    }
}

impl Case {
    /// Asserts that analytic gradients match central finite differences (in f64).
    fn check_gradients(&self, tolerance: f64) {
        let report = check_grads(&self.graph, self.loss, &self.wrt, &self.feeds, tolerance)
            .unwrap_or_else(|e| panic!("{}: {e}", self.graph.name()));
        assert!(report.passed(), "{}:\n{report}", self.graph.name());
        assert_eq!(report.checks.len(), self.wrt.len());
    }

    /// Asserts that the JIT computes the same outputs, gradients and updates as the interpreter,
    /// with and without fusion.
    fn check_jit(&self) {
        let grads = adjoint_autodiff::grad(self.graph.clone(), self.loss, &self.wrt).unwrap();
        let g = grads.graph;
        let want = adjoint_interp::run(&g, &self.feeds).unwrap();
        for fusion in [false, true] {
            let options = Options {
                fusion,
                cache: false,
                ..Options::default()
            };
            let mut step = compile(&g, &options).unwrap();
            let params: Feeds = g
                .parameters()
                .iter()
                .map(|&p| {
                    let n = g.leaf_name(p).unwrap().to_string();
                    let v = self.feeds[&n].clone();
                    (n, v)
                })
                .collect();
            step.set_params(&params).unwrap();
            let inputs: Feeds = g
                .inputs()
                .iter()
                .map(|&p| {
                    let n = g.leaf_name(p).unwrap().to_string();
                    let v = self.feeds[&n].clone();
                    (n, v)
                })
                .collect();
            let out = step.run(&inputs).unwrap();
            for (name, t) in &want.outputs {
                let what = format!("{} (fusion {fusion}) output {name}", g.name());
                assert_close(&what, out.output(name).unwrap(), t, 1e-4);
            }
            for (name, t) in &want.updates {
                let what = format!("{} (fusion {fusion}) update {name}", g.name());
                assert_close(&what, &step.param(name).unwrap(), t, 1e-4);
            }
        }
    }

    /// The interpreter's value of output `name`.
    fn output(&self, name: &str) -> Vec<f64> {
        let out = adjoint_interp::run(&self.graph, &self.feeds).unwrap();
        out.output(name).unwrap().to_f64_vec()
    }

    /// The interpreter's value of the update of parameter `name`.
    fn update(&self, name: &str) -> Vec<f64> {
        let out = adjoint_interp::run(&self.graph, &self.feeds).unwrap();
        out.update(name).unwrap().to_f64_vec()
    }

    /// The fed values of `name`.
    fn fed(&self, name: &str) -> Vec<f64> {
        self.feeds[name].to_f64_vec()
    }
}

/// Asserts element-wise closeness: relative for magnitudes of at least 1, absolute below.
fn assert_close(what: &str, got: &HostTensor, want: &HostTensor, tol: f64) {
    assert_eq!(got.ty(), want.ty(), "{what}: type");
    assert_values(what, &got.to_f64_vec(), &want.to_f64_vec(), tol);
}

/// [`assert_close`] on plain values.
fn assert_values(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol * b.abs().max(1.0),
            "{what}[{i}]: got {a}, want {b}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// BatchNorm

#[test]
fn batch_norm_training_normalizes_per_channel_and_updates_running_statistics() {
    // x [4, 2]: channel 0 is 1, 2, 3, 4 (mean 2.5, biased variance 1.25, unbiased 5/3);
    // channel 1 is 10, 10, 10, 14 (mean 11, biased variance 3, unbiased 4).
    let x = HostTensor::from_f32([4, 2], vec![1., 10., 2., 10., 3., 10., 4., 14.]).unwrap();
    let c = case("bn2", Feeds::from([("x".to_string(), x)]), |b, p| {
        let x = b.input("x", DType::F32, [4, 2]);
        BatchNorm::new(p, "bn", 2).forward_train(x)
    });
    let eps = 1e-5;
    let z0 = |v: f64| (v - 2.5) / (1.25f64 + eps).sqrt();
    let z1 = |v: f64| (v - 11.0) / (3.0f64 + eps).sqrt();
    let want = [
        z0(1.),
        z1(10.),
        z0(2.),
        z1(10.),
        z0(3.),
        z1(10.),
        z0(4.),
        z1(14.),
    ];
    assert_values("bn y", &c.output("y"), &want, 1e-6);
    assert_values(
        "running mean",
        &c.update("bn.running_mean"),
        &[0.25, 1.1],
        1e-6,
    );
    let var = [0.9 + 0.1 * 5.0 / 3.0, 0.9 + 0.1 * 4.0];
    assert_values("running var", &c.update("bn.running_var"), &var, 1e-6);
    c.check_gradients(1e-5);
    c.check_jit();
}

#[test]
fn batch_norm_over_images_uses_batch_and_spatial_axes() {
    let c = case("bn4", Feeds::new(), |b, p| {
        let x = b.input("x", DType::F32, [3, 2, 2, 3]);
        BatchNorm::new(p, "bn", 2).forward_train(x)
    });
    let (x, y) = (c.fed("x"), c.output("y"));
    for ch in 0..2 {
        // Element (n, ch, i, j) of [3, 2, 2, 3] is at n·12 + ch·6 + i·3 + j.
        let idx: Vec<usize> = (0..3)
            .flat_map(|n| (0..6).map(move |k| n * 12 + ch * 6 + k))
            .collect();
        let mean = idx.iter().map(|&i| x[i]).sum::<f64>() / 18.0;
        let var = idx.iter().map(|&i| (x[i] - mean).powi(2)).sum::<f64>() / 18.0;
        for &i in &idx {
            let want = (x[i] - mean) / (var + 1e-5).sqrt();
            assert!((y[i] - want).abs() < 1e-5, "channel {ch}, element {i}");
        }
    }
    c.check_gradients(1e-5);
    c.check_jit();
}

#[test]
fn batch_norm_evaluation_uses_running_statistics_and_updates_nothing() {
    let b = Builder::new("bn_eval");
    let mut params = Params::new(&b, 0);
    let x = b.input("x", DType::F32, [2, 2]);
    let bn = BatchNorm::new(&mut params, "bn", 2);
    b.output("y", bn.forward_eval(x));
    let mut feeds = params.into_initial_values();
    let g = b.finish();
    assert!(g.updates().is_empty());
    feeds.insert(
        "bn.running_mean".into(),
        HostTensor::from_f32([2], vec![1.0, -2.0]).unwrap(),
    );
    feeds.insert(
        "bn.running_var".into(),
        HostTensor::from_f32([2], vec![4.0, 0.25]).unwrap(),
    );
    feeds.insert(
        "bn.gamma".into(),
        HostTensor::from_f32([2], vec![2.0, 1.0]).unwrap(),
    );
    feeds.insert(
        "bn.beta".into(),
        HostTensor::from_f32([2], vec![0.5, 0.0]).unwrap(),
    );
    feeds.insert(
        "x".into(),
        HostTensor::from_f32([2, 2], vec![3.0, -1.0, 1.0, -2.5]).unwrap(),
    );
    let y = adjoint_interp::run(&g, &feeds).unwrap();
    let s0 = (4.0f64 + 1e-5).sqrt();
    let s1 = (0.25f64 + 1e-5).sqrt();
    let want = [2.0 * 2.0 / s0 + 0.5, 1.0 / s1, 0.5, -0.5 / s1];
    assert_values("bn eval", &y.output("y").unwrap().to_f64_vec(), &want, 1e-6);
}

#[test]
fn batch_norm_applied_twice_chains_its_running_statistics() {
    // PyTorch, one channel, momentum 0.1: batches [0, 2] then [10, 12] (both unbiased variance
    // 2) leave running_mean = 0.9·(0.9·0 + 0.1·1) + 0.1·11 = 1.19 and
    // running_var = 0.9·(0.9·1 + 0.1·2) + 0.1·2 = 1.19.
    let b = Builder::new("bn_twice");
    let mut params = Params::new(&b, 0);
    let x1 = b.input("x1", DType::F32, [2, 1]);
    let x2 = b.input("x2", DType::F32, [2, 1]);
    let bn = BatchNorm::new(&mut params, "bn", 1);
    b.output("y", bn.forward_train(x1) + bn.forward_train(x2));
    let mut feeds = params.into_initial_values();
    feeds.insert(
        "x1".into(),
        HostTensor::from_f32([2, 1], vec![0., 2.]).unwrap(),
    );
    feeds.insert(
        "x2".into(),
        HostTensor::from_f32([2, 1], vec![10., 12.]).unwrap(),
    );
    let g = b.finish();
    assert_eq!(g.updates().len(), 2);
    let out = adjoint_interp::run(&g, &feeds).unwrap();
    for name in ["bn.running_mean", "bn.running_var"] {
        let got = out.update(name).unwrap().to_f64_vec();
        assert_values(name, &got, &[1.19], 1e-6);
    }
}

#[test]
#[should_panic(expected = "batch norm over 3 channels expects")]
fn batch_norm_refuses_the_wrong_channel_count() {
    let b = Builder::new("bad");
    let mut params = Params::new(&b, 0);
    let x = b.input("x", DType::F32, [4, 2]);
    let _ = BatchNorm::new(&mut params, "bn", 3).forward_train(x);
}

// ---------------------------------------------------------------------------------------------
// Dropout

#[test]
fn dropout_multiplies_by_the_fed_mask_in_training_and_is_the_identity_in_evaluation() {
    let mask = HostTensor::from_f32([2, 3], vec![2.0, 0.0, 2.0, 0.0, 0.0, 2.0]).unwrap();
    let c = case(
        "dropout",
        Feeds::from([("d.mask".to_string(), mask)]),
        |b, p| {
            let x = b.input("x", DType::F32, [2, 3]);
            let y = Dropout::new("d", 0.5).forward_train(p, x);
            assert_eq!(p.random_inputs().len(), 1);
            assert_eq!(p.random_inputs()[0].name, "d.mask");
            assert_eq!(
                p.random_inputs()[0].kind,
                RandomKind::DropoutMask { keep: 0.5 }
            );
            y
        },
    );
    let (x, y) = (c.fed("x"), c.output("y"));
    let m = [2.0, 0.0, 2.0, 0.0, 0.0, 2.0];
    let want: Vec<f64> = x.iter().zip(m).map(|(x, m)| x * m).collect();
    assert_values("dropout", &y, &want, 1e-6);
    c.check_gradients(1e-6);
    c.check_jit();

    let b = Builder::new("eval");
    let mut params = Params::new(&b, 0);
    let x = b.input("x", DType::F32, [2, 3]);
    assert_eq!(Dropout::new("d", 0.5).forward_eval(x).id(), x.id());
    assert_eq!(
        Dropout::new("d", 0.0).forward_train(&mut params, x).id(),
        x.id()
    );
    assert!(params.random_inputs().is_empty());
}

#[test]
fn dropout_masks_keep_the_expected_fraction_and_scale() {
    let b = Builder::new("drop");
    let mut params = Params::new(&b, 0);
    let x = b.input("x", DType::F32, [100, 100]);
    let _ = Dropout::new("d", 0.3).forward_train(&mut params, x);
    let mask = params.random_inputs()[0]
        .sample(&mut Rng::new(5))
        .to_f64_vec();
    let kept = mask.iter().filter(|&&v| v != 0.0).count() as f64 / mask.len() as f64;
    assert!((kept - 0.7).abs() < 0.02, "kept fraction {kept}");
    assert!(mask
        .iter()
        .all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-6));
    let mean = mask.iter().sum::<f64>() / mask.len() as f64;
    assert!((mean - 1.0).abs() < 0.03, "mean {mean}");
}

#[test]
#[should_panic(expected = "dropout rate must be in [0, 1)")]
fn dropout_refuses_a_rate_of_one() {
    let _ = Dropout::new("d", 1.0);
}

// ---------------------------------------------------------------------------------------------
// MultiHeadAttention

/// Naive causal multi-head attention on the host, f64: `x [B, S, W]`, weights `[W, W]`.
fn naive_attention(x: &[f64], w: [&[f64]; 4], dims: [usize; 3], heads: usize) -> Vec<f64> {
    let [bsz, s, width] = dims;
    let hd = width / heads;
    let proj = |m: &[f64], x: &[f64]| -> Vec<f64> {
        let rows = x.len() / width;
        let mut out = vec![0.0; rows * width];
        for r in 0..rows {
            for c in 0..width {
                out[r * width + c] = (0..width)
                    .map(|k| x[r * width + k] * m[k * width + c])
                    .sum();
            }
        }
        out
    };
    let (q, k, v) = (proj(w[0], x), proj(w[1], x), proj(w[2], x));
    let mut merged = vec![0.0; bsz * s * width];
    for b in 0..bsz {
        for h in 0..heads {
            for i in 0..s {
                let at = |t: &[f64], pos: usize, d: usize| t[(b * s + pos) * width + h * hd + d];
                let scores: Vec<f64> = (0..=i)
                    .map(|j| (0..hd).map(|d| at(&q, i, d) * at(&k, j, d)).sum::<f64>())
                    .map(|sc| sc / (hd as f64).sqrt())
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|sc| (sc - max).exp()).collect();
                let total: f64 = e.iter().sum();
                for d in 0..hd {
                    merged[(b * s + i) * width + h * hd + d] =
                        (0..=i).map(|j| e[j] / total * at(&v, j, d)).sum();
                }
            }
        }
    }
    proj(w[3], &merged)
}

#[test]
fn attention_matches_a_naive_causal_attention_and_checks_out() {
    let c = case("attention", Feeds::new(), |b, p| {
        let x = b.input("x", DType::F32, [2, 4, 6]);
        let attn = MultiHeadAttention::new(p, "attn", 6, 2);
        assert_eq!(p.trainable(), ["attn.wq", "attn.wk", "attn.wv", "attn.wo"]);
        attn.forward(x)
    });
    let ws: Vec<Vec<f64>> = ["attn.wq", "attn.wk", "attn.wv", "attn.wo"]
        .iter()
        .map(|n| c.fed(n))
        .collect();
    let want = naive_attention(&c.fed("x"), [&ws[0], &ws[1], &ws[2], &ws[3]], [2, 4, 6], 2);
    assert_values("attention", &c.output("y"), &want, 1e-5);
    c.check_gradients(1e-5);
    c.check_jit();
}

/// The options of [`naive_attention_with`].
struct NaiveOptions<'a> {
    causal: bool,
    /// Biases of q, k, v and o.
    biases: Option<[&'a [f64]; 4]>,
    /// Key padding `[B, S]`, true = ignored.
    padding: Option<&'a [bool]>,
    /// Multiplies the attention weights `[B, H, S, S]`.
    dropout: Option<&'a [f64]>,
}

/// Naive multi-head attention on the host with every option, f64. A query that sees no key
/// gets zero weights.
fn naive_attention_with(
    x: &[f64],
    w: [&[f64]; 4],
    [bsz, s, width]: [usize; 3],
    heads: usize,
    o: &NaiveOptions<'_>,
) -> Vec<f64> {
    let hd = width / heads;
    let proj = |m: &[f64], bias: Option<&[f64]>, x: &[f64]| -> Vec<f64> {
        let mut out = matmul(x, m, width, width);
        if let Some(b) = bias {
            out.iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v += b[i % width]);
        }
        out
    };
    let bias = |k: usize| o.biases.map(|b| b[k]);
    let (q, k, v) = (
        proj(w[0], bias(0), x),
        proj(w[1], bias(1), x),
        proj(w[2], bias(2), x),
    );
    let mut merged = vec![0.0; bsz * s * width];
    for b in 0..bsz {
        for h in 0..heads {
            for i in 0..s {
                let at = |t: &[f64], pos: usize, d: usize| t[(b * s + pos) * width + h * hd + d];
                let visible =
                    |j: usize| (!o.causal || j <= i) && !o.padding.is_some_and(|p| p[b * s + j]);
                let scores: Vec<Option<f64>> = (0..s)
                    .map(|j| {
                        visible(j).then(|| {
                            (0..hd).map(|d| at(&q, i, d) * at(&k, j, d)).sum::<f64>()
                                / (hd as f64).sqrt()
                        })
                    })
                    .collect();
                let max = scores
                    .iter()
                    .flatten()
                    .cloned()
                    .fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores
                    .iter()
                    .map(|sc| sc.map_or(0.0, |sc| (sc - max).exp()))
                    .collect();
                let total: f64 = e.iter().sum();
                for d in 0..hd {
                    merged[(b * s + i) * width + h * hd + d] = (0..s)
                        .map(|j| {
                            let p = if total > 0.0 { e[j] / total } else { 0.0 };
                            let keep = o
                                .dropout
                                .map_or(1.0, |m| m[((b * heads + h) * s + i) * s + j]);
                            p * keep * at(&v, j, d)
                        })
                        .sum();
                }
            }
        }
    }
    proj(w[3], bias(3), &merged)
}

/// The fed weights of attention `name` and, when `biases`, fresh random values for its biases.
fn attention_weights(c: &mut Case, name: &str, biases: bool) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let ws = ["wq", "wk", "wv", "wo"]
        .map(|w| c.fed(&format!("{name}.{w}")))
        .to_vec();
    let mut bs = Vec::new();
    if biases {
        let mut rng = Rng::new(21);
        for n in ["bq", "bk", "bv", "bo"] {
            let full = format!("{name}.{n}");
            let t = HostTensor::random(&c.feeds[&full].ty(), &mut rng, 0);
            bs.push(t.to_f64_vec());
            c.feeds.insert(full, t);
        }
    }
    (ws, bs)
}

#[test]
fn bidirectional_attention_with_biases_and_key_padding_matches_the_host() {
    // Batch 1 pads its last two keys; batch 0 pads nothing.
    let pad = vec![false, false, false, false, false, false, true, true];
    let mask = HostTensor::from_bool([2, 4], pad.clone()).unwrap();
    for causal in [false, true] {
        let mut c = case(
            "attention_opts",
            Feeds::from([("pad".to_string(), mask.clone())]),
            |b, p| {
                let x = b.input("x", DType::F32, [2, 4, 6]);
                let pad = b.input("pad", DType::Bool, [2, 4]);
                let options = AttentionOptions {
                    causal,
                    bias: true,
                    ..AttentionOptions::default()
                };
                let attn = MultiHeadAttention::with_options(p, "attn", 6, 2, options);
                assert_eq!(p.trainable().len(), 8);
                attn.forward_masked(x, pad)
            },
        );
        let (ws, bs) = attention_weights(&mut c, "attn", true);
        let o = NaiveOptions {
            causal,
            biases: Some([&bs[0], &bs[1], &bs[2], &bs[3]]),
            padding: Some(&pad),
            dropout: None,
        };
        let w = [&ws[0][..], &ws[1], &ws[2], &ws[3]];
        let want = naive_attention_with(&c.fed("x"), w, [2, 4, 6], 2, &o);
        assert_values("masked attention", &c.output("y"), &want, 1e-5);
        c.check_gradients(1e-5);
        c.check_jit();
    }
}

#[test]
fn a_query_whose_keys_are_all_masked_attends_to_nothing() {
    // Causal and the first key padded: query 0 sees no key, its weights are 0, not NaN.
    let pad = HostTensor::from_bool([1, 3], vec![true, false, false]).unwrap();
    let mut c = case(
        "all_masked",
        Feeds::from([("pad".to_string(), pad)]),
        |b, p| {
            let x = b.input("x", DType::F32, [1, 3, 4]);
            let pad = b.input("pad", DType::Bool, [1, 3]);
            let options = AttentionOptions {
                bias: true,
                ..AttentionOptions::default()
            };
            MultiHeadAttention::with_options(p, "attn", 4, 1, options).forward_masked(x, pad)
        },
    );
    let (ws, bs) = attention_weights(&mut c, "attn", true);
    let y = c.output("y");
    assert!(y.iter().all(|v| v.is_finite()), "{y:?}");
    // Query 0's output is the output bias alone.
    assert_values("query 0", &y[..4], &bs[3], 1e-6);
    let o = NaiveOptions {
        causal: true,
        biases: Some([&bs[0], &bs[1], &bs[2], &bs[3]]),
        padding: Some(&[true, false, false]),
        dropout: None,
    };
    let want = naive_attention_with(
        &c.fed("x"),
        [&ws[0], &ws[1], &ws[2], &ws[3]],
        [1, 3, 4],
        1,
        &o,
    );
    assert_values("all masked", &y, &want, 1e-5);
    c.check_gradients(1e-5);
    c.check_jit();
}

#[test]
fn attention_dropout_multiplies_the_weights_by_the_fed_mask() {
    let drop = {
        let mut rng = Rng::new(4);
        let m: Vec<f64> = (0..2 * 2 * 3 * 3)
            .map(|_| if rng.uniform() < 0.7 { 1.0 / 0.7 } else { 0.0 })
            .collect();
        m
    };
    let mask = HostTensor::from_f64_as(DType::F32, [2, 2, 3, 3], &drop).unwrap();
    let c = case(
        "attention_dropout",
        Feeds::from([("attn.dropout.mask".to_string(), mask)]),
        |b, p| {
            let x = b.input("x", DType::F32, [2, 3, 4]);
            let options = AttentionOptions {
                causal: false,
                dropout: 0.3,
                ..AttentionOptions::default()
            };
            let attn = MultiHeadAttention::with_options(p, "attn", 4, 2, options);
            let y = attn.forward_train(p, x, None);
            assert_eq!(p.random_inputs()[0].name, "attn.dropout.mask");
            assert_eq!(p.random_inputs()[0].ty.shape.dims(), &[2, 2, 3, 3]);
            y
        },
    );
    let ws: Vec<Vec<f64>> = ["wq", "wk", "wv", "wo"]
        .iter()
        .map(|w| c.fed(&format!("attn.{w}")))
        .collect();
    let o = NaiveOptions {
        causal: false,
        biases: None,
        padding: None,
        dropout: Some(&drop),
    };
    let want = naive_attention_with(
        &c.fed("x"),
        [&ws[0], &ws[1], &ws[2], &ws[3]],
        [2, 3, 4],
        2,
        &o,
    );
    assert_values("attention dropout", &c.output("y"), &want, 1e-5);
    c.check_gradients(1e-5);
    c.check_jit();
}

#[test]
fn attention_output_at_a_position_ignores_later_positions() {
    let mut c = case("causal", Feeds::new(), |b, p| {
        let x = b.input("x", DType::F32, [1, 5, 4]);
        MultiHeadAttention::new(p, "attn", 4, 2).forward(x)
    });
    let before = c.output("y");
    let mut x = c.fed("x");
    for v in &mut x[3 * 4..] {
        *v += 10.0; // change positions 3 and 4
    }
    c.feeds.insert(
        "x".into(),
        HostTensor::from_f64_as(DType::F32, [1, 5, 4], &x).unwrap(),
    );
    let after = c.output("y");
    assert_eq!(before[..12], after[..12], "positions 0..3 must not change");
    assert_ne!(before[12..], after[12..]);
}

// ---------------------------------------------------------------------------------------------
// Conv2d and pooling

/// Direct convolution on the host: `x [N, C, H, W]`, `k [O, C, kh, kw]`, bias `[O]`.
fn naive_conv(
    x: &[f64],
    k: &[f64],
    bias: &[f64],
    [n, c, h, w]: [usize; 4],
    [o, kh, kw]: [usize; 3],
    stride: usize,
    pad: usize,
) -> Vec<f64> {
    let oh = (h + 2 * pad - kh) / stride + 1;
    let ow = (w + 2 * pad - kw) / stride + 1;
    let mut out = Vec::with_capacity(n * o * oh * ow);
    for ni in 0..n {
        for oi in 0..o {
            for y in 0..oh {
                for xx in 0..ow {
                    let mut acc = bias[oi];
                    for ci in 0..c {
                        for i in 0..kh {
                            for j in 0..kw {
                                let (py, px) = (y * stride + i, xx * stride + j);
                                if py < pad || px < pad || py - pad >= h || px - pad >= w {
                                    continue;
                                }
                                let xv = x[((ni * c + ci) * h + py - pad) * w + px - pad];
                                acc += xv * k[((oi * c + ci) * kh + i) * kw + j];
                            }
                        }
                    }
                    out.push(acc);
                }
            }
        }
    }
    out
}

#[test]
fn conv2d_matches_a_direct_convolution_for_strides_and_paddings() {
    for (stride, pad, kernel) in [
        (1, 0, [3, 3]),
        (1, 1, [3, 3]),
        (2, 1, [3, 2]),
        (2, 0, [2, 2]),
    ] {
        let c = case("conv", Feeds::new(), |b, p| {
            let x = b.input("x", DType::F32, [2, 3, 5, 6]);
            let conv = Conv2d::new(p, "conv", 3, 4, kernel)
                .with_stride(stride)
                .with_padding(pad);
            conv.forward(x)
        });
        // Nonzero biases so that the bias term is checked too.
        let mut c = c;
        c.feeds.insert(
            "conv.bias".into(),
            HostTensor::from_f32([4], vec![0.5, -1.0, 0.25, 2.0]).unwrap(),
        );
        let want = naive_conv(
            &c.fed("x"),
            &c.fed("conv.kernel"),
            &c.fed("conv.bias"),
            [2, 3, 5, 6],
            [4, kernel[0], kernel[1]],
            stride,
            pad,
        );
        let what = format!("conv stride {stride} pad {pad} kernel {kernel:?}");
        assert_values(&what, &c.output("y"), &want, 1e-5);
        let oh = (5 + 2 * pad - kernel[0]) / stride + 1;
        let ow = (6 + 2 * pad - kernel[1]) / stride + 1;
        assert_eq!(
            c.graph.ty(c.graph.output("y").unwrap()).shape.dims(),
            [2, 4, oh, ow]
        );
        c.check_gradients(1e-5);
        c.check_jit();
    }
}

#[test]
fn pooling_takes_window_maxima_and_means() {
    let b = Builder::new("pool");
    let x = b.input("x", DType::F32, [1, 1, 4, 4]);
    b.output("max", max_pool2d(x, 2));
    b.output("avg", avg_pool2d(x, 2));
    let g = b.finish();
    let values: Vec<f32> = (0..16).map(|i| ((i * 7) % 16) as f32).collect();
    // Rows: [0 7 14 5] [12 3 10 1] [8 15 6 13] [4 11 2 9]
    let feeds = Feeds::from([(
        "x".to_string(),
        HostTensor::from_f32([1, 1, 4, 4], values).unwrap(),
    )]);
    let out = adjoint_interp::run(&g, &feeds).unwrap();
    assert_eq!(
        out.output("max").unwrap().as_f32().unwrap(),
        &[12.0, 14.0, 15.0, 13.0]
    );
    assert_eq!(
        out.output("avg").unwrap().as_f32().unwrap(),
        &[5.5, 7.5, 9.5, 7.5]
    );
    let c = case("pool_grad", Feeds::new(), |b, p| {
        let x = b.input("x", DType::F32, [2, 2, 4, 6]);
        let conv = Conv2d::new(p, "conv", 2, 3, [1, 1]);
        max_pool2d(conv.forward(x), 2) + avg_pool2d(x.sum_keepdims(&[1]), 2)
    });
    c.check_gradients(1e-5);
    c.check_jit();
}

/// Direct grouped, dilated convolution on the host with per-axis stride and padding:
/// `x [N, C, H, W]`, `k [O, C/g, kh, kw]`, optional bias `[O]`.
#[allow(clippy::too_many_arguments)]
fn naive_conv_with(
    x: &[f64],
    k: &[f64],
    bias: Option<&[f64]>,
    [n, c, h, w]: [usize; 4],
    [o, kh, kw]: [usize; 3],
    o_: &Conv2dOptions,
) -> Vec<f64> {
    let ([sh, sw], [ph, pw], [dh, dw], g) = (o_.stride, o_.padding, o_.dilation, o_.groups);
    let oh = (h + 2 * ph - dh * (kh - 1) - 1) / sh + 1;
    let ow = (w + 2 * pw - dw * (kw - 1) - 1) / sw + 1;
    let (cg, og) = (c / g, o / g);
    let mut out = Vec::with_capacity(n * o * oh * ow);
    for ni in 0..n {
        for oi in 0..o {
            let group = oi / og;
            for y in 0..oh {
                for xx in 0..ow {
                    let mut acc = bias.map_or(0.0, |b| b[oi]);
                    for cl in 0..cg {
                        let ci = group * cg + cl;
                        for i in 0..kh {
                            for j in 0..kw {
                                let (py, px) = (y * sh + i * dh, xx * sw + j * dw);
                                if py < ph || px < pw || py - ph >= h || px - pw >= w {
                                    continue;
                                }
                                let xv = x[((ni * c + ci) * h + py - ph) * w + px - pw];
                                acc += xv * k[((oi * cg + cl) * kh + i) * kw + j];
                            }
                        }
                    }
                    out.push(acc);
                }
            }
        }
    }
    out
}

#[test]
fn conv2d_with_per_axis_stride_padding_dilation_groups_and_no_bias() {
    let cases = [
        Conv2dOptions {
            stride: [1, 2],
            padding: [2, 0],
            ..Conv2dOptions::default()
        },
        Conv2dOptions {
            dilation: [2, 1],
            padding: [1, 1],
            ..Conv2dOptions::default()
        },
        Conv2dOptions {
            groups: 2,
            bias: false,
            ..Conv2dOptions::default()
        },
        Conv2dOptions {
            groups: 4,
            stride: [2, 1],
            dilation: [1, 2],
            padding: [1, 2],
            bias: true,
        },
    ];
    for options in cases {
        let mut c = case("conv_opts", Feeds::new(), |b, p| {
            let x = b.input("x", DType::F32, [2, 4, 6, 7]);
            Conv2d::with_options(p, "conv", 4, 4, [3, 2], options).forward(x)
        });
        let bias = options.bias.then(|| {
            let t = HostTensor::from_f32([4], vec![0.5, -1.0, 0.25, 2.0]).unwrap();
            c.feeds.insert("conv.bias".into(), t);
            c.fed("conv.bias")
        });
        assert_eq!(c.feeds.contains_key("conv.bias"), options.bias);
        let want = naive_conv_with(
            &c.fed("x"),
            &c.fed("conv.kernel"),
            bias.as_deref(),
            [2, 4, 6, 7],
            [4, 3, 2],
            &options,
        );
        assert_values(&format!("{options:?}"), &c.output("y"), &want, 1e-5);
        c.check_gradients(1e-5);
        c.check_jit();
    }
}

/// Direct pooling on the host with PyTorch's rules: `max` (padding is -inf) or mean (padding
/// counts as zeros).
fn naive_pool(x: &[f64], [n, c, h, w]: [usize; 4], pool: &Pool2d, max: bool) -> Vec<f64> {
    let ([kh, kw], [sh, sw], [ph, pw]) = (pool.kernel, pool.stride, pool.padding);
    let oh = (h + 2 * ph - kh) / sh + 1;
    let ow = (w + 2 * pw - kw) / sw + 1;
    let mut out = Vec::new();
    for plane in 0..n * c {
        for y in 0..oh {
            for xx in 0..ow {
                let mut vals = Vec::new();
                for i in 0..kh {
                    for j in 0..kw {
                        let (py, px) = (y * sh + i, xx * sw + j);
                        let inside = py >= ph && px >= pw && py - ph < h && px - pw < w;
                        vals.push(if inside {
                            x[(plane * h + py - ph) * w + px - pw]
                        } else if max {
                            f64::NEG_INFINITY
                        } else {
                            0.0
                        });
                    }
                }
                out.push(if max {
                    vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                } else {
                    vals.iter().sum::<f64>() / vals.len() as f64
                });
            }
        }
    }
    out
}

#[test]
fn pooling_with_padding_strides_and_remainders_follows_pytorch() {
    let pools = [
        Pool2d {
            kernel: [3, 3],
            stride: [2, 2],
            padding: [1, 1],
        },
        Pool2d {
            kernel: [2, 3],
            stride: [1, 2],
            padding: [0, 1],
        },
        Pool2d::square(2), // 5x7: the last row and column are dropped
    ];
    for pool in pools {
        let c = case("pool_opts", Feeds::new(), |b, _| {
            let x = b.input("x", DType::F32, [1, 2, 5, 7]);
            max_pool2d_with(x, pool) + avg_pool2d_with(x, pool) * 2.0
        });
        let x = c.fed("x");
        let (mx, av) = (
            naive_pool(&x, [1, 2, 5, 7], &pool, true),
            naive_pool(&x, [1, 2, 5, 7], &pool, false),
        );
        let want: Vec<f64> = mx.iter().zip(&av).map(|(m, a)| m + 2.0 * a).collect();
        assert_values(&format!("{pool:?}"), &c.output("y"), &want, 1e-5);
        c.check_gradients(1e-5);
        c.check_jit();
    }
    // The square shorthands drop the remainder too.
    let c = case("pool_rem", Feeds::new(), |b, _| {
        let x = b.input("x", DType::F32, [1, 2, 5, 7]);
        max_pool2d(x, 2) - max_pool2d_with(x, Pool2d::square(2))
    });
    assert!(c.output("y").iter().all(|&v| v == 0.0));
}

#[test]
#[should_panic(expected = "a convolution with 3 input channels expects")]
fn conv2d_refuses_the_wrong_channel_count() {
    let b = Builder::new("bad");
    let mut params = Params::new(&b, 0);
    let x = b.input("x", DType::F32, [1, 2, 5, 5]);
    let _ = Conv2d::new(&mut params, "conv", 3, 4, [3, 3]).forward(x);
}

// ---------------------------------------------------------------------------------------------
// Rnn and Gru

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

/// `x [rows, k] @ m [k, cols]` on the host.
fn matmul(x: &[f64], m: &[f64], k: usize, cols: usize) -> Vec<f64> {
    let rows = x.len() / k;
    let mut out = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[r * cols + c] = (0..k).map(|i| x[r * k + i] * m[i * cols + c]).sum();
        }
    }
    out
}

/// Step `t` of `x [N, T, I]`: `[N, I]`.
fn step_of(x: &[f64], [n, t_len, i]: [usize; 3], t: usize) -> Vec<f64> {
    (0..n)
        .flat_map(|b| x[(b * t_len + t) * i..(b * t_len + t + 1) * i].to_vec())
        .collect()
}

#[test]
fn rnn_matches_a_host_recurrence_and_checks_out() {
    let c = case("rnn", Feeds::new(), |b, p| {
        let x = b.input("x", DType::F32, [2, 3, 4]);
        let seq = Rnn::new(p, "rnn", 4, 5).forward(x);
        assert_eq!(seq.outputs.shape().dims(), &[2, 3, 5]);
        seq.outputs
    });
    let (x, wih, whh, bias) = (
        c.fed("x"),
        c.fed("rnn.w_ih"),
        c.fed("rnn.w_hh"),
        c.fed("rnn.bias"),
    );
    let mut h = vec![0.0; 2 * 5];
    let mut outs = vec![vec![]; 3];
    for (t, out) in outs.iter_mut().enumerate() {
        let a = matmul(&step_of(&x, [2, 3, 4], t), &wih, 4, 5);
        let r = matmul(&h, &whh, 5, 5);
        h = (0..10)
            .map(|i| (a[i] + r[i] + bias[i % 5]).tanh())
            .collect();
        *out = h.clone();
    }
    // outputs [N, T, H]: element (b, t, j).
    let want: Vec<f64> = (0..2)
        .flat_map(|b| (0..3).flat_map(move |t| (0..5).map(move |j| (b, t, j))))
        .map(|(b, t, j)| outs[t][b * 5 + j])
        .collect();
    assert_values("rnn", &c.output("y"), &want, 1e-5);
    c.check_gradients(1e-5);
    c.check_jit();
}

#[test]
fn gru_matches_a_host_recurrence_and_checks_out() {
    let c = case("gru", Feeds::new(), |b, p| {
        let x = b.input("x", DType::F32, [2, 3, 4]);
        let h0 = b.input("h0", DType::F32, [2, 5]);
        Gru::new(p, "gru", 4, 5).forward_from(x, h0).last
    });
    let hd = 5;
    let (x, wih, whh, bih, bhh) = (
        c.fed("x"),
        c.fed("gru.w_ih"),
        c.fed("gru.w_hh"),
        c.fed("gru.b_ih"),
        c.fed("gru.b_hh"),
    );
    let mut h = c.fed("h0");
    for t in 0..3 {
        let gi = matmul(&step_of(&x, [2, 3, 4], t), &wih, 4, 3 * hd);
        let gh = matmul(&h, &whh, hd, 3 * hd);
        let mut next = vec![0.0; 2 * hd];
        for b in 0..2 {
            for j in 0..hd {
                let i = |g: usize| b * 3 * hd + g * hd + j;
                let r = sigmoid(gi[i(0)] + bih[j] + gh[i(0)] + bhh[j]);
                let z = sigmoid(gi[i(1)] + bih[hd + j] + gh[i(1)] + bhh[hd + j]);
                let n = (gi[i(2)] + bih[2 * hd + j] + r * (gh[i(2)] + bhh[2 * hd + j])).tanh();
                next[b * hd + j] = (1.0 - z) * n + z * h[b * hd + j];
            }
        }
        h = next;
    }
    assert_values("gru", &c.output("y"), &h, 1e-5);
    c.check_gradients(1e-5);
    c.check_jit();
}

#[test]
fn a_single_step_equals_a_one_step_unroll() {
    let b = Builder::new("steps");
    let mut params = Params::new(&b, 3);
    let x = b.input("x", DType::F32, [2, 1, 4]);
    let h = b.input("h", DType::F32, [2, 5]);
    let rnn = Rnn::new(&mut params, "rnn", 4, 5);
    let gru = Gru::new(&mut params, "gru", 4, 5);
    let x_t = x.reshape([2, 4]);
    b.output("rnn_step", rnn.step(x_t, h));
    b.output("rnn_unroll", rnn.forward_from(x, h).last);
    b.output("gru_step", gru.step(x_t, h));
    b.output("gru_unroll", gru.forward_from(x, h).last);
    let mut feeds = params.into_initial_values();
    let g = b.finish();
    let mut rng = Rng::new(1);
    for name in ["x", "h"] {
        let id = g.leaf(name).unwrap();
        feeds.insert(name.into(), HostTensor::random(g.ty(id), &mut rng, 0));
    }
    let out = adjoint_interp::run(&g, &feeds).unwrap();
    for cell in ["rnn", "gru"] {
        let step = out.output(&format!("{cell}_step")).unwrap();
        let unroll = out.output(&format!("{cell}_unroll")).unwrap();
        assert_close(cell, step, unroll, 1e-6);
    }
}

// ---------------------------------------------------------------------------------------------
// Lstm and the stacked, bidirectional, sequence-first Recurrent

/// Host weights of one recurrent cell: `w_ih [I, G·H]`, `w_hh [H, G·H]`, `b_ih`, `b_hh`.
struct HostCell {
    w_ih: Vec<f64>,
    w_hh: Vec<f64>,
    b_ih: Vec<f64>,
    b_hh: Vec<f64>,
}

impl HostCell {
    /// The fed weights of the cell declared under `scope`.
    fn fed(c: &Case, scope: &str) -> HostCell {
        HostCell {
            w_ih: c.fed(&format!("{scope}.w_ih")),
            w_hh: c.fed(&format!("{scope}.w_hh")),
            b_ih: c.fed(&format!("{scope}.b_ih")),
            b_hh: c.fed(&format!("{scope}.b_hh")),
        }
    }

    /// Runs an LSTM (`lstm`) or a GRU over `x [N, T, I]` from `h`, `c` (`[N, H]`), backwards in
    /// time when `reverse`: the outputs `[N, T, H]`, the last `h` and the last `c`.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        lstm: bool,
        x: &[f64],
        [n, t_len, i]: [usize; 3],
        hd: usize,
        mut h: Vec<f64>,
        mut c: Vec<f64>,
        reverse: bool,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let g = if lstm { 4 } else { 3 };
        let mut out = vec![0.0; n * t_len * hd];
        let order: Vec<usize> = if reverse {
            (0..t_len).rev().collect()
        } else {
            (0..t_len).collect()
        };
        for t in order {
            let gi = matmul(&step_of(x, [n, t_len, i], t), &self.w_ih, i, g * hd);
            let gh = matmul(&h, &self.w_hh, hd, g * hd);
            for b in 0..n {
                for j in 0..hd {
                    let k = |q: usize| b * g * hd + q * hd + j;
                    let a = |q: usize| gi[k(q)] + self.b_ih[q * hd + j];
                    let r = |q: usize| gh[k(q)] + self.b_hh[q * hd + j];
                    let idx = b * hd + j;
                    if lstm {
                        let (ig, fg) = (sigmoid(a(0) + r(0)), sigmoid(a(1) + r(1)));
                        let (gg, og) = ((a(2) + r(2)).tanh(), sigmoid(a(3) + r(3)));
                        c[idx] = fg * c[idx] + ig * gg;
                        h[idx] = og * c[idx].tanh();
                    } else {
                        let rg = sigmoid(a(0) + r(0));
                        let z = sigmoid(a(1) + r(1));
                        let nn = (a(2) + rg * r(2)).tanh();
                        h[idx] = (1.0 - z) * nn + z * h[idx];
                    }
                }
            }
            for b in 0..n {
                out[(b * t_len + t) * hd..(b * t_len + t + 1) * hd]
                    .copy_from_slice(&h[b * hd..(b + 1) * hd]);
            }
        }
        (out, h, c)
    }
}

/// `[A, B, C]` to `[B, A, C]` on the host.
fn swap01(x: &[f64], [a, b, c]: [usize; 3]) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for i in 0..a {
        for j in 0..b {
            out[(j * a + i) * c..(j * a + i + 1) * c]
                .copy_from_slice(&x[(i * b + j) * c..(i * b + j + 1) * c]);
        }
    }
    out
}

/// Concatenates `[N, T, H]` blocks on the last axis.
fn concat_last(parts: &[&[f64]], rows: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for r in 0..rows {
        for p in parts {
            let w = p.len() / rows;
            out.extend_from_slice(&p[r * w..(r + 1) * w]);
        }
    }
    out
}

#[test]
fn lstm_matches_a_host_recurrence_and_checks_out() {
    let c = case("lstm", Feeds::new(), |b, p| {
        let x = b.input("x", DType::F32, [2, 3, 4]);
        let h0 = b.input("h0", DType::F32, [2, 5]);
        let c0 = b.input("c0", DType::F32, [2, 5]);
        let seq = Lstm::new(p, "lstm", 4, 5).forward_from(x, h0, c0);
        b.concat(&[seq.outputs.reshape([2, 15]), seq.last_cell], 1)
    });
    let cell = HostCell::fed(&c, "lstm");
    let (out, _, last_c) = cell.run(
        true,
        &c.fed("x"),
        [2, 3, 4],
        5,
        c.fed("h0"),
        c.fed("c0"),
        false,
    );
    let want = concat_last(&[&out, &last_c], 2);
    assert_values("lstm", &c.output("y"), &want, 1e-5);
    c.check_gradients(1e-5);
    c.check_jit();
}

#[test]
fn a_single_lstm_step_equals_a_one_step_unroll() {
    let b = Builder::new("lstm_step");
    let mut params = Params::new(&b, 3).with_dtype(DType::F64);
    let x = b.input("x", DType::F64, [2, 1, 4]);
    let lstm = Lstm::new(&mut params, "lstm", 4, 3);
    let (h, cs) = (b.zeros(DType::F64, [2, 3]), b.zeros(DType::F64, [2, 3]));
    let (h1, c1) = lstm.step(x.reshape([2, 4]), h, cs);
    let seq = lstm.forward(x);
    b.output("step", b.concat(&[h1, c1], 1));
    b.output("unroll", b.concat(&[seq.last, seq.last_cell], 1));
    let mut feeds = params.into_initial_values();
    let g = b.finish();
    let mut rng = Rng::new(1);
    feeds.insert(
        "x".into(),
        HostTensor::random(g.ty(g.leaf("x").unwrap()), &mut rng, 0),
    );
    let out = adjoint_interp::run(&g, &feeds).unwrap();
    assert_close(
        "lstm",
        out.output("step").unwrap(),
        out.output("unroll").unwrap(),
        1e-12,
    );
}

#[test]
fn stacked_bidirectional_sequence_first_lstm_matches_the_host_and_checks_out() {
    // 2 layers, both directions, [T, N, I] = [3, 2, 4], hidden 3.
    let (t_len, n, i, hd) = (3, 2, 4, 3);
    let c = case("bilstm", Feeds::new(), |b, p| {
        let x = b.input("x", DType::F32, [t_len, n, i]);
        let options = RecurrentOptions {
            layers: 2,
            bidirectional: true,
            seq_first: true,
            dropout: 0.0,
        };
        let out = Recurrent::new(p, "rnn", CellKind::Lstm, i, hd, options).forward(x);
        assert_eq!(out.outputs.shape().dims(), &[t_len, n, 2 * hd]);
        let c_n = out.c_n.unwrap();
        let parts = [out.outputs, out.h_n, c_n].map(|t| t.reshape([t.shape().numel()]));
        b.concat(&parts, 0)
    });
    let zeros = vec![0.0; n * hd];
    let mut input = swap01(&c.fed("x"), [t_len, n, i]);
    let mut width = i;
    let (mut h_n, mut c_n) = (Vec::new(), Vec::new());
    for layer in 0..2 {
        let mut outs = Vec::new();
        for (d, suffix) in ["", "_reverse"].into_iter().enumerate() {
            let cell = HostCell::fed(&c, &format!("rnn.l{layer}{suffix}"));
            let (out, h, cs) = cell.run(
                true,
                &input,
                [n, t_len, width],
                hd,
                zeros.clone(),
                zeros.clone(),
                d == 1,
            );
            outs.push(out);
            h_n.extend(h);
            c_n.extend(cs);
        }
        input = concat_last(&[&outs[0], &outs[1]], n * t_len);
        width = 2 * hd;
    }
    let mut want = swap01(&input, [n, t_len, 2 * hd]);
    want.extend(h_n);
    want.extend(c_n);
    assert_values("bilstm", &c.output("y"), &want, 1e-5);
    c.check_gradients(1e-5);
    c.check_jit();
}

#[test]
fn bidirectional_gru_from_given_states_matches_the_host() {
    let (n, t_len, i, hd) = (2, 4, 3, 2);
    let c = case("bigru", Feeds::new(), |b, p| {
        let x = b.input("x", DType::F32, [n, t_len, i]);
        let h0 = b.input("h0", DType::F32, [2, n, hd]);
        let options = RecurrentOptions {
            bidirectional: true,
            ..RecurrentOptions::default()
        };
        let out =
            Recurrent::new(p, "gru", CellKind::Gru, i, hd, options).forward_from(x, Some(h0), None);
        assert!(out.c_n.is_none());
        b.concat(
            &[
                out.outputs.reshape([n * t_len * 2 * hd]),
                out.h_n.reshape([2 * n * hd]),
            ],
            0,
        )
    });
    let (x, h0) = (c.fed("x"), c.fed("h0"));
    let mut outs = Vec::new();
    let mut h_n = Vec::new();
    for (d, suffix) in ["", "_reverse"].into_iter().enumerate() {
        let cell = HostCell::fed(&c, &format!("gru.l0{suffix}"));
        let h = h0[d * n * hd..(d + 1) * n * hd].to_vec();
        let (out, last, _) = cell.run(false, &x, [n, t_len, i], hd, h, vec![], d == 1);
        outs.push(out);
        h_n.extend(last);
    }
    let mut want = concat_last(&[&outs[0], &outs[1]], n * t_len);
    want.extend(h_n);
    assert_values("bigru", &c.output("y"), &want, 1e-5);
    c.check_gradients(1e-5);
}

#[test]
fn stacked_gru_drops_the_first_layers_outputs_with_the_fed_mask() {
    let (n, t_len, i, hd) = (2, 3, 2, 3);
    let mask: Vec<f64> = (0..n * t_len * hd)
        .map(|k| if k % 3 == 1 { 0.0 } else { 2.0 })
        .collect();
    let fed = HostTensor::from_f64_as(DType::F32, [n, t_len, hd], &mask).unwrap();
    let c = case(
        "gru_dropout",
        Feeds::from([("gru.l0.dropout.mask".to_string(), fed)]),
        |b, p| {
            let x = b.input("x", DType::F32, [n, t_len, i]);
            let options = RecurrentOptions {
                layers: 2,
                dropout: 0.5,
                ..RecurrentOptions::default()
            };
            let gru = Recurrent::new(p, "gru", CellKind::Gru, i, hd, options);
            let y = gru.forward_train(p, x, None, None).outputs;
            assert_eq!(p.random_inputs().len(), 1);
            assert_eq!(p.random_inputs()[0].name, "gru.l0.dropout.mask");
            y
        },
    );
    let zeros = vec![0.0; n * hd];
    let l0 = HostCell::fed(&c, "gru.l0");
    let (out0, _, _) = l0.run(
        false,
        &c.fed("x"),
        [n, t_len, i],
        hd,
        zeros.clone(),
        vec![],
        false,
    );
    let dropped: Vec<f64> = out0.iter().zip(&mask).map(|(a, m)| a * m).collect();
    let l1 = HostCell::fed(&c, "gru.l1");
    let (want, _, _) = l1.run(false, &dropped, [n, t_len, hd], hd, zeros, vec![], false);
    assert_values("gru dropout", &c.output("y"), &want, 1e-5);
    c.check_gradients(1e-5);
}

/// Issue 16: inputs ×100 saturate every gate; the f32 gradients must stay finite (they were
/// NaN when the sigmoid's gradient multiplied 0 by an overflowed `e^-x`).
#[test]
fn gru_and_lstm_fed_large_inputs_have_finite_f32_gradients() {
    for kind in [CellKind::Gru, CellKind::Lstm] {
        let b = Builder::new("large");
        let mut params = Params::new(&b, 5);
        let x = b.input("x", DType::F32, [3, 5, 4]);
        let layer = Recurrent::new(&mut params, "r", kind, 4, 6, RecurrentOptions::default());
        let loss = layer.forward(x).outputs.square().sum_all();
        b.output("loss", loss);
        let loss = loss.id();
        let names: Vec<String> = params.trainable().to_vec();
        let mut feeds = params.into_initial_values();
        let g = b.finish();
        let wrt: Vec<NodeId> = names.iter().map(|n| g.leaf(n).unwrap()).collect();
        let mut rng = Rng::new(9);
        let x = HostTensor::random(g.ty(g.leaf("x").unwrap()), &mut rng, 0).to_f64_vec();
        let big: Vec<f64> = x.iter().map(|v| 100.0 * v).collect();
        let big = HostTensor::from_f64_as(DType::F32, [3, 5, 4], &big).unwrap();
        feeds.insert("x".into(), big);
        let grads = adjoint_autodiff::grad(g, loss, &wrt).unwrap();
        let out = adjoint_interp::run(&grads.graph, &feeds).unwrap();
        for name in &names {
            let v = out.output(&format!("{name}.grad")).unwrap().to_f64_vec();
            assert!(v.iter().all(|g| g.is_finite()), "{kind:?} {name}: {v:?}");
            assert!(v.iter().any(|&g| g != 0.0), "{kind:?} {name}: all zero");
        }
    }
}
