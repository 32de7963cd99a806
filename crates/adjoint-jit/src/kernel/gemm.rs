//! Hands matmuls to the host kernel: a reduction `Σ_k a[..]·b[..]` whose operands are affine
//! loads becomes a [`GemmNest`] (the host kernel reads the operands in place through their
//! strides), and the nest that held it keeps only its epilogue, which reads the product back.
//!
//! The product goes straight into the stored buffer when it is the whole stored value;
//! otherwise (an epilogue such as `relu(x·w + b)`) into kernel scratch, read by the epilogue
//! at the same point, so the epilogue still runs in one pass over the output.

use super::{
    Atom, Buffer, BufferId, Expr, ExprId, ExprNode, GemmNest, Ix, Kernel, LoopNest, Program,
    Storage, VarId,
};
use crate::gemm::{GemmDesc, MAX_BATCH};
use adjoint_ir::{BinaryOp, DType, ReduceOp, Shape};
use adjoint_opt::MemoryPlan;
use std::collections::HashMap;

/// Moves every matmul of `k` that the host kernel can run into a [`GemmNest`] before the
/// nest that used it; scratch for products goes from `*scratch_end` on (the kernel's
/// scratch), which is advanced.
pub fn host_gemms(k: &mut Kernel, prog: &mut Program, scratch_end: &mut usize) {
    let mut out: Vec<LoopNest> = Vec::with_capacity(k.nests.len());
    let nests = std::mem::take(&mut k.nests);
    for mut nest in nests {
        if nest.gemm.is_some() || nest.vars.len() < 2 || nest.vars.len() > 2 + MAX_BATCH {
            out.push(nest);
            continue;
        }
        // The matmuls the stores read through elementwise operations only.
        let mut found: Vec<(ExprId, Gemm)> = Vec::new();
        for s in &nest.stores {
            for r in top_reduces(k, s.value) {
                if found.iter().any(|(e, _)| *e == r) {
                    continue;
                }
                if let Some(g) = as_gemm(k, prog, &nest, r) {
                    found.push((r, g));
                }
            }
        }
        if found.is_empty() {
            out.push(nest);
            continue;
        }
        let vars = nest.vars.clone();
        let extents: Vec<i64> = vars.iter().map(|v| k.vars[v.0 as usize] as i64).collect();
        let mut map: HashMap<ExprId, ExprId> = HashMap::new();
        for (r, g) in found {
            // Directly into a store's buffer when a plain store writes exactly the product.
            let direct = nest.stores.iter().position(|s| {
                s.value == r
                    && !s.accumulate
                    && s.guard.is_none()
                    && prog.buffers[s.buffer.0 as usize].dtype == DType::F32
                    && affine(&s.offset).is_some_and(|(c, off)| {
                        off >= 0 && c.iter().all(|(v, st)| *st >= 0 && vars.contains(v))
                    })
            });
            let (c_buf, c_off, c_strides) = match direct {
                Some(si) => {
                    let s = nest.stores.remove(si);
                    let (coef, off) = affine(&s.offset).expect("checked affine");
                    let strides: Vec<i64> = vars
                        .iter()
                        .map(|v| coef.get(v).copied().unwrap_or(0))
                        .collect();
                    (s.buffer, off, strides)
                }
                None => {
                    let numel: i64 = extents.iter().product();
                    let offset = *scratch_end;
                    *scratch_end = (offset + (numel.max(1) as usize) * 4)
                        .div_ceil(MemoryPlan::ALIGN)
                        * MemoryPlan::ALIGN;
                    prog.buffers.push(Buffer {
                        name: format!("gemm{}.scratch", prog.buffers.len()),
                        dtype: DType::F32,
                        shape: Shape::new(&extents.iter().map(|&e| e as usize).collect::<Vec<_>>()),
                        storage: Storage::Arena { offset },
                    });
                    let buf = BufferId(prog.buffers.len() as u32 - 1);
                    let mut strides = vec![0i64; vars.len()];
                    let mut acc = 1;
                    for d in (0..vars.len()).rev() {
                        strides[d] = acc;
                        acc *= extents[d];
                    }
                    let mut ix = Ix::constant(0);
                    for (v, s) in vars.iter().zip(&strides) {
                        ix = ix.add(&Ix::var(*v).scale(*s));
                    }
                    k.exprs.push(ExprNode {
                        expr: Expr::Load {
                            buffer: buf,
                            offset: ix,
                        },
                        dtype: DType::F32,
                    });
                    map.insert(r, ExprId(k.exprs.len() as u32 - 1));
                    (buf, 0, strides)
                }
            };
            let n = vars.len();
            let mut desc = GemmDesc {
                m: extents[n - 2],
                n: extents[n - 1],
                k: g.k_extent,
                a: [g.a_strides[n - 2], g.a_k],
                b: [g.b_k, g.b_strides[n - 1]],
                c: [c_strides[n - 2], c_strides[n - 1]],
                batch: [1; MAX_BATCH],
                batch_strides: [[0; 3]; MAX_BATCH],
                split_rows: 1,
                unit: 1,
            };
            for d in 0..n - 2 {
                let slot = MAX_BATCH - (n - 2) + d;
                desc.batch[slot] = extents[d];
                desc.batch_strides[slot] = [g.a_strides[d], g.b_strides[d], c_strides[d]];
            }
            out.push(LoopNest {
                vars: Vec::new(),
                stores: Vec::new(),
                parallel: nest.parallel,
                gemm: Some(GemmNest {
                    a: (g.a.0, g.a.1),
                    b: (g.b.0, g.b.1),
                    c: (c_buf, c_off),
                    desc: desc.with_split(),
                }),
            });
        }
        if !map.is_empty() {
            let mut memo = HashMap::new();
            for si in 0..nest.stores.len() {
                let v = nest.stores[si].value;
                nest.stores[si].value = substitute(k, v, &map, &mut memo);
            }
        }
        if !nest.stores.is_empty() {
            out.push(nest);
        }
    }
    k.nests = out;
}

/// The operands of a matmul reduction, as the host kernel reads them.
struct Gemm {
    a: (BufferId, i64),
    b: (BufferId, i64),
    /// Strides of `A` along each nest variable (0 for the column variable).
    a_strides: Vec<i64>,
    a_k: i64,
    b_strides: Vec<i64>,
    b_k: i64,
    k_extent: i64,
}

/// `Σ coeff·var + constant` of an index with loop variables only.
fn affine(ix: &Ix) -> Option<(HashMap<VarId, i64>, i64)> {
    let mut coef = HashMap::new();
    for (a, c) in &ix.terms {
        match a {
            Atom::Var(v) => *coef.entry(*v).or_insert(0) += c,
            _ => return None,
        }
    }
    Some((coef, ix.constant))
}

/// `r` as a host matmul at the point of `nest`: `reduce_sum over k of a·b` with `f32` affine
/// loads, `a` free of the column variable and `b` of the row variable, strides non-negative.
fn as_gemm(k: &Kernel, prog: &Program, nest: &LoopNest, r: ExprId) -> Option<Gemm> {
    let node = k.expr(r);
    let Expr::Reduce {
        op: ReduceOp::Sum,
        vars,
        body,
    } = &node.expr
    else {
        return None;
    };
    if node.dtype != DType::F32 || vars.len() != 1 {
        return None;
    }
    let kv = vars[0];
    let Expr::Binary {
        op: BinaryOp::Mul,
        a,
        b,
    } = k.expr(*body).expr
    else {
        return None;
    };
    let load = |e: ExprId| -> Option<(BufferId, HashMap<VarId, i64>, i64)> {
        match &k.expr(e).expr {
            Expr::Load { buffer, offset }
                if prog.buffers[buffer.0 as usize].dtype == DType::F32 =>
            {
                let (c, off) = affine(offset)?;
                let ok = c
                    .iter()
                    .all(|(v, s)| *s >= 0 && (*v == kv || nest.vars.contains(v)));
                (ok && off >= 0).then_some((*buffer, c, off))
            }
            _ => None,
        }
    };
    let (x, y) = (load(a)?, load(b)?);
    let n = nest.vars.len();
    let (iv, jv) = (nest.vars[n - 2], nest.vars[n - 1]);
    let has =
        |l: &(BufferId, HashMap<VarId, i64>, i64), v: VarId| l.1.get(&v).is_some_and(|&s| s != 0);
    let (la, lb) = if !has(&x, jv) && !has(&y, iv) {
        (x, y)
    } else if !has(&y, jv) && !has(&x, iv) {
        (y, x)
    } else {
        return None;
    };
    let strides = |l: &(BufferId, HashMap<VarId, i64>, i64)| -> Vec<i64> {
        nest.vars
            .iter()
            .map(|v| l.1.get(v).copied().unwrap_or(0))
            .collect()
    };
    Some(Gemm {
        a_strides: strides(&la),
        a_k: la.1.get(&kv).copied().unwrap_or(0),
        b_strides: strides(&lb),
        b_k: lb.1.get(&kv).copied().unwrap_or(0),
        a: (la.0, la.2),
        b: (lb.0, lb.2),
        k_extent: k.vars[kv.0 as usize] as i64,
    })
}

/// The reductions `e` reads through elementwise operations only.
fn top_reduces(k: &Kernel, e: ExprId) -> Vec<ExprId> {
    let mut out = Vec::new();
    let mut stack = vec![e];
    let mut seen = std::collections::HashSet::new();
    while let Some(x) = stack.pop() {
        if !seen.insert(x) {
            continue;
        }
        let expr = &k.expr(x).expr;
        match expr {
            Expr::Reduce { .. } => out.push(x),
            Expr::Unary { .. }
            | Expr::Binary { .. }
            | Expr::Compare { .. }
            | Expr::Select { .. }
            | Expr::Cast { .. } => stack.extend(expr.operands()),
            // Reads of memory and constants: no product behind them.
            Expr::Load { .. } | Expr::Const { .. } | Expr::Index { .. } | Expr::InBounds { .. } => {
            }
        }
    }
    out.sort();
    out
}

/// `e` with the expressions of `map` replaced, copying the elementwise nodes on the way.
fn substitute(
    k: &mut Kernel,
    e: ExprId,
    map: &HashMap<ExprId, ExprId>,
    memo: &mut HashMap<ExprId, ExprId>,
) -> ExprId {
    if let Some(&to) = map.get(&e) {
        return to;
    }
    if let Some(&to) = memo.get(&e) {
        return to;
    }
    let node = k.expr(e).clone();
    let expr = node.expr.map_operands(&mut |x| substitute(k, x, map, memo));
    let to = if expr == node.expr {
        e
    } else {
        k.exprs.push(ExprNode {
            expr,
            dtype: node.dtype,
        });
        ExprId(k.exprs.len() as u32 - 1)
    };
    memo.insert(e, to);
    to
}
