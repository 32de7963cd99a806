//! Finite-difference checks of composite builders (softmax cross-entropy, layer norm, GELU,
//! logsumexp, a causal attention head) and of a Hessian-vector product.

mod common;

use adjoint_autodiff::{append_grad, append_hvp, random_feeds};
use adjoint_interp::eval_nodes;
use adjoint_ir::{Builder, DType, HostTensor, Tensor};
use common::{check, check_with, positive, weighted_sum};

#[test]
fn softmax_cross_entropy() {
    check("cross_entropy", 1, |b| {
        let logits = b.parameter("logits", DType::F64, [4, 5]);
        let y = b.input("y", DType::I32, [4]);
        (logits.cross_entropy(y), vec![logits])
    });
    check("softmax", 2, |b| {
        let x = b.parameter("x", DType::F64, [3, 4]);
        (weighted_sum(x.softmax(-1)), vec![x])
    });
    check("log_softmax along axis 0", 3, |b| {
        let x = b.parameter("x", DType::F64, [3, 4]);
        (weighted_sum(x.log_softmax(0)), vec![x])
    });
}

#[test]
fn layer_norm() {
    check("layer_norm", 4, |b| {
        let x = b.parameter("x", DType::F64, [3, 6]);
        let gamma = b.parameter("gamma", DType::F64, [6]);
        let beta = b.parameter("beta", DType::F64, [6]);
        (
            weighted_sum(x.layer_norm(gamma, beta, 1e-5)),
            vec![x, gamma, beta],
        )
    });
}

#[test]
fn gelu_and_friends() {
    check("gelu", 5, |b| {
        let x = b.parameter("x", DType::F64, [4, 5]);
        (weighted_sum(x.gelu()), vec![x])
    });
    check("sigmoid", 6, |b| {
        let x = b.parameter("x", DType::F64, [7]);
        (weighted_sum(x.sigmoid()), vec![x])
    });
    check_with(
        "var and mean",
        7,
        1e-6,
        |b| {
            let x = b.parameter("x", DType::F64, [3, 4]);
            (
                weighted_sum(x.var(&[1]).sqrt() + x.mean(&[0]).sum_all()),
                vec![x],
            )
        },
        |_, _| {},
    );
}

#[test]
fn logsumexp() {
    check("logsumexp last axis", 8, |b| {
        let x = b.parameter("x", DType::F64, [3, 5]);
        (weighted_sum(x.logsumexp(&[1])), vec![x])
    });
    check("logsumexp over all axes", 9, |b| {
        let x = b.parameter("x", DType::F64, [2, 3, 2]);
        (x.logsumexp(&[0, 1, 2]), vec![x])
    });
}

/// One causal attention head over `x` `[..., T, d]`: `softmax(mask(q kᵀ / sqrt(dh))) v` with
/// the future masked by `select` with a large negative number.
fn causal_head<'b>(x: Tensor<'b>, wq: Tensor<'b>, wk: Tensor<'b>, wv: Tensor<'b>) -> Tensor<'b> {
    let b = x.builder();
    let s = x.shape();
    let t = s.dim(s.rank() - 2);
    let dh = wq.shape().dim(1);
    let (q, k, v) = (x.matmul(wq), x.matmul(wk), x.matmul(wv));
    let scores = q.matmul(k.transpose(-1, -2)) * (1.0 / (dh as f64).sqrt());
    let row = b.iota(DType::I32, [t, t], 0);
    let col = b.iota(DType::I32, [t, t], 1);
    let visible = col.le(row);
    let masked = visible.select(scores, scores.scalar_like(-1e9));
    masked.softmax(-1).matmul(v)
}

#[test]
fn causal_attention_head() {
    check("attention head [T, d]", 10, |b| {
        let x = b.parameter("x", DType::F64, [4, 6]);
        let wq = b.parameter("wq", DType::F64, [6, 3]);
        let wk = b.parameter("wk", DType::F64, [6, 3]);
        let wv = b.parameter("wv", DType::F64, [6, 3]);
        (
            weighted_sum(causal_head(x, wq, wk, wv)),
            vec![x, wq, wk, wv],
        )
    });
    check("attention head, batched [B, T, d]", 11, |b| {
        let x = b.parameter("x", DType::F64, [2, 3, 4]);
        let wq = b.parameter("wq", DType::F64, [4, 2]);
        let wk = b.parameter("wk", DType::F64, [4, 2]);
        let wv = b.parameter("wv", DType::F64, [4, 2]);
        (
            weighted_sum(causal_head(x, wq, wk, wv)),
            vec![x, wq, wk, wv],
        )
    });
}

#[test]
fn attention_masks_the_future() {
    // The first position attends only to itself: its output cannot depend on later tokens, so
    // the gradient of output row 0 with respect to x rows 1.. is exactly zero.
    let b = Builder::new("mask");
    let x = b.parameter("x", DType::F64, [3, 2]);
    let w = b.parameter("w", DType::F64, [2, 2]);
    let out = causal_head(x, w, w, w);
    let loss = out.slice(0, 0, 1, 1).sum_all();
    let dx = append_grad(&b, loss.id(), &[x.id()]).unwrap()[0];
    let graph = b.finish();
    let feeds = random_feeds(&graph, 3).unwrap();
    let v = eval_nodes(&graph, &feeds, &[dx]).unwrap()[0].to_f64_vec();
    assert!(v[..2].iter().any(|&g| g != 0.0));
    assert_eq!(&v[2..], &[0.0; 4]);
}

/// A small tanh MLP loss with its parameters `w1 [3,4]`, `w2 [4,2]` and data.
fn tanh_mlp(b: &Builder) -> (Tensor<'_>, Vec<Tensor<'_>>) {
    let x = b.input("x", DType::F64, [5, 3]);
    let t = b.input("t", DType::F64, [5, 2]);
    let w1 = b.parameter("w1", DType::F64, [3, 4]);
    let w2 = b.parameter("w2", DType::F64, [4, 2]);
    let loss = x.matmul(w1).tanh().matmul(w2).tanh().mse(t);
    (loss, vec![w1, w2])
}

#[test]
fn tanh_mlp_gradients() {
    check("tanh mlp", 12, tanh_mlp);
}

#[test]
fn hessian_vector_product_matches_finite_differences_of_the_gradient() {
    let b = Builder::new("hvp");
    let (loss, params) = tanh_mlp(&b);
    let vs: Vec<Tensor<'_>> = params
        .iter()
        .map(|p| {
            let name = format!("v.{}", p.builder().graph().leaf_name(p.id()).unwrap());
            b.input(&name, DType::F64, p.shape())
        })
        .collect();
    let wrt: Vec<_> = params.iter().map(|t| t.id()).collect();
    let vids: Vec<_> = vs.iter().map(|t| t.id()).collect();
    let grads = append_grad(&b, loss.id(), &wrt).unwrap();
    let hv = append_hvp(&b, loss.id(), &wrt, &vids).unwrap();
    let graph = b.finish();
    graph.verify().unwrap();
    let feeds = random_feeds(&graph, 21).unwrap();

    let hv_values: Vec<Vec<f64>> = eval_nodes(&graph, &feeds, &hv)
        .unwrap()
        .iter()
        .map(|t| t.to_f64_vec())
        .collect();
    // (∇L(w + h v) - ∇L(w - h v)) / 2h, with a Richardson step.
    let grad_at = |t: f64| -> Vec<Vec<f64>> {
        let mut moved = feeds.clone();
        for p in ["w1", "w2"] {
            let w = feeds[p].to_f64_vec();
            let v = feeds[&format!("v.{p}")].to_f64_vec();
            let m: Vec<f64> = w.iter().zip(&v).map(|(a, d)| a + t * d).collect();
            moved.insert(
                p.into(),
                HostTensor::from_f64(feeds[p].shape().clone(), m).unwrap(),
            );
        }
        eval_nodes(&graph, &moved, &grads)
            .unwrap()
            .iter()
            .map(|t| t.to_f64_vec())
            .collect()
    };
    let central = |h: f64| -> Vec<Vec<f64>> {
        let (p, m) = (grad_at(h), grad_at(-h));
        p.iter()
            .zip(&m)
            .map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y) / (2.0 * h)).collect())
            .collect()
    };
    let h = 1e-4;
    let (coarse, fine) = (central(h), central(h / 2.0));
    let mut worst: f64 = 0.0;
    for (k, hv_k) in hv_values.iter().enumerate() {
        assert_eq!(hv_k.len(), fine[k].len());
        for (i, &a) in hv_k.iter().enumerate() {
            let n = (4.0 * fine[k][i] - coarse[k][i]) / 3.0;
            let err = (a - n).abs() / a.abs().max(n.abs()).max(1e-6);
            worst = worst.max(err);
        }
    }
    assert!(worst < 1e-5, "worst relative error {worst:e}");
    assert!(hv_values.iter().flatten().any(|&v| v.abs() > 1e-3));
}

#[test]
fn positive_domains_compose() {
    // log(sqrt(x) + 1/x) mixes three rules whose domain is x > 0.
    check_with(
        "log sqrt recip",
        13,
        1e-6,
        |b| {
            let x = b.parameter("x", DType::F64, [6]);
            (weighted_sum((x.sqrt() + x.recip()).log()), vec![x])
        },
        |_, v| positive(v),
    );
}
