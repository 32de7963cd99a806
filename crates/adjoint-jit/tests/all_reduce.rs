//! `all_reduce` in compiled code: a host call from inside the step through the step's
//! collective, checked against the interpreter (the oracle) on replicas that are threads of
//! one process.

use adjoint_interp::InterpStep;
use adjoint_ir::{
    AllReduceKind, Builder, Collective, DType, Feeds, Graph, HostTensor, InProcess, Step,
};
use adjoint_jit::{compile, JitError, Options};
use std::sync::Arc;

/// A graph reducing a computed value (`x·w + 1`, so the operand is an arena buffer) and a
/// parameter, with work after the reduction (an epilogue the collective must not swallow),
/// and a parameter update from the reduced value.
fn graph(dtype: DType, replicas: usize) -> Graph {
    let b = Builder::new("all_reduce");
    let x = b.input("x", dtype, [3, 4]);
    let w = b.parameter("w", dtype, [4]);
    let h = x * w + 1.0;
    let s = h.all_reduce(AllReduceKind::Sum, replicas);
    let m = w.all_reduce(AllReduceKind::Mean, replicas);
    b.output("sum", s.tanh() * 2.0);
    b.output("mean", m);
    b.output("local", h);
    b.update(w, w - m * 0.5);
    b.finish()
}

/// Replica `r`'s input values.
fn input(dtype: DType, r: usize) -> HostTensor {
    let v: Vec<f64> = (0..12)
        .map(|i| (i as f64 * 0.37 + r as f64).sin())
        .collect();
    HostTensor::from_f64_as(dtype, [3, 4], &v).unwrap()
}

fn weights(dtype: DType, r: usize) -> HostTensor {
    let v: Vec<f64> = (0..4).map(|i| 0.5 + i as f64 * 0.25 - r as f64).collect();
    HostTensor::from_f64_as(dtype, [4], &v).unwrap()
}

/// Runs `make(graph)` on each of `n` replicas (threads) for two steps and returns every
/// replica's outputs of both steps and final parameters.
fn run_replicas<S: Step + Send>(
    dtype: DType,
    n: usize,
    make: impl Fn(Graph) -> S + Sync,
) -> Vec<(Vec<Feeds>, HostTensor)> {
    let group = InProcess::group(n);
    std::thread::scope(|s| {
        let jobs: Vec<_> = group
            .into_iter()
            .enumerate()
            .map(|(r, c)| {
                let make = &make;
                s.spawn(move || {
                    let mut step = make(graph(dtype, n));
                    step.set_collective(Some(Arc::new(c) as Arc<dyn Collective>));
                    step.set_param("w", &weights(dtype, r)).unwrap();
                    let mut outs = Vec::new();
                    for _ in 0..2 {
                        let mut feeds = Feeds::new();
                        feeds.insert("x".into(), input(dtype, r));
                        let o = step.run(&feeds).unwrap();
                        outs.push(o.outputs.into_iter().collect::<Feeds>());
                    }
                    (outs, step.param("w").unwrap())
                })
            })
            .collect();
        jobs.into_iter().map(|j| j.join().unwrap()).collect()
    })
}

fn close(a: &HostTensor, b: &HostTensor, tol: f64) {
    let (a, b) = (a.to_f64_vec(), b.to_f64_vec());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{a:?}\n{b:?}");
    }
}

#[test]
fn compiled_all_reduce_matches_the_interpreter_on_two_and_three_replicas() {
    for dtype in [DType::F32, DType::F64] {
        for n in [2, 3] {
            let interp = run_replicas(dtype, n, |g| InterpStep::new(g).unwrap());
            let jit = run_replicas(dtype, n, |g| compile(&g, &Options::default()).unwrap());
            let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
            for r in 0..n {
                // Every replica gets the same reduced values.
                for name in ["sum", "mean"] {
                    assert_eq!(jit[r].0[1][name], jit[0].0[1][name], "{dtype} {n} {name}");
                }
                for step in 0..2 {
                    for (name, want) in &interp[r].0[step] {
                        close(&jit[r].0[step][name], want, tol);
                    }
                }
                close(&jit[r].1, &interp[r].1, tol);
            }
            // The first step's sum is the sum of every replica's local value.
            let local: Vec<Vec<f64>> = (0..n).map(|r| jit[r].0[0]["local"].to_f64_vec()).collect();
            let want: Vec<f64> = (0..12)
                .map(|i| (local.iter().map(|l| l[i]).sum::<f64>()).tanh() * 2.0)
                .collect();
            let want = HostTensor::from_f64_as(dtype, [3, 4], &want).unwrap();
            close(&jit[0].0[0]["sum"], &want, tol);
        }
    }
}

#[test]
fn the_collective_is_a_host_nest_of_its_own() {
    let step = compile(&graph(DType::F32, 2), &Options::default()).unwrap();
    let kernels = step.kernels();
    assert_eq!(
        kernels
            .matches("host all_reduce_sum over 2 replicas")
            .count(),
        1,
        "{kernels}"
    );
    assert_eq!(
        kernels
            .matches("host all_reduce_mean over 2 replicas")
            .count(),
        1,
        "{kernels}"
    );
}

#[test]
fn a_missing_or_mismatched_collective_is_an_error() {
    let mut step = compile(&graph(DType::F32, 2), &Options::default()).unwrap();
    step.set_param("w", &weights(DType::F32, 0)).unwrap();
    let mut feeds = Feeds::new();
    feeds.insert("x".into(), input(DType::F32, 0));
    let err = step.run(&feeds).unwrap_err();
    assert!(matches!(err, JitError::Collective(_)), "{err}");
    assert!(err.to_string().contains("no collective"), "{err}");

    let three = InProcess::group(3).into_iter().next().unwrap();
    step.set_collective(Some(Arc::new(three)));
    let err = step.run(&feeds).unwrap_err();
    assert!(err.to_string().contains("the collective has 3"), "{err}");

    // One replica needs no collective: the op is the identity.
    let mut one = compile(&graph(DType::F32, 1), &Options::default()).unwrap();
    one.set_param("w", &weights(DType::F32, 0)).unwrap();
    let out = one.run(&feeds).unwrap();
    assert_eq!(out.output("mean").unwrap(), &weights(DType::F32, 0));
}
