//! The graph: nodes on a petgraph `StableDiGraph`, operands as ordered edges, hash-consing.

use crate::graph_error::GraphError;
use crate::infer::result_type;
use crate::op::{Op, TensorType};
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, NodeIndexable};
use petgraph::Direction;
use smallvec::SmallVec;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Identifies a node. Ids stay valid while other nodes are removed.
pub type NodeId = NodeIndex<u32>;

/// Operand lists are short: inline storage for up to four.
pub type Operands = SmallVec<[NodeId; 4]>;

/// One node: an op, its (cached) result type and an optional label used as its name in dumps.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The operation.
    pub op: Op,
    /// The result type, as [`result_type`] computes it from the op and the operands.
    pub ty: TensorType,
    /// A human-readable name (`h1`, `w1.grad`); not required to be unique.
    pub label: Option<String>,
}

/// A tensor program: a DAG of primitive ops with named inputs, parameters, outputs and
/// parameter updates.
///
/// Edges run from operand to user; an edge's weight is the operand's position. Non-leaf nodes
/// and constants are hash-consed: adding an op that already exists on the same operands returns
/// the existing node, so common subexpressions are shared as they are built. Inputs and
/// parameters are never merged; their names are unique across both.
///
/// Build graphs with [`crate::Builder`]; `Graph` itself offers the lower-level operations that
/// passes and the parser use.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    name: String,
    dag: StableDiGraph<Node, u32>,
    interned: HashMap<(Op, Operands), NodeId>,
    leaves_by_name: HashMap<String, NodeId>,
    inputs: Vec<NodeId>,
    parameters: Vec<NodeId>,
    outputs: Vec<(String, NodeId)>,
    updates: Vec<(NodeId, NodeId)>,
}

impl Graph {
    /// An empty graph called `name`.
    pub fn new(name: &str) -> Graph {
        Graph {
            name: name.to_string(),
            ..Graph::default()
        }
    }

    /// The graph's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renames the graph.
    pub fn set_name(&mut self, name: &str) {
        self.name = name.to_string();
    }

    /// Adds `op` applied to `operands`, checking their types with [`result_type`]; returns the
    /// existing node if the same op on the same operands was added before (leaves excepted).
    ///
    /// Errors: an operand id that is not in the graph, operand types the op does not accept, or
    /// an input/parameter name already taken.
    pub fn add(&mut self, op: Op, operands: &[NodeId]) -> Result<NodeId, GraphError> {
        for &o in operands {
            if !self.contains(o) {
                return Err(GraphError::UnknownNode(o));
            }
        }
        if let Some(&id) = self
            .interned
            .get(&(op.clone(), Operands::from_slice(operands)))
        {
            return Ok(id);
        }
        let ty = {
            let tys: SmallVec<[&TensorType; 4]> = operands.iter().map(|&o| self.ty(o)).collect();
            result_type(&op, &tys).map_err(|reason| GraphError::Type {
                op: op.name(),
                operands: tys.iter().map(|&t| t.clone()).collect(),
                reason,
            })?
        };
        if let Op::Input { name, .. } | Op::Parameter { name, .. } = &op {
            if self.leaves_by_name.contains_key(name) {
                return Err(GraphError::NameTaken(name.clone()));
            }
        }
        Ok(self.insert(op, operands, ty))
    }

    /// Adds a node with the type given, without checking it or merging it with an equal node.
    /// For tools that build a graph first and verify it afterwards ([`Graph::verify`]).
    pub fn add_unchecked(&mut self, op: Op, operands: &[NodeId], ty: TensorType) -> NodeId {
        self.insert(op, operands, ty)
    }

    fn insert(&mut self, op: Op, operands: &[NodeId], ty: TensorType) -> NodeId {
        let key = (op.clone(), Operands::from_slice(operands));
        let named = match &op {
            Op::Input { name, .. } | Op::Parameter { name, .. } => Some(name.clone()),
            _ => None,
        };
        let is_input = matches!(op, Op::Input { .. });
        let id = self.dag.add_node(Node {
            op,
            ty,
            label: None,
        });
        for (i, &o) in operands.iter().enumerate() {
            self.dag.add_edge(o, id, i as u32);
        }
        match named {
            Some(name) => {
                self.leaves_by_name.entry(name).or_insert(id);
                if is_input {
                    self.inputs.push(id);
                } else {
                    self.parameters.push(id);
                }
            }
            None => {
                self.interned.entry(key).or_insert(id);
            }
        }
        id
    }

    /// True if `id` is a node of this graph.
    pub fn contains(&self, id: NodeId) -> bool {
        self.dag.contains_node(id)
    }

    /// The node `id`. Panics if it is not in the graph (ids come from this graph).
    pub fn node(&self, id: NodeId) -> &Node {
        &self.dag[id]
    }

    /// The result type of node `id`.
    pub fn ty(&self, id: NodeId) -> &TensorType {
        &self.dag[id].ty
    }

    /// The op of node `id`.
    pub fn op(&self, id: NodeId) -> &Op {
        &self.dag[id].op
    }

    /// The operands of `id`, in order.
    pub fn operands(&self, id: NodeId) -> Operands {
        let mut edges: SmallVec<[(u32, NodeId); 4]> = self
            .dag
            .edges_directed(id, Direction::Incoming)
            .map(|e| (*e.weight(), e.source()))
            .collect();
        edges.sort_unstable();
        edges.into_iter().map(|(_, n)| n).collect()
    }

    /// The distinct nodes that use `id` as an operand, in ascending id order.
    pub fn users(&self, id: NodeId) -> Vec<NodeId> {
        let mut users: Vec<NodeId> = self
            .dag
            .neighbors_directed(id, Direction::Outgoing)
            .collect();
        users.sort_unstable();
        users.dedup();
        users
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.dag.node_count()
    }

    /// True when the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.dag.node_count() == 0
    }

    /// Every node id in ascending order (not necessarily topological; see
    /// [`Graph::topo_order`]).
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.dag.node_indices()
    }

    /// A deterministic topological order of all nodes: operands before users, ties broken by
    /// ascending id. Nodes on a cycle (only possible through [`Graph::set_operand`]) are left out;
    /// [`Graph::verify`] reports them.
    pub fn topo_order(&self) -> Vec<NodeId> {
        // Operands not yet ordered, by node index: a vector rather than a hash map, since this
        // runs several times per pass on graphs of millions of nodes.
        let mut pending = vec![0usize; self.dag.node_bound()];
        let mut ready = BinaryHeap::new();
        for id in self.dag.node_indices() {
            let n = self.dag.edges_directed(id, Direction::Incoming).count();
            if n == 0 {
                ready.push(Reverse(id));
            } else {
                pending[id.index()] = n;
            }
        }
        let mut order = Vec::with_capacity(self.len());
        while let Some(Reverse(id)) = ready.pop() {
            order.push(id);
            for e in self.dag.edges_directed(id, Direction::Outgoing) {
                let left = &mut pending[e.target().index()];
                *left -= 1;
                if *left == 0 {
                    ready.push(Reverse(e.target()));
                }
            }
        }
        order
    }

    /// The graph's inputs, in the order they were added.
    pub fn inputs(&self) -> &[NodeId] {
        &self.inputs
    }

    /// The graph's parameters, in the order they were added.
    pub fn parameters(&self) -> &[NodeId] {
        &self.parameters
    }

    /// The input or parameter called `name`.
    pub fn leaf(&self, name: &str) -> Option<NodeId> {
        self.leaves_by_name.get(name).copied()
    }

    /// The name of an input or parameter node, `None` for other nodes.
    pub fn leaf_name(&self, id: NodeId) -> Option<&str> {
        match &self.dag[id].op {
            Op::Input { name, .. } | Op::Parameter { name, .. } => Some(name),
            _ => None,
        }
    }

    /// Finds a node by name: an input or parameter, then an output, then a node label.
    pub fn find(&self, name: &str) -> Option<NodeId> {
        self.leaf(name).or_else(|| self.output(name)).or_else(|| {
            self.dag
                .node_indices()
                .find(|&id| self.dag[id].label.as_deref() == Some(name))
        })
    }

    /// Sets the label of node `id`.
    pub fn set_label(&mut self, id: NodeId, label: &str) {
        self.dag[id].label = Some(label.to_string());
    }

    /// The named outputs, in order.
    pub fn outputs(&self) -> &[(String, NodeId)] {
        &self.outputs
    }

    /// The node of output `name`.
    pub fn output(&self, name: &str) -> Option<NodeId> {
        self.outputs
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, id)| id)
    }

    /// Declares `id` an output called `name`, replacing an earlier output of that name.
    pub fn set_output(&mut self, name: &str, id: NodeId) {
        match self.outputs.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = id,
            None => self.outputs.push((name.to_string(), id)),
        }
    }

    /// The parameter updates `(parameter, new value)`, in order: after a step, each parameter
    /// takes its new value (a runtime writes it in place).
    pub fn updates(&self) -> &[(NodeId, NodeId)] {
        &self.updates
    }

    /// The new value declared for `param`, if any.
    pub fn update_of(&self, param: NodeId) -> Option<NodeId> {
        self.updates
            .iter()
            .find(|(p, _)| *p == param)
            .map(|&(_, v)| v)
    }

    /// Declares that after a step `param` takes the value of `value`.
    ///
    /// Errors if `param` is not a parameter or the types differ; a second update of the same
    /// parameter replaces the first.
    pub fn set_update(&mut self, param: NodeId, value: NodeId) -> Result<(), GraphError> {
        for id in [param, value] {
            if !self.contains(id) {
                return Err(GraphError::UnknownNode(id));
            }
        }
        if !matches!(self.dag[param].op, Op::Parameter { .. }) {
            return Err(GraphError::NotAParameter {
                op: self.dag[param].op.name(),
            });
        }
        if self.ty(param) != self.ty(value) {
            return Err(GraphError::UpdateType {
                param: Box::new(self.ty(param).clone()),
                value: Box::new(self.ty(value).clone()),
            });
        }
        match self.updates.iter_mut().find(|(p, _)| *p == param) {
            Some(slot) => slot.1 = value,
            None => self.updates.push((param, value)),
        }
        Ok(())
    }

    /// Replaces operand `index` of `node` with `operand`, without any check. For in-place
    /// rewrites; run [`Graph::verify`] afterwards.
    pub fn set_operand(&mut self, node: NodeId, index: usize, operand: NodeId) {
        let old = self
            .dag
            .edges_directed(node, Direction::Incoming)
            .find(|e| *e.weight() as usize == index)
            .map(|e| e.id());
        if let Some(e) = old {
            self.dag.remove_edge(e);
        }
        self.dag.add_edge(operand, node, index as u32);
        self.rebuild_intern_table();
    }

    /// Removes every node that no output and no update depends on. Inputs and parameters stay:
    /// they are the graph's interface.
    pub fn remove_dead(&mut self) -> usize {
        let mut live = vec![false; self.dag.node_bound()];
        let mut stack: Vec<NodeId> = self.outputs.iter().map(|&(_, id)| id).collect();
        stack.extend(self.updates.iter().flat_map(|&(p, v)| [p, v]));
        stack.extend(self.inputs.iter().chain(&self.parameters).copied());
        while let Some(id) = stack.pop() {
            if !std::mem::replace(&mut live[id.index()], true) {
                stack.extend(self.dag.neighbors_directed(id, Direction::Incoming));
            }
        }
        let dead: Vec<NodeId> = self
            .dag
            .node_indices()
            .filter(|id| !live[id.index()])
            .collect();
        for &id in &dead {
            self.dag.remove_node(id);
        }
        if !dead.is_empty() {
            self.rebuild_intern_table();
        }
        dead.len()
    }

    fn rebuild_intern_table(&mut self) {
        self.interned.clear();
        for id in self.dag.node_indices().collect::<Vec<_>>() {
            let op = &self.dag[id].op;
            if !matches!(op, Op::Input { .. } | Op::Parameter { .. }) {
                let key = (op.clone(), self.operands(id));
                self.interned.entry(key).or_insert(id);
            }
        }
    }

    /// A short description of a node for messages: `#12 matmul "h1"`.
    pub fn describe(&self, id: NodeId) -> String {
        if !self.contains(id) {
            return format!("#{} (not in graph)", id.index());
        }
        let n = &self.dag[id];
        let mut s = format!("#{} {}", id.index(), n.op.name());
        if let Some(name) = self.leaf_name(id) {
            s += &format!(" \"{name}\"");
        } else if let Some(l) = &n.label {
            s += &format!(" \"{l}\"");
        }
        s
    }

    /// Read-only access to the underlying petgraph, for graph algorithms.
    pub fn dag(&self) -> &StableDiGraph<Node, u32> {
        &self.dag
    }
}
