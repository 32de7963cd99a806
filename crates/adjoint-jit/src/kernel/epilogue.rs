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
//! - the gemm nest is an `f32` product without batch dimensions, and the next nest of the
//!   kernel is a generated, parallel nest over exactly `v0 < m, v1 < n`, with no reduction;
//! - it reads `C` only at `C[v0, v1]` (the product's own strides and offset), and no other
//!   buffer that shares `C`'s storage;
//! - it writes no storage the product reads (`A`, `B`) or writes (`C`);
//! - each store writes `c0·v0 + c1·v1 + c` with one coefficient dominating (distinct elements
//!   for distinct `(v0, v1)`, so rectangles on different threads write disjoint elements),
//!   unguarded, no scatter-add;
//! - any buffer it both reads and writes (an in-place optimizer update) is read at the element
//!   it writes, and through the same storage.

use super::{Atom, Buffer, BufferId, Expr, Ix, Kernel, Program, Storage, VarId};

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
    if g.half_type(prog).is_some() || d.batch.iter().any(|&b| b != 1) || d.m < 1 || d.n < 1 {
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
