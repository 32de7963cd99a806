//! The decision step: what code a nest gets, decided from the kernel alone, before any code is
//! emitted. The emitter follows these plans and decides nothing itself.

use super::row_cache::{row_caches, RowCache};
use crate::kernel::{Expr, ExprId, Ix, Kernel, LoopNest, VarId};
use crate::math::MathOptions;
use adjoint_ir::{BinaryOp, DType, ReduceOp, UnaryOp};
use smallvec::SmallVec;
use std::collections::HashSet;

/// The loop variables an expression depends on, sorted.
pub type Deps = SmallVec<[VarId; 8]>;

/// What is decided once per kernel: the dependencies of every expression and how each
/// reduction accumulates.
#[derive(Clone, Debug)]
pub struct KernelPlan {
    /// The free variables of each expression, indexed by [`ExprId`] (a reduction binds its own).
    pub deps: Vec<Deps>,
    /// For each expression that is a reduction, how it accumulates; `None` for the others.
    pub reduces: Vec<Option<ReducePlan>>,
    /// Whether the lane loops may compute `exp` and `tanh` a chunk of a row at a time with
    /// the host routines of [`crate::math::host`] ([`NestPlan::wide`]); set where they run on
    /// wider vectors than the inline code (AVX-512, AVX2).
    pub host_math: bool,
}

/// How one reduction accumulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReducePlan {
    /// The factors `(a, b)` to accumulate with one `fma` each step, when the body is a float
    /// product of a sum and the target has FMA.
    pub fma: Option<(ExprId, ExprId)>,
    /// In a scalar context, accumulate along the innermost reduced variable this many lanes at
    /// a time and combine the lanes at the end, because the body reads memory contiguously
    /// along it. `None`: one element per step.
    pub along_axis: Option<AlongAxis>,
}

/// A reduction vectorized along its own innermost reduced variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlongAxis {
    /// The reduced variable the vector runs along.
    pub var: VarId,
    /// Lanes per step (a native vector of the reduction's dtype).
    pub width: u8,
}

/// What is decided for one nest: the shape of its loops and register tile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NestPlan {
    /// Lanes of the lane loop's vector body; 1: scalar only.
    pub width: u8,
    /// Rows (values of the next-to-innermost variable) computed together by a tile; 1: none.
    pub rows: usize,
    /// Vectors per row in the unrolled lane loop; 1: not unrolled.
    pub unroll: usize,
    /// The reductions the stores read outside any other reduction, sorted: a tile of several
    /// points runs them in one loop, one accumulator per distinct point. Hoisted ones excepted.
    pub tile_reductions: Vec<ExprId>,
    /// Reductions that do not depend on the lane variable, each computed once where its last
    /// loop variable is bound, before the loops inside it (a softmax row's max and sum before
    /// the row's elements), in dependency order.
    pub hoisted: Vec<Hoist>,
    /// For each store of the nest, the loop depth it runs at when it does not depend on the
    /// lane variable (a row-level output stored once per row); `None`: at every element.
    pub store_depth: Vec<Option<usize>>,
    /// Row reductions whose values the lane loop reads back instead of computing them again.
    pub row_caches: Vec<RowCache>,
    /// `f32` `exp` and `tanh` expressions of the lane loop computed by a host routine
    /// ([`crate::math::host`]) over a chunk of the row at a time, in dependency order: for each
    /// chunk the emitter stores the operand's values on the stack, calls the routine on them,
    /// and the lane loop reads the results back (see `wide.rs`). Empty unless
    /// [`KernelPlan::host_math`], the lane loop is a vector loop of at least [`WIDE_MIN_LANES`]
    /// elements, and the nest has no register tile.
    pub wide: Vec<ExprId>,
}

/// The shortest lane loop whose `exp` and `tanh` go to the host routines: a call and two
/// passes over a stack buffer per chunk cost about what the inline code takes for a few
/// elements.
pub const WIDE_MIN_LANES: usize = 64;

/// A reduction computed outside the innermost loops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hoist {
    /// How many of the nest's loops enclose it (0: before the outermost loop).
    pub depth: usize,
    /// The reduction.
    pub expr: ExprId,
}

impl KernelPlan {
    /// Decides the per-kernel facts of `k` for math options `m`.
    pub fn new(k: &Kernel, m: MathOptions) -> Self {
        let deps = dependencies(k);
        let reduces = (0..k.exprs.len())
            .map(|i| reduce_plan(k, &deps, m, ExprId(i as u32)))
            .collect();
        KernelPlan {
            deps,
            reduces,
            host_math: false,
        }
    }

    /// This plan with [`KernelPlan::host_math`] set to `on`.
    pub fn with_host_math(mut self, on: bool) -> Self {
        self.host_math = on;
        self
    }

    /// True if expression `e` depends on loop variable `v`.
    pub fn uses(&self, e: ExprId, v: VarId) -> bool {
        self.deps[e.0 as usize].contains(&v)
    }

    /// The stride of `ix` along `v`, if it is affine in `v`.
    pub fn stride(&self, ix: &Ix, v: VarId) -> Option<i64> {
        ix.stride_of(v, &|e, v| self.uses(e, v))
    }

    /// The plan of reduction `e`.
    ///
    /// # Panics
    /// If `e` is not a reduction (a bug in the emitter).
    pub fn reduce(&self, e: ExprId) -> ReducePlan {
        self.reduces[e.0 as usize].expect("a reduction's plan")
    }

    /// Decides the loops and tile of `nest`.
    pub fn nest(&self, k: &Kernel, nest: &LoopNest) -> NestPlan {
        let hoisted = self.hoisted(k, nest);
        let store_depth: Vec<Option<usize>> = nest
            .stores
            .iter()
            .map(|s| self.store_depth(nest, s))
            .collect();
        let is_hoisted = |e: ExprId| hoisted.iter().any(|h| h.expr == e);
        let mut tile_reductions: Vec<ExprId> = Vec::new();
        for (s, d) in nest.stores.iter().zip(&store_depth) {
            if d.is_none() {
                tile_reductions.extend(
                    top_reduces(k, s.value)
                        .into_iter()
                        .filter(|&r| !is_hoisted(r)),
                );
            }
        }
        tile_reductions.sort();
        tile_reductions.dedup();
        let Some(&lane_var) = nest.vars.last() else {
            return NestPlan {
                width: 1,
                rows: 1,
                unroll: 1,
                tile_reductions,
                hoisted,
                store_depth: vec![None; nest.stores.len()],
                row_caches: Vec::new(),
                wide: Vec::new(),
            };
        };
        let width = self.width(k, nest, lane_var, &is_hoisted, &store_depth);
        // A row tile would evaluate hoisted values at rows other than the one they were
        // computed for: no tile in nests with hoisted reductions.
        let tiled = width > 1
            && !tile_reductions.is_empty()
            && hoisted.is_empty()
            && store_depth.iter().all(Option::is_none);
        // A row variable of one iteration (a column sum's kept axis) has no rows to tile.
        let row_extent = match nest.vars.len() {
            0 | 1 => 1,
            n => k.vars[nest.vars[n - 2].0 as usize],
        };
        let rows = if tiled && row_extent >= 2 { 4 } else { 1 };
        // Two vectors per step: in a register tile, to reuse each loaded operand; in an
        // elementwise body with a transcendental function, to halve the loop's index
        // arithmetic and branches per element, which compete with the function's long
        // instruction sequence for the vector ports (a sixth of `exp`'s time on Sapphire
        // Rapids). Other elementwise bodies gain too, but not enough to double their code.
        let elementwise = width > 1 && tile_reductions.is_empty();
        let lane_extent = k.vars[lane_var.0 as usize];
        let unroll = if (rows > 1 || (elementwise && self.has_transcendental(k, nest)))
            && lane_extent >= 2 * width as usize
        {
            2
        } else if tiled && rows == 1 && lane_extent >= COLUMN_TILE * width as usize {
            // Reductions without a row tile (a bias gradient: a sum over rows for each
            // column): several vectors of columns per step, each its own accumulator, so
            // the steps of one column's sum do not wait on each other's `fadd`, and each
            // row's adjacent lines are read together ([`COLUMN_TILE`]).
            COLUMN_TILE
        } else {
            1
        };
        let lane_exprs = self.lane_loop_exprs(k, nest, &is_hoisted, &store_depth);
        let row_caches = row_caches(self, k, nest, &hoisted, &lane_exprs);
        let wide = if self.host_math
            && width == 4
            && rows == 1
            && tile_reductions.is_empty()
            && lane_extent >= WIDE_MIN_LANES
        {
            lane_exprs
                .iter()
                .copied()
                .filter(|&e| {
                    let node = k.expr(e);
                    let function = matches!(
                        node.expr,
                        Expr::Unary {
                            op: UnaryOp::Exp | UnaryOp::Tanh,
                            ..
                        }
                    );
                    function
                        && node.dtype == DType::F32
                        && self.uses(e, lane_var)
                        && !row_caches.iter().any(|c| c.lane_expr == e)
                })
                .collect()
        } else {
            Vec::new()
        };
        NestPlan {
            width,
            rows,
            unroll,
            tile_reductions,
            hoisted,
            store_depth,
            row_caches,
            wide,
        }
    }

    /// The expressions the lane loop of `nest` evaluates: those its per-element stores read,
    /// not through a hoisted reduction.
    fn lane_loop_exprs(
        &self,
        k: &Kernel,
        nest: &LoopNest,
        is_hoisted: &dyn Fn(ExprId) -> bool,
        store_depth: &[Option<usize>],
    ) -> Vec<ExprId> {
        let mut seen = vec![false; k.exprs.len()];
        let mut stack: Vec<ExprId> = nest
            .stores
            .iter()
            .zip(store_depth)
            .filter(|(_, d)| d.is_none())
            .map(|(s, _)| s.value)
            .collect();
        let mut out = Vec::new();
        while let Some(e) = stack.pop() {
            if std::mem::replace(&mut seen[e.0 as usize], true) || is_hoisted(e) {
                continue;
            }
            out.push(e);
            stack.extend(k.expr(e).expr.operands());
        }
        out.sort();
        out
    }

    /// True if an expression `nest` stores is computed by a transcendental function (an
    /// inline sequence of tens of instructions per vector, see [`crate::math`]).
    fn has_transcendental(&self, k: &Kernel, nest: &LoopNest) -> bool {
        k.exprs_of(nest).into_iter().any(|e| match k.expr(e).expr {
            Expr::Unary { op, .. } => match op {
                UnaryOp::Exp | UnaryOp::Log | UnaryOp::Tanh | UnaryOp::Sin | UnaryOp::Cos => true,
                UnaryOp::Neg
                | UnaryOp::Abs
                | UnaryOp::Sqrt
                | UnaryOp::Recip
                | UnaryOp::Sign
                | UnaryOp::StopGradient => false,
            },
            Expr::Binary { op, .. } => op == BinaryOp::Pow,
            _ => false,
        })
    }

    /// The depth a plain store runs at when neither its value nor its address depends on the
    /// lane variable: right after the last loop of a variable it depends on opens.
    fn store_depth(&self, nest: &LoopNest, s: &crate::kernel::Store) -> Option<usize> {
        let (&lane, outer) = nest.vars.split_last()?;
        if s.accumulate || s.guard.is_some() {
            return None;
        }
        let mut deps = self.deps[s.value.0 as usize].clone();
        for v in ix_deps(&s.offset, &self.deps) {
            if !deps.contains(&v) {
                deps.push(v);
            }
        }
        if deps.contains(&lane) {
            return None;
        }
        depth_of(&deps, outer)
    }
    /// The reductions of `nest` that do not depend on its lane variable, with where each is
    /// computed: right after the last loop of a variable it depends on opens.
    fn hoisted(&self, k: &Kernel, nest: &LoopNest) -> Vec<Hoist> {
        let Some((&lane, outer)) = nest.vars.split_last() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in k.exprs_of(nest) {
            if !matches!(k.expr(e).expr, Expr::Reduce { .. }) {
                continue;
            }
            let deps = &self.deps[e.0 as usize];
            if deps.contains(&lane) {
                continue;
            }
            if let Some(depth) = depth_of(deps, outer) {
                out.push(Hoist { depth, expr: e });
            }
        }
        out.sort_by_key(|h| h.expr);
        out
    }

    /// The vector width of the lane loop: 4 (2 with an `f64`) when the lane variable is long
    /// enough and memory is more often contiguous along it than along an inner reduced axis;
    /// 1 for accumulating or guarded stores, unless each is contiguous along the lane variable
    /// with a guard that does not depend on it (a scatter-add of whole rows: the lanes of a
    /// vector add into distinct elements, each element's additions stay in order, and the
    /// guard holds for all of them or none).
    fn width(
        &self,
        k: &Kernel,
        nest: &LoopNest,
        lane_var: VarId,
        is_hoisted: &dyn Fn(ExprId) -> bool,
        store_depth: &[Option<usize>],
    ) -> u8 {
        let whole_rows = |s: &crate::kernel::Store| {
            self.stride(&s.offset, lane_var) == Some(1)
                && s.guard
                    .is_none_or(|g| !self.deps[g.0 as usize].contains(&lane_var))
        };
        if nest
            .stores
            .iter()
            .any(|s| (s.accumulate || s.guard.is_some()) && !whole_rows(s))
        {
            return 1;
        }
        let mut w = 4;
        let mut seen = vec![false; k.exprs.len()];
        let in_lane_loop = || {
            nest.stores
                .iter()
                .zip(store_depth)
                .filter(|(_, d)| d.is_none())
                .map(|(s, _)| s)
        };
        let mut stack: Vec<ExprId> = in_lane_loop().map(|s| s.value).collect();
        let (mut lane_contiguous, mut reduce_contiguous) = (0, 0);
        for s in in_lane_loop() {
            if self.stride(&s.offset, lane_var) == Some(1) {
                lane_contiguous += 1;
            }
        }
        let mut inner_reduce: Vec<Option<VarId>> = vec![None; k.exprs.len()];
        while let Some(e) = stack.pop() {
            if std::mem::replace(&mut seen[e.0 as usize], true) || is_hoisted(e) {
                continue;
            }
            let node = k.expr(e);
            if node.dtype == DType::F64 {
                w = 2;
            }
            let r = inner_reduce[e.0 as usize];
            if let Expr::Load { offset, .. } = &node.expr {
                if self.stride(offset, lane_var) == Some(1) {
                    lane_contiguous += 1;
                }
                if let Some(r) = r {
                    if self.stride(offset, r) == Some(1) {
                        reduce_contiguous += 1;
                    }
                }
            }
            let r = match &node.expr {
                Expr::Reduce { vars, .. } => vars.last().copied(),
                _ => r,
            };
            for o in node.expr.operands() {
                if inner_reduce[o.0 as usize].is_none() {
                    inner_reduce[o.0 as usize] = r;
                }
                stack.push(o);
            }
        }
        if k.vars[lane_var.0 as usize] < w as usize || reduce_contiguous > lane_contiguous {
            return 1;
        }
        w
    }
}

/// Vectors of columns a reduction nest without a row tile computes per step: 64 columns,
/// four adjacent cache lines of each row. A bias gradient's column sum walks down rows a few
/// KiB apart, which the hardware prefetchers do not follow, so each row's lines come from
/// memory as the walk reaches them; reading four of them per row rather than one takes a
/// quarter of the walks. W3's and W4's column sums (`adjoint profile`, Sapphire Rapids, one
/// thread, three alternating runs) took 482–516 and 473–485 µs with 4 vectors, 375–401 (W3)
/// with 8, 357–362 and 392–403 with 16; the sums are the same bits (each column still adds
/// its rows in order, in its own accumulator).
const COLUMN_TILE: usize = 16;

/// How many of the loops `outer` (outermost first) must be open for every variable of `deps`
/// to be bound; `None` if one is not among them.
fn depth_of(deps: &[VarId], outer: &[VarId]) -> Option<usize> {
    deps.iter()
        .map(|v| outer.iter().position(|o| o == v).map(|p| p + 1))
        .try_fold(0, |d, p| p.map(|p| d.max(p)))
}

/// The variables an index depends on, directly or through the expressions it reads.
fn ix_deps(ix: &Ix, deps: &[Deps]) -> Deps {
    let mut d = Deps::new();
    ix.visit(&mut |v, e| {
        let through = e
            .into_iter()
            .flat_map(|e| deps[e.0 as usize].iter().copied());
        for v in v.into_iter().chain(through) {
            if !d.contains(&v) {
                d.push(v);
            }
        }
    });
    d
}

/// The variables each expression depends on (free variables: a reduction binds its own).
fn dependencies(k: &Kernel) -> Vec<Deps> {
    let mut deps: Vec<Deps> = Vec::with_capacity(k.exprs.len());
    for node in &k.exprs {
        let mut d: Deps = Deps::new();
        let add = |d: &mut Deps, v: VarId| {
            if !d.contains(&v) {
                d.push(v);
            }
        };
        let add_ix = |d: &mut Deps, ix: &Ix, deps: &[Deps]| {
            for v in ix_deps(ix, deps) {
                add(d, v);
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
            Expr::Reduce { vars, body, .. } => {
                for &v in &deps[body.0 as usize] {
                    if !vars.contains(&v) {
                        add(&mut d, v);
                    }
                }
            }
            Expr::Const { .. }
            | Expr::Unary { .. }
            | Expr::Cast { .. }
            | Expr::Binary { .. }
            | Expr::Compare { .. }
            | Expr::Select { .. } => {
                for o in node.expr.operands() {
                    for &v in &deps[o.0 as usize] {
                        add(&mut d, v);
                    }
                }
            }
        }
        d.sort();
        deps.push(d);
    }
    deps
}

/// The reductions `e` reads outside any other reduction, sorted.
fn top_reduces(k: &Kernel, e: ExprId) -> Vec<ExprId> {
    let mut out = Vec::new();
    let mut stack = vec![e];
    let mut seen = HashSet::new();
    while let Some(x) = stack.pop() {
        if !seen.insert(x) {
            continue;
        }
        let node = &k.expr(x).expr;
        if let Expr::Reduce { .. } = node {
            out.push(x);
            continue;
        }
        stack.extend(node.operands());
    }
    out.sort();
    out
}

/// The plan of expression `e` if it is a reduction.
fn reduce_plan(k: &Kernel, deps: &[Deps], m: MathOptions, e: ExprId) -> Option<ReducePlan> {
    let node = k.expr(e);
    let Expr::Reduce { op, vars, body } = &node.expr else {
        return None;
    };
    let (op, body, d) = (*op, *body, node.dtype);
    // Not of a 16-bit product, which rounds before it is summed (a matmul's product is f32:
    // it does not).
    let fma = match k.expr(body).expr {
        Expr::Binary {
            op: BinaryOp::Mul,
            a,
            b,
        } if op == ReduceOp::Sum
            && m.fma
            && k.expr(body).dtype.is_float()
            && !k.expr(body).dtype.is_half() =>
        {
            Some((a, b))
        }
        _ => None,
    };
    let along_axis = vars.last().and_then(|&r| {
        let width: u8 = match d {
            // 16-bit floats accumulate in f32.
            DType::F32 | DType::I32 | DType::Bf16 | DType::F16 => 4,
            DType::F64 => 2,
            DType::Bool => return None,
        };
        let fits = k.vars[r.0 as usize] >= width as usize
            && contiguous_in(k, deps, body, r)
            && !mixes_widths(k, body, d);
        fits.then_some(AlongAxis { var: r, width })
    });
    Some(ReducePlan { fma, along_axis })
}

/// True if some load in `e` (outside nested reductions) is contiguous in `r`, and the body
/// depends on `r` only through affine indices. A nested reduction that does not depend on `r`
/// is one value for the whole accumulation (softmax's max inside its sum).
fn contiguous_in(k: &Kernel, deps: &[Deps], e: ExprId, r: VarId) -> bool {
    let uses = |x: ExprId, v: VarId| deps[x.0 as usize].contains(&v);
    let mut found = false;
    let mut stack = vec![e];
    let mut seen = HashSet::new();
    while let Some(x) = stack.pop() {
        if !seen.insert(x) {
            continue;
        }
        let node = &k.expr(x).expr;
        match node {
            Expr::Load { offset, .. } => match offset.stride_of(r, &uses) {
                Some(1) => found = true,
                Some(_) => {}
                None => return false,
            },
            Expr::Reduce { .. } if uses(x, r) => return false,
            Expr::Reduce { .. } => continue,
            _ => {}
        }
        stack.extend(node.operands());
    }
    found
}

/// True if `e` involves a dtype of another width than `d` (such reductions stay scalar).
fn mixes_widths(k: &Kernel, e: ExprId, d: DType) -> bool {
    let mut stack = vec![e];
    let mut seen = HashSet::new();
    let wide = d == DType::F64;
    while let Some(x) = stack.pop() {
        if !seen.insert(x) {
            continue;
        }
        let n = k.expr(x);
        if n.dtype != DType::Bool && (n.dtype == DType::F64) != wide {
            return true;
        }
        stack.extend(n.expr.operands());
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::lower::lower_program;
    use crate::kernel::Program;
    use adjoint_ir::{Builder, Graph};
    use adjoint_opt::PlanOptions;

    fn program(g: &Graph) -> Program {
        let plan = adjoint_opt::plan(g, &PlanOptions::default());
        lower_program(&plan.graph, &plan.schedule, &plan.memory, false).expect("lowers")
    }

    /// The plans of every nest of every kernel of `g`.
    fn plans(g: &Graph, fma: bool) -> Vec<(KernelPlan, Vec<NestPlan>)> {
        let m = MathOptions { fma };
        let prog = program(g);
        prog.kernels
            .iter()
            .map(|k| {
                let kp = KernelPlan::new(k, m);
                let nests = k.nests.iter().map(|n| kp.nest(k, n)).collect();
                (kp, nests)
            })
            .collect()
    }

    #[test]
    fn a_matmul_is_register_tiled_and_accumulates_with_fma() {
        let b = Builder::new("mm");
        let x = b.input("x", DType::F32, [8, 16]);
        let w = b.input("w", DType::F32, [16, 16]);
        b.output("y", x.matmul(w));
        let g = b.finish();
        for fma in [true, false] {
            let ps = plans(&g, fma);
            let (kp, nests) = ps
                .iter()
                .find(|(_, n)| n.iter().any(|p| !p.tile_reductions.is_empty()))
                .expect("a nest with a reduction");
            let p = &nests[0];
            assert_eq!((p.width, p.rows, p.unroll), (4, 4, 2), "{p:?}");
            assert_eq!(p.tile_reductions.len(), 1);
            let r = kp.reduce(p.tile_reductions[0]);
            assert_eq!(r.fma.is_some(), fma, "{r:?}");
        }
    }

    #[test]
    fn a_row_sum_in_a_scalar_context_runs_along_its_axis() {
        let b = Builder::new("rowsum");
        let x = b.input("x", DType::F32, [3, 32]);
        b.output("y", x.sum(&[1]));
        let g = b.finish();
        let ps = plans(&g, true);
        let (kp, nests) = &ps[0];
        let p = &nests[0];
        // One output per row: the lane loop runs over the 3 rows, too few for 4 lanes, so the
        // nest stays scalar and the sum is vectorized along the reduced axis instead.
        assert_eq!(p.width, 1, "{p:?}");
        let r = kp.reduce(p.tile_reductions[0]);
        let along = r.along_axis.expect("vectorized along the reduced axis");
        assert_eq!(along.width, 4);
        assert!(r.fma.is_none(), "a sum of loads has no product");
    }

    #[test]
    fn long_rows_send_exp_and_tanh_to_the_host_routines() {
        let wide_of = |n: usize, host_math: bool| {
            let b = Builder::new("wide");
            let x = b.input("x", DType::F32, [3, n]);
            b.output("y", x.tanh().exp() + x.sin());
            let g = b.finish();
            let prog = program(&g);
            let k = &prog.kernels[0];
            let kp = KernelPlan::new(k, MathOptions { fma: true }).with_host_math(host_math);
            let p = kp.nest(k, &k.nests[0]);
            let ops: Vec<UnaryOp> = p
                .wide
                .iter()
                .map(|&e| match k.expr(e).expr {
                    Expr::Unary { op, .. } => op,
                    _ => panic!("a wide expression that is not a function"),
                })
                .collect();
            ops
        };
        // tanh before the exp that reads it; sin stays inline.
        assert_eq!(wide_of(WIDE_MIN_LANES, true), [UnaryOp::Tanh, UnaryOp::Exp]);
        assert!(wide_of(WIDE_MIN_LANES - 1, true).is_empty());
        assert!(wide_of(300, false).is_empty());
    }

    #[test]
    fn an_elementwise_nest_computes_two_vectors_per_step() {
        let b = Builder::new("ew");
        let x = b.input("x", DType::F32, [3, 20]);
        b.output("y", x.exp() + 1.0);
        let g = b.finish();
        let ps = plans(&g, true);
        let p = &ps[0].1[0];
        assert_eq!((p.width, p.rows, p.unroll), (4, 1, 2), "{p:?}");

        // Nor are cheap bodies, nor rows shorter than two vectors.
        let b = Builder::new("cheap");
        let x = b.input("x", DType::F32, [3, 20]);
        b.output("y", x * 2.0 + 1.0);
        let g = b.finish();
        let ps = plans(&g, true);
        let p = &ps[0].1[0];
        assert_eq!((p.width, p.unroll), (4, 1), "{p:?}");

        let b = Builder::new("ew_short");
        let x = b.input("x", DType::F32, [3, 7]);
        b.output("y", x.exp() + 1.0);
        let g = b.finish();
        let ps = plans(&g, true);
        let p = &ps[0].1[0];
        assert_eq!((p.width, p.unroll), (4, 1), "{p:?}");
    }

    #[test]
    fn f64_halves_the_width_and_short_rows_stay_scalar() {
        let b = Builder::new("f64");
        let x = b.input("x", DType::F64, [3, 10]);
        b.output("y", x.exp());
        let g = b.finish();
        let ps = plans(&g, true);
        assert_eq!(ps[0].1[0].width, 2);

        let b = Builder::new("short");
        let x = b.input("x", DType::F32, [3, 3]);
        b.output("y", x.exp());
        let g = b.finish();
        let ps = plans(&g, true);
        assert_eq!(ps[0].1[0].width, 1, "3 elements do not fill 4 lanes");
    }

    #[test]
    fn a_softmax_row_computes_its_max_and_sum_once_before_its_elements() {
        let b = Builder::new("softmax");
        let x = b.input("x", DType::F32, [6, 16]);
        let m = x.max_keepdims(&[-1]);
        // A cheap stand-in for `exp`, which fusion would store rather than compute twice.
        let e = (x - m) * 2.0;
        let s = e.sum_keepdims(&[-1]);
        b.output("p", e / s);
        b.output("sum", s);
        let g = b.finish();
        let ps = plans(&g, true);
        assert_eq!(ps.len(), 1, "one row-wise kernel");
        let (kp, nests) = &ps[0];
        let p = &nests[0];
        // max, and sum (whose body reads max): both after the row loop opens, in that order.
        assert_eq!(p.hoisted.len(), 2, "{p:?}");
        assert!(p.hoisted.iter().all(|h| h.depth == 1));
        assert!(p.hoisted[0].expr < p.hoisted[1].expr);
        // The row sum is stored once per row; the probabilities at every element, 4 lanes wide.
        let mut depths = p.store_depth.clone();
        depths.sort();
        assert_eq!(depths, [None, Some(1)]);
        assert_eq!((p.width, p.rows), (4, 1));
        assert!(p.tile_reductions.is_empty());
        for h in &p.hoisted {
            assert!(kp.reduce(h.expr).along_axis.is_some(), "contiguous rows");
        }
        // The sum's body is the row's `e`: its values are kept for the division.
        assert_eq!(p.row_caches.len(), 1, "{p:?}");
        assert_eq!(p.row_caches[0].reduce, p.hoisted[1].expr);
    }

    #[test]
    fn a_column_sum_splits_its_columns_and_sums_a_tile_of_vectors_of_them_at_once() {
        let b = Builder::new("bias_grad");
        let x = b.input("x", DType::F32, [8, 64, 64]);
        b.output("db", x.sum_keepdims(&[0, 1]));
        let g = b.finish();
        let prog = program(&g);
        let k = &prog.kernels[0];
        let nest = &k.nests[0];
        // `[1, 1, 64]`: the two kept axes run once, so threads split the columns.
        assert_eq!(nest.vars.len(), 3);
        assert_eq!(nest.split_position(&k.vars), 2);
        let p = KernelPlan::new(k, MathOptions { fma: true }).nest(k, nest);
        // No rows to tile: a tile of vectors of columns per step, one accumulator each.
        assert_eq!((p.width, p.rows, p.unroll), (4, 1, COLUMN_TILE), "{p:?}");
    }

    #[test]
    fn a_softmax_keeps_its_exp_row_for_the_division() {
        for (n, cached) in [
            (16, true),
            (3, true),
            (adjoint_opt::schedule::ROW_CACHE_LEN + 1, false),
        ] {
            let b = Builder::new("softmax");
            let x = b.input("x", DType::F32, [2, n]);
            b.output("p", x.softmax(-1));
            let g = b.finish();
            let ps = plans(&g, true);
            // One kernel whose sum keeps the `exp` values it computes; a row longer than the
            // cache keeps two kernels, the first storing `exp` for the second.
            let caches: usize = ps
                .iter()
                .flat_map(|(_, nests)| nests.iter().map(|p| p.row_caches.len()))
                .sum();
            let with_exp = |k: &Kernel| {
                k.exprs
                    .iter()
                    .filter(|e| {
                        matches!(
                            e.expr,
                            Expr::Unary {
                                op: UnaryOp::Exp,
                                ..
                            }
                        )
                    })
                    .count()
            };
            let prog = program(&g);
            if cached {
                assert_eq!(ps.len(), 1, "one kernel at rows of {n}");
                assert_eq!(caches, 1, "rows of {n}");
                // `exp` appears in the sum's body and at the row's elements; the second reads
                // the cache.
                assert_eq!(with_exp(&prog.kernels[0]), 2);
            } else {
                assert_eq!(ps.len(), 2, "two kernels at rows of {n}");
                assert_eq!(caches, 0);
            }
        }
    }
}
