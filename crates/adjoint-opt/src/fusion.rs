//! Fusion planning: partitions a graph into [`FusionGroup`]s, each one kernel, and orders them.
//!
//! # Duplication versus materialization
//!
//! *Free* nodes — constants, iota and movement ops — cost nothing inside a kernel (a constant
//! is an immediate, a movement op an index map), so [`unshare_free_nodes`] first gives every
//! user its own copy of them. After that, a **computed** node (an elementwise op or an anchor)
//! is never duplicated here: it is either fused into the one group that reads it, or
//! materialized (written to memory as its group's output). (The planner then gives readers
//! their own copies of cheap stored values and fuses again: [`crate::recompute`].) This is what keeps softmax's shared
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
//! [`MAX_GROUP_NODES`] nodes. Every non-root member's users are inside its group, so the group
//! has one output (its root) — except the extra outputs of [`extra_output`].
//!
//! # Row-wise groups
//!
//! In a group without an anchor, a *row-level* value — a reduction over the root's trailing
//! axes, or an elementwise op on such values, that the group broadcasts back along those axes —
//! may join too ([`GroupKind::RowWise`]): softmax and LayerNorm become one kernel each, whose
//! code computes a row's reductions once before the row's elements. A row-wise group also
//! takes members that other groups read as extra outputs ([`extra_output`]), when they are
//! row-level or on the root's shape and the group graph stays acyclic.
//!
//! # Extra outputs of elementwise groups
//!
//! A plain elementwise group also stores members that other groups read, when every such
//! group comes after it in the order (their roots come later in the graph): then storing the
//! value from this group writes it no earlier than a kernel of its own would, and no reader
//! waits for it. A forward elementwise chain whose values the backward pass reads is then one
//! kernel per 64 nodes instead of one per stored value (the 10^6-op chain of
//! `adjoint-jit/tests/deep_chain.rs`: 0.6 kernels per op before, 0.11 after), and W3 and W4
//! take 96 → 79 and 134 → 120 kernels with the same arenas.

use crate::schedule::{is_row_level, FusionGroup, GroupKind, Schedule, ROW_CACHE_LEN};
use adjoint_ir::{DType, Graph, NodeId, Op, OpClass, Shape};
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
/// for that role; a permute that a product is stored through ([`stores_product_permuted`]) is
/// copied once and shared by its users. Other nodes are copied one for one, without merging
/// equal nodes (so nodes a rematerialization duplicated on purpose stay apart). Inputs,
/// parameters (names and order), outputs, updates and labels carry over.
pub fn unshare_free_nodes(graph: &Graph) -> Graph {
    let bound = graph.node_ids().map(|n| n.index() + 1).max().unwrap_or(0);
    let mut map: Vec<Option<NodeId>> = vec![None; bound];
    let mut out = Graph::new(graph.name());
    let copy_node =
        |out: &mut Graph, id: NodeId, operands: &[NodeId]| copy_node(graph, out, id, operands);
    for &id in graph.inputs().iter().chain(graph.parameters()) {
        map[id.index()] = Some(copy_node(&mut out, id, &[]));
    }
    let shared: BTreeSet<NodeId> = graph
        .node_ids()
        .filter(|&p| stores_product_permuted(graph, p))
        .collect();
    fn operand(
        graph: &Graph,
        out: &mut Graph,
        map: &[Option<NodeId>],
        shared: &BTreeSet<NodeId>,
        o: NodeId,
        copy_node: &dyn Fn(&mut Graph, NodeId, &[NodeId]) -> NodeId,
    ) -> NodeId {
        if is_free(graph.op(o)) && !shared.contains(&o) {
            let ops: Vec<NodeId> = graph
                .operands(o)
                .iter()
                .map(|&x| operand(graph, out, map, shared, x, copy_node))
                .collect();
            copy_node(out, o, &ops)
        } else {
            map[o.index()].expect("operands are copied first")
        }
    }
    let roles = stored_regardless(graph);
    for id in graph.topo_order() {
        let own_copies = is_free(graph.op(id)) && !roles.contains(&id) && !shared.contains(&id);
        if map[id.index()].is_some() || own_copies {
            continue;
        }
        let ops: Vec<NodeId> = graph
            .operands(id)
            .iter()
            .map(|&o| operand(graph, &mut out, &map, &shared, o, &copy_node))
            .collect();
        map[id.index()] = Some(copy_node(&mut out, id, &ops));
    }
    copy_roles(graph, &mut out, &map);
    out
}

/// True if `p` is a permute that its operand, a matmul, is stored through: the product is
/// read by `p` alone, is neither a graph output nor a parameter update, and `p` puts one of
/// the product's two matrix axes last (its columns, or its rows: a transposed product). Such a
/// product is stored in the permuted layout, as `p` — the host kernel writes `C` at the
/// permuted strides, whole tile rows at a time, at no cost — so the kernels reading `p`
/// (attention's heads concatenated for the output projection, the query, key and value
/// gradients for their weight and input products) read it in place instead of each copying
/// it into a panel first. Free nodes are otherwise given to their readers
/// ([`unshare_free_nodes`]); `p` is shared by them and is the root of the product's group.
pub fn stores_product_permuted(graph: &Graph, p: NodeId) -> bool {
    let Op::Permute { perm } = graph.op(p) else {
        return false;
    };
    let rank = perm.len();
    let identity = perm.iter().enumerate().all(|(i, &a)| i == a);
    let [m] = graph.operands(p)[..] else {
        return false;
    };
    !identity
        && rank >= 2
        && perm[rank - 1] + 2 >= rank
        && matches!(graph.op(m), Op::MatMul)
        && graph.users(m) == [p]
        && !graph.outputs().iter().any(|&(_, v)| v == m)
        && !graph.updates().iter().any(|&(_, v)| v == m)
}

/// The values a plan stores whatever the grouping: graph outputs and parameter updates.
pub(crate) fn stored_regardless(graph: &Graph) -> BTreeSet<NodeId> {
    graph
        .outputs()
        .iter()
        .map(|&(_, v)| v)
        .chain(graph.updates().iter().map(|&(_, v)| v))
        .collect()
}

/// Adds to `out` a copy of node `id` of `graph` (its op, type and label) on `operands`.
pub(crate) fn copy_node(graph: &Graph, out: &mut Graph, id: NodeId, operands: &[NodeId]) -> NodeId {
    let n = graph.node(id);
    let new = out.add_unchecked(n.op.clone(), operands, n.ty.clone());
    if let Some(l) = &n.label {
        out.set_label(new, l);
    }
    new
}

/// Sets `graph`'s outputs and parameter updates on `out`, through `map` (node index in `graph`
/// to its copy in `out`).
pub(crate) fn copy_roles(graph: &Graph, out: &mut Graph, map: &[Option<NodeId>]) {
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
    /// Holds row-level members: values over the root's leading axes, broadcast back along its
    /// trailing axes (a row-wise group; see [`GroupKind::RowWise`]).
    row: bool,
}

/// How a node joins a group.
struct Join {
    region: Region,
    /// The node is row-level: the group becomes row-wise.
    row: bool,
}

/// Fuses `graph` (best after [`unshare_free_nodes`]) into a schedule: groups following the
/// rules of [`crate::schedule`], in an order that runs every reader of a parameter before the
/// group writing that parameter's update, where that is possible.
pub fn fuse(graph: &Graph) -> Schedule {
    // Extra outputs are checked to keep the group graph acyclic; should a cycle slip through,
    // fusing without them is always acyclic (every group is then convex).
    fuse_with(graph, true)
        .or_else(|| fuse_with(graph, false))
        .expect("fusion without extra outputs orders its groups")
}

/// [`fuse`], with or without extra outputs; `None` if the groups cannot be ordered.
fn fuse_with(graph: &Graph, extra_outputs: bool) -> Option<Schedule> {
    let topo = graph.topo_order();
    let bound = graph.node_ids().map(|n| n.index() + 1).max().unwrap_or(0);
    let mut pos = vec![usize::MAX; bound];
    for (i, &id) in topo.iter().enumerate() {
        pos[id.index()] = i;
    }
    let mut group_of: Vec<Option<usize>> = vec![None; bound];
    let mut region = vec![Region::Plain; bound];
    let mut groups: Vec<Building> = Vec::new();
    let mut materialized = stored_regardless(graph);
    materialized.extend(
        graph
            .node_ids()
            .filter(|&p| stores_product_permuted(graph, p)),
    );
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
        let joined = target
            .and_then(|gi| {
                let j = join_region(graph, &groups[gi], &region, v, &users)?;
                Some((gi, j))
            })
            .or_else(|| {
                extra_outputs
                    .then(|| extra_output(graph, &groups, &group_of, &region, &pos, v, &users))
                    .flatten()
            });
        match joined {
            Some((gi, Join { region: r, row })) => {
                groups[gi].row |= row;
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
                    row: false,
                });
            }
        }
    }
    order_groups(graph, groups, &group_of, &region, &pos, &materialized)
}

/// A group that `v` may join as an additional output although some of its users are elsewhere
/// (or it is a graph output): a group without an anchor holding some of its users, where `v`
/// is row-level (row-wise groups) or computed on the group's domain (the root's shape), and
/// joining keeps the group graph acyclic. A plain elementwise group takes `v` only when every
/// other group reading it is ordered after it anyway. This is what lets softmax store both
/// `exp` and its result, and its row sums, from one kernel when the backward pass reads them;
/// Adam update its two moments and the weight in one pass (the moments are updates, read by
/// that group alone); and one kernel run 64 nodes of an elementwise chain whose values the
/// backward pass reads, instead of one kernel per stored value.
fn extra_output(
    graph: &Graph,
    groups: &[Building],
    group_of: &[Option<usize>],
    region: &[Region],
    pos: &[usize],
    v: NodeId,
    users: &[NodeId],
) -> Option<(usize, Join)> {
    let op = graph.op(v);
    if is_free(op) || (op.is_anchor() && !matches!(op, Op::Reduce { .. })) {
        return None;
    }
    // A value whose operand is a matmul or gather read by it alone is better as the root of
    // that anchor's group (its epilogue: the anchor's result is never stored) than as an extra
    // output here (both stored). A reduction can follow it into a row-wise group instead.
    let epilogue_of_anchor = graph.operands(v).iter().any(|&o| {
        let oop = graph.op(o);
        oop.is_anchor() && !matches!(oop, Op::Reduce { .. }) && graph.users(o).len() == 1
    });
    if epilogue_of_anchor {
        return None;
    }
    let mut candidates: Vec<usize> = users.iter().filter_map(|u| group_of[u.index()]).collect();
    candidates.dedup();
    for gi in candidates {
        let g = &groups[gi];
        if g.anchor.is_some() {
            continue;
        }
        let inside: Vec<NodeId> = users
            .iter()
            .copied()
            .filter(|u| group_of[u.index()] == Some(gi))
            .collect();
        let root_shape = &graph.ty(g.root).shape;
        let shape = &graph.ty(v).shape;
        let on_domain = shape == root_shape && op.is_elementwise();
        if !on_domain && !is_row_level(shape, root_shape) {
            continue;
        }
        let Some(j) = join_region(graph, g, region, v, &inside) else {
            continue;
        };
        // Row-wise groups take extra outputs: there they let one kernel compute what the
        // backward pass reads (softmax's exp and row sums). A plain elementwise group takes
        // one only when every group reading it outside runs after this group anyway: then
        // the value is written later than by a kernel of its own, never earlier, and no
        // reader has to wait for this group (which would hold other values longer: an
        // elementwise group storing several full-size values that the backward reads at
        // different times raised W4's live set). This is what keeps a deep elementwise chain
        // whose every other value the backward reads from becoming a kernel per value.
        let later_readers_only = || {
            let root_pos = pos[g.root.index()];
            users
                .iter()
                .filter_map(|u| group_of[u.index()].filter(|&h| h != gi))
                .all(|h| pos[groups[h].root.index()] > root_pos)
        };
        if !(j.row || (on_domain && (g.row || later_readers_only()))) {
            continue;
        }
        if !reaches_group(graph, group_of, groups, pos, gi, users) {
            return Some((gi, j));
        }
    }
    None
}

/// True if a group holding a user of `v` outside group `gi` reaches `gi` in the graph of
/// groups (an edge from each group to every group reading one of its members): then `v` in
/// `gi`, stored for those users, would close a cycle. Groups are not convex — a group may read
/// another's extra output and be read by it through other nodes — so the walk is over groups,
/// not over `v`'s users alone. A group whose members all come after `gi`'s last member cannot
/// lead back into it and is not followed; past a bounded number of visits the answer is yes.
fn reaches_group(
    graph: &Graph,
    group_of: &[Option<usize>],
    groups: &[Building],
    pos: &[usize],
    gi: usize,
    users: &[NodeId],
) -> bool {
    /// Users looked at before the answer is taken to be yes (compile time stays bounded).
    const LIMIT: usize = 4096;
    let last = groups[gi]
        .members
        .iter()
        .map(|m| pos[m.index()])
        .max()
        .unwrap_or(0);
    let mut stack: Vec<usize> = users
        .iter()
        .filter_map(|u| group_of[u.index()])
        .filter(|&h| h != gi)
        .collect();
    let mut seen = BTreeSet::new();
    let mut visits = 0;
    while let Some(h) = stack.pop() {
        if h == gi {
            return true;
        }
        if !seen.insert(h) {
            continue;
        }
        let first = groups[h].members.iter().map(|m| pos[m.index()]).min();
        if first.is_none_or(|f| f > last) {
            continue;
        }
        for &m in &groups[h].members {
            for u in graph.users(m) {
                visits += 1;
                if visits > LIMIT {
                    return true;
                }
                match group_of[u.index()] {
                    Some(z) if z != h => stack.push(z),
                    _ => {}
                }
            }
        }
    }
    false
}

/// How `v` would join group `g`, or `None` if it may not.
fn join_region(
    graph: &Graph,
    g: &Building,
    region: &[Region],
    v: NodeId,
    users: &[NodeId],
) -> Option<Join> {
    let plain = |region| Join { region, row: false };
    join_rule(graph, g, region, v, users, &plain)
}

/// The fusion rules behind [`join_region`].
fn join_rule(
    graph: &Graph,
    g: &Building,
    region: &[Region],
    v: NodeId,
    users: &[NodeId],
    plain: &dyn Fn(Region) -> Join,
) -> Option<Join> {
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
        return Some(plain(inherited));
    }
    // In a row-wise group a member read by several members is computed once per reader
    // context (inside a row reduction and again for the row): only cheap ones may be. An
    // `exp` or a division computed two or three times per element cost more than storing it
    // once (W4's softmax backward ran 35% slower that way) — unless the kernel keeps the
    // row's values as its reduction computes them ([`row_cached`]).
    if g.row
        && users.len() > 1
        && op.is_elementwise()
        && crate::cost::elementwise_flops(op) > 1
        && !row_cached(graph, g, v, users)
    {
        return None;
    }
    // Row-level members: in a group without an anchor, a value over the root's leading axes
    // that the group broadcasts back along its trailing axes is computed once per row, before
    // the row's elements (softmax's max and sum, LayerNorm's mean and variance).
    let root_shape = &graph.ty(g.root).shape;
    let row_level = g.anchor.is_none()
        && !users.is_empty()
        && users.iter().all(|&u| {
            g.row && is_row_level(&graph.ty(v).shape, root_shape)
                || feeds_trailing_broadcast(graph, u, root_shape)
        });
    if row_level && (op.is_elementwise() || reduces_trailing_axes(op, &graph.ty(v).shape)) {
        return Some(Join {
            region: Region::Plain,
            row: true,
        });
    }
    if op.is_anchor() {
        // The group becomes this anchor's epilogue: it must read the anchor's value elementwise
        // at the anchor's index and compute only on the anchor's shape.
        if g.anchor.is_some() || g.row || matches!(op, Op::ScatterAdd { .. }) {
            return None;
        }
        let shape = &graph.ty(v).shape;
        // A product stored through a permute is that permute's group: its root.
        let users_elementwise = users.iter().all(|&u| {
            graph.op(u).is_elementwise() || (u == g.root && stores_product_permuted(graph, u))
        });
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
        return (users_elementwise && members_fit).then(|| plain(Region::Anchor));
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
        // Matmul, gather and scatter read operands many times or out of order: only loads —
        // except a matmul operand's cast from f32 to a 16-bit type, which the host kernel
        // applies as it packs the f32 values (so the 16-bit copy is never stored).
        let anchor_op = graph.op(g.anchor.expect("prologue implies an anchor"));
        let packed_cast = matches!(anchor_op, Op::MatMul) && narrows_f32(graph, v);
        if !matches!(anchor_op, Op::Reduce { .. }) && !packed_cast {
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
    Some(plain(inherited))
}

/// True if the member `v` of row-wise group `g` is read by one reduction over its last axis
/// alone and otherwise only by elementwise members on its shape, the root's, with rows of at
/// most [`ROW_CACHE_LEN`] `f32` values: softmax's `exp`, summed and then divided by the sum.
/// The generated kernel keeps a row's values of `v` as the reduction computes them and reads
/// them back for the row's elements (adjoint-jit's row cache), so `v` is computed once per
/// element although two members read it.
fn row_cached(graph: &Graph, g: &Building, v: NodeId, users: &[NodeId]) -> bool {
    let shape = &graph.ty(v).shape;
    let dims = shape.dims();
    let Some(last) = dims.len().checked_sub(1) else {
        return false;
    };
    if *shape != graph.ty(g.root).shape
        || graph.ty(v).dtype != DType::F32
        || last == 0
        || dims[last] > ROW_CACHE_LEN
    {
        return false;
    }
    let mut reductions = 0;
    for &u in users {
        match graph.op(u) {
            Op::Reduce {
                axes,
                keepdims: true,
                ..
            } if axes.as_slice() == [last] => reductions += 1,
            op if op.is_elementwise() && graph.ty(u).shape == *shape => {}
            _ => return false,
        }
    }
    reductions == 1
}

/// True if `v` is a cast from `f32` to a 16-bit float type (a mixed-precision operand).
fn narrows_f32(graph: &Graph, v: NodeId) -> bool {
    matches!(graph.op(v), Op::Cast { .. })
        && graph.ty(v).dtype.is_half()
        && graph.ty(graph.operands(v)[0]).dtype == DType::F32
}

/// True if node `u` re-expands a row-level value to the root's shape along trailing axes only:
/// a broadcast from a row-level shape to `root` (or a reshape that only adds or removes
/// size-1 axes, each of whose users does so).
fn feeds_trailing_broadcast(graph: &Graph, u: NodeId, root: &Shape) -> bool {
    let from = || &graph.ty(graph.operands(u)[0]).shape;
    if let Op::Broadcast { shape } = graph.op(u) {
        return shape == root && is_row_level(from(), root);
    }
    if let Op::Reshape { shape } = graph.op(u) {
        let non_unit = |d: &[usize]| d.iter().copied().filter(|&x| x != 1).collect::<Vec<_>>();
        return non_unit(from().dims()) == non_unit(shape.dims())
            && graph
                .users(u)
                .iter()
                .all(|&w| feeds_trailing_broadcast(graph, w, root));
    }
    false
}

/// True if `op` is a reduction over trailing axes of its operand (the axes after the first
/// reduced one are all reduced or of size 1) that keeps them as size 1, so its result is
/// row-level; `shape` is its result's shape.
fn reduces_trailing_axes(op: &Op, shape: &Shape) -> bool {
    let Op::Reduce { axes, keepdims, .. } = op else {
        return false;
    };
    let Some(&first) = axes.first() else {
        return false;
    };
    *keepdims && first > 0 && shape.dims()[first..].iter().all(|&d| d == 1)
}

/// The order key of every group: `(position of its root in the graph, 0)`, except for the
/// *eager* groups, which run as soon as their inputs are ready: `(the largest key among the
/// groups they depend on, 1)`.
///
/// Eager groups are those writing a parameter update, and the groups computed from
/// parameters alone whose every consumer is eager (an optimizer's step-count
/// corrections). Running an update right after its gradient frees the gradient there and
/// then, instead of holding every gradient until the optimizer runs at the end of the step;
/// the anti-dependency edges still run every reader of the old parameter value first.
fn eager_priorities(
    graph: &Graph,
    built: &[FusionGroup],
    group_of: &[Option<usize>],
    succ: &[BTreeSet<usize>],
    indeg: &[usize],
    position: impl Fn(usize) -> usize,
) -> Vec<(usize, usize)> {
    let n = built.len();
    // Any topological order of the group graph.
    let mut left = indeg.to_vec();
    let mut topo: Vec<usize> = (0..n).filter(|&g| left[g] == 0).collect();
    let mut i = 0;
    while i < topo.len() {
        for &t in &succ[topo[i]] {
            left[t] -= 1;
            if left[t] == 0 {
                topo.push(t);
            }
        }
        i += 1;
    }
    let updates: BTreeSet<NodeId> = graph.updates().iter().map(|&(_, v)| v).collect();
    let outputs: BTreeSet<NodeId> = graph.outputs().iter().map(|&(_, v)| v).collect();
    // Computed from parameters alone (not from the step's inputs).
    let mut from_parameters = vec![false; n];
    for &g in &topo {
        from_parameters[g] = built[g].inputs.iter().all(|&i| match group_of[i.index()] {
            Some(h) => from_parameters[h],
            None => matches!(graph.op(i), Op::Parameter { .. }),
        });
    }
    let mut eager = vec![false; n];
    for &g in topo.iter().rev() {
        let root = built[g].outputs[0];
        eager[g] = updates.contains(&root)
            || (from_parameters[g]
                && !outputs.contains(&root)
                && !succ[g].is_empty()
                && succ[g].iter().all(|&t| eager[t]));
    }
    let mut pred: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (g, s) in succ.iter().enumerate() {
        for &t in s {
            pred[t].push(g);
        }
    }
    let mut priority = vec![(0usize, 0usize); n];
    for &g in &topo {
        priority[g] = if eager[g] {
            (pred[g].iter().map(|&p| priority[p].0).max().unwrap_or(0), 1)
        } else {
            (position(g), 0)
        };
    }
    priority
}

fn order_groups(
    graph: &Graph,
    groups: Vec<Building>,
    group_of: &[Option<usize>],
    region: &[Region],
    pos: &[usize],
    materialized: &BTreeSet<NodeId>,
) -> Option<Schedule> {
    let n = groups.len();
    let mut built: Vec<FusionGroup> = groups
        .iter()
        .enumerate()
        .map(|(gi, b)| {
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
            let plain_kind = if b.row {
                GroupKind::RowWise
            } else {
                GroupKind::Elementwise
            };
            FusionGroup {
                kind: b.anchor.map_or(plain_kind, |a| GroupKind::of(graph.op(a))),
                outputs: outputs_of(graph, b, gi, group_of, materialized, &nodes),
                nodes,
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
    let priority = eager_priorities(graph, &built, group_of, &succ, &indeg, |g| {
        pos[groups[g].root.index()]
    });
    let key = |g: usize| std::cmp::Reverse((priority[g], g));
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
    if order.len() != n {
        // A cycle among the groups.
        return None;
    }
    let mut slots: Vec<Option<FusionGroup>> = built.drain(..).map(Some).collect();
    Some(Schedule {
        groups: order
            .into_iter()
            .map(|g| slots[g].take().expect("each group once"))
            .collect(),
    })
}

/// The members of group `gi` stored to memory: its root first, then (in topological order) the
/// members that are graph outputs, parameter updates or read by another group.
fn outputs_of(
    graph: &Graph,
    b: &Building,
    gi: usize,
    group_of: &[Option<usize>],
    materialized: &BTreeSet<NodeId>,
    nodes: &[NodeId],
) -> Vec<NodeId> {
    let mut outputs = vec![b.root];
    for &m in nodes {
        let read_outside = graph
            .users(m)
            .iter()
            .any(|u| group_of[u.index()] != Some(gi));
        if m != b.root && (materialized.contains(&m) || read_outside) {
            outputs.push(m);
        }
    }
    outputs
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

#[cfg(test)]
mod tests {
    use super::*;
    use adjoint_ir::Builder;

    /// A per-head product concatenated back into rows and read by two products is stored once,
    /// through the permute, by the product's own group; a product that something else reads
    /// too, or a permute that puts a batch axis last, keeps the row-major product.
    #[test]
    fn products_are_stored_through_the_permute_their_readers_want() {
        let b = Builder::new("heads");
        let p = b.input("p", DType::F32, [2, 3, 4, 4]);
        let v = b.input("v", DType::F32, [2, 3, 4, 5]);
        let w = b.input("w", DType::F32, [15, 6]);
        let x = b.input("x", DType::F32, [8, 7]);
        let heads = p.matmul(v).permute(&[0, 2, 1, 3]).reshape([8, 15]);
        b.output("proj", heads.matmul(w));
        b.output("grad", x.transpose(0, 1).matmul(heads));
        let (p2, p3) = (p * 2.0, p * 3.0);
        let shared = p2.matmul(v);
        b.output("shared", shared);
        b.output(
            "shared_t",
            shared.permute(&[0, 2, 1, 3]).reshape([8, 15]).matmul(w),
        );
        b.output("batch_last", p3.matmul(v).permute(&[0, 2, 3, 1]) * 2.0);
        let g = unshare_free_nodes(&b.finish());
        let permuted: Vec<NodeId> = g
            .node_ids()
            .filter(|&n| stores_product_permuted(&g, n))
            .collect();
        assert_eq!(permuted.len(), 1, "{}", adjoint_ir::text::print(&g));
        let root = permuted[0];
        assert_eq!(g.users(root).len(), 2, "the readers share the permute");
        let s = fuse(&g);
        s.check(&g).unwrap();
        let group = s.groups.iter().find(|gr| gr.nodes.contains(&root)).unwrap();
        assert_eq!(group.kind, GroupKind::MatMul);
        assert_eq!(group.outputs, vec![root]);
        assert_eq!(group.anchor, Some(g.operands(root)[0]));
    }

    /// A fuzz case (minimized): a row sum read by two row-wise groups, one of which already
    /// reads the other's extra output. Storing the sum from the first group would make the
    /// two groups read each other; the group-level check refuses it without the fallback.
    #[test]
    fn extra_outputs_never_make_groups_read_each_other() {
        let text = include_str!("../../adjoint-jit/tests/data/fuzz_extra_output_group_cycle.adj");
        let g = unshare_free_nodes(&adjoint_ir::text::parse(text).unwrap());
        let s = fuse_with(&g, true).expect("the groups are ordered");
        s.check(&g).unwrap();
        let grouped: usize = s.groups.iter().map(|gr| gr.nodes.len()).sum();
        let computed = g
            .node_ids()
            .filter(|&n| !matches!(g.op(n), Op::Input { .. } | Op::Parameter { .. }))
            .count();
        assert_eq!(grouped, computed);
    }
}
