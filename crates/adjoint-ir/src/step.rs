//! [`Step`]: one way to feed and run a graph, whichever engine runs it — the reference
//! interpreter (`adjoint_interp::InterpStep`) or the JIT (`adjoint_jit::CompiledStep`).

use crate::{Collective, Feeds, HostTensor, TensorType};
use std::sync::Arc;

/// The outputs of one run of a [`Step`], by name, in the graph's output order.
#[derive(Clone, Debug, PartialEq)]
pub struct StepOutputs {
    /// `(output name, value)`.
    pub outputs: Vec<(String, HostTensor)>,
}

impl StepOutputs {
    /// The value of output `name`.
    pub fn output(&self, name: &str) -> Option<&HostTensor> {
        self.outputs.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

/// A graph ready to run that **owns its parameters**: they are given values once
/// ([`Step::set_param`], [`Step::set_params`]), every [`Step::run`] reads the inputs it is fed
/// and writes each parameter's declared update in place, and [`Step::param`] reads them back.
///
/// The interpreter and the compiled step implement it identically, so code written against
/// `Step` runs on either, and the interpreter checks the compiled step:
///
/// - [`Step::set_params`] takes a map that may also hold inputs (they are skipped), so one map
///   of initial values and data — a workload's feeds — serves both calls;
/// - [`Step::run`] takes exactly the inputs: an entry naming a parameter is an error, since
///   silently resetting a parameter at every step would undo training;
/// - [`Step::run_feeds`] runs on the inputs among a map that also holds the parameters (the
///   ones `set_params` took from it), for callers holding a single map.
pub trait Step {
    /// Why a call failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The names and types of the inputs [`Step::run`] needs.
    fn input_types(&self) -> Vec<(String, TensorType)>;

    /// The names and types of the parameters.
    fn param_types(&self) -> Vec<(String, TensorType)>;

    /// Sets parameter `name` (its type must match).
    fn set_param(&mut self, name: &str, value: &HostTensor) -> Result<(), Self::Error>;

    /// Sets every parameter named in `values`; entries naming inputs are skipped, any other
    /// name is an error.
    fn set_params(&mut self, values: &Feeds) -> Result<(), Self::Error>;

    /// The current value of parameter `name` (`None` if unset or not a parameter).
    fn param(&self, name: &str) -> Option<HostTensor>;

    /// Every parameter that has a value, by name.
    fn params(&self) -> Feeds;

    /// Makes this step one replica of a data-parallel group: its `all_reduce` nodes combine
    /// values with the other replicas through `collective` (`None`: a step of its own, which
    /// only allows one-replica `all_reduce`s).
    fn set_collective(&mut self, collective: Option<Arc<dyn Collective>>);

    /// Runs once on `inputs` (exactly the graph's inputs, each of its declared type), writes
    /// every parameter update and returns the outputs.
    fn run(&mut self, inputs: &Feeds) -> Result<StepOutputs, Self::Error>;

    /// [`Step::run`] on the entries of `feeds` that name inputs, skipping those that name
    /// parameters (which [`Step::set_params`] takes from the same map). Any other name is still
    /// an error, as in `run`.
    fn run_feeds(&mut self, feeds: &Feeds) -> Result<StepOutputs, Self::Error> {
        let params = self.param_types();
        let inputs: Feeds = feeds
            .iter()
            .filter(|(n, _)| !params.iter().any(|(p, _)| p == *n))
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect();
        self.run(&inputs)
    }
}
