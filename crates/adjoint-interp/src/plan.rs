//! Planning an evaluation: every check that can fail, then which nodes to compute, in which
//! order, and how long each value must live.

use crate::InterpError;
use adjoint_ir::{Feeds, Graph, NodeId, Op, VerifyError};

/// What to compute for a set of requested nodes.
pub(crate) struct Plan {
    /// The nodes the requested ones depend on (themselves included), in topological order.
    pub order: Vec<NodeId>,
    /// For each node (indexed by [`NodeId::index`]), how many operand slots of planned nodes
    /// read it. When the count drops to 0 the value can be freed, unless it is kept.
    pub uses: Vec<usize>,
    /// For each node, whether its value is requested and must live to the end.
    pub keep: Vec<bool>,
}

/// Checks the graph, the requested nodes and the feeds, and plans the evaluation of `requested`.
///
/// Errors, in this order: the graph fails verification; a requested node is not in the graph;
/// a feed names no input or parameter; a feed's type differs from the graph's; an input or
/// parameter that a requested node depends on is not fed.
pub(crate) fn plan(
    graph: &Graph,
    feeds: &Feeds,
    requested: &[NodeId],
) -> Result<Plan, InterpError> {
    graph.verify()?;
    for &id in requested {
        if !graph.contains(id) {
            return Err(InterpError::Invalid(VerifyError {
                node: Some(id),
                node_desc: graph.describe(id),
                message: "was requested for evaluation but is not a node of this graph".into(),
            }));
        }
    }
    check_feeds(graph, feeds)?;

    let bound = graph.node_ids().map(|id| id.index() + 1).max().unwrap_or(0);
    let mut needed = vec![false; bound];
    let mut stack: Vec<NodeId> = requested.to_vec();
    while let Some(id) = stack.pop() {
        if !std::mem::replace(&mut needed[id.index()], true) {
            stack.extend(graph.operands(id));
        }
    }
    let order: Vec<NodeId> = graph
        .topo_order()
        .into_iter()
        .filter(|id| needed[id.index()])
        .collect();

    let mut uses = vec![0usize; bound];
    for &id in &order {
        for o in graph.operands(id) {
            uses[o.index()] += 1;
        }
        if let Op::Input { name, ty } | Op::Parameter { name, ty } = graph.op(id) {
            if !feeds.contains_key(name) {
                return Err(InterpError::MissingFeed {
                    name: name.clone(),
                    expected: ty.clone(),
                });
            }
        }
    }
    let mut keep = vec![false; bound];
    for &id in requested {
        keep[id.index()] = true;
    }
    Ok(Plan { order, uses, keep })
}

/// Every feed must name an input or parameter and have exactly its dtype and shape.
fn check_feeds(graph: &Graph, feeds: &Feeds) -> Result<(), InterpError> {
    for (name, tensor) in feeds {
        let Some(leaf) = graph.leaf(name) else {
            return Err(InterpError::UnknownFeed { name: name.clone() });
        };
        let expected = graph.ty(leaf);
        if tensor.dtype() != expected.dtype || tensor.shape() != &expected.shape {
            return Err(InterpError::FeedMismatch {
                name: name.clone(),
                expected: expected.clone(),
                got: tensor.ty(),
            });
        }
    }
    Ok(())
}
