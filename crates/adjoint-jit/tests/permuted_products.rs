//! Products stored through a permute (`adjoint_opt::fusion::stores_product_permuted`): the
//! host kernel writes `C` at the permuted strides — computing `Cᵀ = Bᵀ·Aᵀ` when the product's
//! rows are the layout's contiguous axis — so the kernels reading the permute (attention's
//! heads concatenated, and in the backward pass the query, key and value gradients) read it in
//! place instead of each copying it into a panel. Each case is compared with the interpreter on
//! every ISA this CPU runs, at one and two threads, and with Cranelift-generated matmuls.
//!
//! This file has its own process: switching the ISA here cannot change another test file's.

mod common;

use adjoint_ir::{Builder, DType, Feeds, Graph};
use adjoint_jit::gemm::{select_isa, selected_isa, Isa};
use adjoint_jit::{compile, MatmulKernel, Options};
use adjoint_workloads::{gpt, GptConfig};
use common::{assert_close, random_feeds, run_jit};
use std::sync::Mutex;

/// Tests that switch the process's ISA run one at a time.
static ISA_LOCK: Mutex<()> = Mutex::new(());

/// Per-head products permuted back to rows of concatenated heads, each read by two products
/// (as the output projection and its weight gradient read attention's output): one keeps the
/// product's columns last, one puts its rows last (a key gradient computed as `(qᵀ·dS)ᵀ`).
/// Sizes cross the kernels' tile edges (14 or 6 rows, 32 or 16 columns).
fn heads() -> (Graph, Feeds) {
    let (batch, heads, t, d) = (2, 3, 17, 5);
    let b = Builder::new("heads");
    let p = b.input("p", DType::F32, [batch, heads, t, t]);
    let v = b.input("v", DType::F32, [batch, heads, t, d]);
    let q = b.input("q", DType::F32, [batch, heads, t, d]);
    let w = b.input("w", DType::F32, [heads * d, 7]);
    let x = b.input("x", DType::F32, [batch * t, 6]);
    let rows = [batch * t, heads * d];
    let out = p.matmul(v).permute(&[0, 2, 1, 3]).reshape(rows);
    b.output("proj", out.matmul(w));
    b.output("proj_grad", x.transpose(0, 1).matmul(out));
    let dk = q
        .transpose(-1, -2)
        .matmul(p)
        .permute(&[0, 3, 1, 2])
        .reshape(rows);
    b.output("dk_proj", dk.matmul(w));
    b.output("dk_grad", x.transpose(0, 1).matmul(dk));
    let g = b.finish();
    let feeds = random_feeds(&g, 31, 4);
    (g, feeds)
}

/// A transformer training step whose attention has heads of 8 over rows of 19 tokens.
fn attention_step() -> (Graph, Feeds) {
    let cfg = GptConfig {
        batch: 2,
        seq: 19,
        vocab: 23,
        width: 32,
        heads: 4,
        mlp_hidden: 40,
        layers: 1,
    };
    let t = gpt(&cfg, 5).training_step();
    (t.step.graph, t.feeds)
}

/// The kernels' nests that are not host products (copies, epilogues, elementwise kernels).
fn generated_nests(text: &str) -> usize {
    text.lines()
        .filter(|l| l.trim_start().starts_with("nest ") && !l.contains("host gemm"))
        .count()
}

#[test]
fn heads_are_read_in_place_and_match_the_interpreter_on_every_isa() {
    let _guard = ISA_LOCK.lock().unwrap();
    let before = selected_isa();
    for (g, feeds) in [heads(), attention_step()] {
        let want = adjoint_interp::run(&g, &feeds).unwrap();
        for isa in Isa::supported_all() {
            assert_eq!(select_isa(isa), isa);
            for threads in [1, 2] {
                let mode = format!("{} on {isa}, {threads} threads", g.name());
                let opts = Options {
                    threads,
                    cache: false,
                    ..Options::default()
                };
                let (step, out) = run_jit(&g, &feeds, &opts);
                for (name, t) in &want.outputs {
                    assert_close(
                        &format!("{mode}: output {name}"),
                        out.output(name).unwrap(),
                        t,
                    );
                }
                for (name, t) in &want.updates {
                    let got = step.param(name).unwrap();
                    assert_close(&format!("{mode}: update {name}"), &got, t);
                }
            }
        }
        // Generated matmuls evaluate the permute as the product's epilogue.
        let generated = [Options {
            matmul: MatmulKernel::Generated,
            cache: false,
            ..Options::default()
        }];
        common::check_graph_in(&g, &feeds, &generated);
    }
    select_isa(before);
}

#[test]
fn no_product_is_copied_before_or_after_its_kernel() {
    // Every value of `heads` is a product: nothing but the host kernel runs.
    let (g, _) = heads();
    let text = compile(&g, &Options::default()).unwrap().kernels();
    assert_eq!(text.matches("host gemm").count(), 6, "{text}");
    assert_eq!(generated_nests(&text), 0, "{text}");
    // In a training step, no matmul kernel has a nest before its product (a panel copy).
    let (g, _) = attention_step();
    let text = compile(&g, &Options::default()).unwrap().kernels();
    for kernel in text.split("kernel ").filter(|k| k.contains("host gemm")) {
        let first = kernel.lines().find(|l| l.trim_start().starts_with("nest "));
        assert!(
            first.is_some_and(|l| l.contains("host gemm")),
            "a matmul kernel copies an operand first:\n{kernel}"
        );
    }
}
