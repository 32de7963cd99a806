//! `bf16` products on AMX (Sapphire Rapids and later): `tdpbf16ps` multiplies a 16×32 tile of
//! `bf16` `A` by a 32×16 tile of `B` (in pairs along the contraction, the layout the
//! AVX512_BF16 kernel packs) into a 16×16 tile of `f32` sums, 16 times the work of one
//! `vdpbf16ps`. Four accumulator tiles make a 32×32 block of `C`.
//!
//! The instructions are written with `asm!` (the intrinsics are not stable); the tile
//! registers are used only inside [`gemm`], which configures them, and released at its end.
//! Linux gives a process the AMX state only on request (`arch_prctl(ARCH_REQ_XCOMP_PERM)`),
//! which [`available`] makes once.
//!
//! Each output's sum runs over the pairs in order, 16 pairs per instruction, in blocks that
//! depend on `k` only, so results do not depend on the split into units. Like `vdpbf16ps`,
//! the instruction flushes subnormal inputs and results to zero (its definition) and rounds
//! each pair's sum to nearest even.

use super::avx512_bf16::{narrow, pack_a_rows, pack_b_tile, store16, Bits};
use super::half::{Dst, Src};
use std::arch::asm;
use std::arch::x86_64::*;
use std::cell::RefCell;
use std::sync::OnceLock;

/// Rows of an `A` tile (and of an accumulator tile).
const TM: usize = 16;
/// Rows of a block of `C`: two `A` tiles.
const MB: usize = 2 * TM;
/// Columns of a packed `B` panel: two `B` tiles of 16.
const NR: usize = 32;
/// Pairs of the contraction per instruction (64 bytes of a tile row).
const KP: usize = 16;

thread_local! {
    /// Packed pairs of `A` and `B`.
    static PAIRS: RefCell<[Vec<u32>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
    /// The `bf16` copies of `f32` operands.
    static ROUNDED: RefCell<[Vec<u16>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
}

/// True when this CPU has AMX-TILE and AMX-BF16, the AVX-512 subsets the packing uses, and
/// the operating system has granted the process the AMX state (asked once).
pub(super) fn available() -> bool {
    static GRANTED: OnceLock<bool> = OnceLock::new();
    *GRANTED.get_or_init(|| {
        if !super::avx512_bf16::available() {
            return false;
        }
        // CPUID leaf 7: EDX bit 22 is AMX-BF16, bit 24 AMX-TILE.
        let edx = __cpuid_count(7, 0).edx;
        if edx & (1 << 22) == 0 || edx & (1 << 24) == 0 {
            return false;
        }
        /// `arch_prctl` request for permission to use an extended state component.
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        /// The AMX tile data state component.
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: a plain system call with integer arguments; failure is reported, not UB.
        let r = unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            )
        };
        r == 0
    })
}

/// The tile configuration (palette 1): tiles 0–3 hold 16×16 `f32` sums, 4–5 16 rows of `A`
/// (32 `bf16` each), 6–7 16 pairs of `B` (16 columns each); all 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn new() -> TileConfig {
        let mut c = [0u8; 64];
        c[0] = 1;
        for t in 0..8 {
            c[16 + 2 * t] = 64;
            c[48 + t] = TM as u8;
        }
        TileConfig(c)
    }
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
    PAIRS.with(|pairs| {
        // SAFETY: the caller's contract; the buffers are this thread's.
        ROUNDED.with(|rounded| unsafe {
            gemm_with(
                &mut pairs.borrow_mut(),
                &mut rounded.borrow_mut(),
                a,
                (ars, acs),
                b,
                (brs, bcs),
                c,
                cs,
                m,
                n,
                k,
            )
        })
    });
}

/// [`gemm`] with this thread's buffers.
///
/// # Safety
/// As [`gemm`].
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_with(
    [pa, pb]: &mut [Vec<u32>; 2],
    [ra, rb]: &mut [Vec<u16>; 2],
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
    // Pairs per row, padded to whole instructions (zero pairs add nothing).
    let k2 = k.div_ceil(2).div_ceil(KP) * KP;
    {
        // SAFETY: the operands' elements are readable (the caller's contract); the CPU has
        // AVX-512F/BW/VL (`available`).
        let (a, b): (Bits, Bits) =
            unsafe { (narrow(a, ars, acs, m, k, ra), narrow(b, brs, bcs, k, n, rb)) };
        let rows = m.div_ceil(MB) * MB;
        pa.clear();
        pa.resize(rows * k2, 0);
        // SAFETY: `A`'s elements are readable; `pa` holds `rows·k2` zeroed pairs.
        unsafe { pack_a_rows(pa, a, m, k, k2) };
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
            // SAFETY: the tile's columns are inside `B`; the panel holds `k2·NR` pairs
            // (`pack_b_tile` writes the first `⌈k/2⌉` pair rows; the rest stay zero).
            unsafe { pack_b_tile(&mut pb[t * k2 * NR..(t + 1) * k2 * NR], corner, k, cols) };
        }
        let config = TileConfig::new();
        let mut sums = [[0f32; NR]; MB];
        // SAFETY: the CPU has AMX and the process the permission (`available`); the
        // configuration is 64 aligned bytes.
        unsafe { asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack)) };
        let a_stride = k2 * 4;
        let b_stride = NR * 4;
        for t in 0..tiles {
            let cols = NR.min(n - t * NR);
            let panel = pb[t * k2 * NR..].as_ptr();
            for i0 in (0..m).step_by(MB) {
                let a0 = pa[i0 * k2..].as_ptr();
                // SAFETY: the tiles are configured; every load reads 16 rows of 64 bytes
                // inside `pa` (rows padded to MB, pairs to KP) or the panel (`k2` pair rows
                // of NR); the stores write 16 rows of 64 bytes inside `sums`.
                unsafe {
                    asm!(
                        "tilezero tmm0",
                        "tilezero tmm1",
                        "tilezero tmm2",
                        "tilezero tmm3",
                        options(nostack)
                    );
                    for q0 in (0..k2).step_by(KP) {
                        let pa0 = a0.add(q0);
                        let pa1 = a0.add(TM * k2 + q0);
                        let pb0 = panel.add(q0 * NR);
                        let pb1 = pb0.add(16);
                        asm!(
                            "tileloadd tmm4, [{a0} + {sa}*1]",
                            "tileloadd tmm5, [{a1} + {sa}*1]",
                            "tileloadd tmm6, [{b0} + {sb}*1]",
                            "tileloadd tmm7, [{b1} + {sb}*1]",
                            "tdpbf16ps tmm0, tmm4, tmm6",
                            "tdpbf16ps tmm1, tmm4, tmm7",
                            "tdpbf16ps tmm2, tmm5, tmm6",
                            "tdpbf16ps tmm3, tmm5, tmm7",
                            a0 = in(reg) pa0,
                            a1 = in(reg) pa1,
                            b0 = in(reg) pb0,
                            b1 = in(reg) pb1,
                            sa = in(reg) a_stride,
                            sb = in(reg) b_stride,
                            options(nostack, readonly)
                        );
                    }
                    let s = sums.as_mut_ptr() as *mut f32;
                    asm!(
                        "tilestored [{c0} + {sc}*1], tmm0",
                        "tilestored [{c1} + {sc}*1], tmm1",
                        "tilestored [{c2} + {sc}*1], tmm2",
                        "tilestored [{c3} + {sc}*1], tmm3",
                        c0 = in(reg) s,
                        c1 = in(reg) s.add(16),
                        c2 = in(reg) s.add(TM * NR),
                        c3 = in(reg) s.add(TM * NR + 16),
                        sc = in(reg) NR * 4,
                        options(nostack)
                    );
                }
                let e = i0 as isize * cs.0 + (t * NR) as isize * cs.1;
                // SAFETY: `(i0, t·NR)` is inside `C`; the block's rows and columns below `m`
                // and `n` are inside it and owned; the CPU has AVX-512F/BW/VL.
                unsafe { store_block(&sums, c.at(e), cs, MB.min(m - i0), cols) };
            }
        }
        // SAFETY: releases the tile state configured above.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// Writes `rows × cols` of a block of sums to `C` (as `f32` or rounded to `bf16`).
///
/// # Safety
/// The elements must be inside `C`, writable and owned; the CPU must have AVX-512F/BW/VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn store_block(
    sums: &[[f32; NR]; MB],
    c: Dst,
    cs: (isize, isize),
    rows: usize,
    cols: usize,
) {
    for (r, row) in sums.iter().enumerate().take(rows) {
        for h in 0..2 {
            let left = cols.saturating_sub(16 * h).min(16);
            if left == 0 {
                continue;
            }
            let mask: __mmask16 = if left == 16 { !0 } else { (1u16 << left) - 1 };
            // SAFETY: 16 floats of the row.
            let v = unsafe { _mm512_loadu_ps(row.as_ptr().add(16 * h)) };
            let at = r as isize * cs.0 + (16 * h) as isize * cs.1;
            // SAFETY: the masked columns of row `r` are inside `C`, owned.
            unsafe { store16(c, at, cs.1, v, mask) };
        }
    }
}
