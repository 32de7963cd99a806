//! W3 `resmlp-ln`: residual MLP blocks with layer norm and GELU, MSE loss, Adam.

use crate::init::Init;
use crate::Workload;
use adjoint_autodiff::Optimizer;
use adjoint_ir::Initializer;
use adjoint_ir::{Builder, DType};

/// Sizes of the residual MLP.
#[derive(Clone, Debug, PartialEq)]
pub struct ResMlpConfig {
    /// Rows.
    pub rows: usize,
    /// Model width.
    pub width: usize,
    /// Hidden width inside each block.
    pub hidden: usize,
    /// Number of residual blocks.
    pub blocks: usize,
}

impl Default for ResMlpConfig {
    /// W3's sizes: `[256, 256]`, hidden 512, 4 blocks.
    fn default() -> Self {
        ResMlpConfig {
            rows: 256,
            width: 256,
            hidden: 512,
            blocks: 4,
        }
    }
}

impl ResMlpConfig {
    /// The same structure at test size.
    pub fn tiny() -> ResMlpConfig {
        ResMlpConfig {
            rows: 3,
            width: 4,
            hidden: 6,
            blocks: 2,
        }
    }

    /// Matmul FLOPs of one training step.
    pub fn matmul_flops(&self) -> f64 {
        3.0 * (self.blocks * 2 * 2 * self.rows * self.width * self.hidden) as f64
    }
}

/// The residual MLP: `h = x`; per block `h = h + (gelu(layernorm(h) @ A + a)) @ B + b`; loss
/// `mean((h - t)^2)`. Parameters per block `i` (from 1): `ln{i}.gamma`, `ln{i}.beta`, `a{i}.w`,
/// `a{i}.b`, `b{i}.w`, `b{i}.b`.
pub fn resmlp_ln(cfg: &ResMlpConfig, seed: u64) -> Workload {
    let b = Builder::new("resmlp-ln");
    let mut init = Init::new(seed);
    let x = b.input("x", DType::F32, [cfg.rows, cfg.width]);
    let t = b.input("t", DType::F32, [cfg.rows, cfg.width]);
    init.normal(x, "x", 1.0);
    init.normal(t, "t", 1.0);
    let mut h = x;
    for i in 1..=cfg.blocks {
        let p = |n: &str| format!("{n}{i}");
        // Residual branches start small so the stack stays well conditioned.
        let small = 1.0 / (cfg.hidden as f64).sqrt() / (cfg.blocks as f64).sqrt();
        let (w, hid) = (cfg.width, cfg.hidden);
        let gamma = init.param(&b, &p("ln.gamma"), &[w], Initializer::Ones);
        let beta = init.param(&b, &p("ln.beta"), &[w], Initializer::Zeros);
        let aw = init.param(&b, &p("a.w"), &[w, hid], Initializer::LeCunNormal);
        let ab = init.param(&b, &p("a.b"), &[hid], Initializer::Zeros);
        let bw = init.param(&b, &p("b.w"), &[hid, w], Initializer::Normal { std: small });
        let bb = init.param(&b, &p("b.b"), &[w], Initializer::Zeros);
        let z = h.layer_norm(gamma, beta, 1e-5);
        let branch = (z.matmul(aw) + ab).gelu().matmul(bw) + bb;
        h = (h + branch).named(&format!("block{i}"));
    }
    b.output("loss", h.mse(t).named("loss"));
    Workload {
        id: "W3",
        name: "resmlp-ln",
        graph: b.finish(),
        feeds: init.feeds,
        optimizer: Optimizer::adam_with(1e-3, 0.9, 0.999, 1e-8),
        matmul_flops: cfg.matmul_flops(),
    }
}

/// W3 `resmlp-ln` at benchmark size.
pub fn w3_resmlp_ln(seed: u64) -> Workload {
    resmlp_ln(&ResMlpConfig::default(), seed)
}
