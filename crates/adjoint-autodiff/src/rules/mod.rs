//! One vector-Jacobian product (VJP) rule per primitive.
//!
//! A rule gets the node `y = op(x0, x1, …)`, its operands, and the adjoint `g` of `y` (same type
//! as `y`); it returns, for each operand that needs one, the adjoint contribution `gᵀ·∂y/∂xi`
//! (same type as `xi`), or `None` when the operand gets no gradient through this node (integer
//! operands, masks, `sign`). Rules emit their nodes with the [`Builder`], so they are
//! hash-consed with the rest of the graph, and use only primitives that have rules themselves,
//! so the result can be differentiated again. `docs/autodiff.md` lists every rule in one line.

mod contraction;
mod elementwise;
mod movement;
mod reduce;

use adjoint_ir::{BuildError, Builder, NodeId, Op, Tensor};

/// The adjoint contributions of node `node` to its operands, given its adjoint `g`.
///
/// `need[i]` says whether operand `i` wants its contribution; rules skip the work for the others.
/// The result has one entry per operand.
pub(crate) fn vjp<'b>(
    b: &'b Builder,
    node: NodeId,
    g: Tensor<'b>,
    need: &[bool],
) -> Result<Vec<Option<Tensor<'b>>>, BuildError> {
    let (op, operands) = {
        let graph = b.graph();
        (graph.op(node).clone(), graph.operands(node))
    };
    let xs: Vec<Tensor<'b>> = operands.iter().map(|&o| b.tensor(o)).collect();
    let y = b.tensor(node);
    let one = |r: Option<Tensor<'b>>| vec![r];
    Ok(match &op {
        Op::Input { .. } | Op::Parameter { .. } | Op::Constant(_) | Op::Iota { .. } => vec![],
        Op::Unary(u) => one(elementwise::unary(*u, xs[0], y, g)?),
        Op::Binary(bop) => elementwise::binary(*bop, xs[0], xs[1], y, g, need)?,
        Op::Compare(_) => vec![None, None],
        Op::Select => elementwise::select(xs[0], g, need)?,
        Op::Cast { .. } => one(elementwise::cast(xs[0], g)?),
        Op::Broadcast { .. } => one(Some(movement::broadcast(xs[0], g)?)),
        Op::Reshape { .. } => one(Some(g.try_reshape(xs[0].shape())?)),
        Op::Permute { perm } => one(Some(movement::permute(perm, g)?)),
        Op::Slice { ranges } => one(Some(movement::slice(xs[0], ranges, g)?)),
        Op::Pad { low, .. } => one(Some(movement::pad(xs[0], low, g)?)),
        Op::Concat { axis } => movement::concat(&xs, *axis, g, need)?,
        Op::Reduce { op, axes, .. } => one(Some(reduce::reduce(*op, axes, xs[0], y, g)?)),
        Op::MatMul => contraction::matmul(xs[0], xs[1], g, need)?,
        Op::Gather { axis } => vec![Some(contraction::gather(xs[0], xs[1], *axis, g)?), None],
        Op::ScatterAdd { axis, .. } => {
            vec![Some(contraction::scatter_add(xs[1], *axis, g)?), None]
        }
        // Replica r's result is Σ_s x_s (or its mean), so x_s's adjoint is Σ_r g_r (or its
        // mean): the same all-reduce of the adjoint.
        Op::AllReduce { kind, replicas } => one(Some(g.try_all_reduce(*kind, *replicas)?)),
    })
}

/// A tensor of zeros with the type of `t`.
#[track_caller]
pub(crate) fn zeros_like<'b>(t: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
    t.scalar_like(0.0).try_broadcast_to(t.shape())
}
