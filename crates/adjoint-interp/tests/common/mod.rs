//! Helpers shared by the interpreter's tests: building feeds, running a one-output graph, and
//! comparing floats exactly (NaN equal to NaN, `-0` distinct from `+0`) or within a tolerance.

#![allow(dead_code)]

use adjoint_interp::run;
use adjoint_ir::{Builder, Feeds, HostTensor, Tensor};

/// Feeds from `(name, tensor)` pairs.
pub fn feeds(items: Vec<(&str, HostTensor)>) -> Feeds {
    items.into_iter().map(|(n, t)| (n.to_string(), t)).collect()
}

/// Declares `y` the output "y", runs the graph with `feeds` and returns its value.
pub fn eval(b: &Builder, y: Tensor<'_>, feeds: &Feeds) -> HostTensor {
    b.output("y", y);
    let graph = b.graph().clone();
    run(&graph, feeds)
        .unwrap_or_else(|e| panic!("run failed: {e}"))
        .output("y")
        .expect("output y")
        .clone()
}

pub fn f32s(shape: &[usize], v: &[f32]) -> HostTensor {
    HostTensor::from_f32(shape, v.to_vec()).unwrap()
}

pub fn f64s(shape: &[usize], v: &[f64]) -> HostTensor {
    HostTensor::from_f64(shape, v.to_vec()).unwrap()
}

pub fn i32s(shape: &[usize], v: &[i32]) -> HostTensor {
    HostTensor::from_i32(shape, v.to_vec()).unwrap()
}

pub fn bools(shape: &[usize], v: &[bool]) -> HostTensor {
    HostTensor::from_bool(shape, v.to_vec()).unwrap()
}

/// `got` equals `want` element for element: same bits, except that any NaN matches any NaN.
pub fn assert_f32_exact(got: &HostTensor, want: &[f32]) {
    let g = got
        .as_f32()
        .unwrap_or_else(|| panic!("expected f32, got {got:?}"));
    assert_eq!(g.len(), want.len(), "element count of {got:?}");
    for (i, (&a, &b)) in g.iter().zip(want).enumerate() {
        let same = (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits();
        assert!(same, "element {i}: got {a:?}, want {b:?} (in {got:?})");
    }
}

/// As [`assert_f32_exact`] for f64.
pub fn assert_f64_exact(got: &HostTensor, want: &[f64]) {
    let g = got
        .as_f64()
        .unwrap_or_else(|| panic!("expected f64, got {got:?}"));
    assert_eq!(g.len(), want.len(), "element count of {got:?}");
    for (i, (&a, &b)) in g.iter().zip(want).enumerate() {
        let same = (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits();
        assert!(same, "element {i}: got {a:?}, want {b:?} (in {got:?})");
    }
}

/// Every element within `tol` (absolute plus relative) of `want`; NaN matches NaN, and
/// infinities must match exactly.
pub fn assert_close(got: &HostTensor, want: &[f64], tol: f64) {
    let g = got.to_f64_vec();
    assert_eq!(g.len(), want.len(), "element count of {got:?}");
    for (i, (&a, &b)) in g.iter().zip(want).enumerate() {
        let ok = if b.is_nan() {
            a.is_nan()
        } else if b.is_infinite() {
            a == b
        } else {
            (a - b).abs() <= tol * (1.0 + b.abs())
        };
        assert!(ok, "element {i}: got {a}, want {b} (tol {tol}) in {got:?}");
    }
}
