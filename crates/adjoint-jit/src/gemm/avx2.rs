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
