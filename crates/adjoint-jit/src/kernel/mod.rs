//! The kernel IR: what one compiled step computes, as loop nests over buffers.
//!
//! A [`Program`] holds the step's buffers (arena slices, parameters, inputs, constant data)
//! and one [`Kernel`] per fusion group, in schedule order. A kernel is one or more
//! [`LoopNest`]s; each nest iterates over the shape of the values it stores and computes every
//! element from a small expression DAG ([`Expr`]) whose loads address their buffers through
//! [`Ix`] index maps. Reductions are expressions with their own loop variables
//! ([`Expr::Reduce`]); a matmul is a reduction of a product over its contraction variable.
//!
//! The IR is printable, so that a user can read what will be generated:
//!
//! ```text
//! kernel k3 (group 3, matmul)
//!   nest 0 over v0<8, v1<16 [parallel]
//!     e0 = load b2[32*v0 + v2]            : f32
//!     e1 = load b1[16*v2 + v1]            : f32
//!     e2 = mul e0, e1                     : f32
//!     e3 = reduce_sum over v2<32 of e2    : f32
//!     b4[16*v0 + v1] = e3
//! ```

pub mod epilogue;
pub mod gemm;
pub mod ix;
pub mod lower;
mod split;
pub mod verify;

use crate::gemm::GemmDesc;
use adjoint_ir::{AllReduceKind, BinaryOp, CompareOp, DType, ReduceOp, Shape, UnaryOp};
use adjoint_opt::GroupKind;
pub use ix::{Atom, Ix};
use smallvec::SmallVec;
use std::fmt;

/// A loop variable of a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VarId(pub u32);

/// An expression of a kernel (an index into [`Kernel::exprs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExprId(pub u32);

/// A buffer of the step (an index into [`Program::buffers`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BufferId(pub u32);

impl fmt::Display for VarId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

impl fmt::Display for ExprId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "e{}", self.0)
    }
}

impl fmt::Display for BufferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b{}", self.0)
    }
}

/// Where a buffer's storage is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Storage {
    /// At a byte offset of the step's arena.
    Arena {
        /// Byte offset.
        offset: usize,
    },
    /// The runtime-owned storage of parameter number `index` (in `Graph::parameters` order).
    Parameter {
        /// Parameter number.
        index: usize,
    },
    /// The tensor fed for input number `index` (in `Graph::inputs` order); read-only.
    Input {
        /// Input number.
        index: usize,
    },
    /// Constant data number `index` of [`Program::constants`]; read-only.
    Constant {
        /// Constant number.
        index: usize,
    },
}

/// A dense row-major buffer the step reads or writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    /// A name for dumps (the graph node it holds).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Shape,
    /// Where it lives.
    pub storage: Storage,
}

/// One node of a kernel's expression DAG.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Expr {
    /// The element of `buffer` at element offset `offset`.
    Load {
        /// The buffer read.
        buffer: BufferId,
        /// Element offset (row-major linear index).
        offset: Ix,
    },
    /// A constant, stored as the bits of its `f64` value (exact for every dtype).
    Const {
        /// `f64::to_bits` of the value.
        bits: u64,
    },
    /// The value of an index expression, converted to the node's dtype (`iota`).
    Index {
        /// The index.
        ix: Ix,
    },
    /// `bool`: every `lo <= ix < hi` holds (the guard of padding, concatenation and gathers).
    InBounds {
        /// The conditions `(ix, lo, hi)`.
        conds: Vec<(Ix, i64, i64)>,
    },
    /// An elementwise function of one operand.
    Unary {
        /// Which.
        op: UnaryOp,
        /// Operand.
        x: ExprId,
    },
    /// An elementwise function of two operands.
    Binary {
        /// Which.
        op: BinaryOp,
        /// Left operand.
        a: ExprId,
        /// Right operand.
        b: ExprId,
    },
    /// A comparison (`bool` result).
    Compare {
        /// Which.
        op: CompareOp,
        /// Left operand.
        a: ExprId,
        /// Right operand.
        b: ExprId,
    },
    /// `cond ? a : b`.
    Select {
        /// A `bool` expression.
        cond: ExprId,
        /// Value if true.
        a: ExprId,
        /// Value if false.
        b: ExprId,
    },
    /// Conversion of `x` to the node's dtype (the rules of `Op::Cast`).
    Cast {
        /// Operand.
        x: ExprId,
    },
    /// A reduction of `body` over the loop variables `vars` (innermost last).
    Reduce {
        /// Sum or max.
        op: ReduceOp,
        /// The reduced variables, outermost first.
        vars: Vec<VarId>,
        /// The reduced expression.
        body: ExprId,
    },
}

impl Expr {
    /// Every expression this one reads: its value operands, then the data expressions inside
    /// its index expressions (a gather's or scatter's index). The one walk over an
    /// expression's operands; [`Expr::map_operands`] is its rewriting twin.
    pub fn operands(&self) -> SmallVec<[ExprId; 3]> {
        let mut out = SmallVec::new();
        let from_ix = |ix: &Ix, out: &mut SmallVec<[ExprId; 3]>| {
            ix.visit(&mut |_, e| out.extend(e));
        };
        match self {
            Expr::Load { offset: ix, .. } | Expr::Index { ix } => from_ix(ix, &mut out),
            Expr::InBounds { conds } => {
                for (ix, _, _) in conds {
                    from_ix(ix, &mut out);
                }
            }
            Expr::Const { .. } => {}
            Expr::Unary { x, .. } | Expr::Cast { x } => out.push(*x),
            Expr::Binary { a, b, .. } | Expr::Compare { a, b, .. } => out.extend([*a, *b]),
            Expr::Select { cond, a, b } => out.extend([*cond, *a, *b]),
            Expr::Reduce { body, .. } => out.push(*body),
        }
        out
    }

    /// The same expression with every operand `x` (as [`Expr::operands`] lists them)
    /// replaced by `f(x)`.
    pub fn map_operands(&self, f: &mut dyn FnMut(ExprId) -> ExprId) -> Expr {
        match self {
            Expr::Load { buffer, offset } => Expr::Load {
                buffer: *buffer,
                offset: offset.map_values(f),
            },
            Expr::Index { ix } => Expr::Index {
                ix: ix.map_values(f),
            },
            Expr::InBounds { conds } => Expr::InBounds {
                conds: conds
                    .iter()
                    .map(|(ix, lo, hi)| (ix.map_values(f), *lo, *hi))
                    .collect(),
            },
            Expr::Const { bits } => Expr::Const { bits: *bits },
            Expr::Unary { op, x } => Expr::Unary { op: *op, x: f(*x) },
            Expr::Cast { x } => Expr::Cast { x: f(*x) },
            Expr::Binary { op, a, b } => Expr::Binary {
                op: *op,
                a: f(*a),
                b: f(*b),
            },
            Expr::Compare { op, a, b } => Expr::Compare {
                op: *op,
                a: f(*a),
                b: f(*b),
            },
            Expr::Select { cond, a, b } => Expr::Select {
                cond: f(*cond),
                a: f(*a),
                b: f(*b),
            },
            Expr::Reduce { op, vars, body } => Expr::Reduce {
                op: *op,
                vars: vars.clone(),
                body: f(*body),
            },
        }
    }
}

/// An expression with its element type.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExprNode {
    /// The expression.
    pub expr: Expr,
    /// Its element type.
    pub dtype: DType,
}

/// A write of one value per iteration of a loop nest.
#[derive(Clone, Debug, PartialEq)]
pub struct Store {
    /// The buffer written.
    pub buffer: BufferId,
    /// Element offset.
    pub offset: Ix,
    /// The value.
    pub value: ExprId,
    /// Add to the element instead of overwriting it (scatter-add).
    pub accumulate: bool,
    /// A `bool` expression: store only where it is true.
    pub guard: Option<ExprId>,
}

impl Store {
    /// A plain write of `value` at `offset` of `buffer`: no accumulation, no guard.
    pub fn write(buffer: BufferId, offset: Ix, value: ExprId) -> Store {
        Store {
            buffer,
            offset,
            value,
            accumulate: false,
            guard: None,
        }
    }
}

/// A loop nest: one loop per variable (outermost first), and stores in its body.
#[derive(Clone, Debug, PartialEq)]
pub struct LoopNest {
    /// The loop variables, outermost first.
    pub vars: Vec<VarId>,
    /// The stores of each iteration, in order.
    pub stores: Vec<Store>,
    /// Iterations of the outermost loop may run on different threads.
    pub parallel: bool,
    /// A matmul run by the host kernel instead of generated loops (then `vars` and `stores`
    /// are empty; the outermost range is the product's units, [`GemmDesc::units`]).
    pub gemm: Option<GemmNest>,
    /// An all-reduce run by the host's collective instead of generated loops (then `vars` and
    /// `stores` are empty and the nest runs once, on the step's thread).
    pub all_reduce: Option<AllReduceNest>,
}

impl LoopNest {
    /// The position in [`LoopNest::vars`] of the loop a call over `begin..end` bounds (the
    /// loop split over threads): the outermost loop of more than one iteration, the loops
    /// outside it running once each (a column sum `[1, 1, 512]` of a `[8, 64, 512]` operand
    /// splits its 512 columns, not its single row). 0 when every loop runs once. `extents`
    /// are the kernel's variable extents ([`Kernel::vars`]).
    pub fn split_position(&self, extents: &[usize]) -> usize {
        self.vars
            .iter()
            .position(|v| extents[v.0 as usize] > 1)
            .unwrap_or(0)
    }

    /// A generated nest over `vars` with `stores` in its body.
    pub fn generated(vars: Vec<VarId>, stores: Vec<Store>, parallel: bool) -> LoopNest {
        LoopNest {
            vars,
            stores,
            parallel,
            gemm: None,
            all_reduce: None,
        }
    }
}

/// `dst = all_reduce(src)` over the replicas of a data-parallel group, run by the host
/// ([`crate::collective`]): both are dense buffers of `elements` elements.
#[derive(Clone, Debug, PartialEq)]
pub struct AllReduceNest {
    /// The operand's buffer.
    pub src: BufferId,
    /// The result's buffer.
    pub dst: BufferId,
    /// Elements of each.
    pub elements: usize,
    /// Sum or mean.
    pub kind: AllReduceKind,
    /// The replica count the graph was built for.
    pub replicas: usize,
}

/// A matmul `C = A·B` that the host kernel ([`crate::gemm`]) computes: the three operands
/// are read and written in place through the element strides of `desc`.
#[derive(Clone, Debug, PartialEq)]
pub struct GemmNest {
    /// `A`'s buffer and the element offset of `A[0, 0]`.
    pub a: (BufferId, i64),
    /// `B`'s buffer and the element offset of `B[0, 0]`.
    pub b: (BufferId, i64),
    /// `C`'s buffer and the element offset of `C[0, 0]`.
    pub c: (BufferId, i64),
    /// Sizes, strides and the split into units.
    pub desc: GemmDesc,
    /// `Some`: the product lands as a step of `C` in place, `C = C + scale·(A·B)`
    /// ([`crate::kernel::epilogue::fold_step`]) instead of overwriting it.
    pub step: Option<GemmStep>,
}

/// The scale of a [`GemmNest`] that steps `C`: `scale` or its negation (an SGD update
/// `w − lr·g` steps `w` by `−lr`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmStep {
    /// Where the scale comes from.
    pub scale: Scalar,
    /// Step by `−scale` rather than `scale`.
    pub negate: bool,
}

/// An `f32` scalar a nest reads once: a constant, or one element of a buffer (a fed learning
/// rate).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    /// A constant.
    Const(f32),
    /// The element at element offset `offset` of `buffer`.
    Load {
        /// The buffer read.
        buffer: BufferId,
        /// Element offset.
        offset: i64,
    },
}

impl fmt::Display for GemmStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.negate { "-" } else { "" };
        match self.scale {
            Scalar::Const(x) => write!(f, "{sign}{x:?}"),
            Scalar::Load { buffer, offset } => write!(f, "{sign}{buffer}[{offset}]"),
        }
    }
}

impl GemmNest {
    /// The 16-bit type (`bf16`, `f16`) of a 16-bit product: that of any of its buffers that
    /// is not `f32` (the verifier checks there is one such type). `None` for an `f32` product.
    pub fn half_type(&self, prog: &Program) -> Option<DType> {
        [self.a.0, self.b.0, self.c.0]
            .iter()
            .map(|b| prog.buffers[b.0 as usize].dtype)
            .find(|d| d.is_half())
    }
}

/// The code of one fusion group.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    /// Name in dumps and in the module (`k3_matmul`).
    pub name: String,
    /// Index of the group in the schedule.
    pub group: usize,
    /// The group's kind.
    pub kind: GroupKind,
    /// Extent of every loop variable.
    pub vars: Vec<usize>,
    /// The expression DAG (operands before users).
    pub exprs: Vec<ExprNode>,
    /// The loop nests, run in order.
    pub nests: Vec<LoopNest>,
}

/// Constant tensor data the step reads (non-uniform literals).
#[derive(Clone, Debug, PartialEq)]
pub struct ConstantData {
    /// Element type.
    pub dtype: DType,
    /// Values, row-major.
    pub values: Vec<f64>,
}

/// A whole step in kernel IR.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Program {
    /// Every buffer a kernel touches.
    pub buffers: Vec<Buffer>,
    /// Constant data.
    pub constants: Vec<ConstantData>,
    /// Kernels in execution order.
    pub kernels: Vec<Kernel>,
    /// Bytes of the arena: the memory plan's arena plus kernel-local scratch.
    pub arena_bytes: usize,
    /// How many parameters the graph has (each has a buffer of [`Storage::Parameter`]).
    pub params: usize,
    /// How many inputs the graph has (each has a buffer of [`Storage::Input`]).
    pub inputs: usize,
}

impl Kernel {
    /// The node of `e`.
    pub fn expr(&self, e: ExprId) -> &ExprNode {
        &self.exprs[e.0 as usize]
    }

    /// Every expression the stores of `nest` read, directly or through operands (reduction
    /// bodies included), each once.
    pub fn exprs_of(&self, nest: &LoopNest) -> Vec<ExprId> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut stack: Vec<ExprId> = nest.stores.iter().map(|s| s.value).collect();
        while let Some(e) = stack.pop() {
            if seen.insert(e) {
                stack.extend(self.expr(e).expr.operands());
                out.push(e);
            }
        }
        out
    }

    /// Multiply-adds (or comparable element operations) of the kernel: the product of the loop
    /// extents of every nest, times the extents of the reductions it contains.
    pub fn work(&self, nest: &LoopNest) -> usize {
        if let Some(g) = &nest.gemm {
            let d = &g.desc;
            let batch: i64 = d.batch.iter().product();
            return (batch * d.m * d.n * d.k.max(1)).max(0) as usize;
        }
        if let Some(a) = &nest.all_reduce {
            return a.elements;
        }
        let outer: usize = nest.vars.iter().map(|v| self.vars[v.0 as usize]).product();
        let inner: usize = nest
            .stores
            .iter()
            .map(|s| self.reduce_work(s.value))
            .max()
            .unwrap_or(1);
        outer.saturating_mul(inner)
    }

    fn reduce_work(&self, e: ExprId) -> usize {
        let expr = &self.expr(e).expr;
        let inner = expr
            .operands()
            .into_iter()
            .map(|x| self.reduce_work(x))
            .max()
            .unwrap_or(1);
        match expr {
            Expr::Reduce { vars, .. } => {
                let n: usize = vars.iter().map(|v| self.vars[v.0 as usize]).product();
                n.saturating_mul(inner)
            }
            _ => inner,
        }
    }
}

fn write_var_list(f: &mut fmt::Formatter<'_>, k: &Kernel, vars: &[VarId]) -> fmt::Result {
    for (i, v) in vars.iter().enumerate() {
        if i > 0 {
            write!(f, ", ")?;
        }
        write!(f, "{v}<{}", k.vars[v.0 as usize])?;
    }
    Ok(())
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "kernel {} (group {}, {:?})",
            self.name, self.group, self.kind
        )?;
        for (n, nest) in self.nests.iter().enumerate() {
            if let Some(g) = &nest.gemm {
                let d = &g.desc;
                let batch: Vec<String> = d
                    .batch
                    .iter()
                    .zip(&d.batch_strides)
                    .filter(|(e, _)| **e > 1)
                    .map(|(e, s)| format!("{e} (strides {}, {}, {})", s[0], s[1], s[2]))
                    .collect();
                writeln!(
                    f,
                    "  nest {n} host gemm {}x{}x{}{}{} [{} units of {} {}]",
                    d.m,
                    d.n,
                    d.k,
                    if batch.is_empty() { "" } else { " batch " },
                    batch.join(" x "),
                    d.units(),
                    d.unit,
                    if d.split_rows != 0 { "rows" } else { "columns" }
                )?;
                let c = format!("{}[{} + {}*i + {}*j]", g.c.0, g.c.1, d.c[0], d.c[1]);
                let lands = match &g.step {
                    None => format!("{c} ="),
                    Some(s) => format!("{c} = {c} + ({s}) *"),
                };
                writeln!(
                    f,
                    "    {lands} {}[{} + {}*i + {}*k] . {}[{} + {}*k + {}*j]",
                    g.a.0, g.a.1, d.a[0], d.a[1], g.b.0, g.b.1, d.b[0], d.b[1]
                )?;
                continue;
            }
            if let Some(a) = &nest.all_reduce {
                writeln!(
                    f,
                    "  nest {n} host {} over {} replicas: {} = {} ({} elements)",
                    a.kind.op_name(),
                    a.replicas,
                    a.dst,
                    a.src,
                    a.elements
                )?;
                continue;
            }
            write!(f, "  nest {n} over ")?;
            write_var_list(f, self, &nest.vars)?;
            writeln!(f, "{}", if nest.parallel { " [parallel]" } else { "" })?;
            // Print the expressions this nest uses, in DAG order.
            let mut used = vec![false; self.exprs.len()];
            let mut stack: Vec<ExprId> = Vec::new();
            for s in &nest.stores {
                stack.push(s.value);
                stack.extend(s.guard);
                s.offset.visit(&mut |_, e| stack.extend(e));
            }
            while let Some(e) = stack.pop() {
                if !std::mem::replace(&mut used[e.0 as usize], true) {
                    stack.extend(self.expr(e).expr.operands());
                }
            }
            for (i, node) in self.exprs.iter().enumerate() {
                if !used[i] {
                    continue;
                }
                let text = ExprText(self, &node.expr).to_string();
                writeln!(f, "    e{i} = {text:<40} : {}", node.dtype)?;
            }
            for s in &nest.stores {
                let op = if s.accumulate { "+=" } else { "=" };
                write!(f, "    {}[{}] {op} {}", s.buffer, s.offset, s.value)?;
                match s.guard {
                    Some(g) => writeln!(f, " if {g}")?,
                    None => writeln!(f)?,
                }
            }
        }
        Ok(())
    }
}

struct ExprText<'a>(&'a Kernel, &'a Expr);

impl fmt::Display for ExprText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Expr::Load { buffer, offset } => write!(f, "load {buffer}[{offset}]"),
            Expr::Const { bits } => write!(f, "const {}", f64::from_bits(*bits)),
            Expr::Index { ix } => write!(f, "index {ix}"),
            Expr::InBounds { conds } => {
                write!(f, "in_bounds")?;
                for (ix, lo, hi) in conds {
                    write!(f, " {lo}<={ix}<{hi}")?;
                }
                Ok(())
            }
            Expr::Unary { op, x } => write!(f, "{} {x}", op.name()),
            Expr::Binary { op, a, b } => write!(f, "{} {a}, {b}", op.name()),
            Expr::Compare { op, a, b } => write!(f, "{} {a}, {b}", op.name()),
            Expr::Select { cond, a, b } => write!(f, "select {cond}, {a}, {b}"),
            Expr::Cast { x } => write!(f, "cast {x}"),
            Expr::Reduce { op, vars, body } => {
                let name = match op {
                    ReduceOp::Sum => "reduce_sum",
                    ReduceOp::Max => "reduce_max",
                };
                write!(f, "{name} over ")?;
                write_var_list(f, self.0, vars)?;
                write!(f, " of {body}")
            }
        }
    }
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "arena {} bytes", self.arena_bytes)?;
        for (i, b) in self.buffers.iter().enumerate() {
            let at = match b.storage {
                Storage::Arena { offset } => format!("arena+{offset}"),
                Storage::Parameter { index } => format!("parameter {index}"),
                Storage::Input { index } => format!("input {index}"),
                Storage::Constant { index } => format!("constant {index}"),
            };
            writeln!(f, "b{i} {}{} \"{}\" at {at}", b.dtype, b.shape, b.name)?;
        }
        for k in &self.kernels {
            write!(f, "{k}")?;
        }
        Ok(())
    }
}
