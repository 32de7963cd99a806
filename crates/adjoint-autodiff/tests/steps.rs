//! Training-step graphs: the W1 and W3 step graphs are differentiated correctly, and one
//! interpreter run of a step changes parameters and optimizer state exactly as the update
//! formulas say.

use adjoint_autodiff::precision::{widen_feeds, widen_to_f64};
use adjoint_autodiff::{
    check_grads, float_parameters, training_step, GradError, LearningRate, Optimizer, StepGraph,
};
use adjoint_interp::{eval_nodes, run};
use adjoint_ir::{Builder, DType, Feeds, HostTensor};
use adjoint_workloads::{mlp, resmlp_ln, w1_mlp_small, MlpConfig, ResMlpConfig, Workload};

fn f32s(shape: &[usize], v: &[f64]) -> HostTensor {
    HostTensor::from_f64_as(DType::F32, shape, v).unwrap()
}

/// The step graph of a workload with `opt`, over all its float parameters.
fn step_of(w: &Workload, opt: &Optimizer) -> StepGraph {
    let loss = w.graph.output("loss").unwrap();
    let params = float_parameters(&w.graph);
    training_step(w.graph.clone(), loss, &params, opt).unwrap()
}

/// Feeds for a step: the workload's feeds plus the optimizer state at its initial value.
fn step_feeds(w: &Workload, step: &StepGraph) -> Feeds {
    let mut feeds = w.feeds.clone();
    for (name, init) in &step.state {
        feeds.insert(name.clone(), init.clone());
    }
    feeds
}

fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
        }
    }
    c
}

fn transpose(a: &[f64], m: usize, n: usize) -> Vec<f64> {
    let mut t = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            t[j * m + i] = a[i * n + j];
        }
    }
    t
}

#[test]
fn w1_sgd_step_matches_a_hand_computed_update() {
    // W1's structure at batch 2, 3 -> 4 -> 2: relu(x @ w1 + b1) @ w2 + b2, cross-entropy, SGD.
    let cfg = MlpConfig {
        batch: 2,
        inputs: 3,
        hidden: vec![4],
        classes: 2,
    };
    let mut w = mlp("W1", "mlp-small", &cfg, 0);
    let x = [0.5, -1.0, 2.0, 1.5, 0.25, -0.5];
    let y = [1, 0];
    let w1 = [
        0.2, -0.4, 0.6, 0.1, //
        -0.3, 0.5, 0.2, -0.7, //
        0.4, 0.1, -0.5, 0.3,
    ];
    let b1 = [0.1, -0.2, 0.05, 0.3];
    let w2 = [0.3, -0.6, 0.8, 0.2, -0.5, 0.4, 0.1, 0.7];
    let b2 = [0.05, -0.1];
    w.feeds.insert("x".into(), f32s(&[2, 3], &x));
    w.feeds
        .insert("y".into(), HostTensor::from_i32([2], y.to_vec()).unwrap());
    w.feeds.insert("w1".into(), f32s(&[3, 4], &w1));
    w.feeds.insert("b1".into(), f32s(&[4], &b1));
    w.feeds.insert("w2".into(), f32s(&[4, 2], &w2));
    w.feeds.insert("b2".into(), f32s(&[2], &b2));
    let lr = 0.01; // W1's learning rate.
    let step = step_of(&w, &Optimizer::sgd(lr));
    // The same step built on the f64 twin of the forward graph, fed the exact f64 values.
    let forward64 = Workload {
        graph: widen_to_f64(&w.graph).unwrap().graph,
        ..w.clone()
    };
    let step64 = step_of(&forward64, &Optimizer::sgd(lr));
    let mut feeds64 = widen_feeds(&w.feeds);
    for (name, shape, v) in [
        ("x", &[2, 3][..], &x[..]),
        ("w1", &[3, 4], &w1),
        ("b1", &[4], &b1),
        ("w2", &[4, 2], &w2),
        ("b2", &[2], &b2),
    ] {
        feeds64.insert(
            name.into(),
            HostTensor::from_f64(shape, v.to_vec()).unwrap(),
        );
    }
    assert!(step.state.is_empty());

    // By hand, in f64.
    let mut z1 = matmul(&x, &w1, 2, 3, 4);
    z1.iter_mut().enumerate().for_each(|(i, z)| *z += b1[i % 4]);
    assert!(
        z1.iter().all(|z| z.abs() > 0.1),
        "keep away from relu's kink"
    );
    let h: Vec<f64> = z1.iter().map(|&z| z.max(0.0)).collect();
    let mut logits = matmul(&h, &w2, 2, 4, 2);
    logits
        .iter_mut()
        .enumerate()
        .for_each(|(i, l)| *l += b2[i % 2]);
    let mut loss = 0.0;
    let mut dlogits = vec![0.0; 4];
    for i in 0..2 {
        let row = &logits[2 * i..2 * i + 2];
        let m = row[0].max(row[1]);
        let lse = m + ((row[0] - m).exp() + (row[1] - m).exp()).ln();
        loss += (lse - row[y[i] as usize]) / 2.0;
        for c in 0..2 {
            let p = (row[c] - lse).exp();
            let onehot = if c == y[i] as usize { 1.0 } else { 0.0 };
            dlogits[2 * i + c] = (p - onehot) / 2.0;
        }
    }
    let dw2 = matmul(&transpose(&h, 2, 4), &dlogits, 4, 2, 2);
    let db2: Vec<f64> = (0..2).map(|c| dlogits[c] + dlogits[2 + c]).collect();
    let dh = matmul(&dlogits, &transpose(&w2, 4, 2), 2, 2, 4);
    let dz1: Vec<f64> = dh
        .iter()
        .zip(&z1)
        .map(|(&d, &z)| if z > 0.0 { d } else { 0.0 })
        .collect();
    let dw1 = matmul(&transpose(&x, 2, 3), &dz1, 3, 2, 4);
    let db1: Vec<f64> = (0..4).map(|j| dz1[j] + dz1[4 + j]).collect();
    let expected: Vec<(&str, Vec<f64>)> = [
        ("w1", &w1[..], &dw1),
        ("b1", &b1[..], &db1),
        ("w2", &w2[..], &dw2),
        ("b2", &b2[..], &db2),
    ]
    .into_iter()
    .map(|(n, w, g)| (n, w.iter().zip(g).map(|(w, g)| w - lr * g).collect()))
    .collect();

    // One run of the f32 step graph, and of its f64 twin.
    let out = run(&step.graph, &w.feeds).unwrap();
    let got_loss = out.output("loss").unwrap().to_f64_vec()[0];
    assert!((got_loss - loss).abs() < 1e-6, "{got_loss} vs {loss}");
    assert_eq!(out.updates.len(), 4);
    let out64 = run(&step64.graph, &feeds64).unwrap();
    for (name, want) in &expected {
        let got = out.update(name).unwrap();
        assert_eq!(got.dtype(), DType::F32);
        let got64 = out64.update(name).unwrap().to_f64_vec();
        for (i, (&g, &e)) in got.to_f64_vec().iter().zip(want).enumerate() {
            assert!((g - e).abs() < 1e-6, "{name}[{i}]: {g} vs {e}");
            assert!(
                (got64[i] - e).abs() < 1e-12,
                "{name}[{i}] f64: {} vs {e}",
                got64[i]
            );
        }
        // The step really moved the parameter.
        let before = w.feeds[*name].to_f64_vec();
        assert!(want.iter().zip(&before).any(|(a, b)| (a - b).abs() > 1e-4));
    }
}

#[test]
fn w1_step_graph_gradients_check_at_benchmark_size() {
    let w = w1_mlp_small(7);
    let step = step_of(&w, &Optimizer::sgd(0.01));
    let params: Vec<_> = step.params.iter().map(|p| p.param).collect();
    let report = check_grads(&step.graph, step.loss, &params, &w.feeds, 1e-6).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.checks.len(), 6);
    // The step's own gradient nodes are the ones checked: differentiating again reuses them.
    let again = adjoint_autodiff::grad(step.graph.clone(), step.loss, &params).unwrap();
    for p in &step.params {
        assert_eq!(again.of(p.param), Some(p.grad), "{}", p.name);
    }
}

/// W3's structure (layernorm → matmul → gelu → matmul residual blocks, MSE) at test sizes.
fn w3_configs() -> [ResMlpConfig; 2] {
    [
        ResMlpConfig::tiny(),
        ResMlpConfig {
            rows: 8,
            width: 16,
            hidden: 32,
            blocks: 4,
        },
    ]
}

#[test]
fn w3_step_graph_gradients_check() {
    for (k, cfg) in w3_configs().iter().enumerate() {
        let w = resmlp_ln(cfg, 11 + k as u64);
        let step = step_of(&w, &Optimizer::adam(1e-3));
        let params: Vec<_> = step.params.iter().map(|p| p.param).collect();
        assert_eq!(params.len(), 6 * cfg.blocks);
        let feeds = step_feeds(&w, &step);
        let report = check_grads(&step.graph, step.loss, &params, &feeds, 1e-6).unwrap();
        assert!(report.passed(), "{cfg:?}\n{report}");
    }
}

/// Values of the step's gradient nodes at `feeds`, by parameter name.
fn gradient_values(graph: &adjoint_ir::Graph, step: &StepGraph, feeds: &Feeds) -> Vec<Vec<f64>> {
    let nodes: Vec<_> = step.params.iter().map(|p| p.grad).collect();
    eval_nodes(graph, feeds, &nodes)
        .unwrap()
        .iter()
        .map(|t| t.to_f64_vec())
        .collect()
}

#[test]
fn w3_adam_steps_follow_the_bias_corrected_formula() {
    let w = resmlp_ln(&ResMlpConfig::tiny(), 5);
    let (lr, b1, b2, eps) = (1e-3, 0.9, 0.999, 1e-8);
    // On the f64 twin of the forward graph, so that the formula can be compared tightly.
    let w = Workload {
        graph: widen_to_f64(&w.graph).unwrap().graph,
        feeds: widen_feeds(&w.feeds),
        ..w
    };
    let step = step_of(&w, &Optimizer::adam_with(lr, b1, b2, eps));
    let names: Vec<&str> = step.state.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"adam.step"));
    assert!(names.contains(&"a.w1.adam_m") && names.contains(&"a.w1.adam_v"));
    assert_eq!(step.state.len(), 1 + 2 * step.params.len());
    let mut feeds = step_feeds(&w, &step);
    let mut m: Vec<Vec<f64>> = step.params.iter().map(|_| vec![]).collect();
    let mut v = m.clone();
    for t in 1..=2 {
        let grads = gradient_values(&step.graph, &step, &feeds);
        let out = run(&step.graph, &feeds).unwrap();
        assert_eq!(
            out.update("adam.step").unwrap().to_f64_vec(),
            vec![t as f64]
        );
        for (i, p) in step.params.iter().enumerate() {
            let g = &grads[i];
            if m[i].is_empty() {
                m[i] = vec![0.0; g.len()];
                v[i] = vec![0.0; g.len()];
            }
            let old = feeds[&p.name].to_f64_vec();
            let new = out.update(&p.name).unwrap().to_f64_vec();
            for j in 0..g.len() {
                m[i][j] = b1 * m[i][j] + (1.0 - b1) * g[j];
                v[i][j] = b2 * v[i][j] + (1.0 - b2) * g[j] * g[j];
                let m_hat = m[i][j] / (1.0 - f64::powi(b1, t));
                let v_hat = v[i][j] / (1.0 - f64::powi(b2, t));
                let want = old[j] - lr * m_hat / (v_hat.sqrt() + eps);
                assert!(
                    (new[j] - want).abs() < 1e-12,
                    "step {t} {}[{j}]: {} vs {want}",
                    p.name,
                    new[j]
                );
            }
            let got_m = out.update(&format!("{}.adam_m", p.name)).unwrap();
            let got_v = out.update(&format!("{}.adam_v", p.name)).unwrap();
            for j in 0..g.len() {
                assert!((got_m.to_f64_vec()[j] - m[i][j]).abs() < 1e-15);
                assert!((got_v.to_f64_vec()[j] - v[i][j]).abs() < 1e-15);
            }
        }
        // Write every update back, as a runtime would, and take the next step.
        for (name, value) in out.updates {
            feeds.insert(name, value);
        }
    }
}

/// `loss = 0.5 · sum((w - c)²)`, whose gradient is `w - c`.
fn quadratic() -> (adjoint_ir::Graph, Feeds) {
    let b = Builder::new("quadratic");
    let w = b.parameter("w", DType::F64, [3]);
    let c = b.constant(DType::F64, [3], &[1.0, -2.0, 0.5]);
    let d = w - c;
    b.output("loss", (d * d).sum_all() * 0.5);
    let mut feeds = Feeds::new();
    feeds.insert(
        "w".into(),
        HostTensor::from_f64([3], vec![3.0, 0.0, -1.0]).unwrap(),
    );
    (b.finish(), feeds)
}

const C: [f64; 3] = [1.0, -2.0, 0.5];

/// Runs `steps` steps of `opt` on the quadratic, writing updates back; returns the `w` values
/// after each step.
fn train_quadratic(opt: &Optimizer, steps: usize, lr_feed: Option<f64>) -> Vec<Vec<f64>> {
    let (graph, mut feeds) = quadratic();
    let loss = graph.output("loss").unwrap();
    let w = graph.leaf("w").unwrap();
    let step = training_step(graph, loss, &[w], opt).unwrap();
    for (name, init) in &step.state {
        feeds.insert(name.clone(), init.clone());
    }
    if let (Some(name), Some(lr)) = (&step.lr_input, lr_feed) {
        feeds.insert(name.clone(), HostTensor::from_f64([], vec![lr]).unwrap());
    }
    let mut history = vec![];
    for _ in 0..steps {
        let out = run(&step.graph, &feeds).unwrap();
        for (name, value) in out.updates {
            feeds.insert(name, value);
        }
        history.push(feeds["w"].to_f64_vec());
    }
    history
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "{what}: {got:?} vs {want:?}");
    }
}

#[test]
fn momentum_and_nesterov_follow_their_formulas() {
    let (lr, mu) = (0.1, 0.9);
    for nesterov in [false, true] {
        let mut opt = Optimizer::momentum(lr, mu);
        if nesterov {
            opt = opt.with_nesterov();
        }
        let got = train_quadratic(&opt, 3, None);
        let mut w = [3.0, 0.0, -1.0];
        let mut buf = [0.0; 3];
        for (t, got_t) in got.iter().enumerate() {
            for j in 0..3 {
                let g = w[j] - C[j];
                buf[j] = mu * buf[j] + g;
                let dir = if nesterov { g + mu * buf[j] } else { buf[j] };
                w[j] -= lr * dir;
            }
            assert_close(got_t, &w, &format!("nesterov={nesterov} step {t}"));
        }
    }
}

#[test]
fn fed_learning_rate_weight_decay_and_clipping() {
    // SGD with a fed rate and L2 weight decay.
    let opt = Optimizer::sgd(LearningRate::input("lr")).with_weight_decay(0.1);
    let got = train_quadratic(&opt, 1, Some(0.25));
    let w0 = [3.0, 0.0, -1.0];
    let want: Vec<f64> = (0..3)
        .map(|j| w0[j] - 0.25 * ((w0[j] - C[j]) + 0.1 * w0[j]))
        .collect();
    assert_close(&got[0], &want, "sgd + weight decay");

    // Global-norm clipping: g = (2, 2, -1.5), ‖g‖ = sqrt(10.25) > 1.
    let got = train_quadratic(&Optimizer::sgd(1.0).with_clip_global_norm(1.0), 1, None);
    let g: Vec<f64> = (0..3).map(|j| w0[j] - C[j]).collect();
    let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
    let scale = 1.0 / (norm + 1e-6);
    let want: Vec<f64> = (0..3).map(|j| w0[j] - scale * g[j]).collect();
    assert_close(&got[0], &want, "clipped");
    // Below the threshold, clipping changes nothing.
    let got = train_quadratic(&Optimizer::sgd(1.0).with_clip_global_norm(100.0), 1, None);
    let want: Vec<f64> = (0..3).map(|j| w0[j] - g[j]).collect();
    assert_close(&got[0], &want, "not clipped");

    // AdamW: decoupled decay on the old weights; first step m̂ = g, v̂ = g².
    let (lr, wd) = (0.01, 0.5);
    let got = train_quadratic(&Optimizer::adam(lr).with_weight_decay(wd), 1, None);
    let want: Vec<f64> = (0..3)
        .map(|j| w0[j] - lr * wd * w0[j] - lr * g[j] / (g[j].abs() + 1e-8))
        .collect();
    assert_close(&got[0], &want, "adamw");
}

#[test]
fn step_errors_are_clear() {
    let b = Builder::new("bad");
    let x = b.input("x", DType::F32, [2]);
    let w = b.parameter("w", DType::F32, [2]);
    let taken = b.parameter("w.momentum", DType::F32, [5]);
    let loss = (x * w).sum_all() + taken.sum_all();
    let (x, w, loss) = (x.id(), w.id(), loss.id());
    let g = b.finish();
    let e = training_step(g.clone(), loss, &[x], &Optimizer::sgd(0.1)).unwrap_err();
    assert!(matches!(e, GradError::NotAParameter { .. }), "{e}");
    assert!(e.to_string().contains("\"x\""), "{e}");
    let e = training_step(g, loss, &[w], &Optimizer::momentum(0.1, 0.9)).unwrap_err();
    assert!(matches!(e, GradError::NameTaken { .. }), "{e}");
    assert!(e.to_string().contains("w.momentum"), "{e}");
}

/// `loss = sum(w · c)` in f32 from `w = 0`: the gradient is the constant `c`, so every exact
/// Adam update is `lr · c / (|c| + ε)` (the bias-corrected moments are `c` and `c²` at every
/// step) and after `t` steps `w = -t · lr · c / (|c| + ε)`.
#[test]
fn f32_adam_updates_match_the_exact_bias_corrected_value() {
    let b = Builder::new("linear");
    let c = [1.0, -2.0, 0.5, 3e-3];
    let w = b.parameter("w", DType::F32, [4]);
    let cs = b.constant(DType::F32, [4], &c);
    let l = (w * cs).sum_all();
    b.output("loss", l);
    let loss = l.id();
    let graph = b.finish();
    let params = float_parameters(&graph);
    let lr = 0.1;
    let step = training_step(graph, loss, &params, &Optimizer::adam(lr)).unwrap();
    let counter = step.state.iter().find(|(n, _)| n == "adam.step").unwrap();
    assert_eq!(counter.1.dtype(), DType::F64);
    let mut feeds: Feeds = step.state.iter().cloned().collect();
    feeds.insert("w".into(), f32s(&[4], &[0.0; 4]));
    for t in 1..=3 {
        let out = run(&step.graph, &feeds).unwrap();
        for (name, value) in out.updates {
            feeds.insert(name, value);
        }
        assert_eq!(feeds["adam.step"].to_f64_vec(), vec![t as f64]);
        let got = feeds["w"].to_f64_vec();
        for (j, &cj) in c.iter().enumerate() {
            // The constant is rounded to f32 in the graph; the rest is exact.
            let cj = cj as f32 as f64;
            let want = -(t as f64) * lr * cj / (cj.abs() + 1e-8);
            // f32 rounding of a few operations per step: a few 1e-8 relative. Bias corrections
            // computed in f32 would be off by 6e-6 relative per step.
            assert!(
                (got[j] - want).abs() <= 5e-7 * want.abs(),
                "step {t} w[{j}]: {} vs exact {want} (relative error {:.1e})",
                got[j],
                (got[j] - want).abs() / want.abs()
            );
        }
    }
}
