//! The PyTorch name and layout map: tensors laid out as PyTorch stores them (random values,
//! PyTorch's shapes and names) are imported into Adjoint layers, and the layers' outputs are
//! compared with host implementations of PyTorch's formulas that read the PyTorch layout
//! directly (`x · Wᵀ`, the packed `in_proj_weight`, gates i, f, g, o).

use adjoint_ir::{Builder, DType, Feeds, HostTensor, Rng};
use adjoint_nn::layers::{
    AttentionOptions, BatchNorm, CellKind, Linear, MultiHeadAttention, Recurrent, RecurrentOptions,
    Rnn,
};
use adjoint_nn::{torch_map, Params};

/// Seeded standard normal values of `shape`, as an f64 tensor and its values.
fn random(shape: &[usize], rng: &mut Rng) -> (HostTensor, Vec<f64>) {
    let v: Vec<f64> = (0..shape.iter().product::<usize>())
        .map(|_| rng.normal() * 0.5)
        .collect();
    (HostTensor::from_f64(shape.to_vec(), v.clone()).unwrap(), v)
}

/// `y[r, o] = Σ_i x[r, i] · w[o, i] + b[o]` (PyTorch's layout).
fn affine_t(x: &[f64], w: &[f64], b: &[f64], inp: usize, out: usize) -> Vec<f64> {
    let rows = x.len() / inp;
    let mut y = vec![0.0; rows * out];
    for r in 0..rows {
        for o in 0..out {
            y[r * out + o] = b[o]
                + (0..inp)
                    .map(|i| x[r * inp + i] * w[o * inp + i])
                    .sum::<f64>();
        }
    }
    y
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + (-v).exp())
}

fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() < 1e-10, "{what}[{i}]: got {a}, want {b}");
    }
}

/// Runs the graph with the imported values and input `x`, returning output `y`.
fn run(b: Builder, mut values: Feeds, x: HostTensor) -> Vec<f64> {
    values.insert("x".into(), x);
    let out = adjoint_interp::run(&b.finish(), &values).unwrap();
    out.output("y").unwrap().to_f64_vec()
}

#[test]
fn a_linear_layer_reproduces_x_times_w_transposed() {
    let mut rng = Rng::new(1);
    let b = Builder::new("lin");
    let mut params = Params::new(&b, 0).with_dtype(DType::F64);
    let x = b.input("x", DType::F64, [2, 3]);
    b.output("y", Linear::new(&mut params, "head", 3, 4).forward(x));
    let mut state = Feeds::new();
    let (w, wv) = random(&[4, 3], &mut rng);
    let (bias, bv) = random(&[4], &mut rng);
    state.insert("fc.weight".into(), w);
    state.insert("fc.bias".into(), bias);
    let map = torch_map::linear("fc", "head", true);
    let values = torch_map::import(&state, &map, params.initial_values()).unwrap();
    let (xt, xv) = random(&[2, 3], &mut rng);
    assert_close(
        "linear",
        &run(b, values, xt),
        &affine_t(&xv, &wv, &bv, 3, 4),
    );
}

/// PyTorch's LSTM over `x [N, T, I]` (batch first) in PyTorch's layout, one direction.
#[allow(clippy::too_many_arguments)]
fn torch_lstm(
    x: &[f64],
    [n, t_len, i]: [usize; 3],
    h: usize,
    w_ih: &[f64],
    w_hh: &[f64],
    b_ih: &[f64],
    b_hh: &[f64],
    reverse: bool,
) -> Vec<f64> {
    let mut out = vec![0.0; n * t_len * h];
    for b in 0..n {
        let (mut hs, mut cs) = (vec![0.0; h], vec![0.0; h]);
        let steps: Vec<usize> = if reverse {
            (0..t_len).rev().collect()
        } else {
            (0..t_len).collect()
        };
        for t in steps {
            let xt = &x[(b * t_len + t) * i..(b * t_len + t + 1) * i];
            let gi = affine_t(xt, w_ih, b_ih, i, 4 * h);
            let gh = affine_t(&hs, w_hh, b_hh, h, 4 * h);
            let g: Vec<f64> = gi.iter().zip(&gh).map(|(a, c)| a + c).collect();
            for j in 0..h {
                let (ig, fg) = (sigmoid(g[j]), sigmoid(g[h + j]));
                let (gg, og) = (g[2 * h + j].tanh(), sigmoid(g[3 * h + j]));
                cs[j] = fg * cs[j] + ig * gg;
                hs[j] = og * cs[j].tanh();
            }
            out[(b * t_len + t) * h..(b * t_len + t + 1) * h].copy_from_slice(&hs);
        }
    }
    out
}

#[test]
fn a_bidirectional_lstm_reproduces_pytorch_from_its_state_dict() {
    let (n, t_len, i, h) = (2, 3, 4, 3);
    let mut rng = Rng::new(2);
    let b = Builder::new("lstm");
    let mut params = Params::new(&b, 0).with_dtype(DType::F64);
    let x = b.input("x", DType::F64, [n, t_len, i]);
    let options = RecurrentOptions {
        bidirectional: true,
        ..RecurrentOptions::default()
    };
    let lstm = Recurrent::new(&mut params, "enc", CellKind::Lstm, i, h, options);
    b.output("y", lstm.forward(x).outputs);
    let mut state = Feeds::new();
    let mut torch = Vec::new();
    for sfx in ["", "_reverse"] {
        let mut ws = Vec::new();
        for (name, shape) in [
            ("weight_ih", vec![4 * h, i]),
            ("weight_hh", vec![4 * h, h]),
            ("bias_ih", vec![4 * h]),
            ("bias_hh", vec![4 * h]),
        ] {
            let (t, v) = random(&shape, &mut rng);
            state.insert(format!("lstm.{name}_l0{sfx}"), t);
            ws.push(v);
        }
        torch.push(ws);
    }
    let map = torch_map::recurrent("lstm", "enc", CellKind::Lstm, 1, true);
    let values = torch_map::import(&state, &map, params.initial_values()).unwrap();
    let (xt, xv) = random(&[n, t_len, i], &mut rng);
    let dir = |d: usize| {
        let w = &torch[d];
        torch_lstm(&xv, [n, t_len, i], h, &w[0], &w[1], &w[2], &w[3], d == 1)
    };
    let (fwd, bwd) = (dir(0), dir(1));
    let want: Vec<f64> = (0..n * t_len)
        .flat_map(|r| [&fwd[r * h..(r + 1) * h], &bwd[r * h..(r + 1) * h]].concat())
        .collect();
    assert_close("bilstm", &run(b, values, xt), &want);
}

#[test]
fn multihead_attention_splits_the_packed_projection() {
    let (bsz, s, w, heads) = (2, 3, 4, 2);
    let hd = w / heads;
    let mut rng = Rng::new(3);
    let b = Builder::new("mha");
    let mut params = Params::new(&b, 0).with_dtype(DType::F64);
    let x = b.input("x", DType::F64, [bsz, s, w]);
    let options = AttentionOptions {
        causal: false,
        bias: true,
        ..AttentionOptions::default()
    };
    let attn = MultiHeadAttention::with_options(&mut params, "self_attn", w, heads, options);
    b.output("y", attn.forward(x));
    let mut state = Feeds::new();
    let (ipw, ipw_v) = random(&[3 * w, w], &mut rng);
    let (ipb, ipb_v) = random(&[3 * w], &mut rng);
    let (opw, opw_v) = random(&[w, w], &mut rng);
    let (opb, opb_v) = random(&[w], &mut rng);
    state.insert("attn.in_proj_weight".into(), ipw);
    state.insert("attn.in_proj_bias".into(), ipb);
    state.insert("attn.out_proj.weight".into(), opw);
    state.insert("attn.out_proj.bias".into(), opb);
    let map = torch_map::attention("attn", "self_attn", true);
    let values = torch_map::import(&state, &map, params.initial_values()).unwrap();
    let (xt, xv) = random(&[bsz, s, w], &mut rng);
    // PyTorch: [q; k; v] = x · in_proj_weightᵀ + in_proj_bias, heads of hd, softmax(q kᵀ/√hd) v.
    let qkv = affine_t(&xv, &ipw_v, &ipb_v, w, 3 * w);
    let at = |r: usize, part: usize, c: usize| qkv[r * 3 * w + part * w + c];
    let mut merged = vec![0.0; bsz * s * w];
    for bi in 0..bsz {
        for hh in 0..heads {
            for qi in 0..s {
                let scores: Vec<f64> = (0..s)
                    .map(|kj| {
                        (0..hd)
                            .map(|d| {
                                at(bi * s + qi, 0, hh * hd + d) * at(bi * s + kj, 1, hh * hd + d)
                            })
                            .sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|v| (v - max).exp()).collect();
                let total: f64 = e.iter().sum();
                for d in 0..hd {
                    merged[(bi * s + qi) * w + hh * hd + d] = (0..s)
                        .map(|kj| e[kj] / total * at(bi * s + kj, 2, hh * hd + d))
                        .sum();
                }
            }
        }
    }
    let want = affine_t(&merged, &opw_v, &opb_v, w, w);
    assert_close("mha", &run(b, values, xt), &want);
}

#[test]
fn rnn_biases_are_summed_and_batch_norm_names_are_mapped() {
    let mut rng = Rng::new(4);
    let b = Builder::new("misc");
    let mut params = Params::new(&b, 0).with_dtype(DType::F64);
    let _ = Rnn::new(&mut params, "rnn", 2, 3);
    let _ = BatchNorm::new(&mut params, "bn", 3);
    let mut state = Feeds::new();
    let mut vals = std::collections::HashMap::new();
    for (name, shape) in [
        ("r.weight_ih_l0", vec![3, 2]),
        ("r.weight_hh_l0", vec![3, 3]),
        ("r.bias_ih_l0", vec![3]),
        ("r.bias_hh_l0", vec![3]),
        ("bn.weight", vec![3]),
        ("bn.bias", vec![3]),
        ("bn.running_mean", vec![3]),
        ("bn.running_var", vec![3]),
    ] {
        let (t, v) = random(&shape, &mut rng);
        state.insert(name.into(), t);
        vals.insert(name, v);
    }
    let mut map = torch_map::recurrent_cell("r", "rnn", CellKind::Rnn);
    map.extend(torch_map::batch_norm("bn", "bn", true));
    let values = torch_map::import(&state, &map, params.initial_values()).unwrap();
    let sum: Vec<f64> = (0..3)
        .map(|j| vals["r.bias_ih_l0"][j] + vals["r.bias_hh_l0"][j])
        .collect();
    assert_close("bias", &values["rnn.bias"].to_f64_vec(), &sum);
    let w = &vals["r.weight_ih_l0"]; // [3, 2] → [2, 3]
    let wt: Vec<f64> = (0..2)
        .flat_map(|i| (0..3).map(move |o| w[o * 2 + i]))
        .collect();
    assert_close("w_ih", &values["rnn.w_ih"].to_f64_vec(), &wt);
    assert_close(
        "gamma",
        &values["bn.gamma"].to_f64_vec(),
        &vals["bn.weight"],
    );
    assert_close(
        "var",
        &values["bn.running_var"].to_f64_vec(),
        &vals["bn.running_var"],
    );
}

#[test]
fn import_errors_name_the_tensor() {
    let b = Builder::new("err");
    let mut params = Params::new(&b, 0).with_dtype(DType::F64);
    let _ = Linear::new(&mut params, "fc", 3, 4);
    let map = torch_map::linear("fc", "fc", true);
    let mut state = Feeds::new();
    state.insert(
        "fc.weight".into(),
        HostTensor::from_f64([3, 4], vec![0.0; 12]).unwrap(),
    );
    let e = torch_map::import(&state, &map, params.initial_values())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`fc.weight`") && e.contains("f64[4,3]") && e.contains("f64[3,4]"),
        "{e}"
    );
    state.insert(
        "fc.weight".into(),
        HostTensor::from_f64([4, 3], vec![0.0; 12]).unwrap(),
    );
    let e = torch_map::import(&state, &map, params.initial_values())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no `fc.bias`"), "{e}");
}
