//! The AVX2 + FMA path for classifier-shaped products: `N <= 12` columns, `A` with contiguous
//! rows (`x·W` with `W` of 10 columns), as `avx512_dot` is for AVX-512. Each output is a dot
//! product of a row of `A` with a column of `B`, vectorized along the contraction: `B` is
//! packed transposed (`N` rows of `k`, a few KiB), each row of `A` is read in place once, and
//! the kernel keeps one row × `N` columns of 8-lane partial sums in registers (`N` of the
//! sixteen `ymm` registers, beside one of `A` and one of `B`), summed across lanes at the end.
//!
//! The tile kernel would fill 10 of its 16 columns, pack every row of `A` for a single use
//! and run at a third of this path's rate (128×10×1024, one thread, Sapphire Rapids under
//! `ADJOINT_ISA=avx2`: about 28 GFLOP/s).
//!
//! When `A` is stored transposed instead (a classifier's weight gradient `xᵀ·dy`, `A`'s
//! columns contiguous), eight rows of `C` are vectorized at once along `m`: each step loads
//! eight values of a column of `A` and multiplies them by each of the row's `N` values of `B`
//! ([`outer`]). Each output then sums over `p` in order with one `fma` per step from zero, as
//! the tile kernel does, so those results are the tile kernel's to the bit.
//!
//! Each output's sum of [`dot`], per contraction block (of at most 256, the blocks depending
//! on `k` only): lane `l` accumulates the products of `p ≡ l (mod 8)` in order with one `fma` each,
//! the 8 lanes are added in a fixed tree, and the blocks' sums are added in order. That depends
//! on `k` only, so results do not depend on how rows are cut between threads. The caller
//! decides to take this path from the whole product, so that every unit of one product takes
//! the same path.

use super::driver::{bt_stride, kc_step, DotBlock, Land, Operand, Product};
use super::lines::Lines;
use std::arch::x86_64::*;
use std::cell::RefCell;

/// Widest product this path takes: `N` accumulators, a row of `A` and a row of `Bᵀ` in the
/// sixteen `ymm` registers, with room to spare for the compiler.
pub(super) const MAX_N: usize = 12;
/// Longest contraction block: a block of `Bᵀ` (at most 12 KiB) stays in L1 while rows of `A`
/// stream past it.
const KC: usize = 256;
const _: () = assert!(KC >= super::driver::ONE_BLOCK_K);

thread_local! {
    /// `Bᵀ` of this thread's current product, reused across calls.
    static BT: RefCell<Lines> = const { RefCell::new(Lines::new()) };
}

/// True when the product of the whole `m×n×k` descriptor (`A` with strides `a_rs`, `a_cs`)
/// should take this path.
pub(super) fn suits(n: usize, k: usize, a_rs: isize, a_cs: isize) -> bool {
    n <= MAX_N && (a_cs == 1 || a_rs == 1) && k >= 64
}

/// `C = A·B` for an `m×k` `A` with contiguous rows (`a.cs == 1`) or columns (`a.rs == 1`)
/// and a `k×n` `B`, `n <= 12`, landing in `C` as `land` says (a [`Land::Step`] only for
/// `k <= 256`, one block).
///
/// # Safety
/// The CPU must support AVX2 and FMA; every element `(i < m, p < k)` of `a`, `(p < k, j < n)`
/// of `b` must be readable and every `(i < m, j < n)` of `c` writable and exclusively owned.
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
    debug_assert!((a.cs == 1 || a.rs == 1) && n <= MAX_N && n > 0);
    debug_assert!(land == Land::Write || k <= KC);
    if a.cs != 1 {
        let step = kc_step(k, KC);
        for p0 in (0..k).step_by(step) {
            let kc = step.min(k - p0);
            for i0 in (0..m).step_by(8) {
                macro_rules! columns {
                    ($($n:literal)*) => {
                        match n {
                            // SAFETY: rows `i0..` of `A` and `C`, the block's rows of `B`, are
                            // inside them; the caller checked the CPU.
                            $($n => unsafe { outer::<$n>(&p, i0, 8.min(m - i0), p0, kc) },)*
                            _ => unreachable!("{n} columns"),
                        }
                    };
                }
                columns!(1 2 3 4 5 6 7 8 9 10 11 12);
            }
        }
        return;
    }
    BT.with(|cell| {
        let mut bt = cell.borrow_mut();
        let ldbt = bt_stride(k);
        bt.grow(n * ldbt);
        // SAFETY: `B`'s elements are readable (the caller's contract); the buffer holds
        // `n·ldbt` floats.
        unsafe { pack_bt(&mut bt, ldbt, b, n, k) };
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
            for i in 0..m {
                // SAFETY: row `i` of `A` is inside it (the caller's contract).
                let row = unsafe { a.ptr.offset(i as isize * a.rs) };
                macro_rules! columns {
                    ($($n:literal)*) => {
                        match n {
                            // SAFETY: row `i` of `A` and of `C` is inside them; the caller
                            // checked the CPU.
                            $($n => unsafe { dot::<$n>(&t, row, i) },)*
                            _ => unreachable!("{n} columns"),
                        }
                    };
                }
                columns!(1 2 3 4 5 6 7 8 9 10 11 12);
            }
        }
    });
}

/// Writes `Bᵀ` (`n` rows of `k`, `ldbt` apart) into `bt`: a column stored contiguously (`A·Bᵀ`)
/// is copied, otherwise each row of `B` is read in order and scattered over the `n` rows.
///
/// # Safety
/// `B`'s elements `(p < k, j < n)` are readable; `bt` holds `n·ldbt` floats, `ldbt >= k`.
unsafe fn pack_bt(bt: &mut [f32], ldbt: usize, b: Operand, n: usize, k: usize) {
    if b.rs == 1 {
        for j in 0..n {
            // SAFETY: column `j` of `B` is `k` contiguous readable floats.
            let col = unsafe { std::slice::from_raw_parts(b.ptr.offset(j as isize * b.cs), k) };
            bt[j * ldbt..j * ldbt + k].copy_from_slice(col);
        }
        return;
    }
    for p in 0..k {
        for j in 0..n {
            // SAFETY: element `(p, j)` of `B` is readable.
            bt[j * ldbt + p] = unsafe { *b.ptr.offset(p as isize * b.rs + j as isize * b.cs) };
        }
    }
}

/// Row `i` of `C` (`N` columns) from the row of `A` at `a`, over the contraction block of `t`.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `t.p0 + t.kc` contiguous floats from `a` are readable,
/// `t.bt` holds `N` rows as long, `t.ldbt` apart, and row `i` of `C` is writable and
/// exclusively owned.
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::needless_range_loop)]
unsafe fn dot<const N: usize>(t: &DotBlock, a: *const f32, i: usize) {
    // SAFETY (whole body): the caller's contract bounds every address; the tail of `k` is
    // loaded under a mask (masked-off lanes are not accessed).
    unsafe {
        let mut acc = [_mm256_setzero_ps(); N];
        let (k, a, bt) = (t.kc, a.add(t.p0), t.bt.add(t.p0));
        let full = k / 8 * 8;
        for p in (0..full).step_by(8) {
            let av = _mm256_loadu_ps(a.add(p));
            for j in 0..N {
                let bv = _mm256_loadu_ps(bt.add(j * t.ldbt + p));
                acc[j] = _mm256_fmadd_ps(av, bv, acc[j]);
            }
        }
        if full < k {
            // Lanes below `k - full` loaded, the others zero.
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((k - full) as i32), lanes);
            let av = _mm256_maskload_ps(a.add(full), mask);
            for j in 0..N {
                let bv = _mm256_maskload_ps(bt.add(j * t.ldbt + full), mask);
                acc[j] = _mm256_fmadd_ps(av, bv, acc[j]);
            }
        }
        // Each accumulator's eight lanes summed, four accumulators at a time.
        let mut sums = [0.0f32; MAX_N];
        for q in (0..N).step_by(4) {
            let v = |j: usize| {
                if q + j < N {
                    acc[q + j]
                } else {
                    _mm256_setzero_ps()
                }
            };
            _mm_storeu_ps(sums.as_mut_ptr().add(q), reduce4(v(0), v(1), v(2), v(3)));
        }
        for (j, &s) in sums.iter().enumerate().take(N) {
            let at = i as isize * t.cs.0 + j as isize * t.cs.1;
            t.land.store(t.c.offset(at), s);
        }
    }
}

/// Rows `i0..i0 + rows` (`rows <= 8`) of `C`'s `N` columns over the contraction block
/// `p0..p0 + kc`, for an `A` stored transposed (`a.rs == 1`): eight rows in the lanes of each
/// of `N` accumulators, one column of `A` loaded and one value of `B` broadcast per step.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `A`'s elements `(i0 + r, p)` for `r < rows` and `B`'s
/// `(p, j < N)` are readable for `p` in the block, and `C`'s rows `i0..i0 + rows` are writable
/// and exclusively owned.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn outer<const N: usize>(t: &Product, i0: usize, rows: usize, p0: usize, kc: usize) {
    let (a, b) = (t.a, t.b);
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(rows as i32), lanes);
    // SAFETY (whole body): the caller's contract bounds every address; `A`'s lanes past `rows`
    // are masked off and not accessed.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); N];
        for p in p0..p0 + kc {
            let av = _mm256_maskload_ps(a.ptr.offset(i0 as isize + p as isize * a.cs), mask);
            let row = b.ptr.offset(p as isize * b.rs);
            for (j, x) in acc.iter_mut().enumerate() {
                let bv = _mm256_broadcast_ss(&*row.offset(j as isize * b.cs));
                *x = _mm256_fmadd_ps(av, bv, *x);
            }
        }
        let land = t.land.at(p0);
        for (j, x) in acc.iter().enumerate() {
            let mut v = [0.0f32; 8];
            _mm256_storeu_ps(v.as_mut_ptr(), *x);
            for (r, &s) in v.iter().enumerate().take(rows) {
                let at = (i0 + r) as isize * t.cs.0 + j as isize * t.cs.1;
                land.store(t.c.offset(at), s);
            }
        }
    }
}

/// The lane sums of four vectors, `[Σa, Σb, Σc, Σd]`, in a fixed tree: within each 128-bit
/// half, lanes 0 + 2 and 1 + 3, then those two; then the upper half onto the lower.
#[target_feature(enable = "avx2")]
#[inline]
fn reduce4(a: __m256, b: __m256, c: __m256, d: __m256) -> __m128 {
    // Per 128-bit half: [a0+a2, b0+b2, a1+a3, b1+b3] and the same for c, d.
    let ab = _mm256_add_ps(_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
    let cd = _mm256_add_ps(_mm256_unpacklo_ps(c, d), _mm256_unpackhi_ps(c, d));
    // Per 128-bit half: [Σa, Σb, Σc, Σd] of that half (the shuffles move pairs of f32 as one
    // f64; the additions are f32).
    let (ab, cd) = (_mm256_castps_pd(ab), _mm256_castps_pd(cd));
    let abcd = _mm256_add_ps(
        _mm256_castpd_ps(_mm256_unpacklo_pd(ab, cd)),
        _mm256_castpd_ps(_mm256_unpackhi_pd(ab, cd)),
    );
    _mm_add_ps(
        _mm256_castps256_ps128(abcd),
        _mm256_extractf128_ps::<1>(abcd),
    )
}
