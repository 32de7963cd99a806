//! [`InterpStep`]: the interpreter behind the [`Step`] interface the compiled step has too.

use crate::{run_with, InterpError};
use adjoint_ir::{Collective, Feeds, Graph, HostTensor, Step, StepOutputs, TensorType};
use std::sync::Arc;

/// A graph run by the reference interpreter that owns its parameters, exactly as
/// `adjoint_jit::CompiledStep` does (see [`Step`]): the oracle for a compiled step, fed and
/// called the same way.
///
/// ```
/// use adjoint_interp::InterpStep;
/// use adjoint_ir::{Builder, DType, Feeds, HostTensor, Step};
///
/// let b = Builder::new("decay");
/// let x = b.input("x", DType::F32, [2]);
/// let w = b.parameter("w", DType::F32, [2]);
/// b.output("y", x * w);
/// b.update(w, w * 0.5);
/// let mut step = InterpStep::new(b.finish()).unwrap();
///
/// step.set_param("w", &HostTensor::from_f32([2], vec![4.0, 8.0]).unwrap()).unwrap();
/// let mut inputs = Feeds::new();
/// inputs.insert("x".into(), HostTensor::from_f32([2], vec![1.0, 1.0]).unwrap());
/// let out = step.run(&inputs).unwrap();
/// assert_eq!(out.output("y").unwrap().as_f32().unwrap(), &[4.0, 8.0]);
/// assert_eq!(step.param("w").unwrap().as_f32().unwrap(), &[2.0, 4.0]); // updated in place
///
/// // Parameters are set, not fed: feeding one to `run` is an error.
/// inputs.insert("w".into(), HostTensor::from_f32([2], vec![0.0, 0.0]).unwrap());
/// assert!(step.run(&inputs).is_err());
/// ```
#[derive(Clone)]
pub struct InterpStep {
    graph: Graph,
    inputs: Vec<(String, TensorType)>,
    param_types: Vec<(String, TensorType)>,
    params: Feeds,
    collective: Option<Arc<dyn Collective>>,
}

impl std::fmt::Debug for InterpStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterpStep")
            .field("graph", &self.graph)
            .field("inputs", &self.inputs)
            .field("param_types", &self.param_types)
            .field("params", &self.params)
            .field(
                "collective",
                &self.collective.as_ref().map(|c| (c.rank(), c.size())),
            )
            .finish()
    }
}

/// `(name, type)` of the named leaves among `ids`.
fn named(graph: &Graph, ids: &[adjoint_ir::NodeId]) -> Vec<(String, TensorType)> {
    ids.iter()
        .filter_map(|&id| {
            graph
                .leaf_name(id)
                .map(|n| (n.to_string(), graph.ty(id).clone()))
        })
        .collect()
}

impl InterpStep {
    /// A step over `graph` (verified now) with no parameter values yet.
    pub fn new(graph: Graph) -> Result<InterpStep, InterpError> {
        graph.verify()?;
        Ok(InterpStep {
            inputs: named(&graph, graph.inputs()),
            param_types: named(&graph, graph.parameters()),
            graph,
            params: Feeds::new(),
            collective: None,
        })
    }

    /// The graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }
}

impl Step for InterpStep {
    type Error = InterpError;

    fn input_types(&self) -> Vec<(String, TensorType)> {
        self.inputs.clone()
    }

    fn param_types(&self) -> Vec<(String, TensorType)> {
        self.param_types.clone()
    }

    fn set_param(&mut self, name: &str, value: &HostTensor) -> Result<(), InterpError> {
        let Some((_, ty)) = self.param_types.iter().find(|(n, _)| n == name) else {
            return Err(InterpError::NotAParameter {
                name: name.to_string(),
            });
        };
        if value.ty() != *ty {
            return Err(InterpError::FeedMismatch {
                name: name.to_string(),
                expected: ty.clone(),
                got: value.ty(),
            });
        }
        self.params.insert(name.to_string(), value.clone());
        Ok(())
    }

    fn set_params(&mut self, values: &Feeds) -> Result<(), InterpError> {
        for (name, value) in values {
            if self.inputs.iter().any(|(n, _)| n == name) {
                continue;
            }
            self.set_param(name, value)?;
        }
        Ok(())
    }

    fn param(&self, name: &str) -> Option<HostTensor> {
        self.params.get(name).cloned()
    }

    fn params(&self) -> Feeds {
        self.params.clone()
    }

    fn set_collective(&mut self, collective: Option<Arc<dyn Collective>>) {
        self.collective = collective;
    }

    fn run(&mut self, inputs: &Feeds) -> Result<StepOutputs, InterpError> {
        for name in inputs.keys() {
            if self.param_types.iter().any(|(n, _)| n == name) {
                return Err(InterpError::ParameterFed { name: name.clone() });
            }
            if !self.inputs.iter().any(|(n, _)| n == name) {
                return Err(InterpError::UnknownFeed { name: name.clone() });
            }
        }
        for (name, ty) in &self.inputs {
            if !inputs.contains_key(name) {
                return Err(InterpError::MissingFeed {
                    name: name.clone(),
                    expected: ty.clone(),
                });
            }
        }
        if let Some((name, _)) = self
            .param_types
            .iter()
            .find(|(n, _)| !self.params.contains_key(n))
        {
            return Err(InterpError::UninitializedParameter { name: name.clone() });
        }
        let mut feeds = self.params.clone();
        feeds.extend(inputs.iter().map(|(n, t)| (n.clone(), t.clone())));
        let result = run_with(&self.graph, &feeds, self.collective.as_deref())?;
        self.params.extend(result.updates);
        Ok(StepOutputs {
            outputs: result.outputs,
        })
    }
}
