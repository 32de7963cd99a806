//! # adjoint-workloads
//!
//! The benchmark workloads of `shared/bench/WORKLOADS.md`, written once as graph builders so
//! that tests, benchmarks and the command line all run the same graphs:
//!
//! | id | name | what it stresses |
//! |---|---|---|
//! | W1 | `mlp-small` | per-step overhead |
//! | W2 | `mlp-wide` | matmul throughput |
//! | W3 | `resmlp-ln` | elementwise work and fusion (layer norm, GELU, residuals, Adam) |
//! | W4 | `gpt-tiny` | a whole transformer (embeddings, causal attention, MLP, layer norm) |
//!
//! Each builder returns a [`Workload`]: the forward graph ending in a scalar `loss` output,
//! seeded data and initial parameter values, the optimizer the workload specifies, and the
//! matmul FLOPs of one training step. Every workload also has a configuration type whose
//! `Default` is the benchmark size and whose `tiny()` keeps the structure at test size.
//!
//! ```
//! let w = adjoint_workloads::w1_mlp_small(0);
//! assert_eq!(w.id, "W1");
//! w.graph.verify().unwrap();
//! assert!(w.graph.output("loss").is_some());
//! ```

mod init;
mod mlp;
mod resmlp;
mod transformer;

pub use mlp::{mlp, w1_mlp_small, w2_mlp_wide, MlpConfig};
pub use resmlp::{resmlp_ln, w3_resmlp_ln, ResMlpConfig};
pub use transformer::{causal_self_attention, gpt, w4_gpt_tiny, GptConfig};

use adjoint_autodiff::{
    float_parameters, training_step_with, MixedPrecision, Optimizer, StepGraph,
};
use adjoint_ir::{Feeds, Graph};

/// A workload's whole training step and everything it needs fed.
#[derive(Clone, Debug)]
pub struct TrainingStep {
    /// Forward, loss, gradients and optimizer updates of every float parameter.
    pub step: StepGraph,
    /// Data, initial parameters and the initial (zero) optimizer state, by name.
    pub feeds: Feeds,
}

/// A benchmark workload: graph, data, initial parameters and optimizer.
#[derive(Clone, Debug)]
pub struct Workload {
    /// `W1` … `W4`.
    pub id: &'static str,
    /// `mlp-small`, `mlp-wide`, `resmlp-ln`, `gpt-tiny`.
    pub name: &'static str,
    /// The forward graph; its output `loss` is a scalar f32.
    pub graph: Graph,
    /// Seeded data for every input and initial values for every parameter, by name.
    pub feeds: Feeds,
    /// The optimizer of one training step.
    pub optimizer: Optimizer,
    /// Floating-point operations of the matmuls of one step (forward and backward: 3× the
    /// forward count), as WORKLOADS.md counts them.
    pub matmul_flops: f64,
}

impl Workload {
    /// The training step WORKLOADS.md times: forward, loss, backward for every parameter and
    /// the optimizer update of every parameter, in one graph.
    pub fn training_step(&self) -> TrainingStep {
        self.training_step_with(&MixedPrecision::default())
    }

    /// [`Workload::training_step`] under a mixed-precision policy (parameters stay f32).
    pub fn training_step_with(&self, mixed: &MixedPrecision) -> TrainingStep {
        let loss = self
            .graph
            .output("loss")
            .expect("every workload has a loss output");
        let params = float_parameters(&self.graph);
        let step = training_step_with(self.graph.clone(), loss, &params, &self.optimizer, mixed)
            .expect("the workload graphs are differentiable");
        let mut feeds = self.feeds.clone();
        for (name, value) in &step.state {
            feeds.insert(name.clone(), value.clone());
        }
        TrainingStep { step, feeds }
    }
}

/// The workload with id `W1` … `W4` (case-insensitive) or name (`mlp-small`, …), at benchmark
/// size.
pub fn by_id(id: &str, seed: u64) -> Option<Workload> {
    let w = match id.to_ascii_lowercase().as_str() {
        "w1" | "mlp-small" => w1_mlp_small(seed),
        "w2" | "mlp-wide" => w2_mlp_wide(seed),
        "w3" | "resmlp-ln" => w3_resmlp_ln(seed),
        "w4" | "gpt-tiny" => w4_gpt_tiny(seed),
        _ => return None,
    };
    Some(w)
}

/// The four workloads at benchmark size.
pub fn all(seed: u64) -> Vec<Workload> {
    vec![
        w1_mlp_small(seed),
        w2_mlp_wide(seed),
        w3_resmlp_ln(seed),
        w4_gpt_tiny(seed),
    ]
}
