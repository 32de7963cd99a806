//! The portable micro-kernel: plain Rust over a 4×8 tile, for CPUs with neither AVX-512 nor
//! AVX2 (the compiler vectorizes the 8-wide rows with whatever the target has, SSE2 on any
//! x86-64, NEON on AArch64).
//!
//! It multiplies and adds in two roundings (`a·b + c`): a fused multiply-add is a library
//! call on targets without one. Its results therefore differ from the FMA kernels' in the
//! last bits, within the same tolerance against the interpreter.

use super::driver::{MicroKernel, Tile};

/// The portable kernel and its blocking.
pub(super) struct Generic;

/// Rows of the tile.
const MR: usize = 4;
/// Columns of the tile.
const NR: usize = 8;

impl MicroKernel for Generic {
    const MR: usize = MR;
    const NR: usize = NR;
    const KC: usize = 256;
    const MC: usize = 128;
    const NC: usize = 4096;
    const DIRECT: bool = false;

    unsafe fn tile(t: &Tile) {
        debug_assert!(t.rsa == 1 && t.csa == MR as isize && t.ldb == NR as isize);
        // SAFETY: the caller's contract: a kernel without DIRECT gets packed panels of
        // `kc·MR` and `kc·NR` floats.
        let (a, b) = unsafe {
            (
                std::slice::from_raw_parts(t.a, t.kc * MR),
                std::slice::from_raw_parts(t.b, t.kc * NR),
            )
        };
        let mut acc = [[0.0f32; NR]; MR];
        for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
            for (row, &x) in acc.iter_mut().zip(ap) {
                for (s, &y) in row.iter_mut().zip(bp) {
                    *s += x * y;
                }
            }
        }
        for (r, row) in acc.iter().enumerate().take(t.rows) {
            for (j, &v) in row.iter().enumerate().take(t.cols) {
                // SAFETY: `(r, j)` is inside the tile, which the caller owns.
                unsafe {
                    t.land
                        .store(t.c.offset(r as isize * t.rs_c + j as isize * t.cs_c), v)
                }
            }
        }
    }
}
