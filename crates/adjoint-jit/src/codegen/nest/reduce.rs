//! Reductions in a nest: accumulators, the loops over reduced variables, and the two ways a
//! reduction runs — at several tile points at once, or vectorized along its own axis.

use super::emit::{NestEmitter, Point};
use super::plan::AlongAxis;
use crate::codegen::value::{const_scalar, lane, scalar_type, to_vec, vector_type, Rep, Val};
use crate::kernel::{Expr, ExprId, VarId};
use adjoint_ir::{DType, ReduceOp};
use cranelift_codegen::ir::{types, InstBuilder, Value};
use cranelift_frontend::Variable;
use smallvec::SmallVec;

impl NestEmitter<'_, '_> {
    /// The identity of a reduction.
    fn identity(&mut self, op: ReduceOp, d: DType) -> Value {
        match (op, d) {
            (ReduceOp::Sum, _) => const_scalar(&mut self.b, d, 0.0),
            (ReduceOp::Max, DType::I32) => self.b.ins().iconst(types::I32, i32::MIN as i64),
            (ReduceOp::Max, _) => const_scalar(&mut self.b, d, f64::NEG_INFINITY),
        }
    }

    fn combine(&mut self, op: ReduceOp, d: DType, acc: Value, x: Value) -> Value {
        match (op, d.is_float()) {
            (ReduceOp::Sum, true) => self.b.ins().fadd(acc, x),
            (ReduceOp::Sum, false) => self.b.ins().iadd(acc, x),
            (ReduceOp::Max, true) => self.b.ins().fmax(acc, x),
            (ReduceOp::Max, false) => self.b.ins().smax(acc, x),
        }
    }

    /// The reduction `e` at several points at once, in one loop nest with one accumulator per
    /// point and lane form.
    pub(super) fn reduce_points(&mut self, e: ExprId, pts: &[Point]) -> Vec<Val> {
        let node = self.k.expr(e).clone();
        let Expr::Reduce { op, vars, body } = &node.expr else {
            unreachable!("reduce_points on a reduction")
        };
        let (op, body, d) = (*op, *body, node.dtype);
        let rep = self.rep(e);
        let w = self.w;
        let init = self.identity(op, d);
        let mut accs: Vec<SmallVec<[Variable; 4]>> = Vec::new();
        for _ in pts {
            let n = if rep == Rep::Lanes { w as usize } else { 1 };
            let ty = if rep == Rep::Vec {
                vector_type(d, w)
            } else {
                scalar_type(d)
            };
            let start = if rep == Rep::Vec {
                self.b.ins().splat(ty, init)
            } else {
                init
            };
            let mut vs = SmallVec::new();
            for _ in 0..n {
                let var = self.b.declare_var(ty);
                self.b.def_var(var, start);
                vs.push(var);
            }
            accs.push(vs);
        }
        let saved = self.offs.clone();
        let fma = self.plan.reduce(e).fma;
        let vars = vars.clone();
        self.reduce_loops(&vars, 0, &mut |s: &mut Self| {
            for (p, acc) in pts.iter().zip(&accs) {
                s.set_point(p);
                s.accumulate(op, d, body, fma, rep, acc);
            }
            if let [p] = pts {
                s.set_point(p);
                s.row_cache_store(e, body);
            }
        });
        self.offs = saved;
        let totals: Vec<Val> = accs
            .iter()
            .map(|acc| match rep {
                Rep::Uni => Val::Uni(self.b.use_var(acc[0])),
                Rep::Vec => Val::Vec(self.b.use_var(acc[0])),
                Rep::Lanes => Val::Lanes(acc.iter().map(|&v| self.b.use_var(v)).collect()),
            })
            .collect();
        // A 16-bit reduction accumulates in f32 and rounds its total.
        if d.is_half() {
            return totals.into_iter().map(|v| self.round_half(v, d)).collect();
        }
        totals
    }

    fn reduce_loops(&mut self, vars: &[VarId], i: usize, body: &mut dyn FnMut(&mut Self)) {
        if i == vars.len() {
            body(self);
            return;
        }
        let start = self.b.ins().iconst(types::I64, 0);
        let extent = self.extent(vars[i]) as i64;
        let stop = self.b.ins().iconst(types::I64, extent);
        self.for_loop(vars[i], Some(start), stop, 1, &mut |s: &mut Self| {
            s.reduce_loops(vars, i + 1, body)
        });
    }

    /// `acc = combine(acc, body)` at the current point, in form `rep`.
    fn accumulate(
        &mut self,
        op: ReduceOp,
        d: DType,
        body: ExprId,
        fma: Option<(ExprId, ExprId)>,
        rep: Rep,
        acc: &[Variable],
    ) {
        let w = self.w;
        if let Some((a, b)) = fma {
            let (av, bv) = (self.eval(a), self.eval(b));
            match rep {
                Rep::Vec => {
                    let x = to_vec(&mut self.b, &av, d, w);
                    let y = to_vec(&mut self.b, &bv, d, w);
                    let old = self.b.use_var(acc[0]);
                    let new = self.b.ins().fma(x, y, old);
                    self.b.def_var(acc[0], new);
                }
                _ => {
                    for (l, &var) in acc.iter().enumerate() {
                        let x = lane(&mut self.b, &av, d, l as u8);
                        let y = lane(&mut self.b, &bv, d, l as u8);
                        let old = self.b.use_var(var);
                        let new = self.b.ins().fma(x, y, old);
                        self.b.def_var(var, new);
                    }
                }
            }
            return;
        }
        let v = self.eval(body);
        match rep {
            Rep::Vec => {
                let x = to_vec(&mut self.b, &v, d, w);
                let old = self.b.use_var(acc[0]);
                let new = self.combine(op, d, old, x);
                self.b.def_var(acc[0], new);
            }
            _ => {
                for (l, &var) in acc.iter().enumerate() {
                    let x = lane(&mut self.b, &v, d, l as u8);
                    let old = self.b.use_var(var);
                    let new = self.combine(op, d, old, x);
                    self.b.def_var(var, new);
                }
            }
        }
    }

    /// Reduction `e` in a scalar context, vectorized along its innermost reduced variable as
    /// `along` says: vector accumulation along it, then a horizontal combine.
    ///
    /// Rows of at least two vectors accumulate into [`ALONG_AXIS_ACCUMULATORS`] vectors (or
    /// two) in turn, so that consecutive steps do not wait on each other's `fadd` or `fmax`
    /// (a row max of 64 floats ran at a sixth of the loads' speed with one accumulator); the
    /// accumulators are combined in a fixed order, so the result depends on the row's
    /// length only.
    pub(super) fn reduce_along_axis(&mut self, e: ExprId, along: AlongAxis) -> Val {
        let node = self.k.expr(e).clone();
        let Expr::Reduce { op, vars, body } = &node.expr else {
            unreachable!("reduce_along_axis on a reduction")
        };
        let (op, body, d) = (*op, *body, node.dtype);
        let (r, wr) = (along.var, along.width);
        let extent = self.extent(r);
        let n_acc = if extent >= ALONG_AXIS_ACCUMULATORS * wr as usize {
            ALONG_AXIS_ACCUMULATORS
        } else if extent >= 2 * wr as usize {
            2
        } else {
            1
        };
        let init = self.identity(op, d);
        let vt = vector_type(d, wr);
        let vinit = self.b.ins().splat(vt, init);
        let accv: SmallVec<[Variable; 4]> = (0..n_acc)
            .map(|_| {
                let var = self.b.declare_var(vt);
                self.b.def_var(var, vinit);
                var
            })
            .collect();
        let accs = self.b.declare_var(scalar_type(d));
        self.b.def_var(accs, init);
        let fma = self.plan.reduce(e).fma;
        let saved = self.offs.clone();
        let outer = vars[..vars.len() - 1].to_vec();
        self.reduce_loops(&outer, 0, &mut |s: &mut Self| {
            let start = s.b.ins().iconst(types::I64, 0);
            let stop = s.b.ins().iconst(types::I64, extent as i64);
            let mut first = Some(start);
            s.with_lanes(Some(r), wr, &mut |s: &mut Self| {
                if n_acc > 1 {
                    let step = (wr as usize * n_acc) as i64;
                    s.for_loop(r, first.take(), stop, step, &mut |s: &mut Self| {
                        for (u, acc) in accv.iter().enumerate() {
                            s.set_point(&[(r, (u * wr as usize) as i64)]);
                            let rep = s.rep(body);
                            s.accumulate(op, d, body, fma, rep, &[*acc]);
                            s.row_cache_store(e, body);
                        }
                        s.set_point(&[]);
                    });
                }
                s.for_loop(r, first.take(), stop, wr as i64, &mut |s: &mut Self| {
                    let rep = s.rep(body);
                    s.accumulate(op, d, body, fma, rep, &[accv[0]]);
                    s.row_cache_store(e, body);
                });
            });
            s.with_lanes(Some(r), 1, &mut |s: &mut Self| {
                s.for_loop(r, None, stop, 1, &mut |s: &mut Self| {
                    s.accumulate(op, d, body, fma, Rep::Uni, &[accs]);
                    s.row_cache_store(e, body);
                });
            });
        });
        self.offs = saved;
        let mut v = self.b.use_var(accv[0]);
        for acc in &accv[1..] {
            let x = self.b.use_var(*acc);
            v = self.combine(op, d, v, x);
        }
        let mut total = self.b.use_var(accs);
        for l in 0..wr {
            let x = self.b.ins().extractlane(v, l);
            total = self.combine(op, d, total, x);
        }
        if d.is_half() {
            return self.round_half(Val::Uni(total), d);
        }
        Val::Uni(total)
    }
}

/// Vector accumulators of a reduction vectorized along its axis, for rows of at least that
/// many vectors: enough to cover the latency of `fadd` (4 cycles on x86) and most of that of
/// Cranelift's NaN-propagating `fmax` sequence.
const ALONG_AXIS_ACCUMULATORS: usize = 4;
