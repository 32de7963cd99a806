//! What can go wrong when interpreting a graph: bad feeds or an invalid graph.

use adjoint_ir::{TensorType, VerifyError};
use std::fmt;

/// Why a graph could not be evaluated. Every error but [`InterpError::OutOfMemory`] is found
/// before any node is computed.
#[derive(Clone, Debug, PartialEq)]
pub enum InterpError {
    /// An input or parameter that the requested values depend on was not fed.
    MissingFeed {
        /// The input or parameter's name.
        name: String,
        /// The type the graph declares for it.
        expected: TensorType,
    },
    /// A fed tensor's dtype or shape differs from the type the graph declares.
    FeedMismatch {
        /// The feed's name.
        name: String,
        /// The type the graph declares.
        expected: TensorType,
        /// The type of the tensor fed.
        got: TensorType,
    },
    /// A feed names no input or parameter of the graph (a typo must not pass silently).
    UnknownFeed {
        /// The feed's name.
        name: String,
    },
    /// The graph failed [`adjoint_ir::Graph::verify`], or a node asked for is not in the graph.
    Invalid(VerifyError),
    /// The system refused the memory for a node's value.
    OutOfMemory {
        /// The node, as `Graph::describe` names it.
        node: String,
        /// Bytes its value needs.
        bytes: usize,
    },
    /// A [`crate::InterpStep`] was fed a parameter in its inputs: the step owns parameter
    /// values, which are set with `set_param`.
    ParameterFed {
        /// The parameter's name.
        name: String,
    },
    /// A [`crate::InterpStep`] was asked to set a value for a name that is no parameter.
    NotAParameter {
        /// The name.
        name: String,
    },
    /// A [`crate::InterpStep`] ran before one of its parameters was given a value.
    UninitializedParameter {
        /// The parameter's name.
        name: String,
    },
    /// An `all_reduce` failed: no collective for a group of several replicas, a collective of
    /// another size, or the collective's own error.
    Collective {
        /// The node, as `Graph::describe` names it.
        node: String,
        /// What went wrong.
        message: String,
    },
}

impl fmt::Display for InterpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InterpError::MissingFeed { name, expected } => write!(
                f,
                "missing feed `{name}`: the graph needs a tensor of type {expected}"
            ),
            InterpError::FeedMismatch {
                name,
                expected,
                got,
            } => write!(
                f,
                "feed `{name}` has type {got}, but the graph expects {expected}"
            ),
            InterpError::UnknownFeed { name } => {
                write!(f, "feed `{name}` names no input or parameter of the graph")
            }
            InterpError::Invalid(e) => write!(f, "cannot interpret the graph: {e}"),
            InterpError::OutOfMemory { node, bytes } => write!(
                f,
                "out of memory: cannot allocate {bytes} bytes for the value of {node}"
            ),
            InterpError::ParameterFed { name } => write!(
                f,
                "feed `{name}` is a parameter: the step owns its value; set it with set_param"
            ),
            InterpError::NotAParameter { name } => {
                write!(f, "`{name}` names no parameter of the graph")
            }
            InterpError::UninitializedParameter { name } => write!(
                f,
                "parameter `{name}` has no value: set it with set_param before running"
            ),
            InterpError::Collective { node, message } => write!(f, "{node}: {message}"),
        }
    }
}

impl std::error::Error for InterpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InterpError::Invalid(e) => Some(e),
            _ => None,
        }
    }
}

impl From<VerifyError> for InterpError {
    fn from(e: VerifyError) -> InterpError {
        InterpError::Invalid(e)
    }
}
