//! The AVX2 + FMA micro-kernel: a 6×16 tile of `C` (six rows of two 256-bit vectors, twelve
//! accumulators) from a 6-row panel of `A` (each value broadcast from memory, through any
//! strides) and a 16-column panel of `B`, packed or read in place: edge tiles run a kernel
//! instantiated for their row count, with `B` and `C` loaded and stored under masks.
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
    const DIRECT: bool = true;
    // Six broadcast streams from `Aᵀ`'s columns 1 KiB apart ran slower than a packed panel
    // (256×256×512 `Aᵀ·B`: 103 -> 99 GFLOP/s in place), 256 B apart faster (64×32×64: 72
    // -> 103); one thread, Sapphire Rapids under `ADJOINT_ISA=avx2`.
    const DIRECT_AT_COLUMNS: isize = 128;

    unsafe fn tile(t: &Tile) {
        let packed = t.rsa == 1;
        // Whole tiles load `B` and store `C` without masks. Whole tiles of packed panels run
        // `kernel_6x16`, which steps through them by constants: with the generic kernel there,
        // W3's step under `ADJOINT_ISA=avx2` ran 1.5–3% slower.
        if t.rows == MR && t.cols == NR {
            // SAFETY: the caller's contract (the CPU has AVX2 and FMA; the tile's elements
            // are valid).
            unsafe {
                if packed && t.csa == MR as isize && t.ldb == NR as isize {
                    kernel_6x16(t)
                } else if packed {
                    kernel::<MR, true, true>(t)
                } else {
                    kernel::<MR, false, true>(t)
                }
            };
            return;
        }
        macro_rules! dispatch {
            ($($r:literal)*) => {
                match (t.rows, packed) {
                    $(
                        ($r, true) => kernel::<$r, true, false>(t),
                        ($r, false) => kernel::<$r, false, false>(t),
                    )*
                    _ => unreachable!("a tile of {} rows", t.rows),
                }
            };
        }
        // SAFETY: the caller's contract (the CPU has AVX2 and FMA; the tile's elements are
        // valid).
        unsafe { dispatch!(1 2 3 4 5 6) }
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

/// The tile `t` with `R` rows: `C[r, j] (+)= Σ_p A[r, p]·B[p, j]` for `r < R`, `j < cols`.
/// `UNIT_RS` when `t.rsa = 1` (a packed panel, or `Aᵀ` in memory), so that the rows of `A`
/// are at constant offsets; `FULL` when `t.cols = 16`, so that no load or store needs a mask
/// (`B`'s and `C`'s lanes past `cols` are otherwise neither read nor written, so both can be
/// read in place). The sum of each element runs over `p` in order, one `fma` per step from
/// zero, whatever the tile's position, so results do not depend on how the product was cut.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `t.rows == R`; every element the tile describes is
/// valid: `A[r < R, p < kc]`, `B[p < kc, j < cols]` readable, `C[r < R, j < cols]` writable
/// and exclusively owned.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn kernel<const R: usize, const UNIT_RS: bool, const FULL: bool>(t: &Tile) {
    let rsa = if UNIT_RS { 1 } else { t.rsa };
    let (csa, ldb) = (t.csa, t.ldb);
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let cols = t.cols as i32;
    let masks = [
        _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lanes),
        _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), lanes),
    ];
    // SAFETY (whole body): the caller's contract bounds every address used below: `A` rows
    // `r < R` at `pa + r·rsa`, `B` and `C` lanes under `masks` (masked-off lanes are not
    // accessed) or all sixteen when `FULL`.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        let (mut pa, mut pb) = (t.a, t.b);
        for _ in 0..t.kc {
            let (b0, b1) = if FULL {
                (_mm256_loadu_ps(pb), _mm256_loadu_ps(pb.add(8)))
            } else {
                (
                    _mm256_maskload_ps(pb, masks[0]),
                    _mm256_maskload_ps(pb.add(8), masks[1]),
                )
            };
            for (r, row) in acc.iter_mut().enumerate() {
                let x = _mm256_broadcast_ss(&*pa.offset(r as isize * rsa));
                row[0] = _mm256_fmadd_ps(x, b0, row[0]);
                row[1] = _mm256_fmadd_ps(x, b1, row[1]);
            }
            pa = pa.offset(csa);
            pb = pb.offset(ldb);
        }
        land::<R, FULL>(t, &acc, &masks);
    }
}

/// Lands the sums `acc` of an `R`-row tile in `C` as `t.land` says: by rows of two vectors
/// when `C`'s rows are contiguous (whole when `FULL`, under `masks` otherwise), element by
/// element through a buffer when not.
///
/// # Safety
/// The CPU must support AVX2; `C[r < R, j < t.cols]` is writable and exclusively owned, and
/// `masks` covers lanes `j < t.cols` of the two vectors unless `FULL`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn land<const R: usize, const FULL: bool>(
    t: &Tile,
    acc: &[[__m256; 2]; R],
    masks: &[__m256i; 2],
) {
    // SAFETY (whole body): the caller's contract bounds every address; masked-off lanes are
    // not accessed.
    unsafe {
        if t.cs_c == 1 {
            for (r, row) in acc.iter().enumerate() {
                let p = t.c.offset(r as isize * t.rs_c);
                for (v, &x) in row.iter().enumerate() {
                    let q = p.add(8 * v);
                    let old = || {
                        if FULL {
                            _mm256_loadu_ps(q)
                        } else {
                            _mm256_maskload_ps(q, masks[v])
                        }
                    };
                    let x = match t.land {
                        Land::Write => x,
                        Land::Add => _mm256_add_ps(old(), x),
                        Land::Step { scale } => {
                            _mm256_add_ps(old(), _mm256_mul_ps(_mm256_set1_ps(scale), x))
                        }
                    };
                    if FULL {
                        _mm256_storeu_ps(q, x);
                    } else {
                        _mm256_maskstore_ps(q, masks[v], x);
                    }
                }
            }
            return;
        }
        let mut tile = [[0.0f32; NR]; R];
        for (r, row) in acc.iter().enumerate() {
            _mm256_storeu_ps(tile[r].as_mut_ptr(), row[0]);
            _mm256_storeu_ps(tile[r].as_mut_ptr().add(8), row[1]);
        }
        for j in 0..t.cols {
            for (r, vals) in tile.iter().enumerate() {
                t.land.store(
                    t.c.offset(r as isize * t.rs_c + j as isize * t.cs_c),
                    vals[j],
                );
            }
        }
    }
}

/// A whole tile (`MR` rows, `NR` columns) from packed panels (`t.a` `kc·MR` floats, `t.b`
/// `kc·NR`), stepping through them by constants, landing in `C` as `t.land` says. The sum
/// of each element runs over `p` in order, one `fma` per step from zero, as in [`kernel`].
///
/// # Safety
/// The CPU must support AVX2 and FMA; `t` is a whole tile of packed panels, its elements of
/// `C` writable and exclusively owned.
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_6x16(t: &Tile) {
    // SAFETY (whole body): the caller's contract bounds every pointer used below.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let (mut pa, mut pb) = (t.a, t.b);
        for _ in 0..t.kc {
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
        let all = _mm256_set1_epi32(-1);
        land::<MR, true>(t, &acc, &[all, all]);
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
