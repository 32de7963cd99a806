//! What can go wrong when compiling or running a step.

use adjoint_ir::{TensorType, VerifyError};
use std::fmt;

/// An error of [`crate::compile`] or of a [`crate::CompiledStep`] call. Every feed and
/// parameter problem is found before any native code runs.
#[derive(Clone, Debug, PartialEq)]
pub enum JitError {
    /// The graph failed verification.
    Invalid(VerifyError),
    /// A graph pass failed (a bug in the pass: its result did not verify).
    Pass(adjoint_opt::PassError),
    /// The schedule or memory plan does not fit the graph (a bug in a planner).
    Plan(String),
    /// The memory plan failed `adjoint_opt::check_memory_plan` (a bug in the planner; checked
    /// when [`crate::Options::check_ir`] is set).
    MemoryPlan(adjoint_opt::InvalidPlan),
    /// The lowered kernel IR failed [`crate::kernel::verify::verify_program`] (a bug in the
    /// lowering; checked when [`crate::Options::check_ir`] is set).
    KernelIr(crate::kernel::verify::KernelIrError),
    /// Cranelift rejected a generated function, or the host is not supported.
    Codegen(String),
    /// An input the step reads was not fed.
    MissingFeed {
        /// The input's name.
        name: String,
        /// Its declared type.
        expected: TensorType,
    },
    /// A fed tensor or a parameter value has the wrong dtype or shape.
    TypeMismatch {
        /// The input or parameter.
        name: String,
        /// The declared type.
        expected: TensorType,
        /// The type given.
        got: TensorType,
    },
    /// A feed names no input of the graph (parameters are set with `set_param`).
    UnknownFeed {
        /// The name fed.
        name: String,
        /// Why it is not accepted.
        reason: String,
    },
    /// A parameter was never given a value.
    UninitializedParameter {
        /// The parameter's name.
        name: String,
    },
    /// `set_param` or `param` named no parameter of the graph.
    UnknownParameter {
        /// The name given.
        name: String,
    },
    /// Writing a dump failed.
    Dump(String),
    /// A tensor or the arena is larger than the limit set in [`crate::Options`].
    TooLarge {
        /// What is too large (a node, or the arena).
        what: String,
        /// Its size in bytes.
        bytes: usize,
        /// The limit in bytes.
        limit: usize,
        /// The `Options` field that sets the limit.
        option: &'static str,
    },
    /// No plan the memory-budget search found fits [`crate::Options::memory_budget`].
    OverBudget {
        /// The budget in bytes.
        budget: usize,
        /// The smallest arena reached, in bytes (kernel scratch included when that is what
        /// went over).
        smallest: usize,
        /// The arena when every forward value the backward reads is kept, for scale.
        keep_all: usize,
    },
    /// The system refused memory for the arena or a parameter.
    OutOfMemory {
        /// What the memory was for.
        what: String,
        /// Bytes asked for.
        bytes: usize,
    },
    /// An `all_reduce` of the step failed (no collective for several replicas, a collective
    /// of another size, or the collective's own error). The step ran to its end with the
    /// operand in place of the reduced value, so parameters written in place may hold a
    /// partial update: reload them (a checkpoint) before running again.
    Collective(String),
}

impl fmt::Display for JitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JitError::Invalid(e) => write!(f, "cannot compile the graph: {e}"),
            JitError::Pass(e) => write!(f, "graph passes failed: {e}"),
            JitError::Plan(m) => write!(f, "inconsistent plan: {m}"),
            JitError::MemoryPlan(e) => write!(f, "invalid memory plan: {e}"),
            JitError::KernelIr(e) => write!(f, "invalid kernel IR: {e}"),
            JitError::Codegen(m) => write!(f, "code generation failed: {m}"),
            JitError::MissingFeed { name, expected } => write!(
                f,
                "missing feed `{name}`: the graph needs a tensor of type {expected}"
            ),
            JitError::TypeMismatch {
                name,
                expected,
                got,
            } => write!(
                f,
                "`{name}` has type {got}, but the graph expects {expected}"
            ),
            JitError::UnknownFeed { name, reason } => write!(f, "feed `{name}` {reason}"),
            JitError::UninitializedParameter { name } => write!(
                f,
                "parameter `{name}` has no value: set it with set_param before running"
            ),
            JitError::UnknownParameter { name } => {
                write!(f, "`{name}` is not a parameter of the graph")
            }
            JitError::Dump(m) => write!(f, "writing the dump failed: {m}"),
            JitError::TooLarge {
                what,
                bytes,
                limit,
                option,
            } => write!(
                f,
                "{what} needs {bytes} bytes, more than the limit of {limit} bytes \
                 (raise Options::{option} to allow it)"
            ),
            JitError::OverBudget {
                budget,
                smallest,
                keep_all,
            } => write!(
                f,
                "no plan fits the memory budget of {budget} bytes: the smallest arena \
                 rematerialization reached is {smallest} bytes (keeping everything needs \
                 {keep_all} bytes); raise Options::memory_budget to at least {smallest}"
            ),
            JitError::OutOfMemory { what, bytes } => {
                write!(f, "out of memory: cannot allocate {bytes} bytes for {what}")
            }
            JitError::Collective(m) => write!(f, "all_reduce failed: {m}"),
        }
    }
}

impl std::error::Error for JitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JitError::Invalid(e) => Some(e),
            JitError::MemoryPlan(e) => Some(e),
            JitError::KernelIr(e) => Some(e),
            _ => None,
        }
    }
}

impl From<VerifyError> for JitError {
    fn from(e: VerifyError) -> JitError {
        JitError::Invalid(e)
    }
}

impl From<adjoint_opt::InvalidPlan> for JitError {
    fn from(e: adjoint_opt::InvalidPlan) -> JitError {
        JitError::MemoryPlan(e)
    }
}

impl From<crate::kernel::verify::KernelIrError> for JitError {
    fn from(e: crate::kernel::verify::KernelIrError) -> JitError {
        JitError::KernelIr(e)
    }
}

impl From<adjoint_opt::PassError> for JitError {
    fn from(e: adjoint_opt::PassError) -> JitError {
        JitError::Pass(e)
    }
}
