//! The emitter: builds a nest's Cranelift function by following its [`NestPlan`].

use super::plan::{KernelPlan, NestPlan};
use crate::codegen::half;
use crate::codegen::ops::{scalar_op, vector_op, OpKind};
use crate::codegen::value::{
    const_scalar, convert, is_native, lane, mem, scalar_type, to_vec, Rep, Val,
};
use crate::kernel::{BufferId, Expr, ExprId, Kernel, LoopNest, Program, Store, VarId};
use crate::math::MathOptions;
use adjoint_ir::DType;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, FuncRef, InstBuilder, StackSlotData, StackSlotKind, Value};
use cranelift_frontend::{FunctionBuilder, Variable};
use smallvec::SmallVec;
use std::collections::HashMap;

type MemoKey = (ExprId, SmallVec<[i64; 4]>);

/// A point of a tile: offsets added to loop variables.
pub(super) type Point = SmallVec<[(VarId, i64); 2]>;

/// Emits the body of one nest function.
///
/// Its state while emitting is the position in the loops: which Cranelift variable holds each
/// loop variable, the tile point being computed (offsets added to the loop variables), the lane
/// variable and width of the innermost loop being emitted, and the values already computed in
/// each loop scope.
pub struct NestEmitter<'a, 'f> {
    /// The function under construction.
    pub b: FunctionBuilder<'f>,
    pub(super) k: &'a Kernel,
    pub(super) prog: &'a Program,
    pub(super) m: MathOptions,
    pub(super) plan: &'a KernelPlan,
    ctx: Value,
    pub(super) bases: HashMap<BufferId, Value>,
    pub(super) vars: Vec<Option<Variable>>,
    pub(super) offs: Vec<i64>,
    memo: Vec<HashMap<MemoKey, Val>>,
    pub(super) lane: Option<VarId>,
    pub(super) w: u8,
    /// The outermost loop covers its whole extent (the nest is not split over threads), so
    /// every loop's bounds are known here and loops that would run no iteration are left out.
    whole: bool,
    /// Keep the 16-bit float results of arithmetic (unary, binary, reductions) as their
    /// unrounded `f32` values; they are rounded only by the stores that write them to 16-bit
    /// buffers ([`crate::Options::excess_precision`]). `false` (the default here) rounds every
    /// 16-bit result, as the interpreter does.
    pub excess_precision: bool,
    /// The plan's row caches and the address of each one's stack buffer.
    pub(super) row_cache_slots: Vec<(super::RowCache, Value)>,
    /// The bounds of the second loop when the nest runs over a block of columns
    /// ([`NestEmitter::emit_block`]); `None`: its whole extent.
    cols: Option<(Value, Value)>,
    /// The loop `begin..end` bounds ([`LoopNest::split_position`]).
    split: usize,
    /// While a row is emitted (the loops inside the next-to-innermost one): the row's address
    /// of each access, computed once at the row's start (`access.rs`), and the outer
    /// variables.
    pub(super) row_bases: Vec<RowBase>,
    pub(super) row_vars: SmallVec<[VarId; 8]>,
    /// The host routines the plan's [`NestPlan::wide`] expressions call; `None`: they are
    /// computed inline.
    pub host_math: Option<HostMath>,
    /// The stack buffer of each of the plan's wide expressions, and how many of them hold the
    /// current chunk's values (`wide.rs`).
    pub(super) wide_slots: Vec<(ExprId, Value)>,
    pub(super) wide_ready: usize,
    /// The lane variable and its first value in the chunk being emitted (`wide.rs`).
    pub(super) chunk: Option<(VarId, Value)>,
}

/// A row's address of a buffer's accesses ([`NestEmitter::with_row_bases`]): the buffer, the
/// terms of the outer loop variables in the index, and the base plus those terms in bytes.
pub(super) type RowBase = (RowKey, Value);

/// A buffer and the terms of the outer loop variables in an index of it.
pub(super) type RowKey = (BufferId, SmallVec<[(VarId, i64); 4]>);

/// The host routines a nest function calls, imported into it.
#[derive(Clone, Copy, Debug)]
pub struct HostMath {
    /// [`crate::math::host::adjoint_exp_f32`].
    pub exp: FuncRef,
    /// [`crate::math::host::adjoint_tanh_f32`].
    pub tanh: FuncRef,
}

impl<'a, 'f> NestEmitter<'a, 'f> {
    /// An emitter whose builder is positioned in the entry block; `ctx` is the pointer table.
    pub fn new(
        b: FunctionBuilder<'f>,
        k: &'a Kernel,
        prog: &'a Program,
        m: MathOptions,
        plan: &'a KernelPlan,
        ctx: Value,
    ) -> Self {
        NestEmitter {
            b,
            k,
            prog,
            m,
            plan,
            ctx,
            bases: HashMap::new(),
            vars: vec![None; k.vars.len()],
            offs: vec![0; k.vars.len()],
            memo: vec![HashMap::new()],
            lane: None,
            w: 1,
            whole: false,
            excess_precision: false,
            row_cache_slots: Vec::new(),
            cols: None,
            split: 0,
            row_bases: Vec::new(),
            row_vars: SmallVec::new(),
            host_math: None,
            wide_slots: Vec::new(),
            wide_ready: 0,
            chunk: None,
        }
    }

    /// Emits the loops of `nest` as `plan` says over the whole range of its outermost loop
    /// (a nest the entry point calls directly, not through `parallel_for`): the bounds of every
    /// loop are constants, and the loops of the tile and lane remainders that would run no
    /// iteration (a vector loop over fewer elements than a vector, a scalar tail after a
    /// multiple of the vector width) are not generated.
    pub fn emit_whole(&mut self, nest: &LoopNest, plan: &NestPlan) {
        let split = nest.split_position(&self.k.vars);
        let extent = nest.vars.get(split).map_or(1, |&v| self.extent(v)) as i64;
        let begin = self.b.ins().iconst(types::I64, 0);
        let end = self.b.ins().iconst(types::I64, extent);
        self.whole = true;
        self.emit(nest, plan, begin, end);
    }

    /// Emits the loops of `nest` as `plan` says; `begin` and `end` bound its loop at
    /// [`LoopNest::split_position`] (the outermost one for a block, [`Self::emit_block`]).
    pub fn emit(&mut self, nest: &LoopNest, plan: &NestPlan, begin: Value, end: Value) {
        self.split = if self.cols.is_some() {
            0
        } else {
            nest.split_position(&self.k.vars)
        };
        self.load_bases(nest);
        self.alloc_row_caches(&plan.row_caches);
        self.alloc_wide(&plan.wide);
        if nest.vars.is_empty() {
            self.body(nest, plan, &[Point::new()]);
            return;
        }
        self.hoist(nest, plan, 0);
        self.level(nest, plan, 0, begin, end, plan.rows, plan.unroll);
    }

    /// Emits the loops of a two-loop `nest` over the block `rows` × `cols` of its iteration
    /// space (`begin..end` bounds of the outer and the inner loop): a matmul's epilogue run on
    /// each block of the product as the host kernel finishes it
    /// (`crate::gemm::adjoint_sgemm_epilogue`).
    pub fn emit_block(
        &mut self,
        nest: &LoopNest,
        plan: &NestPlan,
        rows: (Value, Value),
        cols: (Value, Value),
    ) {
        assert_eq!(nest.vars.len(), 2, "a block is of a two-loop nest");
        self.cols = Some(cols);
        self.emit(nest, plan, rows.0, rows.1);
    }

    pub(super) fn extent(&self, v: VarId) -> usize {
        self.k.vars[v.0 as usize]
    }

    /// Emits loop `i` of `nest` and everything inside it; `rows` and `unroll` are the plan's
    /// tile, or 1 in the remainder loops that finish what the tile leaves.
    #[allow(clippy::too_many_arguments)]
    fn level(
        &mut self,
        nest: &LoopNest,
        plan: &NestPlan,
        i: usize,
        begin: Value,
        end: Value,
        rows: usize,
        unroll: usize,
    ) {
        let n = nest.vars.len();
        let v = nest.vars[i];
        let (start, stop) = if i == self.split {
            (begin, end)
        } else if let (1, Some(cols)) = (i, self.cols) {
            cols
        } else {
            let e = self.extent(v) as i64;
            (
                self.b.ins().iconst(types::I64, 0),
                self.b.ins().iconst(types::I64, e),
            )
        };
        // With known bounds, `runs(step)` says whether a loop of that step, continuing from
        // where the loops before it stopped, runs at all (and records what it leaves).
        let known = if i == self.split {
            self.whole
        } else {
            i > 1 || self.cols.is_none()
        };
        let left = known.then(|| self.extent(v));
        if i == n - 1 {
            if self.host_math.is_some() && !plan.wide.is_empty() {
                self.wide_lane_loops(nest, plan, (start, stop), left, rows, unroll);
            } else {
                self.lane_loops(nest, plan, (start, stop), left, rows, unroll);
            }
            return;
        }
        let mut left = left;
        let mut runs = |step: usize| runs(&mut left, step);
        if rows > 1 && i == n - 2 {
            let mut first = Some(start);
            if runs(rows) {
                self.for_loop(v, first.take(), stop, rows as i64, &mut |s: &mut Self| {
                    s.with_row_bases(nest, &mut |s: &mut Self| {
                        s.level(nest, plan, i + 1, begin, end, rows, unroll)
                    })
                });
            }
            if runs(1) {
                self.for_loop(v, first.take(), stop, 1, &mut |s: &mut Self| {
                    s.with_row_bases(nest, &mut |s: &mut Self| {
                        s.level(nest, plan, i + 1, begin, end, 1, 1)
                    })
                });
            }
            return;
        }
        self.for_loop(v, Some(start), stop, 1, &mut |s: &mut Self| {
            let body = &mut |s: &mut Self| {
                s.hoist(nest, plan, i + 1);
                s.level(nest, plan, i + 1, begin, end, rows, unroll)
            };
            if i + 2 == n {
                s.with_row_bases(nest, body);
            } else {
                body(s);
            }
        });
    }

    /// The lane loop of `nest` over `range`: vector body (unrolled), vector body, scalar tail.
    /// `left`: the number of elements in the range, when known here (loops that would run no
    /// iteration are then left out).
    pub(super) fn lane_loops(
        &mut self,
        nest: &LoopNest,
        plan: &NestPlan,
        (start, stop): (Value, Value),
        mut left: Option<usize>,
        rows: usize,
        unroll: usize,
    ) {
        let n = nest.vars.len();
        let v = nest.vars[n - 1];
        let row_var = (n >= 2).then(|| nest.vars[n - 2]);
        let w = plan.width;
        let mut first = Some(start);
        if w > 1 {
            if unroll > 1 && runs(&mut left, w as usize * unroll) {
                let pts = tile(row_var, v, rows, unroll, w);
                self.lane_loop(nest, plan, v, first.take(), stop, w, unroll, &pts);
            }
            if runs(&mut left, w as usize) {
                let pts = tile(row_var, v, rows, 1, w);
                self.lane_loop(nest, plan, v, first.take(), stop, w, 1, &pts);
            }
        }
        if runs(&mut left, 1) {
            let pts = tile(row_var, v, rows, 1, 1);
            self.lane_loop(nest, plan, v, first.take(), stop, 1, 1, &pts);
        }
    }

    /// Computes the plan's hoisted reductions at `depth` (scalar, at the loops' current
    /// values), so that the loops inside find them computed.
    fn hoist(&mut self, nest: &LoopNest, plan: &NestPlan, depth: usize) {
        self.with_lanes(None, 1, &mut |s: &mut Self| {
            s.set_point(&Point::new());
            for h in plan.hoisted.iter().filter(|h| h.depth == depth) {
                let v = s.eval(h.expr);
                s.pin(&v);
            }
            for (st, d) in nest.stores.iter().zip(&plan.store_depth) {
                if *d == Some(depth) {
                    let v = s.eval(st.value);
                    s.store(st, v);
                }
            }
        });
    }

    /// Makes `v` computed here, before the loops that follow ([`Self::pin_values`]).
    fn pin(&mut self, v: &Val) {
        match v {
            Val::Uni(x) | Val::Vec(x) => self.pin_values(&[*x]),
            Val::Lanes(xs) => self.pin_values(xs),
        }
    }

    /// Makes `values` computed here, before the loops that follow. Cranelift places a pure
    /// instruction where it is first used and hoists it out of a loop only when its operands
    /// come from a shallower loop depth: a reduction's final combine reads the last values of
    /// its own loop, as deep as the row's lane loop, so without this the combine (a row max's
    /// horizontal `fmax` sequence) would run again at every step of the lane loop, and a row's
    /// address arithmetic ([`Self::with_row_bases`]) would run at every access. A store to the
    /// stack forces a value, and every later use reads it. Each value gets its own 16 bytes of
    /// a slot of its own: of several stores to one place only the last one is kept, and the
    /// values of the others went back to their uses.
    pub(super) fn pin_values(&mut self, values: &[Value]) {
        if values.is_empty() {
            return;
        }
        let slot = self.b.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            16 * values.len() as u32,
            4,
        ));
        for (i, &x) in values.iter().enumerate() {
            self.b.ins().stack_store(types::I64, x, slot, 16 * i as i32);
        }
    }

    /// The innermost loop over `v`, `w` lanes × `unroll` vectors per step, computing the tile
    /// points `pts` each step.
    #[allow(clippy::too_many_arguments)]
    fn lane_loop(
        &mut self,
        nest: &LoopNest,
        plan: &NestPlan,
        v: VarId,
        start: Option<Value>,
        stop: Value,
        w: u8,
        unroll: usize,
        pts: &[Point],
    ) {
        let step = w as i64 * unroll as i64;
        self.for_loop(v, start, stop, step, &mut |s: &mut Self| {
            s.with_lanes(Some(v), w, &mut |s: &mut Self| s.body(nest, plan, pts));
        });
    }

    /// Runs `f` with `lane` as the lane variable and `w` lanes, then restores both.
    pub(super) fn with_lanes(&mut self, lane: Option<VarId>, w: u8, f: &mut dyn FnMut(&mut Self)) {
        let saved = (self.lane, self.w);
        self.lane = lane;
        self.w = w;
        f(self);
        (self.lane, self.w) = saved;
    }

    /// `for v in start..stop by step` (continuing from v's current value when `start` is
    /// `None`), running while `v + step <= stop`.
    pub(super) fn for_loop(
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
        self.counted_loop(var, start, stop, step, body);
    }

    /// [`Self::for_loop`] over the Cranelift variable `var` (a loop counter of the emitter's
    /// own, or a loop variable's).
    pub(super) fn counted_loop(
        &mut self,
        var: Variable,
        start: Option<Value>,
        stop: Value,
        step: i64,
        body: &mut dyn FnMut(&mut Self),
    ) {
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
        // Each block is sealed as soon as its predecessors are all known, the header once
        // its back edge exists: an inner loop's header is then sealed before the outer ones,
        // and the SSA builder finds that an outer variable reaches it unchanged around the
        // loop, so it passes no block parameter for it (sealing every block at the end left
        // one per outer variable in every inner loop header, so to Cranelift each was
        // defined anew in each loop).
        self.b.seal_block(block);
        self.b.seal_block(exit);
        self.b.switch_to_block(block);
        self.memo.push(HashMap::new());
        body(self);
        self.memo.pop();
        let i = self.b.use_var(var);
        let next = self.b.ins().iadd_imm_s(i, step);
        self.b.def_var(var, next);
        self.b.ins().jump(header, &[]);
        self.b.seal_block(header);
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
            let (slot, offset) = crate::codegen::slot_of(self.prog, buf);
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

    /// Computes and stores every store of `nest` at each point of a tile. The reductions of a
    /// tile (a matmul, also under an epilogue) run in one loop for all points.
    fn body(&mut self, nest: &LoopNest, plan: &NestPlan, pts: &[Point]) {
        if pts.len() > 1 {
            for &r in &plan.tile_reductions {
                // Points that differ only in variables the reduction does not depend on (a
                // row sum at two column vectors of one row) share one accumulator.
                let deps = &self.plan.deps[r.0 as usize];
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
        // Stores the plan runs outside the lane loop are not repeated per element.
        let stores: Vec<&Store> = nest
            .stores
            .iter()
            .zip(&plan.store_depth)
            .filter(|(_, d)| d.is_none())
            .map(|(s, _)| s)
            .collect();
        let mut values: Vec<Vec<Val>> = Vec::new();
        for s in &stores {
            let vals = pts
                .iter()
                .map(|p| {
                    self.set_point(p);
                    self.eval(s.value)
                })
                .collect();
            values.push(vals);
        }
        for (s, vals) in stores.into_iter().zip(values) {
            for (p, v) in pts.iter().zip(vals) {
                self.set_point(p);
                self.store(s, v);
            }
        }
        self.set_point(&Point::new());
    }

    pub(super) fn set_point(&mut self, p: &[(VarId, i64)]) {
        for o in self.offs.iter_mut() {
            *o = 0;
        }
        for &(v, o) in p {
            self.offs[v.0 as usize] = o;
        }
    }

    pub(super) fn rep(&self, e: ExprId) -> Rep {
        let uni = match self.lane {
            None => true,
            Some(l) => self.w == 1 || !self.plan.uses(e, l),
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
        let offs = self.plan.deps[e.0 as usize]
            .iter()
            .map(|v| self.offs[v.0 as usize])
            .collect();
        (e, offs)
    }

    /// The value of `e` at the current point.
    pub(super) fn eval(&mut self, e: ExprId) -> Val {
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

    /// The value of `e`: a 16-bit float result is computed in `f32` from its operands (held
    /// widened) and rounded to its type, as the interpreter computes it; a load, a constant or
    /// a select of 16-bit values is one already. Under [`Self::excess_precision`] the result
    /// of an arithmetic operation keeps its `f32` value (the store that writes it rounds it),
    /// while a cast and an index still round: they are how a graph asks for 16-bit values.
    fn compute(&mut self, e: ExprId) -> Val {
        if let Some(v) = self.row_cache_load(e) {
            return v;
        }
        if let Some(v) = self.wide_load(e) {
            return v;
        }
        let node = self.k.expr(e).clone();
        let v = self.compute_wide(e);
        let rounds = match node.expr {
            Expr::Unary { .. } | Expr::Binary { .. } => !self.excess_precision,
            Expr::Index { .. } | Expr::Cast { .. } => true,
            _ => false,
        };
        if node.dtype.is_half() && rounds {
            self.round_half(v, node.dtype)
        } else {
            v
        }
    }

    /// The total of a 16-bit reduction (accumulated in `f32`): rounded to its type `d`, or
    /// under [`Self::excess_precision`] kept as it is, as an arithmetic result.
    pub(super) fn reduction_total(&mut self, v: Val, d: DType) -> Val {
        if d.is_half() && !self.excess_precision {
            self.round_half(v, d)
        } else {
            v
        }
    }

    /// `v`, a value held as `f32`, rounded to the 16-bit float `d` (lane by lane or as one
    /// vector, in the form it has).
    pub(super) fn round_half(&mut self, v: Val, d: DType) -> Val {
        match v {
            Val::Uni(x) => Val::Uni(half::round(&mut self.b, x, d)),
            Val::Vec(x) => Val::Vec(half::round(&mut self.b, x, d)),
            Val::Lanes(xs) => {
                Val::Lanes(xs.iter().map(|&x| half::round(&mut self.b, x, d)).collect())
            }
        }
    }

    /// [`Self::compute`] before the rounding of a 16-bit result: operations on 16-bit
    /// operands and results run on their `f32` values ([`DType::compute`]).
    fn compute_wide(&mut self, e: ExprId) -> Val {
        let node = self.k.expr(e).clone();
        let d = node.dtype;
        let rep = self.rep(e);
        let w = self.w;
        match &node.expr {
            Expr::Load { buffer, offset } => self.load(*buffer, offset, d, rep),
            Expr::Const { bits } => Val::Uni(const_scalar(&mut self.b, d, f64::from_bits(*bits))),
            Expr::Index { ix } => self.per_lane(rep, d, &mut |s: &mut Self, l| {
                let i = s.ix_value(ix, l);
                index_as(&mut s.b, i, d.compute())
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
                let xd = self.k.expr(*x).dtype.compute();
                let xv = self.eval(*x);
                self.apply(OpKind::Unary(*op), xd, &[(xv, xd)], rep, w)
            }
            Expr::Binary { op, a, b } => {
                let ad = self.k.expr(*a).dtype.compute();
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
                let ad = self.k.expr(*a).dtype.compute();
                let (av, bv) = (self.eval(*a), self.eval(*b));
                self.apply(OpKind::Compare(*op), ad, &[(av, ad), (bv, ad)], rep, w)
            }
            Expr::Select { cond, a, b } => {
                let d = d.compute();
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
                // To or from a 16-bit float: through f32 (the result rounds afterwards).
                let xd = self.k.expr(*x).dtype.compute();
                let xv = self.eval(*x);
                self.apply(OpKind::Cast(d.compute()), xd, &[(xv, xd)], rep, w)
            }
            Expr::Reduce { .. } => {
                if self.w == 1 {
                    if let Some(along) = self.plan.reduce(e).along_axis {
                        return self.reduce_along_axis(e, along);
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
        DType::Bf16 | DType::F16 => unreachable!("an index is converted to f32 first"),
    }
}

/// Whether a loop of `step` elements per iteration runs at all after the loops before it, when
/// `left` elements are known to remain (then updated to what it leaves); always with `None`.
pub(super) fn runs(left: &mut Option<usize>, step: usize) -> bool {
    match left.as_mut() {
        None => true,
        Some(l) if *l >= step => {
            *l %= step;
            true
        }
        Some(_) => false,
    }
}

/// The points of a tile of `rows` rows (of `row_var`) × `vecs` vectors of `w` lanes (of `v`).
fn tile(row_var: Option<VarId>, v: VarId, rows: usize, vecs: usize, w: u8) -> Vec<Point> {
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
}
