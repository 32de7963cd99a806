//! The row cache: a row reduction whose body is also one of the row's element values (softmax's
//! `exp(x - max)`, summed and then divided by the sum) keeps the values it computes in a
//! buffer on the stack, and the row's element loop reads them back instead of computing them
//! again. Fusion counts on it to put such an expensive value in one row-wise kernel with its
//! reduction (`adjoint_opt::schedule::ROW_CACHE_LEN`).
//!
//! The plan ([`row_caches`]) finds the pairs; the emitter fills a cache in the reduction's loop
//! ([`NestEmitter::row_cache_store`]) and reads it in the lane loop
//! ([`NestEmitter::row_cache_load`]). The values are the same bits either way: the cached
//! expression is, operand for operand, the reduction's body at another loop variable.

use super::emit::NestEmitter;
use super::plan::{Hoist, KernelPlan};
use crate::codegen::value::{lane, mem, scalar_type, to_vec, vector_type, Rep, Val};
use crate::kernel::{Expr, ExprId, Ix, Kernel, LoopNest, VarId};
use adjoint_ir::DType;
use adjoint_opt::schedule::ROW_CACHE_LEN;
use cranelift_codegen::ir::{types, InstBuilder, StackSlotData, StackSlotKind, Value};
use std::collections::HashSet;

/// A row reduction whose body the lane loop computes again as `lane_expr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowCache {
    /// The hoisted reduction (computed once per row, vectorized along `var`).
    pub reduce: ExprId,
    /// Its one reduced variable, as long as the nest's lane variable.
    pub var: VarId,
    /// The lane loop's expression equal to the reduction's body with `var` read as the lane
    /// variable.
    pub lane_expr: ExprId,
}

/// The row caches of `nest`: for each reduction hoisted to the row level (computed inside every
/// loop but the lane loop) over one variable of the lane variable's extent, at most
/// [`ROW_CACHE_LEN`] long, whose `f32` body (computed, not a plain load) an expression of the
/// lane loop repeats at the lane variable.
pub(super) fn row_caches(
    plan: &KernelPlan,
    k: &Kernel,
    nest: &LoopNest,
    hoisted: &[Hoist],
    in_lane_loop: &[ExprId],
) -> Vec<RowCache> {
    let Some(&lane_var) = nest.vars.last() else {
        return Vec::new();
    };
    let row_depth = nest.vars.len() - 1;
    let extent = k.vars[lane_var.0 as usize];
    let mut out: Vec<RowCache> = Vec::new();
    for h in hoisted.iter().filter(|h| h.depth == row_depth) {
        let Expr::Reduce { vars, body, .. } = &k.expr(h.expr).expr else {
            continue;
        };
        let [var] = vars.as_slice() else { continue };
        if k.vars[var.0 as usize] != extent
            || extent > ROW_CACHE_LEN
            || k.expr(*body).dtype != DType::F32
        {
            continue;
        }
        // A plain load is read again as cheaply as from the cache.
        if matches!(k.expr(*body).expr, Expr::Load { .. } | Expr::Const { .. }) {
            continue;
        }
        let found = in_lane_loop.iter().copied().find(|&e| {
            plan.uses(e, lane_var)
                && !out.iter().any(|c| c.lane_expr == e)
                && same_at(k, *body, e, *var, lane_var, &mut HashSet::new())
        });
        if let Some(lane_expr) = found {
            out.push(RowCache {
                reduce: h.expr,
                var: *var,
                lane_expr,
            });
        }
    }
    out
}

/// True if expression `x` read with loop variable `r` replaced by `l` is expression `y`: the
/// same operations on the same operands, and loads of the same elements. `equal` holds the
/// pairs already found equal.
fn same_at(
    k: &Kernel,
    x: ExprId,
    y: ExprId,
    r: VarId,
    l: VarId,
    equal: &mut HashSet<(ExprId, ExprId)>,
) -> bool {
    if x == y || equal.contains(&(x, y)) {
        return true;
    }
    let (a, b) = (k.expr(x), k.expr(y));
    if a.dtype != b.dtype {
        return false;
    }
    let ix = |i: &Ix, j: &Ix| {
        let mut data = false;
        i.visit(&mut |_, e| data |= e.is_some());
        !data && i.substitute(r, &Ix::var(l), &k.vars) == *j
    };
    let same = match (&a.expr, &b.expr) {
        (
            Expr::Load {
                buffer: ba,
                offset: oa,
            },
            Expr::Load {
                buffer: bb,
                offset: ob,
            },
        ) => ba == bb && ix(oa, ob),
        (Expr::Const { bits: p }, Expr::Const { bits: q }) => p == q,
        (Expr::Index { ix: p }, Expr::Index { ix: q }) => ix(p, q),
        (Expr::InBounds { conds: p }, Expr::InBounds { conds: q }) => {
            p.len() == q.len()
                && p.iter()
                    .zip(q)
                    .all(|((i, lo, hi), (j, lo2, hi2))| lo == lo2 && hi == hi2 && ix(i, j))
        }
        (Expr::Unary { op: p, x: xa }, Expr::Unary { op: q, x: xb }) => {
            p == q && same_at(k, *xa, *xb, r, l, equal)
        }
        (Expr::Cast { x: xa }, Expr::Cast { x: xb }) => same_at(k, *xa, *xb, r, l, equal),
        (
            Expr::Binary {
                op: p,
                a: aa,
                b: ba,
            },
            Expr::Binary {
                op: q,
                a: ab,
                b: bb,
            },
        ) => p == q && same_at(k, *aa, *ab, r, l, equal) && same_at(k, *ba, *bb, r, l, equal),
        (
            Expr::Compare {
                op: p,
                a: aa,
                b: ba,
            },
            Expr::Compare {
                op: q,
                a: ab,
                b: bb,
            },
        ) => p == q && same_at(k, *aa, *ab, r, l, equal) && same_at(k, *ba, *bb, r, l, equal),
        (
            Expr::Select {
                cond: ca,
                a: aa,
                b: ba,
            },
            Expr::Select {
                cond: cb,
                a: ab,
                b: bb,
            },
        ) => {
            same_at(k, *ca, *cb, r, l, equal)
                && same_at(k, *aa, *ab, r, l, equal)
                && same_at(k, *ba, *bb, r, l, equal)
        }
        // A reduction inside the body is shared only as the same expression.
        _ => false,
    };
    if same {
        equal.insert((x, y));
    }
    same
}

impl NestEmitter<'_, '_> {
    /// Reserves the stack buffer of each of the plan's row caches (in the entry block, so its
    /// address is available everywhere in the function).
    pub(super) fn alloc_row_caches(&mut self, caches: &[RowCache]) {
        self.row_cache_slots.clear();
        for c in caches {
            let bytes = (self.extent(c.var) * 4) as u32;
            let slot = self.b.create_sized_stack_slot(StackSlotData::new(
                StackSlotKind::ExplicitSlot,
                bytes,
                4,
            ));
            let base = self.b.ins().stack_addr(types::I64, slot, 0);
            self.row_cache_slots.push((*c, base));
        }
    }

    /// In the loop of reduction `reduce` over its variable, after its body was accumulated at
    /// the current point: stores the body's value into the reduction's row cache, if it has
    /// one. (A reduction accumulating with `fma` computes its body's product here: the cache
    /// holds the rounded product, which is what the lane loop's expression computes.)
    pub(super) fn row_cache_store(&mut self, reduce: ExprId, body: ExprId) {
        let Some(&(c, base)) = self
            .row_cache_slots
            .iter()
            .find(|(c, _)| c.reduce == reduce)
        else {
            return;
        };
        let v = self.eval(body);
        let at = self.stack_address(base, c.var, None);
        self.stack_store(at, v);
    }

    /// Stores the `f32` value `v` (of the current lanes) at `at` on the stack, lane after lane.
    pub(super) fn stack_store(&mut self, at: Value, v: Val) {
        match v {
            Val::Vec(x) => {
                self.b.ins().store(mem(), x, at, 0);
            }
            Val::Uni(x) if self.w == 1 => {
                self.b.ins().store(mem(), x, at, 0);
            }
            other => {
                for l in 0..self.w {
                    let x = lane(&mut self.b, &other, DType::F32, l);
                    self.b.ins().store(mem(), x, at, 4 * l as i32);
                }
            }
        }
    }

    /// The value of `e` read back from a row cache, when `e` is a cache's lane expression and
    /// the lane loop is being emitted; `None` otherwise.
    pub(super) fn row_cache_load(&mut self, e: ExprId) -> Option<Val> {
        let lane_var = self.lane?;
        let &(_, base) = self
            .row_cache_slots
            .iter()
            .find(|(c, _)| c.lane_expr == e)?;
        let at = self.stack_address(base, lane_var, None);
        Some(self.stack_load(at, e))
    }

    /// The `f32` value of `e` (in its form at the current lanes) stored at `at` on the stack by
    /// [`Self::stack_store`].
    pub(super) fn stack_load(&mut self, at: Value, e: ExprId) -> Val {
        let rep = self.rep(e);
        let w = self.w;
        match rep {
            Rep::Uni => Val::Uni(self.b.ins().load(types::F32, mem(), at, 0)),
            Rep::Vec if w == 4 => {
                Val::Vec(self.b.ins().load(vector_type(DType::F32, w), mem(), at, 0))
            }
            _ => {
                let lanes = (0..w)
                    .map(|l| {
                        self.b
                            .ins()
                            .load(scalar_type(DType::F32), mem(), at, 4 * l as i32)
                    })
                    .collect();
                let v = Val::Lanes(lanes);
                if rep == Rep::Vec {
                    Val::Vec(to_vec(&mut self.b, &v, DType::F32, w))
                } else {
                    v
                }
            }
        }
    }

    /// The address of the `f32` element of a stack buffer at `base` for loop variable `v`'s
    /// current value (with the tile point's offset; lanes follow at 4-byte steps), counted
    /// from `start` (or from 0).
    pub(super) fn stack_address(&mut self, base: Value, v: VarId, start: Option<Value>) -> Value {
        let mut i = self.ix_value(&Ix::var(v), 0);
        if let Some(s) = start {
            i = self.b.ins().isub(i, s);
        }
        let bytes = self.b.ins().imul_imm_s(i, 4);
        self.b.ins().iadd(base, bytes)
    }
}
