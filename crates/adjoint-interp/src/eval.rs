//! The node loop: computes a [`Plan`] one node at a time, freeing each intermediate value as
//! soon as its last user has run.

use crate::node::compute;
use crate::plan::Plan;
use crate::InterpError;
use adjoint_ir::collective::all_reduce_tensor;
use adjoint_ir::{Collective, Feeds, Graph, HostTensor, NodeId, Op};
use std::borrow::Cow;

/// Computes the planned nodes and returns the values of `requested`, in order, with the
/// largest number of values that were held at once (what freeing keeps bounded); or
/// [`InterpError::OutOfMemory`] if the system refuses the memory of a node's value (each node
/// reserves its value's bytes with `try_reserve` before it is computed, so asking for too much
/// is an error rather than an abort).
///
/// Fed leaves are borrowed, not copied; a requested value is moved out at its last occurrence
/// in `requested` and cloned before that. `all_reduce` nodes call `collective` (without one,
/// only groups of one replica are allowed).
pub(crate) fn execute(
    graph: &Graph,
    feeds: &Feeds,
    plan: Plan,
    requested: &[NodeId],
    collective: Option<&dyn Collective>,
) -> Result<(Vec<HostTensor>, usize), InterpError> {
    let Plan {
        order,
        mut uses,
        keep,
    } = plan;
    let mut values: Vec<Option<Cow<'_, HostTensor>>> = vec![None; uses.len()];
    let (mut held, mut peak) = (0usize, 0usize);
    for &id in &order {
        let node = graph.node(id);
        let operands = graph.operands(id);
        let value = match &node.op {
            Op::Input { name, .. } | Op::Parameter { name, .. } => match feeds.get(name) {
                Some(t) => Cow::Borrowed(t),
                None => panic!("interpreter bug: the plan let unfed leaf `{name}` through"),
            },
            &Op::AllReduce { kind, replicas } => {
                reserve(graph, id)?;
                let mut value = live(&values, operands[0]).clone();
                let fail = |message: String| InterpError::Collective {
                    node: graph.describe(id),
                    message,
                };
                match collective {
                    Some(c) if c.size() != replicas => {
                        return Err(fail(format!(
                            "the graph reduces over {replicas} replicas, the collective has {}",
                            c.size()
                        )))
                    }
                    Some(c) => {
                        all_reduce_tensor(c, &mut value, kind).map_err(|e| fail(e.to_string()))?
                    }
                    None if replicas == 1 => {}
                    None => {
                        return Err(fail(format!(
                            "the graph reduces over {replicas} replicas but no collective was \
                             given (InterpStep::set_collective, run_with)"
                        )))
                    }
                }
                Cow::Owned(value)
            }
            op => {
                reserve(graph, id)?;
                let xs: Vec<&HostTensor> = operands.iter().map(|&o| live(&values, o)).collect();
                Cow::Owned(compute(op, &node.ty, &xs))
            }
        };
        for &o in &operands {
            let left = &mut uses[o.index()];
            *left -= 1;
            if *left == 0 && !keep[o.index()] {
                values[o.index()] = None;
                held -= 1;
            }
        }
        values[id.index()] = Some(value);
        held += 1;
        peak = peak.max(held);
    }

    let mut last = vec![usize::MAX; values.len()];
    for (i, id) in requested.iter().enumerate() {
        last[id.index()] = i;
    }
    let results = requested
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
        .collect();
    Ok((results, peak))
}

/// Checks that the system grants the bytes of `id`'s value: reserves them with `try_reserve`
/// and gives them back, so the kernel's own allocation right after does not abort.
fn reserve(graph: &Graph, id: NodeId) -> Result<(), InterpError> {
    let bytes = graph.ty(id).size_bytes();
    let mut probe: Vec<u8> = Vec::new();
    probe
        .try_reserve_exact(bytes)
        .map_err(|_| InterpError::OutOfMemory {
            node: graph.describe(id),
            bytes,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::plan;
    use adjoint_ir::{Builder, DType};

    #[test]
    fn intermediates_are_freed_after_their_last_use() {
        let b = Builder::new("chain");
        let x = b.input("x", DType::F64, [1000]);
        let mut h = x;
        for _ in 0..100 {
            h = h.tanh();
        }
        // A diamond at the end: both branches read the same value.
        let y = h.sin() + h.cos();
        let ids = [y.id()];
        let g = b.finish();
        let mut feeds = Feeds::new();
        feeds.insert("x".into(), HostTensor::zeros(DType::F64, [1000]));
        let p = plan(&g, &feeds, &ids).unwrap();
        assert_eq!(p.order.len(), 104);
        let (values, peak) = execute(&g, &feeds, p, &ids, None).unwrap();
        assert_eq!(values[0].to_f64_vec(), vec![1.0; 1000]);
        // Counted after each node: {h, sin h}, then {sin h, cos h} (h freed by its last user);
        // without freeing all 104 values would be held.
        assert_eq!(peak, 2);
    }

    #[test]
    fn requested_values_are_kept() {
        let b = Builder::new("kept");
        let x = b.input("x", DType::F32, [2]);
        let h = x.exp();
        let y = h.log();
        let ids = [h.id(), y.id(), h.id()];
        let g = b.finish();
        let mut feeds = Feeds::new();
        feeds.insert("x".into(), HostTensor::zeros(DType::F32, [2]));
        let p = plan(&g, &feeds, &ids).unwrap();
        let (values, _) = execute(&g, &feeds, p, &ids, None).unwrap();
        assert_eq!(values[0].as_f32().unwrap(), &[1.0, 1.0]);
        assert_eq!(values[1].as_f32().unwrap(), &[0.0, 0.0]);
        assert_eq!(values[2], values[0]);
    }
}
