//! # adjoint-interp
//!
//! The reference interpreter: runs any verified [`Graph`] one node at a time, with plain loops
//! whose results are easy to trust. It is the oracle that every compiled graph is compared with.
//!
//! - [`run`] evaluates a graph's outputs and parameter updates; [`eval_nodes`] evaluates any
//!   nodes (intermediate values, gradients).
//! - Feeds (inputs and parameters, by name) are checked against the graph before anything is
//!   computed: an unknown name, a wrong dtype or shape, or a missing feed is an [`InterpError`].
//! - Only the nodes the requested values depend on are computed, in topological order, and each
//!   intermediate value is freed once its last user has run.
//!
//! ## Semantics
//!
//! Every op follows its documentation in [`adjoint_ir::Op`]. Arithmetic happens in the element
//! type itself (an `f32` `exp` is `f32::exp`), so results match compiled code of that type;
//! `i32` arithmetic wraps; float max/min return NaN if either operand is NaN (and order
//! `-0 < +0`). Reductions and matrix products accumulate in the element type in the natural
//! order of the reduced index (row-major over the reduced axes; increasing `k` for matmul),
//! with separate multiply and add.
//!
//! Nothing read from outside panics: a bad feed or an invalid graph is an [`InterpError`], found
//! before any node runs, and on a verified graph with checked feeds every kernel is total
//! (out-of-range gather/scatter indices, empty reductions and overflowing `i32` arithmetic all
//! have defined results). A panic inside the interpreter is a bug in it.

#![warn(missing_docs)]
#![forbid(unsafe_code)]
// `InterpError` carries both tensor types by value, as its public API promises; an error is
// returned at most once per evaluation, so its size costs nothing worth boxing for.
#![allow(clippy::result_large_err)]

mod element;
mod elementwise;
mod error;
mod eval;
mod index;
mod leaf;
mod matmul;
mod movement;
mod node;
mod plan;
mod reduce;
mod step;
mod strided;

pub use error::InterpError;
pub use step::InterpStep;

use adjoint_ir::{Collective, Feeds, Graph, HostTensor, NodeId};

/// The values a graph computes in one run: its outputs and its parameters' new values.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// `(output name, value)`, in [`Graph::outputs`] order.
    pub outputs: Vec<(String, HostTensor)>,
    /// `(parameter name, new value)`, in [`Graph::updates`] order.
    pub updates: Vec<(String, HostTensor)>,
}

impl Evaluation {
    /// The value of the output called `name`.
    pub fn output(&self, name: &str) -> Option<&HostTensor> {
        self.outputs.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// The new value of the parameter called `param`.
    pub fn update(&self, param: &str) -> Option<&HostTensor> {
        self.updates
            .iter()
            .find(|(n, _)| n == param)
            .map(|(_, t)| t)
    }
}

/// Runs the graph: evaluates every output and every parameter update.
///
/// `feeds` holds inputs and parameters by name. Every feed must name an input or parameter of
/// the graph and match its type; every input and parameter that an output or update depends on
/// must be fed.
///
/// ```
/// use adjoint_interp::run;
/// use adjoint_ir::{Builder, DType, Feeds, HostTensor};
///
/// let b = Builder::new("affine");
/// let x = b.input("x", DType::F32, [2, 2]);
/// let w = b.parameter("w", DType::F32, [2]);
/// b.output("y", x * w + 1.0); // w is broadcast over the rows
/// b.update(w, w * 0.5);
/// let graph = b.finish();
///
/// let mut feeds = Feeds::new();
/// feeds.insert("x".into(), HostTensor::from_f32([2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap());
/// feeds.insert("w".into(), HostTensor::from_f32([2], vec![10.0, 100.0]).unwrap());
/// let result = run(&graph, &feeds).unwrap();
///
/// assert_eq!(result.output("y").unwrap().as_f32().unwrap(), &[11.0, 201.0, 31.0, 401.0]);
/// assert_eq!(result.update("w").unwrap().as_f32().unwrap(), &[5.0, 50.0]);
///
/// // A misspelt feed is an error, not silently ignored.
/// feeds.insert("W".into(), HostTensor::from_f32([2], vec![0.0, 0.0]).unwrap());
/// let err = run(&graph, &feeds).unwrap_err();
/// assert_eq!(err.to_string(), "feed `W` names no input or parameter of the graph");
/// ```
pub fn run(graph: &Graph, feeds: &Feeds) -> Result<Evaluation, InterpError> {
    run_with(graph, feeds, None)
}

/// [`run`] as one replica of a data-parallel group: `all_reduce` nodes combine their values
/// with the other replicas through `collective` (which every replica calls in the same node
/// order, since they run the same graph). Without a collective only one-replica `all_reduce`s
/// (the identity) are allowed.
pub fn run_with(
    graph: &Graph,
    feeds: &Feeds,
    collective: Option<&dyn Collective>,
) -> Result<Evaluation, InterpError> {
    let outputs = graph.outputs();
    let updates = graph.updates();
    let requested: Vec<NodeId> = outputs
        .iter()
        .map(|&(_, id)| id)
        .chain(updates.iter().map(|&(_, value)| value))
        .collect();
    let mut values = eval_nodes_with(graph, feeds, &requested, collective)?.into_iter();
    let outputs = outputs
        .iter()
        .zip(values.by_ref())
        .map(|((name, _), value)| (name.clone(), value))
        .collect();
    let updates = updates
        .iter()
        .zip(values)
        .map(|(&(param, _), value)| {
            let name = graph
                .leaf_name(param)
                .expect("the verifier checked that only parameters are updated");
            (name.to_string(), value)
        })
        .collect();
    Ok(Evaluation { outputs, updates })
}

/// Evaluates the given nodes (any nodes, e.g. intermediate values or gradient nodes), in order.
///
/// Feeds are checked as [`run`] checks them; a node that is not in the graph is an
/// [`InterpError::Invalid`].
pub fn eval_nodes(
    graph: &Graph,
    feeds: &Feeds,
    nodes: &[NodeId],
) -> Result<Vec<HostTensor>, InterpError> {
    eval_nodes_with(graph, feeds, nodes, None)
}

/// [`eval_nodes`] as one replica of a data-parallel group (see [`run_with`]).
pub fn eval_nodes_with(
    graph: &Graph,
    feeds: &Feeds,
    nodes: &[NodeId],
    collective: Option<&dyn Collective>,
) -> Result<Vec<HostTensor>, InterpError> {
    let plan = plan::plan(graph, feeds, nodes)?;
    let (values, _peak_held) = eval::execute(graph, feeds, plan, nodes, collective)?;
    Ok(values)
}
