//! The blocked product around a micro-kernel: cache blocking, packing into panels, and the
//! paths for narrow products, the same for every ISA (each ISA's module supplies a
//! [`MicroKernel`]).
//!
//! `C = A·B` is cut into blocks of [`MicroKernel::KC`] along the contraction (the block length
//! depends on `k` only), [`MicroKernel::NC`] columns of `B` and [`MicroKernel::MC`] rows of `A`;
//! `B` is packed into panels of `NR` columns and `A` into panels of `MR` rows, and the
//! micro-kernel computes an `MR×NR` tile from one panel of each. Narrow products skip the
//! packing of the operand that would be read only once (see [`sgemm`]).

use super::lines::Lines;
use std::cell::RefCell;
use std::ops::Range;

/// A strided read-only matrix: element `(r, s)` at `ptr + r·rs + s·cs`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Operand {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

/// A product `C (+)= A·B` as the layers of the host kernel pass it down: `A` is `m×k`, `B`
/// `k×n`, `C`'s element `(i, j)` at `c + i·cs.0 + j·cs.1`, the sums landing as `land` says.
#[derive(Clone, Copy, Debug)]
pub(super) struct Product {
    pub a: Operand,
    pub b: Operand,
    pub c: *mut f32,
    pub cs: (isize, isize),
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub land: Land,
}

/// One call of a micro-kernel: `C[r, j] (+)= Σ_p A[r, p]·B[p, j]` for `r < rows`, `j < cols`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Tile {
    /// Contraction length.
    pub kc: usize,
    /// `A[r, p]` at `a + r·rsa + p·csa` (a packed panel: `rsa = 1`, `csa = MR`).
    pub a: *const f32,
    pub rsa: isize,
    pub csa: isize,
    /// `B[p, j]` at `b + p·ldb + j`, `j < NR` readable (a packed panel: `ldb = NR`), or only
    /// `j < cols` readable for a kernel with [`MicroKernel::DIRECT`].
    pub b: *const f32,
    pub ldb: isize,
    /// `C[r, j]` at `c + r·rs_c + j·cs_c`.
    pub c: *mut f32,
    pub rs_c: isize,
    pub cs_c: isize,
    /// The tile's extent (`rows <= MR`, `cols <= NR`).
    pub rows: usize,
    pub cols: usize,
    /// How the sums land in `C`.
    pub land: Land,
}

/// One contraction block of a dot-product path (`avx512_dot`, `avx2_dot`: outputs as dot
/// products of rows of `A` with rows of a packed `Bᵀ`), shared by every row of the product.
#[cfg(target_arch = "x86_64")]
pub(super) struct DotBlock {
    /// The contraction block: `p0..p0 + kc`.
    pub p0: usize,
    pub kc: usize,
    /// How the block's sums land in `C`.
    pub land: Land,
    /// Distance between rows of `Bᵀ` ([`bt_stride`]).
    pub ldbt: usize,
    /// `Bᵀ`: `N` rows of `k`, `ldbt` apart.
    pub bt: *const f32,
    pub c: *mut f32,
    pub cs: (isize, isize),
}

/// Distance between the rows of a dot-product path's packed `Bᵀ` for a contraction of `k`:
/// an odd number of cache lines, so that the `N` rows read at the same `p` do not fall in
/// one L1 set when `k` is a multiple of a page.
#[cfg(target_arch = "x86_64")]
pub(super) fn bt_stride(k: usize) -> usize {
    (k.div_ceil(16) * 16) | 16
}

/// How a tile's sums `s` land in `C`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Land {
    /// `C = s`: the first contraction block.
    Write,
    /// `C = C + s`: a later contraction block.
    Add,
    /// `C = C + scale·s`, the product `scale·s` rounded before the sum: an SGD step
    /// `w − lr·g` fused into the product of its gradient `g` (`scale = −lr`; `w + (−lr)·g` is
    /// `w − lr·g` to the bit), rounded as the unfused update rounds it. Only for products of
    /// one contraction block ([`ONE_BLOCK_K`]), whose sums are final when they land.
    Step { scale: f32 },
}

impl Land {
    /// The contraction block from `p`: the product's own landing for the first block, `Add`
    /// for the later ones.
    pub fn at(self, p: usize) -> Land {
        if p > 0 {
            Land::Add
        } else {
            self
        }
    }

    /// Lands the sum `s` at `p`.
    ///
    /// # Safety
    /// `p` is valid for reads and writes and exclusively owned.
    #[inline(always)]
    pub unsafe fn store(self, p: *mut f32, s: f32) {
        // SAFETY: the caller's contract.
        unsafe {
            *p = match self {
                Land::Write => s,
                Land::Add => *p + s,
                Land::Step { scale } => *p + scale * s,
            }
        }
    }
}

/// Longest contraction every kernel computes in one block ([`MicroKernel::KC`] of each ISA's
/// kernel and of the dot-product path): the longest product a [`Land::Step`] may land.
pub(super) const ONE_BLOCK_K: usize = 256;

/// A micro-kernel and the blocking that suits it.
pub(super) trait MicroKernel {
    /// Rows of a tile (and of a packed `A` panel).
    const MR: usize;
    /// Columns of a tile (and of a packed `B` panel).
    const NR: usize;
    /// Longest contraction block.
    const KC: usize;
    /// Rows of `A` packed at once (a multiple of `MR`).
    const MC: usize;
    /// Columns of `B` packed at once (a multiple of `NR`).
    const NC: usize;
    /// True when [`MicroKernel::tile`] reads `A` through any strides and reads no column of
    /// `B` past `cols`, so that operands can be read in place.
    const DIRECT: bool;
    /// For a DIRECT kernel: `A` stored transposed (`Aᵀ·B`) is read in place in the blocked
    /// path when its columns are fewer than this many floats apart (see `direct_a` in
    /// [`sgemm`]); packed otherwise.
    const DIRECT_AT_COLUMNS: isize = 512;

    /// Computes one tile. Each element's sum runs over `p` in order, one multiply-add per
    /// step starting from zero, then lands in `C` as [`Tile::land`] says, whatever the tile's
    /// position: results do not depend on how a product is cut.
    ///
    /// # Safety
    /// The CPU must support the kernel's ISA; every element the [`Tile`] describes must be
    /// readable (`A`, `B`) or writable and exclusively owned (`C`).
    unsafe fn tile(t: &Tile);

    /// True when [`MicroKernel::tile_packing_b`] computes a tile at about the cost of
    /// [`MicroKernel::tile`], so that a `B` with contiguous rows is packed by the first tile
    /// of each panel instead of in a pass of its own.
    const TILE_PACKS_B: bool = false;

    /// Computes one whole-row tile (`rows == MR`) as [`MicroKernel::tile`] does, reading `B`
    /// from the tile (`t.ldb` apart, contiguous rows), and writes the `B` it reads into `panel`
    /// packed: `panel[p·NR + j] = B[p, j]`, zero for `j >= cols`. Only called when
    /// [`MicroKernel::TILE_PACKS_B`].
    ///
    /// # Safety
    /// As [`MicroKernel::tile`]'s; `panel` holds `kc·NR` writable floats.
    unsafe fn tile_packing_b(_t: &Tile, _panel: *mut f32) {
        unreachable!("a kernel without TILE_PACKS_B")
    }

    /// Packs one panel of a `B` whose columns are contiguous (`Aᵀ·B`'s transposed layout seen
    /// from `B`, as in `A·Bᵀ`): column `j < cols` is the `kc` floats from `corner + j·cs`;
    /// `panel[p·NR + j]` gets `B[p, j]`, zero for `j >= cols`. Returns false (having written
    /// nothing) when the kernel has no faster way than the driver's scalar gather.
    ///
    /// # Safety
    /// The CPU must support the kernel's ISA; the columns must be readable; `panel` holds
    /// `kc·NR` floats.
    unsafe fn pack_b_columns(
        _panel: &mut [f32],
        _corner: *const f32,
        _cs: isize,
        _kc: usize,
        _cols: usize,
    ) -> bool {
        false
    }

    /// Packs a block of `A` stored transposed (`Aᵀ·B`): the block's `mc` values at each
    /// `p < kc` are contiguous from `corner + p·cs`; panel `q` (of `MR` rows) gets
    /// `out[q·MR·kc + p·MR + r] = A[q·MR + r, p]`, zero past `mc`. Row by row of `Aᵀ`, every
    /// panel at once. Returns false (having written nothing) when the kernel has no faster way
    /// than the driver's copy.
    ///
    /// # Safety
    /// The CPU must support the kernel's ISA; the rows must be readable; `out` holds
    /// `mc.div_ceil(MR)·MR·kc` floats.
    unsafe fn pack_a_block_transposed(
        _out: &mut [f32],
        _corner: *const f32,
        _cs: isize,
        _kc: usize,
        _mc: usize,
    ) -> bool {
        false
    }

    /// Packs one `A` panel of `MR` rows: row `r < rows` is the `kc` values from
    /// `corner + r·rs` at stride `cs`; `panel[p·MR + r]` gets `A[r, p]`, zero for
    /// `r >= rows`. Returns false (having written nothing) when the kernel has no faster way
    /// than the driver's scalar gather for these strides.
    ///
    /// # Safety
    /// The CPU must support the kernel's ISA; the rows must be readable; `panel` holds
    /// `kc·MR` floats.
    unsafe fn pack_a_panel(
        _panel: &mut [f32],
        _corner: *const f32,
        _rs: isize,
        _cs: isize,
        _kc: usize,
        _rows: usize,
    ) -> bool {
        false
    }
}

/// Widest product whose `A` a DIRECT kernel may read in place rather than pack.
const DIRECT_A_COLUMNS: usize = 256;

/// Largest block of `B` (in bytes) read in place rather than packed, for a DIRECT kernel.
const DIRECT_B_BYTES: usize = 32 * 1024;

thread_local! {
    /// Packing buffers of this thread (`A` block, `B` block), reused across calls.
    static PACK: RefCell<(Lines, Lines)> = const { RefCell::new((Lines::new(), Lines::new())) };
}

/// The contraction step for a product of length `k`: the blocks are as equal as possible and
/// at most `kc_max` long, and depend on `k` only.
pub(super) fn kc_step(k: usize, kc_max: usize) -> usize {
    k.div_ceil(k.div_ceil(kc_max).max(1)).max(1)
}

/// `C = A·B` for an `m×k` `A` and a `k×n` `B`, `C` with strides `cs` — or, with `land` a
/// [`Land::Step`] (`k <= ONE_BLOCK_K`), `C = C + scale·(A·B)`; `rows_done(r)` is
/// called, on this thread, as soon as rows `r` of `C` (all `n` columns) hold their final
/// values, each row exactly once, rows in increasing order. In the blocked path that is after
/// the last contraction block of each row block of [`MicroKernel::MC`] rows (of the last
/// column block), while the block is still in L2: the hook a matmul's epilogue runs from
/// (`crate::gemm::adjoint_sgemm_epilogue`). The narrow paths and [`sgemm_columns_b`] call it
/// once, for all `m` rows, at the end.
///
/// Narrow products (with a [`MicroKernel::DIRECT`] kernel): when `B` fits one panel
/// (`n <= NR`, a classifier layer) each `A` panel would be used once, so `A` is read in place;
/// when `A` fits one panel (`m <= MR`) `B` is read in place if its rows are contiguous, and
/// otherwise the product is computed transposed (`Cᵀ = Bᵀ·Aᵀ`, the same sums) so that it is
/// the first case. A `B` stored transposed, longer than one contraction block, with at most
/// [`MicroKernel::MC`] rows, is packed a panel at a time for every block ([`sgemm_columns_b`]).
///
/// # Safety
/// Every element `(i < m, p < k)` of `a`, `(p < k, j < n)` of `b` must be readable and every
/// element `(i < m, j < n)` of `c` writable and exclusively owned; the CPU must support `K`.
pub(super) unsafe fn sgemm<K: MicroKernel>(p: Product, rows_done: &mut dyn FnMut(Range<usize>)) {
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
    debug_assert!(K::KC >= ONE_BLOCK_K && (land == Land::Write || k <= ONE_BLOCK_K));
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                // SAFETY: `(i, j)` is inside `C` (the caller's contract).
                unsafe { land.store(c.offset(i as isize * cs.0 + j as isize * cs.1), 0.0) };
            }
        }
        rows_done(0..m);
        return;
    }
    // One panel of `A` rows (`m <= MR`) with a `B` whose rows are not contiguous, or one
    // panel's worth of columns (`n <= MR`) with an `A` stored transposed (a weight gradient
    // `xᵀ·dy` of a classifier layer): computed as `Cᵀ = Bᵀ·Aᵀ`, whose one panel of rows reads
    // the other operand's contiguous rows in place, every vector lane used (the direct
    // orientation fills `n` of 16 lanes). Each element is the same multiply-add chain either
    // way, so the bits do not depend on which units take this path.
    let transposed = (m <= K::MR && n > m && b.cs != 1) || (n <= K::MR && m > n && a.rs == 1);
    if K::DIRECT && transposed {
        let bt = Operand {
            ptr: b.ptr,
            rs: b.cs,
            cs: b.rs,
        };
        let at = Operand {
            ptr: a.ptr,
            rs: a.cs,
            cs: a.rs,
        };
        let pt = Product {
            a: bt,
            b: at,
            cs: (cs.1, cs.0),
            m: n,
            n: m,
            ..p
        };
        // SAFETY: the same elements, addressed transposed.
        unsafe { sgemm::<K>(pt, &mut |_| {}) };
        rows_done(0..m);
        return;
    }
    let kstep = kc_step(k, K::KC);
    PACK.with(|cell| {
        let mut bufs = cell.borrow_mut();
        let (ap, bp) = &mut *bufs;
        if K::DIRECT && n <= K::NR {
            for pc in (0..k).step_by(kstep) {
                let kc = kstep.min(k - pc);
                // SAFETY: the block `(pc.., 0..n)` is inside `B`.
                unsafe { pack_b::<K>(bp, b, pc, 0, kc, n) };
                for ir in (0..m).step_by(K::MR) {
                    let t = Tile {
                        kc,
                        // SAFETY: element `(ir, pc)` is inside `A`.
                        a: unsafe { a.ptr.offset(ir as isize * a.rs + pc as isize * a.cs) },
                        rsa: a.rs,
                        csa: a.cs,
                        b: bp.as_ptr(),
                        ldb: K::NR as isize,
                        // SAFETY: row `ir` is inside `C`.
                        c: unsafe { c.offset(ir as isize * cs.0) },
                        rs_c: cs.0,
                        cs_c: cs.1,
                        rows: K::MR.min(m - ir),
                        cols: n,
                        land: land.at(pc),
                    };
                    // SAFETY: the tile's rows of `A` and `C` are inside them, the packed
                    // panel holds `kc·NR` floats; the caller checked the CPU.
                    unsafe { K::tile(&t) };
                }
            }
            rows_done(0..m);
            return;
        }
        if K::DIRECT && m <= K::MR && b.cs == 1 {
            for pc in (0..k).step_by(kstep) {
                let kc = kstep.min(k - pc);
                ap.grow(m.div_ceil(K::MR) * K::MR * kc);
                // SAFETY: the block `(0..m, pc..)` is inside `A`.
                unsafe { pack_a::<K>(ap, a, 0, pc, m, kc) };
                for jr in (0..n).step_by(K::NR) {
                    let t = Tile {
                        kc,
                        a: ap.as_ptr(),
                        rsa: 1,
                        csa: K::MR as isize,
                        // SAFETY: element `(pc, jr)` is inside `B`.
                        b: unsafe { b.ptr.offset(pc as isize * b.rs + jr as isize) },
                        ldb: b.rs,
                        // SAFETY: column `jr` is inside `C`.
                        c: unsafe { c.offset(jr as isize * cs.1) },
                        rs_c: cs.0,
                        cs_c: cs.1,
                        rows: m,
                        cols: K::NR.min(n - jr),
                        land: land.at(pc),
                    };
                    // SAFETY: the tile's columns of `B` (contiguous, only `cols` read by a
                    // DIRECT kernel) and of `C` are inside them; the packed panel holds
                    // `kc·MR` floats; the caller checked the CPU.
                    unsafe { K::tile(&t) };
                }
            }
            rows_done(0..m);
            return;
        }
        if b.rs == 1 && b.cs != 1 && m <= K::MC && k > kstep {
            // SAFETY: the caller's contract.
            unsafe { sgemm_columns_b::<K>(ap, bp, p) };
            rows_done(0..m);
            return;
        }
        // `A` is read in place when one of its strides is 1, the other small, and the product
        // at most `DIRECT_A_COLUMNS` wide: its values are broadcast one at a time, so rows in
        // place serve as well as a panel, and for narrow products (W4's attention, `n <= 64`)
        // the packing pass costs more than it saves. Otherwise it is packed (one pass per row
        // block, cheap against the many column tiles it serves): in place, `Aᵀ`'s columns 2 KiB
        // or more apart fall in few L1 sets (1024×1024×128 `Aᵀ·B`: 120 -> 140 GFLOP/s), as do
        // rows 4 KiB apart, and fourteen strided streams defeat the prefetchers. At 512
        // columns packing already wins (128×512×512: 3–7% in every layout).
        let direct_a = K::DIRECT
            && n <= DIRECT_A_COLUMNS
            && ((a.cs == 1 && a.rs < 1024) || (a.rs == 1 && a.cs < K::DIRECT_AT_COLUMNS));
        for jc in (0..n).step_by(K::NC) {
            let nc = K::NC.min(n - jc);
            for pc in (0..k).step_by(kstep) {
                let kc = kstep.min(k - pc);
                // A block of `B` with contiguous rows that fits half of L1 is read in place:
                // small products (64×128×64) spend more on packing it than on reading it
                // strided, large ones less.
                let direct_b = K::DIRECT && b.cs == 1 && kc * nc * 4 <= DIRECT_B_BYTES;
                // Larger blocks with contiguous rows are packed by the first tile of each
                // panel as it reads them: the copy's loads, stores and prefetches ride along
                // with the multiply-adds instead of taking a pass of their own, in which the
                // core waits on `B` coming from L3 or memory. One thread, Sapphire Rapids,
                // three alternating runs: 128×512×512 `A·B` 163–164 -> 169–175 GFLOP/s,
                // 128×1024×784 142–149 -> 146–163, 256×512×256 167–175 -> 171–179; W2's step
                // at two threads 5.53–5.69 -> 5.04–5.19 ms.
                let tile_packs =
                    !direct_b && K::DIRECT && K::TILE_PACKS_B && b.cs == 1 && m >= K::MR;
                if tile_packs {
                    bp.grow(nc.div_ceil(K::NR) * b_panel_stride::<K>(kc));
                } else if !direct_b {
                    // SAFETY: the block `(pc.., jc..)` of `B` is inside it.
                    unsafe { pack_b::<K>(bp, b, pc, jc, kc, nc) };
                }
                let packed_b = bp.as_mut_ptr();
                for ic in (0..m).step_by(K::MC) {
                    let mc = K::MC.min(m - ic);
                    if !direct_a {
                        ap.grow(mc.div_ceil(K::MR) * K::MR * kc);
                        // SAFETY: the block `(ic.., pc..)` of `A` is inside it.
                        unsafe { pack_a::<K>(ap, a, ic, pc, mc, kc) };
                    }
                    for jr in (0..nc).step_by(K::NR) {
                        for ir in (0..mc).step_by(K::MR) {
                            let ct = (ic + ir) as isize * cs.0 + (jc + jr) as isize * cs.1;
                            let (pa, rsa, csa) = if direct_a {
                                let at = (ic + ir) as isize * a.rs + pc as isize * a.cs;
                                // SAFETY: element `(ic + ir, pc)` is inside `A`.
                                (unsafe { a.ptr.offset(at) }, a.rs, a.cs)
                            } else {
                                // SAFETY: panel `ir / MR` of the packed block.
                                (unsafe { ap.as_ptr().add(ir * kc) }, 1, K::MR as isize)
                            };
                            // This tile packs the panel (the first row block's first
                            // tile); the others read it.
                            let packs = tile_packs && ic == 0 && ir == 0;
                            let in_place = direct_b || packs;
                            // SAFETY: panel `jr / NR` of the packed block.
                            let panel =
                                unsafe { packed_b.add(jr / K::NR * b_panel_stride::<K>(kc)) };
                            let t = Tile {
                                kc,
                                a: pa,
                                rsa,
                                csa,
                                b: if in_place {
                                    let at = pc as isize * b.rs + (jc + jr) as isize;
                                    // SAFETY: element `(pc, jc + jr)` is inside `B`; a DIRECT
                                    // kernel reads no column past the tile's `cols`.
                                    unsafe { b.ptr.offset(at) }
                                } else {
                                    panel
                                },
                                ldb: if in_place { b.rs } else { K::NR as isize },
                                // SAFETY: element `(ic + ir, jc + jr)` is inside `C`.
                                c: unsafe { c.offset(ct) },
                                rs_c: cs.0,
                                cs_c: cs.1,
                                rows: K::MR.min(mc - ir),
                                cols: K::NR.min(nc - jr),
                                land: land.at(pc),
                            };
                            // SAFETY: the packed panels hold `kc·MR` and `kc·NR` floats;
                            // the tile's elements are inside `C`; the caller checked the CPU;
                            // a packing tile has `MR` rows (`m >= MR`, and it is the first).
                            unsafe {
                                if packs {
                                    K::tile_packing_b(&t, panel)
                                } else {
                                    K::tile(&t)
                                }
                            };
                        }
                    }
                    // The epilogue hook: rows `ic..ic + mc` are final once the last
                    // contraction block of the last column block has been added. (Handing
                    // over strips of 32 to 256 columns instead, to keep less of the block in
                    // L2, measured 3-20% slower: the epilogue's reads of its other operands
                    // then jump from row to row.)
                    if pc + kc == k && jc + nc == n {
                        rows_done(ic..ic + mc);
                    }
                }
            }
        }
    });
}

/// The blocked product for a `B` stored transposed (`A·Bᵀ`: its columns are contiguous, each
/// a row of the `n×k` matrix in memory) that is longer than one contraction block, with at
/// most [`MicroKernel::MC`] rows. The whole of `A` is packed once; then each panel of `B` is
/// packed for every contraction block at once, each of its columns read from start to end,
/// and its tiles computed while it is in L1.
///
/// Packing block by block instead (the general path) reads each column in pieces of one
/// block: runs of a dozen cache lines a row apart, which the hardware prefetchers barely
/// start on. 128×1024×784 `A·Bᵀ` spent about 400 µs packing `B` that way (one thread,
/// Sapphire Rapids), against about 250 for the copy `A·B` makes of the same bytes. Panels
/// packed in groups sharing L2 (up to 1 MiB) were no faster than one at a time, and at
/// 1 MiB slower.
///
/// The sums are the general path's: the same blocks of the contraction, added in the same
/// order.
///
/// # Safety
/// As [`sgemm`]'s, with `b.rs == 1`.
unsafe fn sgemm_columns_b<K: MicroKernel>(ap: &mut Lines, bp: &mut Lines, p: Product) {
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
    let kstep = kc_step(k, K::KC);
    // Contraction block `i`: its start and length.
    let blocks = || {
        (0..k)
            .step_by(kstep)
            .map(|pc| (pc, kstep.min(k - pc)))
            .enumerate()
    };
    let a_block = m.div_ceil(K::MR) * K::MR * kstep;
    ap.grow(k.div_ceil(kstep) * a_block);
    for (i, (pc, kc)) in blocks() {
        // SAFETY: the block `(0..m, pc..)` is inside `A`.
        unsafe { pack_a::<K>(&mut ap[i * a_block..], a, 0, pc, m, kc) };
    }
    let b_block = K::NR * kstep;
    bp.grow(k.div_ceil(kstep) * b_block);
    for jr in (0..n).step_by(K::NR) {
        let cols = K::NR.min(n - jr);
        for (i, (pc, kc)) in blocks() {
            let panel = &mut bp[i * b_block..i * b_block + K::NR * kc];
            // SAFETY: the panel's block of `B` is inside it.
            unsafe { pack_b_panel::<K>(panel, b, pc, jr, kc, cols) };
        }
        for (i, (pc, kc)) in blocks() {
            for ir in (0..m).step_by(K::MR) {
                let t = Tile {
                    kc,
                    a: ap[i * a_block + ir * kc..].as_ptr(),
                    rsa: 1,
                    csa: K::MR as isize,
                    b: bp[i * b_block..].as_ptr(),
                    ldb: K::NR as isize,
                    // SAFETY: element `(ir, jr)` is inside `C`.
                    c: unsafe { c.offset(ir as isize * cs.0 + jr as isize * cs.1) },
                    rs_c: cs.0,
                    cs_c: cs.1,
                    rows: K::MR.min(m - ir),
                    cols,
                    land: land.at(pc),
                };
                // SAFETY: the packed panels hold `kc·MR` and `kc·NR` floats; the tile's
                // elements are inside `C`; the caller checked the CPU.
                unsafe { K::tile(&t) };
            }
        }
    }
}

/// Packs rows `i0..i0+mc`, columns `p0..p0+kc` of `a` into panels of `mr = K::MR` rows: panel `q`
/// holds, for each `p`, the `mr` values `a[i0 + q·mr + r, p0 + p]` (zero past the last row).
///
/// # Safety
/// The block must be inside `a`.
unsafe fn pack_a<K: MicroKernel>(
    out: &mut [f32],
    a: Operand,
    i0: usize,
    p0: usize,
    mc: usize,
    kc: usize,
) {
    let mr = K::MR;
    let panels = mc.div_ceil(mr);
    let out = &mut out[..panels * mr * kc];
    if a.rs == 1 {
        // `A` transposed in memory (`Aᵀ·B`): the block's `mc` values at each `p` are one
        // contiguous run. Row by row of `Aᵀ`, every panel at once, the runs are read in
        // order and the hardware prefetchers follow them; panel by panel, each panel would
        // read one short run from each of `kc` rows a row of `Aᵀ` apart (2 KiB and more),
        // which they do not follow. W4's 512x128x512 `Aᵀ·B` weight gradients took 611-654 µs
        // in the step packed panel by panel, 540-584 row by row (one thread, Sapphire Rapids).
        // SAFETY: rows `p0..p0 + kc` of `Aᵀ` hold the block's `mc` values from `i0`.
        let corner = unsafe { a.ptr.offset(i0 as isize + p0 as isize * a.cs) };
        // SAFETY: as above; `out` holds the block's panels.
        if unsafe { K::pack_a_block_transposed(out, corner, a.cs, kc, mc) } {
            return;
        }
        for p in 0..kc {
            // SAFETY: row `p0 + p` of `Aᵀ` holds the block's `mc` contiguous values.
            let src = unsafe {
                std::slice::from_raw_parts(a.ptr.offset(i0 as isize + (p0 + p) as isize * a.cs), mc)
            };
            for (q, run) in src.chunks(mr).enumerate() {
                let at = q * mr * kc + p * mr;
                if run.len() == mr {
                    out[at..at + mr].copy_from_slice(run);
                } else {
                    out[at..at + run.len()].copy_from_slice(run);
                    out[at + run.len()..at + mr].fill(0.0);
                }
            }
        }
        return;
    }
    for q in 0..panels {
        let rows = mr.min(mc - q * mr);
        let panel = &mut out[q * mr * kc..(q + 1) * mr * kc];
        // SAFETY: element `(i0 + q·mr, p0)` is inside `a`.
        let corner = unsafe {
            a.ptr
                .offset((i0 + q * mr) as isize * a.rs + p0 as isize * a.cs)
        };
        // SAFETY: the panel's `rows` rows, `kc` columns each, are inside `a`.
        if unsafe { K::pack_a_panel(panel, corner, a.rs, a.cs, kc, rows) } {
            continue;
        }
        for r in 0..mr {
            if r >= rows {
                for p in 0..kc {
                    panel[p * mr + r] = 0.0;
                }
                continue;
            }
            // SAFETY: row `i0 + q·mr + r` is inside `a`.
            let row = unsafe { corner.offset(r as isize * a.rs) };
            for p in 0..kc {
                // SAFETY: columns `p0..p0+kc` of the row are inside `a`.
                panel[p * mr + r] = unsafe { *row.offset(p as isize * a.cs) };
            }
        }
    }
}

/// Packs rows `p0..p0+kc`, columns `j0..j0+nc` of `b` into panels of `nr = K::NR` columns,
/// [`b_panel_stride`] apart: panel `q` holds, for each `p`, the `nr` values
/// `b[p0 + p, j0 + q·nr + j]` (zero past the last column).
///
/// # Safety
/// The block must be inside `b`.
unsafe fn pack_b<K: MicroKernel>(
    out: &mut Lines,
    b: Operand,
    p0: usize,
    j0: usize,
    kc: usize,
    nc: usize,
) {
    // A constant, so that a full panel's row is copied with inline vector moves.
    let nr = K::NR;
    let panels = nc.div_ceil(nr);
    let ps = b_panel_stride::<K>(kc);
    out.grow(panels * ps);
    if b.cs == 1 {
        // Row by row across every panel: each row of the block is read as one contiguous
        // run, which the hardware prefetchers follow (panel by panel, a wide `B`'s rows are
        // runs of `nr` floats a page apart, read at the latency of memory).
        let full = nc / nr;
        for p in 0..kc {
            // SAFETY: row `p0 + p` holds the block's `nc` contiguous columns.
            let src = unsafe {
                std::slice::from_raw_parts(b.ptr.offset((p0 + p) as isize * b.rs + j0 as isize), nc)
            };
            for (q, run) in src.chunks_exact(nr).enumerate() {
                let at = q * ps + p * nr;
                out[at..at + nr].copy_from_slice(run);
            }
            if full < panels {
                let (at, cols) = (full * ps + p * nr, nc - full * nr);
                out[at..at + cols].copy_from_slice(&src[full * nr..]);
                out[at + cols..at + nr].fill(0.0);
            }
        }
        return;
    }
    for q in 0..panels {
        let panel = &mut out[q * ps..q * ps + nr * kc];
        // SAFETY: the panel's block is inside `b` (the caller's contract).
        unsafe { pack_b_panel::<K>(panel, b, p0, j0 + q * nr, kc, nr.min(nc - q * nr)) };
    }
}

/// Packs rows `p0..p0+kc`, columns `j0..j0+cols` (`cols <= NR`) of a `b` whose rows are not
/// contiguous into one panel: `panel[p·NR + j] = b[p0 + p, j0 + j]`, zero past `cols`.
///
/// # Safety
/// The block must be inside `b`; `panel` holds `kc·NR` floats.
unsafe fn pack_b_panel<K: MicroKernel>(
    panel: &mut [f32],
    b: Operand,
    p0: usize,
    j0: usize,
    kc: usize,
    cols: usize,
) {
    let nr = K::NR;
    // SAFETY: element `(p0, j0)` is inside `b`.
    let corner = unsafe { b.ptr.offset(p0 as isize * b.rs + j0 as isize * b.cs) };
    // SAFETY: the panel's `cols` columns, each `kc` contiguous floats, are inside `b`.
    if b.rs == 1 && unsafe { K::pack_b_columns(panel, corner, b.cs, kc, cols) } {
        return;
    }
    for j in 0..nr {
        if j >= cols {
            for p in 0..kc {
                panel[p * nr + j] = 0.0;
            }
            continue;
        }
        // SAFETY: column `j0 + j` is inside `b`.
        let col = unsafe { corner.offset(j as isize * b.cs) };
        for p in 0..kc {
            // SAFETY: rows `p0..p0+kc` of the column are inside `b`.
            panel[p * nr + j] = unsafe { *col.offset(p as isize * b.rs) };
        }
    }
}

/// Floats between the end of one packed `B` panel and the start of the next (one cache line).
/// Without it, the panels of a `kc = 256` block are 32 KiB apart, and the row-by-row packing
/// of a wide `B` stores to every panel at addresses that fall in the same two L1 sets: 16
/// panels (`n = 512`) evict each other's lines while they are written. With it, 128×512×512
/// `A·B` went from 156–158 to 160–161 GFLOP/s (one thread, Sapphire Rapids, three
/// alternating runs).
const B_PANEL_PAD: usize = 16;

/// Floats from the start of one packed `B` panel of `kc` rows to the next.
fn b_panel_stride<K: MicroKernel>(kc: usize) -> usize {
    kc * K::NR + B_PANEL_PAD
}
