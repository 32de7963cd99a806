//! The host matmul kernel: `C = A·B` in `f32` over packed panels, with micro-kernels written
//! with `std::arch` intrinsics for the vector widths Cranelift cannot emit (AVX-512F, AVX2 +
//! FMA) and a portable one for every other CPU, chosen at run time ([`Isa`], [`selected_isa`],
//! `ADJOINT_ISA`).
//!
//! Generated code calls [`adjoint_sgemm`] with a [`GemmDesc`] that gives every operand's
//! element strides, so the three layouts of the backward (`A·B`, `Aᵀ·B`, `A·Bᵀ`) and batched
//! products are read in place: the packing routines (`driver.rs`) gather through the strides
//! into contiguous panels, blocked along the contraction for L1/L2, and the micro-kernel runs
//! over the panels; narrow products (a classifier layer's `N = 10`) read the operand used once
//! in place instead of packing it.
//!
//! The work is cut into *units* (blocks of output rows, or of output columns, of one batch
//! element) so that the thread pool can split a product over output tiles only. Each output
//! element's sum runs over `k` in the same order whatever the split (one multiply-add chain
//! per contraction block, whose length depends on `k` only, blocks added in order), so results
//! do not depend on the thread count. Different ISAs differ in the last bits.
//!
//! [`available`] is true everywhere: the portable kernel needs nothing from the CPU.

#[cfg(target_arch = "x86_64")]
mod amx_bf16;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx2_dot;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod avx512_bf16;
#[cfg(target_arch = "x86_64")]
mod avx512_dot;
mod driver;
mod generic;
mod half;
mod isa;
mod lines;

pub use half::{
    adjoint_gemm_bf16, adjoint_gemm_f16, gemm_half_desc, HalfOperand, HalfPath, HalfResult,
    HalfType,
};
pub use isa::{select_isa, selected_isa, Isa};

use driver::{Land, MicroKernel, Operand, Product};
use lines::Lines;
use std::ops::Range;

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
    /// For a 16-bit product (`bf16`, `f16`): 1 where `A`, `B` or `C` is stored as `f32`, 0
    /// where it holds the product's 16-bit type. An `f32` operand is rounded to the 16-bit
    /// type as it is read (a cast fused into the product, bit for bit the cast); an `f32` `C`
    /// receives the sums unrounded, a 16-bit one each sum rounded once. The `f32` entry
    /// ([`adjoint_sgemm`]) reads and writes `f32` whatever this says.
    pub wide: [i64; 3],
}

/// A block of a product's units ([`GemmDesc::block_at`]): the element offsets of its first
/// elements of `A`, `B` and `C`, its extent, and the first unit after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UnitBlock {
    /// The first unit of the next block.
    pub next: i64,
    /// Element offsets of the block's first elements of `A`, `B` and `C`.
    pub a: i64,
    pub b: i64,
    pub c: i64,
    /// Rows and columns of the block's product.
    pub m: usize,
    pub n: usize,
    /// The row and the column of its batch element's `C` where the block starts.
    pub row0: usize,
    pub col0: usize,
}

impl GemmDesc {
    /// An unbatched `m×n×k` product of `f32` operands with the given element strides of `A`
    /// (`[row, column]`), `B` and `C`, cut into units for the thread pool
    /// ([`GemmDesc::with_split`]).
    pub fn unbatched(m: usize, n: usize, k: usize, a: [i64; 2], b: [i64; 2], c: [i64; 2]) -> Self {
        GemmDesc {
            m: m as i64,
            n: n as i64,
            k: k as i64,
            a,
            b,
            c,
            batch: [1; MAX_BATCH],
            batch_strides: [[0; 3]; MAX_BATCH],
            split_rows: 1,
            unit: 1,
            wide: [1; 3],
        }
        .with_split()
    }

    /// Units of one batch element.
    pub fn units_per_batch(&self) -> i64 {
        let along = if self.split_rows != 0 { self.m } else { self.n };
        (along.max(1) + self.unit - 1) / self.unit
    }

    /// Units in all: the range the nest function is called over.
    pub fn units(&self) -> i64 {
        self.batch.iter().product::<i64>() * self.units_per_batch()
    }

    /// The block of units that starts at unit `u` (of `u..end`): the units of `u`'s batch
    /// element up to `end`, run as one product (one packing of the operand they share).
    pub(crate) fn block_at(&self, u: i64, end: i64) -> UnitBlock {
        let per = self.units_per_batch();
        let bi = u / per;
        let next = ((bi + 1) * per).min(end);
        let (t0, t1) = (u - bi * per, next - bi * per);
        let mut rest = bi;
        let (mut a, mut b, mut c) = (0i64, 0i64, 0i64);
        for dim in (0..MAX_BATCH).rev() {
            let e = self.batch[dim].max(1);
            let i = rest % e;
            rest /= e;
            a += i * self.batch_strides[dim][0];
            b += i * self.batch_strides[dim][1];
            c += i * self.batch_strides[dim][2];
        }
        let along = if self.split_rows != 0 { self.m } else { self.n };
        let (lo, hi) = (t0 * self.unit, (t1 * self.unit).min(along));
        let (mut m, mut n) = (self.m, self.n);
        let (mut row0, mut col0) = (0, 0);
        if self.split_rows != 0 {
            a += lo * self.a[0];
            c += lo * self.c[0];
            m = hi - lo;
            row0 = lo;
        } else {
            b += lo * self.b[1];
            c += lo * self.c[1];
            n = hi - lo;
            col0 = lo;
        }
        UnitBlock {
            next,
            a,
            b,
            c,
            m: m.max(0) as usize,
            n: n.max(0) as usize,
            row0: row0.max(0) as usize,
            col0: col0.max(0) as usize,
        }
    }

    /// Chooses how to cut the product into units: along the larger of `m` and `n` (the
    /// operand packed by every thread is then the smaller one), one tile of the selected
    /// ISA's kernel (`MR` rows or `NR` columns) per unit. The pool hands each thread one
    /// contiguous run of units, which runs as one block packing the shared operand once, so
    /// fine units cost nothing and keep the threads' shares within a tile of each other
    /// (units of 42 rows split W4's 128-row products 84 + 44 between two threads; of 140, its
    /// 512-row ones 280 + 232). The cut changes which thread computes an element, never its
    /// value.
    pub fn with_split(mut self) -> GemmDesc {
        let (mr, nr) = tile_shape(selected_isa());
        if self.m >= self.n {
            self.split_rows = 1;
            self.unit = mr as i64;
        } else {
            self.split_rows = 0;
            self.unit = nr as i64;
        }
        self
    }

    /// One past the largest element offset of each operand (`A`, `B`, `C`) the product reads
    /// or writes (0 for an empty product).
    pub fn extents(&self) -> [i64; 3] {
        if self.m <= 0 || self.n <= 0 {
            return [0; 3];
        }
        let mut last = [0i64; 3];
        for (dim, &e) in self.batch.iter().enumerate() {
            for (l, s) in last.iter_mut().zip(self.batch_strides[dim]) {
                *l += (e.max(1) - 1) * s;
            }
        }
        let kk = self.k.max(1) - 1;
        last[0] += (self.m - 1) * self.a[0] + kk * self.a[1];
        last[1] += kk * self.b[0] + (self.n - 1) * self.b[1];
        last[2] += (self.m - 1) * self.c[0] + (self.n - 1) * self.c[1];
        if self.k <= 0 {
            last[0] = -1;
            last[1] = -1;
        }
        last.map(|l| l + 1)
    }
}

/// Tile rows and tile columns of `isa`'s kernel.
fn tile_shape(isa: Isa) -> (usize, usize) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => (avx512::Avx512::MR, avx512::Avx512::NR),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => (avx2::Avx2::MR, avx2::Avx2::NR),
        _ => (generic::Generic::MR, generic::Generic::NR),
    }
}

/// True when the host kernel can run here: always, since the portable kernel needs nothing
/// from the CPU ([`selected_isa`] tells which kernel runs).
pub fn available() -> bool {
    true
}

/// The symbol generated code calls: units `begin..end` of the product `desc` describes, with
/// `a`, `b`, `c` pointing at element 0 of each operand.
///
/// # Safety
/// `desc` must point to a valid [`GemmDesc`] whose strides are non-negative and address only
/// elements inside the three buffers; `c` must be writable and not overlap `a` or `b`; no
/// other thread may write the units' output elements at the same time.
pub unsafe extern "C" fn adjoint_sgemm(
    desc: *const GemmDesc,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    begin: i64,
    end: i64,
) {
    // SAFETY: the caller's contract.
    unsafe { run_entry(desc, a, b, c, begin, end, None) };
}

/// [`adjoint_sgemm`] landing the product as a step of `C` itself: `C = C + scale·(A·B)`, each
/// element's product `scale·(A·B)` rounded before the sum, which is to the bit how an unfused
/// SGD update `w − lr·g` (with `scale = −lr`) rounds. `C` is read and written in place, tile
/// by tile while the tile's sums are in registers, so the gradient `A·B` is never stored.
///
/// # Safety
/// As [`adjoint_sgemm`]; `c` must also be readable.
pub unsafe extern "C" fn adjoint_sgemm_step(
    desc: *const GemmDesc,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    begin: i64,
    end: i64,
    scale: f32,
) {
    // SAFETY: the caller's contract.
    unsafe { run_entry(desc, a, b, c, begin, end, Some(scale)) };
}

/// The body of [`adjoint_sgemm`] (`step` `None`) and [`adjoint_sgemm_step`]: units
/// `begin..end` on the [`selected_isa`].
///
/// # Safety
/// As [`adjoint_sgemm_step`] when `step` is `Some`, as [`adjoint_sgemm`] otherwise.
unsafe fn run_entry(
    desc: *const GemmDesc,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    begin: i64,
    end: i64,
    step: Option<f32>,
) {
    // SAFETY: the caller's contract: `desc` is valid.
    let d = unsafe { *desc };
    // SAFETY: the caller's contract; `selected_isa` only returns ISAs the CPU supports.
    unsafe {
        run_units(
            selected_isa(),
            &d,
            a,
            b,
            c,
            begin,
            end,
            step,
            &mut |_, _| {},
        )
    };
}

/// A matmul's epilogue compiled over a block of the product's output:
/// `fn(ctx, row0, row1, col0, col1)` computes the elements `(i, j)` of rows `row0..row1` and
/// columns `col0..col1` (see `codegen::nest::NestEmitter::emit_block`).
pub type EpilogueFn = unsafe extern "C" fn(*const u8, i64, i64, i64, i64);

/// [`adjoint_sgemm`] followed, block by block, by the product's elementwise epilogue: as soon
/// as a block of rows of a unit's output is final (a row block of the kernel's blocking, while
/// it is in L2), `epilogue(ctx, row0, row1, col0, col1)` runs over it on the same thread
/// instead of in a second pass over the whole output once the product is done. Every output
/// element is handed to the epilogue exactly once, after its last write. For products without
/// batch dimensions: the rows and columns are those of `C`.
///
/// # Safety
/// As [`adjoint_sgemm`]; `desc` has no batch dimension (every extent 1); `epilogue` must be
/// safe to call with `ctx` over any block of the units' output once that block is final,
/// concurrently with the product's other units on other threads (it must not write `A`, `B`
/// or elements of `C`, nor read elements of `C` outside its block).
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn adjoint_sgemm_epilogue(
    desc: *const GemmDesc,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    begin: i64,
    end: i64,
    epilogue: EpilogueFn,
    ctx: *const u8,
) {
    // SAFETY: the caller's contract: `desc` is valid.
    let d = unsafe { *desc };
    let mut done = |rows: Range<usize>, cols: Range<usize>| {
        // SAFETY: the caller's contract: the block is final and the epilogue may run on it.
        unsafe {
            epilogue(
                ctx,
                rows.start as i64,
                rows.end as i64,
                cols.start as i64,
                cols.end as i64,
            )
        };
    };
    // SAFETY: the caller's contract; `selected_isa` only returns ISAs the CPU supports.
    unsafe { run_units(selected_isa(), &d, a, b, c, begin, end, None, &mut done) };
}

thread_local! {
    /// This thread's sums of a stepped product too long to land in one block.
    static STEP_SUMS: std::cell::RefCell<Lines> = const { std::cell::RefCell::new(Lines::new()) };
}

/// Units `begin..end` of `d` on `isa`; `block_done(rows, cols)` is called as soon as that
/// block of a batch element's `C` is final (see [`driver::sgemm`]), each element once. With
/// `step = Some(scale)`, `C = C + scale·(A·B)` ([`adjoint_sgemm_step`]): on the tiles when the
/// contraction is one block, otherwise through a buffer of the block's sums.
///
/// # Safety
/// As [`adjoint_sgemm`]; the CPU must support `isa`.
#[allow(clippy::too_many_arguments)]
unsafe fn run_units(
    isa: Isa,
    d: &GemmDesc,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    begin: i64,
    end: i64,
    step: Option<f32>,
    block_done: &mut dyn FnMut(Range<usize>, Range<usize>),
) {
    let k = d.k.max(0) as usize;
    let land = match step {
        None => Land::Write,
        Some(scale) => Land::Step { scale },
    };
    let on_tiles = k <= driver::ONE_BLOCK_K;
    // Decided on the whole product, so that every unit of it sums in the same order.
    #[cfg(target_arch = "x86_64")]
    let dot = dot_suits(
        isa,
        d.n as usize,
        d.k as usize,
        d.a[0] as isize,
        d.a[1] as isize,
    );
    #[cfg(not(target_arch = "x86_64"))]
    let dot = false;
    let mut u = begin;
    while u < end {
        // Consecutive units of one batch element run as one block (one packing of the
        // operand every unit shares).
        let blk = d.block_at(u, end);
        let cols = blk.col0..blk.col0 + blk.n;
        let mut rows_done =
            |r: Range<usize>| block_done(blk.row0 + r.start..blk.row0 + r.end, cols.clone());
        // SAFETY: the offsets stay inside the buffers by the caller's contract (the unit's
        // rows or columns and the batch index are within the described extents).
        let (ao, bo, cb) = unsafe {
            (
                Operand {
                    ptr: a.offset(blk.a as isize),
                    rs: d.a[0] as isize,
                    cs: d.a[1] as isize,
                },
                Operand {
                    ptr: b.offset(blk.b as isize),
                    rs: d.b[0] as isize,
                    cs: d.b[1] as isize,
                },
                c.offset(blk.c as isize),
            )
        };
        let cs = (d.c[0] as isize, d.c[1] as isize);
        let (m, n) = (blk.m, blk.n);
        let product = Product {
            a: ao,
            b: bo,
            c: cb,
            cs,
            m,
            n,
            k,
            land,
        };
        if land == Land::Write || on_tiles {
            // SAFETY: the caller's contract, for the block's elements.
            unsafe { sgemm_on(isa, dot, product, &mut rows_done) };
        } else {
            STEP_SUMS.with(|cell| {
                let mut sums = cell.borrow_mut();
                sums.grow(m * n);
                let out = (sums.as_mut_ptr(), (n as isize, 1));
                // SAFETY: the caller's contract for `A` and `B`; `sums` holds the block's
                // `m×n` sums row-major.
                unsafe {
                    sgemm_on(
                        isa,
                        dot,
                        Product {
                            c: out.0,
                            cs: out.1,
                            land: Land::Write,
                            ..product
                        },
                        &mut |_| {},
                    )
                };
                for i in 0..m {
                    for j in 0..n {
                        // SAFETY: `(i, j)` is an element of the block of `C` (the caller's
                        // contract) and of `sums`.
                        unsafe {
                            let at = cb.offset(i as isize * cs.0 + j as isize * cs.1);
                            land.store(at, sums[i * n + j]);
                        }
                    }
                }
            });
            rows_done(0..m);
        }
        u = blk.next;
    }
}

/// True when `isa` has a dot-product path for narrow products and the whole product (`n`
/// columns, contraction `k`, `A`'s strides `a_rs`, `a_cs`) suits it.
#[cfg(target_arch = "x86_64")]
fn dot_suits(isa: Isa, n: usize, k: usize, a_rs: isize, a_cs: isize) -> bool {
    match isa {
        Isa::Avx512 => avx512_dot::suits(n, k, a_cs),
        Isa::Avx2 => avx2_dot::suits(n, k, a_rs, a_cs),
        Isa::Generic => false,
    }
}

/// `C = A·B`, landing as `land` says (see [`driver::sgemm`]), with `isa`'s kernel, or its dot-product path for narrow
/// products when `dot` (decided by [`run_units`] for the whole product), calling
/// `rows_done(rows)` as soon as rows of `C` are final (the dot-product path calls it once, at
/// the end).
///
/// # Safety
/// As [`driver::sgemm`]; the CPU must support `isa`.
unsafe fn sgemm_on(isa: Isa, dot: bool, p: Product, rows_done: &mut dyn FnMut(Range<usize>)) {
    #[cfg(not(target_arch = "x86_64"))]
    let _ = dot;
    // SAFETY (every arm): the caller's contract.
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if dot && p.m > 0 && p.n > 0 => {
            unsafe { avx512_dot::sgemm(p) };
            rows_done(0..p.m);
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { driver::sgemm::<avx512::Avx512>(p, rows_done) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if dot && p.m > 0 && p.n > 0 => {
            unsafe { avx2_dot::sgemm(p) };
            rows_done(0..p.m);
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { driver::sgemm::<avx2::Avx2>(p, rows_done) },
        _ => unsafe { driver::sgemm::<generic::Generic>(p, rows_done) },
    }
}

/// Units `units` of the product `desc` describes, on `isa`'s kernel, over slices: the safe
/// entry for tests and measurements of each path (generated code calls [`adjoint_sgemm`]).
///
/// # Panics
/// If the CPU cannot run `isa`, a stride or extent is negative, the units are outside
/// `0..desc.units()`, or an operand's slice is shorter than the elements `desc` addresses.
pub fn sgemm_desc(
    isa: Isa,
    desc: &GemmDesc,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    units: Range<i64>,
) {
    sgemm_desc_then(isa, desc, a, b, c, units, &mut |_, _, _| {});
}

/// [`sgemm_desc`] landing the product as a step of `C`: `C = C + scale·(A·B)`, as generated
/// code runs an SGD update fused into its gradient's product ([`adjoint_sgemm_step`]).
///
/// # Panics
/// As [`sgemm_desc`].
pub fn sgemm_desc_step(
    isa: Isa,
    desc: &GemmDesc,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    units: Range<i64>,
    scale: f32,
) {
    check_desc(isa, desc, a.len(), b.len(), c.len(), &units);
    let (ap, bp, cp) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    let (u0, u1) = (units.start, units.end);
    // SAFETY: as in `sgemm_desc_then`: the slices hold every element `desc` addresses, `c` is
    // borrowed mutably, and the CPU supports `isa` (checked above).
    unsafe { run_units(isa, desc, ap, bp, cp, u0, u1, Some(scale), &mut |_, _| {}) };
}

/// The hook of [`sgemm_desc_then`]: `(C, rows, columns)` of a block that has become final.
pub type BlockDone<'a> = dyn FnMut(&[f32], Range<usize>, Range<usize>) + 'a;

/// [`sgemm_desc`], calling `block_done(c, rows, cols)` with the whole of `C` each time a block
/// of a batch element's output becomes final, as generated code runs a matmul's epilogue
/// ([`adjoint_sgemm_epilogue`]): for tests of which elements are handed over, and when.
///
/// # Panics
/// As [`sgemm_desc`].
pub fn sgemm_desc_then(
    isa: Isa,
    desc: &GemmDesc,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    units: Range<i64>,
    block_done: &mut BlockDone<'_>,
) {
    check_desc(isa, desc, a.len(), b.len(), c.len(), &units);
    let (cp, clen) = (c.as_mut_ptr(), c.len());
    let mut done = |rows: Range<usize>, cols: Range<usize>| {
        // SAFETY: `cp` points to `clen` floats borrowed mutably for this call; the hook runs
        // on this thread between the kernel's writes, so nothing writes `C` while the shared
        // view lives.
        let view = unsafe { std::slice::from_raw_parts(cp as *const f32, clen) };
        block_done(view, rows, cols);
    };
    // SAFETY: every element `desc` addresses is inside the slices (checked above), strides
    // are non-negative, `c` is borrowed mutably so it overlaps neither input and no other
    // thread writes it; the CPU supports `isa` (checked above).
    unsafe {
        run_units(
            isa,
            desc,
            a.as_ptr(),
            b.as_ptr(),
            cp,
            units.start,
            units.end,
            None,
            &mut done,
        )
    };
}

/// The checks of [`sgemm_desc`] (and the 16-bit entry): `isa` runs here, strides and extents
/// are non-negative, the units exist, the operands hold every element `desc` addresses.
fn check_desc(
    isa: Isa,
    desc: &GemmDesc,
    a_len: usize,
    b_len: usize,
    c_len: usize,
    units: &Range<i64>,
) {
    assert!(
        isa.supported(),
        "this CPU cannot run the {isa} matmul kernel"
    );
    let d = desc;
    let strides = d.a.iter().chain(&d.b).chain(&d.c);
    let batch = d.batch_strides.iter().flatten();
    assert!(
        strides.chain(batch).all(|&s| s >= 0)
            && d.m >= 0
            && d.n >= 0
            && d.k >= 0
            && d.batch.iter().all(|&e| e >= 1)
            && d.unit >= 1,
        "negative stride or extent in {d:?}"
    );
    assert!(
        units.start >= 0 && units.start <= units.end && units.end <= d.units(),
        "units {units:?} outside 0..{}",
        d.units()
    );
    let [la, lb, lc] = d.extents();
    assert!(
        la <= a_len as i64 && lb <= b_len as i64 && lc <= c_len as i64,
        "operands of {a_len} / {b_len} / {c_len} elements for a product addressing {la} / {lb} / {lc}"
    );
}

/// `C = A·B` through the host kernel on the [`selected_isa`], on row-major slices (`a`:
/// `m×k`, `b`: `k×n`, `c`: `m×n`): for tests and measurements.
///
/// # Panics
/// If the slices are shorter than their shapes.
pub fn sgemm_row_major(a: &[f32], b: &[f32], c: &mut [f32], m: usize, n: usize, k: usize) {
    sgemm_row_major_on(selected_isa(), a, b, c, m, n, k);
}

/// [`sgemm_row_major`] on `isa`'s kernel.
///
/// # Panics
/// If the slices are shorter than their shapes or the CPU cannot run `isa`.
pub fn sgemm_row_major_on(
    isa: Isa,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    let (ni, ki) = (n as i64, k as i64);
    let desc = GemmDesc::unbatched(m, n, k, [ki, 1], [ni, 1], [ni, 1]);
    sgemm_desc(isa, &desc, a, b, c, 0..desc.units());
}
