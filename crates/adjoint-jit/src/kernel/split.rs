//! Splitting loop variables that the index arithmetic divides: a variable `v < E` that
//! appears as `v / d` or `v % d` (with `d` dividing `E`) becomes two loops, `hi < E/d` and
//! `lo < d`, with `v = d·hi + lo`. Then `v / d = hi` and `v % d = lo`, so a movement nest (an
//! attention head split or merge, a transpose of merged axes) addresses memory by strides alone
//! instead of a division and a remainder per element. The values computed do not change.

use super::ix::{Atom, Ix};
use super::{Expr, ExprId, ExprNode, Kernel, VarId};

/// The shortest inner loop a split may leave innermost: the lane loop is vectorized, so a
/// split that left it shorter than a few vectors would lose more than the division costs.
const MIN_INNER: usize = 8;

/// Splits, in every generated nest of `k`, each loop variable that some index divides or
/// reduces by a constant dividing its extent, until none is left.
pub(super) fn split_divided_vars(k: &mut Kernel) {
    for ni in 0..k.nests.len() {
        if k.nests[ni].gemm.is_some() || k.nests[ni].all_reduce.is_some() {
            continue;
        }
        let mut pos = 0;
        while pos < k.nests[ni].vars.len() {
            let v = k.nests[ni].vars[pos];
            let extent = k.vars[v.0 as usize];
            let innermost = pos + 1 == k.nests[ni].vars.len();
            let divisor = divisors(k, ni, v).into_iter().find(|&d| {
                d > 1 && d < extent && extent.is_multiple_of(d) && (!innermost || d >= MIN_INNER)
            });
            match divisor {
                // `hi` is looked at again: it may be divided further.
                Some(d) => split(k, ni, pos, d),
                None => pos += 1,
            }
        }
    }
}

/// The expressions nest `ni`'s stores read, in increasing order (operands before users).
fn reachable(k: &Kernel, ni: usize) -> Vec<usize> {
    let mut seen = vec![false; k.exprs.len()];
    let mut stack: Vec<ExprId> = Vec::new();
    for s in &k.nests[ni].stores {
        stack.push(s.value);
        stack.extend(s.guard);
        s.offset.visit(&mut |_, e| stack.extend(e));
    }
    while let Some(e) = stack.pop() {
        if std::mem::replace(&mut seen[e.0 as usize], true) {
            continue;
        }
        stack.extend(k.exprs[e.0 as usize].expr.operands());
    }
    (0..seen.len()).filter(|&i| seen[i]).collect()
}

/// The index expressions an expression holds.
fn indices(e: &Expr) -> Vec<&Ix> {
    match e {
        Expr::Load { offset, .. } => vec![offset],
        Expr::Index { ix } => vec![ix],
        Expr::InBounds { conds } => conds.iter().map(|(ix, _, _)| ix).collect(),
        _ => Vec::new(),
    }
}

/// The constants `d` of every `v / d` and `v % d` in nest `ni`, smallest first.
fn divisors(k: &Kernel, ni: usize, v: VarId) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    let exact = |e: &Ix| e.constant == 0 && e.terms == [(Atom::Var(v), 1)];
    let mut look = |ix: &Ix| {
        ix.visit_atoms(&mut |a| {
            if let Atom::Div(e, d) | Atom::Rem(e, d) = a {
                if exact(e) && *d > 0 {
                    out.push(*d as usize);
                }
            }
        })
    };
    for s in &k.nests[ni].stores {
        look(&s.offset);
    }
    for i in reachable(k, ni) {
        for ix in indices(&k.exprs[i].expr) {
            look(ix);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Replaces variable `pos` of nest `ni` (extent `E`) by `hi < E/d` and `lo < d`, rewriting
/// every expression of the nest that reads it.
fn split(k: &mut Kernel, ni: usize, pos: usize, d: usize) {
    let v = k.nests[ni].vars[pos];
    let extent = k.vars[v.0 as usize];
    let hi = VarId(k.vars.len() as u32);
    k.vars.push(extent / d);
    let lo = VarId(k.vars.len() as u32);
    k.vars.push(d);
    let with = Ix::var(hi).scale(d as i64).add(&Ix::var(lo));
    let mut map: Vec<Option<ExprId>> = vec![None; k.exprs.len()];
    for i in reachable(k, ni) {
        let node = &k.exprs[i];
        let reads_v = indices(&node.expr).iter().any(|ix| {
            let mut found = false;
            ix.visit(&mut |w, _| found |= w == Some(v));
            found
        });
        let reads_rewritten = node
            .expr
            .operands()
            .iter()
            .any(|o| map[o.0 as usize].is_some());
        if !reads_v && !reads_rewritten {
            continue;
        }
        let sub = |ix: &Ix| ix.substitute(v, &with, &k.vars);
        let expr = match &node.expr {
            Expr::Load { buffer, offset } => Expr::Load {
                buffer: *buffer,
                offset: sub(offset),
            },
            Expr::Index { ix } => Expr::Index { ix: sub(ix) },
            Expr::InBounds { conds } => Expr::InBounds {
                conds: conds
                    .iter()
                    .map(|(ix, lo, hi)| (sub(ix), *lo, *hi))
                    .collect(),
            },
            other => other.clone(),
        };
        let expr = expr.map_operands(&mut |o| map[o.0 as usize].unwrap_or(o));
        let dtype = node.dtype;
        map[i] = Some(ExprId(k.exprs.len() as u32));
        k.exprs.push(ExprNode { expr, dtype });
    }
    let remap = |o: ExprId| map.get(o.0 as usize).copied().flatten().unwrap_or(o);
    let vars = k.vars.clone();
    let nest = &mut k.nests[ni];
    for s in &mut nest.stores {
        s.offset = s
            .offset
            .substitute(v, &with, &vars)
            .map_values(&mut |o| remap(o));
        s.value = remap(s.value);
        s.guard = s.guard.map(remap);
    }
    nest.vars.splice(pos..=pos, [hi, lo]);
}
