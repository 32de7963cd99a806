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
//!
//! An operand stored in `f32` (a cast to `bf16` fused into the product) is rounded to `bf16`
//! block by block before packing, by the integer rounding generated code uses (bit for bit the
//! cast's). The sums are written as `f32`, or rounded to `bf16` in registers and written as
//! `bf16` (the same rounding), so a 16-bit product needs no `f32` copy of its result.
//! Packing and stores are vector code where the operand is contiguous along a dimension.

use super::half::{Dst, Src};
use std::arch::x86_64::*;
use std::cell::RefCell;

/// Rows of a tile.
const MR: usize = 8;
/// Columns of a tile: two vectors of 16.
const NR: usize = 32;
/// Pairs of a contraction block: a tile's panel of `B` (16 KiB) and rows of `A` (4 KiB) stay
/// in L1 while the tile's rows run over them.
const KQ: usize = 128;

thread_local! {
    /// Packed pairs of `A` and of `B` (one `u32` per pair), and the `bf16` copies of operands
    /// stored in `f32`.
    static PAIRS: RefCell<[Vec<u32>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
    static ROUNDED: RefCell<[Vec<u16>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
    /// The `f32` sums of a column of tiles between contraction blocks (`[row][NR]`).
    static SUMS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// True when this CPU has `vdpbf16ps` (and the AVX-512 subsets the packing uses).
pub(super) fn available() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vl")
        && std::is_x86_feature_detected!("avx512bf16")
}

/// A strided `bf16` matrix: element `(r, s)` at `ptr + r·rs + s·cs`.
#[derive(Clone, Copy)]
pub(super) struct Bits {
    pub ptr: *const u16,
    pub rs: isize,
    pub cs: isize,
}

/// `C = A·B` for an `m×k` `A` (element `(i, p)` at `a + i·ars + p·acs`) and a `k×n` `B`
/// (`(p, j)` at `b + p·brs + j·bcs`), `bf16` (or `f32` rounded to `bf16`), into `C`
/// (`(i, j)` at `c + i·cs.0 + j·cs.1`), `f32` or `bf16`.
///
/// # Safety
/// [`available`] must be true; every element of `A` and `B` named above must be readable and
/// every element of `C` writable and exclusively owned.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm(
    a: Src,
    (ars, acs): (isize, isize),
    b: Src,
    (brs, bcs): (isize, isize),
    c: Dst,
    cs: (isize, isize),
    m: usize,
    n: usize,
    k: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let k2 = k.div_ceil(2);
    ROUNDED.with(|rounded| {
        let [ra, rb] = &mut *rounded.borrow_mut();
        // SAFETY: the operands' elements are readable (the caller's contract); the CPU has
        // AVX-512F/BW/VL (`available`).
        let (a, b) = unsafe { (narrow(a, ars, acs, m, k, ra), narrow(b, brs, bcs, k, n, rb)) };
        PAIRS.with(|cell| {
            let [pa, pb] = &mut *cell.borrow_mut();
            // A: rows padded to whole tiles, in pairs along `p` (zero past `k`). Row-major
            // (`pa[i·k2 + q]`) unless A is stored transposed, then in panels of MR rows
            // (`pa[(i / MR · k2 + q)·MR + i % MR]`).
            let rows = m.div_ceil(MR) * MR;
            pa.clear();
            pa.resize(rows * k2, 0);
            let panels = a.rs == 1 && a.cs != 1;
            // SAFETY: `A`'s elements are readable; `pa` holds `rows·k2` pairs.
            unsafe {
                if panels {
                    pack_a_panels(pa, a, m, k);
                } else {
                    pack_a_rows(pa, a, m, k, k2);
                }
            }
            let (prs, pqs) = if panels { (1, MR) } else { (k2, 1) };
            // B: per tile of NR columns, for each pair `q`, NR pairs (zero outside).
            let tiles = n.div_ceil(NR);
            pb.clear();
            pb.resize(tiles * k2 * NR, 0);
            for t in 0..tiles {
                let cols = NR.min(n - t * NR);
                let corner = Bits {
                    // SAFETY: column `t·NR` is inside `B`.
                    ptr: unsafe { b.ptr.offset((t * NR) as isize * b.cs) },
                    ..b
                };
                // SAFETY: the tile's columns are inside `B`; the panel holds `k2·NR` pairs.
                unsafe { pack_b_tile(&mut pb[t * k2 * NR..(t + 1) * k2 * NR], corner, k, cols) };
            }
            SUMS.with(|sums| {
                let sums = &mut *sums.borrow_mut();
                if k2 > KQ {
                    sums.clear();
                    sums.resize(rows * NR, 0.0);
                }
                for t in 0..tiles {
                    let cols = NR.min(n - t * NR);
                    let panel = &pb[t * k2 * NR..(t + 1) * k2 * NR];
                    // One block even for `k == 0` (the tile then writes zeros).
                    for q0 in (0..k2.max(1)).step_by(KQ) {
                        let kq = KQ.min(k2 - q0);
                        let (first, last) = (q0 == 0, q0 + kq == k2);
                        for i0 in (0..m).step_by(MR) {
                            // Pair `q0` of row `i0` (row-major) or of panel `i0 / MR`.
                            let at = i0 * k2 + q0 * pqs;
                            // Only used (and then inside `sums`) when there are several blocks.
                            let part = sums.as_mut_ptr().wrapping_add(i0 * NR);
                            let init = if first {
                                std::ptr::null()
                            } else {
                                part as *const f32
                            };
                            let (out, out_cs, rows, cols) = if last {
                                let e = i0 as isize * cs.0 + (t * NR) as isize * cs.1;
                                // SAFETY: `(i0, t·NR)` is inside `C`.
                                (unsafe { c.at(e) }, cs, MR.min(m - i0), cols)
                            } else {
                                let part = Dst {
                                    ptr: part as *mut u8,
                                    wide: true,
                                };
                                (part, (NR as isize, 1), MR, NR)
                            };
                            // SAFETY: `available()`; `pa` holds MR rows of `kq` pairs from
                            // `at`, the panel `kq·NR` pairs from pair `q0`; `sums` holds MR
                            // rows of NR from row `i0`; the tile's elements of `C` are
                            // inside it and owned.
                            unsafe {
                                tile(
                                    pa[at..].as_ptr(),
                                    (prs, pqs),
                                    kq,
                                    &panel[q0 * NR..],
                                    init,
                                    out,
                                    out_cs,
                                    rows,
                                    cols,
                                )
                            };
                        }
                    }
                }
            });
        });
    });
}

/// `s` as `bf16` bits: in place when it holds `bf16`; otherwise its `rows × cols` block
/// rounded into `tmp` (contiguous along the same dimension as `s`, vector code there).
///
/// # Safety
/// The block must be readable; the CPU must have AVX-512F/BW/VL.
pub(super) unsafe fn narrow(
    s: Src,
    rs: isize,
    cs: isize,
    rows: usize,
    cols: usize,
    tmp: &mut Vec<u16>,
) -> Bits {
    if !s.wide {
        return Bits {
            ptr: s.ptr as *const u16,
            rs,
            cs,
        };
    }
    let x = s.ptr as *const f32;
    tmp.clear();
    tmp.resize(rows * cols, 0);
    // Contiguous lines of the block: (count, length, stride between lines, stride along).
    let (lines, len, line_stride, along, out) = if cs == 1 || rs != 1 {
        (rows, cols, rs, cs, (cols as isize, 1))
    } else {
        (cols, rows, cs, rs, (1, rows as isize))
    };
    for l in 0..lines {
        let dst = &mut tmp[l * len..(l + 1) * len];
        // SAFETY: line `l` is inside the block.
        let src = unsafe { x.offset(l as isize * line_stride) };
        if along == 1 {
            // SAFETY: `len` contiguous floats; the CPU has AVX-512F/BW.
            unsafe { round_line(src, dst) };
        } else {
            for (e, d) in dst.iter_mut().enumerate() {
                // SAFETY: element `e` of the line is inside the block.
                *d = adjoint_ir::bf16::from_f32(unsafe { *src.offset(e as isize * along) })
                    .to_bits();
            }
        }
    }
    Bits {
        ptr: tmp.as_ptr(),
        rs: out.0,
        cs: out.1,
    }
}

/// `bf16` bits of 16 floats: round to nearest even on the bits (`x + 0x7FFF + lsb`, the top
/// half), NaN kept quiet (`x >> 16 | 0x40`) — the `half` crate's and generated code's rule.
#[target_feature(enable = "avx512f,avx512bw")]
fn round16(x: __m512i) -> __m256i {
    let abs = _mm512_and_si512(x, _mm512_set1_epi32(0x7FFF_FFFF));
    let nan = _mm512_cmpgt_epi32_mask(abs, _mm512_set1_epi32(0x7F80_0000));
    let top = _mm512_srli_epi32::<16>(x);
    let lsb = _mm512_and_si512(top, _mm512_set1_epi32(1));
    let up = _mm512_add_epi32(_mm512_add_epi32(x, _mm512_set1_epi32(0x7FFF)), lsb);
    let rounded = _mm512_srli_epi32::<16>(up);
    let quiet = _mm512_or_si512(top, _mm512_set1_epi32(0x40));
    _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(rounded, nan, quiet))
}

/// Rounds `dst.len()` contiguous floats from `src` to `bf16` bits.
///
/// # Safety
/// `dst.len()` floats from `src` must be readable; the CPU must have AVX-512F/BW/VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn round_line(src: *const f32, dst: &mut [u16]) {
    let len = dst.len();
    let mut e = 0;
    while e < len {
        let left = (len - e).min(16);
        let mask: __mmask16 = if left == 16 { !0 } else { (1u16 << left) - 1 };
        // SAFETY: the `left` floats from `src + e` are readable (masked load); `dst` holds
        // `left` values from `e` (masked store).
        unsafe {
            let x = _mm512_castps_si512(_mm512_maskz_loadu_ps(mask, src.add(e)));
            _mm256_mask_storeu_epi16(dst.as_mut_ptr().add(e) as *mut _, mask, round16(x));
        }
        e += 16;
    }
}

/// Packs `A` row-major in pairs, `stride` pairs a row: `pa[i·stride + q] = A[i, 2q] | A[i,
/// 2q+1] << 16` (zero past `k`).
///
/// # Safety
/// `A`'s `m×k` elements must be readable; `pa` holds at least `m·stride` zeroed pairs and
/// `2·stride >= k`.
pub(super) unsafe fn pack_a_rows(pa: &mut [u32], a: Bits, m: usize, k: usize, stride: usize) {
    let out = pa.as_mut_ptr() as *mut u16;
    if a.cs != 1 && a.rs == 1 {
        // A transposed in memory: read its contiguous columns, 16 rows at a time (so the
        // 16 rows written stay in L1 while the columns are read).
        for i0 in (0..m).step_by(16) {
            let rows = 16.min(m - i0);
            for p in 0..k {
                // SAFETY: column `p` is inside `A`.
                let col = unsafe { a.ptr.offset(p as isize * a.cs + i0 as isize) };
                for r in 0..rows {
                    // SAFETY: `(i0 + r, p)` is inside `A`; half `p` of row `i0 + r` is
                    // inside `pa`.
                    unsafe { *out.add((i0 + r) * 2 * stride + p) = *col.add(r) };
                }
            }
        }
        return;
    }
    for i in 0..m {
        // SAFETY: row `i` of `pa` starts here.
        let dst = unsafe { out.add(i * 2 * stride) };
        // SAFETY: row `i` is inside `A`.
        let row = unsafe { a.ptr.offset(i as isize * a.rs) };
        if a.cs == 1 {
            // SAFETY: `k` contiguous values; the row of `pa` holds `2·stride >= k` halves.
            unsafe { std::ptr::copy_nonoverlapping(row, dst, k) };
        } else {
            for p in 0..k {
                // SAFETY: `(i, p)` is inside `A`; `p < 2·stride`.
                unsafe { *dst.add(p) = *row.offset(p as isize * a.cs) };
            }
        }
    }
}

/// Packs a transposed `A` (`rs == 1`) in panels of MR rows:
/// `pa[(i / MR · k2 + q)·MR + i % MR] = A[i, 2q] | A[i, 2q+1] << 16` (zero past `k` and `m`).
///
/// # Safety
/// `A`'s `m×k` elements must be readable; `pa` holds `⌈m/MR⌉·MR·k2` zeroed pairs.
unsafe fn pack_a_panels(pa: &mut [u32], a: Bits, m: usize, k: usize) {
    let k2 = k.div_ceil(2);
    for (pi, i0) in (0..m).step_by(MR).enumerate() {
        let rows = MR.min(m - i0);
        let panel = &mut pa[pi * k2 * MR..(pi + 1) * k2 * MR];
        for q in 0..k2 {
            // SAFETY: rows `i0..i0+rows` of columns `2q` (and `2q+1` below `k`) are inside `A`,
            // contiguous (`rs == 1`).
            let lo = unsafe { a.ptr.offset(i0 as isize + (2 * q) as isize * a.cs) };
            let hi = (2 * q + 1 < k).then(|| unsafe { lo.offset(a.cs) });
            let dst = &mut panel[q * MR..q * MR + rows];
            for (r, d) in dst.iter_mut().enumerate() {
                // SAFETY: as above.
                let (x, y) = unsafe { (*lo.add(r), hi.map_or(0, |h| *h.add(r))) };
                *d = x as u32 | (y as u32) << 16;
            }
        }
    }
}

/// Packs `cols <= NR` columns of `B` from `b` (column 0 of the tile) in pairs: `panel[q·NR +
/// j] = B[2q, j] | B[2q+1, j] << 16`, zero past `k` and `cols`.
///
/// # Safety
/// `B`'s `k × cols` elements from `b` must be readable; `panel` holds `k2·NR` zeroed pairs;
/// the CPU must have AVX-512F/BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn pack_b_tile(panel: &mut [u32], b: Bits, k: usize, cols: usize) {
    let k2 = k.div_ceil(2);
    if b.cs == 1 {
        // Rows contiguous: interleave two rows' 32 values into 32 pairs.
        let mask: __mmask32 = if cols == NR { !0 } else { (1u32 << cols) - 1 };
        let lo_idx = _mm512_set_epi16(
            47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38, 6, 37, 5, 36,
            4, 35, 3, 34, 2, 33, 1, 32, 0,
        );
        let hi_idx = _mm512_set_epi16(
            63, 31, 62, 30, 61, 29, 60, 28, 59, 27, 58, 26, 57, 25, 56, 24, 55, 23, 54, 22, 53, 21,
            52, 20, 51, 19, 50, 18, 49, 17, 48, 16,
        );
        for q in 0..k2 {
            // SAFETY: rows `2q` and `2q+1` (below `k`) hold `cols` contiguous values (masked
            // loads read no more); the panel's pair row `q` holds NR pairs.
            unsafe {
                let r0 = b.ptr.offset((2 * q) as isize * b.rs);
                let x = _mm512_maskz_loadu_epi16(mask, r0 as *const _);
                let y = if 2 * q + 1 < k {
                    _mm512_maskz_loadu_epi16(mask, r0.offset(b.rs) as *const _)
                } else {
                    _mm512_setzero_si512()
                };
                let dst = panel.as_mut_ptr().add(q * NR);
                _mm512_storeu_si512(dst as *mut _, _mm512_permutex2var_epi16(x, lo_idx, y));
                _mm512_storeu_si512(
                    dst.add(16) as *mut _,
                    _mm512_permutex2var_epi16(x, hi_idx, y),
                );
            }
        }
        return;
    }
    let full = k / 2;
    for j in 0..cols {
        // SAFETY: column `j` is inside `B`.
        let col = unsafe { b.ptr.offset(j as isize * b.cs) };
        if b.rs == 1 {
            // Columns contiguous: each pair is one unaligned `u32`.
            for q in 0..full {
                // SAFETY: `(2q, j)` and `(2q+1, j)` are inside `B`, adjacent.
                panel[q * NR + j] = unsafe { (col.add(2 * q) as *const u32).read_unaligned() };
            }
        } else {
            for q in 0..full {
                // SAFETY: `(2q, j)` and `(2q+1, j)` are inside `B`.
                let (x, y) = unsafe {
                    (
                        *col.offset((2 * q) as isize * b.rs),
                        *col.offset((2 * q + 1) as isize * b.rs),
                    )
                };
                panel[q * NR + j] = x as u32 | (y as u32) << 16;
            }
        }
        if k % 2 == 1 {
            // SAFETY: `(k - 1, j)` is inside `B`.
            panel[full * NR + j] = unsafe { *col.offset((k - 1) as isize * b.rs) } as u32;
        }
    }
}

/// One tile: `C[r, j] = init[r, j] + Σ_q pairs of A row r · pairs of B column j` for `r <
/// rows`, `j < cols`, written as `f32` or rounded to `bf16`. `init` (`[r·NR + j]`, MR rows)
/// holds the sums of the preceding contraction blocks, or is null for zero: the sums continue
/// exactly where they stopped, so blocking does not change them.
///
/// # Safety
/// The CPU must have AVX-512F/BW/VL and AVX512_BF16; `pa` holds MR rows of `k2` pairs at
/// `r·rs + q·qs`, `panel` `k2·NR` pairs, `init` (unless null) MR·NR floats; the tile's
/// elements of `C` are writable and owned.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    pa: *const u32,
    (rs, qs): (usize, usize),
    k2: usize,
    panel: &[u32],
    init: *const f32,
    c: Dst,
    cs: (isize, isize),
    rows: usize,
    cols: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    if !init.is_null() {
        for (r, row) in acc.iter_mut().enumerate() {
            for (h, v) in row.iter_mut().enumerate() {
                // SAFETY: `init` holds MR rows of NR floats.
                *v = unsafe { _mm512_loadu_ps(init.add(r * NR + 16 * h)) };
            }
        }
    }
    for q in 0..k2 {
        // SAFETY: 64 bytes at each half of this pair row of the panel, reinterpreted as 32
        // bf16 values each.
        let (b0, b1) = unsafe {
            let pb = panel.as_ptr().add(q * NR);
            (
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(pb as *const _)),
                std::mem::transmute::<__m512i, __m512bh>(
                    _mm512_loadu_si512(pb.add(16) as *const _),
                ),
            )
        };
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: row `r`'s pair `q` is inside `pa` (rows are padded to MR); a 512-bit
            // integer vector reinterpreted as 32 bf16 values (same size).
            let av = unsafe {
                std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(
                    *pa.add(r * rs + q * qs) as i32,
                ))
            };
            row[0] = _mm512_dpbf16_ps(row[0], av, b0);
            row[1] = _mm512_dpbf16_ps(row[1], av, b1);
        }
    }
    let mask = |h: usize| -> __mmask16 {
        let left = cols.saturating_sub(16 * h).min(16);
        if left == 16 {
            !0
        } else {
            (1u16 << left) - 1
        }
    };
    for (r, row) in acc.iter().enumerate().take(rows) {
        for (h, &v) in row.iter().enumerate() {
            let m = mask(h);
            if m != 0 {
                let at = r as isize * cs.0 + (16 * h) as isize * cs.1;
                // SAFETY: the masked columns of row `r` are inside `C`, owned.
                unsafe { store16(c, at, cs.1, v, m) };
            }
        }
    }
}

/// Writes the lanes of `v` that `m` selects (a prefix) to `C` from element `at`, `step`
/// elements apart: as `f32`, or rounded to `bf16`.
///
/// # Safety
/// The selected elements must be inside `C`, writable and owned; the CPU must have
/// AVX-512F/BW/VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn store16(c: Dst, at: isize, step: isize, v: __m512, m: __mmask16) {
    if c.wide {
        let out = c.ptr as *mut f32;
        if step == 1 {
            // SAFETY: the masked lanes' elements are inside `C`, contiguous.
            unsafe { _mm512_mask_storeu_ps(out.offset(at), m, v) };
        } else {
            let mut lane = [0f32; 16];
            // SAFETY: 16 floats.
            unsafe { _mm512_storeu_ps(lane.as_mut_ptr(), v) };
            for (j, &x) in lane.iter().enumerate().take(m.count_ones() as usize) {
                // SAFETY: element `at + j·step` is inside `C`.
                unsafe { *out.offset(at + j as isize * step) = x };
            }
        }
    } else {
        let out = c.ptr as *mut u16;
        let bits = round16(_mm512_castps_si512(v));
        if step == 1 {
            // SAFETY: the masked lanes' elements are inside `C`, contiguous.
            unsafe { _mm256_mask_storeu_epi16(out.offset(at) as *mut _, m, bits) };
        } else {
            let mut lane = [0u16; 16];
            // SAFETY: 16 halves.
            unsafe { _mm256_storeu_si256(lane.as_mut_ptr() as *mut _, bits) };
            for (j, &x) in lane.iter().enumerate().take(m.count_ones() as usize) {
                // SAFETY: element `at + j·step` is inside `C`.
                unsafe { *out.offset(at + j as isize * step) = x };
            }
        }
    }
}
