//! The verifier: checks every invariant a well-formed graph keeps.

use crate::graph::{Graph, NodeId};
use crate::infer::result_type;
use crate::op::{Op, TensorType};
use petgraph::visit::NodeIndexable;
use petgraph::Direction;
use std::collections::HashMap;
use std::fmt;

/// What the verifier found wrong, and at which node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// The offending node, when the problem belongs to one.
    pub node: Option<NodeId>,
    /// The node as [`Graph::describe`] names it (empty when there is none).
    pub node_desc: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.node_desc.is_empty() {
            write!(f, "invalid graph: {}", self.message)
        } else {
            write!(f, "invalid node {}: {}", self.node_desc, self.message)
        }
    }
}

impl std::error::Error for VerifyError {}

impl Graph {
    /// Checks that every node has the operands its op takes (edge weights `0..n`, each once),
    /// that its recorded type is the one the op computes from its operands, that the graph is
    /// acyclic, that input and parameter names are unique, and that outputs and updates refer
    /// to nodes of the right kind and type.
    pub fn verify(&self) -> Result<(), VerifyError> {
        let fail = |id: NodeId, message: String| VerifyError {
            node: Some(id),
            node_desc: self.describe(id),
            message,
        };
        let mut names: HashMap<&str, NodeId> = HashMap::new();
        for id in self.node_ids() {
            let node = self.node(id);
            let mut slots: Vec<u32> = self
                .dag()
                .edges_directed(id, Direction::Incoming)
                .map(|e| *e.weight())
                .collect();
            slots.sort_unstable();
            if slots.iter().enumerate().any(|(i, &w)| w as usize != i) {
                return Err(fail(
                    id,
                    format!("operand positions {slots:?} are not 0..{}", slots.len()),
                ));
            }
            let operands = self.operands(id);
            let tys: Vec<&TensorType> = operands.iter().map(|&o| self.ty(o)).collect();
            match result_type(&node.op, &tys) {
                Err(e) => {
                    let shown: Vec<String> = tys.iter().map(|t| t.to_string()).collect();
                    return Err(fail(id, format!("{e} (operands: {})", shown.join(", "))));
                }
                Ok(ty) if ty != node.ty => {
                    return Err(fail(
                        id,
                        format!("recorded type {} but the op computes {ty}", node.ty),
                    ))
                }
                Ok(_) => {}
            }
            if let Some(name) = self.leaf_name(id) {
                if let Some(prev) = names.insert(name, id) {
                    return Err(fail(
                        id,
                        format!("name `{name}` is also used by {}", self.describe(prev)),
                    ));
                }
            }
        }
        let order = self.topo_order();
        if order.len() != self.len() {
            let mut placed = vec![false; self.dag().node_bound()];
            for id in &order {
                placed[id.index()] = true;
            }
            let on_cycle = self
                .node_ids()
                .find(|id| !placed[id.index()])
                .expect("some node is unplaced");
            return Err(fail(on_cycle, "lies on a cycle".into()));
        }
        for (name, id) in self.outputs() {
            if !self.contains(*id) {
                return Err(VerifyError {
                    node: None,
                    node_desc: String::new(),
                    message: format!("output `{name}` refers to a removed node"),
                });
            }
        }
        for &(param, value) in self.updates() {
            if !matches!(self.op(param), Op::Parameter { .. }) {
                return Err(fail(param, "is updated but is not a parameter".into()));
            }
            if self.ty(param) != self.ty(value) {
                return Err(fail(
                    value,
                    format!(
                        "update of type {} does not match parameter type {}",
                        self.ty(value),
                        self.ty(param)
                    ),
                ));
            }
        }
        Ok(())
    }
}
