//! The host matmul kernel: every ISA this CPU runs (AVX-512, AVX2, portable) against an f64
//! triple loop on sizes around its blocking (tiles of 14×32, 6×16 and 4×8, contraction blocks of
//! up to 256, row blocks of 168/144/128), in every layout, batched, with narrow products, and
//! with results independent of the cut into units; and inside compiled graphs against the
//! interpreter on odd sizes, every layout, batched and broadcast operands, with an epilogue, on
//! one and two threads — and the Cranelift-generated matmul on the same graphs.

mod common;

use adjoint_ir::{Builder, DType};
use adjoint_jit::gemm::{sgemm_desc, sgemm_row_major_on, GemmDesc, Isa, MAX_BATCH};
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

/// Small integers (`A`) and quarters (`B`): every partial sum of the sizes below is exact in
/// f32, so every kernel must match the f64 reference exactly.
fn exact_operands(m: usize, n: usize, k: usize) -> (Vec<f32>, Vec<f32>) {
    let a = (0..m * k).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
    let b = (0..k * n)
        .map(|i| ((i * 5) % 13) as f32 * 0.25 - 1.5)
        .collect();
    (a, b)
}

/// Values with rounding, for tests of the order of sums.
fn rounding_operands(m: usize, n: usize, k: usize) -> (Vec<f32>, Vec<f32>) {
    let a = (0..m * k).map(|i| ((i as f32) * 0.37).sin()).collect();
    let b = (0..k * n).map(|i| ((i as f32) * 0.11).cos()).collect();
    (a, b)
}

/// Lays out the row-major `rows×cols` matrix `x` transposed in memory when `t`; returns the
/// buffer and the (row, column) strides that read it as `x`.
fn layout(x: &[f32], rows: usize, cols: usize, t: bool) -> (Vec<f32>, [i64; 2]) {
    if !t {
        return (x.to_vec(), [cols as i64, 1]);
    }
    let mut out = vec![0.0; x.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = x[r * cols + c];
        }
    }
    (out, [1, rows as i64])
}

/// The descriptor of one `m×n×k` product with the given strides, split for the thread pool.
fn desc(m: usize, n: usize, k: usize, a: [i64; 2], b: [i64; 2], c: [i64; 2]) -> GemmDesc {
    common::gemm_desc(m, n, k, a, b, c)
}

/// Sizes around every ISA's tile, contraction block and row block, and narrow products.
const SIZES: [(usize, usize, usize); 29] = [
    (1, 1, 1),
    (1, 1, 0),
    (0, 3, 2),
    (6, 16, 1),
    (5, 15, 3),
    (7, 17, 257),
    (13, 33, 300),
    (14, 32, 256),
    (15, 31, 255),
    (28, 64, 512),
    (29, 65, 513),
    (145, 20, 10),
    (169, 33, 7),
    (3, 4100, 2),
    (150, 40, 513),
    (100, 10, 784),
    (257, 10, 31),
    (128, 10, 1024),
    // The dot-product path with one row at a time: `N` of 11 to 16, and an odd `M`.
    (33, 16, 100),
    (9, 13, 70),
    (37, 7, 65),
    (10, 100, 33),
    (4, 257, 100),
    (31, 7, 13),
    (1, 100, 257),
    // Packed `B` panels reused by a second row block; two column blocks.
    (200, 70, 300),
    (20, 4100, 3),
    // `A·Bᵀ` packing each panel of `B` for every contraction block at once.
    (20, 1000, 513),
    // `B` packed by the first tile of each panel as it reads it (AVX-512), the last panel
    // 26 columns wide; (29, 65, 513) and (200, 70, 300) have last panels of 1 and 6.
    (40, 90, 300),
];

#[test]
fn every_isa_matches_a_triple_loop_in_every_layout() {
    let isas = Isa::supported_all();
    assert!(isas.contains(&Isa::Generic));
    for (m, n, k) in SIZES {
        let (a, b) = exact_operands(m, n, k);
        let want = reference(&a, &b, m, n, k);
        for (at, bt, ct) in [
            (false, false, false),
            (true, false, false),
            (false, true, false),
            (true, true, false),
            (false, false, true),
            (false, true, true),
        ] {
            let (ab, sa) = layout(&a, m, k, at);
            let (bb, sb) = layout(&b, k, n, bt);
            let sc = if ct { [1, m as i64] } else { [n as i64, 1] };
            let d = desc(m, n, k, sa, sb, sc);
            for &isa in &isas {
                let mut c = vec![f32::NAN; m * n];
                sgemm_desc(isa, &d, &ab, &bb, &mut c, 0..d.units());
                for i in 0..m {
                    for j in 0..n {
                        let got = c[if ct { j * m + i } else { i * n + j }];
                        assert_eq!(
                            got as f64,
                            want[i * n + j],
                            "{isa} {m}x{n}x{k} (Aᵀ {at}, Bᵀ {bt}, Cᵀ {ct}) at ({i}, {j})"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn every_isa_computes_batched_and_broadcast_products() {
    // Two batch dimensions [2, 3]; `B` shared along the inner one (stride 0).
    let (m, n, k) = (17, 35, 40);
    let (a, b) = exact_operands(6 * m, 2 * n, k);
    let a_mat = m * k;
    let b_mat = k * n;
    let mut d = desc(m, n, k, [k as i64, 1], [n as i64, 1], [n as i64, 1]);
    d.batch[MAX_BATCH - 2] = 2;
    d.batch[MAX_BATCH - 1] = 3;
    d.batch_strides[MAX_BATCH - 2] = [3 * a_mat as i64, b_mat as i64, 3 * (m * n) as i64];
    d.batch_strides[MAX_BATCH - 1] = [a_mat as i64, 0, (m * n) as i64];
    for isa in Isa::supported_all() {
        let mut c = vec![f32::NAN; 6 * m * n];
        sgemm_desc(isa, &d, &a, &b, &mut c, 0..d.units());
        for outer in 0..2 {
            for inner in 0..3 {
                let e = outer * 3 + inner;
                let want = reference(
                    &a[e * a_mat..(e + 1) * a_mat],
                    &b[outer * b_mat..(outer + 1) * b_mat],
                    m,
                    n,
                    k,
                );
                let got = &c[e * m * n..(e + 1) * m * n];
                for (idx, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(*g as f64, *w, "{isa} batch ({outer}, {inner}) at {idx}");
                }
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_the_cut_into_units() {
    for (m, n, k) in [(150, 70, 600), (128, 10, 1024), (9, 300, 200), (300, 9, 70)] {
        let (a, b) = rounding_operands(m, n, k);
        let want = reference(&a, &b, m, n, k);
        for (at, bt) in [(false, false), (true, false), (false, true)] {
            let (ab, sa) = layout(&a, m, k, at);
            let (bb, sb) = layout(&b, k, n, bt);
            let base = desc(m, n, k, sa, sb, [n as i64, 1]);
            for isa in Isa::supported_all() {
                let mut whole = vec![0.0; m * n];
                sgemm_desc(isa, &base, &ab, &bb, &mut whole, 0..base.units());
                for (g, w) in whole.iter().zip(&want) {
                    assert!(
                        (*g as f64 - w).abs() <= 1e-4 * w.abs().max(1.0),
                        "{isa}: {g} vs {w}"
                    );
                }
                // Rows or columns cut in units of every size from 1 up, run one unit at a
                // time (as threads would), give the same bits.
                for (split_rows, unit) in [(1, 1), (1, 5), (1, 50), (0, 1), (0, 7), (0, 64)] {
                    let d = GemmDesc {
                        split_rows,
                        unit,
                        ..base
                    };
                    let mut parts = vec![f32::NAN; m * n];
                    for u in 0..d.units() {
                        sgemm_desc(isa, &d, &ab, &bb, &mut parts, u..u + 1);
                    }
                    assert!(
                        parts
                            .iter()
                            .zip(&whole)
                            .all(|(x, y)| x.to_bits() == y.to_bits()),
                        "{isa} {m}x{n}x{k} (Aᵀ {at}, Bᵀ {bt}) cut {split_rows}/{unit}"
                    );
                }
            }
        }
    }
}

/// AVX2's path for narrow products whose `A` is stored transposed (a classifier's weight
/// gradient) sums each output as the tile kernels do: over each contraction block (equal
/// blocks of at most 256) in order, one fused multiply-add per step from zero, the blocks'
/// sums then added in order.
#[test]
fn avx2_narrow_products_of_a_transposed_a_sum_in_the_tiles_order() {
    if !Isa::supported_all().contains(&Isa::Avx2) {
        return;
    }
    for (m, n, k) in [(100, 10, 784), (37, 7, 300), (9, 12, 64)] {
        let (a, b) = rounding_operands(m, n, k);
        let (ab, sa) = layout(&a, m, k, true);
        let d = desc(m, n, k, sa, [n as i64, 1], [n as i64, 1]);
        let mut c = vec![f32::NAN; m * n];
        sgemm_desc(Isa::Avx2, &d, &ab, &b, &mut c, 0..d.units());
        let block = k.div_ceil(k.div_ceil(256));
        for i in 0..m {
            for j in 0..n {
                let mut total = 0.0f32;
                for (q, p0) in (0..k).step_by(block).enumerate() {
                    let mut s = 0.0f32;
                    for p in p0..(p0 + block).min(k) {
                        s = a[i * k + p].mul_add(b[p * n + j], s);
                    }
                    total = if q == 0 { s } else { total + s };
                }
                assert_eq!(
                    c[i * n + j].to_bits(),
                    total.to_bits(),
                    "{m}x{n}x{k} at ({i}, {j})"
                );
            }
        }
    }
}

#[test]
fn row_major_entry_runs_every_isa() {
    let (m, n, k) = (37, 45, 70);
    let (a, b) = exact_operands(m, n, k);
    let want = reference(&a, &b, m, n, k);
    for isa in Isa::supported_all() {
        let mut c = vec![f32::NAN; m * n];
        sgemm_row_major_on(isa, &a, &b, &mut c, m, n, k);
        assert!(c.iter().zip(&want).all(|(g, w)| *g as f64 == *w), "{isa}");
    }
}

#[test]
fn isa_names_parse_and_the_portable_path_is_always_supported() {
    for isa in Isa::ALL {
        assert_eq!(Isa::parse(isa.name()), Some(isa));
    }
    assert_eq!(Isa::parse(" AVX512 "), Some(Isa::Avx512));
    assert_eq!(Isa::parse("sse"), None);
    assert!(Isa::Generic.supported());
    assert!(Isa::detect().supported());
    assert_eq!(Isa::supported_all()[0], Isa::detect());
}

#[test]
#[should_panic(expected = "addressing")]
fn the_safe_entry_rejects_short_operands() {
    let d = desc(4, 4, 4, [4, 1], [4, 1], [4, 1]);
    let mut c = vec![0.0; 16];
    sgemm_desc(
        Isa::Generic,
        &d,
        &[0.0; 15],
        &[0.0; 16],
        &mut c,
        0..d.units(),
    );
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
    {
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
