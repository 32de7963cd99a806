//! The host matmul kernel: `C = A·B` in `f32` over packed panels, with a micro-kernel written
//! with `std::arch` AVX2 + FMA intrinsics (256-bit vectors, which Cranelift cannot emit).
//!
//! Generated code calls [`adjoint_sgemm`] with a [`GemmDesc`] that gives every operand's
//! element strides, so the three layouts of the backward (`A·B`, `Aᵀ·B`, `A·Bᵀ`) and batched
//! products are read in place: the packing routines gather through the strides into
//! contiguous panels (`A` in panels of [`MR`] rows, `B` in panels of [`NR`] columns, blocked
//! by [`KC`] along the contraction for L1/L2), and the micro-kernel runs over the panels.
//!
//! The work is cut into *units* (blocks of output rows, or of output columns, of one batch
//! element) so that the thread pool can split a product over output tiles only. Each output
//! element's sum runs over `k` in the same order whatever the split (one `fma` chain per
//! [`KC`] block, blocks added in order), so results do not depend on the thread count.
//!
//! [`available`] tells whether the host has AVX2 and FMA; without them (or for `f64`) the
//! code generator keeps its own Cranelift matmul.

#[cfg(target_arch = "x86_64")]
mod avx2;

use std::cell::RefCell;

/// Rows of the micro-kernel's tile (and of a packed `A` panel).
pub const MR: usize = 6;
/// Columns of the micro-kernel's tile (and of a packed `B` panel): two 8-lane vectors.
pub const NR: usize = 16;
/// Contraction block: a packed `A` panel (`MR·KC`) and `B` panel (`NR·KC`) stay in L1.
pub const KC: usize = 256;
/// Rows of `A` packed at once (a multiple of [`MR`]; `MC·KC` floats stay in L2).
pub const MC: usize = 144;
/// Columns of `B` packed at once (a multiple of [`NR`]).
pub const NC: usize = 4080;

/// Most batch dimensions a [`GemmDesc`] describes.
pub const MAX_BATCH: usize = 4;

/// One (batched) product `C[b…, i, j] = Σ_k A[b…, i, k] · B[b…, k, j]`, with element strides.
///
/// Generated code passes a pointer to it, with the base pointers of the three operands; it
/// lives in the compiled step's code object for as long as the code can run.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmDesc {
    /// Rows of `C`.
    pub m: i64,
    /// Columns of `C`.
    pub n: i64,
    /// Contraction length.
    pub k: i64,
    /// Strides of `A` along `i` and `k`.
    pub a: [i64; 2],
    /// Strides of `B` along `k` and `j`.
    pub b: [i64; 2],
    /// Strides of `C` along `i` and `j`.
    pub c: [i64; 2],
    /// Extents of the batch dimensions (outermost first; 1 where unused).
    pub batch: [i64; MAX_BATCH],
    /// Strides of `A`, `B` and `C` along each batch dimension (0 for a broadcast operand).
    pub batch_strides: [[i64; 3]; MAX_BATCH],
    /// 1 when units are blocks of rows, 0 when they are blocks of columns.
    pub split_rows: i64,
    /// Rows (or columns) per unit.
    pub unit: i64,
}

impl GemmDesc {
    /// Units of one batch element.
    pub fn units_per_batch(&self) -> i64 {
        let along = if self.split_rows != 0 { self.m } else { self.n };
        (along.max(1) + self.unit - 1) / self.unit
    }

    /// Units in all: the range the nest function is called over.
    pub fn units(&self) -> i64 {
        self.batch.iter().product::<i64>() * self.units_per_batch()
    }

    /// Chooses how to cut the product into units: along the larger of `m` and `n` (the
    /// operand packed by every thread is then the smaller one), in blocks the size of the
    /// packing blocks.
    pub fn with_split(mut self) -> GemmDesc {
        let round = |x: i64, to: usize| (x.max(1) + to as i64 - 1) / to as i64 * to as i64;
        if self.m >= self.n {
            self.split_rows = 1;
            self.unit = (MC as i64).min(round(self.m, MR));
            // Several units per thread keep the split balanced on small products.
            if self.m > 2 * MR as i64 && self.m <= 2 * MC as i64 {
                self.unit = round(self.m / 4, MR);
            }
        } else {
            self.split_rows = 0;
            self.unit = 256.min(round(self.n, NR));
            if self.n > 2 * NR as i64 && self.n <= 512 {
                self.unit = round(self.n / 4, NR);
            }
        }
        self
    }
}

/// True when the host kernel can run here (x86-64 with AVX2 and FMA).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The symbol generated code calls: units `begin..end` of the product `desc` describes, with
/// `a`, `b`, `c` pointing at element 0 of each operand.
///
/// # Safety
/// `desc` must point to a valid [`GemmDesc`] whose strides are non-negative and address only
/// elements inside the three buffers; `c` must be writable and not overlap `a` or `b`; no
/// other thread may write the units' output elements at the same time; [`available`] must be
/// true.
pub unsafe extern "C" fn adjoint_sgemm(
    desc: *const GemmDesc,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    begin: i64,
    end: i64,
) {
    // SAFETY: the caller's contract: `desc` is valid.
    let d = unsafe { *desc };
    let per = d.units_per_batch();
    let mut u = begin;
    while u < end {
        let bi = u / per;
        // Consecutive units of one batch element run as one block (one packing of the
        // operand every unit shares).
        let last = ((bi + 1) * per).min(end);
        let (t0, t1) = (u - bi * per, last - bi * per);
        let mut rest = bi;
        let (mut oa, mut ob, mut oc) = (0i64, 0i64, 0i64);
        for dim in (0..MAX_BATCH).rev() {
            let e = d.batch[dim].max(1);
            let i = rest % e;
            rest /= e;
            oa += i * d.batch_strides[dim][0];
            ob += i * d.batch_strides[dim][1];
            oc += i * d.batch_strides[dim][2];
        }
        let along = if d.split_rows != 0 { d.m } else { d.n };
        let (lo, hi) = (t0 * d.unit, (t1 * d.unit).min(along));
        let (mut a0, mut c0) = (oa, oc);
        let (mut b0, mut m, mut n) = (ob, d.m, d.n);
        if d.split_rows != 0 {
            a0 += lo * d.a[0];
            c0 += lo * d.c[0];
            m = hi - lo;
        } else {
            b0 += lo * d.b[1];
            c0 += lo * d.c[1];
            n = hi - lo;
        }
        // SAFETY: the offsets stay inside the buffers by the caller's contract (the unit's
        // rows or columns and the batch index are within the described extents).
        unsafe {
            sgemm(
                Operand {
                    ptr: a.offset(a0 as isize),
                    rs: d.a[0] as isize,
                    cs: d.a[1] as isize,
                },
                Operand {
                    ptr: b.offset(b0 as isize),
                    rs: d.b[0] as isize,
                    cs: d.b[1] as isize,
                },
                c.offset(c0 as isize),
                (d.c[0] as isize, d.c[1] as isize),
                m as usize,
                n as usize,
                d.k as usize,
            );
        }
        u = last;
    }
}

/// A strided read-only matrix: element `(r, s)` at `ptr + r·rs + s·cs`.
#[derive(Clone, Copy)]
struct Operand {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}

thread_local! {
    /// Packing buffers of this thread (`A` block, `B` block), reused across calls.
    static PACK: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `C = A·B` for an `m×k` `A` and a `k×n` `B`, `C` with strides `cs`.
///
/// # Safety
/// Every element `(i < m, p < k)` of `a`, `(p < k, j < n)` of `b` must be readable and every
/// element `(i < m, j < n)` of `c` writable and exclusively owned; AVX2 and FMA available.
unsafe fn sgemm(
    a: Operand,
    b: Operand,
    c: *mut f32,
    cs: (isize, isize),
    m: usize,
    n: usize,
    k: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                // SAFETY: `(i, j)` is inside `C` (the caller's contract).
                unsafe { *c.offset(i as isize * cs.0 + j as isize * cs.1) = 0.0 };
            }
        }
        return;
    }
    PACK.with(|cell| {
        let mut bufs = cell.borrow_mut();
        let (ap, bp) = &mut *bufs;
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                // SAFETY: the block `(pc.., jc..)` of `B` is inside it.
                unsafe { pack_b(bp, b, pc, jc, kc, nc) };
                for ic in (0..m).step_by(MC) {
                    let mc = MC.min(m - ic);
                    // SAFETY: the block `(ic.., pc..)` of `A` is inside it.
                    unsafe { pack_a(ap, a, ic, pc, mc, kc) };
                    for jr in (0..nc).step_by(NR) {
                        let cols = NR.min(nc - jr);
                        for ir in (0..mc).step_by(MR) {
                            let rows = MR.min(mc - ir);
                            let ct = (ic + ir) as isize * cs.0 + (jc + jr) as isize * cs.1;
                            // SAFETY: the packed panels hold `kc·MR` and `kc·NR` floats; the
                            // tile's `rows × cols` elements are inside `C`; the caller checked
                            // AVX2 and FMA.
                            #[cfg(target_arch = "x86_64")]
                            unsafe {
                                avx2::kernel_6x16(
                                    kc,
                                    ap.as_ptr().add(ir * kc),
                                    bp.as_ptr().add(jr * kc),
                                    c.offset(ct),
                                    cs.0,
                                    cs.1,
                                    rows,
                                    cols,
                                    pc > 0,
                                );
                            }
                        }
                    }
                }
            }
        }
    });
}

/// Packs rows `i0..i0+mc`, columns `p0..p0+kc` of `a` into panels of [`MR`] rows: panel `q`
/// holds, for each `p`, the `MR` values `a[i0 + q·MR + r, p0 + p]` (zero past the last row).
///
/// # Safety
/// The block must be inside `a`.
unsafe fn pack_a(out: &mut Vec<f32>, a: Operand, i0: usize, p0: usize, mc: usize, kc: usize) {
    let panels = mc.div_ceil(MR);
    out.clear();
    out.resize(panels * MR * kc, 0.0);
    for q in 0..panels {
        let rows = MR.min(mc - q * MR);
        let panel = &mut out[q * MR * kc..(q + 1) * MR * kc];
        if a.rs == 1 {
            // A transposed in memory (Aᵀ·B): the panel's rows are contiguous for each `p`.
            // SAFETY: element `(i0 + q·MR, p0)` is inside `a`.
            let corner = unsafe { a.ptr.offset((i0 + q * MR) as isize + p0 as isize * a.cs) };
            for p in 0..kc {
                // SAFETY: the `rows` elements of column `p0 + p` from row `i0 + q·MR` are
                // inside `a`.
                let src =
                    unsafe { std::slice::from_raw_parts(corner.offset(p as isize * a.cs), rows) };
                panel[p * MR..p * MR + rows].copy_from_slice(src);
            }
            continue;
        }
        for r in 0..rows {
            // SAFETY: row `i0 + q·MR + r` and columns `p0..p0+kc` are inside `a`.
            let row = unsafe {
                a.ptr
                    .offset((i0 + q * MR + r) as isize * a.rs + p0 as isize * a.cs)
            };
            for p in 0..kc {
                // SAFETY: as above.
                panel[p * MR + r] = unsafe { *row.offset(p as isize * a.cs) };
            }
        }
    }
}

/// Packs rows `p0..p0+kc`, columns `j0..j0+nc` of `b` into panels of [`NR`] columns: panel
/// `q` holds, for each `p`, the `NR` values `b[p0 + p, j0 + q·NR + j]` (zero past the last
/// column).
///
/// # Safety
/// The block must be inside `b`.
unsafe fn pack_b(out: &mut Vec<f32>, b: Operand, p0: usize, j0: usize, kc: usize, nc: usize) {
    let panels = nc.div_ceil(NR);
    out.clear();
    out.resize(panels * NR * kc, 0.0);
    for q in 0..panels {
        let cols = NR.min(nc - q * NR);
        let panel = &mut out[q * NR * kc..(q + 1) * NR * kc];
        // SAFETY: element `(p0, j0 + q·NR)` is inside `b`.
        let corner = unsafe {
            b.ptr
                .offset(p0 as isize * b.rs + (j0 + q * NR) as isize * b.cs)
        };
        if b.cs == 1 && cols == NR {
            for p in 0..kc {
                // SAFETY: row `p0 + p` holds the panel's `NR` contiguous columns.
                let src =
                    unsafe { std::slice::from_raw_parts(corner.offset(p as isize * b.rs), NR) };
                panel[p * NR..(p + 1) * NR].copy_from_slice(src);
            }
        } else {
            for j in 0..cols {
                // SAFETY: column `j0 + q·NR + j` and rows `p0..p0+kc` are inside `b`.
                let col = unsafe { corner.offset(j as isize * b.cs) };
                for p in 0..kc {
                    // SAFETY: as above.
                    panel[p * NR + j] = unsafe { *col.offset(p as isize * b.rs) };
                }
            }
        }
    }
}

/// `C = A·B` through the host kernel, on row-major slices (`a`: `m×k`, `b`: `k×n`, `c`:
/// `m×n`): for tests and measurements.
///
/// # Panics
/// If the slices are shorter than their shapes or the host kernel is not [`available`].
pub fn sgemm_row_major(a: &[f32], b: &[f32], c: &mut [f32], m: usize, n: usize, k: usize) {
    assert!(available(), "the host matmul kernel needs AVX2 and FMA");
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    let desc = GemmDesc {
        m: m as i64,
        n: n as i64,
        k: k as i64,
        a: [k as i64, 1],
        b: [n as i64, 1],
        c: [n as i64, 1],
        batch: [1; MAX_BATCH],
        batch_strides: [[0; 3]; MAX_BATCH],
        split_rows: 1,
        unit: 1,
    }
    .with_split();
    // SAFETY: the descriptor describes exactly the three slices, whose lengths were checked;
    // `c` is borrowed mutably, so it overlaps neither input; AVX2 and FMA were checked.
    unsafe {
        adjoint_sgemm(
            &desc,
            a.as_ptr(),
            b.as_ptr(),
            c.as_mut_ptr(),
            0,
            desc.units(),
        )
    };
}
