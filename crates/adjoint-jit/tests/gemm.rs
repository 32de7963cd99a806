//! The host matmul kernel: against a plain triple loop on sizes around its blocking (tiles of
//! 6×16, K blocks of 256, row blocks of 144, column blocks of 4080), and inside compiled graphs
//! against the interpreter on odd sizes, every layout, batched and broadcast operands, with an
//! epilogue, on one and two threads — and the Cranelift-generated matmul on the same graphs.

mod common;

use adjoint_ir::{Builder, DType};
use adjoint_jit::gemm::{available, sgemm_row_major};
use adjoint_jit::{compile, MatmulKernel, Options};
use common::{check_graph, random_feeds};

/// `C = A·B` in f64 from f32 inputs.
fn reference(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let x = a[i * k + p] as f64;
            for j in 0..n {
                c[i * n + j] += x * b[p * n + j] as f64;
            }
        }
    }
    c
}

#[test]
fn host_kernel_matches_a_triple_loop_around_its_blocks() {
    if !available() {
        return;
    }
    let sizes = [
        (1, 1, 1),
        (1, 1, 0),
        (6, 16, 1),
        (5, 15, 3),
        (7, 17, 257),
        (13, 33, 300),
        (145, 20, 10),
        (3, 4100, 2),
        (150, 40, 513),
    ];
    for (m, n, k) in sizes {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 5) % 13) as f32 * 0.25 - 1.5)
            .collect();
        let mut c = vec![f32::NAN; m * n];
        sgemm_row_major(&a, &b, &mut c, m, n, k);
        let want = reference(&a, &b, m, n, k);
        for (idx, (got, want)) in c.iter().zip(&want).enumerate() {
            // Small integers and quarters: every partial sum is exact in f32.
            assert_eq!(*got as f64, *want, "{m}x{n}x{k} at {idx}");
        }
    }
}

#[test]
fn host_kernel_results_do_not_depend_on_the_split() {
    if !available() {
        return;
    }
    // Values with rounding: the sum order must still be fixed per element.
    let (m, n, k) = (150, 70, 600);
    let a: Vec<f32> = (0..m * k).map(|i| ((i as f32) * 0.37).sin()).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i as f32) * 0.11).cos()).collect();
    let mut whole = vec![0.0; m * n];
    sgemm_row_major(&a, &b, &mut whole, m, n, k);
    // Rows 0..50 and 50..150 computed separately give the same bits.
    let mut top = vec![0.0; 50 * n];
    sgemm_row_major(&a[..50 * k], &b, &mut top, 50, n, k);
    let mut bottom = vec![0.0; 100 * n];
    sgemm_row_major(&a[50 * k..], &b, &mut bottom, 100, n, k);
    top.extend(bottom);
    assert_eq!(whole, top);
    let want = reference(&a, &b, m, n, k);
    for (g, w) in whole.iter().zip(&want) {
        assert!(
            (*g as f64 - w).abs() <= 1e-4 * w.abs().max(1.0),
            "{g} vs {w}"
        );
    }
}

#[test]
fn compiled_matmuls_on_odd_sizes_and_layouts() {
    for (m, k, n) in [(1, 1, 1), (1, 5, 1), (9, 1, 3), (7, 300, 23), (20, 3, 17)] {
        let b = Builder::new(&format!("gemm_{m}x{k}x{n}"));
        let a = b.input("a", DType::F32, [m, k]);
        let w = b.input("w", DType::F32, [k, n]);
        let at = b.input("at", DType::F32, [k, m]);
        let wt = b.input("wt", DType::F32, [n, k]);
        b.output("ab", a.matmul(w));
        b.output("atb", at.transpose(0, 1).matmul(w));
        b.output("abt", a.matmul(wt.transpose(0, 1)));
        b.output("atbt", at.transpose(0, 1).matmul(wt.transpose(0, 1)));
        let bias = b.input("bias", DType::F32, [n]);
        b.output("epilogue", (a.matmul(w) + bias).relu() * 2.0);
        // A product used twice by its epilogue, and a fused elementwise operand.
        let p = (a * 0.5 + 1.0).matmul(w);
        b.output("twice", p * p + p);
        let g = b.finish();
        check_graph(&g, &random_feeds(&g, 21, 4));
    }
}

#[test]
fn compiled_batched_matmuls() {
    let b = Builder::new("gemm_batched");
    let x = b.input("x", DType::F32, [2, 3, 5, 7]);
    let y = b.input("y", DType::F32, [2, 3, 7, 9]);
    let yt = b.input("yt", DType::F32, [2, 3, 9, 7]);
    b.output("xy", x.matmul(y));
    b.output("xyt", x.matmul(yt.transpose(-1, -2)));
    b.output("xty", x.transpose(-1, -2).matmul(x));
    // A right operand shared by every batch element (broadcast, stride 0).
    let w = b.input("w", DType::F32, [7, 4]);
    b.output("shared", x.matmul(w.broadcast_to([2, 3, 7, 4])));
    // Heads split by a reshape and a permute, as attention does.
    let h = b.input("h", DType::F32, [4, 8, 12]);
    let heads = h.reshape([4, 8, 3, 4]).permute(&[0, 2, 1, 3]);
    b.output("scores", heads.matmul(heads.transpose(-1, -2)));
    let g = b.finish();
    check_graph(&g, &random_feeds(&g, 22, 4));
    // Every one of the five products runs on the host kernel (no operand is copied first).
    if available() {
        let step = compile(&g, &Options::default()).unwrap();
        let text = step.kernels();
        assert_eq!(text.matches("host gemm").count(), 5, "{text}");
        assert!(!text.contains("(panel)"), "{text}");
        let generated = Options {
            matmul: MatmulKernel::Generated,
            ..Options::default()
        };
        let step = compile(&g, &generated).unwrap();
        assert!(!step.kernels().contains("host gemm"));
    }
}
