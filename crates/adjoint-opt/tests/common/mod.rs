//! Helpers shared by the integration tests: training-step graphs of the workloads.

#![allow(dead_code)]

use adjoint_ir::{Feeds, Graph};
use adjoint_workloads::Workload;

/// The whole training step of a workload (forward, loss, gradients, optimizer updates), and
/// feeds for all of its inputs, parameters and optimizer state.
pub fn step_graph(w: &Workload) -> (Graph, Feeds) {
    let t = w.training_step();
    (t.step.graph, t.feeds)
}
