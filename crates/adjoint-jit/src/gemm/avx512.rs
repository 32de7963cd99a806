//! The AVX-512F micro-kernel: a 14×32 tile of `C` (fourteen rows of two 512-bit vectors,
//! twenty-eight accumulators) from a 14-row panel of `A` (each value broadcast from memory)
//! and a 32-column panel of `B`.
//!
//! Edge tiles run a kernel instantiated for their row count and with one vector per row when
//! they are at most 16 columns wide, so a narrow edge costs only its own work; the last
//! vector of `B` and of `C` is loaded and stored under a mask, so `B` and `C` can be read in
//! place past their last column. `A` is read through any strides (a packed panel is the case
//! `rsa = 1`, `csa = 14`, compiled with those constants).

use super::driver::{Land, MicroKernel, Tile};
use std::arch::x86_64::*;

/// The AVX-512F kernel and its blocking.
pub(super) struct Avx512;

/// Rows of the tile.
const MR: usize = 14;
/// Columns of the tile: two 16-lane vectors.
const NR: usize = 32;
/// Rows of `B` ahead of its reads that a tile packing `B` prefetches. 8 to 16 measured alike
/// on 128×512×512 `A·B` (Sapphire Rapids, `B` in L2 and L3); 4 was slower, and none at all
/// much slower (the reads then wait on each row). With `B` in memory (`gemm_bench`'s cold
/// mode) 32 to 64 gained on that product (108 -> 117–121 GFLOP/s), but W2–W4's steps did not
/// change with 48.
const PACK_AHEAD: isize = 16;

impl MicroKernel for Avx512 {
    const MR: usize = MR;
    const NR: usize = NR;
    // A 32-column `B` panel of 256 rows (32 KiB) stays in L1 beside an `A` panel (14 KiB).
    const KC: usize = 256;
    const MC: usize = MR * 12;
    const NC: usize = NR * 128;
    const DIRECT: bool = true;

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

    unsafe fn pack_a_panel(
        panel: &mut [f32],
        corner: *const f32,
        rs: isize,
        cs: isize,
        kc: usize,
        rows: usize,
    ) -> bool {
        debug_assert!(panel.len() >= kc * MR && rows <= MR);
        if cs == 1 {
            // SAFETY: the caller's contract.
            unsafe { pack_rows_transposed(panel.as_mut_ptr(), corner, rs, kc, rows) };
            return true;
        }
        false
    }

    unsafe fn pack_a_block_transposed(
        out: &mut [f32],
        corner: *const f32,
        cs: isize,
        kc: usize,
        mc: usize,
    ) -> bool {
        debug_assert!(out.len() >= mc.div_ceil(MR) * MR * kc);
        // SAFETY: the caller's contract.
        unsafe { pack_block_transposed(out.as_mut_ptr(), corner, cs, kc, mc) };
        true
    }

    unsafe fn tile(t: &Tile) {
        let packed = t.rsa == 1;
        let wide = t.cols > 16;
        // Whole tiles (every column of every vector) load `B` and `C` without masks: a masked
        // load takes an extra micro-op on the ports the multiply-adds need (512×128×128:
        // 152 -> 165 GFLOP/s).
        if t.rows == MR && t.cols == NR {
            // SAFETY: the caller's contract (the CPU has AVX-512F; the tile's elements are
            // valid).
            unsafe {
                if packed {
                    kernel::<MR, 2, true, true, false>(t, std::ptr::null_mut())
                } else {
                    kernel::<MR, 2, false, true, false>(t, std::ptr::null_mut())
                }
            };
            return;
        }
        macro_rules! dispatch {
            ($($r:literal)*) => {
                match (t.rows, wide, packed) {
                    $(
                        ($r, true, true) => kernel::<$r, 2, true, false, false>(t, std::ptr::null_mut()),
                        ($r, true, false) => kernel::<$r, 2, false, false, false>(t, std::ptr::null_mut()),
                        ($r, false, true) => kernel::<$r, 1, true, false, false>(t, std::ptr::null_mut()),
                        ($r, false, false) => kernel::<$r, 1, false, false, false>(t, std::ptr::null_mut()),
                    )*
                    _ => unreachable!("a tile of {} rows", t.rows),
                }
            };
        }
        // SAFETY: the caller's contract (the CPU has AVX-512F; the tile's elements are valid).
        unsafe { dispatch!(1 2 3 4 5 6 7 8 9 10 11 12 13 14) }
    }

    const TILE_PACKS_B: bool = true;

    unsafe fn tile_packing_b(t: &Tile, panel: *mut f32) {
        debug_assert!(t.rows == MR);
        let packed = t.rsa == 1;
        // SAFETY: the caller's contract (the CPU has AVX-512F; the tile's elements are valid,
        // `panel` holds `kc·NR` writable floats).
        unsafe {
            match (t.cols == NR, t.cols > 16, packed) {
                (true, _, true) => kernel::<MR, 2, true, true, true>(t, panel),
                (true, _, false) => kernel::<MR, 2, false, true, true>(t, panel),
                (false, true, true) => kernel::<MR, 2, true, false, true>(t, panel),
                (false, true, false) => kernel::<MR, 2, false, false, true>(t, panel),
                (false, false, true) => kernel::<MR, 1, true, false, true>(t, panel),
                (false, false, false) => kernel::<MR, 1, false, false, true>(t, panel),
            }
        }
    }
}

/// The tile `t` with `R` rows and `V` vectors of 16 columns (`t.cols <= 16·V`); `UNIT_RS`
/// when `t.rsa = 1` (a packed panel, or `Aᵀ` in memory), so that the rows of `A` are at
/// constant offsets; `FULL` when `t.cols = 16·V`, so that no load or store needs a mask;
/// `PACK` when the tile also copies the `B` it reads into `pack` as a packed panel
/// (`pack[p·NR + j] = B[p, j]`, zero for `j >= cols`), for the tiles after it to read.
///
/// # Safety
/// The CPU must support AVX-512F; `t.rows == R`; every element the tile describes is valid:
/// `A[r < R, p < kc]`, `B[p < kc, j < cols]` readable, `C[r < R, j < cols]` writable and
/// exclusively owned; with `PACK`, `pack` holds `kc·NR` writable floats.
#[target_feature(enable = "avx512f")]
#[inline]
// The `asm!` below only hides a pointer's value from the optimizer; it reads no memory. The
// last step's pointer updates are not read.
#[allow(
    clippy::needless_range_loop,
    clippy::pointers_in_nomem_asm_block,
    unused_assignments
)]
unsafe fn kernel<
    const R: usize,
    const V: usize,
    const UNIT_RS: bool,
    const FULL: bool,
    const PACK: bool,
>(
    t: &Tile,
    pack: *mut f32,
) {
    let (rsa, csa) = if UNIT_RS { (1, t.csa) } else { (t.rsa, t.csa) };
    // Lanes of each vector inside the tile's columns.
    let mut masks = [0xffffu16; V];
    for (v, m) in masks.iter_mut().enumerate().filter(|_| !FULL) {
        let lanes = t.cols.saturating_sub(16 * v).min(16);
        *m = if lanes == 16 {
            0xffff
        } else {
            (1u16 << lanes) - 1
        };
    }
    // SAFETY (whole body): the caller's contract bounds every address used below: `A` rows
    // `r < R` at `pa + r·rsa`, `B` lanes under `masks` (masked-off lanes are not accessed),
    // `C` elements `(r < R, j < cols)`, with `PACK` the panel's `kc·NR` floats at `pack`.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        // Rows `7..` of `A` (only dereferenced when `R > 7`) from a second base that the
        // compiler cannot derive from the first (see below).
        let (mut pa, mut pa7, mut pb) = (t.a, t.a.wrapping_offset(7 * rsa), t.b);
        let mut pk = pack;
        macro_rules! step {
            () => {{
                let mut bv = [_mm512_setzero_ps(); V];
                for v in 0..V {
                    bv[v] = _mm512_maskz_loadu_ps(masks[v], pb.add(16 * v));
                }
                if PACK {
                    // `B` is read in place here, rows `ldb` apart: fetch the row
                    // `PACK_AHEAD` steps on, which the hardware prefetchers do not.
                    let ahead = pb.wrapping_offset(PACK_AHEAD * t.ldb);
                    _mm_prefetch::<_MM_HINT_T0>(ahead as *const i8);
                    _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(16) as *const i8);
                    // The loads zeroed the lanes past `cols`; a narrow tile's second vector
                    // is all zeros.
                    for v in 0..NR / 16 {
                        let x = if v < V { bv[v] } else { _mm512_setzero_ps() };
                        _mm512_storeu_ps(pk.add(16 * v), x);
                    }
                    pk = pk.wrapping_add(NR);
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    let x = if UNIT_RS || r < 7 {
                        _mm512_set1_ps(*pa.offset(r as isize * rsa))
                    } else {
                        _mm512_set1_ps(*pa7.offset((r - 7) as isize * rsa))
                    };
                    for v in 0..V {
                        row[v] = _mm512_fmadd_ps(x, bv[v], row[v]);
                    }
                }
                pa = pa.offset(csa);
                pb = pb.offset(t.ldb);
                if !UNIT_RS && R > 7 {
                    pa7 = pa7.wrapping_offset(csa);
                    // An empty instruction that "changes" `pa7` (it touches no memory): without
                    // it, the compiler walks all fourteen rows with one chain of additions of
                    // `rsa` per step, a chain as long as the step's multiply-adds take, which then
                    // bounds the loop; from two bases the chains are half as long.
                    std::arch::asm!("/* {0} */", inout(reg) pa7, options(pure, nomem, nostack, preserves_flags));
                }
            }};
        }
        // Two steps per iteration: the loop's pointer updates and branch, half as often,
        // take fewer slots from the multiply-adds' ports.
        for _ in 0..t.kc / 2 {
            step!();
            step!();
        }
        if t.kc % 2 == 1 {
            step!();
        }
        if t.cs_c == 1 {
            for (r, row) in acc.iter().enumerate() {
                let p = t.c.offset(r as isize * t.rs_c);
                for v in 0..V {
                    let old = || _mm512_maskz_loadu_ps(masks[v], p.add(16 * v));
                    let x = match t.land {
                        Land::Write => row[v],
                        Land::Add => _mm512_add_ps(old(), row[v]),
                        Land::Step { scale } => {
                            _mm512_add_ps(old(), _mm512_mul_ps(_mm512_set1_ps(scale), row[v]))
                        }
                    };
                    _mm512_mask_storeu_ps(p.add(16 * v), masks[v], x);
                }
            }
            return;
        }
        let mut tile = [[0.0f32; NR]; R];
        for (r, row) in acc.iter().enumerate() {
            for v in 0..V {
                _mm512_storeu_ps(tile[r].as_mut_ptr().add(16 * v), row[v]);
            }
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

/// Packs a block of `A` whose `mc` values at each `p` are contiguous (`Aᵀ` in memory), row by
/// row of `Aᵀ`: for each `p`, one masked load and one masked store per panel of `MR` rows
/// (zero past `mc`), the loads walking the row in order.
///
/// # Safety
/// The CPU must support AVX-512F; `corner + p·cs + r` is readable for `p < kc`, `r < mc`;
/// `out` holds `mc.div_ceil(MR)·MR·kc` writable floats.
#[target_feature(enable = "avx512f")]
unsafe fn pack_block_transposed(
    out: *mut f32,
    corner: *const f32,
    cs: isize,
    kc: usize,
    mc: usize,
) {
    let store: __mmask16 = (1u16 << MR) - 1;
    let panels = mc.div_ceil(MR);
    // SAFETY: loads stay inside the rows (masked past `mc`), stores inside the panels.
    unsafe {
        for p in 0..kc {
            let row = corner.offset(p as isize * cs);
            for q in 0..panels {
                let rows = (mc - q * MR).min(MR);
                let load: __mmask16 = (1u16 << rows) - 1;
                let v = _mm512_maskz_loadu_ps(load, row.add(q * MR));
                _mm512_mask_storeu_ps(out.add(q * MR * kc + p * MR), store, v);
            }
        }
    }
}

/// Packs an `A` panel from contiguous rows (`A` row-major) by 16×16 transposes in
/// registers: for each 16 columns, the panel's rows loaded (masked past `kc`, zero past
/// `rows`), transposed, and each of the 16 columns stored as `MR` values.
///
/// # Safety
/// The CPU must support AVX-512F; row `r < rows` holds `kc` readable floats from
/// `corner + r·rs`; `panel` holds `kc·MR` writable floats.
#[target_feature(enable = "avx512f")]
unsafe fn pack_rows_transposed(
    panel: *mut f32,
    corner: *const f32,
    rs: isize,
    kc: usize,
    rows: usize,
) {
    let store: __mmask16 = (1u16 << MR) - 1;
    // SAFETY (whole body): loads stay inside the rows (masked past `kc`, none past `rows`),
    // stores inside the panel's `kc` columns.
    unsafe {
        for p in (0..kc).step_by(16) {
            let cols = (kc - p).min(16);
            let mask: __mmask16 = if cols == 16 {
                0xffff
            } else {
                (1u16 << cols) - 1
            };
            let mut r = [_mm512_setzero_ps(); 16];
            for (i, v) in r.iter_mut().enumerate().take(rows) {
                *v = _mm512_maskz_loadu_ps(mask, corner.offset(i as isize * rs).add(p));
            }
            let r = transpose16(r);
            for (pp, v) in r.iter().enumerate().take(cols) {
                _mm512_mask_storeu_ps(panel.add((p + pp) * MR), store, *v);
            }
        }
    }
}

/// Packs a `B` panel from contiguous columns by 16×16 transposes in registers: for each half
/// of the panel (16 columns) and each 16 rows, sixteen column loads (masked past `kc`, zero
/// past `cols`), a transpose, sixteen row stores.
///
/// # Safety
/// The CPU must support AVX-512F; column `j < cols` holds `kc` readable floats from
/// `corner + j·cs`; `panel` holds `kc·NR` writable floats.
#[target_feature(enable = "avx512f")]
unsafe fn pack_columns(panel: *mut f32, corner: *const f32, cs: isize, kc: usize, cols: usize) {
    // SAFETY (whole body): loads stay inside the columns (masked past `kc`, none past
    // `cols`), stores inside the panel's `kc` rows.
    unsafe {
        for half in 0..NR / 16 {
            let j0 = half * 16;
            for p in (0..kc).step_by(16) {
                let rows = (kc - p).min(16);
                let mask: __mmask16 = if rows == 16 {
                    0xffff
                } else {
                    (1u16 << rows) - 1
                };
                let mut r = [_mm512_setzero_ps(); 16];
                for (jj, v) in r.iter_mut().enumerate() {
                    if j0 + jj < cols {
                        let col = corner.offset((j0 + jj) as isize * cs).add(p);
                        *v = _mm512_maskz_loadu_ps(mask, col);
                    }
                }
                let r = transpose16(r);
                for (pp, v) in r.iter().enumerate().take(rows) {
                    _mm512_storeu_ps(panel.add((p + pp) * NR + j0), *v);
                }
            }
        }
    }
}

/// The transpose of a 16×16 block held as sixteen rows.
#[target_feature(enable = "avx512f")]
fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    // Pairs of rows interleaved by 1, then by 2 (as f64 pairs), then 128-bit lanes exchanged
    // twice: the standard four-stage transpose.
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for i in 0..4 {
        let (a, b, c, d) = (t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]);
        let pd = _mm512_castps_pd;
        u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(a), pd(c)));
        u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(a), pd(c)));
        u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(b), pd(d)));
        u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(b), pd(d)));
    }
    // u[4i + c] holds, in each 128-bit lane l, column 4l + c of rows 4i..4i+4.
    let mut v = [_mm512_setzero_ps(); 16];
    for c in 0..4 {
        // Lanes 0 and 2 of rows 0..4 and of rows 4..8, then lanes 1 and 3.
        v[c] = _mm512_shuffle_f32x4::<0x88>(u[c], u[4 + c]);
        v[4 + c] = _mm512_shuffle_f32x4::<0xdd>(u[c], u[4 + c]);
        v[8 + c] = _mm512_shuffle_f32x4::<0x88>(u[8 + c], u[12 + c]);
        v[12 + c] = _mm512_shuffle_f32x4::<0xdd>(u[8 + c], u[12 + c]);
    }
    let mut out = [_mm512_setzero_ps(); 16];
    for c in 0..4 {
        out[c] = _mm512_shuffle_f32x4::<0x88>(v[c], v[8 + c]);
        out[8 + c] = _mm512_shuffle_f32x4::<0xdd>(v[c], v[8 + c]);
        out[4 + c] = _mm512_shuffle_f32x4::<0x88>(v[4 + c], v[12 + c]);
        out[12 + c] = _mm512_shuffle_f32x4::<0xdd>(v[4 + c], v[12 + c]);
    }
    out
}
