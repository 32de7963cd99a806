//! The 16-bit floats in compiled code, rounding every result (`Options::excess_precision`
//! off; `tests/excess_precision.rs` covers it on): the conversions agree with the
//! interpreter's bit for bit (every special value, vector and scalar paths), exactly rounded
//! operations agree exactly, and products, reductions and scatter-adds accumulate in f32 as
//! the interpreter does.

mod common;

use adjoint_ir::{bf16, f16, Builder, DType, Feeds, Graph, HostTensor, Rng};
use adjoint_jit::Options;
use common::{check_graph_in, exact_modes, modes, run_jit};

/// f32 bit patterns that probe every branch of the conversions: ties at both precisions, the
/// overflow thresholds, subnormals of both formats, NaNs with payloads, infinities, zeros, and
/// random patterns.
fn probe_bits() -> Vec<u32> {
    let mut v: Vec<u32> = vec![
        0x0000_0000,
        0x8000_0000,
        0x3F80_0000,
        0x3F80_8000,
        0x3F81_8000,
        0x3F80_7FFF,
        0x3F80_8001,
        0x7F7F_FFFF,
        0xFF7F_FFFF,
        0x7F80_0000,
        0xFF80_0000,
        0x7FC0_0000,
        0xFFC0_0000,
        0x7F80_0001,
        0x7FA0_0000,
        0xFFBF_FFFF,
        0x0000_0001,
        0x0000_8000,
        0x0001_8000,
        0x007F_FFFF,
        0x0080_0000,
        0x477F_E000,
        0x477F_EFFF,
        0x477F_F000,
        0x4780_0000,
        0xC77F_F000,
        0x3880_0000,
        0x387F_FFFF,
        0x3800_0000,
        0x3300_0000,
        0x3300_0001,
        0x33C0_0000,
        0x32FF_FFFF,
        0x3F80_1000,
        0x3F80_3000,
        0x3F80_2000,
        0x3F80_2001,
    ];
    let mut rng = Rng::new(11);
    for _ in 0..2000 {
        v.push(rng.below(1 << 32) as u32);
    }
    // Values near 1 and in f16's subnormal range, where the rounding bits matter most.
    for _ in 0..500 {
        v.push(0x3F80_0000 | rng.below(1 << 16) as u32);
        v.push(0x3300_0000 + rng.below(0x0580_0000) as u32);
    }
    v
}

fn bits_of(t: &HostTensor) -> Vec<u32> {
    match t.dtype() {
        DType::F32 => t.as_f32().unwrap().iter().map(|x| x.to_bits()).collect(),
        DType::Bf16 => t
            .as_bf16()
            .unwrap()
            .iter()
            .map(|x| x.to_bits() as u32)
            .collect(),
        DType::F16 => t
            .as_f16()
            .unwrap()
            .iter()
            .map(|x| x.to_bits() as u32)
            .collect(),
        other => panic!("{other}"),
    }
}

/// Runs `g` in every mode, rounding every 16-bit result, and asserts every output equal, bit
/// for bit, to the interpreter's.
fn assert_bit_exact(g: &Graph, feeds: &Feeds) {
    assert_bit_exact_in(g, feeds, &exact_modes());
}

/// [`assert_bit_exact`] in each of `modes`.
fn assert_bit_exact_in(g: &Graph, feeds: &Feeds, modes: &[Options]) {
    let want = adjoint_interp::run(g, feeds).unwrap();
    for opts in modes {
        let (_, out) = run_jit(g, feeds, opts);
        for (name, t) in &want.outputs {
            let got = out.output(name).unwrap();
            let (a, b) = (bits_of(got), bits_of(t));
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                assert_eq!(
                    x,
                    y,
                    "{} {name}[{i}] (fusion {}, threads {}): {x:#x} vs {y:#x}",
                    g.name(),
                    opts.fusion,
                    opts.threads
                );
            }
        }
    }
}

#[test]
fn conversions_agree_bit_for_bit() {
    let bits = probe_bits();
    // An odd count: whole vectors and a scalar tail.
    let n = bits.len() | 1;
    let mut xs: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
    xs.resize(n, 1.5);
    for d in [DType::Bf16, DType::F16] {
        let b = Builder::new(&format!("round_trip_{d}"));
        let x = b.input("x", DType::F32, [n]);
        let low = x.cast(d);
        b.output("low", low);
        b.output("back", low.cast(DType::F32));
        // Every f32 → 16-bit → f32 pattern, through a transposed (strided, lane by lane) view.
        let m = b.input("m", DType::F32, [n, 1]);
        b.output("strided", m.transpose(0, 1).cast(d));
        let g = b.finish();
        let mut feeds = Feeds::new();
        feeds.insert("x".into(), HostTensor::from_f32([n], xs.clone()).unwrap());
        feeds.insert(
            "m".into(),
            HostTensor::from_f32([n, 1], xs.clone()).unwrap(),
        );
        assert_bit_exact(&g, &feeds);
        // A cast rounds with excess precision too.
        assert_bit_exact_in(&g, &feeds, &modes());
    }
}

#[test]
fn every_16_bit_pattern_loads_and_stores_unchanged() {
    let n = 1 << 16;
    for d in [DType::Bf16, DType::F16] {
        let b = Builder::new(&format!("load_{d}"));
        let x = b.input("x", d, [n]);
        b.output("wide", x.cast(DType::F32));
        b.output("neg", -x);
        // Lane by lane (scalar loads) through a transposed view.
        let square = x.reshape([256, 256]).transpose(0, 1);
        b.output("strided", square.cast(DType::F32));
        let g = b.finish();
        let data = match d {
            DType::Bf16 => {
                HostTensor::from_bf16([n], (0..n).map(|i| bf16::from_bits(i as u16)).collect())
            }
            _ => HostTensor::from_f16([n], (0..n).map(|i| f16::from_bits(i as u16)).collect()),
        }
        .unwrap();
        let mut feeds = Feeds::new();
        feeds.insert("x".into(), data);
        assert_bit_exact(&g, &feeds);
    }
}

#[test]
fn exactly_rounded_ops_agree_bit_for_bit() {
    for d in [DType::Bf16, DType::F16] {
        // `chains`: also outputs of two or more operations, which excess precision rounds
        // once where the interpreter rounds each.
        let graph = |chains: bool| {
            let b = Builder::new(&format!("exact_{d}_{chains}"));
            let x = b.input("x", d, [4099]);
            let y = b.input("y", d, [4099]);
            b.output("add", x + y);
            b.output("sub", x - y);
            b.output("mul", x * y);
            b.output("div", x / y);
            b.output("max", x.maximum(y));
            b.output("iota", b.iota(d, [4099], 0) * x.scalar_like(0.37));
            if chains {
                b.output("sqrt", (x * x).sqrt());
                b.output("fma_like", x * y + x);
                b.output("i32", (x * x.scalar_like(1000.0)).cast(DType::I32).cast(d));
            }
            b.finish()
        };
        let mut rng = Rng::new(5);
        let mut feeds = Feeds::new();
        for name in ["x", "y"] {
            let v: Vec<f64> = (0..4099).map(|_| rng.normal() * 100.0).collect();
            feeds.insert(name.into(), HostTensor::from_f64_as(d, [4099], &v).unwrap());
        }
        assert_bit_exact(&graph(true), &feeds);
        // One operation rounds once either way: with excess precision, the store rounds the
        // f32 result (a quotient has any f32 pattern) as the interpreter does.
        assert_bit_exact_in(&graph(false), &feeds, &modes());
    }
}

#[test]
fn products_and_reductions_accumulate_in_f32() {
    for d in [DType::Bf16, DType::F16] {
        let b = Builder::new(&format!("contract_{d}"));
        let x = b.input("x", d, [33, 70]);
        let w = b.parameter("w", d, [70, 19]);
        let bias = b.parameter("b", d, [19]);
        let h = (x.matmul(w) + bias).tanh();
        b.output("h", h);
        b.output("rows", x.sum(&[1]));
        b.output("cols", x.max(&[0]));
        b.output("softmax", h.softmax(-1));
        let idx = b.input("idx", DType::I32, [33]);
        b.output("scatter", h.scatter_add(idx, 0, 5));
        b.update(
            w,
            w - w.scalar_like(0.5)
                * x.transpose(0, 1)
                    .matmul(h.matmul(w.transpose(0, 1)).matmul(w)),
        );
        let g = b.finish();
        let mut feeds = common::random_feeds(&g, 3, 5);
        // Many equal indices: the scatter sums long runs, where rounding each addition to 16
        // bits would drift far from the f32 sum.
        feeds.insert(
            "idx".into(),
            HostTensor::from_i32([33], (0..33).map(|i| i % 2).collect()).unwrap(),
        );
        // Rounding every result: the update subtracts a product of magnitude 2000 from
        // weights near 1, so any rounding difference in the chain (excess precision) moves it
        // by several of its units.
        check_graph_in(&g, &feeds, &exact_modes());
    }
}

#[test]
fn the_arena_counts_two_bytes_per_16_bit_value() {
    let arena = |d: DType| {
        let b = Builder::new("chain");
        let x = b.input("x", d, [256, 256]);
        let y = (x * x).tanh() + x;
        b.output("y", y.sum(&[1]));
        b.output("z", y);
        let g = b.finish();
        let opts = Options {
            fusion: false,
            cache: false,
            ..Options::default()
        };
        adjoint_jit::compile(&g, &opts).unwrap().stats().arena_bytes
    };
    let (wide, low) = (arena(DType::F32), arena(DType::Bf16));
    assert!(low > 0 && 2 * low <= wide + 4096, "{low} vs {wide}");
}

#[test]
fn the_host_kernel_multiplies_16_bit_operands_on_every_isa_here() {
    use adjoint_jit::gemm::{
        gemm_half_desc, GemmDesc, HalfOperand, HalfPath, HalfResult, HalfType, Isa, MAX_BATCH,
    };
    let mut rng = Rng::new(21);
    let paths = Isa::supported_all()
        .into_iter()
        .flat_map(|isa| [HalfPath::Native, HalfPath::Dot, HalfPath::Widen].map(|p| (isa, p)));
    for (isa, path) in paths {
        for (t, d) in [(HalfType::Bf16, DType::Bf16), (HalfType::F16, DType::F16)] {
            // Plain, transposed A, transposed B, a narrow product, odd k and tile edges.
            for &(m, n, k, at, bt) in &[
                (37, 45, 70, false, false),
                (9, 33, 1, false, false),
                (17, 65, 37, true, true),
                (64, 33, 129, true, false),
                (20, 70, 31, false, true),
                (130, 10, 64, true, true),
            ] {
                let bits = |len: usize, rng: &mut Rng| -> Vec<u16> {
                    let v: Vec<f64> = (0..len).map(|_| rng.normal()).collect();
                    let h = HostTensor::from_f64_as(d, [len], &v).unwrap();
                    match d {
                        DType::Bf16 => h.as_bf16().unwrap().iter().map(|x| x.to_bits()).collect(),
                        _ => h.as_f16().unwrap().iter().map(|x| x.to_bits()).collect(),
                    }
                };
                let (a, b) = (bits(m * k, &mut rng), bits(k * n, &mut rng));
                let widen = |x: u16| match d {
                    DType::Bf16 => bf16::from_bits(x).to_f64(),
                    _ => f16::from_bits(x).to_f64(),
                };
                let sa = if at { [1, m as i64] } else { [k as i64, 1] };
                let sb = if bt { [1, k as i64] } else { [n as i64, 1] };
                let desc = GemmDesc {
                    m: m as i64,
                    n: n as i64,
                    k: k as i64,
                    a: sa,
                    b: sb,
                    c: [n as i64, 1],
                    batch: [1; MAX_BATCH],
                    batch_strides: [[0; 3]; MAX_BATCH],
                    split_rows: 1,
                    unit: 1,
                    wide: [0; 3],
                }
                .with_split();
                let (ha, hb) = (HalfOperand::Half(&a), HalfOperand::Half(&b));
                let mut c = vec![f32::NAN; m * n];
                let all = 0..desc.units();
                let wide_c = HalfResult::Wide(&mut c);
                gemm_half_desc(isa, path, t, &desc, ha, hb, wide_c, all.clone());
                // The 16-bit result is each f32 sum rounded once.
                let mut low = vec![0xFFFFu16; m * n];
                gemm_half_desc(
                    isa,
                    path,
                    t,
                    &desc,
                    ha,
                    hb,
                    HalfResult::Half(&mut low),
                    all.clone(),
                );
                let round = |x: f32| match d {
                    DType::Bf16 => bf16::from_f32(x).to_bits(),
                    _ => f16::from_f32(x).to_bits(),
                };
                for (i, (&l, &w)) in low.iter().zip(&c).enumerate() {
                    assert_eq!(
                        l,
                        round(w),
                        "{isa} {path:?} {t:?} {m}x{n}x{k} 16-bit C [{i}]"
                    );
                }
                // f32 operands, rounded by the kernel as it reads them (a fused cast), give
                // the bits of the rounded operands. The f32 values are chosen so that
                // rounding matters: each 16-bit value plus a fraction of its last place.
                let jitter = |bits: &[u16], rng: &mut Rng| -> Vec<f32> {
                    bits.iter()
                        .map(|&x| {
                            let w = widen(x) as f32;
                            let ulp = if d == DType::Bf16 {
                                2f32.powi(-8)
                            } else {
                                2f32.powi(-11)
                            };
                            let f = (rng.uniform() as f32 - 0.5) * 0.99;
                            let y = w + w.abs() * ulp * f;
                            assert_eq!(round(y), x);
                            y
                        })
                        .collect()
                };
                let (wa, wb) = (jitter(&a, &mut rng), jitter(&b, &mut rng));
                let mut fused = vec![0xFFFFu16; m * n];
                gemm_half_desc(
                    isa,
                    path,
                    t,
                    &desc,
                    HalfOperand::Wide(&wa),
                    HalfOperand::Wide(&wb),
                    HalfResult::Half(&mut fused),
                    all,
                );
                assert_eq!(fused, low, "{isa} {path:?} {t:?} {m}x{n}x{k}: f32 operands");
                // One unit at a time (as threads run them) gives the same bits.
                let mut parts = vec![0xFFFFu16; m * n];
                for u in 0..desc.units() {
                    let part = HalfResult::Half(&mut parts);
                    gemm_half_desc(isa, path, t, &desc, ha, hb, part, u..u + 1);
                }
                assert_eq!(parts, low, "{isa} {path:?} {t:?} {m}x{n}x{k}: unit by unit");
                for i in 0..m {
                    for j in 0..n {
                        let (mut want, mut mag) = (0.0f64, 0.0f64);
                        for p in 0..k {
                            let x = widen(a[(i as i64 * sa[0] + p as i64 * sa[1]) as usize]);
                            let y = widen(b[(p as i64 * sb[0] + j as i64 * sb[1]) as usize]);
                            want += x * y;
                            mag += (x * y).abs();
                        }
                        let got = c[i * n + j] as f64;
                        assert!(
                            (got - want).abs() <= 1e-6 * mag + 1e-30,
                            "{isa} {path:?} {t:?} {m}x{n}x{k} at {at} bt {bt} [{i},{j}]: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
