//! Wide math: a lane loop whose `exp` and `tanh` ([`super::plan::NestPlan::wide`]) are computed
//! by host routines on 512- or 256-bit vectors ([`crate::math::host`]) instead of inline on
//! 128-bit ones, a chunk of the row at a time.
//!
//! For each chunk of at most [`CHUNK`] elements of the lane loop's range, the emitter
//!
//! 1. runs a loop over the chunk that computes each wide expression's operand and stores it in
//!    the expression's stack buffer (in dependency order, so an operand may read an earlier
//!    expression's results),
//! 2. calls the expression's routine on the buffer, which replaces the operands with results,
//! 3. runs the ordinary lane loop over the chunk, in which each wide expression is a load from
//!    its buffer.
//!
//! The routines return the bits of the inline code, so the results do not depend on which
//! path ran. The buffers are 4 KiB at most each and stay in L1.

use super::emit::{runs, NestEmitter};
use super::plan::NestPlan;
use crate::codegen::value::Val;
use crate::kernel::{Expr, ExprId, LoopNest};
use adjoint_ir::UnaryOp;
use cranelift_codegen::ir::{types, InstBuilder, StackSlotData, StackSlotKind, Value};

/// Elements of the lane loop per chunk: enough that a call costs little against the chunk's
/// work, few enough that the buffers stay in L1 beside the rows the loop streams.
pub const CHUNK: usize = 256;

/// Bytes a buffer starts past its slot's address at most, to begin on a cache line.
const LINE: i64 = 64;

impl NestEmitter<'_, '_> {
    /// Reserves each wide expression's stack buffer, starting on a cache line (the routines
    /// read and write whole 64-byte vectors), in the entry block.
    pub(super) fn alloc_wide(&mut self, wide: &[ExprId]) {
        self.wide_slots.clear();
        if self.host_math.is_none() {
            return;
        }
        for &e in wide {
            let slot = self.b.create_sized_stack_slot(StackSlotData::new(
                StackSlotKind::ExplicitSlot,
                (CHUNK * 4) as u32 + LINE as u32,
                4,
            ));
            let addr = self.b.ins().stack_addr(types::I64, slot, 0);
            let up = self.b.ins().iadd_imm_s(addr, LINE - 1);
            let base = self.b.ins().band_imm_s(up, !(LINE - 1));
            self.wide_slots.push((e, base));
        }
    }

    /// The lane loop of `nest` over `range` as chunks of [`CHUNK`] elements and a last, shorter
    /// one, each through [`Self::wide_chunk`]. `left`: the range's length when known here.
    pub(super) fn wide_lane_loops(
        &mut self,
        nest: &LoopNest,
        plan: &NestPlan,
        (start, stop): (Value, Value),
        left: Option<usize>,
        rows: usize,
        unroll: usize,
    ) {
        let c = self.b.declare_var(types::I64);
        self.b.def_var(c, start);
        if left.is_none_or(|l| l >= CHUNK) {
            self.counted_loop(c, None, stop, CHUNK as i64, &mut |s: &mut Self| {
                let c0 = s.b.use_var(c);
                let len = s.b.ins().iconst(types::I64, CHUNK as i64);
                s.wide_chunk(nest, plan, (c0, len), Some(CHUNK), rows, unroll);
            });
        }
        let rest = left.map(|l| l % CHUNK);
        if rest != Some(0) {
            let c0 = self.b.use_var(c);
            let len = self.b.ins().isub(stop, c0);
            self.wide_chunk(nest, plan, (c0, len), rest, rows, unroll);
        }
    }

    /// One chunk of `len` elements from `c0` (`known`: `len`, when known here): each wide
    /// expression's operands into its buffer and its routine over them, then the lane loop.
    fn wide_chunk(
        &mut self,
        nest: &LoopNest,
        plan: &NestPlan,
        (c0, len): (Value, Value),
        known: Option<usize>,
        rows: usize,
        unroll: usize,
    ) {
        let host = self.host_math.expect("wide lane loops have host routines");
        let v = *nest.vars.last().expect("a lane loop");
        let end = self.b.ins().iadd(c0, len);
        self.chunk = Some((v, c0));
        self.wide_ready = 0;
        for (i, &e) in plan.wide.iter().enumerate() {
            let Expr::Unary { op, x } = self.k.expr(e).expr else {
                unreachable!("wide expressions are exp and tanh")
            };
            let routine = match op {
                UnaryOp::Exp => host.exp,
                UnaryOp::Tanh => host.tanh,
                other => unreachable!("no host routine for {other:?}"),
            };
            let base = self.wide_slots[i].1;
            let mut left = known;
            let mut first = Some(c0);
            for w in [plan.width, 1] {
                if runs(&mut left, usize::from(w)) {
                    self.for_loop(v, first.take(), end, i64::from(w), &mut |s: &mut Self| {
                        s.with_lanes(Some(v), w, &mut |s: &mut Self| {
                            s.set_point(&[]);
                            let operand = s.eval(x);
                            let at = s.stack_address(base, v, Some(c0));
                            s.stack_store(at, operand);
                        });
                    });
                }
            }
            self.b.ins().call(routine, &[base, len]);
            self.wide_ready = i + 1;
        }
        self.lane_loops(nest, plan, (c0, end), known, rows, unroll);
        self.wide_ready = 0;
        self.chunk = None;
    }

    /// The value of `e` read back from its buffer, when `e` is a wide expression whose routine
    /// has run on the chunk being emitted and the lane loop is being emitted; `None` otherwise.
    pub(super) fn wide_load(&mut self, e: ExprId) -> Option<Val> {
        let (v, c0) = self.chunk?;
        if self.lane != Some(v) {
            return None;
        }
        let &(_, base) = self.wide_slots[..self.wide_ready]
            .iter()
            .find(|(w, _)| *w == e)?;
        let at = self.stack_address(base, v, Some(c0));
        Some(self.stack_load(at, e))
    }
}
