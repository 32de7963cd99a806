//! The mixed-precision policy and dynamic loss scaling, run on the interpreter.

use adjoint_autodiff::{
    apply_precision, loss_scale, training_step, training_step_with, LossScaling, MixedPrecision,
    Optimizer, Precision,
};
use adjoint_interp::run;
use adjoint_ir::{Builder, DType, Feeds, Graph, HostTensor, NodeId, Op, ReduceOp, Rng, UnaryOp};

/// A small classifier: layer norm, two linear layers with a GELU, cross-entropy.
fn classifier() -> (Graph, NodeId, Vec<NodeId>) {
    let b = Builder::new("classifier");
    let x = b.input("x", DType::F32, [8, 12]);
    let y = b.input("y", DType::I32, [8]);
    let gamma = b.parameter("gamma", DType::F32, [12]);
    let beta = b.parameter("beta", DType::F32, [12]);
    let w1 = b.parameter("w1", DType::F32, [12, 16]);
    let b1 = b.parameter("b1", DType::F32, [16]);
    let w2 = b.parameter("w2", DType::F32, [16, 4]);
    let h = x.layer_norm(gamma, beta, 1e-5);
    let h = (h.matmul(w1) + b1).gelu();
    let logits = h.matmul(w2);
    let loss = logits.cross_entropy(y);
    b.output("loss", loss);
    let params = [gamma, beta, w1, b1, w2].map(|t| t.id()).to_vec();
    let loss = loss.id();
    (b.finish(), loss, params)
}

fn feeds(g: &Graph, seed: u64) -> Feeds {
    let mut rng = Rng::new(seed);
    let mut f = Feeds::new();
    for &id in g.inputs().iter().chain(g.parameters()) {
        let name = g.leaf_name(id).unwrap().to_string();
        let ty = g.ty(id);
        let t = if name == "gamma" {
            HostTensor::from_f32(ty.shape.clone(), vec![1.0; 12]).unwrap()
        } else if ty.dtype == DType::I32 {
            HostTensor::random(ty, &mut rng, 4)
        } else {
            let v: Vec<f64> = (0..ty.shape.numel())
                .map(|_| rng.uniform_in(-0.5, 0.5))
                .collect();
            HostTensor::from_f64_as(ty.dtype, ty.shape.clone(), &v).unwrap()
        };
        f.insert(name, t);
    }
    f
}

#[test]
fn the_policy_puts_products_in_16_bits_and_keeps_statistics_in_f32() {
    let (g, loss, _) = classifier();
    for (precision, low) in [(Precision::Bf16, DType::Bf16), (Precision::F16, DType::F16)] {
        let r = apply_precision(&g, precision, &[loss]).unwrap();
        let out = &r.graph;
        out.verify().unwrap();
        let (mut products, mut lows) = (0, 0);
        for id in out.node_ids() {
            let ty = out.ty(id);
            match out.op(id) {
                Op::MatMul => {
                    products += 1;
                    assert_eq!(ty.dtype, low);
                }
                Op::Reduce { op, .. } => {
                    assert_eq!(ty.dtype, DType::F32, "{op:?}");
                    assert_ne!(out.ty(out.operands(id)[0]).dtype, low, "{op:?}");
                }
                Op::Unary(UnaryOp::Exp | UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Recip) => {
                    assert_eq!(ty.dtype, DType::F32)
                }
                Op::Parameter { .. } | Op::Input { .. } => assert_ne!(ty.dtype, low),
                _ => {}
            }
            lows += usize::from(ty.dtype == low);
        }
        assert_eq!(products, 2);
        // The bias add and the GELU after the first product are 16-bit too.
        assert!(lows > 8, "{lows}");
        assert_eq!(out.ty(r.node(loss).unwrap()).dtype, DType::F32);
        assert!(!out.node_ids().any(|id| matches!(
            out.op(id),
            Op::Reduce {
                op: ReduceOp::Max,
                ..
            }
        ) && out.ty(id).dtype == low));
        // The loss is close to the f32 one.
        let f = feeds(&g, 1);
        let want = run(&g, &f).unwrap().output("loss").unwrap().to_f64_vec()[0];
        let got = run(out, &f).unwrap().output("loss").unwrap().to_f64_vec()[0];
        assert!(
            (got - want).abs() < 2e-2 * want.abs(),
            "{precision}: {got} vs {want}"
        );
    }
    // F32 is the identity.
    let same = apply_precision(&g, Precision::F32, &[loss]).unwrap();
    assert_eq!(
        adjoint_ir::text::print(&same.graph),
        adjoint_ir::text::print(&g)
    );
}

/// Runs `steps` training steps of `step` on the interpreter; the losses and the final feeds.
fn train(step: &adjoint_autodiff::StepGraph, mut f: Feeds, steps: usize) -> (Vec<f64>, Feeds) {
    for (name, t) in step.initial_state() {
        f.entry(name).or_insert(t);
    }
    let mut losses = Vec::new();
    for _ in 0..steps {
        let out = run(&step.graph, &f).unwrap();
        losses.push(out.output("loss").unwrap().to_f64_vec()[0]);
        for (name, t) in &out.updates {
            f.insert(name.clone(), t.clone());
        }
    }
    (losses, f)
}

#[test]
fn bf16_training_keeps_f32_master_weights_and_tracks_f32() {
    let (g, loss, params) = classifier();
    let opt = Optimizer::adam(0.01);
    let wide = training_step(g.clone(), loss, &params, &opt).unwrap();
    let low = training_step_with(
        g.clone(),
        loss,
        &params,
        &opt,
        &MixedPrecision::new(Precision::Bf16),
    )
    .unwrap();
    for p in &low.params {
        assert_eq!(low.graph.ty(p.param).dtype, DType::F32, "{}", p.name);
        assert_eq!(low.graph.ty(p.update).dtype, DType::F32, "{}", p.name);
    }
    let (lw, _) = train(&wide, feeds(&g, 2), 30);
    let (ll, _) = train(&low, feeds(&g, 2), 30);
    assert!(ll[29] < 0.5 * ll[0], "{ll:?}");
    assert!(
        (ll[29] - lw[29]).abs() < 0.1 * lw[29].max(0.05),
        "{ll:?} vs {lw:?}"
    );
}

#[test]
fn f16_loss_scaling_skips_overflowing_steps_and_halves_the_scale() {
    let (g, loss, params) = classifier();
    // A scale so large that the scaled f16 gradients overflow: 2^40.
    let mixed = MixedPrecision {
        precision: Precision::F16,
        loss_scaling: Some(LossScaling {
            initial: 2f64.powi(40),
            growth_interval: 3,
        }),
    };
    let step =
        training_step_with(g.clone(), loss, &params, &Optimizer::adam(0.01), &mixed).unwrap();
    let mut f = feeds(&g, 3);
    for (name, t) in step.initial_state() {
        f.insert(name, t);
    }
    let start = f.clone();
    let out = run(&step.graph, &f).unwrap();
    assert_eq!(
        out.output(loss_scale::SKIPPED_OUTPUT).unwrap().to_f64_vec(),
        [1.0]
    );
    // Skipped: every parameter and optimizer state is unchanged, the scale halved.
    for (name, t) in &out.updates {
        if name == loss_scale::SCALE_PARAM {
            assert_eq!(t.to_f64_vec(), [2f64.powi(39)]);
        } else {
            assert_eq!(t, &start[name], "{name}");
        }
    }
    // Train on: the scale keeps halving until the gradients fit, then steps are taken, and
    // after 3 clean steps in a row the scale doubles.
    let mut scales = Vec::new();
    let mut skipped = 0;
    for _ in 0..40 {
        let out = run(&step.graph, &f).unwrap();
        skipped += out.output(loss_scale::SKIPPED_OUTPUT).unwrap().to_f64_vec()[0] as u32;
        for (name, t) in &out.updates {
            f.insert(name.clone(), t.clone());
        }
        scales.push(f[loss_scale::SCALE_PARAM].to_f64_vec()[0]);
    }
    assert!(skipped > 5 && skipped < 40, "{skipped} {scales:?}");
    assert!(scales.windows(2).any(|w| w[1] == 2.0 * w[0]), "{scales:?}");
    assert_ne!(f["w1"], start["w1"]);
    assert_eq!(f["w1"].dtype(), DType::F32);
}
