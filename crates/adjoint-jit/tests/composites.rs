//! Every composite builder (and the graphs autodiff makes of them), compiled and compared with
//! the interpreter in f32 and f64, fused and unfused, on one and two threads.

mod common;

use adjoint_ir::{Builder, DType};
use common::{check_graph, random_feeds};

#[test]
fn activations_and_normalizations() {
    for d in [DType::F32, DType::F64] {
        let b = Builder::new(&format!("composites_{d}"));
        let x = b.input("x", d, [5, 9]);
        b.output("relu", x.relu());
        b.output("sigmoid", x.sigmoid());
        b.output("gelu", x.gelu());
        b.output("square", x.square());
        b.output("softmax_last", x.softmax(-1));
        b.output("softmax_first", x.softmax(0));
        b.output("log_softmax", x.log_softmax(-1));
        b.output("logsumexp", x.logsumexp(&[-1]));
        b.output("logsumexp_all", x.logsumexp(&[0, 1]));
        b.output("mean", x.mean(&[0]));
        b.output("var", x.var(&[-1]));
        let gamma = b.input("gamma", d, [9]);
        let beta = b.input("beta", d, [9]);
        b.output("layer_norm", x.layer_norm(gamma, beta, 1e-5));
        let g = b.finish();
        check_graph(&g, &random_feeds(&g, 11, 10));
    }
}

#[test]
fn losses() {
    for d in [DType::F32, DType::F64] {
        let b = Builder::new(&format!("losses_{d}"));
        let logits = b.input("logits", d, [6, 5]);
        // Labels in 0..6: some are out of range (5) and select no logit.
        let labels = b.input("labels", DType::I32, [6]);
        b.output("cross_entropy", logits.cross_entropy(labels));
        let target = b.input("target", d, [6, 5]);
        b.output("mse", logits.mse(target));
        let g = b.finish();
        check_graph(&g, &random_feeds(&g, 12, 6));
    }
}

#[test]
fn gradients_of_composites() {
    for d in [DType::F32, DType::F64] {
        let b = Builder::new(&format!("grads_{d}"));
        let x = b.parameter("x", d, [4, 7]);
        let gamma = b.parameter("gamma", d, [7]);
        let beta = b.parameter("beta", d, [7]);
        let labels = b.input("labels", DType::I32, [4]);
        let h = x.layer_norm(gamma, beta, 1e-5).gelu() + x.sigmoid() * x.tanh();
        let loss = h.softmax(-1).log_softmax(0).cross_entropy(labels) + x.var(&[0]).mean(&[0]);
        b.output("loss", loss);
        let (wrt, loss) = ([x.id(), gamma.id(), beta.id()], loss.id());
        let grads = adjoint_autodiff::grad(b.finish(), loss, &wrt).unwrap();
        check_graph(&grads.graph, &random_feeds(&grads.graph, 13, 4));
    }
}

/// The saturating composites and their gradients at extreme inputs (where the old sigmoid's
/// gradient was NaN): the JIT agrees with the interpreter, infinities and NaN included.
#[test]
fn saturating_composites_and_gradients_at_extreme_inputs() {
    let points = [
        f64::NEG_INFINITY,
        -1e4,
        -1000.0,
        -100.0,
        -80.0,
        -10.0,
        0.0,
        10.0,
        80.0,
        100.0,
        1000.0,
        1e4,
        f64::INFINITY,
        3.0,
    ];
    for d in [DType::F32, DType::F64] {
        let b = Builder::new(&format!("extremes_{d}"));
        let x = b.parameter("x", d, [2, 7]);
        let y = x.sigmoid() + x.softplus() * 0.5 - x.log_sigmoid() * 0.25;
        // GELU is NaN at -inf (as PyTorch's formula) and a softmax row with +inf is NaN: feed
        // them the points without those.
        let above = x.maximum(x.scalar_like(-1e4));
        let below = x.minimum(x.scalar_like(1e4));
        let z = above.gelu() + below.softmax_or_zeros(-1);
        b.output("y", y);
        b.output("z", z);
        // A row that is all -inf: zeros.
        let masked = b.constant(d, [1, 3], &[f64::NEG_INFINITY; 3]);
        b.output("empty_row", masked.softmax_or_zeros(-1));
        let loss = (y + z).sum_all();
        let (loss, xid) = (loss.id(), x.id());
        let grads = adjoint_autodiff::grad(b.finish(), loss, &[xid]).unwrap();
        let mut feeds = adjoint_ir::Feeds::new();
        let t = adjoint_ir::HostTensor::from_f64_as(d, [2, 7], &points).unwrap();
        feeds.insert("x".into(), t);
        let want = adjoint_interp::run(&grads.graph, &feeds).unwrap();
        assert_eq!(want.output("empty_row").unwrap().to_f64_vec(), [0.0; 3]);
        let dx = want.output("x.grad").unwrap().to_f64_vec();
        let y = want.output("y").unwrap().to_f64_vec();
        let z = want.output("z").unwrap().to_f64_vec();
        for (i, g) in dx.iter().enumerate() {
            if y[i].is_finite() && z[i].is_finite() {
                assert!(g.is_finite(), "{d}: x.grad[{i}] = {g} at x = {}", points[i]);
            }
        }
        check_graph(&grads.graph, &feeds);
    }
}
