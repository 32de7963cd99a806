//! GFLOP/s of the host matmul kernel, one thread, for every ISA this CPU runs, on the W2/W4
//! shapes (or others given as `MxNxK`), in each layout the backward pass needs.
//! `cargo run --release -p adjoint-jit --example gemm_bench [128x1024x784 ...]`
//! (`GEMM_BENCH_ISA=avx512` limits it to one ISA; `GEMM_BENCH_LAYOUTS=1` adds `Aᵀ·B`, `A·Bᵀ`;
//! `GEMM_BENCH_ATTENTION=1` measures W4's batched attention products instead, with the strides
//! the compiled step gives them; `GEMM_BENCH_COLD=1` times each product with its operands
//! evicted from cache, as in a step.)
//! Each line is followed (unless `GEMM_BENCH_F32=1`) by the `bf16` product of the same shape (16-bit operands, then `f32`
//! operands rounded while packing, both with a `bf16` result) on the path generated code uses.

use adjoint_jit::gemm::{
    gemm_half_desc, sgemm_desc, GemmDesc, HalfOperand, HalfPath, HalfResult, HalfType, Isa,
    MAX_BATCH,
};
use std::time::{Duration, Instant};

/// The descriptor of an `m×n×k` product; `at`/`bt` read `A`/`B` transposed in memory.
fn desc(m: usize, n: usize, k: usize, at: bool, bt: bool) -> GemmDesc {
    let (mi, ni, ki) = (m as i64, n as i64, k as i64);
    let a = if at { [1, mi] } else { [ki, 1] };
    let b = if bt { [1, ki] } else { [ni, 1] };
    GemmDesc::unbatched(m, n, k, a, b, [ni, 1])
}

/// Best time of repeated runs over at least ~0.2 s (and at least 20 runs), the operands warm
/// in cache; with `GEMM_BENCH_COLD`, [`cold_time`] instead.
fn best_time(mut f: impl FnMut()) -> f64 {
    if std::env::var("GEMM_BENCH_COLD").is_ok() {
        return cold_time(f);
    }
    f();
    let start = Instant::now();
    let mut best = f64::INFINITY;
    let mut runs = 0;
    while runs < 20 || start.elapsed() < Duration::from_millis(200) {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
        runs += 1;
    }
    best
}

/// Median time of 15 runs, each after writing 64 MiB elsewhere, so that the operands and the
/// result come from memory, as a step's usually do (`GEMM_BENCH_COLD`): the rates `adjoint
/// profile` reports for a step's products are these, not the warm best.
fn cold_time(mut f: impl FnMut()) -> f64 {
    let mut other = vec![1.0f32; 16 << 20];
    let mut times: Vec<f64> = (0..15)
        .map(|_| {
            for x in other.iter_mut() {
                *x += 1.0;
            }
            std::hint::black_box(&other);
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// W4's batched attention products (8 sequences × 4 heads of 64 positions, head size 32, heads
/// interleaved in rows of 128), as `adjoint profile W4 --kernels` describes them: name, `m`,
/// `n`, `k`, strides of `A`, `B`, `C`, batch strides of each of the two batch dimensions.
#[allow(clippy::type_complexity)]
const ATTENTION: [(
    &str,
    i64,
    i64,
    i64,
    [i64; 2],
    [i64; 2],
    [i64; 2],
    [[i64; 3]; 2],
); 5] = [
    (
        "Q·Kᵀ",
        64,
        64,
        32,
        [128, 1],
        [1, 128],
        [64, 1],
        [[8192, 8192, 16384], [32, 32, 4096]],
    ),
    (
        "P·V",
        64,
        32,
        64,
        [64, 1],
        [128, 1],
        [32, 1],
        [[16384, 8192, 8192], [4096, 32, 2048]],
    ),
    (
        "Pᵀ·dO",
        64,
        32,
        64,
        [1, 64],
        [128, 1],
        [32, 1],
        [[16384, 8192, 8192], [4096, 32, 2048]],
    ),
    (
        "dS·K",
        64,
        32,
        64,
        [64, 1],
        [128, 1],
        [32, 1],
        [[16384, 8192, 8192], [4096, 32, 2048]],
    ),
    (
        "Qᵀ·dS",
        32,
        64,
        64,
        [1, 128],
        [64, 1],
        [64, 1],
        [[8192, 16384, 8192], [32, 4096, 2048]],
    ),
];

/// Measures the [`ATTENTION`] products on every ISA in `isas`.
fn attention(isas: &[Isa]) {
    println!("W4 attention product, isa: best time, GFLOP/s (one thread, batch 8 x 4)");
    for (name, m, n, k, a, b, c, bs) in ATTENTION {
        let mut batch_strides = [[0; 3]; MAX_BATCH];
        batch_strides[0] = bs[0];
        batch_strides[1] = bs[1];
        let mut batch = [1; MAX_BATCH];
        batch[0] = 8;
        batch[1] = 4;
        let d = GemmDesc {
            m,
            n,
            k,
            a,
            b,
            c,
            batch,
            batch_strides,
            split_rows: 1,
            unit: 1,
            wide: [1; 3],
        }
        .with_split();
        let [la, lb, lc] = d.extents();
        let (av, ar) = on_a_line(la as usize, |i| (i % 7) as f32 * 0.1);
        let (bv, br) = on_a_line(lb as usize, |i| (i % 5) as f32 * 0.2);
        let (mut cv, cr) = on_a_line(lc as usize, |_| 0.0);
        let (av, bv, cv) = (&av[ar], &bv[br], &mut cv[cr]);
        for &isa in isas {
            let t = best_time(|| sgemm_desc(isa, &d, av, bv, cv, 0..d.units()));
            let gflops = 2.0 * (32 * m * n * k) as f64 / t / 1e9;
            println!(
                "{name} {m}x{n}x{k} batch 8x4 {isa}: {:.1} us, {gflops:.1} GFLOP/s",
                t * 1e6
            );
        }
    }
}

/// `len` floats `f(i)` in a buffer, and the range of them, which starts on a cache line as
/// the arenas' tensors (and PyTorch's) do: a `Vec<f32>` from glibc starts 16 bytes past one,
/// so that every vector load of a row would straddle two lines.
fn on_a_line(len: usize, f: impl Fn(usize) -> f32) -> (Vec<f32>, std::ops::Range<usize>) {
    let mut v = vec![0.0f32; len + 15];
    let at = v.as_ptr().align_offset(64);
    for (i, x) in v[at..at + len].iter_mut().enumerate() {
        *x = f(i);
    }
    (v, at..at + len)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shapes: Vec<(usize, usize, usize)> = if args.is_empty() {
        vec![
            (128, 1024, 784),
            (256, 512, 256),
            (512, 128, 128),
            (64, 128, 64),
            (128, 10, 1024),
            (512, 256, 128),
            (512, 512, 128),
            (512, 128, 512),
        ]
    } else {
        args.iter()
            .map(|s| {
                let v: Vec<usize> = s.split('x').map(|x| x.parse().expect("a size")).collect();
                (v[0], v[1], v[2])
            })
            .collect()
    };
    let isas: Vec<Isa> = match std::env::var("GEMM_BENCH_ISA") {
        Ok(name) => vec![Isa::parse(&name).expect("avx512, avx2 or generic")],
        Err(_) => Isa::supported_all(),
    };
    if std::env::var("GEMM_BENCH_ATTENTION").is_ok() {
        attention(&isas);
        return;
    }
    let layouts: &[(bool, bool, &str)] = if std::env::var("GEMM_BENCH_LAYOUTS").is_ok() {
        &[
            (false, false, "A·B"),
            (true, false, "Aᵀ·B"),
            (false, true, "A·Bᵀ"),
        ]
    } else {
        &[(false, false, "A·B")]
    };
    let f32_only = std::env::var("GEMM_BENCH_F32").is_ok();
    println!("shape, layout, isa: best time, GFLOP/s (one thread)");
    for (m, n, k) in shapes {
        let (av, ar) = on_a_line(m * k, |i| (i % 7) as f32 * 0.1);
        let (bv, br) = on_a_line(k * n, |i| (i % 5) as f32 * 0.2);
        let (mut cv, cr) = on_a_line(m * n, |_| 0.0);
        let (a, b, c) = (&av[ar], &bv[br], &mut cv[cr]);
        for &(at, bt, name) in layouts {
            let d = desc(m, n, k, at, bt);
            for &isa in &isas {
                let t = best_time(|| sgemm_desc(isa, &d, a, b, c, 0..d.units()));
                let gflops = 2.0 * (m * n * k) as f64 / t / 1e9;
                println!(
                    "{m}x{n}x{k} {name} {isa}: {:.1} us, {gflops:.1} GFLOP/s",
                    t * 1e6
                );
                if f32_only {
                    continue;
                }
                let bits = |x: &[f32]| -> Vec<u16> {
                    x.iter()
                        .map(|&v| adjoint_ir::bf16::from_f32(v).to_bits())
                        .collect()
                };
                let (ha, hb) = (bits(a), bits(b));
                let mut hc = vec![0u16; m * n];
                for (what, oa, ob) in [
                    ("bf16", HalfOperand::Half(&ha), HalfOperand::Half(&hb)),
                    ("f32->bf16", HalfOperand::Wide(a), HalfOperand::Wide(b)),
                ] {
                    let t = best_time(|| {
                        gemm_half_desc(
                            isa,
                            HalfPath::Native,
                            HalfType::Bf16,
                            &d,
                            oa,
                            ob,
                            HalfResult::Half(&mut hc),
                            0..d.units(),
                        )
                    });
                    let gflops = 2.0 * (m * n * k) as f64 / t / 1e9;
                    println!(
                        "{m}x{n}x{k} {name} {isa} {what}: {:.1} us, {gflops:.1} GFLOP/s",
                        t * 1e6
                    );
                }
            }
        }
    }
}
