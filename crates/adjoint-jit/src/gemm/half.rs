//! Products of 16-bit operands (`bf16`, `f16`) with `f32` accumulation: the entries generated
//! code calls for a 16-bit `matmul` ([`adjoint_gemm_bf16`], [`adjoint_gemm_f16`]).
//!
//! Two paths ([`HalfPath`]). **Native**: `bf16` products on a CPU with AVX512_BF16 run
//! `vdpbf16ps` on the operands as they are (`avx512_bf16.rs`), when the AVX-512 kernel is
//! selected. **Widen** (every other case — `f16`, other ISAs, CPUs without the instruction):
//! each block of units converts the rows of `A` and the columns of `B` it reads into
//! thread-local `f32` buffers (exact: every 16-bit value is an `f32`), then runs the `f32`
//! product of the selected ISA on them; `C` is `f32` (the caller rounds it to the 16-bit type).
//! The operands stay 16-bit in the step's memory; only the block being multiplied is widened,
//! in the per-thread packing memory. The sums are those of the `f32` kernel, in the same order
//! whatever the split into units.

use super::driver::Operand;
use super::{sgemm_on, GemmDesc, Isa, MAX_BATCH};
use std::cell::RefCell;

/// How a 16-bit product is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HalfPath {
    /// `vdpbf16ps` for `bf16` where the CPU has it and the AVX-512 kernel is selected; the
    /// widening path otherwise. What generated code uses.
    Native,
    /// Always widen to `f32` and run the selected ISA's `f32` kernel.
    Widen,
}

/// Which 16-bit type the operands hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HalfType {
    /// bfloat16.
    Bf16,
    /// IEEE binary16.
    F16,
}

impl HalfType {
    fn widen(self, bits: u16) -> f32 {
        match self {
            HalfType::Bf16 => adjoint_ir::bf16::from_bits(bits).to_f32(),
            HalfType::F16 => adjoint_ir::f16::from_bits(bits).to_f32(),
        }
    }
}

thread_local! {
    /// The widened `A` rows and `B` columns of this thread's current block.
    static WIDE: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// The symbol generated code calls for a `bf16` product: units `begin..end` of `desc`, `a` and
/// `b` pointing at element 0 of the `bf16` operands (their bits), `c` at the `f32` result.
///
/// # Safety
/// As [`super::adjoint_sgemm`], with `a` and `b` holding 16-bit elements.
pub unsafe extern "C" fn adjoint_gemm_bf16(
    desc: *const GemmDesc,
    a: *const u16,
    b: *const u16,
    c: *mut f32,
    begin: i64,
    end: i64,
) {
    // SAFETY: the caller's contract: `desc` is valid, the operands as it describes.
    unsafe {
        run_units(
            super::selected_isa(),
            HalfPath::Native,
            HalfType::Bf16,
            &*desc,
            a,
            b,
            c,
            begin,
            end,
        )
    };
}

/// [`adjoint_gemm_bf16`] for `f16` operands.
///
/// # Safety
/// As [`adjoint_gemm_bf16`].
pub unsafe extern "C" fn adjoint_gemm_f16(
    desc: *const GemmDesc,
    a: *const u16,
    b: *const u16,
    c: *mut f32,
    begin: i64,
    end: i64,
) {
    // SAFETY: the caller's contract: `desc` is valid, the operands as it describes.
    unsafe {
        run_units(
            super::selected_isa(),
            HalfPath::Native,
            HalfType::F16,
            &*desc,
            a,
            b,
            c,
            begin,
            end,
        )
    };
}

/// Units `begin..end` of `d` with 16-bit operands of type `t`, on `isa`'s `f32` kernel.
///
/// # Safety
/// As [`adjoint_gemm_bf16`]; the CPU must support `isa`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn run_units(
    isa: Isa,
    path: HalfPath,
    t: HalfType,
    d: &GemmDesc,
    a: *const u16,
    b: *const u16,
    c: *mut f32,
    begin: i64,
    end: i64,
) {
    let per = d.units_per_batch();
    let k = d.k.max(0) as usize;
    // Decided on the whole product (the widened A rows are contiguous), so that every unit
    // sums in the same order.
    #[cfg(target_arch = "x86_64")]
    let dot = isa == Isa::Avx512 && super::avx512_dot::suits(d.n as usize, k, 1);
    #[cfg(not(target_arch = "x86_64"))]
    let dot = false;
    #[cfg(target_arch = "x86_64")]
    let native = path == HalfPath::Native
        && t == HalfType::Bf16
        && isa == Isa::Avx512
        && super::avx512_bf16::available();
    #[cfg(not(target_arch = "x86_64"))]
    let native = {
        let _ = path;
        false
    };
    let mut u = begin;
    while u < end {
        let bi = u / per;
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
        let (m, n) = (m.max(0) as usize, n.max(0) as usize);
        #[cfg(target_arch = "x86_64")]
        if native {
            // SAFETY: the block's elements are inside the operands (the caller's contract);
            // the CPU has AVX512_BF16 (`available`).
            unsafe {
                super::avx512_bf16::gemm(
                    a.offset(a0 as isize),
                    (d.a[0] as isize, d.a[1] as isize),
                    b.offset(b0 as isize),
                    (d.b[0] as isize, d.b[1] as isize),
                    c.offset(c0 as isize),
                    (d.c[0] as isize, d.c[1] as isize),
                    m,
                    n,
                    k,
                )
            };
            u = last;
            continue;
        }
        WIDE.with(|w| {
            let (wa, wb) = &mut *w.borrow_mut();
            wa.clear();
            wb.clear();
            // A's rows `m × k` and B's columns `k × n`, row-major, widened.
            for i in 0..m as i64 {
                for p in 0..k as i64 {
                    // SAFETY: `(i, p)` of this block is inside `A` (the caller's contract).
                    let x = unsafe { *a.offset((a0 + i * d.a[0] + p * d.a[1]) as isize) };
                    wa.push(t.widen(x));
                }
            }
            for p in 0..k as i64 {
                for j in 0..n as i64 {
                    // SAFETY: `(p, j)` of this block is inside `B` (the caller's contract).
                    let x = unsafe { *b.offset((b0 + p * d.b[0] + j * d.b[1]) as isize) };
                    wb.push(t.widen(x));
                }
            }
            // SAFETY: the widened blocks are contiguous `m × k` and `k × n` matrices; the
            // block of `C` is inside it and owned by this call (the caller's contract); the
            // CPU supports `isa` (the caller's contract).
            unsafe {
                sgemm_on(
                    isa,
                    dot,
                    Operand {
                        ptr: wa.as_ptr(),
                        rs: k as isize,
                        cs: 1,
                    },
                    Operand {
                        ptr: wb.as_ptr(),
                        rs: n as isize,
                        cs: 1,
                    },
                    c.offset(c0 as isize),
                    (d.c[0] as isize, d.c[1] as isize),
                    m,
                    n,
                    k,
                )
            };
        });
        u = last;
    }
}

/// Units `units` of `desc` with 16-bit operands (their bits) on `isa`: the safe entry for
/// tests of each path.
///
/// # Panics
/// If the CPU cannot run `isa`, a stride or extent is negative, the units are outside
/// `0..desc.units()`, or an operand's slice is shorter than the elements `desc` addresses.
#[allow(clippy::too_many_arguments)]
pub fn gemm_half_desc(
    isa: Isa,
    path: HalfPath,
    t: HalfType,
    desc: &GemmDesc,
    a: &[u16],
    b: &[u16],
    c: &mut [f32],
    units: std::ops::Range<i64>,
) {
    super::check_desc(isa, desc, a.len(), b.len(), c.len(), &units);
    // SAFETY: checked above: every addressed element is inside the slices, strides are
    // non-negative, `c` is exclusively borrowed, the CPU supports `isa`.
    unsafe {
        run_units(
            isa,
            path,
            t,
            desc,
            a.as_ptr(),
            b.as_ptr(),
            c.as_mut_ptr(),
            units.start,
            units.end,
        )
    };
}
