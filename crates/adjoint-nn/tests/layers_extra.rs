//! BatchNorm, Dropout, MultiHeadAttention, Conv2d (and pooling), Rnn and Gru: values against
//! direct host computations, gradients against finite differences, and the JIT against the
//! interpreter.

use adjoint_autodiff::check_grads;
use adjoint_ir::{Builder, DType, Feeds, Graph, HostTensor, NodeId, Rng, Tensor};
use adjoint_jit::{compile, Options};
use adjoint_nn::layers::{
    avg_pool2d, max_pool2d, BatchNorm, Conv2d, Dropout, Gru, MultiHeadAttention, Rnn,
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
