//! Memory access from a nest: index arithmetic, addresses, loads and stores in the lane form
//! of the current loop.

use super::emit::{NestEmitter, RowKey};
use crate::codegen::half;
use crate::codegen::value::{
    convert, is_native, lane, little, mem, scalar_type, to_vec, vector_type, Rep, Val,
};
use crate::kernel::{Atom, BufferId, Expr, Ix, LoopNest, Store, VarId};
use adjoint_ir::DType;
use cranelift_codegen::ir::{types, InstBuilder, Value};
use smallvec::SmallVec;

/// The shortest row (lane loop) whose accesses get row addresses
/// ([`NestEmitter::with_row_bases`]): two vectors.
const ROW_BASE_MIN_LANES: usize = 8;

/// The terms of `ix` over the variables `vars`, in `ix`'s order.
fn terms_over(ix: &Ix, vars: &[VarId]) -> SmallVec<[(VarId, i64); 4]> {
    ix.terms
        .iter()
        .filter_map(|(a, c)| match a {
            Atom::Var(v) if vars.contains(v) => Some((*v, *c)),
            _ => None,
        })
        .collect()
}

impl NestEmitter<'_, '_> {
    /// Runs `f` (the emission of a row: the loops inside the next-to-innermost loop of
    /// `nest`) with the address of every access's row computed once at the row's start: the
    /// buffer's base plus its index's terms over the outer loop variables. The row's loops
    /// then add only their own terms per step. The addresses are pinned there
    /// ([`Self::pin_values`]): Cranelift would otherwise place their arithmetic at its uses,
    /// in the innermost loop, and did not hoist it out.
    pub(super) fn with_row_bases(&mut self, nest: &LoopNest, f: &mut dyn FnMut(&mut Self)) {
        // A short row would pay a store per access for little: its arithmetic stays where it
        // is used.
        let lane = nest.vars.last().map_or(0, |&v| self.extent(v));
        if lane < ROW_BASE_MIN_LANES {
            return f(self);
        }
        let outer: SmallVec<[VarId; 8]> = nest.vars[..nest.vars.len().saturating_sub(1)]
            .iter()
            .copied()
            .collect();
        let mut keys: Vec<RowKey> = Vec::new();
        let mut add = |buffer: BufferId, ix: &Ix| {
            let key = (buffer, terms_over(ix, &outer));
            if !key.1.is_empty() && !keys.contains(&key) {
                keys.push(key);
            }
        };
        for e in self.k.exprs_of(nest) {
            if let Expr::Load { buffer, offset } = &self.k.expr(e).expr {
                add(*buffer, offset);
            }
        }
        for s in &nest.stores {
            add(s.buffer, &s.offset);
        }
        let saved = (
            std::mem::take(&mut self.row_bases),
            std::mem::replace(&mut self.row_vars, outer),
        );
        for (buffer, key) in keys {
            let esize = self.prog.buffers[buffer.0 as usize].dtype.size_bytes() as i64;
            let mut ptr = self.bases[&buffer];
            for &(v, c) in &key {
                let var = self.vars[v.0 as usize].expect("an outer loop variable in scope");
                let x = self.b.use_var(var);
                let bytes = self.b.ins().imul_imm_s(x, c * esize);
                ptr = self.b.ins().iadd(ptr, bytes);
            }
            self.row_bases.push(((buffer, key), ptr));
        }
        let ptrs: SmallVec<[Value; 8]> = self.row_bases.iter().map(|&(_, p)| p).collect();
        self.pin_values(&ptrs);
        f(self);
        (self.row_bases, self.row_vars) = saved;
    }

    /// The `i64` value of an index expression at lane `l` of the current point.
    pub(super) fn ix_value(&mut self, ix: &Ix, l: i64) -> Value {
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
        let key = (buf, terms_over(ix, &self.row_vars));
        let row = self
            .row_bases
            .iter()
            .find(|(k, _)| *k == key)
            .map(|&(_, ptr)| ptr);
        let (base, ix) = match row {
            // The row's address, and the terms of the loops inside it (the tile offsets of
            // the outer variables go into the constant).
            Some(ptr) => {
                let mut rest = Ix::constant(ix.constant);
                for (a, c) in &ix.terms {
                    match a {
                        Atom::Var(v) if self.row_vars.contains(v) => {
                            rest.constant += c * self.offs[v.0 as usize];
                        }
                        _ => rest.terms.push((a.clone(), *c)),
                    }
                }
                (ptr, std::borrow::Cow::Owned(rest))
            }
            None => (self.bases[&buf], std::borrow::Cow::Borrowed(ix)),
        };
        let i = self.ix_value(&ix, l);
        let bytes = self.b.ins().imul_imm_s(i, esize);
        self.b.ins().iadd(base, bytes)
    }

    fn lane_stride(&self, ix: &Ix) -> Option<i64> {
        self.plan.stride(ix, self.lane?)
    }

    pub(super) fn load(&mut self, buf: BufferId, ix: &Ix, d: DType, rep: Rep) -> Val {
        if d.is_half() {
            return self.load_half(buf, ix, d, rep);
        }
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
        if rep == Rep::Vec && d == DType::Bool && w == 4 && self.lane_stride(ix) == Some(1) {
            // Four contiguous bools (bytes 0 or 1) in one 32-bit load, widened to the lanes
            // of an `i32x4` and negated into the vector's all-ones masks: five instructions
            // where a load and an insert per lane took twelve (W4's causal mask).
            let a = self.address(buf, ix, 0);
            let bytes = self.b.ins().load(types::I32, mem(), a, 0);
            let v = self.b.ins().scalar_to_vector(types::I32X4, bytes);
            let v = self.b.ins().bitcast(types::I8X16, little(), v);
            let v = self.b.ins().uwiden_low(v);
            let v = self.b.ins().uwiden_low(v);
            return Val::Vec(self.b.ins().ineg(v));
        }
        let lanes: SmallVec<[Value; 4]> = (0..w as i64)
            .map(|l| {
                let a = self.address(buf, ix, l);
                self.b.ins().load(sty, mem(), a, 0)
            })
            .collect();
        convert(&mut self.b, Val::Lanes(lanes), d, w, rep)
    }

    /// A load of 16-bit floats: two bytes per element (four contiguous lanes at once),
    /// widened to `f32`.
    fn load_half(&mut self, buf: BufferId, ix: &Ix, d: DType, rep: Rep) -> Val {
        let w = self.w;
        if rep == Rep::Vec && is_native(d, w) && self.lane_stride(ix) == Some(1) {
            let a = self.address(buf, ix, 0);
            let bits = self.b.ins().uload16x4(mem(), a, 0);
            return Val::Vec(half::widen(&mut self.b, bits, d));
        }
        let lanes = if rep == Rep::Uni { 1 } else { w as i64 };
        let xs: SmallVec<[Value; 4]> = (0..lanes)
            .map(|l| {
                let a = self.address(buf, ix, l);
                let bits = self.b.ins().uload16(types::I32, mem(), a, 0);
                half::widen(&mut self.b, bits, d)
            })
            .collect();
        if rep == Rep::Uni {
            return Val::Uni(xs[0]);
        }
        convert(&mut self.b, Val::Lanes(xs), d, w, rep)
    }

    /// A store of a 16-bit float value held as `f32`: narrowing rounds it to nearest even (it
    /// is exact for a value rounded already, and the one rounding of a value kept unrounded
    /// under excess precision).
    fn store_half(&mut self, s: &Store, v: &Val, d: DType) {
        assert!(
            !s.accumulate,
            "16-bit accumulation goes through an f32 buffer (kernel lowering)"
        );
        let w = self.w;
        if w > 1 && is_native(d, w) && self.lane_stride(&s.offset) == Some(1) {
            let a = self.address(s.buffer, &s.offset, 0);
            let x = to_vec(&mut self.b, v, d, w);
            let bits = half::narrow(&mut self.b, x, d);
            // Pack the four 16-bit values into the low 8 bytes and store those.
            let packed = self.b.ins().unarrow(bits, bits);
            let words = self.b.ins().bitcast(types::I64X2, little(), packed);
            let low = self.b.ins().extractlane(words, 0);
            self.b.ins().store(mem(), low, a, 0);
            return;
        }
        for l in 0..w {
            let a = self.address(s.buffer, &s.offset, l as i64);
            let x = lane(&mut self.b, v, d, l);
            let bits = half::narrow(&mut self.b, x, d);
            self.b.ins().istore16(mem(), bits, a, 0);
        }
    }

    pub(super) fn store(&mut self, s: &Store, v: Val) {
        if let Some(g) = s.guard {
            // The guard is the same for every lane (the plan vectorizes a guarded store only
            // then): lane 0's decides.
            let gv = self.eval(g);
            let c = lane(&mut self.b, &gv, DType::Bool, 0);
            let yes = self.b.create_block();
            let done = self.b.create_block();
            self.b.ins().brif(c, yes, &[], done, &[]);
            self.b.switch_to_block(yes);
            self.store_unguarded(s, v);
            self.b.ins().jump(done, &[]);
            self.b.switch_to_block(done);
            return;
        }
        self.store_unguarded(s, v);
    }

    /// [`Self::store`] once its guard holds: every lane of `v`, added to what the buffer holds
    /// for an accumulating store.
    fn store_unguarded(&mut self, s: &Store, v: Val) {
        let d = self.prog.buffers[s.buffer.0 as usize].dtype;
        let w = self.w;
        if d.is_half() {
            self.store_half(s, &v, d);
            return;
        }
        // A vector store only where the vector has exactly `w` lanes of `d`: an `f32` or `i32`
        // store in a 2-lane (`f64`) loop would write 4 lanes, past the end of the row.
        if w > 1 && d != DType::Bool && is_native(d, w) && self.lane_stride(&s.offset) == Some(1) {
            let a = self.address(s.buffer, &s.offset, 0);
            let mut x = to_vec(&mut self.b, &v, d, w);
            if s.accumulate {
                let old = self.b.ins().load(vector_type(d, w), mem(), a, 0);
                x = if d.is_float() {
                    self.b.ins().fadd(old, x)
                } else {
                    self.b.ins().iadd(old, x)
                };
            }
            self.b.ins().store(mem(), x, a, 0);
            return;
        }
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
}
