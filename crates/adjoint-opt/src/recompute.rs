//! Recomputing cheap stored values in the kernels that read them.
//!
//! Fusion ([`crate::fusion`]) never duplicates a computed node: a value that kernels other
//! than its own read is stored, and each reader loads it. For a value that is one cheap
//! elementwise operation (an add, a multiply, a select, a cast…) on values that are stored
//! anyway, storing it costs a write of its bytes and a read in each reader, while computing it
//! again in each reader costs only the reads of its operands — nothing when the reader reads
//! them already. GELU's backward pass is the case: the kernel that recomputes GELU's output
//! for a weight gradient also stored `0.5·x` and `1 + tanh(…)` for the kernel of the input
//! gradient, which reads `x` and `tanh(…)` itself (in W4, four 1 MiB buffers written and read
//! again per step for nothing).
//!
//! [`recompute_cheap_outputs`] finds such values in a schedule and gives each group that reads
//! one its own copy of it; fusing the new graph again puts each copy into its reader, and the
//! value is no longer stored (its own group still computes it for its other users). The copies
//! compute the same operation on the same operands, so every value keeps its bits.

use crate::schedule::Schedule;
use adjoint_ir::{BinaryOp, Graph, NodeId, Op, OpClass, UnaryOp};
use std::collections::{BTreeSet, HashMap};

/// True for elementwise ops that cost about one instruction per element: recomputing them is
/// cheaper than a store and a load.
fn is_cheap(op: &Op) -> bool {
    match op {
        Op::Unary(u) => matches!(
            u,
            UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign | UnaryOp::StopGradient
        ),
        Op::Binary(b) => matches!(
            b,
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Max | BinaryOp::Min
        ),
        Op::Compare(_) | Op::Select | Op::Cast { .. } => true,
        _ => false,
    }
}

/// The stored values and leaves that operand `o` reads: itself when it is an input, a
/// parameter or stored; those of its operands when it is a constant, iota or movement op (free
/// inside any kernel); `None` when it is computed and not stored (a reader would have to
/// compute it too).
fn sources(graph: &Graph, stored: &BTreeSet<NodeId>, o: NodeId) -> Option<Vec<NodeId>> {
    let op = graph.op(o);
    if matches!(op, Op::Input { .. } | Op::Parameter { .. }) || stored.contains(&o) {
        return Some(vec![o]);
    }
    if !crate::fusion::is_free(op) {
        return None;
    }
    let mut out = Vec::new();
    for x in graph.operands(o).iter() {
        out.extend(sources(graph, stored, *x)?);
    }
    Some(out)
}

/// A copy of `graph` in which every cheap stored value that its own group also uses, and whose
/// operands are stored anyway, is computed again by each other group that reads it; `None`
/// when `schedule` (fused from `graph`) has no such value. A value is taken only when no
/// reader has to load more than one full-size buffer it does not load already (so recomputing
/// never reads more than the stored value's load did), and never a graph output or a
/// parameter update, which are stored regardless. Fuse the result again (after
/// [`crate::fusion::unshare_free_nodes`]).
pub fn recompute_cheap_outputs(graph: &Graph, schedule: &Schedule) -> Option<Graph> {
    let bound = graph.node_ids().map(|n| n.index() + 1).max().unwrap_or(0);
    let mut group_of = vec![usize::MAX; bound];
    for (gi, g) in schedule.groups.iter().enumerate() {
        for &n in &g.nodes {
            group_of[n.index()] = gi;
        }
    }
    let stored: BTreeSet<NodeId> = schedule
        .groups
        .iter()
        .flat_map(|g| g.outputs.iter().copied())
        .collect();
    let roles = crate::fusion::stored_regardless(graph);
    let mut recompute: BTreeSet<NodeId> = BTreeSet::new();
    for &v in &stored {
        if roles.contains(&v)
            || !is_cheap(graph.op(v))
            || graph.op(v).class() != OpClass::Elementwise
        {
            continue;
        }
        let home = group_of[v.index()];
        let users = graph.users(v);
        if !users.iter().any(|u| group_of[u.index()] == home) {
            continue;
        }
        // Readers elsewhere must compute on it elementwise (or in a reduction's prologue): a
        // matmul, gather or scatter operand, or a movement op feeding one, is a load, so a
        // copy there would be stored by a kernel of its own.
        let outside: Vec<NodeId> = users
            .iter()
            .copied()
            .filter(|u| group_of[u.index()] != home)
            .collect();
        let computes_on = |u: &NodeId| {
            matches!(
                graph.op(*u).class(),
                OpClass::Elementwise | OpClass::Reduction
            )
        };
        if !outside.iter().all(computes_on) {
            continue;
        }
        let readers: BTreeSet<usize> = outside.iter().map(|u| group_of[u.index()]).collect();
        let mut reads: Vec<NodeId> = Vec::new();
        let available = graph
            .operands(v)
            .iter()
            .all(|&o| match sources(graph, &stored, o) {
                Some(s) => {
                    reads.extend(s);
                    true
                }
                None => false,
            });
        if readers.is_empty() || !available {
            continue;
        }
        let numel = graph.ty(v).shape.numel();
        reads.retain(|s| graph.ty(*s).shape.numel() >= numel);
        reads.sort();
        reads.dedup();
        let cheap_for_all = readers.iter().all(|&h| {
            let inputs = &schedule.groups[h].inputs;
            reads.iter().filter(|s| !inputs.contains(s)).count() <= 1
        });
        if cheap_for_all {
            recompute.insert(v);
        }
    }
    if recompute.is_empty() {
        return None;
    }
    let mut out = Graph::new(graph.name());
    let mut map: Vec<Option<NodeId>> = vec![None; bound];
    // The copy of a recomputed value for each reading group.
    let mut copies: HashMap<(NodeId, usize), NodeId> = HashMap::new();
    for &id in graph.inputs().iter().chain(graph.parameters()) {
        map[id.index()] = Some(crate::fusion::copy_node(graph, &mut out, id, &[]));
    }
    for id in graph.topo_order() {
        if map[id.index()].is_some() {
            continue;
        }
        let here = group_of[id.index()];
        let mut operands: Vec<NodeId> = Vec::new();
        for &o in graph.operands(id).iter() {
            let mapped = if recompute.contains(&o) && group_of[o.index()] != here {
                *copies.entry((o, here)).or_insert_with(|| {
                    let ops: Vec<NodeId> = graph
                        .operands(o)
                        .iter()
                        .map(|x| map[x.index()].expect("operands come first"))
                        .collect();
                    crate::fusion::copy_node(graph, &mut out, o, &ops)
                })
            } else {
                map[o.index()].expect("operands come first")
            };
            operands.push(mapped);
        }
        map[id.index()] = Some(crate::fusion::copy_node(graph, &mut out, id, &operands));
    }
    crate::fusion::copy_roles(graph, &mut out, &map);
    Some(out)
}
