//! Algebraic simplification: local rewrite rules, each either bit-exact or flagged inexact.
//!
//! Floating-point semantics stay strict: no rule reassociates or reorders a sum. `x * 0` is
//! never rewritten for floats (it is NaN for `x = ±inf` or NaN, and `-0` for negative `x`).
//! The table in `docs/passes.md` lists every rule with its exactness; [`Rule::is_exact`] says
//! the same in code, and [`rules`] leaves the inexact ones out when asked to.

use crate::rewrite::{Expr, Rule};
use adjoint_ir::shape::Dims;
use adjoint_ir::{BinaryOp, DType, Graph, Literal, NodeId, Op, ReduceOp, Shape, UnaryOp};

type RuleFn = fn(&Graph, &Op, &[NodeId]) -> Option<Expr>;

/// A named rewrite rule backed by a function.
#[derive(Clone, Copy)]
pub struct FnRule {
    name: &'static str,
    exact: bool,
    f: RuleFn,
}

impl Rule for FnRule {
    fn name(&self) -> &'static str {
        self.name
    }

    fn is_exact(&self) -> bool {
        self.exact
    }

    fn apply(&self, graph: &Graph, op: &Op, operands: &[NodeId]) -> Option<Expr> {
        (self.f)(graph, op, operands)
    }
}

impl std::fmt::Debug for FnRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}{}",
            self.name,
            if self.exact { "" } else { " (inexact)" }
        )
    }
}

const fn rule(name: &'static str, exact: bool, f: RuleFn) -> FnRule {
    FnRule { name, exact, f }
}

/// Every simplification rule, in the order they are tried.
pub const ALL_RULES: &[FnRule] = &[
    rule("add_neg_zero", true, add_neg_zero),
    rule("add_zero", false, add_zero),
    rule("sub_zero", true, sub_zero),
    rule("mul_one", true, mul_one),
    rule("mul_neg_one", true, mul_neg_one),
    rule("mul_zero_int", true, mul_zero_int),
    rule("div_one", true, div_one),
    rule("div_pow2", true, div_pow2),
    rule("neg_neg", true, neg_neg),
    rule("pow_one", true, pow_one),
    rule("pow_two", false, pow_two),
    rule("max_min_self", true, max_min_self),
    rule("select_const", true, select_const),
    rule("cast_same", true, cast_same),
    rule("reshape_same", true, reshape_same),
    rule("reshape_reshape", true, reshape_reshape),
    rule("permute_permute", true, permute_permute),
    rule("broadcast_same", true, broadcast_same),
    rule("broadcast_broadcast", true, broadcast_broadcast),
    rule("slice_full", true, slice_full),
    rule("pad_none", true, pad_none),
    rule("concat_one", true, concat_one),
    rule("move_splat", true, move_splat),
    rule("sink_broadcast", true, sink_broadcast),
    rule("max_unit_axes", true, max_unit_axes),
    rule("sum_unit_axes", false, sum_unit_axes),
    rule("sum_of_broadcast", false, sum_of_broadcast),
];

/// The simplification rules, without the inexact ones unless `allow_inexact`.
pub fn rules(allow_inexact: bool) -> Vec<&'static dyn Rule> {
    ALL_RULES
        .iter()
        .filter(|r| allow_inexact || r.exact)
        .map(|r| r as &dyn Rule)
        .collect()
}

/// The value of every element of `id` if they are all equal: a constant whose elements are
/// bitwise equal, or a broadcast or reshape of one.
pub fn splat_value(g: &Graph, id: NodeId) -> Option<f64> {
    match g.op(id) {
        Op::Constant(lit) => {
            let v = *lit.values().first()?;
            lit.is_splat(v).then_some(v)
        }
        Op::Broadcast { .. } | Op::Reshape { .. } => splat_value(g, g.operands(id)[0]),
        _ => None,
    }
}

fn is_splat(g: &Graph, id: NodeId, v: f64) -> bool {
    splat_value(g, id).is_some_and(|x| x.to_bits() == v.to_bits() || (x == v && v != 0.0))
}

/// An expression for a tensor of `shape` and `dtype` with every element `v`: a scalar
/// constant, broadcast unless `shape` is a scalar.
pub fn splat(dtype: DType, shape: &Shape, v: f64) -> Expr {
    let c = Expr::leaf(Op::Constant(Literal::scalar(dtype, v)));
    if shape.rank() == 0 {
        c
    } else {
        Expr::Op(
            Op::Broadcast {
                shape: shape.clone(),
            },
            vec![c],
        )
    }
}

fn float(g: &Graph, id: NodeId) -> bool {
    g.ty(id).dtype.is_float()
}

fn node(id: NodeId) -> Option<Expr> {
    Some(Expr::Node(id))
}

/// `x + (-0.0) → x`: bit-exact (for i32, `x + 0 → x`).
fn add_neg_zero(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    let Op::Binary(BinaryOp::Add) = op else {
        return None;
    };
    let zero = if float(g, xs[0]) { -0.0 } else { 0.0 };
    if is_splat(g, xs[1], zero) {
        return node(xs[0]);
    }
    if is_splat(g, xs[0], zero) {
        return node(xs[1]);
    }
    None
}

/// `x + 0.0 → x` for floats: equal values, but `-0.0 + 0.0` is `+0.0`, so a zero result may
/// change sign.
fn add_zero(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    let Op::Binary(BinaryOp::Add) = op else {
        return None;
    };
    if !float(g, xs[0]) {
        return None;
    }
    if is_splat(g, xs[1], 0.0) {
        return node(xs[0]);
    }
    if is_splat(g, xs[0], 0.0) {
        return node(xs[1]);
    }
    None
}

/// `x - 0.0 → x`: bit-exact (`-0.0 - 0.0` is `-0.0`).
fn sub_zero(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    matches!(op, Op::Binary(BinaryOp::Sub))
        .then_some(())
        .filter(|_| is_splat(g, xs[1], 0.0))
        .and_then(|_| node(xs[0]))
}

/// `x * 1 → x`, `1 * x → x`: bit-exact.
fn mul_one(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    let Op::Binary(BinaryOp::Mul) = op else {
        return None;
    };
    if is_splat(g, xs[1], 1.0) {
        return node(xs[0]);
    }
    if is_splat(g, xs[0], 1.0) {
        return node(xs[1]);
    }
    None
}

/// `x * -1 → neg x`: bit-exact (multiplying by -1 only flips the sign bit).
fn mul_neg_one(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    let Op::Binary(BinaryOp::Mul) = op else {
        return None;
    };
    if g.ty(xs[0]).dtype == DType::I32 {
        return None; // -1 * i32::MIN overflows either way; keep the multiply.
    }
    let neg = |x| Some(Expr::op(Op::Unary(UnaryOp::Neg), &[x]));
    if is_splat(g, xs[1], -1.0) {
        return neg(xs[0]);
    }
    if is_splat(g, xs[0], -1.0) {
        return neg(xs[1]);
    }
    None
}

/// `x * 0 → 0` for i32 only (for floats `inf * 0` is NaN and `-1 * 0` is `-0`).
fn mul_zero_int(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    if !matches!(op, Op::Binary(BinaryOp::Mul)) || g.ty(xs[0]).dtype != DType::I32 {
        return None;
    }
    xs.iter()
        .copied()
        .find(|&x| is_splat(g, x, 0.0))
        .map(Expr::Node)
}

/// `x / 1 → x`: bit-exact.
fn div_one(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    (matches!(op, Op::Binary(BinaryOp::Div)) && is_splat(g, xs[1], 1.0))
        .then_some(Expr::Node(xs[0]))
}

/// `x / 2^k → x * 2^-k` when `2^-k` is a normal number of the dtype: bit-exact (both sides are
/// the correctly rounded `x / 2^k`).
fn div_pow2(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    if !matches!(op, Op::Binary(BinaryOp::Div)) {
        return None;
    }
    let c = splat_value(g, xs[1])?;
    let (m, e) = frexp(c.abs())?;
    if m != 0.5 || c == 1.0 || c == -1.0 {
        return None;
    }
    let inv = 1.0 / c;
    let ty = g.ty(xs[0]);
    let min_normal = match ty.dtype {
        DType::F32 => f32::MIN_POSITIVE as f64,
        _ => f64::MIN_POSITIVE,
    };
    let max = match ty.dtype {
        DType::F32 => f32::MAX as f64,
        _ => f64::MAX,
    };
    if inv.abs() < min_normal || c.abs() > max || e.abs() > 1000 {
        return None;
    }
    Some(Expr::Op(
        Op::Binary(BinaryOp::Mul),
        vec![Expr::Node(xs[0]), splat(ty.dtype, &ty.shape, inv)],
    ))
}

/// Mantissa in `[0.5, 1)` and exponent of a finite positive number.
fn frexp(x: f64) -> Option<(f64, i32)> {
    if !x.is_finite() || x <= 0.0 || x < f64::MIN_POSITIVE {
        return None;
    }
    let bits = x.to_bits();
    let e = ((bits >> 52) & 0x7ff) as i32 - 1022;
    let m = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    Some((m, e))
}

/// `neg(neg x) → x`: bit-exact.
fn neg_neg(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    if !matches!(op, Op::Unary(UnaryOp::Neg)) {
        return None;
    }
    match g.op(xs[0]) {
        Op::Unary(UnaryOp::Neg) => node(g.operands(xs[0])[0]),
        _ => None,
    }
}

/// `pow(x, 1) → x`: bit-exact (`pow(x, 1) = x` for every `x`, NaN included).
fn pow_one(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    (matches!(op, Op::Binary(BinaryOp::Pow)) && is_splat(g, xs[1], 1.0))
        .then_some(Expr::Node(xs[0]))
}

/// `pow(x, 2) → x * x`: `x * x` is the correctly rounded square; a math library's `pow` may
/// differ from it in the last bit (glibc's `powf` does not, its `pow` may), so it is flagged
/// inexact.
fn pow_two(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    (matches!(op, Op::Binary(BinaryOp::Pow)) && is_splat(g, xs[1], 2.0))
        .then(|| Expr::op(Op::Binary(BinaryOp::Mul), &[xs[0], xs[0]]))
}

/// `max(x, x) → x`, `min(x, x) → x`: bit-exact.
fn max_min_self(_: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    (matches!(op, Op::Binary(BinaryOp::Max | BinaryOp::Min)) && xs[0] == xs[1])
        .then_some(Expr::Node(xs[0]))
}

/// `select(true, a, b) → a`, `select(false, a, b) → b`, `select(c, a, a) → a`: bit-exact.
fn select_const(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    if !matches!(op, Op::Select) {
        return None;
    }
    if xs[1] == xs[2] {
        return node(xs[1]);
    }
    match splat_value(g, xs[0])? {
        v if v != 0.0 => node(xs[1]),
        _ => node(xs[2]),
    }
}

/// `cast` to the operand's own dtype `→ x`: bit-exact.
fn cast_same(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    match op {
        Op::Cast { to } if *to == g.ty(xs[0]).dtype => node(xs[0]),
        _ => None,
    }
}

/// `reshape` to the operand's own shape `→ x`: bit-exact.
fn reshape_same(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    match op {
        Op::Reshape { shape } if *shape == g.ty(xs[0]).shape => node(xs[0]),
        _ => None,
    }
}

/// `reshape(reshape x) → reshape x`: bit-exact (both keep row-major order).
fn reshape_reshape(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    match (op, g.op(xs[0])) {
        (Op::Reshape { .. }, Op::Reshape { .. }) => {
            Some(Expr::op(op.clone(), &[g.operands(xs[0])[0]]))
        }
        _ => None,
    }
}

/// `permute(q, permute(p, x)) → permute(p∘q, x)`, and an identity permutation `→ x`:
/// bit-exact.
fn permute_permute(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    let Op::Permute { perm: outer } = op else {
        return None;
    };
    if outer.iter().enumerate().all(|(i, &p)| i == p) {
        return node(xs[0]);
    }
    let Op::Permute { perm: inner } = g.op(xs[0]) else {
        return None;
    };
    let perm: Dims = outer.iter().map(|&q| inner[q]).collect();
    let x = g.operands(xs[0])[0];
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return node(x);
    }
    Some(Expr::op(Op::Permute { perm }, &[x]))
}

/// `broadcast` to the operand's own shape `→ x`: bit-exact.
fn broadcast_same(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    match op {
        Op::Broadcast { shape } if *shape == g.ty(xs[0]).shape => node(xs[0]),
        _ => None,
    }
}

/// `broadcast(broadcast x) → broadcast x`: bit-exact.
fn broadcast_broadcast(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    match (op, g.op(xs[0])) {
        (Op::Broadcast { .. }, Op::Broadcast { .. }) => {
            Some(Expr::op(op.clone(), &[g.operands(xs[0])[0]]))
        }
        _ => None,
    }
}

/// A slice that takes every element `→ x`: bit-exact.
fn slice_full(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    let Op::Slice { ranges } = op else {
        return None;
    };
    let dims = g.ty(xs[0]).shape.dims().to_vec();
    ranges
        .iter()
        .zip(&dims)
        .all(|(r, &d)| r.start == 0 && r.len() == d)
        .then_some(Expr::Node(xs[0]))
}

/// A pad of zero elements `→ x`: bit-exact.
fn pad_none(_: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    match op {
        Op::Pad { low, high } if low.iter().chain(high).all(|&p| p == 0) => node(xs[0]),
        _ => None,
    }
}

/// A concat of one operand `→ x`: bit-exact.
fn concat_one(_: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    (matches!(op, Op::Concat { .. }) && xs.len() == 1).then_some(Expr::Node(xs[0]))
}

/// A reshape, permute, slice or broadcast of a one-element value `c` broadcast to some shape
/// `→ broadcast(c)` to the new shape: bit-exact (every element is `c`).
fn move_splat(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    if !matches!(
        op,
        Op::Reshape { .. } | Op::Permute { .. } | Op::Slice { .. } | Op::Broadcast { .. }
    ) {
        return None;
    }
    let Op::Broadcast { .. } = g.op(xs[0]) else {
        return None;
    };
    let c = g.operands(xs[0])[0];
    let ty = g.ty(c);
    if ty.shape.numel() != 1 || matches!(op, Op::Broadcast { .. }) {
        return None; // broadcast(broadcast) is `broadcast_broadcast`'s.
    }
    let out_shape = {
        let tys = [g.ty(xs[0])];
        adjoint_ir::infer::result_type(op, &tys).ok()?.shape
    };
    let scalar = if ty.shape.rank() == 0 {
        Expr::Node(c)
    } else {
        Expr::op(
            Op::Reshape {
                shape: Shape::scalar(),
            },
            &[c],
        )
    };
    if out_shape.rank() == 0 {
        return Some(scalar);
    }
    Some(Expr::Op(Op::Broadcast { shape: out_shape }, vec![scalar]))
}

/// An elementwise op whose operands are all broadcasts from the same shape `→` the broadcast of
/// the op on the unbroadcast operands: bit-exact (the same function of the same values, computed
/// once per distinct element).
fn sink_broadcast(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    if !op.is_elementwise() {
        return None;
    }
    let mut srcs = Vec::with_capacity(xs.len());
    for &x in xs {
        let Op::Broadcast { .. } = g.op(x) else {
            return None;
        };
        srcs.push(g.operands(x)[0]);
    }
    let shape = &g.ty(srcs[0]).shape;
    if srcs.iter().any(|&s| g.ty(s).shape != *shape) {
        return None;
    }
    let out = g.ty(xs[0]).shape.clone();
    Some(Expr::Op(
        Op::Broadcast { shape: out },
        vec![Expr::op(op.clone(), &srcs)],
    ))
}

/// `reduce_max` over axes that all have size 1 (or over no axis) `→ reshape`: bit-exact.
fn max_unit_axes(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    unit_axes(g, op, xs, ReduceOp::Max)
}

/// `reduce_sum` over axes that all have size 1 (or over no axis) `→ reshape`: the same value,
/// except that a reduction starting from `+0.0` turns a `-0.0` element into `+0.0`.
fn sum_unit_axes(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    unit_axes(g, op, xs, ReduceOp::Sum)
}

fn unit_axes(g: &Graph, op: &Op, xs: &[NodeId], which: ReduceOp) -> Option<Expr> {
    let Op::Reduce { op: r, axes, .. } = op else {
        return None;
    };
    let shape = &g.ty(xs[0]).shape;
    if *r != which || axes.iter().any(|&a| shape.dim(a) != 1) {
        return None;
    }
    let out = adjoint_ir::infer::result_type(op, &[g.ty(xs[0])])
        .ok()?
        .shape;
    Some(Expr::op(Op::Reshape { shape: out }, &[xs[0]]))
}

/// `reduce_sum(broadcast x)` over axes that the broadcast added or expanded from size 1
/// `→ x * n` (reshaped and broadcast to the result shape), `n` the number of summed elements.
/// Inexact: the reduction adds `n` copies one by one (rounding after each addition), `x * n`
/// rounds once; the two differ by at most about `n` ulps of the sum.
fn sum_of_broadcast(g: &Graph, op: &Op, xs: &[NodeId]) -> Option<Expr> {
    let Op::Reduce {
        op: ReduceOp::Sum,
        axes,
        keepdims,
    } = op
    else {
        return None;
    };
    let Op::Broadcast { shape: big } = g.op(xs[0]) else {
        return None;
    };
    if axes.is_empty() {
        return None;
    }
    let x = g.operands(xs[0])[0];
    let xt = g.ty(x).clone();
    let lead = big.rank() - xt.shape.rank();
    let padded: Vec<usize> = std::iter::repeat_n(1, lead)
        .chain(xt.shape.dims().iter().copied())
        .collect();
    if axes.iter().any(|&a| padded[a] != 1) {
        return None;
    }
    let n: usize = axes.iter().map(|&a| big.dim(a)).product();
    let scaled = Expr::Op(
        Op::Binary(BinaryOp::Mul),
        vec![Expr::Node(x), splat(xt.dtype, &xt.shape, n as f64)],
    );
    // `padded` with the summed axes dropped (or kept as 1) broadcasts to the result shape.
    let small: Vec<usize> = (0..padded.len())
        .filter_map(|i| match (axes.contains(&i), keepdims) {
            (false, _) => Some(padded[i]),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect();
    let out = adjoint_ir::infer::reduced_shape(big, axes, *keepdims);
    let reshaped = Expr::Op(
        Op::Reshape {
            shape: Shape::new(&small),
        },
        vec![scaled],
    );
    Some(Expr::Op(Op::Broadcast { shape: out }, vec![reshaped]))
}
