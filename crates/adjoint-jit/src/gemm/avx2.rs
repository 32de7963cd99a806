//! The AVX2 + FMA micro-kernel: a 6×16 tile of `C` (six rows of two 256-bit vectors, twelve
//! accumulators) from a packed 6-row panel of `A` and a packed 16-column panel of `B`.
//!
//! Cranelift's x64 backend emits 128-bit vectors only, so this kernel, written with
//! `std::arch` intrinsics, does twice the work per instruction of a generated one.

use super::driver::{Land, MicroKernel, Tile};
use std::arch::x86_64::*;

/// The AVX2 + FMA kernel and its blocking.
pub(super) struct Avx2;

/// Rows of the tile.
const MR: usize = 6;
/// Columns of the tile: two 8-lane vectors.
const NR: usize = 16;

impl MicroKernel for Avx2 {
    const MR: usize = MR;
    const NR: usize = NR;
    // A 6×256 `A` panel and a 256×16 `B` panel stay in L1.
    const KC: usize = 256;
    const MC: usize = 144;
    const NC: usize = 4080;
    const DIRECT: bool = false;

    unsafe fn tile(t: &Tile) {
        debug_assert!(t.rsa == 1 && t.csa == MR as isize && t.ldb == NR as isize);
        // SAFETY: the caller's contract; a kernel without DIRECT gets packed panels only.
        unsafe { kernel_6x16(t.kc, t.a, t.b, t.c, t.rs_c, t.cs_c, t.rows, t.cols, t.land) }
    }

    unsafe fn pack_b_columns(
        panel: &mut [f32],
        corner: *const f32,
        cs: isize,
        kc: usize,
        cols: usize,
    ) -> bool {
        debug_assert!(panel.len() >= kc * NR && cols <= NR);
        // SAFETY: the caller's contract.
        unsafe { pack_columns(panel.as_mut_ptr(), corner, cs, kc, cols) };
        true
    }
}

/// Packs a `B` panel from contiguous columns (`A·Bᵀ`) by 8×8 transposes in registers: for
/// each half of the panel (8 columns) and each 8 rows, eight column loads (zero past `cols`),
/// a transpose, eight row stores; the last `kc % 8` rows element by element. It replaced a
/// scalar gather (128×512×512 `A·Bᵀ` under `ADJOINT_ISA=avx2`: see `docs/jit.md`).
///
/// # Safety
/// The CPU must support AVX2; column `j < cols` holds `kc` readable floats from
/// `corner + j·cs`; `panel` holds `kc·NR` writable floats.
#[target_feature(enable = "avx2")]
unsafe fn pack_columns(panel: *mut f32, corner: *const f32, cs: isize, kc: usize, cols: usize) {
    let full = kc / 8 * 8;
    // SAFETY (whole body): loads stay inside the columns (none past `cols` or `kc`), stores
    // inside the panel's `kc` rows.
    unsafe {
        for j0 in (0..NR).step_by(8) {
            let column = |jj: usize| corner.offset((j0 + jj) as isize * cs);
            for p in (0..full).step_by(8) {
                let mut r = [_mm256_setzero_ps(); 8];
                for (jj, v) in r.iter_mut().enumerate() {
                    if j0 + jj < cols {
                        *v = _mm256_loadu_ps(column(jj).add(p));
                    }
                }
                for (pp, v) in transpose8(r).iter().enumerate() {
                    _mm256_storeu_ps(panel.add((p + pp) * NR + j0), *v);
                }
            }
            for p in full..kc {
                for jj in 0..8 {
                    *panel.add(p * NR + j0 + jj) = if j0 + jj < cols {
                        *column(jj).add(p)
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

/// The transpose of an 8×8 block held as eight rows: pairs of rows interleaved, then
/// quadruples, then 128-bit halves exchanged.
#[target_feature(enable = "avx2")]
fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    // Per 128-bit half, rows 2i and 2i + 1 interleaved: [a0 b0 a1 b1] and [a2 b2 a3 b3].
    let mut t = [_mm256_setzero_ps(); 8];
    for i in 0..4 {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // Per 128-bit half, column c of rows 4i..4i + 4 (for c = 0..4 in the low half, 4..8 in
    // the high one).
    let mut s = [_mm256_setzero_ps(); 8];
    for i in 0..2 {
        let (lo, hi) = (4 * i, 4 * i + 2);
        s[4 * i] = _mm256_shuffle_ps::<0x44>(t[lo], t[hi]);
        s[4 * i + 1] = _mm256_shuffle_ps::<0xEE>(t[lo], t[hi]);
        s[4 * i + 2] = _mm256_shuffle_ps::<0x44>(t[lo + 1], t[hi + 1]);
        s[4 * i + 3] = _mm256_shuffle_ps::<0xEE>(t[lo + 1], t[hi + 1]);
    }
    let mut out = [_mm256_setzero_ps(); 8];
    for c in 0..4 {
        out[c] = _mm256_permute2f128_ps::<0x20>(s[c], s[4 + c]);
        out[4 + c] = _mm256_permute2f128_ps::<0x31>(s[c], s[4 + c]);
    }
    out
}

/// `C[r, j] = Σ_p a[p·MR + r] · b[p·NR + j]` for `r < rows`, `j < cols`, landing in `C` as
/// `land` says. The sum of each element runs over `p` in order,
/// one `fma` per step, whatever the tile's position, so results do not depend on how the
/// product was split between threads.
///
/// # Safety
/// The CPU must support AVX2 and FMA. `a` must hold `kc·MR` and `b` `kc·NR` readable `f32`s;
/// `c + r·rs_c + j·cs_c` must be a valid, exclusively owned `f32` for every `r < rows`,
/// `j < cols`, with `rows <= MR` and `cols <= NR`.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel_6x16(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    rs_c: isize,
    cs_c: isize,
    rows: usize,
    cols: usize,
    land: Land,
) {
    // SAFETY (whole body): the caller's contract bounds every pointer used below; loads and
    // stores are unaligned forms.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let (mut pa, mut pb) = (a, b);
        for _ in 0..kc {
            let b0 = _mm256_loadu_ps(pb);
            let b1 = _mm256_loadu_ps(pb.add(8));
            for (r, row) in acc.iter_mut().enumerate() {
                let x = _mm256_broadcast_ss(&*pa.add(r));
                row[0] = _mm256_fmadd_ps(x, b0, row[0]);
                row[1] = _mm256_fmadd_ps(x, b1, row[1]);
            }
            pa = pa.add(MR);
            pb = pb.add(NR);
        }
        if rows == MR && cols == NR && cs_c == 1 {
            for (r, row) in acc.iter().enumerate() {
                let p = c.offset(r as isize * rs_c);
                for (v, &x) in row.iter().enumerate() {
                    let q = p.add(8 * v);
                    let x = match land {
                        Land::Write => x,
                        Land::Add => _mm256_add_ps(_mm256_loadu_ps(q), x),
                        Land::Step { scale } => _mm256_add_ps(
                            _mm256_loadu_ps(q),
                            _mm256_mul_ps(_mm256_set1_ps(scale), x),
                        ),
                    };
                    _mm256_storeu_ps(q, x);
                }
            }
            return;
        }
        let mut tile = [0.0f32; MR * NR];
        for (r, row) in acc.iter().enumerate() {
            _mm256_storeu_ps(tile.as_mut_ptr().add(r * NR), row[0]);
            _mm256_storeu_ps(tile.as_mut_ptr().add(r * NR + 8), row[1]);
        }
        for r in 0..rows {
            for j in 0..cols {
                land.store(
                    c.offset(r as isize * rs_c + j as isize * cs_c),
                    tile[r * NR + j],
                );
            }
        }
    }
}
