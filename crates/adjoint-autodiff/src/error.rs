//! What can go wrong when differentiating a graph or appending an optimizer step.

use adjoint_ir::{BuildError, TensorType, VerifyError};
use std::fmt;

/// Why [`crate::grad`], [`crate::hvp`] or [`crate::training_step`] refused a request.
#[derive(Clone, Debug)]
pub enum GradError {
    /// The graph does not pass [`adjoint_ir::Graph::verify`].
    InvalidGraph(VerifyError),
    /// A node id given as `role` (`loss`, `wrt`, `vector`, `parameter`) is not in the graph.
    NotInGraph {
        /// What the node was given as.
        role: &'static str,
        /// The node's index.
        index: usize,
    },
    /// No input, parameter, output or label has this name.
    UnknownName {
        /// What the name was given as (`loss`, `wrt`).
        role: &'static str,
        /// The name looked up.
        name: String,
    },
    /// The loss has more than one element.
    LossNotScalar {
        /// The loss node, described.
        loss: String,
        /// Its type.
        ty: TensorType,
    },
    /// The loss is an integer or bool tensor.
    LossNotFloat {
        /// The loss node, described.
        loss: String,
        /// Its type.
        ty: TensorType,
    },
    /// A node to differentiate with respect to is an integer or bool tensor.
    NotDifferentiable {
        /// The node, described.
        node: String,
        /// Its type.
        ty: TensorType,
    },
    /// A direction vector of [`crate::hvp`] does not have the type of its `wrt` node.
    VectorMismatch {
        /// The `wrt` node, described.
        wrt: String,
        /// Its type.
        wrt_ty: TensorType,
        /// The vector's type (boxed to keep the error small).
        vector_ty: Box<TensorType>,
    },
    /// [`crate::hvp`] got a different number of `wrt` nodes and vectors.
    VectorCount {
        /// Number of `wrt` nodes.
        wrt: usize,
        /// Number of vectors.
        vectors: usize,
    },
    /// Only a parameter can be trained (its new value is written back in place).
    NotAParameter {
        /// The node, described.
        node: String,
    },
    /// An optimizer state tensor or learning-rate input would take a name that is already used
    /// by a leaf of another type.
    NameTaken {
        /// The name.
        name: String,
        /// What already holds it, described.
        holder: String,
    },
    /// Emitting the nodes of a rule failed. This only happens for graphs whose recorded types
    /// are inconsistent, which [`adjoint_ir::Graph::verify`] rules out.
    Build(BuildError),
}

impl fmt::Display for GradError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GradError::InvalidGraph(e) => write!(f, "cannot differentiate: {e}"),
            GradError::NotInGraph { role, index } => {
                write!(f, "the {role} node #{index} is not in the graph")
            }
            GradError::UnknownName { role, name } => write!(
                f,
                "no input, parameter, output or label is called `{name}` (given as {role})"
            ),
            GradError::LossNotScalar { loss, ty } => write!(
                f,
                "the loss {loss} has type {ty}; it must be a scalar (one element)"
            ),
            GradError::LossNotFloat { loss, ty } => write!(
                f,
                "the loss {loss} has type {ty}; only f32 and f64 losses can be differentiated"
            ),
            GradError::NotDifferentiable { node, ty } => write!(
                f,
                "cannot differentiate with respect to {node} of type {ty}: \
                 integer and bool values have no gradient"
            ),
            GradError::VectorMismatch {
                wrt,
                wrt_ty,
                vector_ty,
            } => write!(
                f,
                "the vector for {wrt} has type {vector_ty}, but {wrt} has type {wrt_ty}"
            ),
            GradError::VectorCount { wrt, vectors } => write!(
                f,
                "a Hessian-vector product needs one vector per wrt node: {wrt} wrt node(s), \
                 {vectors} vector(s)"
            ),
            GradError::NotAParameter { node } => write!(
                f,
                "{node} is not a parameter; only parameters can be updated by an optimizer"
            ),
            GradError::NameTaken { name, holder } => write!(
                f,
                "the name `{name}` is already used by {holder} of another type"
            ),
            GradError::Build(e) => write!(f, "emitting a gradient rule failed: {e}"),
        }
    }
}

impl std::error::Error for GradError {}

impl From<BuildError> for GradError {
    fn from(e: BuildError) -> GradError {
        GradError::Build(e)
    }
}

impl From<VerifyError> for GradError {
    fn from(e: VerifyError) -> GradError {
        GradError::InvalidGraph(e)
    }
}
