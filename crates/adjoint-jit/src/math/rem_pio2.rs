//! Exact reduction of any finite `f64` modulo `π/2` (Payne–Hanek), for the `sin` / `cos` lanes
//! whose argument is too large for the inline Cody–Waite reduction of [`super::trig`].
//!
//! `x = m · 2^e` with an integer `m < 2^53`. Of `x · 2/π`, only the value modulo 4 matters (the
//! quadrant and the remainder), so the bits of `2/π` whose product with `m · 2^e` is a multiple
//! of 4 are skipped, and the next 256 bits are multiplied by `m` in integer arithmetic. That
//! gives the quadrant and 126 bits of the fraction exactly (to one unit of 2^-126), whatever
//! the size of `x`: the remainder of the `f64` closest to a multiple of `π/2` is about 2^-61
//! of a quadrant, so at least 60 significant bits are left after the cancellation. The
//! fraction is then multiplied by `π/2` in double-length arithmetic.
//!
//! A generated kernel calls [`rem_pio2_lanes_f32`] or [`rem_pio2_lanes_f64`] once per vector
//! that has a lane beyond the inline reduction's range; everything else stays inline.

/// The binary expansion of `2/π`: word `k` holds the bits of weight `2^-(64k+1)` to
/// `2^-(64k+64)`. 20 words cover the largest `f64` exponent plus the four words of the product.
/// Reproduced by `gen_coefficients.py`.
const TWO_OVER_PI: [u64; 20] = [
    0xa2f9836e4e441529,
    0xfc2757d1f534ddc0,
    0xdb6295993c439041,
    0xfe5163abdebbc561,
    0xb7246e3a424dd2e0,
    0x06492eea09d1921c,
    0xfe1deb1cb129a73e,
    0xe88235f52ebb4484,
    0xe99c7026b45f7e41,
    0x3991d639835339f4,
    0x9c845f8bbdf9283b,
    0x1ff897ffde05980f,
    0xef2f118b5a0a6d1f,
    0x6d367ecf27cb09b7,
    0x4f463f669e5fea2d,
    0x7527bac7ebe5f17b,
    0x3d0739f78a5292ea,
    0x6bfb5fb11f8d5d08,
    0x56033046fc7b6bab,
    0xf0cfbc209af4361d,
];

/// `π/2 = PIO2_HI + PIO2_LO` to about 2^-107 relative.
const PIO2_HI: f64 = std::f64::consts::FRAC_PI_2;
const PIO2_LO: f64 = 6.123_233_995_736_766e-17;

/// Words of `2/π` multiplied by the mantissa.
const WORDS: usize = 4;

/// `x` reduced modulo `π/2`: `(q, y0, y1)` with `x = n·π/2 + (y0 + y1)`, `q = n mod 4`,
/// `|y0 + y1| <= π/4` (up to rounding) and `|y1| <= ulp(y0)/2`; the error of `y0 + y1` is far
/// below an ulp of it for every finite `x`.
///
/// `|x| <= π/4` is returned as `(0, x, 0)`; infinities and NaN give `(0, NaN, 0)`.
pub fn rem_pio2(x: f64) -> (u32, f64, f64) {
    if !x.is_finite() {
        return (0, f64::NAN, 0.0);
    }
    let a = x.abs();
    if a <= std::f64::consts::FRAC_PI_4 {
        return (0, x, 0.0);
    }
    // a > π/4 is normal: a = m · 2^e with the implicit bit set, e >= -53.
    let bits = a.to_bits();
    let m = (bits & ((1 << 52) - 1)) | (1 << 52);
    let e = ((bits >> 52) as i64) - 1075;

    // Word k contributes m · TWO_OVER_PI[k] · 2^(e - 64(k+1)), a multiple of 4 while
    // e - 64(k+1) >= 2: start at the first word where that fails.
    let k0 = if e > 65 { (e - 65 + 63) / 64 } else { 0 } as usize;
    // p = m · (the four words from k0), five 64-bit limbs, least significant first; the value
    // is p · 2^-s.
    let mut p = [0_u64; WORDS + 1];
    let mut carry: u128 = 0;
    for i in 0..WORDS {
        let word = TWO_OVER_PI[k0 + WORDS - 1 - i];
        let t = u128::from(m) * u128::from(word) + carry;
        p[i] = t as u64;
        carry = t >> 64;
    }
    p[WORDS] = carry as u64;
    let s = 64 * (k0 as i64 + WORDS as i64) - e;
    // 191 <= s <= 309: the window of p from bit s-126 to s+1 is the value modulo 4 with 126
    // fraction bits. The words left out after k0+3 add less than m < 2^53 units of p, far
    // below bit s-126 >= 65, so they change the window by at most one unit.
    debug_assert!((191..=309).contains(&s), "shift {s} for {x}");
    let shift = (s - 126) as usize;
    let (limb, bit) = (shift / 64, shift % 64);
    let low = u128::from(p[limb]) | (u128::from(p[limb + 1]) << 64);
    let mut w = low >> bit;
    if bit > 0 {
        w |= u128::from(p[limb + 2]) << (128 - bit);
    }

    // Round to the nearest quadrant; the fraction f · 2^-126 is in [-1/2, 1/2).
    let n = (w.wrapping_add(1 << 125) >> 126) as u32 & 3;
    let f = w.wrapping_sub(u128::from(n) << 126) as i128;
    let f_hi = f as f64;
    let f_lo = (f - f_hi as i128) as f64;
    let scale = 2.0_f64.powi(-126);
    let (r_hi, r_lo) = (f_hi * scale, f_lo * scale);

    // (r_hi + r_lo) · π/2 in double length.
    let y0 = r_hi * PIO2_HI;
    let err = r_hi.mul_add(PIO2_HI, -y0);
    let y1 = err + (r_hi * PIO2_LO + r_lo * PIO2_HI);
    let s0 = y0 + y1;
    let s1 = y1 - (s0 - y0);
    if x < 0.0 {
        ((4 - n) & 3, -s0, -s1)
    } else {
        (n, s0, s1)
    }
}

/// Bytes of the stack slot a kernel passes to [`rem_pio2_lanes_f32`] / [`rem_pio2_lanes_f64`]:
/// four 16-byte vectors, `x`, `y0`, `y1` and the quadrants `q`.
pub(crate) const LANES_SLOT_BYTES: u32 = 64;

/// The magnitude beyond which [`rem_pio2_lanes_f32`] replaces a lane's inline reduction.
pub(crate) const LIMIT_F32: f32 = 1.0e5;
/// The magnitude beyond which [`rem_pio2_lanes_f64`] replaces a lane's inline reduction.
pub(crate) const LIMIT_F64: f64 = 1.0e6;

/// For generated code: of the first `lanes` lanes of the `f32x4` `x` at byte 0 of `slot`,
/// those with `|x| > LIMIT_F32` (infinities too, NaN not) get their exact reduction written
/// over the inline one: `y0` (the remainder rounded to `f32`) at byte 16, `y1` (what that
/// rounding left out) at byte 32 and the quadrant (`i32`) at byte 48.
///
/// # Safety
///
/// `slot` must be valid for reading and writing [`LANES_SLOT_BYTES`] bytes, 4-byte aligned.
pub(crate) unsafe extern "C" fn rem_pio2_lanes_f32(slot: *mut u8, lanes: u64) {
    let slot = slot.cast::<f32>();
    for i in 0..lanes.min(4) as usize {
        // SAFETY: lane `i < 4` of each of the four vectors of the slot, inside its 64 bytes
        // (the caller's contract); nothing else accesses the slot during the call.
        unsafe {
            let x = slot.add(i).read();
            // The kernel's ordered comparison: false for NaN.
            let beyond = x.abs() > LIMIT_F32;
            if !beyond {
                continue;
            }
            let (q, y0, y1) = rem_pio2(f64::from(x));
            let hi = (y0 + y1) as f32;
            let lo = ((y0 - f64::from(hi)) + y1) as f32;
            slot.add(4 + i).write(hi);
            slot.add(8 + i).write(lo);
            slot.add(12 + i).cast::<i32>().write(q as i32);
        }
    }
}

/// For generated code: as [`rem_pio2_lanes_f32`] for the `f64x2` at byte 0 of `slot` and
/// `|x| > LIMIT_F64`, with `i64` quadrants.
///
/// # Safety
///
/// `slot` must be valid for reading and writing [`LANES_SLOT_BYTES`] bytes, 8-byte aligned.
pub(crate) unsafe extern "C" fn rem_pio2_lanes_f64(slot: *mut u8, lanes: u64) {
    let slot = slot.cast::<f64>();
    for i in 0..lanes.min(2) as usize {
        // SAFETY: lane `i < 2` of each of the four vectors of the slot, inside its 64 bytes
        // (the caller's contract); nothing else accesses the slot during the call.
        unsafe {
            let x = slot.add(i).read();
            let beyond = x.abs() > LIMIT_F64;
            if !beyond {
                continue;
            }
            let (q, y0, y1) = rem_pio2(x);
            slot.add(2 + i).write(y0);
            slot.add(4 + i).write(y1);
            slot.add(6 + i).cast::<i64>().write(i64::from(q));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::{FRAC_PI_2, PI};

    /// `sin(x)` from the reduction, with the remainder's correction to first order.
    fn sin_via(x: f64) -> f64 {
        let (q, y0, y1) = rem_pio2(x);
        let (s, c) = (y0.sin() + y1 * y0.cos(), y0.cos() - y1 * y0.sin());
        match q {
            0 => s,
            1 => c,
            2 => -s,
            _ => -c,
        }
    }

    #[test]
    fn small_arguments_are_returned_unchanged() {
        for x in [0.0, -0.0, 1e-300, 0.5, -0.78] {
            let (q, y0, y1) = rem_pio2(x);
            assert_eq!((q, y0.to_bits(), y1), (0, x.to_bits(), 0.0));
        }
    }

    #[test]
    fn non_finite_arguments_give_nan() {
        for x in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
            assert!(rem_pio2(x).1.is_nan(), "{x}");
        }
    }

    #[test]
    fn quadrants_of_moderate_arguments() {
        // 1, 2, 3, 4 quarter turns (plus a little) land in quadrants 1, 2, 3, 0.
        for (k, want) in [(1.0, 1), (2.0, 2), (3.0, 3), (4.0, 0), (-1.0, 3), (-2.0, 2)] {
            let x = k * FRAC_PI_2 + 0.1;
            let (q, y0, _) = rem_pio2(x);
            assert_eq!(q, want, "{x}");
            assert!((y0 - 0.1).abs() < 1e-14, "{x}: {y0}");
        }
        let (q, y0, _) = rem_pio2(PI);
        assert_eq!(q, 2);
        // π in f64 is below π by 1.2246e-16.
        assert!((y0 + 1.224_646_799_147_353_2e-16).abs() < 1e-31, "{y0}");
    }

    #[test]
    fn matches_the_sine_of_libm_over_the_whole_range() {
        // Known values, and glibc's `sin` (which also reduces exactly) at every binade.
        assert!((sin_via(1e22) - -0.852_200_849_767_188_8).abs() < 1e-16);
        assert!((sin_via(f64::MAX) - 0.004_961_954_789_184_062).abs() < 1e-16);
        let mut x = 1.0_f64;
        while x.is_finite() {
            for v in [x, x * 1.3, -x * 1.7] {
                let (got, want) = (sin_via(v), v.sin());
                assert!((got - want).abs() <= 2e-16, "sin({v:e}): {got} vs {want}");
            }
            x *= 2.0;
        }
    }

    #[test]
    fn the_hardest_f64_argument_keeps_its_remainder() {
        // 6381956970095103 · 2^797 is the f64 closest to a multiple of π/2 (its remainder is
        // about 4.687e-19): a reduction short of the needed bits gets it wrong entirely.
        let x = 6_381_956_970_095_103.0 * 2.0_f64.powi(797);
        let (_, y0, y1) = rem_pio2(x);
        let r = y0 + y1;
        assert!(
            (r.abs() - 4.687_165_924_254_628e-19).abs() < 1e-33,
            "remainder {r:e}"
        );
    }

    #[test]
    fn the_vector_helpers_replace_only_lanes_beyond_the_limit() {
        // x, y0, y1, q as four f32x4; the inline results are marked 7.
        let mut slot = [0u32; 16];
        let xs = [1.0e6_f32, 5.0, f32::NAN, -16_777_216.0];
        for i in 0..4 {
            slot[i] = xs[i].to_bits();
            slot[4 + i] = 7.0_f32.to_bits();
            slot[8 + i] = 7.0_f32.to_bits();
            slot[12 + i] = 7;
        }
        // SAFETY: a 64-byte, 4-byte aligned slot owned by this test.
        unsafe { rem_pio2_lanes_f32(slot.as_mut_ptr().cast(), 4) };
        for i in [1, 2] {
            assert_eq!(f32::from_bits(slot[4 + i]), 7.0, "lane {i}");
            assert_eq!(slot[12 + i], 7, "lane {i}");
        }
        for i in [0, 3] {
            let (q, y0, y1) = rem_pio2(f64::from(xs[i]));
            assert_eq!(f32::from_bits(slot[4 + i]), (y0 + y1) as f32, "lane {i}");
            assert_eq!(slot[12 + i], q, "lane {i}");
        }
        // Only live lanes are touched.
        let mut slot = [0u64; 8];
        slot[0] = 1.0e300_f64.to_bits();
        slot[1] = 1.0e300_f64.to_bits();
        // SAFETY: a 64-byte, 8-byte aligned slot owned by this test.
        unsafe { rem_pio2_lanes_f64(slot.as_mut_ptr().cast(), 1) };
        assert_eq!(f64::from_bits(slot[2]), rem_pio2(1.0e300).1);
        assert_eq!(slot[3], 0);
    }
}
