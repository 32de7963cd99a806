//! `exp` and `tanh` of `f32` arrays as host routines on the widest vectors the selected ISA
//! has (512-bit with AVX-512F, 256-bit with AVX2 and FMA), for generated kernels to call on a
//! chunk of a row (`codegen::nest::wide`).
//!
//! Cranelift's x64 backend has 128-bit vectors only, so the inline functions of this module's
//! siblings compute four lanes per instruction. Their instruction sequences are long (about 20
//! arithmetic instructions for `exp`, 30 for `tanh`) and bound by the vector ports; the same
//! instructions on sixteen (or eight) lanes do more work per cycle.
//!
//! Each routine applies the same operations, in the same order and with the same constants, as
//! the inline `f32x4` code with FMA ([`super::emit_exp`], [`super::emit_tanh`]), so it returns
//! the same bits for every input (NaN inputs give a NaN). The algorithm is written once over
//! `Wide`, the operations of one vector, with three implementations: sixteen AVX-512 lanes,
//! eight AVX2 lanes, and one `f32` (the portable fallback, for the generic ISA, which the code
//! generator does not send here).

use super::exp::{EXP_F32, LN2_HI_F32, LN2_LO_F32, MAX_FINITE_ARG_F32, MIN_NORMAL_ARG_F32};
use super::logistic::{TANH_F32, TANH_SATURATED_F32, TANH_SMALL};
use crate::gemm::Isa;

/// A host routine over an array: replaces `n` floats at `p` with their function values.
pub type RowFn = unsafe extern "C" fn(*mut f32, i64);

/// `exp` of `n` floats at `p`, in place: the values of [`super::emit_exp`] (results below the
/// smallest normal number flush to `+0`).
///
/// # Safety
///
/// `p` must be valid for reads and writes of `n` floats (`n <= 0` touches nothing).
pub unsafe extern "C" fn adjoint_exp_f32(p: *mut f32, n: i64) {
    // SAFETY: the caller's contract.
    unsafe { map(p, n, Function::Exp) }
}

/// `tanh` of `n` floats at `p`, in place: the values of [`super::emit_tanh`].
///
/// # Safety
///
/// `p` must be valid for reads and writes of `n` floats (`n <= 0` touches nothing).
pub unsafe extern "C" fn adjoint_tanh_f32(p: *mut f32, n: i64) {
    // SAFETY: the caller's contract.
    unsafe { map(p, n, Function::Tanh) }
}

/// The functions this module computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Function {
    Exp,
    Tanh,
}

impl Function {
    #[inline(always)]
    fn apply<V: Wide>(self, x: V) -> V {
        match self {
            Function::Exp => exp(x),
            Function::Tanh => tanh(x),
        }
    }
}

/// True when the routines run on vectors wider than the inline code's for `isa` (AVX-512 or
/// AVX2): what the code generator asks before it sends rows here.
pub fn has_wide_routines(isa: Isa) -> bool {
    isa != Isa::Generic && isa.supported()
}

/// # Safety
///
/// As [`adjoint_exp_f32`].
unsafe fn map(p: *mut f32, n: i64, f: Function) {
    let Ok(n) = usize::try_from(n) else { return };
    // The selected ISA is one this CPU supports (`gemm::selected_isa` falls back otherwise).
    match crate::gemm::selected_isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX-512F; the caller's contract covers the array.
        Isa::Avx512 => unsafe { avx512::map(p, n, f) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX2 and FMA; the caller's contract covers the array.
        Isa::Avx2 => unsafe { avx2::map(p, n, f) },
        _ => {
            // SAFETY: the caller's contract.
            unsafe { map_scalar(p, n, f) }
        }
    }
}

/// [`map`] one `f32` at a time.
///
/// # Safety
///
/// `p` is valid for reads and writes of `n` floats.
unsafe fn map_scalar(p: *mut f32, n: usize, f: Function) {
    for i in 0..n {
        // SAFETY: `i < n`, within the caller's array.
        unsafe {
            let x = p.add(i);
            *x = f.apply(*x);
        }
    }
}

/// The operations of one vector of `f32` lanes the routines use. Masks are per lane; integer
/// operations act on the lanes' bits as `i32`, wrapping.
trait Wide: Copy {
    type Mask: Copy;
    fn splat(x: f32) -> Self;
    fn splat_bits(bits: u32) -> Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn div(self, o: Self) -> Self;
    /// `self * b + c`, rounded once.
    fn mul_add(self, b: Self, c: Self) -> Self;
    fn and(self, o: Self) -> Self;
    fn or(self, o: Self) -> Self;
    fn xor(self, o: Self) -> Self;
    /// `self` where `m` is false, `+0` where it is true.
    fn zero_where(self, m: Self::Mask) -> Self;
    /// `self < o`, false for NaN.
    fn lt(self, o: Self) -> Self::Mask;
    /// `self < o`, true for NaN.
    fn lt_or_nan(self, o: Self) -> Self::Mask;
    /// `self > o`, true for NaN.
    fn gt_or_nan(self, o: Self) -> Self::Mask;
    /// `t` where `m`, `f` elsewhere.
    fn select(m: Self::Mask, t: Self, f: Self) -> Self;
    /// The bits of `self` plus those of `t` shifted left by `s`.
    fn add_shifted_bits(self, t: Self, s: u32) -> Self;
}

/// `c[0] + c[1] x + …` by Horner's rule with one rounding per step, as `Lanes::poly` with FMA.
#[inline(always)]
fn poly<V: Wide>(x: V, c: &[f32]) -> V {
    let (last, rest) = c.split_last().expect("a polynomial");
    let mut acc = V::splat(*last);
    for &k in rest.iter().rev() {
        acc = acc.mul_add(x, V::splat(k));
    }
    acc
}

/// The rounding constant `1.5 · 2^23` (`exp::magic` for f32).
const MAGIC: f32 = 12_582_912.0;

/// `[1, 1, EXP_F32…]` times `s^k`: the coefficients of `exp::exp_poly_scaled`.
const fn exp_coefficients(s: f32) -> [f32; 7] {
    let mut c = [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    let mut k = 0;
    while k < EXP_F32.len() {
        c[k + 2] = EXP_F32[k];
        k += 1;
    }
    let mut sk = 1.0;
    let mut k = 0;
    while k < c.len() {
        c[k] *= sk;
        sk *= s;
        k += 1;
    }
    c
}

const EXP_POLY: [f32; 7] = exp_coefficients(1.0);
const EXP_POLY_TWICE: [f32; 7] = exp_coefficients(2.0);

/// `exp::exp_flush` for f32 with FMA.
#[inline(always)]
fn exp<V: Wide>(x: V) -> V {
    let tiny = x.lt(V::splat(MIN_NORMAL_ARG_F32));
    let huge_or_nan = x.gt_or_nan(V::splat(MAX_FINITE_ARG_F32));
    let magic = V::splat(MAGIC);
    let t = x.mul_add(V::splat(std::f32::consts::LOG2_E), magic);
    let n = t.sub(magic);
    let r = n.mul_add(V::splat(-LN2_HI_F32), x);
    let r = n.mul_add(V::splat(-LN2_LO_F32), r);
    let scaled = poly(r, &EXP_POLY).add_shifted_bits(t, 23);
    let saturated = x.add(V::splat(f32::INFINITY));
    V::select(huge_or_nan, saturated, scaled).zero_where(tiny)
}

/// `logistic::tanh_vector` for f32 with FMA.
#[inline(always)]
fn tanh<V: Wide>(x: V) -> V {
    let a = x.and(V::splat_bits(0x7fff_ffff));
    let z = a.mul(a);
    let p = poly(z, &TANH_F32);
    let small = a.mul(z).mul_add(p, a);

    let saturated = V::splat(TANH_SATURATED_F32);
    let a_clamped = V::select(saturated.lt(a), saturated, a);
    // `exp::exp_clamped(a_clamped, 2.0)`.
    let magic = V::splat(MAGIC);
    let t = a_clamped.mul_add(V::splat(2.0 * std::f32::consts::LOG2_E), magic);
    let n = t.sub(magic);
    let h = n.mul_add(V::splat(-std::f32::consts::LN_2 / 2.0), a_clamped);
    let e = poly(h, &EXP_POLY_TWICE).add_shifted_bits(t, 23);
    let one = V::splat(1.0);
    let large = one.sub(V::splat(2.0).div(e.add(one)));

    let is_small = a.lt_or_nan(V::splat(TANH_SMALL as f32));
    V::select(is_small, small, large).or(x.xor(a))
}

impl Wide for f32 {
    type Mask = bool;
    #[inline(always)]
    fn splat(x: f32) -> Self {
        x
    }
    #[inline(always)]
    fn splat_bits(bits: u32) -> Self {
        f32::from_bits(bits)
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self + o
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        self - o
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        self * o
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        self / o
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        f32::mul_add(self, b, c)
    }
    #[inline(always)]
    fn and(self, o: Self) -> Self {
        f32::from_bits(self.to_bits() & o.to_bits())
    }
    #[inline(always)]
    fn or(self, o: Self) -> Self {
        f32::from_bits(self.to_bits() | o.to_bits())
    }
    #[inline(always)]
    fn xor(self, o: Self) -> Self {
        f32::from_bits(self.to_bits() ^ o.to_bits())
    }
    #[inline(always)]
    fn zero_where(self, m: bool) -> Self {
        if m {
            0.0
        } else {
            self
        }
    }
    #[inline(always)]
    fn lt(self, o: Self) -> bool {
        self < o
    }
    #[inline(always)]
    fn lt_or_nan(self, o: Self) -> bool {
        self < o || self.is_nan() || o.is_nan()
    }
    #[inline(always)]
    fn gt_or_nan(self, o: Self) -> bool {
        self > o || self.is_nan() || o.is_nan()
    }
    #[inline(always)]
    fn select(m: bool, t: Self, f: Self) -> Self {
        if m {
            t
        } else {
            f
        }
    }
    #[inline(always)]
    fn add_shifted_bits(self, t: Self, s: u32) -> Self {
        f32::from_bits(self.to_bits().wrapping_add(t.to_bits().wrapping_shl(s)))
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Function, Wide};
    use std::arch::x86_64::*;

    /// Sixteen lanes in a 512-bit register. Its operations are plain intrinsics; they are
    /// compiled for AVX-512F where they are inlined, into [`map`].
    #[derive(Clone, Copy)]
    pub(super) struct Zmm(__m512);

    /// `f` of `n` floats at `p`, in place: whole vectors, then the tail under a mask.
    ///
    /// # Safety
    ///
    /// The CPU has AVX-512F, and `p` is valid for reads and writes of `n` floats.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn map(p: *mut f32, n: usize, f: Function) {
        let whole = n / 16 * 16;
        let mut i = 0;
        while i < whole {
            // SAFETY: `i + 16 <= n`.
            unsafe {
                let x = Zmm(_mm512_loadu_ps(p.add(i)));
                _mm512_storeu_ps(p.add(i), f.apply(x).0);
            }
            i += 16;
        }
        if whole < n {
            let m: __mmask16 = (1u16 << (n - whole)) - 1;
            // SAFETY: the masked lanes are the `n - whole` floats left; the others are not
            // touched.
            unsafe {
                let x = Zmm(_mm512_maskz_loadu_ps(m, p.add(whole)));
                _mm512_mask_storeu_ps(p.add(whole), m, f.apply(x).0);
            }
        }
    }

    // SAFETY (every `unsafe` block below): the intrinsics need AVX-512F, which `map` (their
    // only caller, inlined) is compiled for and checked at run time by its caller.
    impl Wide for Zmm {
        type Mask = __mmask16;
        #[inline(always)]
        fn splat(x: f32) -> Self {
            Zmm(unsafe { _mm512_set1_ps(x) })
        }
        #[inline(always)]
        fn splat_bits(bits: u32) -> Self {
            Zmm(unsafe { _mm512_castsi512_ps(_mm512_set1_epi32(bits as i32)) })
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            Zmm(unsafe { _mm512_add_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            Zmm(unsafe { _mm512_sub_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn mul(self, o: Self) -> Self {
            Zmm(unsafe { _mm512_mul_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn div(self, o: Self) -> Self {
            Zmm(unsafe { _mm512_div_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn mul_add(self, b: Self, c: Self) -> Self {
            Zmm(unsafe { _mm512_fmadd_ps(self.0, b.0, c.0) })
        }
        #[inline(always)]
        fn and(self, o: Self) -> Self {
            Zmm(unsafe { bits(_mm512_and_si512(int(self.0), int(o.0))) })
        }
        #[inline(always)]
        fn or(self, o: Self) -> Self {
            Zmm(unsafe { bits(_mm512_or_si512(int(self.0), int(o.0))) })
        }
        #[inline(always)]
        fn xor(self, o: Self) -> Self {
            Zmm(unsafe { bits(_mm512_xor_si512(int(self.0), int(o.0))) })
        }
        #[inline(always)]
        fn zero_where(self, m: __mmask16) -> Self {
            Zmm(unsafe { _mm512_maskz_mov_ps(!m, self.0) })
        }
        #[inline(always)]
        fn lt(self, o: Self) -> __mmask16 {
            unsafe { _mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.0, o.0) }
        }
        #[inline(always)]
        fn lt_or_nan(self, o: Self) -> __mmask16 {
            unsafe { _mm512_cmp_ps_mask::<_CMP_NGE_UQ>(self.0, o.0) }
        }
        #[inline(always)]
        fn gt_or_nan(self, o: Self) -> __mmask16 {
            unsafe { _mm512_cmp_ps_mask::<_CMP_NLE_UQ>(self.0, o.0) }
        }
        #[inline(always)]
        fn select(m: __mmask16, t: Self, f: Self) -> Self {
            Zmm(unsafe { _mm512_mask_blend_ps(m, f.0, t.0) })
        }
        #[inline(always)]
        fn add_shifted_bits(self, t: Self, s: u32) -> Self {
            unsafe {
                let shifted = _mm512_sll_epi32(int(t.0), _mm_cvtsi32_si128(s as i32));
                Zmm(bits(_mm512_add_epi32(int(self.0), shifted)))
            }
        }
    }

    #[inline(always)]
    unsafe fn int(x: __m512) -> __m512i {
        unsafe { _mm512_castps_si512(x) }
    }

    #[inline(always)]
    unsafe fn bits(x: __m512i) -> __m512 {
        unsafe { _mm512_castsi512_ps(x) }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Function, Wide};
    use std::arch::x86_64::*;

    /// Eight lanes in a 256-bit register; a mask is a vector of all-ones or all-zeros lanes.
    /// Its operations are plain intrinsics, inlined into [`map`], which is compiled for AVX2
    /// and FMA.
    #[derive(Clone, Copy)]
    pub(super) struct Ymm(__m256);

    /// `f` of `n` floats at `p`, in place: whole vectors, then the tail through a copy.
    ///
    /// # Safety
    ///
    /// The CPU has AVX2 and FMA, and `p` is valid for reads and writes of `n` floats.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn map(p: *mut f32, n: usize, f: Function) {
        let whole = n / 8 * 8;
        let mut i = 0;
        while i < whole {
            // SAFETY: `i + 8 <= n`.
            unsafe {
                let x = Ymm(_mm256_loadu_ps(p.add(i)));
                _mm256_storeu_ps(p.add(i), f.apply(x).0);
            }
            i += 8;
        }
        if whole < n {
            let mut tail = [0.0f32; 8];
            let rest = n - whole;
            // SAFETY: the `rest` floats after `whole` are the caller's; `tail` holds 8.
            unsafe {
                std::ptr::copy_nonoverlapping(p.add(whole), tail.as_mut_ptr(), rest);
                let y = f.apply(Ymm(_mm256_loadu_ps(tail.as_ptr())));
                _mm256_storeu_ps(tail.as_mut_ptr(), y.0);
                std::ptr::copy_nonoverlapping(tail.as_ptr(), p.add(whole), rest);
            }
        }
    }

    // SAFETY (every `unsafe` block below): the intrinsics need AVX2 (and FMA for
    // `mul_add`), which `map` (their only caller, inlined) is compiled for and its caller
    // checked.
    impl Wide for Ymm {
        type Mask = __m256;
        #[inline(always)]
        fn splat(x: f32) -> Self {
            Ymm(unsafe { _mm256_set1_ps(x) })
        }
        #[inline(always)]
        fn splat_bits(bits: u32) -> Self {
            Ymm(unsafe { _mm256_castsi256_ps(_mm256_set1_epi32(bits as i32)) })
        }
        #[inline(always)]
        fn add(self, o: Self) -> Self {
            Ymm(unsafe { _mm256_add_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn sub(self, o: Self) -> Self {
            Ymm(unsafe { _mm256_sub_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn mul(self, o: Self) -> Self {
            Ymm(unsafe { _mm256_mul_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn div(self, o: Self) -> Self {
            Ymm(unsafe { _mm256_div_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn mul_add(self, b: Self, c: Self) -> Self {
            Ymm(unsafe { _mm256_fmadd_ps(self.0, b.0, c.0) })
        }
        #[inline(always)]
        fn and(self, o: Self) -> Self {
            Ymm(unsafe { _mm256_and_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn or(self, o: Self) -> Self {
            Ymm(unsafe { _mm256_or_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn xor(self, o: Self) -> Self {
            Ymm(unsafe { _mm256_xor_ps(self.0, o.0) })
        }
        #[inline(always)]
        fn zero_where(self, m: __m256) -> Self {
            Ymm(unsafe { _mm256_andnot_ps(m, self.0) })
        }
        #[inline(always)]
        fn lt(self, o: Self) -> __m256 {
            unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(self.0, o.0) }
        }
        #[inline(always)]
        fn lt_or_nan(self, o: Self) -> __m256 {
            unsafe { _mm256_cmp_ps::<_CMP_NGE_UQ>(self.0, o.0) }
        }
        #[inline(always)]
        fn gt_or_nan(self, o: Self) -> __m256 {
            unsafe { _mm256_cmp_ps::<_CMP_NLE_UQ>(self.0, o.0) }
        }
        #[inline(always)]
        fn select(m: __m256, t: Self, f: Self) -> Self {
            Ymm(unsafe { _mm256_blendv_ps(f.0, t.0, m) })
        }
        #[inline(always)]
        fn add_shifted_bits(self, t: Self, s: u32) -> Self {
            unsafe {
                let shifted =
                    _mm256_sll_epi32(_mm256_castps_si256(t.0), _mm_cvtsi32_si128(s as i32));
                let sum = _mm256_add_epi32(_mm256_castps_si256(self.0), shifted);
                Ymm(_mm256_castsi256_ps(sum))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector implementations agree with the scalar one to the bit (NaN with NaN) over a
    /// sweep, in whole vectors and tails.
    #[test]
    fn wide_and_scalar_routines_agree() {
        let mut xs: Vec<f32> = (-40_000..40_000).map(|i| i as f32 * 0.0037).collect();
        xs.extend([
            0.0,
            -0.0,
            f32::MIN_POSITIVE,
            1e-40,
            -1e-40,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -100.0,
            -87.4,
            88.8,
            9.0,
            10.5,
            0.625,
            -0.625,
        ]);
        xs.push(0.3); // an odd length: a masked tail
        type Map = unsafe fn(*mut f32, usize, Function);
        let mut paths: Vec<(&str, Map)> = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if Isa::Avx512.supported() {
                paths.push(("avx512", avx512::map));
            }
            if Isa::Avx2.supported() {
                paths.push(("avx2", avx2::map));
            }
        }
        for (isa, path) in paths {
            for f in [Function::Exp, Function::Tanh] {
                let mut wide = xs.clone();
                // SAFETY: the CPU supports the path; `wide` holds `xs.len()` floats.
                unsafe { path(wide.as_mut_ptr(), wide.len(), f) };
                for (i, (&x, &y)) in xs.iter().zip(&wide).enumerate() {
                    let want = f.apply(x);
                    assert!(
                        want.to_bits() == y.to_bits() || (want.is_nan() && y.is_nan()),
                        "{isa} {f:?}({x:e}) at {i}: {y:e}, scalar {want:e}"
                    );
                }
            }
        }
    }
}
