//! Helpers shared by the integration tests: training-step graphs of the workloads.

#![allow(dead_code)]

use adjoint_autodiff::{float_parameters, training_step, Optimizer};
use adjoint_ir::{Feeds, Graph};
use adjoint_workloads::{OptimizerSpec, Workload};

/// The whole training step of a workload (forward, loss, gradients, optimizer updates), and
/// feeds for all of its inputs, parameters and optimizer state.
pub fn step_graph(w: &Workload) -> (Graph, Feeds) {
    let opt = match w.optimizer {
        OptimizerSpec::Sgd { lr } => Optimizer::sgd(lr),
        OptimizerSpec::Adam {
            lr,
            beta1,
            beta2,
            eps,
        } => Optimizer::adam_with(lr, beta1, beta2, eps),
    };
    let loss = w.graph.output("loss").expect("workloads have a loss");
    let params = float_parameters(&w.graph);
    let step = training_step(w.graph.clone(), loss, &params, &opt).expect("autodiff");
    let mut feeds = w.feeds.clone();
    for (name, value) in &step.state {
        feeds.insert(name.clone(), value.clone());
    }
    (step.graph, feeds)
}
