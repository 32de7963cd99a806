//! Shared helpers of the finite-difference tests.

#![allow(dead_code)]

use adjoint_autodiff::{check_grads, random_feeds, GradCheckReport};
use adjoint_ir::{Builder, Feeds, HostTensor, NodeId, Tensor};

/// `sum(y * r)` with `r` a fresh input of `y`'s type (fed random values), so that every element
/// of `y` gets a different adjoint.
pub fn weighted_sum(y: Tensor<'_>) -> Tensor<'_> {
    let name = format!("r{}", y.id().index());
    let r = y.builder().input(&name, y.dtype(), y.shape());
    (y * r).sum_all()
}

/// Builds a graph with `build` (which returns the loss and the leaves to differentiate), feeds
/// seeded random values (passed through `adjust` by name), checks the gradients in f64 against
/// finite differences and returns the report, asserting that the worst relative error is
/// below `tol`.
pub fn check_with(
    what: &str,
    seed: u64,
    tol: f64,
    build: impl for<'b> FnOnce(&'b Builder) -> (Tensor<'b>, Vec<Tensor<'b>>),
    adjust: impl Fn(&str, &mut Vec<f64>),
) -> GradCheckReport {
    let b = Builder::new(what);
    let (loss, wrt) = build(&b);
    let loss: NodeId = loss.id();
    let wrt: Vec<NodeId> = wrt.iter().map(|t| t.id()).collect();
    let graph = b.finish();
    let mut feeds = random_feeds(&graph, seed).unwrap();
    adjust_feeds(&mut feeds, adjust);
    let report =
        check_grads(&graph, loss, &wrt, &feeds, tol).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(report.passed(), "{what}:\n{report}");
    assert!(
        report.checks.iter().all(|c| c.compared > 0),
        "{what}: nothing compared"
    );
    report
}

/// [`check_with`] at tolerance 1e-6, values unchanged.
pub fn check(
    what: &str,
    seed: u64,
    build: impl for<'b> FnOnce(&'b Builder) -> (Tensor<'b>, Vec<Tensor<'b>>),
) -> GradCheckReport {
    check_with(what, seed, 1e-6, build, |_, _| {})
}

/// Replaces each float feed's values by `adjust(name, values)`.
pub fn adjust_feeds(feeds: &mut Feeds, adjust: impl Fn(&str, &mut Vec<f64>)) {
    for (name, t) in feeds.iter_mut() {
        if !t.dtype().is_float() {
            continue;
        }
        let mut v = t.to_f64_vec();
        adjust(name, &mut v);
        *t = HostTensor::from_f64_as(t.dtype(), t.shape().clone(), &v).unwrap();
    }
}

/// Maps values to `|v| + 0.5`: a domain away from 0 for log, sqrt, recip, div and pow.
pub fn positive(v: &mut [f64]) {
    v.iter_mut().for_each(|x| *x = x.abs() + 0.5);
}
