//! Why a node or an update cannot be added to a [`crate::Graph`].

use crate::graph::NodeId;
use crate::op::TensorType;
use std::fmt;

/// The error of [`crate::Graph::add`] and [`crate::Graph::set_update`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GraphError {
    /// An operand id that is not a node of this graph.
    UnknownNode(NodeId),
    /// The op does not accept operands of these types (the rule of
    /// [`crate::infer::result_type`]).
    Type {
        /// The op's name.
        op: &'static str,
        /// The operands' types.
        operands: Vec<TensorType>,
        /// What the rule says.
        reason: crate::TypeError,
    },
    /// An input or parameter name already taken by another input or parameter.
    NameTaken(String),
    /// An update of a node that is not a parameter.
    NotAParameter {
        /// The node's op.
        op: &'static str,
    },
    /// An update whose value's type is not the parameter's.
    UpdateType {
        /// The parameter's type.
        param: Box<TensorType>,
        /// The value's type.
        value: Box<TensorType>,
    },
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphError::UnknownNode(id) => write!(f, "operand {id:?} is not a node of this graph"),
            GraphError::Type { reason, .. } => reason.fmt(f),
            GraphError::NameTaken(name) => write!(
                f,
                "the name `{name}` is already taken by another input or parameter"
            ),
            GraphError::NotAParameter { op } => {
                write!(f, "only a parameter can be updated, not a {op}")
            }
            GraphError::UpdateType { param, value } => write!(
                f,
                "update of type {value} does not match parameter type {param}"
            ),
        }
    }
}

impl std::error::Error for GraphError {}
