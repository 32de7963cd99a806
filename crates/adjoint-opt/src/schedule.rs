//! The contract between the passes and the code generator: a schedule of fusion groups (each
//! becomes one kernel) and a memory plan placing every intermediate buffer in one arena.
//!
//! A [`Schedule`] is computed for one graph and refers to its nodes by [`NodeId`]; it is only
//! meaningful together with that graph.

use adjoint_ir::{Graph, NodeId, Op};

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

impl GroupKind {
    /// The kind of a group whose main node has op `op`.
    pub fn of(op: &Op) -> GroupKind {
        match op {
            Op::Reduce { .. } => GroupKind::Reduction,
            Op::MatMul => GroupKind::MatMul,
            Op::Gather { .. } => GroupKind::Gather,
            Op::ScatterAdd { .. } => GroupKind::ScatterAdd,
            _ => GroupKind::Elementwise,
        }
    }
}

impl Schedule {
    /// One kernel per node (every node except inputs and parameters, constants included), in
    /// topological order: the unfused execution mode, and the baseline fusion is measured
    /// against.
    pub fn unfused(graph: &Graph) -> Schedule {
        let groups = graph
            .topo_order()
            .into_iter()
            .filter(|&id| !matches!(graph.op(id), Op::Input { .. } | Op::Parameter { .. }))
            .map(|id| {
                let mut inputs: Vec<NodeId> = Vec::new();
                for o in graph.operands(id) {
                    if !inputs.contains(&o) {
                        inputs.push(o);
                    }
                }
                FusionGroup {
                    kind: GroupKind::of(graph.op(id)),
                    nodes: vec![id],
                    outputs: vec![id],
                    inputs,
                }
            })
            .collect();
        Schedule { groups }
    }
}
