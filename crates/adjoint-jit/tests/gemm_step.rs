//! SGD updates fused into the product of their gradient (`kernel::epilogue::fold_step`,
//! `gemm::adjoint_sgemm_step`): the host kernel's step `C = C + s·(A·B)` gives, on every ISA,
//! in every path (tiles, the classifier's dot products, one-panel products, a contraction too
//! long for one block) and cut into units, the bits of `C + s·P` with `P` its plain product;
//! compiled steps fold `w − lr·g` with a constant or a fed learning rate, give the bits of the
//! unfused update computed from the gradient, and match the interpreter; and updates that are
//! not such a step, or whose gradient is read elsewhere, keep their epilogue nest.
//!
//! This file has its own process: switching the ISA here cannot change another test file's.

mod common;

use adjoint_ir::{Builder, DType, Feeds, Graph, HostTensor};
use adjoint_jit::gemm::{select_isa, selected_isa, sgemm_desc, sgemm_desc_step};
use adjoint_jit::gemm::{GemmDesc, Isa};
use adjoint_jit::kernel::{Program, Scalar};
use adjoint_jit::{Options, Step};
use common::{assert_close, random_feeds, run_jit};
use std::sync::Mutex;

/// Tests that switch the process's ISA run one at a time.
static ISA_LOCK: Mutex<()> = Mutex::new(());

/// An `m×n×k` product with `A` and `B` transposed in memory when `at` and `bt`.
fn desc(m: usize, n: usize, k: usize, at: bool, bt: bool) -> GemmDesc {
    let (mi, ni, ki) = (m as i64, n as i64, k as i64);
    let a = if at { [1, mi] } else { [ki, 1] };
    let b = if bt { [1, ki] } else { [ni, 1] };
    common::gemm_desc(m, n, k, a, b, [ni, 1])
}

#[test]
fn a_stepped_product_lands_as_c_plus_scale_times_the_product_on_every_isa() {
    // Whole and edge tiles, the classifier's N = 10 (the AVX-512 dot-product path with A
    // row-major), one-panel M (B read in place, or the product transposed), K = 0, and K = 300
    // (two contraction blocks: through a buffer of sums).
    let sizes = [
        (300, 520, 128),
        (169, 33, 70),
        (128, 10, 200),
        (6, 100, 33),
        (37, 41, 0),
        (50, 70, 300),
    ];
    let scale = -0.0123f32;
    for (m, n, k) in sizes {
        let a: Vec<f32> = (0..m * k).map(|i| ((i as f32) * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i as f32) * 0.11).cos()).collect();
        let c0: Vec<f32> = (0..m * n).map(|i| ((i as f32) * 0.7).sin() * 3.0).collect();
        for (at, bt) in [(false, false), (true, false), (false, true)] {
            let d = desc(m, n, k, at, bt);
            for isa in Isa::supported_all() {
                let what = format!("{isa} {m}x{n}x{k} Aᵀ {at} Bᵀ {bt}");
                let mut p = vec![0.0f32; m * n];
                sgemm_desc(isa, &d, &a, &b, &mut p, 0..d.units());
                let want: Vec<u32> = c0
                    .iter()
                    .zip(&p)
                    .map(|(&c, &s)| (c + scale * s).to_bits())
                    .collect();
                // One call over every unit, and one call per unit (as the pool runs them).
                let mut whole = c0.clone();
                sgemm_desc_step(isa, &d, &a, &b, &mut whole, 0..d.units(), scale);
                let mut units = c0.clone();
                for u in 0..d.units() {
                    sgemm_desc_step(isa, &d, &a, &b, &mut units, u..u + 1, scale);
                }
                for (name, got) in [("one call", &whole), ("per unit", &units)] {
                    let got: Vec<u32> = got.iter().map(|x| x.to_bits()).collect();
                    if let Some(i) = (0..m * n).find(|&i| got[i] != want[i]) {
                        panic!(
                            "{what} {name}: element {i} is {} not {}",
                            f32::from_bits(got[i]),
                            f32::from_bits(want[i])
                        );
                    }
                }
            }
        }
    }
}

/// The kernels of a compiled step whose host matmul steps its output, with the step's scale.
fn steps(prog: &Program) -> Vec<Scalar> {
    let gemms = prog.kernels.iter().flat_map(|k| &k.nests);
    gemms
        .filter_map(|n| n.gemm.as_ref()?.step.map(|s| s.scale))
        .collect()
}

/// `w ← w − lr·(xᵀ·dy)` for two weights (a hidden layer's and a classifier's, N = 10, whose
/// contraction is K = 300: two blocks), `lr` a constant or the fed scalar `lr`, with the
/// gradients also as outputs when `outputs` (which keeps the epilogue: the product is read
/// twice).
fn sgd_graph(fed_lr: bool, outputs: bool) -> Graph {
    let b = Builder::new(if outputs { "sgd-outputs" } else { "sgd" });
    let x = b.input("x", DType::F32, [128, 300]);
    let dy = b.input("dy", DType::F32, [128, 520]);
    let w = b.parameter("w", DType::F32, [300, 520]);
    let h = b.input("h", DType::F32, [300, 96]);
    let dz = b.input("dz", DType::F32, [300, 10]);
    let v = b.parameter("v", DType::F32, [96, 10]);
    let gw = x.transpose(0, 1).matmul(dy);
    let gv = h.transpose(0, 1).matmul(dz);
    if fed_lr {
        let lr = b.input("lr", DType::F32, []);
        b.update(w, w - lr * gw);
        b.update(v, v - gv * lr);
    } else {
        b.update(w, w - gw * 0.01);
        // `v + (−lr)·g`, the other form of the step.
        b.update(v, v + gv * -0.02);
    }
    if outputs {
        b.output("gw", gw);
        b.output("gv", gv);
    }
    b.finish()
}

/// The interpreter's update of `name`.
fn updated<'a>(updates: &'a [(String, HostTensor)], name: &str) -> &'a HostTensor {
    &updates
        .iter()
        .find(|(n, _)| n == name)
        .expect("an update")
        .1
}

/// The bits of an `f32` tensor.
fn bits(t: &HostTensor) -> Vec<u32> {
    t.as_f32().unwrap().iter().map(|x| x.to_bits()).collect()
}

#[test]
fn sgd_steps_fold_into_their_products_and_keep_their_bits() {
    let _guard = ISA_LOCK.lock().unwrap();
    let before = selected_isa();
    for isa in Isa::supported_all() {
        assert_eq!(select_isa(isa), isa);
        for fed_lr in [false, true] {
            let g = sgd_graph(fed_lr, false);
            let unfused = sgd_graph(fed_lr, true);
            let mut feeds: Feeds = random_feeds(&g, 7, 4);
            if fed_lr {
                feeds.insert("lr".into(), HostTensor::scalar_f32(0.03));
            }
            let want = adjoint_interp::run(&g, &feeds).unwrap();
            for threads in [1, 2] {
                let mode = format!("{isa} fed lr {fed_lr} threads {threads}");
                let opts = Options {
                    threads,
                    cache: false,
                    ..Options::default()
                };
                let (step, _) = run_jit(&g, &feeds, &opts);
                let scales = steps(step.program());
                assert_eq!(scales.len(), 2, "{mode}: not both updates folded");
                let loads = scales
                    .iter()
                    .filter(|s| matches!(s, Scalar::Load { .. }))
                    .count();
                assert_eq!(loads, if fed_lr { 2 } else { 0 }, "{mode}: {scales:?}");
                // Read twice, the gradients keep the second pass; its update from the same
                // gradient bits is the fused one's, bit for bit.
                let (plain, out) = run_jit(&unfused, &feeds, &opts);
                assert!(
                    steps(plain.program()).is_empty(),
                    "{mode}: folded a product read twice"
                );
                let lr = if fed_lr {
                    [0.03f32, 0.03]
                } else {
                    [0.01, 0.02]
                };
                for ((name, grad), lr) in [("w", "gw"), ("v", "gv")].into_iter().zip(lr) {
                    let got = step.param(name).unwrap();
                    assert_close(
                        &format!("{mode} update {name}"),
                        &got,
                        updated(&want.updates, name),
                    );
                    assert_eq!(
                        bits(&got),
                        bits(&plain.param(name).unwrap()),
                        "{mode} {name}"
                    );
                    let w0 = feeds[name].as_f32().unwrap();
                    let g = out.output(grad).unwrap().as_f32().unwrap();
                    let by_hand: Vec<u32> = w0
                        .iter()
                        .zip(g)
                        .map(|(&w, &g)| (w - lr * g).to_bits())
                        .collect();
                    assert_eq!(bits(&got), by_hand, "{mode} {name}: not w − lr·g");
                }
            }
        }
    }
    select_isa(before);
}

#[test]
fn a_fed_learning_rate_is_read_at_every_run() {
    let g = sgd_graph(true, false);
    let mut feeds = random_feeds(&g, 3, 4);
    let opts = Options {
        cache: false,
        ..Options::default()
    };
    let mut step = adjoint_jit::compile(&g, &opts).unwrap();
    step.set_params(&feeds).unwrap();
    let w0 = step.param("w").unwrap();
    feeds.insert("lr".into(), HostTensor::scalar_f32(0.0));
    step.run_feeds(&feeds).unwrap();
    assert_eq!(bits(&step.param("w").unwrap()), bits(&w0), "lr 0 moved w");
    let mut interp_feeds = feeds.clone();
    for lr in [0.5f32, -0.25] {
        feeds.insert("lr".into(), HostTensor::scalar_f32(lr));
        interp_feeds.insert("lr".into(), HostTensor::scalar_f32(lr));
        interp_feeds.insert("w".into(), step.param("w").unwrap());
        interp_feeds.insert("v".into(), step.param("v").unwrap());
        let want = adjoint_interp::run(&g, &interp_feeds).unwrap();
        step.run_feeds(&feeds).unwrap();
        for name in ["w", "v"] {
            let what = format!("lr {lr} update {name}");
            assert_close(
                &what,
                &step.param(name).unwrap(),
                updated(&want.updates, name),
            );
        }
    }
}

#[test]
fn updates_that_are_not_a_step_of_the_product_keep_their_nest() {
    let b = Builder::new("not-steps");
    let x = b.input("x", DType::F32, [64, 200]);
    let dy = b.input("dy", DType::F32, [64, 300]);
    let gw = x.transpose(0, 1).matmul(dy);
    // The product scaled by a tensor, not a scalar.
    let s = b.input("s", DType::F32, [200, 300]);
    let w1 = b.parameter("w1", DType::F32, [200, 300]);
    b.update(w1, w1 - gw * s);
    // The weight minus the step (`lr·g − w`), and a step of the product's transpose.
    let w2 = b.parameter("w2", DType::F32, [200, 300]);
    b.update(w2, x.transpose(0, 1).matmul(dy * 2.0) * 0.01 - w2);
    let w3 = b.parameter("w3", DType::F32, [300, 200]);
    b.update(
        w3,
        w3 - dy
            .transpose(0, 1)
            .matmul(x * 3.0)
            .transpose(0, 1)
            .transpose(0, 1)
            * 0.01,
    );
    let w4 = b.parameter("w4", DType::F32, [300, 200]);
    b.update(
        w4,
        w4 - x.transpose(0, 1).matmul(dy * 0.5).transpose(0, 1) * 0.01,
    );
    // A step whose product reads the weight itself.
    let w5 = b.parameter("w5", DType::F32, [200, 200]);
    b.update(w5, w5 - w5.matmul(w5) * 0.01);
    let g = b.finish();
    let feeds = random_feeds(&g, 5, 4);
    let (step, _) = run_jit(&g, &feeds, &Options::default());
    // Only `w3`'s update (its product's double transpose is the product) is a step.
    let prog = step.program();
    assert_eq!(steps(prog).len(), 1, "{prog}");
    let want = adjoint_interp::run(&g, &feeds).unwrap();
    for (name, t) in &want.updates {
        assert_close(&format!("update {name}"), &step.param(name).unwrap(), t);
    }
}

/// A fuzzer's case: the step's only scratch is the folded product's (the kernel IR's check
/// once found the scratch outside an arena shrunk without it).
#[test]
fn a_folded_product_that_was_the_only_scratch_still_checks() {
    let b = Builder::new("tiny-sgd");
    let w = b.parameter("w", DType::F32, [2, 3]);
    let x = b.input("x", DType::F32, [2, 1]);
    let y = b.input("y", DType::F32, [1, 3]);
    b.update(w, w - x.matmul(y) * 0.1);
    let g = b.finish();
    let feeds = random_feeds(&g, 1, 4);
    let want = adjoint_interp::run(&g, &feeds).unwrap();
    for threads in [1, 2] {
        let opts = Options {
            threads,
            check_ir: true,
            cache: false,
            ..Options::default()
        };
        let (step, _) = run_jit(&g, &feeds, &opts);
        assert_eq!(steps(step.program()).len(), 1);
        assert_close(
            "update w",
            &step.param("w").unwrap(),
            updated(&want.updates, "w"),
        );
    }
}
