//! The AVX-512F path for classifier-shaped products: `N <= 16` columns, `A` with contiguous
//! rows (`x·W` with `W` of 10 columns). Each output is a dot product of a row of `A` with a
//! column of `B`, vectorized along the contraction: `B` is packed transposed (`N` rows of `k`,
//! a few KiB), rows of `A` are read in place once, and a kernel keeps two rows × `N` columns of
//! 16-lane partial sums in registers, summed across lanes at the end.
//!
//! Vectorizing along `k` uses every lane whatever `N` is; the tile kernels would fill 10 of
//! 16 lanes and read `A` as 14 broadcast streams (which alias in L1 when rows are 4 KiB apart).
//!
//! Each output's sum, per contraction block (of at most 256, the blocks depending on `k` only):
//! lane `l` accumulates the products of `p ≡ l (mod 16)` in order with one `fma` each, the 16
//! lanes are added in a fixed tree, and the blocks' sums are added in order. That depends on `k`
//! only, so
//! results do not depend on how rows are cut between threads. The caller decides to take this
//! path from the whole product, so that every unit of one product takes the same path.

use super::driver::{bt_stride, kc_step, DotBlock, Land, Operand, Product};
use super::lines::Lines;
use std::arch::x86_64::*;
use std::cell::RefCell;

/// Widest product this path takes.
pub(super) const MAX_N: usize = 16;
/// Longest contraction block: a block of `Bᵀ` (at most 16 KiB) stays in L1 while rows of `A`
/// stream past it.
const KC: usize = 256;
const _: () = assert!(KC >= super::driver::ONE_BLOCK_K);

thread_local! {
    /// `Bᵀ` of this thread's current product, reused across calls.
    static BT: RefCell<Lines> = const { RefCell::new(Lines::new()) };
}

/// True when the product of the whole `m×n×k` descriptor (`A` with column stride `a_cs`)
/// should take this path.
pub(super) fn suits(n: usize, k: usize, a_cs: isize) -> bool {
    n <= MAX_N && a_cs == 1 && k >= 64
}

/// `C = A·B` for an `m×k` `A` with contiguous rows (`a.cs == 1`) and a `k×n` `B`, `n <= 16`,
/// landing in `C` as `land` says (a [`Land::Step`] only for `k <= 256`, one block).
///
/// # Safety
/// The CPU must support AVX-512F; every element `(i < m, p < k)` of `a`, `(p < k, j < n)` of
/// `b` must be readable and every `(i < m, j < n)` of `c` writable and exclusively owned.
pub(super) unsafe fn sgemm(p: Product) {
    let Product {
        a,
        b,
        c,
        cs,
        m,
        n,
        k,
        land,
    } = p;
    debug_assert!(a.cs == 1 && n <= MAX_N && n > 0);
    debug_assert!(land == Land::Write || k <= KC);
    BT.with(|cell| {
        let mut bt = cell.borrow_mut();
        let ldbt = bt_stride(k);
        bt.grow(n * ldbt);
        // SAFETY: `B`'s elements `(p < k, j < n)` are readable (the caller's contract) and the
        // buffer holds `n·ldbt` floats; the caller checked the CPU.
        unsafe { pack_bt(bt.as_mut_ptr(), ldbt, b, n, k) };
        let step = kc_step(k, KC);
        for p0 in (0..k).step_by(step) {
            let t = DotBlock {
                p0,
                kc: step.min(k - p0),
                land: land.at(p0),
                ldbt,
                bt: bt.as_ptr(),
                c,
                cs,
            };
            macro_rules! rows {
                ($rows:literal, $i:expr, $($n:literal)*) => {
                    match n {
                        $(
                            // SAFETY: rows `$i..$i + $rows` of `A` and `C` are inside them;
                            // the caller checked the CPU.
                            $n => unsafe {
                                dot::<$rows, $n>(&t, a.ptr.offset($i as isize * a.rs), a.rs, $i)
                            },
                        )*
                        _ => unreachable!("{n} columns"),
                    }
                };
            }
            let pairs = if n <= 10 { m / 2 } else { 0 };
            for q in 0..pairs {
                rows!(2, 2 * q, 1 2 3 4 5 6 7 8 9 10);
            }
            for i in 2 * pairs..m {
                rows!(1, i, 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
            }
        }
    });
}

/// Writes `Bᵀ` (`n` rows of `k`, `ldbt` apart, `ldbt` a multiple of 16 at least `k`): row `j`
/// gathered from column `j` of `B` sixteen elements at a time.
///
/// # Safety
/// The CPU must support AVX-512F; `B`'s elements `(p < k, j < n)` are readable; `dst` holds
/// `n·ldbt` writable floats.
#[target_feature(enable = "avx512f")]
unsafe fn pack_bt(dst: *mut f32, ldbt: usize, b: Operand, n: usize, k: usize) {
    // Element offsets of sixteen consecutive rows, if they fit the gather's 32-bit indices.
    let fits = b.rs.checked_mul(15).is_some_and(|x| x <= i32::MAX as isize);
    // SAFETY (whole body): gathered lanes are rows `p < k` of column `j < n` (lanes past `k`
    // are masked off and not accessed); stores stay in row `j` of the buffer, whose `ldbt`
    // floats cover the rounded-up `k`.
    unsafe {
        if !fits {
            for p in 0..k {
                let row = b.ptr.offset(p as isize * b.rs);
                for j in 0..n {
                    *dst.add(j * ldbt + p) = *row.offset(j as isize * b.cs);
                }
            }
            return;
        }
        let lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
        let idx = _mm512_mullo_epi32(lanes, _mm512_set1_epi32(b.rs as i32));
        for j in 0..n {
            let col = b.ptr.offset(j as isize * b.cs);
            for p in (0..k).step_by(16) {
                let left = k - p;
                let mask: __mmask16 = if left >= 16 {
                    0xffff
                } else {
                    (1u16 << left) - 1
                };
                let base = col.offset(p as isize * b.rs);
                let v = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, idx, base);
                _mm512_storeu_ps(dst.add(j * ldbt + p), v);
            }
        }
    }
}

/// Rows `i0..i0+R` of `C` (`N` columns) from rows of `A` starting at `a` (`lda` apart), over
/// the contraction block of `t`.
///
/// # Safety
/// The CPU must support AVX-512F; `R` rows of `t.p0 + t.kc` contiguous floats from `a` are
/// readable, `t.bt` holds `N` rows as long, `t.ldbt` apart, and `C`'s rows `i0..i0+R` are
/// writable and exclusively owned.
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::needless_range_loop)]
unsafe fn dot<const R: usize, const N: usize>(t: &DotBlock, a: *const f32, lda: isize, i0: usize) {
    // SAFETY (whole body): the caller's contract bounds every address; the tail of `k` is
    // loaded under a mask (masked-off lanes are not accessed).
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); N]; R];
        let (k, a, bt) = (t.kc, a.add(t.p0), t.bt.add(t.p0));
        // One step of 16 contraction indices from `p`, the lanes outside `mask` zero.
        macro_rules! step {
            ($p:expr, $mask:expr) => {{
                let mut av = [_mm512_setzero_ps(); R];
                for r in 0..R {
                    av[r] = _mm512_maskz_loadu_ps($mask, a.offset(r as isize * lda).add($p));
                }
                for j in 0..N {
                    let bv = _mm512_maskz_loadu_ps($mask, bt.add(j * t.ldbt + $p));
                    for r in 0..R {
                        acc[r][j] = _mm512_fmadd_ps(av[r], bv, acc[r][j]);
                    }
                }
            }};
        }
        let full = k / 16 * 16;
        for p in (0..full).step_by(16) {
            step!(p, 0xffff);
        }
        if full < k {
            let mask: __mmask16 = (1u16 << (k - full)) - 1;
            step!(full, mask);
        }
        // Each accumulator's sixteen lanes summed, four accumulators at a time.
        let mut sums = [0.0f32; 2 * MAX_N + 4];
        for q in (0..R * N).step_by(4) {
            let v = |x: usize| {
                let a = q + x;
                if a < R * N {
                    acc[a / N][a % N]
                } else {
                    _mm512_setzero_ps()
                }
            };
            _mm_storeu_ps(sums.as_mut_ptr().add(q), reduce4(v(0), v(1), v(2), v(3)));
        }
        for r in 0..R {
            for j in 0..N {
                let at = (i0 + r) as isize * t.cs.0 + j as isize * t.cs.1;
                t.land.store(t.c.offset(at), sums[r * N + j]);
            }
        }
    }
}

/// The lane sums of four vectors, `[Σa, Σb, Σc, Σd]`, in a fixed tree: within each 128-bit
/// lane, lanes 0 + 2 and 1 + 3, then those two; then the four 128-bit lanes, upper half of
/// the vector onto the lower, then upper quarter onto the lower. Eight shuffles for four
/// sums, where summing each vector on its own takes sixteen.
#[target_feature(enable = "avx512f")]
#[inline]
fn reduce4(a: __m512, b: __m512, c: __m512, d: __m512) -> __m128 {
    // Per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3] and the same for c, d.
    let ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    let cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
    // Per 128-bit lane: [Σa, Σb, Σc, Σd] of that lane.
    // (The shuffles move pairs of f32 as one f64; the additions are f32.)
    let (ab, cd) = (_mm512_castps_pd(ab), _mm512_castps_pd(cd));
    let abcd = _mm512_add_ps(
        _mm512_castpd_ps(_mm512_unpacklo_pd(ab, cd)),
        _mm512_castpd_ps(_mm512_unpackhi_pd(ab, cd)),
    );
    let half = _mm256_add_ps(
        _mm512_castps512_ps256(abcd),
        _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(abcd))),
    );
    _mm_add_ps(
        _mm256_castps256_ps128(half),
        _mm256_extractf128_ps::<1>(half),
    )
}
