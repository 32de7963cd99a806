//! The VJP of `all_reduce` across replicas: each replica differentiates its own loss, and the
//! gradients (which all-reduce the adjoint in the backward pass) must be those of the sum of
//! every replica's loss, checked by central finite differences of that sum (f64, replicas as
//! threads of one process).

use adjoint_autodiff::grad;
use adjoint_interp::run_with;
use adjoint_ir::{AllReduceKind, Builder, Feeds, Graph, HostTensor, InProcess, NodeId};

const REPLICAS: usize = 2;
const N: usize = 4;

/// `loss = sum(r * tanh(all_reduce(x * a)))`, and its gradient with respect to `x`.
fn graph(kind: AllReduceKind) -> (Graph, NodeId) {
    let b = Builder::new("all_reduce_grad");
    let x = b.input("x", adjoint_ir::DType::F64, [N]);
    let a = b.input("a", adjoint_ir::DType::F64, [N]);
    let r = b.input("r", adjoint_ir::DType::F64, [N]);
    let loss = (r * (x * a).all_reduce(kind, REPLICAS).tanh()).sum_all();
    b.output("loss", loss);
    let (loss, x) = (loss.id(), x.id());
    let g = grad(b.finish(), loss, &[x]).unwrap();
    let dx = g.of(x).unwrap();
    (g.graph, dx)
}

/// Replica `i`'s feeds, with `x` given.
fn feeds(i: usize, x: &[f64]) -> Feeds {
    let vec = |f: &dyn Fn(usize) -> f64| {
        HostTensor::from_f64([N], (0..N).map(f).collect::<Vec<_>>()).unwrap()
    };
    let mut feeds = Feeds::new();
    feeds.insert("x".into(), HostTensor::from_f64([N], x.to_vec()).unwrap());
    feeds.insert("a".into(), vec(&|j| 0.3 + 0.2 * (i + j) as f64));
    feeds.insert(
        "r".into(),
        vec(&|j| (1.0 + j as f64 * 0.7 - i as f64).sin()),
    );
    feeds
}

/// Every replica's loss and gradient, each replica given its own `x`.
fn run(g: &Graph, xs: &[Vec<f64>]) -> Vec<(f64, Vec<f64>)> {
    let group = InProcess::group(REPLICAS);
    std::thread::scope(|s| {
        let jobs: Vec<_> = group
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let x = &xs[i];
                s.spawn(move || {
                    let e = run_with(g, &feeds(i, x), Some(c)).unwrap();
                    let loss = e.output("loss").unwrap().to_f64_vec()[0];
                    (loss, e.output("x.grad").unwrap().to_f64_vec())
                })
            })
            .collect();
        jobs.into_iter().map(|j| j.join().unwrap()).collect()
    })
}

#[test]
fn gradients_are_those_of_the_sum_of_every_replicas_loss() {
    for kind in AllReduceKind::ALL {
        let (g, _) = graph(kind);
        let xs: Vec<Vec<f64>> = (0..REPLICAS)
            .map(|i| (0..N).map(|j| ((i * N + j) as f64 * 0.9).cos()).collect())
            .collect();
        let analytic = run(&g, &xs);
        let h = 1e-6;
        let mut worst = 0.0f64;
        for i in 0..REPLICAS {
            for j in 0..N {
                let total = |d: f64| -> f64 {
                    let mut p = xs.clone();
                    p[i][j] += d;
                    run(&g, &p).iter().map(|(l, _)| l).sum()
                };
                let fd = (total(h) - total(-h)) / (2.0 * h);
                let an = analytic[i].1[j];
                worst = worst.max((fd - an).abs() / (1.0 + fd.abs()));
            }
        }
        assert!(worst < 1e-7, "{kind:?}: worst relative error {worst}");
    }
}
