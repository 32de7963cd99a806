//! Algebraic identities on random data: matmul against a naive triple loop, reductions that
//! split over axes, permutations that undo each other, slices that undo concat and pad.

mod common;

use adjoint_interp::eval_nodes;
use adjoint_ir::{Builder, DType, Feeds, HostTensor, NodeId};
use common::*;
use proptest::prelude::*;

/// Random dims of rank 1..=4, each 1..=4.
fn dims() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=4, 1..=4)
}

/// Random dims and i32 data in -100..100 for them.
fn i32_tensor() -> impl Strategy<Value = (Vec<usize>, Vec<i32>)> {
    dims().prop_flat_map(|d| {
        let n: usize = d.iter().product();
        (Just(d), prop::collection::vec(-100i32..100, n))
    })
}

/// Random dims, a permutation of their axes and f64 data.
fn permuted_tensor() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, Vec<f64>)> {
    dims().prop_flat_map(|d| {
        let n: usize = d.iter().product();
        let perm = Just((0..d.len()).collect::<Vec<usize>>()).prop_shuffle();
        (Just(d), perm, prop::collection::vec(-1e3f64..1e3, n))
    })
}

/// Batch, m, k, n and the data of `[batch, m, k]` and `[batch, k, n]` operands.
#[allow(clippy::type_complexity)]
fn matmul_operands() -> impl Strategy<Value = ((usize, usize, usize, usize), Vec<f64>, Vec<f64>)> {
    (1usize..=3, 1usize..=5, 0usize..=5, 1usize..=5).prop_flat_map(|(bt, m, k, n)| {
        (
            Just((bt, m, k, n)),
            prop::collection::vec(-10f64..10.0, bt * m * k),
            prop::collection::vec(-10f64..10.0, bt * k * n),
        )
    })
}

fn one_feed(name: &str, t: HostTensor) -> Feeds {
    feeds(vec![(name, t)])
}

proptest! {
    #[test]
    fn matmul_matches_a_naive_triple_loop(((bt, m, k, n), a, b) in matmul_operands()) {
        let mut want = vec![0.0f64; bt * m * n];
        for bi in 0..bt {
            for i in 0..m {
                for j in 0..n {
                    let mut s = 0.0;
                    for p in 0..k {
                        s += a[(bi * m + i) * k + p] * b[(bi * k + p) * n + j];
                    }
                    want[(bi * m + i) * n + j] = s;
                }
            }
        }
        for dtype in [DType::F64, DType::F32] {
            let bld = Builder::new("matmul");
            let x = bld.input("a", dtype, [bt, m, k]);
            let y = bld.input("b", dtype, [bt, k, n]);
            let fs = feeds(vec![
                ("a", HostTensor::from_f64_as(dtype, [bt, m, k], &a).unwrap()),
                ("b", HostTensor::from_f64_as(dtype, [bt, k, n], &b).unwrap()),
            ]);
            let got = eval(&bld, x.matmul(y), &fs);
            prop_assert_eq!(got.shape().dims(), &[bt, m, n][..]);
            // f32 rounds each input and each partial sum: allow for that against f64.
            let tol = if dtype == DType::F64 { 1e-12 } else { 1e-4 };
            for (g, w) in got.to_f64_vec().iter().zip(&want) {
                prop_assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{} vs {}", g, w);
            }
        }
    }

    #[test]
    fn sum_over_all_axes_is_axis_0_then_the_rest((d, v) in i32_tensor()) {
        let b = Builder::new("sums");
        let x = b.input("x", DType::I32, d.as_slice());
        let all: Vec<isize> = (0..d.len() as isize).collect();
        let total = x.sum(&all);
        let first = x.sum(&[0]);
        let rest: Vec<isize> = (0..first.rank() as isize).collect();
        let split = first.sum(&rest);
        let max_all = x.max(&all);
        let ids: Vec<NodeId> = [total, split, max_all].iter().map(|t| t.id()).collect();
        let g = b.finish();
        let vals = eval_nodes(&g, &one_feed("x", i32s(&d, &v)), &ids).unwrap();
        let want: i32 = v.iter().sum();
        prop_assert_eq!(vals[0].as_i32().unwrap(), &[want]);
        prop_assert_eq!(vals[1].as_i32().unwrap(), &[want]);
        prop_assert_eq!(vals[2].as_i32().unwrap(), &[*v.iter().max().unwrap()]);
    }

    #[test]
    fn permute_then_inverse_permute_is_identity((d, perm, v) in permuted_tensor()) {
        let mut inverse = vec![0; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p] = i;
        }
        let b = Builder::new("permute");
        let x = b.input("x", DType::F64, d.as_slice());
        let y = x.permute(&perm);
        let back = y.permute(&inverse);
        let ids = [y.id(), back.id()];
        let g = b.finish();
        let vals = eval_nodes(&g, &one_feed("x", f64s(&d, &v)), &ids).unwrap();
        let want_dims: Vec<usize> = perm.iter().map(|&p| d[p]).collect();
        prop_assert_eq!(vals[0].shape().dims(), want_dims.as_slice());
        prop_assert_eq!(vals[1].shape().dims(), d.as_slice());
        prop_assert_eq!(vals[1].as_f64().unwrap(), v.as_slice());
    }

    #[test]
    fn broadcast_then_sum_multiplies((d, v) in i32_tensor(), reps in 1usize..4) {
        let mut big = vec![reps];
        big.extend(&d);
        let b = Builder::new("broadcast");
        let x = b.input("x", DType::I32, d.as_slice());
        let y = x.broadcast_to(big.as_slice()).sum(&[0]);
        let got = eval(&b, y, &one_feed("x", i32s(&d, &v)));
        let want: Vec<i32> = v.iter().map(|&e| e * reps as i32).collect();
        prop_assert_eq!(got.as_i32().unwrap(), want.as_slice());
    }

    #[test]
    fn slices_undo_concat_and_pad(
        (d, v) in i32_tensor(),
        extra in 1usize..4,
        lo in 0usize..3,
        hi in 0usize..3,
    ) {
        // Concatenate x with a tensor of `extra` more rows along the last axis, then slice both
        // back out; pad the first axis and slice the padding off.
        let r = d.len();
        let mut other_dims = d.clone();
        other_dims[r - 1] = extra;
        let other: Vec<i32> = (0..other_dims.iter().product::<usize>() as i32).collect();
        let b = Builder::new("undo");
        let x = b.input("x", DType::I32, d.as_slice());
        let o = b.input("o", DType::I32, other_dims.as_slice());
        let cat = b.concat(&[x, o], -1);
        let left = cat.slice(-1, 0, d[r - 1], 1);
        let right = cat.slice(-1, d[r - 1], d[r - 1] + extra, 1);
        let mut low = vec![0; r];
        let mut high = vec![0; r];
        low[0] = lo;
        high[0] = hi;
        let padded = x.pad(&low, &high);
        let unpadded = padded.slice(0, lo, lo + d[0], 1);
        let padded_sum = padded.sum(&(0..r as isize).collect::<Vec<_>>());
        let ids: Vec<NodeId> = [left, right, unpadded, padded_sum].iter().map(|t| t.id()).collect();
        let g = b.finish();
        let fs = feeds(vec![("x", i32s(&d, &v)), ("o", i32s(&other_dims, &other))]);
        let vals = eval_nodes(&g, &fs, &ids).unwrap();
        prop_assert_eq!(vals[0].as_i32().unwrap(), v.as_slice());
        prop_assert_eq!(vals[1].as_i32().unwrap(), other.as_slice());
        prop_assert_eq!(vals[2].as_i32().unwrap(), v.as_slice());
        // Padding adds only zeros.
        prop_assert_eq!(vals[3].as_i32().unwrap(), &[v.iter().sum::<i32>()]);
    }

    #[test]
    fn gather_then_scatter_with_a_permutation_restores(
        (n, perm) in (1usize..8).prop_flat_map(|n| (Just(n), Just((0..n as i32).collect::<Vec<_>>()).prop_shuffle())),
        cols in 1usize..4,
    ) {
        let v: Vec<f64> = (0..n * cols).map(|i| i as f64 * 0.5 - 3.0).collect();
        let b = Builder::new("gather_scatter");
        let x = b.input("x", DType::F64, [n, cols]);
        let idx = b.input("i", DType::I32, [n]);
        let y = x.gather(idx, 0).scatter_add(idx, 0, n);
        let fs = feeds(vec![("x", f64s(&[n, cols], &v)), ("i", i32s(&[n], &perm))]);
        let got = eval(&b, y, &fs);
        prop_assert_eq!(got.as_f64().unwrap(), v.as_slice());
    }
}
