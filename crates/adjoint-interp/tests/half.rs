//! The 16-bit floats: every node that touches `bf16` or `f16` computes in `f32` and rounds its
//! result once, to nearest with ties to even.

mod common;

use adjoint_interp::run;
use adjoint_ir::random_graph::{random_feeds, random_graph_with, RandomGraphConfig};
use adjoint_ir::{bf16, f16, Builder, DType, HostTensor};
use common::*;

fn bf16s(v: &[f32]) -> HostTensor {
    HostTensor::from_bf16([v.len()], v.iter().map(|&x| bf16::from_f32(x)).collect()).unwrap()
}

fn bf16_bits(t: &HostTensor) -> Vec<u16> {
    t.as_bf16().unwrap().iter().map(|h| h.to_bits()).collect()
}

#[test]
fn bf16_add_rounds_the_f32_sum_to_nearest_even() {
    let b = Builder::new("add");
    let x = b.input("x", DType::Bf16, [3]);
    let y = b.input("y", DType::Bf16, [3]);
    let z = x + y;
    // 1 + 2^-8 is a tie between 1 and 1 + 2^-7: even is 1. 1 + 2^-7 + 2^-8 ties up to
    // 1 + 2^-6. 1 + 3 * 2^-9 is above the tie.
    let got = eval(
        &b,
        z,
        &feeds(vec![
            ("x", bf16s(&[1.0, 1.0 + 2f32.powi(-7), 1.0])),
            (
                "y",
                bf16s(&[2f32.powi(-8), 2f32.powi(-8), 3.0 * 2f32.powi(-9)]),
            ),
        ]),
    );
    assert_eq!(bf16_bits(&got), vec![0x3F80, 0x3F82, 0x3F81]);
}

#[test]
fn matmul_and_sum_accumulate_in_f32() {
    // 1 + 256 * 2^-9: rounding after every addition would stay at 1; one rounding of the f32
    // total gives 1.5.
    let n = 257;
    let mut v = vec![2f32.powi(-9); n];
    v[0] = 1.0;
    let b = Builder::new("acc");
    let x = b.input("x", DType::Bf16, [n]);
    let s = x.sum(&[0]);
    let got = eval(&b, s, &feeds(vec![("x", bf16s(&v))]));
    assert_eq!(got.as_bf16().unwrap()[0].to_f32(), 1.5);

    let b = Builder::new("mm");
    let x = b.input("x", DType::F16, [1, n]);
    let w = b.input("w", DType::F16, [n, 1]);
    let y = x.matmul(w);
    let xs = HostTensor::from_f64_as(DType::F16, [1, n], &vec![1.0; n]).unwrap();
    let ws: Vec<f64> = v.iter().map(|&x| x as f64 * 0.25).collect();
    let ws = HostTensor::from_f64_as(DType::F16, [n, 1], &ws).unwrap();
    let got = eval(&b, y, &feeds(vec![("x", xs), ("w", ws)]));
    assert_eq!(got.as_f16().unwrap()[0], f16::from_f32(0.375));
}

#[test]
fn casts_to_16_bits_round_through_f32() {
    // 1 + 2^-8 + 2^-30 rounds straight to bf16 as 1 + 2^-7 (above the tie), but the cast goes
    // through f32: 1 + 2^-8 there, then a tie to even: 1.
    let b = Builder::new("cast");
    let x = b.input("x", DType::F64, [2]);
    let y = x.cast(DType::Bf16);
    let v = 1.0 + 2f64.powi(-8) + 2f64.powi(-30);
    let got = eval(&b, y, &feeds(vec![("x", f64s(&[2], &[v, 1e40]))]));
    assert_eq!(bf16_bits(&got), vec![0x3F80, 0x7F80]);

    let b = Builder::new("cast_back");
    let x = b.input("x", DType::F16, [3]);
    let y = x.cast(DType::I32);
    let xs = HostTensor::from_f64_as(DType::F16, [3], &[-2.5, 70000.0, 7.0]).unwrap();
    let got = eval(&b, y, &feeds(vec![("x", xs)]));
    // 70000 overflows f16 to inf, which saturates to i32::MAX.
    assert_eq!(got.as_i32().unwrap(), &[-2, i32::MAX, 7]);
}

#[test]
fn f16_overflows_to_infinity_and_keeps_subnormals() {
    let b = Builder::new("mul");
    let x = b.input("x", DType::F16, [3]);
    let y = x * x.scalar_like(2.0);
    let xs = HostTensor::from_f64_as(DType::F16, [3], &[40000.0, 2f64.powi(-24), -1.0]).unwrap();
    let got = eval(&b, y, &feeds(vec![("x", xs)]));
    let bits: Vec<u16> = got.as_f16().unwrap().iter().map(|h| h.to_bits()).collect();
    assert_eq!(bits, vec![0x7C00, 0x0002, 0xC000]);
}

#[test]
fn comparisons_and_selects_of_16_bit_values_are_exact() {
    let b = Builder::new("cmp");
    let x = b.input("x", DType::Bf16, [3]);
    let y = b.input("y", DType::Bf16, [3]);
    let m = x.lt(y);
    let z = m.select(x, y);
    b.output("m", m);
    let got = eval(
        &b,
        z,
        &feeds(vec![
            ("x", bf16s(&[1.0, 3.0, -0.0])),
            ("y", bf16s(&[2.0, 2.0, 0.0])),
        ]),
    );
    assert_eq!(bf16_bits(&got), vec![0x3F80, 0x4000, 0x0000]);
}

#[test]
fn random_16_bit_graphs_evaluate_to_their_dtype() {
    for float in [DType::Bf16, DType::F16] {
        for seed in 0..30 {
            let mut config = RandomGraphConfig::new(60);
            config.float = Some(float);
            let g = random_graph_with(seed, &config);
            let out = run(&g, &random_feeds(&g, seed))
                .unwrap_or_else(|e| panic!("{float} seed {seed}: {e}"));
            for (name, t) in &out.outputs {
                assert_eq!(t.dtype(), float, "{name}");
            }
        }
    }
}
