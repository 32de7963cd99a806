//! Products of 16-bit operands (`bf16`, `f16`) with `f32` accumulation: the entries generated
//! code calls for a 16-bit `matmul` ([`adjoint_gemm_bf16`], [`adjoint_gemm_f16`]).
//!
//! Three paths ([`HalfPath`]). **Native**: `bf16` products run on AMX tiles (`amx_bf16.rs`)
//! where the CPU and the operating system allow them, otherwise **Dot**: `vdpbf16ps` on a CPU
//! with AVX512_BF16 (`avx512_bf16.rs`) — both on the operands as they are, when the AVX-512
//! kernel is selected. **Widen** (every other case — `f16`, other ISAs, CPUs without the instruction):
//! each block of units converts the rows of `A` and the columns of `B` it reads into
//! thread-local `f32` buffers (exact: every 16-bit value is an `f32`), then runs the `f32`
//! product of the selected ISA on them; `C` is `f32` (the caller rounds it to the 16-bit type).
//! The operands stay 16-bit in the step's memory; only the block being multiplied is widened,
//! in the per-thread packing memory. The sums are those of the `f32` kernel, in the same order
//! whatever the split into units.

use super::driver::{Land, Operand, Product};
use super::lines::Lines;
use super::{sgemm_on, GemmDesc, Isa};
use std::cell::RefCell;

/// How a 16-bit product is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HalfPath {
    /// AMX for `bf16` where the CPU has it (and the OS grants it), else as [`HalfPath::Dot`].
    /// What generated code uses.
    Native,
    /// `vdpbf16ps` for `bf16` where the CPU has AVX512_BF16 and the AVX-512 kernel is
    /// selected; the widening path otherwise.
    Dot,
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

    /// `x` rounded to this type (to nearest even), as generated code's cast rounds it.
    fn round(self, x: f32) -> u16 {
        match self {
            HalfType::Bf16 => adjoint_ir::bf16::from_f32(x).to_bits(),
            HalfType::F16 => adjoint_ir::f16::from_f32(x).to_bits(),
        }
    }
}

/// A 16-bit product's operand in memory: its 16-bit values, or (`wide`) `f32` values rounded
/// to the product's type as they are read — a cast fused into the product.
#[derive(Clone, Copy, Debug)]
pub(super) struct Src {
    pub ptr: *const u8,
    pub wide: bool,
}

impl Src {
    /// The bits of element `e` in type `t`.
    ///
    /// # Safety
    /// Element `e` must be readable.
    unsafe fn bits(self, t: HalfType, e: isize) -> u16 {
        // SAFETY: the caller's contract.
        unsafe {
            if self.wide {
                t.round(*(self.ptr as *const f32).offset(e))
            } else {
                *(self.ptr as *const u16).offset(e)
            }
        }
    }

    /// The operand from element `e` on.
    ///
    /// # Safety
    /// Element `e` must be inside the operand.
    unsafe fn at(self, e: isize) -> Src {
        let size = if self.wide { 4 } else { 2 };
        Src {
            // SAFETY: the caller's contract.
            ptr: unsafe { self.ptr.offset(e * size) },
            wide: self.wide,
        }
    }
}

/// A 16-bit product's result in memory: the product's 16-bit type (each sum rounded once), or
/// (`wide`) the `f32` sums.
#[derive(Clone, Copy, Debug)]
pub(super) struct Dst {
    pub ptr: *mut u8,
    pub wide: bool,
}

impl Dst {
    /// The result from element `e` on.
    ///
    /// # Safety
    /// Element `e` must be inside the result.
    pub(super) unsafe fn at(self, e: isize) -> Dst {
        let size = if self.wide { 4 } else { 2 };
        Dst {
            // SAFETY: the caller's contract.
            ptr: unsafe { self.ptr.offset(e * size) },
            wide: self.wide,
        }
    }
}

thread_local! {
    /// The widened `A` rows and `B` columns of this thread's current block, and its `f32`
    /// sums when the result is 16-bit.
    static WIDE: RefCell<[Lines; 3]> = const { RefCell::new([Lines::new(), Lines::new(), Lines::new()]) };
}

/// The symbol generated code calls for a `bf16` product: units `begin..end` of `desc`, `a`,
/// `b` and `c` pointing at element 0 of the operands and the result, each `bf16` or (where
/// `desc.wide` says) `f32`.
///
/// # Safety
/// As [`super::adjoint_sgemm`], with each operand holding the elements `desc.wide` says.
pub unsafe extern "C" fn adjoint_gemm_bf16(
    desc: *const GemmDesc,
    a: *const u8,
    b: *const u8,
    c: *mut u8,
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

/// [`adjoint_gemm_bf16`] for `f16` products.
///
/// # Safety
/// As [`adjoint_gemm_bf16`].
pub unsafe extern "C" fn adjoint_gemm_f16(
    desc: *const GemmDesc,
    a: *const u8,
    b: *const u8,
    c: *mut u8,
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
    a: *const u8,
    b: *const u8,
    c: *mut u8,
    begin: i64,
    end: i64,
) {
    let a = Src {
        ptr: a,
        wide: d.wide[0] != 0,
    };
    let b = Src {
        ptr: b,
        wide: d.wide[1] != 0,
    };
    let c = Dst {
        ptr: c,
        wide: d.wide[2] != 0,
    };
    let k = d.k.max(0) as usize;
    // Decided on the whole product (the widened A rows are contiguous), so that every unit
    // sums in the same order.
    // The widened A keeps rows contiguous unless A is transposed in memory (`widen_block`).
    #[cfg(target_arch = "x86_64")]
    let dot = {
        let (a_rs, a_cs) = if d.a[1] == 1 || d.a[0] != 1 {
            (k.max(2) as isize, 1)
        } else {
            (1, d.m.max(2) as isize)
        };
        super::dot_suits(isa, d.n as usize, k, a_rs, a_cs)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let dot = false;
    #[cfg(target_arch = "x86_64")]
    let (dot16, amx) = {
        let dot16 = path != HalfPath::Widen
            && t == HalfType::Bf16
            && isa == Isa::Avx512
            && super::avx512_bf16::available();
        (
            dot16,
            dot16 && path == HalfPath::Native && super::amx_bf16::available(),
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (dot16, amx) = {
        let _ = path;
        (false, false)
    };
    let mut u = begin;
    while u < end {
        let blk = d.block_at(u, end);
        let (m, n, last) = (blk.m, blk.n, blk.next);
        // SAFETY: the block's first elements are inside the operands (the caller's contract).
        let (ab, bb, cb) = unsafe {
            (
                a.at(blk.a as isize),
                b.at(blk.b as isize),
                c.at(blk.c as isize),
            )
        };
        let cs = (d.c[0] as isize, d.c[1] as isize);
        #[cfg(target_arch = "x86_64")]
        if dot16 {
            let kernel = if amx {
                super::amx_bf16::gemm
            } else {
                super::avx512_bf16::gemm
            };
            // SAFETY: the block's elements are inside the operands (the caller's contract);
            // the CPU has AVX512_BF16, and AMX when `amx` (their `available`).
            unsafe {
                kernel(
                    ab,
                    (d.a[0] as isize, d.a[1] as isize),
                    bb,
                    (d.b[0] as isize, d.b[1] as isize),
                    cb,
                    cs,
                    m,
                    n,
                    k,
                )
            };
            u = last;
            continue;
        }
        WIDE.with(|w| {
            let [wa, wb, wc] = &mut *w.borrow_mut();
            // A's `m × k` and B's `k × n` blocks widened, each contiguous along the
            // dimension it is contiguous along in memory.
            // SAFETY: the blocks are inside `A` and `B` (the caller's contract).
            let (sa, sb) = unsafe {
                (
                    widen_block(t, ab, (d.a[0] as isize, d.a[1] as isize), m, k, wa),
                    widen_block(t, bb, (d.b[0] as isize, d.b[1] as isize), k, n, wb),
                )
            };
            // The f32 sums go to `C` itself, or to `wc` and are rounded into `C`.
            let (sums, sums_cs) = if cb.wide {
                (cb.ptr as *mut f32, cs)
            } else {
                wc.grow(m * n);
                (wc.as_mut_ptr(), (n as isize, 1))
            };
            // SAFETY: the widened blocks are contiguous `m × k` and `k × n` matrices; the
            // sums' block is inside `C` or `wc` and owned by this call (the caller's
            // contract); the CPU supports `isa` (the caller's contract).
            unsafe {
                sgemm_on(
                    isa,
                    dot,
                    Product {
                        a: Operand {
                            ptr: wa.as_ptr(),
                            rs: sa.0,
                            cs: sa.1,
                        },
                        b: Operand {
                            ptr: wb.as_ptr(),
                            rs: sb.0,
                            cs: sb.1,
                        },
                        c: sums,
                        cs: sums_cs,
                        m,
                        n,
                        k,
                        land: Land::Write,
                    },
                    &mut |_| {},
                )
            };
            if !cb.wide {
                let out = cb.ptr as *mut u16;
                for i in 0..m {
                    // SAFETY: row `i` of this block is inside `C`, owned by this call.
                    let row = unsafe { out.offset(i as isize * cs.0) };
                    // SAFETY: as above, `n` elements `cs.1` apart.
                    unsafe { round_line(t, &wc[i * n..(i + 1) * n], row, cs.1) };
                }
            }
        });
        u = last;
    }
}

/// Widens the `rows × cols` block of `s` (strides `rs`, `cs`) into `out`, contiguous along
/// the dimension the block is contiguous along in memory; returns `out`'s strides.
///
/// # Safety
/// The block must be readable.
unsafe fn widen_block(
    t: HalfType,
    s: Src,
    (rs, cs): (isize, isize),
    rows: usize,
    cols: usize,
    out: &mut Lines,
) -> (isize, isize) {
    let (lines, len, line_stride, along, strides) = if cs == 1 || rs != 1 {
        (rows, cols, rs, cs, (cols as isize, 1))
    } else {
        (cols, rows, cs, rs, (1, rows as isize))
    };
    out.grow(rows * cols);
    for l in 0..lines {
        // SAFETY: line `l` of the block is inside the operand.
        let src = unsafe { s.at(l as isize * line_stride) };
        // SAFETY: as above, `len` elements `along` apart.
        unsafe { widen_line(t, src, along, &mut out[l * len..(l + 1) * len]) };
    }
    strides
}

/// `out.len()` elements of `s`, `step` apart, as `f32` (rounded to `t` first if `s` is wide).
///
/// # Safety
/// The elements must be readable.
unsafe fn widen_line(t: HalfType, s: Src, step: isize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if step == 1 && t == HalfType::F16 && std::is_x86_feature_detected!("f16c") {
        // SAFETY: the caller's contract; the CPU has F16C (and so AVX).
        return unsafe { f16c::widen(s, out) };
    }
    for (e, o) in out.iter_mut().enumerate() {
        // SAFETY: the caller's contract.
        *o = t.widen(unsafe { s.bits(t, e as isize * step) });
    }
}

/// Rounds `src` to `t` into `dst`, elements `step` apart.
///
/// # Safety
/// `src.len()` elements from `dst`, `step` apart, must be writable.
unsafe fn round_line(t: HalfType, src: &[f32], dst: *mut u16, step: isize) {
    #[cfg(target_arch = "x86_64")]
    if step == 1 && t == HalfType::F16 && std::is_x86_feature_detected!("f16c") {
        // SAFETY: the caller's contract; the CPU has F16C (and so AVX).
        return unsafe { f16c::round(src, dst) };
    }
    for (e, &x) in src.iter().enumerate() {
        // SAFETY: the caller's contract.
        unsafe { *dst.offset(e as isize * step) = t.round(x) };
    }
}

/// `f16` conversions with F16C (`vcvtph2ps`, `vcvtps2ph` rounding to nearest even), the
/// instructions the `half` crate itself uses where the CPU has them: the same bits.
#[cfg(target_arch = "x86_64")]
mod f16c {
    use super::Src;
    use std::arch::x86_64::*;

    /// `out.len()` contiguous elements of `s` as `f32`.
    ///
    /// # Safety
    /// The elements must be readable; the CPU must have F16C and AVX.
    #[target_feature(enable = "avx,f16c")]
    pub(super) unsafe fn widen(s: Src, out: &mut [f32]) {
        let n = out.len();
        let mut e = 0;
        while e + 8 <= n {
            // SAFETY: elements `e..e + 8` are readable; `out` holds them.
            unsafe {
                let h = if s.wide {
                    let x = _mm256_loadu_ps((s.ptr as *const f32).add(e));
                    _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x)
                } else {
                    _mm_loadu_si128((s.ptr as *const u16).add(e) as *const _)
                };
                _mm256_storeu_ps(out.as_mut_ptr().add(e), _mm256_cvtph_ps(h));
            }
            e += 8;
        }
        for (i, o) in out.iter_mut().enumerate().skip(e) {
            // SAFETY: element `i` is readable.
            let bits = unsafe { s.bits(super::HalfType::F16, i as isize) };
            *o = super::HalfType::F16.widen(bits);
        }
    }

    /// `src` rounded to `f16` into the contiguous `dst`.
    ///
    /// # Safety
    /// `src.len()` elements from `dst` must be writable; the CPU must have F16C and AVX.
    #[target_feature(enable = "avx,f16c")]
    pub(super) unsafe fn round(src: &[f32], dst: *mut u16) {
        let n = src.len();
        let mut e = 0;
        while e + 8 <= n {
            // SAFETY: `src` holds elements `e..e + 8`; `dst` is writable there.
            unsafe {
                let x = _mm256_loadu_ps(src.as_ptr().add(e));
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x);
                _mm_storeu_si128(dst.add(e) as *mut _, h);
            }
            e += 8;
        }
        for (i, &x) in src.iter().enumerate().skip(e) {
            // SAFETY: `dst` is writable at `i`.
            unsafe { *dst.add(i) = super::HalfType::F16.round(x) };
        }
    }
}

/// An operand of [`gemm_half_desc`]: 16-bit values (their bits), or `f32` values that the
/// product rounds to its type as it reads them.
#[derive(Clone, Copy, Debug)]
pub enum HalfOperand<'a> {
    /// The product's 16-bit type.
    Half(&'a [u16]),
    /// `f32`, rounded to the product's type.
    Wide(&'a [f32]),
}

impl HalfOperand<'_> {
    fn parts(self) -> (*const u8, usize, bool) {
        match self {
            HalfOperand::Half(x) => (x.as_ptr() as *const u8, x.len(), false),
            HalfOperand::Wide(x) => (x.as_ptr() as *const u8, x.len(), true),
        }
    }
}

/// The result of [`gemm_half_desc`]: rounded to the product's 16-bit type, or the `f32` sums.
#[derive(Debug)]
pub enum HalfResult<'a> {
    /// The product's 16-bit type (bits).
    Half(&'a mut [u16]),
    /// `f32`.
    Wide(&'a mut [f32]),
}

/// Units `units` of `desc` with 16-bit operands on `isa`: the safe entry for tests of each
/// path. `desc.wide` is taken from the operands' and the result's variants.
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
    a: HalfOperand<'_>,
    b: HalfOperand<'_>,
    c: HalfResult<'_>,
    units: std::ops::Range<i64>,
) {
    let (pa, la, wa) = a.parts();
    let (pb, lb, wb) = b.parts();
    let (pc, lc, wc) = match c {
        HalfResult::Half(x) => (x.as_mut_ptr() as *mut u8, x.len(), false),
        HalfResult::Wide(x) => (x.as_mut_ptr() as *mut u8, x.len(), true),
    };
    let mut d = *desc;
    d.wide = [wa, wb, wc].map(i64::from);
    super::check_desc(isa, &d, la, lb, lc, &units);
    // SAFETY: checked above: every addressed element is inside the slices, strides are
    // non-negative, `c` is exclusively borrowed, the CPU supports `isa`; `d.wide` matches the
    // slices' element types.
    unsafe { run_units(isa, path, t, &d, pa, pb, pc, units.start, units.end) };
}
