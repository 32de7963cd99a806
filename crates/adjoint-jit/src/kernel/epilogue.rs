//! Which matmul epilogues may run block by block, inside the host matmul.
//!
//! A matmul group lowers to a host-gemm nest that writes the product `C` into kernel scratch,
//! then a nest over the product's output (`relu(x·w + b)`, `w - lr·g`, Adam's update) that
//! reads `C` at the element it writes. Run as a second pass, that nest reads all of `C` back
//! from memory when `C` is larger than the caches. [`block_epilogue`] tells when the nest may
//! instead run on each block of `C` as soon as the block is final, on the thread that computed
//! it, while the block is in L2 (`gemm::adjoint_sgemm_epilogue`): the same values, computed
//! earlier. That is so when running it early, and over rectangles of the output in any order,
//! cannot change what any element reads:
//!
//! - the gemm nest is an `f32` product without batch dimensions that writes `C` (no step),
//!   and the next nest of the kernel is a generated, parallel nest over exactly `v0 < m,
//!   v1 < n`, with no reduction;
//! - it reads `C` only at `C[v0, v1]` (the product's own strides and offset), and no other
//!   buffer that shares `C`'s storage;
//! - it writes no storage the product reads (`A`, `B`) or writes (`C`);
//! - each store writes `c0·v0 + c1·v1 + c` with one coefficient dominating (distinct elements
//!   for distinct `(v0, v1)`, so rectangles on different threads write disjoint elements),
//!   unguarded, no scatter-add;
//! - any buffer it both reads and writes (an in-place optimizer update) is read at the element
//!   it writes, and through the same storage.

//!
//! One epilogue needs no nest at all: an SGD update of the product, `w − lr·g` (or
//! `w + s·g`) with `g` the product and `lr` a constant or a scalar read from a buffer. The host
//! kernel lands such a product on `w` itself ([`crate::gemm::adjoint_sgemm_step`]), each
//! tile while its sums are in registers, so `g` is never stored or read back: [`fold_step`]
//! rewrites the matmul nest so and drops the epilogue.

use super::{
    Atom, Buffer, BufferId, Expr, ExprId, GemmStep, Ix, Kernel, Program, Scalar, Storage, VarId,
};
use adjoint_ir::{BinaryOp, DType};

/// True when nest `gemm + 1` of `k` is an elementwise epilogue of the host matmul of nest
/// `gemm` that may run on each final block of the product instead of after all of it (see the
/// module documentation for the conditions).
pub fn block_epilogue(prog: &Program, k: &Kernel, gemm: usize) -> bool {
    let (Some(g), Some(e)) = (
        k.nests.get(gemm).and_then(|n| n.gemm.as_ref()),
        k.nests.get(gemm + 1),
    ) else {
        return false;
    };
    let d = &g.desc;
    let plain = g.half_type(prog).is_none() && g.step.is_none();
    if !plain || d.batch.iter().any(|&b| b != 1) || d.m < 1 || d.n < 1 {
        return false;
    }
    if e.gemm.is_some() || e.all_reduce.is_some() || !e.parallel || e.vars.len() != 2 {
        return false;
    }
    let (v0, v1) = (e.vars[0], e.vars[1]);
    if k.vars[v0.0 as usize] as i64 != d.m || k.vars[v1.0 as usize] as i64 != d.n {
        return false;
    }
    let buffer = |b: BufferId| &prog.buffers[b.0 as usize];
    let c_at = Ix::var(v0)
        .scale(d.c[0])
        .add(&Ix::var(v1).scale(d.c[1]))
        .offset(g.c.1);
    let (a, b, c) = (buffer(g.a.0), buffer(g.b.0), buffer(g.c.0));
    // Stores: no scatter-add, distinct elements for distinct (v0, v1), never into the
    // product's operands or result.
    for s in &e.stores {
        let st = buffer(s.buffer);
        let distinct = match affine_in(&s.offset, v0, v1) {
            Some((s0, s1, _)) => dominates(s1, s0, d.n) || dominates(s0, s1, d.m),
            None => false,
        };
        let clash = [a, b, c].iter().any(|o| overlaps(st, o));
        if s.accumulate || s.guard.is_some() || !distinct || clash {
            return false;
        }
    }
    for x in k.exprs_of(e) {
        match &k.expr(x).expr {
            Expr::Reduce { .. } => return false,
            Expr::Load { buffer: lb, offset } => {
                let lbuf = buffer(*lb);
                if *lb == g.c.0 {
                    if *offset != c_at {
                        return false;
                    }
                } else if overlaps(lbuf, c) {
                    return false;
                }
                // A buffer the nest writes is read only where it is written.
                for s in &e.stores {
                    let st = buffer(s.buffer);
                    if overlaps(lbuf, st) && (lbuf.storage != st.storage || *offset != s.offset) {
                        return false;
                    }
                }
            }
            _ => {}
        }
    }
    true
}

/// Folds nest `gemm + 1` of `k` into the host matmul of nest `gemm` when it is an SGD step of
/// the product: one store `W[s] = W[s] − x·C[c]` (or `W[s] + x·C[c]`, the operands of `+`
/// and `·` in either order) over `v0 < m, v1 < n`, with `C` the product read at `C[v0, v1]`,
/// `x` a constant or a scalar element, and `W` read at the element the nest writes through
/// the same storage. The matmul then writes `W` at the store's strides, stepping it by `∓x`
/// times each sum, and the epilogue nest is removed. The rounding is the epilogue's: the
/// product `x·sum` is rounded, then the sum with `W`, and `W − x·g` is `W + (−x)·g` to the
/// bit, so results are unchanged.
///
/// Conditions besides the form: an `f32` product without batch dimensions, `C` kernel scratch
/// (`scratch(C)`) that no other nest reads, every store element distinct, and `W` sharing no
/// storage with `A`, `B` or the scalar. Returns whether it folded. (`C` stays allocated: the
/// removed nest's expressions remain in the kernel's list and name it.)
pub fn fold_step(
    prog: &Program,
    k: &mut Kernel,
    gemm: usize,
    scratch: &dyn Fn(BufferId) -> bool,
) -> bool {
    let Some(step) = step_of(prog, k, gemm, scratch) else {
        return false;
    };
    let e = &k.nests[gemm + 1];
    let store = e.stores[0].buffer;
    let Some((s0, s1, constant)) = affine_in(&e.stores[0].offset, e.vars[0], e.vars[1]) else {
        return false;
    };
    let Some(g) = k.nests[gemm].gemm.as_mut() else {
        return false;
    };
    g.c = (store, constant);
    g.desc.c = [s0, s1];
    g.step = Some(step);
    k.nests.remove(gemm + 1);
    true
}

/// The step of [`fold_step`] when nest `gemm + 1` of `k` is one (see there).
fn step_of(
    prog: &Program,
    k: &Kernel,
    gemm: usize,
    scratch: &dyn Fn(BufferId) -> bool,
) -> Option<GemmStep> {
    let (g, e) = (k.nests.get(gemm)?.gemm.as_ref()?, k.nests.get(gemm + 1)?);
    let d = &g.desc;
    let buffer = |b: BufferId| &prog.buffers[b.0 as usize];
    if g.half_type(prog).is_some() || d.batch.iter().any(|&b| b != 1) || !scratch(g.c.0) {
        return None;
    }
    if e.gemm.is_some() || e.all_reduce.is_some() || e.vars.len() != 2 || e.stores.len() != 1 {
        return None;
    }
    let (v0, v1) = (e.vars[0], e.vars[1]);
    if k.vars[v0.0 as usize] as i64 != d.m || k.vars[v1.0 as usize] as i64 != d.n {
        return None;
    }
    let s = &e.stores[0];
    let w = buffer(s.buffer);
    let (s0, s1, constant) = affine_in(&s.offset, v0, v1)?;
    let distinct = dominates(s1, s0, d.n) || dominates(s0, s1, d.m);
    if s.accumulate || s.guard.is_some() || !distinct || w.dtype != DType::F32 || constant < 0 {
        return None;
    }
    if [g.a.0, g.b.0, g.c.0]
        .iter()
        .any(|&o| overlaps(w, buffer(o)))
    {
        return None;
    }
    // No other nest reads the product.
    let elsewhere = k.nests.iter().enumerate().any(|(ni, n)| {
        ni != gemm + 1
            && k.exprs_of(n)
                .iter()
                .any(|&x| matches!(k.expr(x).expr, Expr::Load { buffer, .. } if buffer == g.c.0))
    });
    if elsewhere {
        return None;
    }
    let c_at = Ix::var(v0)
        .scale(d.c[0])
        .add(&Ix::var(v1).scale(d.c[1]))
        .offset(g.c.1);
    // `W` at the stored element, through the store's storage.
    let is_w = |x: ExprId| match &k.expr(x).expr {
        Expr::Load { buffer: b, offset } => {
            let b = buffer(*b);
            b.storage == w.storage && b.dtype == DType::F32 && *offset == s.offset
        }
        _ => false,
    };
    // `scale·C[c_at]`, the operands in either order.
    let scaled = |x: ExprId| -> Option<Scalar> {
        let Expr::Binary {
            op: BinaryOp::Mul,
            a,
            b,
        } = k.expr(x).expr
        else {
            return None;
        };
        let is_c = |y: ExprId| matches!(&k.expr(y).expr, Expr::Load { buffer, offset } if *buffer == g.c.0 && *offset == c_at);
        let other = match (is_c(a), is_c(b)) {
            (true, _) => b,
            (_, true) => a,
            _ => return None,
        };
        let node = k.expr(other);
        match &node.expr {
            Expr::Const { bits } if node.dtype == DType::F32 => {
                Some(Scalar::Const(f64::from_bits(*bits) as f32))
            }
            Expr::Load { buffer: b, offset }
                if offset.terms.is_empty()
                    && buffer(*b).dtype == DType::F32
                    && !overlaps(buffer(*b), w) =>
            {
                Some(Scalar::Load {
                    buffer: *b,
                    offset: offset.constant,
                })
            }
            _ => None,
        }
    };
    let value = k.expr(s.value);
    if value.dtype != DType::F32 {
        return None;
    }
    match value.expr {
        Expr::Binary {
            op: BinaryOp::Sub,
            a,
            b,
        } if is_w(a) => scaled(b).map(|scale| GemmStep {
            scale,
            negate: true,
        }),
        Expr::Binary {
            op: BinaryOp::Add,
            a,
            b,
        } => {
            let scale = if is_w(a) {
                scaled(b)
            } else if is_w(b) {
                scaled(a)
            } else {
                None
            }?;
            Some(GemmStep {
                scale,
                negate: false,
            })
        }
        _ => None,
    }
}

/// `ix` as `(coefficient of v0, coefficient of v1, constant)` when it is affine in `v0` and
/// `v1` alone.
fn affine_in(ix: &Ix, v0: VarId, v1: VarId) -> Option<(i64, i64, i64)> {
    let (mut c0, mut c1) = (0, 0);
    for (atom, c) in &ix.terms {
        match atom {
            Atom::Var(v) if *v == v0 => c0 += c,
            Atom::Var(v) if *v == v1 => c1 += c,
            _ => return None,
        }
    }
    Some((c0, c1, ix.constant))
}

/// True when steps of `big` always exceed the span of `count` steps of `small` (both
/// non-negative, `small > 0`): the index `big·x + small·y` (`y < count`) is then distinct for
/// distinct `(x, y)`.
fn dominates(small: i64, big: i64, count: i64) -> bool {
    small > 0 && big >= 0 && i128::from(big) >= i128::from(small) * i128::from(count)
}

/// Bytes of a buffer.
fn bytes(b: &Buffer) -> usize {
    b.shape.numel() * b.dtype.size_bytes()
}

/// True when two buffers may share storage: the same parameter, input or constant, or
/// intersecting arena ranges.
fn overlaps(x: &Buffer, y: &Buffer) -> bool {
    match (x.storage, y.storage) {
        (Storage::Arena { offset: a }, Storage::Arena { offset: b }) => {
            a < b + bytes(y).max(1) && b < a + bytes(x).max(1)
        }
        (Storage::Parameter { index: a }, Storage::Parameter { index: b })
        | (Storage::Input { index: a }, Storage::Input { index: b })
        | (Storage::Constant { index: a }, Storage::Constant { index: b }) => a == b,
        _ => false,
    }
}
