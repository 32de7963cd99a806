//! The documented conventions at kinks and ties (docs/autodiff.md), checked on exact values.

use adjoint_autodiff::grad;
use adjoint_interp::eval_nodes;
use adjoint_ir::{Builder, DType, Feeds, HostTensor, Tensor};

/// Gradients of `build(leaves)` at the given leaf values (f64), one vector per leaf.
fn gradients(
    leaves: &[(&str, &[usize], &[f64])],
    build: impl for<'b> FnOnce(&[Tensor<'b>]) -> Tensor<'b>,
) -> Vec<Vec<f64>> {
    let b = Builder::new("convention");
    let ts: Vec<Tensor<'_>> = leaves
        .iter()
        .map(|(name, shape, _)| b.parameter(name, DType::F64, *shape))
        .collect();
    let loss = build(&ts).id();
    let wrt: Vec<_> = ts.iter().map(|t| t.id()).collect();
    let grads = grad(b.finish(), loss, &wrt).unwrap();
    let mut feeds = Feeds::new();
    for (name, shape, values) in leaves {
        let t = HostTensor::from_f64(*shape, values.to_vec()).unwrap();
        feeds.insert(name.to_string(), t);
    }
    eval_nodes(&grads.graph, &feeds, &grads.nodes())
        .unwrap()
        .iter()
        .map(|t| t.to_f64_vec())
        .collect()
}

#[test]
fn abs_and_sign_at_zero() {
    let g = gradients(&[("x", &[3], &[-2.0, 0.0, 3.0])], |t| t[0].abs().sum_all());
    assert_eq!(g[0], vec![-1.0, 0.0, 1.0]);
    let g = gradients(&[("x", &[3], &[-2.0, 0.0, 3.0])], |t| {
        (t[0].sign() * 5.0 + t[0]).sum_all()
    });
    assert_eq!(
        g[0],
        vec![1.0, 1.0, 1.0],
        "sign adds nothing, even at its jump"
    );
}

#[test]
fn max_and_min_split_ties_half_half() {
    let leaves: [(&str, &[usize], &[f64]); 2] =
        [("a", &[3], &[1.0, 2.0, 5.0]), ("b", &[3], &[3.0, 2.0, 4.0])];
    let g = gradients(&leaves, |t| t[0].maximum(t[1]).sum_all());
    assert_eq!(g[0], vec![0.0, 0.5, 1.0]);
    assert_eq!(g[1], vec![1.0, 0.5, 0.0]);
    let g = gradients(&leaves, |t| t[0].minimum(t[1]).sum_all());
    assert_eq!(g[0], vec![1.0, 0.5, 0.0]);
    assert_eq!(g[1], vec![0.0, 0.5, 1.0]);
    // max(x, x) = x keeps its gradient exactly.
    let g = gradients(&[("x", &[2], &[1.5, -2.0])], |t| {
        t[0].maximum(t[0]).sum_all()
    });
    assert_eq!(g[0], vec![1.0, 1.0]);
}

#[test]
fn relu_at_zero_is_one_half() {
    let g = gradients(&[("x", &[4], &[-1.0, 0.0, 2.0, -0.0])], |t| {
        t[0].relu().sum_all()
    });
    assert_eq!(g[0], vec![0.0, 0.5, 1.0, 0.5]);
}

#[test]
fn reduce_max_divides_among_tied_maxima() {
    let x: &[f64] = &[
        1.0, 3.0, 3.0, 2.0, 7.0, 7.0, 7.0, 0.0, 4.0, -1.0, -2.0, -3.0,
    ];
    let g = gradients(&[("x", &[3, 4], x)], |t| {
        let w = t[0].builder().constant(DType::F64, [3], &[1.0, 6.0, 2.0]);
        (t[0].max(&[1]) * w).sum_all()
    });
    let third = 6.0 / 3.0;
    assert_eq!(
        g[0],
        vec![0.0, 0.5, 0.5, 0.0, third, third, third, 0.0, 2.0, 0.0, 0.0, 0.0]
    );
}

#[test]
fn pow_at_a_zero_base() {
    // d(a^b)/db = a^b ln a is defined as 0 where a <= 0 (not NaN); d/da = b a^(b-1).
    let leaves: [(&str, &[usize], &[f64]); 2] = [
        ("a", &[4], &[0.0, 0.0, 2.0, -2.0]),
        ("b", &[4], &[2.0, 1.0, 3.0, 2.0]),
    ];
    let g = gradients(&leaves, |t| t[0].pow(t[1]).sum_all());
    assert_eq!(g[0], vec![0.0, 1.0, 12.0, -4.0]);
    assert_eq!(g[1][..2], [0.0, 0.0]);
    assert!((g[1][2] - 8.0 * 2f64.ln()).abs() < 1e-12);
    assert_eq!(g[1][3], 0.0);
}

#[test]
fn casts_pass_float_gradients_and_block_integer_ones() {
    // f64 -> f32 -> (times r) : the adjoint is cast back to f64.
    let b = Builder::new("cast");
    let x = b.parameter("x", DType::F64, [3]);
    let r = b.constant(DType::F32, [3], &[0.5, -2.0, 4.0]);
    let through_int = x.cast(DType::I32).cast(DType::F64);
    let loss = (x.cast(DType::F32) * r).sum_all().cast(DType::F64) + through_int.sum_all();
    let (loss, xid) = (loss.id(), x.id());
    let grads = grad(b.finish(), loss, &[xid]).unwrap();
    let dx = grads.of(xid).unwrap();
    assert_eq!(grads.graph.ty(dx).to_string(), "f64[3]");
    let mut feeds = Feeds::new();
    feeds.insert(
        "x".into(),
        HostTensor::from_f64([3], vec![1.25, 2.5, -3.75]).unwrap(),
    );
    let v = eval_nodes(&grads.graph, &feeds, &[dx]).unwrap();
    assert_eq!(v[0].to_f64_vec(), vec![0.5, -2.0, 4.0]);
}
