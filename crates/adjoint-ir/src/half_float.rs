//! The 16-bit floats `bf16` and `f16`: conversions from and to `f32`.
//!
//! A 16-bit value widens to `f32` exactly. An `f32` narrows by rounding to nearest with ties to
//! even (what `vcvtneps2bf16` and `vcvtps2ph` do); overflow gives infinity, values below the
//! smallest subnormal round to a signed zero, and a NaN stays a NaN with its sign and the top
//! bits of its payload, made quiet. Every other narrowing (from `f64`, from `i32`) goes through
//! `f32` first: the value is rounded to `f32`, then to the 16-bit type. The conversions are the
//! `half` crate's; this module fixes which of its functions the IR uses and documents their
//! exact semantics, which compiled code reproduces bit for bit.

pub use half::{bf16, f16};

use crate::DType;

/// `x` rounded to `bf16` (to nearest, ties to even).
pub fn f32_to_bf16(x: f32) -> bf16 {
    bf16::from_f32(x)
}

/// `x` rounded to `f16` (to nearest, ties to even).
pub fn f32_to_f16(x: f32) -> f16 {
    f16::from_f32(x)
}

/// `x` rounded to the values a float dtype holds, as an `f32`: itself for `f32` and `f64`
/// (an `f32` is already exact in both), the nearest `bf16` or `f16` (ties to even) widened back
/// otherwise. Panics for `i32` and `bool`.
pub fn round_f32(dtype: DType, x: f32) -> f32 {
    match dtype {
        DType::F32 | DType::F64 => x,
        DType::Bf16 => f32_to_bf16(x).to_f32(),
        DType::F16 => f32_to_f16(x).to_f32(),
        DType::I32 | DType::Bool => panic!("round_f32: {dtype} is not a float dtype"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bf(x: u32) -> u16 {
        f32_to_bf16(f32::from_bits(x)).to_bits()
    }

    fn h(x: f32) -> u16 {
        f32_to_f16(x).to_bits()
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(bf(0x3F80_0000), 0x3F80); // 1.0 exact
        assert_eq!(bf(0x3F80_7FFF), 0x3F80); // below the half: down
        assert_eq!(bf(0x3F80_8000), 0x3F80); // tie, even below: down
        assert_eq!(bf(0x3F81_8000), 0x3F82); // tie, odd below: up
        assert_eq!(bf(0x3F80_8001), 0x3F81); // above the half: up
        assert_eq!(bf(0xBF80_8001), 0xBF81); // sign kept
        assert_eq!(bf(0x7F7F_FFFF), 0x7F80); // f32::MAX rounds to infinity
        assert_eq!(bf(0x7F80_0000), 0x7F80); // inf
        assert_eq!(bf(0xFF80_0000), 0xFF80); // -inf
        assert_eq!(bf(0x8000_0000), 0x8000); // -0
        assert_eq!(bf(0x0000_8000), 0x0000); // subnormal tie to even zero
        assert_eq!(bf(0x0001_8000), 0x0002); // subnormal tie up to even
        assert_eq!(bf(0x007F_FFFF), 0x0080); // largest subnormal rounds to the smallest normal
    }

    #[test]
    fn bf16_keeps_nan_quiet_with_its_sign_and_top_payload() {
        assert_eq!(bf(0x7FC0_0000), 0x7FC0);
        assert_eq!(bf(0xFFC0_0000), 0xFFC0);
        // A signalling NaN whose payload lies in the dropped bits stays a NaN (never becomes inf).
        assert_eq!(bf(0x7F80_0001), 0x7FC0);
        assert_eq!(bf(0x7FA0_0000), 0x7FE0);
        assert!(f32::from_bits(0x7F80_0001).is_nan());
    }

    #[test]
    fn f16_rounds_to_nearest_even() {
        assert_eq!(h(1.0), 0x3C00);
        assert_eq!(h(1.0 + 2f32.powi(-11)), 0x3C00); // tie, even below: down
        assert_eq!(h(1.0 + 3.0 * 2f32.powi(-11)), 0x3C02); // tie, odd below: up
        assert_eq!(h(1.0 + 2f32.powi(-11) + 2f32.powi(-20)), 0x3C01); // above the half: up
        assert_eq!(h(65504.0), 0x7BFF); // largest finite
        assert_eq!(h(65519.99), 0x7BFF); // below the half to the next binade: largest finite
        assert_eq!(h(65520.0), 0x7C00); // the tie rounds to even: infinity
        assert_eq!(h(f32::INFINITY), 0x7C00);
        assert_eq!(h(f32::NEG_INFINITY), 0xFC00);
        assert_eq!(h(-0.0), 0x8000);
        assert_eq!(h(2f32.powi(-24)), 0x0001); // smallest subnormal
        assert_eq!(h(2f32.powi(-25)), 0x0000); // its half: tie to even zero
        assert_eq!(h(3.0 * 2f32.powi(-25)), 0x0002); // 1.5 ulp: tie up to even
        assert_eq!(h(2f32.powi(-25) * 1.0001), 0x0001); // above the half: up
        assert_eq!(h(-(2f32.powi(-14))), 0x8400); // smallest normal
        assert_eq!(h(f32::from_bits(1)), 0x0000); // f32 subnormal: zero
    }

    #[test]
    fn f16_keeps_nan_quiet_with_its_sign_and_top_payload() {
        assert_eq!(h(f32::from_bits(0x7FC0_0000)), 0x7E00);
        assert_eq!(h(f32::from_bits(0xFFC0_0000)), 0xFE00);
        assert_eq!(h(f32::from_bits(0x7F80_0001)), 0x7E00);
        assert_eq!(h(f32::from_bits(0x7FA0_0000)), 0x7F00);
    }

    #[test]
    fn widening_is_exact() {
        for bits in [0u16, 0x0001, 0x03FF, 0x0400, 0x3C00, 0x7BFF, 0x8001, 0xFBFF] {
            let x = f16::from_bits(bits).to_f32();
            assert_eq!(h(x), bits);
        }
        for bits in [0u16, 0x0001, 0x007F, 0x0080, 0x3F80, 0x7F7F, 0x8001, 0xFF7F] {
            let x = bf16::from_bits(bits).to_f32();
            assert_eq!(x.to_bits(), (bits as u32) << 16);
            assert_eq!(f32_to_bf16(x).to_bits(), bits);
        }
    }

    #[test]
    fn round_f32_rounds_to_the_dtype() {
        assert_eq!(round_f32(DType::Bf16, 1.0 + 2f32.powi(-9)), 1.0);
        assert_eq!(round_f32(DType::F16, 1.0 + 2f32.powi(-12)), 1.0);
        assert_eq!(round_f32(DType::F32, 0.1), 0.1);
    }
}
