//! The kernel-IR verifier: checks a lowered [`Program`] before any code is generated from it.
//!
//! Generated code trusts the kernel IR completely: an index map that reaches past its buffer is
//! a silent out-of-bounds read or write. [`verify_program`] proves, from the loop extents
//! alone, that every access stays inside its buffer for every value of the loop variables, and
//! checks what code generation assumes besides:
//!
//! - **Buffers**: every referenced buffer exists; arena buffers lie inside the arena;
//!   parameter, input and constant numbers exist (constant data has one value per element, of
//!   the buffer's dtype); inputs and constants are never written.
//! - **Index maps**: every load and store offset lies in `0..numel` for all values of the
//!   variables in scope (interval arithmetic over `Σ coeff·atom + constant`, in `i128`, so
//!   hostile coefficients cannot wrap); a data-dependent index (gather, scatter) must be
//!   clamped; floor division and remainder apply to non-negative values only, by divisors of
//!   at least 1; clamps have `lo <= hi`. Variables with extent 0 make the access unreachable.
//! - **Scope**: expression operands come before their users; every variable used is declared
//!   and bound where it is used (a loop variable of the nest storing it, or a variable of an
//!   enclosing reduction); a variable is either a loop or a reduction variable, and nested
//!   reductions do not rebind one.
//! - **Dtypes**: loads and stores match their buffer's dtype; operands match their users as
//!   the graph verifier requires (float-only functions on floats, comparisons giving `bool`,
//!   `bool` conditions and guards, `i32` data indices). Generated code holds a 16-bit value
//!   as the f32 it equals, so an operand matches when its compute type does: an f32 product
//!   of bf16 loads, a bf16 sum of f32 products (rounded once, as the IR's matmul is).
//! - **Reductions**: a sum or max over at least one declared, distinct variable, of a numeric
//!   body of the reduction's compute type (so the identity, 0 or the lowest value, and the
//!   combining operation exist).
//! - **Parallel nests**: the outermost variable's iterations run on different threads, so each
//!   store's offset must be `c·v0 + rest` with the span of `rest` below `|c|`: different
//!   iterations never write the same element.
//! - **Host matmuls**: every element of `A`, `B` and `C` the strides reach lies inside its
//!   buffer, `C` is `f32` and `A` and `B` are both `f32`, `bf16` or `f16`, and the unit split
//!   is well formed.
//!
//! `compile` runs it (with `adjoint_opt::check_memory_plan`) when [`crate::Options::check_ir`]
//! is set, by default in debug builds; the fuzzer always does.

use super::ix::{Atom, Ix};
use super::{BufferId, Expr, ExprId, Kernel, LoopNest, Program, Storage, VarId};
use adjoint_ir::{DType, ReduceOp};
use std::collections::BTreeSet;
use std::fmt;

/// Where in a program a problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A buffer of the program.
    Buffer(BufferId),
    /// An expression of a kernel.
    Expr {
        /// The kernel's name.
        kernel: String,
        /// The expression.
        expr: ExprId,
    },
    /// A store (or the host matmul) of a nest.
    Nest {
        /// The kernel's name.
        kernel: String,
        /// The nest's number in the kernel.
        nest: usize,
        /// The store's number in the nest (`None` for the nest itself).
        store: Option<usize>,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Buffer(b) => write!(f, "buffer {b}"),
            Location::Expr { kernel, expr } => write!(f, "kernel {kernel}, {expr}"),
            Location::Nest {
                kernel,
                nest,
                store: Some(s),
            } => write!(f, "kernel {kernel}, nest {nest}, store {s}"),
            Location::Nest {
                kernel,
                nest,
                store: None,
            } => write!(f, "kernel {kernel}, nest {nest}"),
        }
    }
}

/// What is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A buffer number beyond the program's buffers.
    UnknownBuffer(BufferId),
    /// A buffer whose element count or byte size overflows.
    BufferTooLarge(BufferId),
    /// An arena buffer that does not fit in the arena.
    OutsideArena {
        /// The buffer.
        buffer: BufferId,
        /// Its byte offset.
        offset: usize,
        /// Its size in bytes.
        bytes: usize,
        /// The arena's size in bytes.
        arena: usize,
    },
    /// A parameter, input or constant number the program does not have.
    UnknownStorage {
        /// The buffer.
        buffer: BufferId,
        /// Its storage.
        storage: Storage,
    },
    /// Constant data whose dtype or value count does not match its buffer.
    ConstantMismatch {
        /// The buffer.
        buffer: BufferId,
    },
    /// A store into an input or a constant.
    ReadOnlyStore(BufferId),
    /// A loop variable number beyond the kernel's variables.
    UnknownVar(VarId),
    /// An expression number beyond the kernel's expressions.
    UnknownExpr(ExprId),
    /// An operand that does not come before its user.
    OperandOrder {
        /// The operand.
        operand: ExprId,
    },
    /// A variable used outside every loop and reduction that binds it.
    UnboundVar(VarId),
    /// A variable bound twice (as a loop and a reduction variable, twice in one nest, or by
    /// nested reductions).
    VarBoundTwice(VarId),
    /// An access whose offset can leave its buffer.
    OutOfBounds {
        /// The buffer accessed.
        buffer: BufferId,
        /// The smallest offset the index map can take.
        lo: i128,
        /// The largest offset.
        hi: i128,
        /// The buffer's element count.
        len: usize,
    },
    /// An access whose offset depends on data without a clamp.
    UnclampedDataIndex {
        /// The buffer accessed.
        buffer: BufferId,
    },
    /// A division or remainder of a value that can be negative, or by less than 1; or a clamp
    /// with `lo > hi`.
    BadIndexOp(String),
    /// An operand or stored value of the wrong dtype.
    Dtype {
        /// What needed the dtype.
        what: String,
        /// The dtype required.
        expected: String,
        /// The dtype found.
        got: DType,
    },
    /// A malformed reduction.
    BadReduction(String),
    /// A store of a parallel nest whose iterations of the outermost variable may write the
    /// same element.
    ParallelOverlap {
        /// The buffer written.
        buffer: BufferId,
    },
    /// A malformed host matmul.
    BadGemm(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::UnknownBuffer(b) => write!(f, "{b} does not exist"),
            Problem::BufferTooLarge(b) => write!(f, "{b} has more bytes than a usize counts"),
            Problem::OutsideArena {
                buffer,
                offset,
                bytes,
                arena,
            } => write!(
                f,
                "{buffer} ({bytes} bytes at offset {offset}) ends beyond the arena of {arena} bytes"
            ),
            Problem::UnknownStorage { buffer, storage } => {
                write!(f, "{buffer} is stored in {storage:?}, which does not exist")
            }
            Problem::ConstantMismatch { buffer } => write!(
                f,
                "the constant data of {buffer} does not have its dtype or element count"
            ),
            Problem::ReadOnlyStore(b) => write!(f, "store into {b}, an input or constant"),
            Problem::UnknownVar(v) => write!(f, "{v} is not a variable of the kernel"),
            Problem::UnknownExpr(e) => write!(f, "{e} is not an expression of the kernel"),
            Problem::OperandOrder { operand } => {
                write!(f, "operand {operand} does not come before its user")
            }
            Problem::UnboundVar(v) => {
                write!(f, "{v} is used outside the loops and reductions binding it")
            }
            Problem::VarBoundTwice(v) => write!(f, "{v} is bound twice"),
            Problem::OutOfBounds {
                buffer,
                lo,
                hi,
                len,
            } => write!(
                f,
                "access to {buffer} at offsets {lo}..={hi}, outside its {len} elements"
            ),
            Problem::UnclampedDataIndex { buffer } => {
                write!(
                    f,
                    "access to {buffer} at a data-dependent offset without a clamp"
                )
            }
            Problem::BadIndexOp(m) => write!(f, "{m}"),
            Problem::Dtype {
                what,
                expected,
                got,
            } => write!(f, "{what} must be {expected}, not {got}"),
            Problem::BadReduction(m) => write!(f, "reduction {m}"),
            Problem::ParallelOverlap { buffer } => write!(
                f,
                "different iterations of the parallel loop may write the same element of {buffer}"
            ),
            Problem::BadGemm(m) => write!(f, "host matmul {m}"),
        }
    }
}

/// A problem found by [`verify_program`], and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelIrError {
    /// Where.
    pub at: Location,
    /// What.
    pub problem: Problem,
}

impl fmt::Display for KernelIrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.problem)
    }
}

impl std::error::Error for KernelIrError {}

/// Checks `prog` as described in the [module documentation](self); the first problem found is
/// the error.
pub fn verify_program(prog: &Program) -> Result<(), KernelIrError> {
    let lens = check_buffers(prog)?;
    for k in &prog.kernels {
        KernelCheck::new(prog, &lens, k).run()?;
    }
    Ok(())
}

/// The element count of every buffer, after checking its storage.
fn check_buffers(prog: &Program) -> Result<Vec<usize>, KernelIrError> {
    let mut lens = Vec::with_capacity(prog.buffers.len());
    for (i, b) in prog.buffers.iter().enumerate() {
        let id = BufferId(i as u32);
        let err = |problem| KernelIrError {
            at: Location::Buffer(id),
            problem,
        };
        let len = b
            .shape
            .try_numel()
            .ok_or_else(|| err(Problem::BufferTooLarge(id)))?;
        let bytes = len
            .checked_mul(b.dtype.size_bytes())
            .ok_or_else(|| err(Problem::BufferTooLarge(id)))?;
        let unknown = || {
            err(Problem::UnknownStorage {
                buffer: id,
                storage: b.storage,
            })
        };
        match b.storage {
            Storage::Arena { offset } => {
                if offset
                    .checked_add(bytes)
                    .is_none_or(|e| e > prog.arena_bytes)
                {
                    return Err(err(Problem::OutsideArena {
                        buffer: id,
                        offset,
                        bytes,
                        arena: prog.arena_bytes,
                    }));
                }
            }
            Storage::Parameter { index } if index >= prog.params => return Err(unknown()),
            Storage::Input { index } if index >= prog.inputs => return Err(unknown()),
            Storage::Constant { index } => {
                let c = prog.constants.get(index).ok_or_else(unknown)?;
                if c.dtype != b.dtype || c.values.len() != len {
                    return Err(err(Problem::ConstantMismatch { buffer: id }));
                }
            }
            Storage::Parameter { .. } | Storage::Input { .. } => {}
        }
        lens.push(len);
    }
    Ok(lens)
}

/// The values an index expression can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Span {
    /// None: a variable in it has extent 0, so it is never evaluated.
    Empty,
    /// Every value in `lo..=hi` may occur.
    Range(i128, i128),
    /// Depends on data.
    Unbounded,
}

/// The checks of one kernel.
struct KernelCheck<'a> {
    prog: &'a Program,
    lens: &'a [usize],
    k: &'a Kernel,
    /// The variables each expression uses without binding them.
    free: Vec<BTreeSet<u32>>,
    /// The reduction variables bound inside each expression.
    bound: Vec<BTreeSet<u32>>,
}

impl<'a> KernelCheck<'a> {
    fn new(prog: &'a Program, lens: &'a [usize], k: &'a Kernel) -> Self {
        KernelCheck {
            prog,
            lens,
            k,
            free: Vec::with_capacity(k.exprs.len()),
            bound: Vec::with_capacity(k.exprs.len()),
        }
    }

    fn at_expr(&self, e: usize, problem: Problem) -> KernelIrError {
        KernelIrError {
            at: Location::Expr {
                kernel: self.k.name.clone(),
                expr: ExprId(e as u32),
            },
            problem,
        }
    }

    fn at_nest(&self, nest: usize, store: Option<usize>, problem: Problem) -> KernelIrError {
        KernelIrError {
            at: Location::Nest {
                kernel: self.k.name.clone(),
                nest,
                store,
            },
            problem,
        }
    }

    fn run(mut self) -> Result<(), KernelIrError> {
        for i in 0..self.k.exprs.len() {
            self.check_expr(i).map_err(|p| self.at_expr(i, p))?;
        }
        let reduce_vars: BTreeSet<u32> = self.bound.iter().flatten().copied().collect();
        for (ni, nest) in self.k.nests.iter().enumerate() {
            self.check_nest(ni, nest, &reduce_vars)?;
        }
        Ok(())
    }

    fn extent(&self, v: VarId) -> Result<usize, Problem> {
        self.k
            .vars
            .get(v.0 as usize)
            .copied()
            .ok_or(Problem::UnknownVar(v))
    }

    fn dtype_of(&self, e: ExprId, user: usize) -> Result<DType, Problem> {
        if e.0 as usize >= self.k.exprs.len() {
            return Err(Problem::UnknownExpr(e));
        }
        if e.0 as usize >= user {
            return Err(Problem::OperandOrder { operand: e });
        }
        Ok(self.k.exprs[e.0 as usize].dtype)
    }

    /// Checks expression `i` (its operands are checked already) and records its free and
    /// bound variables.
    fn check_expr(&mut self, i: usize) -> Result<(), Problem> {
        let node = &self.k.exprs[i];
        let dtype = node.dtype;
        for x in node.expr.operands() {
            self.dtype_of(x, i)?;
        }
        let mut free = BTreeSet::new();
        let mut bound = BTreeSet::new();
        for x in node.expr.operands() {
            free.extend(self.free[x.0 as usize].iter().copied());
            bound.extend(self.bound[x.0 as usize].iter().copied());
        }
        let same = |what: &str, got: DType| -> Result<(), Problem> {
            if got.compute() == dtype.compute() {
                Ok(())
            } else {
                Err(Problem::Dtype {
                    what: what.into(),
                    expected: dtype.to_string(),
                    got,
                })
            }
        };
        let want = |what: &str, expected: &str, ok: bool, got: DType| -> Result<(), Problem> {
            if ok {
                Ok(())
            } else {
                Err(Problem::Dtype {
                    what: what.into(),
                    expected: expected.into(),
                    got,
                })
            }
        };
        let ty = |e: &ExprId| self.k.exprs[e.0 as usize].dtype;
        match &node.expr {
            Expr::Load { buffer, offset } => {
                let b = self.buffer(*buffer)?;
                want("a load", &b.dtype.to_string(), b.dtype == dtype, dtype)?;
                self.check_access(*buffer, offset)?;
                self.index_vars(offset, &mut free)?;
            }
            Expr::Const { .. } => {}
            Expr::Index { ix } => {
                want(
                    "an index value",
                    "i32, f32 or f64",
                    dtype.is_numeric(),
                    dtype,
                )?;
                self.index_span(ix)?;
                self.index_vars(ix, &mut free)?;
            }
            Expr::InBounds { conds } => {
                want("in_bounds", "bool", dtype == DType::Bool, dtype)?;
                for (ix, _, _) in conds {
                    self.index_span(ix)?;
                    self.index_vars(ix, &mut free)?;
                }
            }
            Expr::Unary { op, x } => {
                same("the operand", ty(x))?;
                let ok = dtype.is_float() || (op.allows_int() && dtype == DType::I32);
                want(op.name(), "a type it is defined for", ok, dtype)?;
            }
            Expr::Binary { op, a, b } => {
                same("the left operand", ty(a))?;
                same("the right operand", ty(b))?;
                let ok = dtype.is_float() || (op.allows_int() && dtype == DType::I32);
                want(op.name(), "a type it is defined for", ok, dtype)?;
            }
            Expr::Compare { op, a, b } => {
                want("a comparison", "bool", dtype == DType::Bool, dtype)?;
                let (ta, tb) = (ty(a), ty(b));
                want("the right operand", &ta.to_string(), ta == tb, tb)?;
                let ok = ta != DType::Bool || matches!(op.name(), "eq" | "ne");
                want(op.name(), "a numeric type", ok, ta)?;
            }
            Expr::Select { cond, a, b } => {
                want(
                    "a select condition",
                    "bool",
                    ty(cond) == DType::Bool,
                    ty(cond),
                )?;
                same("the first choice", ty(a))?;
                same("the second choice", ty(b))?;
            }
            Expr::Cast { .. } => {}
            Expr::Reduce { op, vars, body } => {
                same("the reduced body", ty(body))?;
                let name = match op {
                    ReduceOp::Sum => "sum",
                    ReduceOp::Max => "max",
                };
                if !dtype.is_numeric() {
                    return Err(Problem::BadReduction(format!(
                        "{name} of {dtype}, which has no identity"
                    )));
                }
                if vars.is_empty() {
                    return Err(Problem::BadReduction(format!("{name} over no variable")));
                }
                for v in vars {
                    self.extent(*v)?;
                    if !bound.insert(v.0) {
                        return Err(Problem::VarBoundTwice(*v));
                    }
                    free.remove(&v.0);
                }
            }
        }
        self.free.push(free);
        self.bound.push(bound);
        Ok(())
    }

    fn buffer(&self, b: BufferId) -> Result<&'a super::Buffer, Problem> {
        self.prog
            .buffers
            .get(b.0 as usize)
            .ok_or(Problem::UnknownBuffer(b))
    }

    /// Adds the variables `ix` reads (directly or through a data index) to `free`.
    fn index_vars(&self, ix: &Ix, free: &mut BTreeSet<u32>) -> Result<(), Problem> {
        let mut result = Ok(());
        ix.visit(&mut |v, e| {
            if let Some(v) = v {
                if let Err(p) = self.extent(v) {
                    result = Err(p);
                }
                free.insert(v.0);
            }
            if let Some(e) = e {
                // Checked by `check_expr` as an operand already: it exists and comes first.
                if let Some(f) = self.free.get(e.0 as usize) {
                    free.extend(f.iter().copied());
                }
            }
        });
        result
    }

    /// Checks that every offset of `ix` lies inside `buffer`.
    fn check_access(&self, buffer: BufferId, ix: &Ix) -> Result<(), Problem> {
        let len = *self
            .lens
            .get(buffer.0 as usize)
            .ok_or(Problem::UnknownBuffer(buffer))?;
        match self.index_span(ix)? {
            Span::Empty => Ok(()),
            Span::Unbounded => Err(Problem::UnclampedDataIndex { buffer }),
            Span::Range(lo, hi) if lo >= 0 && hi < len as i128 => Ok(()),
            Span::Range(lo, hi) => Err(Problem::OutOfBounds {
                buffer,
                lo,
                hi,
                len,
            }),
        }
    }

    /// The values `ix` can take, checking its divisions, remainders and clamps.
    fn index_span(&self, ix: &Ix) -> Result<Span, Problem> {
        let (mut lo, mut hi) = (i128::from(ix.constant), i128::from(ix.constant));
        let mut unbounded = false;
        for (atom, c) in &ix.terms {
            let c = i128::from(*c);
            match self.atom_span(atom)? {
                Span::Empty => return Ok(Span::Empty),
                Span::Unbounded => unbounded = true,
                Span::Range(a, b) => {
                    let (x, y) = (c.saturating_mul(a), c.saturating_mul(b));
                    lo = lo.saturating_add(x.min(y));
                    hi = hi.saturating_add(x.max(y));
                }
            }
        }
        Ok(if unbounded {
            Span::Unbounded
        } else {
            Span::Range(lo, hi)
        })
    }

    fn atom_span(&self, atom: &Atom) -> Result<Span, Problem> {
        Ok(match atom {
            Atom::Var(v) => match self.extent(*v)? {
                0 => Span::Empty,
                n => Span::Range(0, n as i128 - 1),
            },
            Atom::Div(e, d) | Atom::Rem(e, d) => {
                let is_div = matches!(atom, Atom::Div(..));
                let what = if is_div { "division" } else { "remainder" };
                if *d < 1 {
                    return Err(Problem::BadIndexOp(format!("{what} by {d} in ({e})")));
                }
                let d = i128::from(*d);
                match self.index_span(e)? {
                    Span::Empty => Span::Empty,
                    Span::Range(lo, _) if lo < 0 => {
                        return Err(Problem::BadIndexOp(format!(
                            "{what} of ({e}), which can be {lo}"
                        )))
                    }
                    Span::Range(lo, hi) if is_div => Span::Range(lo / d, hi / d),
                    Span::Range(lo, hi) if hi < d => Span::Range(lo, hi),
                    Span::Range(..) => Span::Range(0, d - 1),
                    Span::Unbounded => {
                        return Err(Problem::BadIndexOp(format!(
                            "{what} of the data-dependent ({e})"
                        )))
                    }
                }
            }
            Atom::Clamp(e, lo, hi) => {
                if lo > hi {
                    return Err(Problem::BadIndexOp(format!(
                        "clamp of ({e}) to the empty range {lo}..={hi}"
                    )));
                }
                match self.index_span(e)? {
                    Span::Empty => Span::Empty,
                    _ => Span::Range(i128::from(*lo), i128::from(*hi)),
                }
            }
            Atom::Value(x) => {
                let d = self
                    .k
                    .exprs
                    .get(x.0 as usize)
                    .ok_or(Problem::UnknownExpr(*x))?
                    .dtype;
                if d != DType::I32 {
                    return Err(Problem::Dtype {
                        what: format!("the data index {x}"),
                        expected: "i32".into(),
                        got: d,
                    });
                }
                Span::Unbounded
            }
        })
    }

    fn check_nest(
        &self,
        ni: usize,
        nest: &LoopNest,
        reduce_vars: &BTreeSet<u32>,
    ) -> Result<(), KernelIrError> {
        if let Some(g) = &nest.gemm {
            return self.check_gemm(g).map_err(|p| self.at_nest(ni, None, p));
        }
        let mut scope = BTreeSet::new();
        for v in &nest.vars {
            self.extent(*v).map_err(|p| self.at_nest(ni, None, p))?;
            if !scope.insert(v.0) || reduce_vars.contains(&v.0) {
                return Err(self.at_nest(ni, None, Problem::VarBoundTwice(*v)));
            }
        }
        for (si, s) in nest.stores.iter().enumerate() {
            let at = |p| self.at_nest(ni, Some(si), p);
            let b = self.buffer(s.buffer).map_err(at)?;
            if matches!(b.storage, Storage::Input { .. } | Storage::Constant { .. }) {
                return Err(at(Problem::ReadOnlyStore(s.buffer)));
            }
            let n = self.k.exprs.len();
            let value = self.dtype_of(s.value, n).map_err(at)?;
            if value != b.dtype {
                return Err(at(Problem::Dtype {
                    what: format!("the value stored into {}", s.buffer),
                    expected: b.dtype.to_string(),
                    got: value,
                }));
            }
            if s.accumulate && !b.dtype.is_numeric() {
                return Err(at(Problem::Dtype {
                    what: "an accumulating store".into(),
                    expected: "numeric".into(),
                    got: b.dtype,
                }));
            }
            let mut used = self.free[s.value.0 as usize].clone();
            if let Some(g) = s.guard {
                let d = self.dtype_of(g, n).map_err(at)?;
                if d != DType::Bool {
                    return Err(at(Problem::Dtype {
                        what: "a store guard".into(),
                        expected: "bool".into(),
                        got: d,
                    }));
                }
                used.extend(self.free[g.0 as usize].iter().copied());
            }
            self.check_access(s.buffer, &s.offset).map_err(at)?;
            self.index_vars(&s.offset, &mut used).map_err(at)?;
            if let Some(v) = used.difference(&scope).next() {
                return Err(at(Problem::UnboundVar(VarId(*v))));
            }
            if nest.parallel {
                self.check_disjoint(nest, s.buffer, &s.offset).map_err(at)?;
            }
        }
        Ok(())
    }

    /// A store of a parallel nest: different values of the outermost variable write disjoint
    /// elements.
    fn check_disjoint(&self, nest: &LoopNest, buffer: BufferId, ix: &Ix) -> Result<(), Problem> {
        let Some(&v0) = nest.vars.first() else {
            return Ok(());
        };
        if self.extent(v0)? <= 1 {
            return Ok(());
        }
        let overlap = Err(Problem::ParallelOverlap { buffer });
        let mut stride: i128 = 0;
        let mut rest = Ix::constant(ix.constant);
        for (atom, c) in &ix.terms {
            match atom {
                Atom::Var(v) if *v == v0 => stride += i128::from(*c),
                other => {
                    let mut uses = false;
                    Ix::atom(other.clone()).visit(&mut |v, e| {
                        uses |= v == Some(v0)
                            || e.is_some_and(|e| {
                                self.free
                                    .get(e.0 as usize)
                                    .is_some_and(|f| f.contains(&v0.0))
                            });
                    });
                    if uses {
                        return overlap;
                    }
                    rest.terms.push((other.clone(), *c));
                }
            }
        }
        match self.index_span(&rest)? {
            Span::Empty => Ok(()),
            Span::Range(lo, hi) if stride != 0 && hi - lo < stride.abs() => Ok(()),
            _ => overlap,
        }
    }

    fn check_gemm(&self, g: &super::GemmNest) -> Result<(), Problem> {
        let d = &g.desc;
        if d.m < 0 || d.n < 0 || d.k < 0 || d.batch.iter().any(|&e| e < 1) {
            return Err(Problem::BadGemm(format!(
                "with negative sizes {}x{}x{} or a batch extent below 1",
                d.m, d.n, d.k
            )));
        }
        if d.unit < 1 || !(0..=1).contains(&d.split_rows) {
            return Err(Problem::BadGemm(format!(
                "split into units of {} (split_rows {})",
                d.unit, d.split_rows
            )));
        }
        // (buffer, base, [(extent, stride)]) of A (m x k), B (k x n) and C (m x n).
        let operands = [
            ("A", g.a, [(d.m, d.a[0]), (d.k, d.a[1])], 0),
            ("B", g.b, [(d.k, d.b[0]), (d.n, d.b[1])], 1),
            ("C", g.c, [(d.m, d.c[0]), (d.n, d.c[1])], 2),
        ];
        // The product accumulates in f32. An f32 product's buffers are all f32; a 16-bit
        // product's are its 16-bit type or f32, as `desc.wide` says.
        let types: Vec<DType> = [g.a.0, g.b.0, g.c.0]
            .iter()
            .map(|&b| self.buffer(b).map(|x| x.dtype))
            .collect::<Result<_, _>>()?;
        let half = types.iter().copied().find(|d| d.is_half());
        if let Some(step) = &g.step {
            if let Some(h) = half {
                return Err(Problem::BadGemm(format!(
                    "steps C in place but is a {h} product (only f32 products step)"
                )));
            }
            if let super::Scalar::Load { buffer, offset } = step.scale {
                let dtype = self.buffer(buffer)?.dtype;
                let len = self.lens[buffer.0 as usize];
                if dtype != DType::F32 || offset < 0 || offset as u128 >= len as u128 {
                    return Err(Problem::BadGemm(format!(
                        "steps by element {offset} of {buffer} ({dtype}, {len} elements), not \
                         an f32 element inside it"
                    )));
                }
            }
        }
        for (name, (buffer, base), dims, which) in operands {
            let dtype = types[which];
            let wide = d.wide[which];
            let ok = match half {
                None => dtype == DType::F32,
                Some(h) => (dtype == h && wide == 0) || (dtype == DType::F32 && wide == 1),
            };
            if !ok {
                return Err(Problem::BadGemm(format!(
                    "operand {name} ({buffer}) is {dtype} (wide flag {wide}), not f32 or the \
                     product's 16-bit type{}",
                    half.map_or(String::new(), |h| format!(" {h}"))
                )));
            }
            let mut all = dims.to_vec();
            all.extend(
                d.batch
                    .iter()
                    .zip(&d.batch_strides)
                    .map(|(&e, s)| (e, s[which])),
            );
            if all.iter().any(|&(e, _)| e == 0) {
                continue;
            }
            let (mut lo, mut hi) = (i128::from(base), i128::from(base));
            for (e, s) in all {
                let reach = i128::from(e - 1) * i128::from(s);
                lo += reach.min(0);
                hi += reach.max(0);
            }
            let len = self.lens[buffer.0 as usize];
            if lo < 0 || hi >= len as i128 {
                return Err(Problem::OutOfBounds {
                    buffer,
                    lo,
                    hi,
                    len,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_of_index_maps() {
        let prog = Program::default();
        let k = Kernel {
            name: "k".into(),
            group: 0,
            kind: adjoint_opt::GroupKind::Elementwise,
            vars: vec![4, 0, 6],
            exprs: Vec::new(),
            nests: Vec::new(),
        };
        let c = KernelCheck::new(&prog, &[], &k);
        let (v0, v1, v2) = (Ix::var(VarId(0)), Ix::var(VarId(1)), Ix::var(VarId(2)));
        assert_eq!(c.index_span(&v0.scale(6).add(&v2)), Ok(Span::Range(0, 23)));
        assert_eq!(c.index_span(&v0.scale(-1).offset(3)), Ok(Span::Range(0, 3)));
        assert_eq!(c.index_span(&v0.add(&v1)), Ok(Span::Empty));
        let div = Ix::atom(Atom::Div(Box::new(v2.clone()), 4));
        assert_eq!(c.index_span(&div), Ok(Span::Range(0, 1)));
        let neg = Ix::atom(Atom::Rem(Box::new(v2.offset(-1)), 4));
        assert!(matches!(c.index_span(&neg), Err(Problem::BadIndexOp(_))));
        let by_zero = Ix::atom(Atom::Div(Box::new(v2.clone()), 0));
        assert!(matches!(
            c.index_span(&by_zero),
            Err(Problem::BadIndexOp(_))
        ));
        let clamp = Ix::atom(Atom::Clamp(Box::new(v2.scale(100)), 2, 5));
        assert_eq!(c.index_span(&clamp), Ok(Span::Range(2, 5)));
        let huge = v0.scale(i64::MAX).add(&v2.scale(i64::MAX));
        assert_eq!(
            c.index_span(&huge),
            Ok(Span::Range(0, 8 * i128::from(i64::MAX)))
        );
    }
}
