//! One loop nest as one native function `fn(ctx, begin, end)`, where `begin..end` is the range
//! of the outermost loop this call runs (the whole range, or one thread's share).
//!
//! The innermost loop variable is the *lane* variable: the body computes `W` consecutive
//! elements at once (`W` = 4 for 32-bit kernels, 2 when an `f64` is involved) followed by a
//! scalar tail. Nests whose values are reductions (a matmul is one) are register-blocked: the
//! body computes a tile of 4 rows × 2 vectors with one accumulator each in a single reduction
//! loop, so each loaded vector and broadcast scalar is used several times. A reduction over the
//! contiguous axis of its operand in a scalar context (a row sum) is vectorized along the
//! reduced axis instead, with a horizontal combine at the end.

use super::ops::{scalar_op, vector_op, OpKind};
use super::value::{
    const_scalar, convert, is_native, lane, mem, scalar_type, to_vec, vector_type, Rep, Val,
};
use crate::kernel::{Atom, BufferId, Expr, ExprId, Ix, Kernel, LoopNest, Program, Store, VarId};
use crate::math::MathOptions;
use adjoint_ir::{BinaryOp, DType, ReduceOp};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};
use cranelift_frontend::{FunctionBuilder, Variable};
use smallvec::SmallVec;
use std::collections::HashMap;

type Deps = SmallVec<[VarId; 8]>;
type MemoKey = (ExprId, SmallVec<[i64; 4]>);

/// A point of a tile: offsets added to loop variables.
type Point = SmallVec<[(VarId, i64); 2]>;

/// The variables each expression depends on (free variables: a reduction binds its own).
pub fn dependencies(k: &Kernel) -> Vec<Deps> {
    let mut deps: Vec<Deps> = Vec::with_capacity(k.exprs.len());
    for node in &k.exprs {
        let mut d: Deps = Deps::new();
        let add = |d: &mut Deps, v: VarId| {
            if !d.contains(&v) {
                d.push(v);
            }
        };
        let add_ix = |d: &mut Deps, ix: &Ix, deps: &[Deps]| {
            ix.visit(&mut |v, e| {
                if let Some(v) = v {
                    add(d, v);
                }
                if let Some(e) = e {
                    for &v in &deps[e.0 as usize] {
                        add(d, v);
                    }
                }
            })
        };
        let add_expr = |d: &mut Deps, e: ExprId, deps: &[Deps]| {
            for &v in &deps[e.0 as usize] {
                if !d.contains(&v) {
                    d.push(v);
                }
            }
        };
        match &node.expr {
            Expr::Load { offset, .. } => add_ix(&mut d, offset, &deps),
            Expr::Index { ix } => add_ix(&mut d, ix, &deps),
            Expr::InBounds { conds } => {
                for (ix, _, _) in conds {
                    add_ix(&mut d, ix, &deps);
                }
            }
            Expr::Const { .. } => {}
            Expr::Unary { x, .. } | Expr::Cast { x } => add_expr(&mut d, *x, &deps),
            Expr::Binary { a, b, .. } | Expr::Compare { a, b, .. } => {
                add_expr(&mut d, *a, &deps);
                add_expr(&mut d, *b, &deps);
            }
            Expr::Select { cond, a, b } => {
                add_expr(&mut d, *cond, &deps);
                add_expr(&mut d, *a, &deps);
                add_expr(&mut d, *b, &deps);
            }
            Expr::Reduce { vars, body, .. } => {
                for &v in &deps[body.0 as usize] {
                    if !vars.contains(&v) && !d.contains(&v) {
                        d.push(v);
                    }
                }
            }
        }
        d.sort();
        deps.push(d);
    }
    deps
}

/// Emits the body of one nest function.
pub struct NestEmitter<'a, 'f> {
    /// The function under construction.
    pub b: FunctionBuilder<'f>,
    k: &'a Kernel,
    prog: &'a Program,
    m: MathOptions,
    deps: &'a [Deps],
    ctx: Value,
    bases: HashMap<BufferId, Value>,
    vars: Vec<Option<Variable>>,
    offs: Vec<i64>,
    memo: Vec<HashMap<MemoKey, Val>>,
    lane: Option<VarId>,
    w: u8,
}

impl<'a, 'f> NestEmitter<'a, 'f> {
    /// An emitter whose builder is positioned in the entry block; `ctx` is the pointer table.
    pub fn new(
        b: FunctionBuilder<'f>,
        k: &'a Kernel,
        prog: &'a Program,
        m: MathOptions,
        deps: &'a [Deps],
        ctx: Value,
    ) -> Self {
        NestEmitter {
            b,
            k,
            prog,
            m,
            deps,
            ctx,
            bases: HashMap::new(),
            vars: vec![None; k.vars.len()],
            offs: vec![0; k.vars.len()],
            memo: vec![HashMap::new()],
            lane: None,
            w: 1,
        }
    }

    /// Emits the loops of `nest`; `begin` and `end` bound its outermost loop.
    pub fn emit(&mut self, nest: &LoopNest, begin: Value, end: Value) {
        self.load_bases(nest);
        let n = nest.vars.len();
        if n == 0 {
            self.body(nest, &[Point::new()]);
            return;
        }
        let lane_var = nest.vars[n - 1];
        let w = self.choose_width(nest);
        let has_reduce = nest
            .stores
            .iter()
            .any(|s| !self.top_reduces(s.value).is_empty());
        let rows = if w > 1 && n >= 2 && has_reduce { 4 } else { 1 };
        let unroll = if rows > 1 && self.extent(lane_var) >= 2 * w as usize {
            2
        } else {
            1
        };
        self.level(nest, 0, begin, end, w, rows, unroll);
    }

    fn extent(&self, v: VarId) -> usize {
        self.k.vars[v.0 as usize]
    }

    #[allow(clippy::too_many_arguments)]
    fn level(
        &mut self,
        nest: &LoopNest,
        i: usize,
        begin: Value,
        end: Value,
        w: u8,
        rows: usize,
        unroll: usize,
    ) {
        let n = nest.vars.len();
        let v = nest.vars[i];
        let (start, stop) = if i == 0 {
            (begin, end)
        } else {
            let e = self.extent(v) as i64;
            (
                self.b.ins().iconst(types::I64, 0),
                self.b.ins().iconst(types::I64, e),
            )
        };
        if i == n - 1 {
            // The lane loop: vector body (unrolled), vector body, scalar tail.
            let row_var = (n >= 2).then(|| nest.vars[n - 2]);
            let tile = |rows: usize, vecs: usize, w: u8| -> Vec<Point> {
                let mut pts = Vec::new();
                for r in 0..rows {
                    for u in 0..vecs {
                        let mut p = Point::new();
                        if let Some(rv) = row_var {
                            p.push((rv, r as i64));
                        }
                        p.push((v, (u * w as usize) as i64));
                        pts.push(p);
                    }
                }
                pts
            };
            let mut first = Some(start);
            if w > 1 {
                if unroll > 1 {
                    let pts = tile(rows, unroll, w);
                    self.lane_loop(nest, v, first.take(), stop, w, unroll, &pts);
                }
                let pts = tile(rows, 1, w);
                self.lane_loop(nest, v, first.take(), stop, w, 1, &pts);
            }
            let pts = tile(rows, 1, 1);
            self.lane_loop(nest, v, first.take(), stop, 1, 1, &pts);
            return;
        }
        if rows > 1 && i == n - 2 {
            self.for_loop(v, Some(start), stop, rows as i64, &mut |s: &mut Self| {
                s.level(nest, i + 1, begin, end, w, rows, unroll)
            });
            self.for_loop(v, None, stop, 1, &mut |s: &mut Self| {
                s.level(nest, i + 1, begin, end, w, 1, 1)
            });
            return;
        }
        self.for_loop(v, Some(start), stop, 1, &mut |s: &mut Self| {
            s.level(nest, i + 1, begin, end, w, rows, unroll)
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn lane_loop(
        &mut self,
        nest: &LoopNest,
        v: VarId,
        start: Option<Value>,
        stop: Value,
        w: u8,
        unroll: usize,
        pts: &[Point],
    ) {
        let step = w as i64 * unroll as i64;
        self.for_loop(v, start, stop, step, &mut |s: &mut Self| {
            let (old_lane, old_w) = (s.lane, s.w);
            s.lane = Some(v);
            s.w = w;
            s.body(nest, pts);
            s.lane = old_lane;
            s.w = old_w;
        });
    }

    /// `for v in start..stop by step` (continuing from v's current value when `start` is
    /// `None`), running while `v + step <= stop`.
    fn for_loop(
        &mut self,
        v: VarId,
        start: Option<Value>,
        stop: Value,
        step: i64,
        body: &mut dyn FnMut(&mut Self),
    ) {
        let var = match self.vars[v.0 as usize] {
            Some(var) => var,
            None => {
                let var = self.b.declare_var(types::I64);
                self.vars[v.0 as usize] = Some(var);
                var
            }
        };
        if let Some(s) = start {
            self.b.def_var(var, s);
        }
        let header = self.b.create_block();
        let block = self.b.create_block();
        let exit = self.b.create_block();
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(header);
        let i = self.b.use_var(var);
        let next = self.b.ins().iadd_imm_s(i, step);
        let go = self.b.ins().icmp(IntCC::SignedLessThanOrEqual, next, stop);
        self.b.ins().brif(go, block, &[], exit, &[]);
        self.b.switch_to_block(block);
        self.memo.push(HashMap::new());
        body(self);
        self.memo.pop();
        let i = self.b.use_var(var);
        let next = self.b.ins().iadd_imm_s(i, step);
        self.b.def_var(var, next);
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(exit);
    }

    fn load_bases(&mut self, nest: &LoopNest) {
        let mut bufs: Vec<BufferId> = nest.stores.iter().map(|s| s.buffer).collect();
        for e in &self.k.exprs {
            if let Expr::Load { buffer, .. } = e.expr {
                bufs.push(buffer);
            }
        }
        bufs.sort();
        bufs.dedup();
        for buf in bufs {
            let (slot, offset) = super::slot_of(self.prog, buf);
            let base = self
                .b
                .ins()
                .load(types::I64, mem(), self.ctx, (slot * 8) as i32);
            let base = if offset > 0 {
                self.b.ins().iadd_imm_s(base, offset as i64)
            } else {
                base
            };
            self.bases.insert(buf, base);
        }
    }

    fn choose_width(&self, nest: &LoopNest) -> u8 {
        let lane_var = *nest.vars.last().expect("non-empty nest");
        if nest
            .stores
            .iter()
            .any(|s| s.accumulate || s.guard.is_some())
        {
            return 1;
        }
        let mut w = 4;
        let mut seen = vec![false; self.k.exprs.len()];
        let mut stack: Vec<ExprId> = nest.stores.iter().map(|s| s.value).collect();
        let (mut lane_contiguous, mut reduce_contiguous) = (0, 0);
        let uses = |e: ExprId, v: VarId| self.deps[e.0 as usize].contains(&v);
        for s in &nest.stores {
            if s.offset.stride_of(lane_var, &uses) == Some(1) {
                lane_contiguous += 1;
            }
        }
        let mut inner_reduce: Vec<Option<VarId>> = vec![None; self.k.exprs.len()];
        while let Some(e) = stack.pop() {
            if std::mem::replace(&mut seen[e.0 as usize], true) {
                continue;
            }
            let node = self.k.expr(e);
            if node.dtype == DType::F64 {
                w = 2;
            }
            let r = inner_reduce[e.0 as usize];
            if let Expr::Load { offset, .. } = &node.expr {
                if offset.stride_of(lane_var, &uses) == Some(1) {
                    lane_contiguous += 1;
                }
                if let Some(r) = r {
                    if offset.stride_of(r, &uses) == Some(1) {
                        reduce_contiguous += 1;
                    }
                }
            }
            let mut ops = Vec::new();
            ops.extend(node.expr.operands());
            let r = match &node.expr {
                Expr::Reduce { vars, .. } => vars.last().copied(),
                _ => r,
            };
            for o in ops {
                if inner_reduce[o.0 as usize].is_none() {
                    inner_reduce[o.0 as usize] = r;
                }
                stack.push(o);
            }
        }
        if self.extent(lane_var) < w as usize || reduce_contiguous > lane_contiguous {
            return 1;
        }
        w
    }

    /// The reductions `e` reads outside any other reduction.
    fn top_reduces(&self, e: ExprId) -> Vec<ExprId> {
        let mut out = Vec::new();
        let mut stack = vec![e];
        let mut seen = std::collections::HashSet::new();
        while let Some(x) = stack.pop() {
            if !seen.insert(x) {
                continue;
            }
            let node = &self.k.expr(x).expr;
            if let Expr::Reduce { .. } = node {
                out.push(x);
                continue;
            }
            stack.extend(node.operands());
        }
        out.sort();
        out
    }

    /// Computes and stores every store of `nest` at each point of a tile. The reductions of a
    /// tile (a matmul, also under an epilogue) run in one loop for all points.
    fn body(&mut self, nest: &LoopNest, pts: &[Point]) {
        if pts.len() > 1 {
            let mut reduces: Vec<ExprId> = Vec::new();
            for s in &nest.stores {
                reduces.extend(self.top_reduces(s.value));
            }
            reduces.sort();
            reduces.dedup();
            for r in reduces {
                // Points that differ only in variables the reduction does not depend on (a
                // row sum at two column vectors of one row) share one accumulator.
                let deps = &self.deps[r.0 as usize];
                let mut distinct: Vec<Point> = Vec::new();
                let mut which: Vec<usize> = Vec::with_capacity(pts.len());
                for p in pts {
                    let proj: Point = p
                        .iter()
                        .filter(|(v, _)| deps.contains(v))
                        .copied()
                        .collect();
                    match distinct.iter().position(|d| *d == proj) {
                        Some(i) => which.push(i),
                        None => {
                            distinct.push(proj);
                            which.push(distinct.len() - 1);
                        }
                    }
                }
                let vals = self.reduce_points(r, &distinct);
                for (p, &i) in pts.iter().zip(&which) {
                    self.set_point(p);
                    let key = self.key(r);
                    let v = vals[i].clone();
                    self.memo.last_mut().expect("a memo scope").insert(key, v);
                }
            }
        }
        let mut values: Vec<Vec<Val>> = Vec::new();
        for s in &nest.stores {
            let vals = pts
                .iter()
                .map(|p| {
                    self.set_point(p);
                    self.eval(s.value)
                })
                .collect();
            values.push(vals);
        }
        for (s, vals) in nest.stores.iter().zip(values) {
            for (p, v) in pts.iter().zip(vals) {
                self.set_point(p);
                self.store(s, v);
            }
        }
        self.set_point(&Point::new());
    }

    fn set_point(&mut self, p: &[(VarId, i64)]) {
        for o in self.offs.iter_mut() {
            *o = 0;
        }
        for &(v, o) in p {
            self.offs[v.0 as usize] = o;
        }
    }

    fn rep(&self, e: ExprId) -> Rep {
        let uni = match self.lane {
            None => true,
            Some(l) => self.w == 1 || !self.deps[e.0 as usize].contains(&l),
        };
        if uni {
            Rep::Uni
        } else if is_native(self.k.expr(e).dtype, self.w) {
            Rep::Vec
        } else {
            Rep::Lanes
        }
    }

    fn key(&self, e: ExprId) -> MemoKey {
        let offs = self.deps[e.0 as usize]
            .iter()
            .map(|v| self.offs[v.0 as usize])
            .collect();
        (e, offs)
    }

    /// The value of `e` at the current point.
    fn eval(&mut self, e: ExprId) -> Val {
        let key = self.key(e);
        for scope in self.memo.iter().rev() {
            if let Some(v) = scope.get(&key) {
                return v.clone();
            }
        }
        let v = self.compute(e);
        self.memo
            .last_mut()
            .expect("a memo scope")
            .insert(key, v.clone());
        v
    }

    fn compute(&mut self, e: ExprId) -> Val {
        let node = self.k.expr(e).clone();
        let d = node.dtype;
        let rep = self.rep(e);
        let w = self.w;
        match &node.expr {
            Expr::Load { buffer, offset } => self.load(*buffer, offset, d, rep),
            Expr::Const { bits } => Val::Uni(const_scalar(&mut self.b, d, f64::from_bits(*bits))),
            Expr::Index { ix } => self.per_lane(rep, d, &mut |s: &mut Self, l| {
                let i = s.ix_value(ix, l);
                index_as(&mut s.b, i, d)
            }),
            Expr::InBounds { conds } => self.per_lane(rep, d, &mut |s: &mut Self, l| {
                let mut ok: Option<Value> = None;
                for (ix, lo, hi) in conds {
                    let i = s.ix_value(ix, l);
                    let a =
                        s.b.ins()
                            .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, i, *lo);
                    let c = s.b.ins().icmp_imm_s(IntCC::SignedLessThan, i, *hi);
                    let both = s.b.ins().band(a, c);
                    ok = Some(match ok {
                        None => both,
                        Some(o) => s.b.ins().band(o, both),
                    });
                }
                ok.unwrap_or_else(|| s.b.ins().iconst(types::I8, 1))
            }),
            Expr::Unary { op, x } => {
                let xd = self.k.expr(*x).dtype;
                let xv = self.eval(*x);
                self.apply(OpKind::Unary(*op), xd, &[(xv, xd)], rep, w)
            }
            Expr::Binary { op, a, b } => {
                let ad = self.k.expr(*a).dtype;
                let rhs_const = match self.k.expr(*b).expr {
                    Expr::Const { bits } if !f64::from_bits(bits).is_nan() => {
                        Some(f64::from_bits(bits))
                    }
                    _ => None,
                };
                let (av, bv) = (self.eval(*a), self.eval(*b));
                self.apply(
                    OpKind::Binary(*op, rhs_const),
                    ad,
                    &[(av, ad), (bv, ad)],
                    rep,
                    w,
                )
            }
            Expr::Compare { op, a, b } => {
                let ad = self.k.expr(*a).dtype;
                let (av, bv) = (self.eval(*a), self.eval(*b));
                self.apply(OpKind::Compare(*op), ad, &[(av, ad), (bv, ad)], rep, w)
            }
            Expr::Select { cond, a, b } => {
                let cv = self.eval(*cond);
                let (av, bv) = (self.eval(*a), self.eval(*b));
                if let (Val::Uni(c), Rep::Vec) = (&cv, rep) {
                    // One condition for every lane: a scalar select of whole vectors.
                    let av = to_vec(&mut self.b, &av, d, w);
                    let bv = to_vec(&mut self.b, &bv, d, w);
                    return Val::Vec(self.b.ins().select(*c, av, bv));
                }
                self.apply(
                    OpKind::Select,
                    d,
                    &[(cv, DType::Bool), (av, d), (bv, d)],
                    rep,
                    w,
                )
            }
            Expr::Cast { x } => {
                let xd = self.k.expr(*x).dtype;
                let xv = self.eval(*x);
                self.apply(OpKind::Cast(d), xd, &[(xv, xd)], rep, w)
            }
            Expr::Reduce { .. } => {
                if self.w == 1 {
                    if let Some(v) = self.vectorized_reduce(e) {
                        return v;
                    }
                }
                let here: Point = self
                    .offs
                    .iter()
                    .enumerate()
                    .filter(|(_, &o)| o != 0)
                    .map(|(v, &o)| (VarId(v as u32), o))
                    .collect();
                self.reduce_points(e, &[here])
                    .pop()
                    .expect("one point, one value")
            }
        }
    }

    /// Builds a value lane by lane with `f(lane)` (or once, for a uniform value).
    fn per_lane(&mut self, rep: Rep, d: DType, f: &mut dyn FnMut(&mut Self, i64) -> Value) -> Val {
        if rep == Rep::Uni {
            return Val::Uni(f(self, 0));
        }
        let lanes: SmallVec<[Value; 4]> = (0..self.w as i64).map(|l| f(self, l)).collect();
        let v = Val::Lanes(lanes);
        convert(&mut self.b, v, d, self.w, rep)
    }

    /// Applies an elementwise op. `args` carry their dtypes; `d` is the op's operand dtype.
    fn apply(&mut self, kind: OpKind, d: DType, args: &[(Val, DType)], rep: Rep, w: u8) -> Val {
        match rep {
            Rep::Uni => {
                let xs: SmallVec<[Value; 3]> = args
                    .iter()
                    .map(|(v, ad)| lane(&mut self.b, v, *ad, 0))
                    .collect();
                Val::Uni(scalar_op(&mut self.b, self.m, kind, d, &xs))
            }
            Rep::Vec => {
                let natives = args.iter().all(|(_, ad)| is_native(*ad, w));
                if natives {
                    let xs: SmallVec<[Value; 3]> = args
                        .iter()
                        .map(|(v, ad)| to_vec(&mut self.b, v, *ad, w))
                        .collect();
                    if let Some(v) = vector_op(&mut self.b, self.m, kind, d, w, &xs) {
                        return Val::Vec(v);
                    }
                }
                let out = self.apply_lanes(kind, d, args, w);
                let od = out_dtype(kind, d);
                Val::Vec(to_vec(&mut self.b, &out, od, w))
            }
            Rep::Lanes => self.apply_lanes(kind, d, args, w),
        }
    }

    fn apply_lanes(&mut self, kind: OpKind, d: DType, args: &[(Val, DType)], w: u8) -> Val {
        let mut out = SmallVec::new();
        for l in 0..w {
            let xs: SmallVec<[Value; 3]> = args
                .iter()
                .map(|(v, ad)| lane(&mut self.b, v, *ad, l))
                .collect();
            out.push(scalar_op(&mut self.b, self.m, kind, d, &xs));
        }
        Val::Lanes(out)
    }

    /// The `i64` value of an index expression at lane `l` of the current point.
    fn ix_value(&mut self, ix: &Ix, l: i64) -> Value {
        let mut constant = ix.constant;
        let mut acc: Option<Value> = None;
        for (a, c) in &ix.terms {
            let v = match a {
                Atom::Var(v) => {
                    constant +=
                        c * (self.offs[v.0 as usize] + if Some(*v) == self.lane { l } else { 0 });
                    let var = self.vars[v.0 as usize].expect("loop variable in scope");
                    self.b.use_var(var)
                }
                Atom::Div(e, d) => {
                    let x = self.ix_value(e, l);
                    self.b.ins().sdiv_imm_s(x, *d)
                }
                Atom::Rem(e, d) => {
                    let x = self.ix_value(e, l);
                    self.b.ins().srem_imm_s(x, *d)
                }
                Atom::Clamp(e, lo, hi) => {
                    let x = self.ix_value(e, l);
                    let lo = self.b.ins().iconst(types::I64, *lo);
                    let hi = self.b.ins().iconst(types::I64, *hi);
                    let x = self.b.ins().smax(x, lo);
                    self.b.ins().smin(x, hi)
                }
                Atom::Value(e) => {
                    let v = self.eval(*e);
                    let d = self.k.expr(*e).dtype;
                    let s = lane(&mut self.b, &v, d, l as u8);
                    self.b.ins().sextend(types::I64, s)
                }
            };
            let term = if *c == 1 {
                v
            } else {
                self.b.ins().imul_imm_s(v, *c)
            };
            acc = Some(match acc {
                None => term,
                Some(a) => self.b.ins().iadd(a, term),
            });
        }
        match acc {
            None => self.b.ins().iconst(types::I64, constant),
            Some(a) if constant != 0 => self.b.ins().iadd_imm_s(a, constant),
            Some(a) => a,
        }
    }

    fn address(&mut self, buf: BufferId, ix: &Ix, l: i64) -> Value {
        let esize = self.prog.buffers[buf.0 as usize].dtype.size_bytes() as i64;
        let i = self.ix_value(ix, l);
        let bytes = self.b.ins().imul_imm_s(i, esize);
        let base = self.bases[&buf];
        self.b.ins().iadd(base, bytes)
    }

    fn lane_stride(&self, ix: &Ix) -> Option<i64> {
        let lane = self.lane?;
        let deps = self.deps;
        ix.stride_of(lane, &|e, v| deps[e.0 as usize].contains(&v))
    }

    fn load(&mut self, buf: BufferId, ix: &Ix, d: DType, rep: Rep) -> Val {
        let sty = scalar_type(d);
        if rep == Rep::Uni {
            let a = self.address(buf, ix, 0);
            return Val::Uni(self.b.ins().load(sty, mem(), a, 0));
        }
        let w = self.w;
        // A vector load only where the vector has exactly `w` lanes of `d`: an `f32` load in a
        // 2-lane (`f64`) loop would read 4.
        if rep == Rep::Vec && d != DType::Bool && is_native(d, w) && self.lane_stride(ix) == Some(1)
        {
            let a = self.address(buf, ix, 0);
            return Val::Vec(self.b.ins().load(vector_type(d, w), mem(), a, 0));
        }
        let lanes: SmallVec<[Value; 4]> = (0..w as i64)
            .map(|l| {
                let a = self.address(buf, ix, l);
                self.b.ins().load(sty, mem(), a, 0)
            })
            .collect();
        convert(&mut self.b, Val::Lanes(lanes), d, w, rep)
    }

    fn store(&mut self, s: &Store, v: Val) {
        let d = self.prog.buffers[s.buffer.0 as usize].dtype;
        let sty = scalar_type(d);
        let w = self.w;
        if let Some(g) = s.guard {
            // Guarded stores only occur in scalar nests.
            let gv = self.eval(g);
            let c = lane(&mut self.b, &gv, DType::Bool, 0);
            let yes = self.b.create_block();
            let done = self.b.create_block();
            self.b.ins().brif(c, yes, &[], done, &[]);
            self.b.switch_to_block(yes);
            self.store_scalar(s, &v, d, 0);
            self.b.ins().jump(done, &[]);
            self.b.switch_to_block(done);
            return;
        }
        // A vector store only where the vector has exactly `w` lanes of `d`: an `f32` or `i32`
        // store in a 2-lane (`f64`) loop would write 4 lanes, past the end of the row.
        if w > 1
            && d != DType::Bool
            && is_native(d, w)
            && !s.accumulate
            && self.lane_stride(&s.offset) == Some(1)
        {
            let a = self.address(s.buffer, &s.offset, 0);
            let x = to_vec(&mut self.b, &v, d, w);
            self.b.ins().store(mem(), x, a, 0);
            return;
        }
        let _ = sty;
        for l in 0..w {
            self.store_scalar(s, &v, d, l);
        }
    }

    fn store_scalar(&mut self, s: &Store, v: &Val, d: DType, l: u8) {
        let a = self.address(s.buffer, &s.offset, l as i64);
        let mut x = lane(&mut self.b, v, d, l);
        if s.accumulate {
            let old = self.b.ins().load(scalar_type(d), mem(), a, 0);
            x = if d.is_float() {
                self.b.ins().fadd(old, x)
            } else {
                self.b.ins().iadd(old, x)
            };
        }
        self.b.ins().store(mem(), x, a, 0);
    }

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

    /// A product to accumulate with `fma`: the factors of `body` when it is a float `mul` and
    /// the target has FMA.
    fn fma_factors(&self, op: ReduceOp, body: ExprId) -> Option<(ExprId, ExprId)> {
        let node = self.k.expr(body);
        match node.expr {
            Expr::Binary {
                op: BinaryOp::Mul,
                a,
                b,
            } if op == ReduceOp::Sum && self.m.fma && node.dtype.is_float() => Some((a, b)),
            _ => None,
        }
    }

    /// The reduction `e` at several points at once, in one loop nest with one accumulator per
    /// point and lane form.
    fn reduce_points(&mut self, e: ExprId, pts: &[Point]) -> Vec<Val> {
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
        let fma = self.fma_factors(op, body);
        let vars = vars.clone();
        self.reduce_loops(&vars, 0, &mut |s: &mut Self| {
            for (p, acc) in pts.iter().zip(&accs) {
                s.set_point(p);
                s.accumulate(op, d, body, fma, rep, acc);
            }
        });
        self.offs = saved;
        accs.iter()
            .map(|acc| match rep {
                Rep::Uni => Val::Uni(self.b.use_var(acc[0])),
                Rep::Vec => Val::Vec(self.b.use_var(acc[0])),
                Rep::Lanes => Val::Lanes(acc.iter().map(|&v| self.b.use_var(v)).collect()),
            })
            .collect()
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

    /// A reduction in a scalar context whose operand is contiguous along its innermost reduced
    /// variable: vector accumulation along that variable, then a horizontal combine.
    fn vectorized_reduce(&mut self, e: ExprId) -> Option<Val> {
        let node = self.k.expr(e).clone();
        let Expr::Reduce { op, vars, body } = &node.expr else {
            return None;
        };
        let (op, body, d) = (*op, *body, node.dtype);
        let r = *vars.last()?;
        let wr: u8 = match d {
            DType::F32 | DType::I32 => 4,
            DType::F64 => 2,
            DType::Bool => return None,
            DType::Bf16 | DType::F16 => unreachable!("compile rejects 16-bit floats"),
        };
        if self.extent(r) < wr as usize || !self.contiguous_in(body, r) || self.has_f64_mix(body, d)
        {
            return None;
        }
        let init = self.identity(op, d);
        let vt = vector_type(d, wr);
        let vinit = self.b.ins().splat(vt, init);
        let accv = self.b.declare_var(vt);
        self.b.def_var(accv, vinit);
        let accs = self.b.declare_var(scalar_type(d));
        self.b.def_var(accs, init);
        let fma = self.fma_factors(op, body);
        let saved = (self.lane, self.w, self.offs.clone());
        let outer = vars[..vars.len() - 1].to_vec();
        self.reduce_loops(&outer, 0, &mut |s: &mut Self| {
            let start = s.b.ins().iconst(types::I64, 0);
            let extent = s.extent(r) as i64;
            let stop = s.b.ins().iconst(types::I64, extent);
            s.lane = Some(r);
            s.w = wr;
            s.for_loop(r, Some(start), stop, wr as i64, &mut |s: &mut Self| {
                let rep = s.rep(body);
                s.accumulate(op, d, body, fma, rep, &[accv])
            });
            s.w = 1;
            s.for_loop(r, None, stop, 1, &mut |s: &mut Self| {
                s.accumulate(op, d, body, fma, Rep::Uni, &[accs])
            });
            s.lane = saved.0;
            s.w = saved.1;
        });
        self.lane = saved.0;
        self.w = saved.1;
        self.offs = saved.2;
        let v = self.b.use_var(accv);
        let mut total = self.b.use_var(accs);
        for l in 0..wr {
            let x = self.b.ins().extractlane(v, l);
            total = self.combine(op, d, total, x);
        }
        Some(Val::Uni(total))
    }

    /// True if some load in `e` (outside nested reductions) is contiguous in `r`, and the
    /// body depends on `r` only through affine indices.
    fn contiguous_in(&self, e: ExprId, r: VarId) -> bool {
        let deps = self.deps;
        let uses = |x: ExprId, v: VarId| deps[x.0 as usize].contains(&v);
        let mut found = false;
        let mut stack = vec![e];
        let mut seen = std::collections::HashSet::new();
        while let Some(x) = stack.pop() {
            if !seen.insert(x) {
                continue;
            }
            let node = &self.k.expr(x).expr;
            match node {
                Expr::Load { offset, .. } => match offset.stride_of(r, &uses) {
                    Some(1) => found = true,
                    Some(_) => {}
                    None => return false,
                },
                Expr::Reduce { .. } => return false,
                _ => {}
            }
            stack.extend(node.operands());
        }
        found
    }

    /// True if `e` involves a dtype of another width than `d` (kept scalar for simplicity).
    fn has_f64_mix(&self, e: ExprId, d: DType) -> bool {
        let mut stack = vec![e];
        let mut seen = std::collections::HashSet::new();
        let wide = d == DType::F64;
        while let Some(x) = stack.pop() {
            if !seen.insert(x) {
                continue;
            }
            let n = self.k.expr(x);
            if n.dtype != DType::Bool && (n.dtype == DType::F64) != wide {
                return true;
            }
            stack.extend(n.expr.operands());
        }
        false
    }
}

fn out_dtype(kind: OpKind, d: DType) -> DType {
    match kind {
        OpKind::Compare(_) => DType::Bool,
        OpKind::Cast(to) => to,
        OpKind::Unary(_) | OpKind::Binary(..) | OpKind::Select => d,
    }
}

fn index_as(b: &mut FunctionBuilder<'_>, i: Value, d: DType) -> Value {
    match d {
        DType::I32 => b.ins().ireduce(types::I32, i),
        DType::F32 | DType::F64 => b.ins().fcvt_from_sint(scalar_type(d), i),
        DType::Bool => b.ins().icmp_imm_s(IntCC::NotEqual, i, 0),
        DType::Bf16 | DType::F16 => unreachable!("compile rejects 16-bit floats"),
    }
}
