//! A matmul's epilogue run on each block of the product inside the host kernel
//! (`Options::block_epilogue`): the kernel hands every output element over exactly once, after
//! its final write, on every ISA and cut into units; and compiled steps whose matmuls carry an
//! epilogue (bias + ReLU, a residual, SGD's and Adam's updates) give the same bits with the
//! epilogue run block by block as in a second pass, match the interpreter, on every ISA this
//! CPU runs and on one and two threads; and epilogues that could see another block's elements
//! (a transposed read of the product, a write to its operands, overlapping stores) are refused.
//!
//! This file has its own process: switching the ISA here cannot change another test file's.

mod common;

use adjoint_autodiff::Optimizer;
use adjoint_ir::{Builder, DType, Feeds, Graph};
use adjoint_jit::gemm::{select_isa, selected_isa, sgemm_desc, sgemm_desc_then, GemmDesc, Isa};
use adjoint_jit::kernel::epilogue::block_epilogue;
use adjoint_jit::kernel::lower::lower_program;
use adjoint_jit::kernel::{Expr, ExprId, ExprNode, Ix, Program};
use adjoint_jit::Options;
use adjoint_opt::{plan, PlanOptions};
use adjoint_workloads::{gpt, mlp, GptConfig, MlpConfig};
use common::{assert_close, random_feeds, run_jit};
use std::sync::Mutex;

/// Tests that switch the process's ISA run one at a time.
static ISA_LOCK: Mutex<()> = Mutex::new(());

/// A row-major `m×n×k` product with `A` transposed in memory when `at`, split for the pool.
fn desc(m: usize, n: usize, k: usize, at: bool) -> GemmDesc {
    let (mi, ni, ki) = (m as i64, n as i64, k as i64);
    let a = if at { [1, mi] } else { [ki, 1] };
    common::gemm_desc(m, n, k, a, [ni, 1], [ni, 1])
}

#[test]
fn every_element_is_handed_over_once_after_its_last_write() {
    // Around every ISA's row block (168 / 144 / 128 rows), its tiles, narrow products (the
    // classifier's N = 10, one-panel M), a product of K = 0, and both cuts into units.
    let sizes = [
        (400, 300, 70),
        (300, 400, 33),
        (169, 33, 257),
        (128, 10, 1024),
        (1024, 10, 128),
        (10, 100, 33),
        (4, 257, 100),
        (1, 100, 257),
        (37, 41, 0),
    ];
    for (m, n, k) in sizes {
        let a: Vec<f32> = (0..m * k).map(|i| ((i as f32) * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i as f32) * 0.11).cos()).collect();
        for at in [false, true] {
            let base = desc(m, n, k, at);
            for isa in Isa::supported_all() {
                let mut want = vec![0.0f32; m * n];
                sgemm_desc(isa, &base, &a, &b, &mut want, 0..base.units());
                for (split_rows, unit) in [(base.split_rows, base.unit), (1, 50), (0, 64)] {
                    let d = GemmDesc {
                        split_rows,
                        unit,
                        ..base
                    };
                    let what = format!("{isa} {m}x{n}x{k} Aᵀ {at} cut {split_rows}/{unit}");
                    // One call over all units (one thread), and one call per unit (as the
                    // pool's chunks run them).
                    let calls: Vec<std::ops::Range<i64>> = std::iter::once(0..d.units())
                        .chain((0..d.units()).map(|u| u..u + 1))
                        .collect();
                    for (ci, units) in calls.iter().enumerate() {
                        let mut c = vec![f32::NAN; m * n];
                        let mut seen = vec![0u8; m * n];
                        sgemm_desc_then(isa, &d, &a, &b, &mut c, units.clone(), &mut |c, r, s| {
                            assert!(r.end <= m && s.end <= n, "{what}: block {r:?}x{s:?}");
                            for i in r.clone() {
                                for j in s.clone() {
                                    seen[i * n + j] += 1;
                                    assert_eq!(
                                        c[i * n + j].to_bits(),
                                        want[i * n + j].to_bits(),
                                        "{what}: ({i}, {j}) handed over before it is final"
                                    );
                                }
                            }
                        });
                        if ci == 0 {
                            assert!(seen.iter().all(|&s| s == 1), "{what}: not each once");
                        }
                        // Per unit: each element of the unit once, none outside it.
                        if ci > 0 {
                            let u = units.start;
                            let (lo, hi) = (u * d.unit, (u + 1) * d.unit);
                            for i in 0..m {
                                for j in 0..n {
                                    let along = if split_rows != 0 { i } else { j } as i64;
                                    let inside = along >= lo && along < hi;
                                    assert_eq!(
                                        seen[i * n + j],
                                        u8::from(inside),
                                        "{what}: unit {u}, element ({i}, {j})"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Matmuls with epilogues at sizes that split over two threads (the host kernel's work above
/// its threshold) in rows and in columns, cross the kernels' row blocks, and reach the narrow
/// paths: a forward layer with bias, ReLU and a residual; MLP training steps with SGD and with
/// Adam (weight updates on the product `xᵀ·dy`); a GPT-shaped step; and an epilogue that
/// reads its product transposed (which keeps the second pass).
fn graphs() -> Vec<(Graph, Feeds)> {
    let mut out = Vec::new();
    let b = Builder::new("layer");
    let x = b.input("x", DType::F32, [256, 40]);
    let w = b.input("w", DType::F32, [40, 600]);
    let bias = b.input("bias", DType::F32, [600]);
    let r = b.input("r", DType::F32, [256, 600]);
    b.output("y", (x.matmul(w) + bias).relu() + r);
    let x2 = b.input("x2", DType::F32, [520, 24]);
    let w2 = b.input("w2", DType::F32, [24, 300]);
    b.output("z", (x2.matmul(w2) * 0.5).relu());
    let sq = b.input("sq", DType::F32, [200, 200]);
    let t = b.input("t", DType::F32, [200, 200]);
    b.output("tr", sq.matmul(sq).transpose(0, 1) + t);
    let g = b.finish();
    let feeds = random_feeds(&g, 3, 4);
    out.push((g, feeds));
    let cfg = MlpConfig {
        batch: 64,
        inputs: 300,
        hidden: vec![520, 200],
        classes: 10,
    };
    for optimizer in [
        Optimizer::sgd(0.01),
        Optimizer::adam_with(1e-3, 0.9, 0.999, 1e-8),
    ] {
        let mut wl = mlp("W2", "mlp-epilogue", &cfg, 5);
        wl.optimizer = optimizer;
        let t = wl.training_step();
        out.push((t.step.graph, t.feeds));
    }
    let gpt_cfg = GptConfig {
        batch: 2,
        seq: 16,
        vocab: 40,
        width: 32,
        heads: 4,
        mlp_hidden: 64,
        layers: 1,
    };
    let t = gpt(&gpt_cfg, 4).training_step();
    out.push((t.step.graph, t.feeds));
    out
}

/// The bits of every element (of its value widened to f64, which keeps them all).
fn bits(t: &adjoint_ir::HostTensor) -> Vec<u64> {
    t.to_f64_vec().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn block_epilogues_give_the_bits_of_a_second_pass_on_every_isa() {
    let _guard = ISA_LOCK.lock().unwrap();
    let before = selected_isa();
    for isa in Isa::supported_all() {
        assert_eq!(select_isa(isa), isa);
        for (g, feeds) in graphs() {
            let want = adjoint_interp::run(&g, &feeds).unwrap();
            for threads in [1, 2] {
                let mode = format!("{isa} {} threads {threads}", g.name());
                let run = |block_epilogue: bool| {
                    let opts = Options {
                        threads,
                        cache: false,
                        block_epilogue,
                        ..Options::default()
                    };
                    run_jit(&g, &feeds, &opts)
                };
                let (step, out) = run(true);
                let (step2, out2) = run(false);
                assert!(
                    step.stats().block_epilogues > 0,
                    "{mode}: no epilogue ran block by block"
                );
                assert_eq!(step2.stats().block_epilogues, 0, "{mode}");
                for (name, t) in &want.outputs {
                    let got = out.output(name).unwrap();
                    assert_close(&format!("{mode} output {name}"), got, t);
                    assert_eq!(
                        bits(got),
                        bits(out2.output(name).unwrap()),
                        "{mode} output {name}: block epilogue changed bits"
                    );
                }
                for (name, t) in &want.updates {
                    let got = step.param(name).unwrap();
                    assert_close(&format!("{mode} update {name}"), &got, t);
                    assert_eq!(
                        bits(&got),
                        bits(&step2.param(name).unwrap()),
                        "{mode} update {name}: block epilogue changed bits"
                    );
                }
            }
        }
    }
    select_isa(before);
}

/// A change to a lowered program.
type Breakage = dyn Fn(&mut Program);

/// `kernel::epilogue::block_epilogue` on a lowered `w ← w - lr·(x·w)` (an eligible epilogue),
/// then on copies broken in each way that would make running it early wrong.
#[test]
fn only_epilogues_that_cannot_see_other_blocks_run_block_by_block() {
    let b = Builder::new("sgd");
    let x = b.input("x", DType::F32, [400, 400]);
    let w = b.parameter("w", DType::F32, [400, 400]);
    b.update(w, w - x.matmul(w) * 0.01);
    let g = b.finish();
    let p = plan(&g, &PlanOptions::default());
    let prog = lower_program(&p.graph, &p.schedule, &p.memory, true).unwrap();
    let ki = prog
        .kernels
        .iter()
        .position(|k| k.nests.first().is_some_and(|n| n.gemm.is_some()))
        .expect("a host gemm kernel");
    let k = &prog.kernels[ki];
    assert!(block_epilogue(&prog, k, 0), "{prog}");
    let gemm = k.nests[0].gemm.clone().unwrap();
    let store = k.nests[1].stores[0].clone();
    let (v0, v1) = (k.nests[1].vars[0], k.nests[1].vars[1]);
    let n = gemm.desc.n;
    let c_load = (0..k.exprs.len())
        .find(|&e| matches!(k.exprs[e].expr, Expr::Load { buffer, .. } if buffer == gemm.c.0))
        .expect("the epilogue reads C");
    let broken: Vec<(&str, Box<Breakage>)> = vec![
        (
            "C read transposed",
            Box::new(move |p: &mut Program| {
                p.kernels[ki].exprs[c_load].expr = Expr::Load {
                    buffer: gemm.c.0,
                    offset: Ix::var(v0).add(&Ix::var(v1).scale(n)),
                };
            }),
        ),
        (
            "writes the product's operand B",
            Box::new(move |p: &mut Program| {
                let s = p.kernels[ki].nests[1].stores[0].buffer;
                p.buffers[s.0 as usize].storage = p.buffers[gemm.b.0 .0 as usize].storage;
            }),
        ),
        (
            "writes into C's storage",
            Box::new(move |p: &mut Program| {
                let s = p.kernels[ki].nests[1].stores[0].buffer;
                p.buffers[s.0 as usize].storage = p.buffers[gemm.c.0 .0 as usize].storage;
            }),
        ),
        (
            "scatter-add",
            Box::new(move |p: &mut Program| p.kernels[ki].nests[1].stores[0].accumulate = true),
        ),
        (
            "one element for several (i, j)",
            Box::new(move |p: &mut Program| {
                p.kernels[ki].nests[1].stores[0].offset = Ix::var(v1);
            }),
        ),
        (
            "reads what it writes elsewhere",
            Box::new(move |p: &mut Program| {
                let k = &mut p.kernels[ki];
                let e = k.exprs.len();
                k.exprs.push(ExprNode {
                    expr: Expr::Load {
                        buffer: store.buffer,
                        offset: Ix::var(v1).add(&Ix::var(v0).scale(n)).offset(1),
                    },
                    dtype: DType::F32,
                });
                let v = k.nests[1].stores[0].value;
                k.exprs.push(ExprNode {
                    expr: Expr::Binary {
                        op: adjoint_ir::BinaryOp::Add,
                        a: v,
                        b: ExprId(e as u32),
                    },
                    dtype: DType::F32,
                });
                k.nests[1].stores[0].value = ExprId(e as u32 + 1);
            }),
        ),
        (
            "not a parallel nest",
            Box::new(move |p: &mut Program| p.kernels[ki].nests[1].parallel = false),
        ),
        (
            "batched product",
            Box::new(move |p: &mut Program| {
                p.kernels[ki].nests[0].gemm.as_mut().unwrap().desc.batch[0] = 2;
            }),
        ),
    ];
    for (what, f) in broken {
        let mut p = prog.clone();
        f(&mut p);
        assert!(!block_epilogue(&p, &p.kernels[ki], 0), "{what}:\n{p}");
    }
}
