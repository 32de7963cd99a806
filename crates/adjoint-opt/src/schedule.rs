//! The contract between the passes and the code generator: a schedule of fusion groups (each
//! becomes one kernel) and a memory plan placing every intermediate buffer in one arena.
//!
//! A [`Schedule`] is computed for one graph and refers to its nodes by [`NodeId`]; it is only
//! meaningful together with that graph.
//!
//! # What a group may contain
//!
//! [`Schedule::unfused`] puts every node in its own group. The fusion planner
//! ([`crate::fusion`]) builds larger groups, and every group it builds has these properties, so
//! that the code generator can lower each kind with one loop nest:
//!
//! - **Outputs.** `outputs` starts with the group's *root*: the member read by other groups, or
//!   a graph output, or a parameter update. Every other member is used only inside the group,
//!   except in a `RowWise` group, whose other outputs are row-level values or values on the
//!   root's shape.
//! - **Loads.** A group reads memory only through its `inputs` (inputs, parameters, roots of
//!   earlier groups). Constants and iota inside a group are immediates / index arithmetic.
//! - **Movement ops are index maps.** A broadcast, pad or concat inside a group has operands
//!   that are loads, constants, iota or other movement ops — never a value computed in the
//!   group, so nothing is recomputed per re-read element. A reshape, permute or slice may also
//!   sit on a value computed in the group (each element of it is still computed at most once).
//! - **`Elementwise`**: elementwise ops, movement ops, constants and iota, evaluated once per
//!   element of the root's shape (the loop domain); values inside the group are computed at the
//!   index that the movement ops between them and the root map to.
//! - **`RowWise`**: an `Elementwise` group plus row-level members: reductions over the root's
//!   trailing axes (kept as size 1) and elementwise ops on their results, read by the group
//!   only through broadcasts back along those axes. Each is computed once per row.
//! - **`Reduction`**: exactly one `reduce_sum`/`reduce_max` node `r`. Its *prologue* (members
//!   that `r` depends on) is elementwise and movement ops evaluated per element of `r`'s operand
//!   shape as it is read; its *epilogue* (members depending on `r`, the root among them) is
//!   elementwise ops whose computed values all have exactly `r`'s result shape, reading `r` at
//!   the same index, plus movement ops on loads (e.g. a broadcast of a parameter). No member is
//!   in both. E.g. `sum(exp(x - broadcast(m)))` with epilogue `log(·) + reshape(m)` (where `m`
//!   is a load).
//! - **`MatMul`**: exactly one `matmul` node. Its operands are loads through movement ops only
//!   (a transpose, a reshape, a broadcast) — never computed in the group, because each operand
//!   element is read many times. The epilogue is elementwise ops with exactly the matmul's
//!   result shape, reading it at the same index: bias add (a broadcast load), activation,
//!   residual add, an SGD update `w - lr * g` — or the one permute the product is stored
//!   through (`fusion::stores_product_permuted`), which is then the root.
//! - **`Gather`**: exactly one `gather`, operands loads through movement ops, and an elementwise
//!   epilogue of the gather's result shape (e.g. `embedding[tokens] + positions`).
//! - **`ScatterAdd`**: exactly one `scatter_add`, which is the root (no epilogue); its operands
//!   are loads through movement ops.
//! - **`AllReduce`**: exactly one `all_reduce` and nothing else: the host's collective reads
//!   its operand's buffer and writes the result's (never fused, so communication stays one
//!   call per value and its operand is complete in memory when it starts).
//! - **Ordering.** Groups come in an order where every group runs after the groups it reads, and
//!   every group reading a parameter runs before the group writing that parameter's update in
//!   place (see [`crate::memory`]).

use adjoint_ir::{Graph, NodeId, Op, OpClass, Shape};

/// What kind of loop nest a group lowers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupKind {
    /// Elementwise and movement ops (and constants/iota) evaluated per output element; its
    /// movement ops are index maps (strides, offsets, stride-0 broadcast), never copies.
    Elementwise,
    /// A reduction (sum or max over some axes), with elementwise producers fused into its
    /// loads and elementwise consumers of the reduced value fused as an epilogue.
    Reduction,
    /// A matrix product, with elementwise producers of its operands read through index maps
    /// and an elementwise epilogue (bias, activation, residual add).
    MatMul,
    /// A gather (`take`), with fused elementwise producers and consumers.
    Gather,
    /// A scatter-add, which accumulates into a zeroed output.
    ScatterAdd,
    /// Elementwise ops over the root's shape plus *row-level* values: reductions over the
    /// root's trailing axes and elementwise ops on their results, broadcast back along those
    /// axes (softmax, log-softmax, LayerNorm forward and backward). Each row's reductions run
    /// once, before the row's elements; an elementwise value a reduction and the row both read
    /// is computed in each (softmax's `exp` twice per element).
    RowWise,
    /// An all-reduce over the replicas of a data-parallel group, run by the host.
    AllReduce,
}

/// A set of nodes computed by one kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct FusionGroup {
    /// The loop-nest kind.
    pub kind: GroupKind,
    /// The nodes computed inside this kernel, in topological order. Every node of the graph
    /// except inputs and parameters belongs to exactly one group.
    pub nodes: Vec<NodeId>,
    /// The nodes of this group whose values are written to memory: those read by a later
    /// group, and graph outputs and parameter updates.
    pub outputs: Vec<NodeId>,
    /// The values the kernel reads from memory: inputs, parameters, or outputs of earlier
    /// groups, in first-use order.
    pub inputs: Vec<NodeId>,
    /// The group's one reduction, matmul, gather or scatter-add ([`Op::is_anchor`]); `None`
    /// for an elementwise group.
    pub anchor: Option<NodeId>,
    /// The members the anchor depends on, evaluated per element of the anchor's operands as
    /// the anchor reads them (topological order).
    pub prologue: Vec<NodeId>,
    /// The members that depend on the anchor, evaluated per element of the anchor's result at
    /// the index they store (topological order; the root is among them unless it is the
    /// anchor).
    pub epilogue: Vec<NodeId>,
}

impl FusionGroup {
    /// A group of the one node `id` of `graph`: the unfused schedule's groups.
    pub fn single(graph: &Graph, id: NodeId) -> FusionGroup {
        let mut inputs: Vec<NodeId> = Vec::new();
        for o in graph.operands(id) {
            if !inputs.contains(&o) {
                inputs.push(o);
            }
        }
        let op = graph.op(id);
        FusionGroup {
            kind: GroupKind::of(op),
            nodes: vec![id],
            outputs: vec![id],
            inputs,
            anchor: op.is_anchor().then_some(id),
            prologue: Vec::new(),
            epilogue: Vec::new(),
        }
    }

    /// The node the group stores: its one output (the fusion planner makes groups of one
    /// output; see the module documentation).
    pub fn root(&self) -> Option<NodeId> {
        match self.outputs.as_slice() {
            [root] => Some(*root),
            _ => None,
        }
    }
}

/// The kernels of one graph in execution order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Schedule {
    /// Groups in execution order: every group's inputs are inputs, parameters, or outputs of
    /// earlier groups.
    pub groups: Vec<FusionGroup>,
}

/// Where a materialized value lives while a step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// At `offset` bytes into the step's arena.
    Arena {
        /// Byte offset (aligned to [`MemoryPlan::ALIGN`]).
        offset: usize,
    },
    /// Written in place into the storage of parameter node `param` (the value is that
    /// parameter's update; every reader of the old value runs before the group that writes).
    Parameter {
        /// The parameter updated.
        param: NodeId,
    },
}

/// One materialized value: a group output.
#[derive(Clone, Debug, PartialEq)]
pub struct BufferAssignment {
    /// The node whose value is stored.
    pub value: NodeId,
    /// Where.
    pub placement: Placement,
    /// Size in bytes.
    pub bytes: usize,
    /// Index of the group that writes it.
    pub first_group: usize,
    /// Index of the last group that reads it (`usize::MAX` for graph outputs, which stay alive
    /// until the step returns).
    pub last_group: usize,
}

/// The placement of every group output.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemoryPlan {
    /// One entry per group output, in the order the groups write them.
    pub buffers: Vec<BufferAssignment>,
    /// Bytes of the arena.
    pub arena_bytes: usize,
    /// The largest number of bytes of arena values that are live at the same time: no plan
    /// can use less.
    pub lower_bound: usize,
}

impl MemoryPlan {
    /// Alignment of every arena offset, in bytes (one cache line; also enough for any SIMD
    /// load the code generator emits).
    pub const ALIGN: usize = 64;

    /// The assignment of `value`, if it is materialized.
    pub fn buffer(&self, value: NodeId) -> Option<&BufferAssignment> {
        self.buffers.iter().find(|b| b.value == value)
    }
}

/// The longest row (in `f32` values) whose values of one member a row-wise kernel keeps while
/// its row reduction runs, to read them back for the row's elements instead of computing the
/// member again (16 KiB on the generated function's stack). Fusion relies on it to put an
/// expensive member read by a row reduction and by the row's elements (softmax's `exp`) in
/// one group; code generation keeps such rows.
pub const ROW_CACHE_LEN: usize = 4096;

/// True if `shape` is `root`'s shape with some trailing axes reduced to size 1 (and at least
/// one leading axis kept at its size): the shape of a row-level value of a
/// [`GroupKind::RowWise`] group whose root has shape `root`.
pub fn is_row_level(shape: &Shape, root: &Shape) -> bool {
    let (s, r) = (shape.dims(), root.dims());
    if s.len() != r.len() || s == r {
        return false;
    }
    // The first axis where they differ starts a run of 1s to the end, after at least one
    // kept axis: the rows are what the kernel's outer loop runs over in parallel.
    let first = (0..s.len()).find(|&k| s[k] != r[k]).unwrap_or(s.len());
    first > 0 && s[first..].iter().all(|&d| d == 1)
}

impl GroupKind {
    /// The kind of a group whose main node has op `op`.
    pub fn of(op: &Op) -> GroupKind {
        match op.class() {
            OpClass::Reduction => GroupKind::Reduction,
            OpClass::Contraction => GroupKind::MatMul,
            OpClass::Gather => GroupKind::Gather,
            OpClass::Scatter => GroupKind::ScatterAdd,
            OpClass::Collective => GroupKind::AllReduce,
            OpClass::Leaf | OpClass::Elementwise | OpClass::Movement => GroupKind::Elementwise,
        }
    }
}

impl Schedule {
    /// Checks that this is a valid schedule of `graph`: every node except inputs and
    /// parameters is in exactly one group; each group lists its nodes in dependency order; its
    /// inputs are exactly the values it reads from outside (inputs, parameters, or outputs of
    /// earlier groups); its outputs are its own nodes, and include every node read by a later
    /// group, every graph output and every update value.
    pub fn check(&self, graph: &Graph) -> Result<(), InvalidPlan> {
        use std::collections::HashMap;
        let mut group_of: HashMap<NodeId, usize> = HashMap::new();
        for (gi, g) in self.groups.iter().enumerate() {
            if g.nodes.is_empty() {
                return Err(InvalidPlan(format!("group {gi} is empty")));
            }
            for &n in &g.nodes {
                if !graph.contains(n) {
                    return Err(InvalidPlan(format!(
                        "group {gi} holds #{} which is not in the graph",
                        n.index()
                    )));
                }
                if matches!(graph.op(n), Op::Input { .. } | Op::Parameter { .. }) {
                    return Err(InvalidPlan(format!(
                        "group {gi} computes the leaf {}",
                        graph.describe(n)
                    )));
                }
                if let Some(prev) = group_of.insert(n, gi) {
                    return Err(InvalidPlan(format!(
                        "{} is in groups {prev} and {gi}",
                        graph.describe(n)
                    )));
                }
            }
        }
        for id in graph.node_ids() {
            let leaf = matches!(graph.op(id), Op::Input { .. } | Op::Parameter { .. });
            if !leaf && !group_of.contains_key(&id) {
                return Err(InvalidPlan(format!(
                    "{} is in no group",
                    graph.describe(id)
                )));
            }
        }
        let must_write: Vec<NodeId> = graph
            .outputs()
            .iter()
            .map(|&(_, v)| v)
            .chain(graph.updates().iter().map(|&(_, v)| v))
            .collect();
        for (gi, g) in self.groups.iter().enumerate() {
            let mut seen: Vec<NodeId> = Vec::new();
            let mut reads: Vec<NodeId> = Vec::new();
            for &n in &g.nodes {
                for o in graph.operands(n) {
                    match group_of.get(&o) {
                        Some(&h) if h == gi => {
                            if !seen.contains(&o) {
                                return Err(InvalidPlan(format!(
                                    "group {gi} lists {} before its operand {}",
                                    graph.describe(n),
                                    graph.describe(o)
                                )));
                            }
                        }
                        Some(&h) => {
                            if h > gi {
                                return Err(InvalidPlan(format!(
                                    "group {gi} reads {} which group {h} computes later",
                                    graph.describe(o)
                                )));
                            }
                            if !self.groups[h].outputs.contains(&o) {
                                return Err(InvalidPlan(format!(
                                    "group {gi} reads {} which group {h} does not write",
                                    graph.describe(o)
                                )));
                            }
                            if !reads.contains(&o) {
                                reads.push(o);
                            }
                        }
                        None => {
                            if !reads.contains(&o) {
                                reads.push(o);
                            }
                        }
                    }
                }
                seen.push(n);
            }
            let mut a = reads.clone();
            let mut b = g.inputs.clone();
            a.sort_unstable();
            b.sort_unstable();
            if a != b {
                return Err(InvalidPlan(format!(
                    "group {gi} lists inputs {:?} but reads {:?}",
                    g.inputs.iter().map(|n| n.index()).collect::<Vec<_>>(),
                    reads.iter().map(|n| n.index()).collect::<Vec<_>>()
                )));
            }
            if let Some(a) = g.anchor {
                if !g.nodes.contains(&a) || GroupKind::of(graph.op(a)) != g.kind {
                    return Err(InvalidPlan(format!(
                        "group {gi} ({:?}) has anchor {} which is not its {:?} member",
                        g.kind,
                        graph.describe(a),
                        g.kind
                    )));
                }
            } else if !matches!(g.kind, GroupKind::Elementwise | GroupKind::RowWise) {
                return Err(InvalidPlan(format!(
                    "group {gi} ({:?}) has no anchor",
                    g.kind
                )));
            }
            if g.kind == GroupKind::AllReduce && g.nodes.len() != 1 {
                return Err(InvalidPlan(format!(
                    "group {gi} (AllReduce) holds {} nodes: a collective is a group of its own",
                    g.nodes.len()
                )));
            }
            for &m in g.prologue.iter().chain(&g.epilogue) {
                if !g.nodes.contains(&m) || Some(m) == g.anchor {
                    return Err(InvalidPlan(format!(
                        "group {gi}: {} is in its prologue or epilogue but not a non-anchor member",
                        graph.describe(m)
                    )));
                }
            }
            for &o in &g.outputs {
                if group_of.get(&o) != Some(&gi) {
                    return Err(InvalidPlan(format!(
                        "group {gi} outputs {} which it does not compute",
                        graph.describe(o)
                    )));
                }
            }
            for &n in &g.nodes {
                if must_write.contains(&n) && !g.outputs.contains(&n) {
                    return Err(InvalidPlan(format!(
                        "group {gi} does not write {}, a graph output or update",
                        graph.describe(n)
                    )));
                }
            }
        }
        Ok(())
    }

    /// One kernel per node (every node except inputs and parameters, constants included), in
    /// topological order: the unfused execution mode, and the baseline fusion is measured
    /// against.
    pub fn unfused(graph: &Graph) -> Schedule {
        let groups = graph
            .topo_order()
            .into_iter()
            .filter(|&id| !matches!(graph.op(id), Op::Input { .. } | Op::Parameter { .. }))
            .map(|id| FusionGroup::single(graph, id))
            .collect();
        Schedule { groups }
    }
}

/// A schedule or memory plan that breaks an invariant ([`Schedule::check`],
/// [`crate::check_memory_plan`]); the message says which, naming the group, node or buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidPlan(pub String);

impl std::fmt::Display for InvalidPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidPlan {}
