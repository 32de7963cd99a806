//! W1 `mlp-small` and W2 `mlp-wide`: ReLU MLPs with a softmax cross-entropy loss.

use crate::init::Init;
use crate::Workload;
use adjoint_autodiff::Optimizer;
use adjoint_ir::Initializer;
use adjoint_ir::{Builder, DType};

/// Sizes of a ReLU MLP classifier.
#[derive(Clone, Debug, PartialEq)]
pub struct MlpConfig {
    /// Rows per batch.
    pub batch: usize,
    /// Input features.
    pub inputs: usize,
    /// Width of each hidden layer.
    pub hidden: Vec<usize>,
    /// Number of classes.
    pub classes: usize,
}

impl MlpConfig {
    /// W1's sizes: `[64, 64] → 128 → 128 → 10`.
    pub fn w1() -> MlpConfig {
        MlpConfig {
            batch: 64,
            inputs: 64,
            hidden: vec![128, 128],
            classes: 10,
        }
    }

    /// W2's sizes: `[128, 784] → 1024 → 1024 → 10`.
    pub fn w2() -> MlpConfig {
        MlpConfig {
            batch: 128,
            inputs: 784,
            hidden: vec![1024, 1024],
            classes: 10,
        }
    }

    /// The same structure at test size: `[4, 6] → 5 → 5 → 3`.
    pub fn tiny() -> MlpConfig {
        MlpConfig {
            batch: 4,
            inputs: 6,
            hidden: vec![5, 5],
            classes: 3,
        }
    }

    /// Matmul FLOPs of one training step (forward, and backward at twice the forward).
    pub fn matmul_flops(&self) -> f64 {
        let mut dims = vec![self.inputs];
        dims.extend(&self.hidden);
        dims.push(self.classes);
        let fwd: usize = dims.windows(2).map(|w| 2 * self.batch * w[0] * w[1]).sum();
        3.0 * fwd as f64
    }
}

/// A ReLU MLP: `h = relu(h @ W_i + b_i)` for each hidden layer, then `logits = h @ W + b` and
/// cross-entropy against labels. Inputs `x` `[batch, inputs]` and `y` `[batch]` (i32);
/// parameters `w1, b1, w2, b2, …`. He-normal weights, zero biases, standard-normal inputs and
/// uniform labels, all seeded.
pub fn mlp(id: &'static str, name: &'static str, cfg: &MlpConfig, seed: u64) -> Workload {
    let b = Builder::new(name);
    let mut init = Init::new(seed);
    let x = b.input("x", DType::F32, [cfg.batch, cfg.inputs]);
    let y = b.input("y", DType::I32, [cfg.batch]);
    init.normal(x, "x", 1.0);
    init.labels(y, "y", cfg.classes as u64);

    let mut widths = cfg.hidden.clone();
    widths.push(cfg.classes);
    let mut h = x;
    let mut fan_in = cfg.inputs;
    for (i, &width) in widths.iter().enumerate() {
        let (wn, bn) = (format!("w{}", i + 1), format!("b{}", i + 1));
        let w = init.param(&b, &wn, &[fan_in, width], Initializer::HeNormal);
        let bias = init.param(&b, &bn, &[width], Initializer::Zeros);
        let z = h.matmul(w) + bias;
        h = if i + 1 < widths.len() {
            z.relu().named(&format!("h{}", i + 1))
        } else {
            z.named("logits")
        };
        fan_in = width;
    }
    b.output("loss", h.cross_entropy(y).named("loss"));
    Workload {
        id,
        name,
        graph: b.finish(),
        feeds: init.feeds,
        optimizer: Optimizer::sgd(0.01),
        matmul_flops: cfg.matmul_flops(),
    }
}

/// W1 `mlp-small` at benchmark size.
pub fn w1_mlp_small(seed: u64) -> Workload {
    mlp("W1", "mlp-small", &MlpConfig::w1(), seed)
}

/// W2 `mlp-wide` at benchmark size.
pub fn w2_mlp_wide(seed: u64) -> Workload {
    mlp("W2", "mlp-wide", &MlpConfig::w2(), seed)
}
