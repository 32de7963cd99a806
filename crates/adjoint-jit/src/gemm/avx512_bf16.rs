//! `bf16` products on AVX512_BF16: `vdpbf16ps` multiplies pairs of `bf16` values and adds both
//! products to an `f32` lane, so the operands are never widened. `B` is packed in pairs along
//! the contraction (`[B[2q, j], B[2q+1, j]]` for 16 columns `j` make one 512-bit vector), each
//! row of `A` in pairs broadcast to every lane, and a tile of 8 rows × 32 columns keeps 16
//! vectors of `f32` sums in registers.
//!
//! Each output's sum runs over `p` in order, two products per step (`acc + a[2q+1]·b[2q+1]`,
//! then `+ a[2q]·b[2q]`, each product exact in `f32`), the same whatever the split into units.
//! The instruction flushes subnormal inputs and results to zero (its definition), which moves a
//! sum by less than the smallest normal `f32`.

use std::arch::x86_64::*;
use std::cell::RefCell;

/// Rows of a tile.
const MR: usize = 8;
/// Columns of a tile: two vectors of 16.
const NR: usize = 32;

thread_local! {
    /// Packed pairs of `A` (one `u32` per row and pair) and of `B` (per column tile).
    static PAIRS: RefCell<(Vec<u32>, Vec<u16>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// True when this CPU has `vdpbf16ps` (and AVX-512F).
pub(super) fn available() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bf16")
}

/// `C = A·B` for an `m×k` `A` (element `(i, p)` at `a + i·ars + p·acs`) and a `k×n` `B`
/// (`(p, j)` at `b + p·brs + j·bcs`), both `bf16` bits, into `f32` `C` (`(i, j)` at
/// `c + i·cs.0 + j·cs.1`).
///
/// # Safety
/// [`available`] must be true; every element of `A` and `B` named above must be readable and
/// every element of `C` writable and exclusively owned.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm(
    a: *const u16,
    (ars, acs): (isize, isize),
    b: *const u16,
    (brs, bcs): (isize, isize),
    c: *mut f32,
    cs: (isize, isize),
    m: usize,
    n: usize,
    k: usize,
) {
    let k2 = k.div_ceil(2);
    PAIRS.with(|cell| {
        let (pa, pb) = &mut *cell.borrow_mut();
        // A: row i, pair q → (A[i, 2q] | A[i, 2q+1] << 16), zero past k.
        pa.clear();
        pa.resize(m * k2, 0);
        for i in 0..m {
            for q in 0..k2 {
                // SAFETY: `(i, 2q)` and `(i, 2q+1)` (when below k) are inside `A`.
                let lo = unsafe { *a.offset(i as isize * ars + (2 * q) as isize * acs) };
                let hi = if 2 * q + 1 < k {
                    unsafe { *a.offset(i as isize * ars + (2 * q + 1) as isize * acs) }
                } else {
                    0
                };
                pa[i * k2 + q] = lo as u32 | (hi as u32) << 16;
            }
        }
        // B: column tile t, pair q, column j < NR → [B[2q, j], B[2q+1, j]], zero outside.
        let tiles = n.div_ceil(NR);
        pb.clear();
        pb.resize(tiles * k2 * NR * 2, 0);
        for t in 0..tiles {
            for q in 0..k2 {
                for jj in 0..NR.min(n - t * NR) {
                    let j = (t * NR + jj) as isize;
                    let base = ((t * k2 + q) * NR + jj) * 2;
                    for (s, p) in [(0, 2 * q), (1, 2 * q + 1)] {
                        if p < k {
                            // SAFETY: `(p, j)` is inside `B`.
                            pb[base + s] = unsafe { *b.offset(p as isize * brs + j * bcs) };
                        }
                    }
                }
            }
        }
        for t in 0..tiles {
            let cols = NR.min(n - t * NR);
            let panel = &pb[t * k2 * NR * 2..(t + 1) * k2 * NR * 2];
            for i0 in (0..m).step_by(MR) {
                let rows = MR.min(m - i0);
                let mut out = [[0f32; NR]; MR];
                // SAFETY: `available()` (the caller's contract); the slices hold the pairs
                // read.
                unsafe { tile(&pa[i0 * k2..(i0 + rows) * k2], k2, panel, rows, &mut out) };
                for (r, row) in out.iter().enumerate().take(rows) {
                    for (jj, &v) in row.iter().enumerate().take(cols) {
                        let (i, j) = ((i0 + r) as isize, (t * NR + jj) as isize);
                        // SAFETY: `(i, j)` is inside `C`, owned by this call.
                        unsafe { *c.offset(i * cs.0 + j * cs.1) = v };
                    }
                }
            }
        }
    });
}

/// One tile: `out[r][j] = Σ_q pairs of A row r · pairs of B column j`, for `rows <= MR`.
///
/// # Safety
/// The CPU must support AVX-512F and AVX512_BF16; `pa` holds `rows · k2` pairs, `panel`
/// `k2 · NR · 2` values.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile(pa: &[u32], k2: usize, panel: &[u16], rows: usize, out: &mut [[f32; NR]; MR]) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for q in 0..k2 {
        let pb = panel[q * NR * 2..].as_ptr();
        // SAFETY: 64 bytes at each half of this pair row of the panel, reinterpreted as 32
        // bf16 values each.
        let (b0, b1) = unsafe {
            (
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(pb as *const _)),
                std::mem::transmute::<__m512i, __m512bh>(
                    _mm512_loadu_si512(pb.add(32) as *const _),
                ),
            )
        };
        for r in 0..rows {
            // SAFETY: a 512-bit integer vector reinterpreted as 32 bf16 values (same size).
            let av = unsafe {
                std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(pa[r * k2 + q] as i32))
            };
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
        }
    }
    for r in 0..rows {
        // SAFETY: each row of `out` holds 32 floats.
        unsafe {
            _mm512_storeu_ps(out[r].as_mut_ptr(), acc[r][0]);
            _mm512_storeu_ps(out[r].as_mut_ptr().add(16), acc[r][1]);
        }
    }
}
