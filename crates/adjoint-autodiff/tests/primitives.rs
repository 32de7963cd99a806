//! A finite-difference check (f64, relative error below 1e-6) of the VJP rule of every
//! primitive, at several shapes, including broadcasting and batched matmul.

mod common;

use adjoint_autodiff::grad;
use adjoint_ir::{AllReduceKind, Builder, DType, Feeds, HostTensor, SliceRange, Tensor, UnaryOp};
use common::{check, check_with, positive, weighted_sum};

const SHAPES: [&[usize]; 3] = [&[], &[5], &[2, 3, 4]];

fn unary_case(u: UnaryOp, shape: &[usize], seed: u64) {
    let needs_positive = matches!(u, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Recip);
    check_with(
        &format!("{} {shape:?}", u.name()),
        seed,
        1e-6,
        |b| {
            let x = b.parameter("x", DType::F64, shape);
            (weighted_sum(x.try_unary(u).unwrap()), vec![x])
        },
        |name, v| {
            if needs_positive && name == "x" {
                positive(v)
            }
        },
    );
}

#[test]
fn unary_ops() {
    // stop_gradient has no gradient by definition, which finite differences do not see: it has
    // its own test below.
    let differentiable = UnaryOp::ALL
        .into_iter()
        .filter(|&u| u != UnaryOp::StopGradient);
    for (i, u) in differentiable.enumerate() {
        for (j, shape) in SHAPES.iter().enumerate() {
            unary_case(u, shape, (10 * i + j) as u64);
        }
    }
}

#[test]
fn stop_gradient_passes_values_and_no_gradient() {
    let b = Builder::new("stop");
    let x = b.parameter("x", DType::F64, [2, 3]);
    // d/dx (x · stop(x)) = stop(x) = x: only the first factor carries a gradient.
    let loss = (x * x.stop_gradient()).sum_all();
    b.output("loss", loss);
    let g = b.finish();
    let (x, loss) = (g.leaf("x").unwrap(), g.output("loss").unwrap());
    let grads = grad(g, loss, &[x]).unwrap();
    let values: Vec<f64> = vec![-1.5, 0.0, 0.25, 2.0, -3.0, 7.0];
    let mut feeds = Feeds::new();
    feeds.insert(
        "x".into(),
        HostTensor::from_f64([2, 3], values.clone()).unwrap(),
    );
    let out = adjoint_interp::run(&grads.graph, &feeds).unwrap();
    let want: f64 = values.iter().map(|v| v * v).sum();
    assert_eq!(out.output("loss").unwrap().to_f64_vec(), vec![want]);
    let dx = out.output("x.grad").unwrap().to_f64_vec();
    assert_eq!(dx, values, "the gradient of x·stop(x) is stop(x)");
}

/// Operand shape pairs: equal shapes and NumPy broadcasting of each kind.
const PAIRS: [(&[usize], &[usize]); 5] = [
    (&[4], &[4]),
    (&[2, 3], &[2, 3]),
    (&[2, 3], &[3]),
    (&[4, 1], &[1, 5]),
    (&[], &[2, 2]),
];

fn binary_case(
    what: &str,
    op: for<'b> fn(Tensor<'b>, Tensor<'b>) -> Tensor<'b>,
    positive_a: bool,
    positive_b: bool,
) {
    for (k, (sa, sb)) in PAIRS.iter().enumerate() {
        check_with(
            &format!("{what} {sa:?} {sb:?}"),
            100 + k as u64,
            1e-6,
            |b| {
                let x = b.parameter("a", DType::F64, *sa);
                let y = b.parameter("b", DType::F64, *sb);
                (weighted_sum(op(x, y)), vec![x, y])
            },
            |name, v| {
                if (name == "a" && positive_a) || (name == "b" && positive_b) {
                    positive(v)
                }
            },
        );
    }
}

#[test]
fn binary_ops() {
    binary_case("add", |a, b| a + b, false, false);
    binary_case("sub", |a, b| a - b, false, false);
    binary_case("mul", |a, b| a * b, false, false);
    binary_case("div", |a, b| a / b, false, true);
    binary_case("pow", |a, b| a.pow(b), true, false);
    binary_case("max", |a, b| a.maximum(b), false, false);
    binary_case("min", |a, b| a.minimum(b), false, false);
    // An operand used twice: both contributions are summed.
    binary_case("mul twice", |a, b| a * a * b, false, false);
}

#[test]
fn compare_and_select() {
    for (k, (sa, sb)) in PAIRS.iter().enumerate() {
        check(&format!("select {sa:?} {sb:?}"), 200 + k as u64, |b| {
            let x = b.parameter("a", DType::F64, *sa);
            let y = b.parameter("b", DType::F64, *sb);
            // The mask depends on both operands but carries no gradient.
            let mask = x.lt(y);
            (weighted_sum(mask.select(x.sin(), y * 3.0)), vec![x, y])
        });
    }
}

#[test]
fn broadcast() {
    let cases: [(&[usize], &[usize]); 5] = [
        (&[3], &[2, 3]),
        (&[2, 1], &[2, 3]),
        (&[], &[4]),
        (&[1, 3, 1], &[2, 1, 3, 4]),
        (&[2, 3], &[2, 3]),
    ];
    for (k, (from, to)) in cases.iter().enumerate() {
        check(
            &format!("broadcast {from:?} -> {to:?}"),
            300 + k as u64,
            |b| {
                let x = b.parameter("x", DType::F64, *from);
                (weighted_sum(x.broadcast_to(*to)), vec![x])
            },
        );
    }
}

#[test]
fn reshape_and_permute() {
    check("reshape", 310, |b| {
        let x = b.parameter("x", DType::F64, [2, 6]);
        (weighted_sum(x.reshape([3, 2, 2])), vec![x])
    });
    check("permute", 311, |b| {
        let x = b.parameter("x", DType::F64, [2, 3, 4]);
        (weighted_sum(x.permute(&[2, 0, 1])), vec![x])
    });
    check("transpose", 312, |b| {
        let x = b.parameter("x", DType::F64, [3, 5]);
        (weighted_sum(x.transpose(0, 1).tanh()), vec![x])
    });
}

#[test]
fn slices_with_and_without_steps() {
    let r = |start, stop, step| SliceRange { start, stop, step };
    let cases: Vec<(&[usize], Vec<SliceRange>)> = vec![
        (&[7], vec![r(1, 5, 1)]),
        (&[7], vec![r(1, 7, 2)]),
        (&[8], vec![r(2, 7, 3)]),
        (&[9], vec![r(0, 9, 4)]),
        (&[4, 6], vec![r(1, 3, 1), r(0, 6, 2)]),
        (&[5, 7], vec![r(0, 5, 2), r(1, 6, 3)]),
        (&[2, 5, 4], vec![r(0, 2, 1), r(4, 5, 1), r(1, 4, 2)]),
    ];
    for (k, (shape, ranges)) in cases.iter().enumerate() {
        check(
            &format!("slice {shape:?} {ranges:?}"),
            400 + k as u64,
            |b| {
                let x = b.parameter("x", DType::F64, *shape);
                (weighted_sum(x.slice_ranges(ranges)), vec![x])
            },
        );
    }
}

#[test]
fn pads() {
    let cases: [(&[usize], &[usize], &[usize]); 3] = [
        (&[3], &[2], &[1]),
        (&[2, 3], &[0, 1], &[2, 0]),
        (&[2, 2, 2], &[1, 0, 1], &[0, 1, 1]),
    ];
    for (k, (shape, low, high)) in cases.iter().enumerate() {
        check(&format!("pad {shape:?}"), 500 + k as u64, |b| {
            let x = b.parameter("x", DType::F64, *shape);
            (weighted_sum(x.pad(low, high)), vec![x])
        });
    }
}

#[test]
fn concats() {
    check("concat axis 1", 510, |b| {
        let x = b.parameter("x", DType::F64, [2, 3]);
        let y = b.parameter("y", DType::F64, [2, 1]);
        let z = b.parameter("z", DType::F64, [2, 4]);
        (weighted_sum(b.concat(&[x, y, z], 1)), vec![x, y, z])
    });
    check("concat of one operand twice", 511, |b| {
        let x = b.parameter("x", DType::F64, [3, 2]);
        let y = b.parameter("y", DType::F64, [1, 2]);
        (weighted_sum(b.concat(&[x, y, x], 0)), vec![x, y])
    });
}

#[test]
fn reductions() {
    let cases: [(&[usize], &[isize]); 5] = [
        (&[5], &[0]),
        (&[3, 4], &[1]),
        (&[3, 4], &[0]),
        (&[2, 3, 4], &[0, 2]),
        (&[2, 3, 4], &[0, 1, 2]),
    ];
    for (k, (shape, axes)) in cases.iter().enumerate() {
        for keep in [false, true] {
            let seed = 600 + 2 * k as u64 + keep as u64;
            check(&format!("sum {shape:?} {axes:?} {keep}"), seed, |b| {
                let x = b.parameter("x", DType::F64, *shape);
                let s = if keep {
                    x.sum_keepdims(axes)
                } else {
                    x.sum(axes)
                };
                (weighted_sum(s), vec![x])
            });
            check(&format!("max {shape:?} {axes:?} {keep}"), seed, |b| {
                let x = b.parameter("x", DType::F64, *shape);
                let m = if keep {
                    x.max_keepdims(axes)
                } else {
                    x.max(axes)
                };
                (weighted_sum(m), vec![x])
            });
        }
    }
}

#[test]
fn matmuls() {
    let cases: [(&[usize], &[usize]); 6] = [
        (&[3, 4], &[4, 2]),
        (&[1, 5], &[5, 1]),
        (&[2, 3, 4], &[2, 4, 5]),
        (&[2, 2, 3, 4], &[2, 2, 4, 3]),
        (&[2, 1, 3, 4], &[3, 4, 2]),
        (&[2, 3, 4], &[4, 5]),
    ];
    for (k, (sa, sb)) in cases.iter().enumerate() {
        check(&format!("matmul {sa:?} @ {sb:?}"), 700 + k as u64, |b| {
            let x = b.parameter("a", DType::F64, *sa);
            let y = b.parameter("b", DType::F64, *sb);
            (weighted_sum(x.matmul(y)), vec![x, y])
        });
    }
}

#[test]
fn gather_and_scatter_add() {
    check(
        "gather axis 0, repeated and out-of-range indices",
        800,
        |b| {
            let x = b.parameter("x", DType::F64, [5, 3]);
            let idx = b.constant(DType::I32, [5], &[0.0, 2.0, 2.0, 4.0, -1.0]);
            (weighted_sum(x.gather(idx, 0)), vec![x])
        },
    );
    check("gather axis 1, 2-D indices", 801, |b| {
        let x = b.parameter("x", DType::F64, [2, 4, 3]);
        let idx = b.constant(DType::I32, [2, 2], &[3.0, 0.0, 0.0, 1.0]);
        (weighted_sum(x.gather(idx, 1)), vec![x])
    });
    check("scatter_add axis 0", 802, |b| {
        let u = b.parameter("u", DType::F64, [4, 3]);
        let idx = b.constant(DType::I32, [4], &[1.0, 1.0, 4.0, 7.0]);
        (weighted_sum(u.scatter_add(idx, 0, 5)), vec![u])
    });
    check("scatter_add axis 1", 803, |b| {
        let u = b.parameter("u", DType::F64, [2, 3, 2]);
        let idx = b.constant(DType::I32, [3], &[2.0, 0.0, 2.0]);
        (weighted_sum(u.scatter_add(idx, 1, 4)), vec![u])
    });
}

#[test]
fn all_reduce_of_one_replica() {
    // One replica: the identity, whose adjoint is the same all-reduce of `g` (the check across
    // replicas is `tests/all_reduce.rs`).
    for (i, kind) in AllReduceKind::ALL.into_iter().enumerate() {
        check(&format!("{kind:?}"), 850 + i as u64, |b| {
            let x = b.parameter("x", DType::F64, [2, 3]);
            (weighted_sum(x.all_reduce(kind, 1).tanh()), vec![x])
        });
    }
}

#[test]
fn leaves_and_inputs() {
    // Gradients with respect to an input and a parameter; iota and a constant take part but
    // get no gradient.
    check("leaves", 900, |b| {
        let x = b.input("x", DType::F64, [2, 3]);
        let w = b.parameter("w", DType::F64, [2, 3]);
        let i = b.iota(DType::F64, [2, 3], 1);
        let c = b.constant(DType::F64, [3], &[0.5, -1.0, 2.0]);
        (weighted_sum((x + i) * w + c), vec![x, w])
    });
}

#[test]
fn f32_graphs_are_checked_in_f64() {
    // The graph is f32; check_grads widens it, so the f64 tolerance applies.
    check("f32 tanh matmul", 901, |b| {
        let x = b.parameter("x", DType::F32, [3, 4]);
        let w = b.parameter("w", DType::F32, [4, 2]);
        (weighted_sum(x.matmul(w).tanh()), vec![x, w])
    });
}
