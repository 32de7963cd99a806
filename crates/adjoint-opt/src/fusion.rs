//! Fusion planning: partitions a graph into [`FusionGroup`]s, each one kernel, and orders them.
//!
//! # Duplication versus materialization
//!
//! *Free* nodes — constants, iota and movement ops — cost nothing inside a kernel (a constant
//! is an immediate, a movement op an index map), so [`unshare_free_nodes`] first gives every
//! user its own copy of them. After that, a **computed** node (an elementwise op or an anchor)
//! is never duplicated: it is either fused into the one group that reads it, or materialized
//! (written to memory as its group's output). This is what keeps softmax's shared
//! `x - max` from being computed twice, and what keeps an expensive producer out of a matmul
//! operand load or out from under a broadcast that would re-read it.
//!
//! # The algorithm
//!
//! Nodes are visited consumers first (reverse topological order). A node joins the group of its
//! users when all of its users are in one group, it need not be materialized (graph outputs and
//! parameter updates always are), and the group stays lowerable (the rules in
//! [`crate::schedule`]). Otherwise it starts a new group, whose *root* it is. Every merge saves
//! one write and one read of the producer's bytes; visiting consumers first means that when an
//! elementwise chain could go either into the epilogue of the anchor before it or into the
//! prologue of the reduction after it, it goes to the consumer. Groups are bounded to
//! [`MAX_GROUP_NODES`] nodes. Because every non-root member's users are inside its group, each
//! group has exactly one output (its root) and the group graph is acyclic.

use crate::schedule::{FusionGroup, GroupKind, Schedule};
use adjoint_ir::{Graph, NodeId, Op, OpClass};
use std::collections::{BTreeSet, BinaryHeap};

/// The most nodes one group may hold.
pub const MAX_GROUP_NODES: usize = 64;

/// True for nodes that cost nothing inside a kernel: constants, iota and movement ops.
pub fn is_free(op: &Op) -> bool {
    match op.class() {
        OpClass::Leaf => matches!(op, Op::Constant(_) | Op::Iota { .. }),
        OpClass::Movement => true,
        OpClass::Elementwise
        | OpClass::Reduction
        | OpClass::Contraction
        | OpClass::Gather
        | OpClass::Scatter
        | OpClass::Collective => false,
    }
}

/// A copy of `graph` in which every free node ([`is_free`]) has exactly one user: each user gets
/// its own copy. A free node that is a graph output or a parameter update keeps one more copy
/// for that role. Other nodes are copied one for one, without merging equal nodes (so nodes a
/// rematerialization duplicated on purpose stay apart). Inputs, parameters (names and order),
/// outputs, updates and labels carry over.
pub fn unshare_free_nodes(graph: &Graph) -> Graph {
    let bound = graph.node_ids().map(|n| n.index() + 1).max().unwrap_or(0);
    let mut map: Vec<Option<NodeId>> = vec![None; bound];
    let mut out = Graph::new(graph.name());
    let copy_node = |out: &mut Graph, id: NodeId, operands: &[NodeId]| {
        let n = graph.node(id);
        let new = out.add_unchecked(n.op.clone(), operands, n.ty.clone());
        if let Some(l) = &n.label {
            out.set_label(new, l);
        }
        new
    };
    for &id in graph.inputs().iter().chain(graph.parameters()) {
        map[id.index()] = Some(copy_node(&mut out, id, &[]));
    }
    fn operand(
        graph: &Graph,
        out: &mut Graph,
        map: &[Option<NodeId>],
        o: NodeId,
        copy_node: &dyn Fn(&mut Graph, NodeId, &[NodeId]) -> NodeId,
    ) -> NodeId {
        if is_free(graph.op(o)) {
            let ops: Vec<NodeId> = graph
                .operands(o)
                .iter()
                .map(|&x| operand(graph, out, map, x, copy_node))
                .collect();
            copy_node(out, o, &ops)
        } else {
            map[o.index()].expect("operands are copied first")
        }
    }
    let roles: BTreeSet<NodeId> = graph
        .outputs()
        .iter()
        .map(|&(_, v)| v)
        .chain(graph.updates().iter().map(|&(_, v)| v))
        .collect();
    for id in graph.topo_order() {
        if map[id.index()].is_some() || (is_free(graph.op(id)) && !roles.contains(&id)) {
            continue;
        }
        let ops: Vec<NodeId> = graph
            .operands(id)
            .iter()
            .map(|&o| operand(graph, &mut out, &map, o, &copy_node))
            .collect();
        map[id.index()] = Some(copy_node(&mut out, id, &ops));
    }
    for (name, id) in graph.outputs() {
        out.set_output(name, map[id.index()].expect("outputs are copied"));
    }
    for &(p, v) in graph.updates() {
        let (p, v) = (
            map[p.index()].expect("copied"),
            map[v.index()].expect("copied"),
        );
        out.set_update(p, v).expect("types are unchanged");
    }
    out
}

/// Where a member sits relative to its group's anchor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Region {
    /// No anchor (elementwise group).
    Plain,
    /// Feeds the anchor.
    Prologue,
    /// The anchor itself.
    Anchor,
    /// Consumes the anchor's value.
    Epilogue,
}

struct Building {
    root: NodeId,
    anchor: Option<NodeId>,
    members: Vec<NodeId>,
}

/// Fuses `graph` (best after [`unshare_free_nodes`]) into a schedule: groups following the
/// rules of [`crate::schedule`], in an order that runs every reader of a parameter before the
/// group writing that parameter's update, where that is possible.
pub fn fuse(graph: &Graph) -> Schedule {
    let topo = graph.topo_order();
    let bound = graph.node_ids().map(|n| n.index() + 1).max().unwrap_or(0);
    let mut pos = vec![usize::MAX; bound];
    for (i, &id) in topo.iter().enumerate() {
        pos[id.index()] = i;
    }
    let mut group_of: Vec<Option<usize>> = vec![None; bound];
    let mut region = vec![Region::Plain; bound];
    let mut groups: Vec<Building> = Vec::new();
    let materialized: BTreeSet<NodeId> = graph
        .outputs()
        .iter()
        .map(|&(_, v)| v)
        .chain(graph.updates().iter().map(|&(_, v)| v))
        .collect();
    for &v in topo.iter().rev() {
        let op = graph.op(v);
        if matches!(op, Op::Input { .. } | Op::Parameter { .. }) {
            continue;
        }
        let users = graph.users(v);
        let target = match users.first() {
            Some(u) if !materialized.contains(&v) => {
                let g = group_of[u.index()];
                users
                    .iter()
                    .all(|w| group_of[w.index()] == g)
                    .then_some(g)
                    .flatten()
            }
            _ => None,
        };
        let joined = target.and_then(|gi| {
            let r = join_region(graph, &groups[gi], &region, v, &users)?;
            Some((gi, r))
        });
        match joined {
            Some((gi, r)) => {
                if r == Region::Anchor {
                    for &m in &groups[gi].members {
                        region[m.index()] = Region::Epilogue;
                    }
                    groups[gi].anchor = Some(v);
                }
                region[v.index()] = r;
                groups[gi].members.push(v);
                group_of[v.index()] = Some(gi);
            }
            None => {
                let anchor = op.is_anchor().then_some(v);
                region[v.index()] = if anchor.is_some() {
                    Region::Anchor
                } else {
                    Region::Plain
                };
                group_of[v.index()] = Some(groups.len());
                groups.push(Building {
                    root: v,
                    anchor,
                    members: vec![v],
                });
            }
        }
    }
    order_groups(graph, groups, &group_of, &region, &pos)
}

/// The region `v` would have in group `g`, or `None` if it may not join.
fn join_region(
    graph: &Graph,
    g: &Building,
    region: &[Region],
    v: NodeId,
    users: &[NodeId],
) -> Option<Region> {
    if g.members.len() >= MAX_GROUP_NODES {
        return None;
    }
    let op = graph.op(v);
    // A collective is a host call of its own: nothing joins its group and it joins no group.
    let collective = |n: NodeId| graph.op(n).class() == OpClass::Collective;
    if collective(v) || g.anchor.is_some_and(collective) {
        return None;
    }
    let user_regions: BTreeSet<u8> = users
        .iter()
        .map(|u| match region[u.index()] {
            Region::Plain => 0,
            Region::Prologue | Region::Anchor => 1,
            Region::Epilogue => 2,
        })
        .collect();
    if user_regions.len() > 1 {
        return None; // would be evaluated over two domains
    }
    let feeds_anchor = user_regions.contains(&1);
    let inherited = match (g.anchor.is_some(), feeds_anchor) {
        (false, _) => Region::Plain,
        (true, true) => Region::Prologue,
        (true, false) => Region::Epilogue,
    };
    if is_free(op) {
        return Some(inherited);
    }
    if op.is_anchor() {
        // The group becomes this anchor's epilogue: it must read the anchor's value elementwise
        // at the anchor's index and compute only on the anchor's shape.
        if g.anchor.is_some() || matches!(op, Op::ScatterAdd { .. }) {
            return None;
        }
        let shape = &graph.ty(v).shape;
        let users_elementwise = users.iter().all(|&u| graph.op(u).is_elementwise());
        let members_fit = g.members.iter().all(|&m| {
            let mop = graph.op(m);
            if mop.is_elementwise() {
                graph.ty(m).shape == *shape
            } else {
                // Free members must sit on loads: no computed member underneath.
                graph
                    .operands(m)
                    .iter()
                    .all(|o| !g.members.contains(o) || is_free(graph.op(*o)))
            }
        });
        return (users_elementwise && members_fit).then_some(Region::Anchor);
    }
    // A computed elementwise node: computed once per element, so never under an op that reads
    // an element several times (broadcast) or splices values (pad, concat).
    let rereads = users.iter().any(|&u| {
        matches!(
            graph.op(u),
            Op::Broadcast { .. } | Op::Pad { .. } | Op::Concat { .. }
        )
    });
    if rereads {
        return None;
    }
    if inherited == Region::Prologue {
        // Matmul, gather and scatter read operands many times or out of order: only loads.
        let anchor_op = graph.op(g.anchor.expect("prologue implies an anchor"));
        if !matches!(anchor_op, Op::Reduce { .. }) {
            return None;
        }
    }
    if inherited == Region::Epilogue {
        let shape = &graph
            .ty(g.anchor.expect("epilogue implies an anchor"))
            .shape;
        if graph.ty(v).shape != *shape {
            return None;
        }
    }
    Some(inherited)
}

fn order_groups(
    graph: &Graph,
    groups: Vec<Building>,
    group_of: &[Option<usize>],
    region: &[Region],
    pos: &[usize],
) -> Schedule {
    let n = groups.len();
    let mut built: Vec<FusionGroup> = groups
        .iter()
        .map(|b| {
            let mut nodes = b.members.clone();
            nodes.sort_by_key(|m| pos[m.index()]);
            let in_region = |r: Region| -> Vec<NodeId> {
                nodes
                    .iter()
                    .copied()
                    .filter(|m| region[m.index()] == r)
                    .collect()
            };
            let (prologue, epilogue) = (in_region(Region::Prologue), in_region(Region::Epilogue));
            let mut inputs = Vec::new();
            for &m in &nodes {
                for o in graph.operands(m) {
                    if !b.members.contains(&o) && !inputs.contains(&o) {
                        inputs.push(o);
                    }
                }
            }
            FusionGroup {
                kind: b
                    .anchor
                    .map_or(GroupKind::Elementwise, |a| GroupKind::of(graph.op(a))),
                nodes,
                outputs: vec![b.root],
                inputs,
                anchor: b.anchor,
                prologue,
                epilogue,
            }
        })
        .collect();
    // Data dependencies between groups.
    let mut succ: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for (gi, g) in built.iter().enumerate() {
        for i in &g.inputs {
            if let Some(h) = group_of[i.index()] {
                succ[h].insert(gi);
            }
        }
    }
    // Anti-dependencies of in-place updates: readers of the old parameter value first, unless
    // that would form a cycle (then the update is not written in place; see the memory plan).
    for &(p, v) in graph.updates() {
        let Some(w) = group_of[v.index()] else {
            continue;
        };
        let readers: Vec<usize> = (0..n)
            .filter(|&r| r != w && built[r].inputs.contains(&p))
            .collect();
        let reach = reachable(&succ, w);
        if readers.iter().all(|r| !reach[*r]) {
            for r in readers {
                succ[r].insert(w);
            }
        }
    }
    let mut indeg = vec![0usize; n];
    for s in &succ {
        for &t in s {
            indeg[t] += 1;
        }
    }
    let key = |g: usize| std::cmp::Reverse((pos[groups[g].root.index()], g));
    let mut ready: BinaryHeap<_> = (0..n).filter(|&g| indeg[g] == 0).map(key).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(std::cmp::Reverse((_, g))) = ready.pop() {
        order.push(g);
        for &t in &succ[g] {
            indeg[t] -= 1;
            if indeg[t] == 0 {
                ready.push(key(t));
            }
        }
    }
    debug_assert_eq!(order.len(), n, "the group graph is acyclic");
    let mut slots: Vec<Option<FusionGroup>> = built.drain(..).map(Some).collect();
    Schedule {
        groups: order
            .into_iter()
            .map(|g| slots[g].take().expect("each group once"))
            .collect(),
    }
}

fn reachable(succ: &[BTreeSet<usize>], from: usize) -> Vec<bool> {
    let mut seen = vec![false; succ.len()];
    let mut stack = vec![from];
    while let Some(g) = stack.pop() {
        if !std::mem::replace(&mut seen[g], true) {
            stack.extend(succ[g].iter().copied());
        }
    }
    seen
}
