//! The node loop: computes a [`Plan`] one node at a time, freeing each intermediate value as
//! soon as its last user has run.

use crate::node::compute;
use crate::plan::Plan;
use adjoint_ir::{Feeds, Graph, HostTensor, NodeId, Op};
use std::borrow::Cow;

/// Computes the planned nodes and returns the values of `requested`, in order.
///
/// Fed leaves are borrowed, not copied; a requested value is moved out at its last occurrence
/// in `requested` and cloned before that.
pub(crate) fn execute(
    graph: &Graph,
    feeds: &Feeds,
    plan: Plan,
    requested: &[NodeId],
) -> Vec<HostTensor> {
    let Plan {
        order,
        mut uses,
        keep,
    } = plan;
    let mut values: Vec<Option<Cow<'_, HostTensor>>> = vec![None; uses.len()];
    for &id in &order {
        let node = graph.node(id);
        let operands = graph.operands(id);
        let value = match &node.op {
            Op::Input { name, .. } | Op::Parameter { name, .. } => match feeds.get(name) {
                Some(t) => Cow::Borrowed(t),
                None => panic!("interpreter bug: the plan let unfed leaf `{name}` through"),
            },
            op => {
                let xs: Vec<&HostTensor> = operands.iter().map(|&o| live(&values, o)).collect();
                Cow::Owned(compute(op, &node.ty, &xs))
            }
        };
        for &o in &operands {
            let left = &mut uses[o.index()];
            *left -= 1;
            if *left == 0 && !keep[o.index()] {
                values[o.index()] = None;
            }
        }
        values[id.index()] = Some(value);
    }

    let mut last = vec![usize::MAX; values.len()];
    for (i, id) in requested.iter().enumerate() {
        last[id.index()] = i;
    }
    requested
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            if last[id.index()] == i {
                match values[id.index()].take() {
                    Some(v) => v.into_owned(),
                    None => panic!("interpreter bug: requested node {id:?} was not computed"),
                }
            } else {
                live(&values, id).clone()
            }
        })
        .collect()
}

/// The value of `id`, which the topological order and the use counts guarantee is computed and
/// not yet freed.
fn live<'v>(values: &'v [Option<Cow<'_, HostTensor>>], id: NodeId) -> &'v HostTensor {
    match &values[id.index()] {
        Some(v) => v,
        None => {
            panic!("interpreter bug: node {id:?} read before it was computed or after it was freed")
        }
    }
}
