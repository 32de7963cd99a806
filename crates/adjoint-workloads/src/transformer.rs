//! W4 `gpt-tiny`: a pre-LN decoder-only transformer with causal self-attention.

use crate::init::Init;
use crate::Workload;
use adjoint_autodiff::Optimizer;
use adjoint_ir::Initializer;
use adjoint_ir::{Builder, DType, Tensor};

/// Sizes of the transformer.
#[derive(Clone, Debug, PartialEq)]
pub struct GptConfig {
    /// Sequences per batch.
    pub batch: usize,
    /// Tokens per sequence (and positional embeddings).
    pub seq: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Model width.
    pub width: usize,
    /// Attention heads (must divide `width`).
    pub heads: usize,
    /// MLP hidden width.
    pub mlp_hidden: usize,
    /// Number of blocks.
    pub layers: usize,
}

impl Default for GptConfig {
    /// W4's sizes: tokens `[8, 64]`, vocabulary 256, width 128, 4 heads, MLP 512, 2 blocks.
    fn default() -> Self {
        GptConfig {
            batch: 8,
            seq: 64,
            vocab: 256,
            width: 128,
            heads: 4,
            mlp_hidden: 512,
            layers: 2,
        }
    }
}

impl GptConfig {
    /// The same structure at test size.
    pub fn tiny() -> GptConfig {
        GptConfig {
            batch: 2,
            seq: 4,
            vocab: 5,
            width: 4,
            heads: 2,
            mlp_hidden: 6,
            layers: 1,
        }
    }

    /// Matmul FLOPs of one training step.
    pub fn matmul_flops(&self) -> f64 {
        let rows = self.batch * self.seq;
        let head_dim = self.width / self.heads;
        let projections = 4 * 2 * rows * self.width * self.width;
        let attention = 2 * 2 * self.batch * self.heads * self.seq * self.seq * head_dim;
        let mlp = 2 * 2 * rows * self.width * self.mlp_hidden;
        let unembed = 2 * rows * self.width * self.vocab;
        3.0 * (self.layers * (projections + attention + mlp) + unembed) as f64
    }
}

/// Causal multi-head self-attention of `x` `[batch, seq, width]`: projections `x @ wq`,
/// `x @ wk`, `x @ wv` split into `heads`, scores `q kᵀ / sqrt(head_dim)` with future positions
/// set to `-inf`, softmax, `@ v` ([`Tensor::scaled_dot_product_attention`]), heads concatenated
/// and projected by `wo`.
#[track_caller]
pub fn causal_self_attention<'b>(
    x: Tensor<'b>,
    wq: Tensor<'b>,
    wk: Tensor<'b>,
    wv: Tensor<'b>,
    wo: Tensor<'b>,
    heads: usize,
) -> Tensor<'b> {
    let s = x.shape();
    let (batch, seq, width) = (s.dim(0), s.dim(1), s.dim(2));
    let head_dim = width / heads;
    let split = |m: Tensor<'b>| {
        m.reshape([batch, seq, heads, head_dim])
            .permute(&[0, 2, 1, 3])
    };
    let (q, k, v) = (
        split(x.matmul(wq)),
        split(x.matmul(wk)),
        split(x.matmul(wv)),
    );
    let attended = q.scaled_dot_product_attention(k, v, true);
    let merged = attended.permute(&[0, 2, 1, 3]).reshape([batch, seq, width]);
    merged.matmul(wo)
}

/// The transformer: `h = E[tokens] + P`; per block `h += attn(ln1(h))`, `h += mlp(ln2(h))`
/// with `mlp(z) = gelu(z @ M1 + m1) @ M2 + m2`; final layer norm; `logits = h @ U`;
/// cross-entropy against `targets` over every position.
pub fn gpt(cfg: &GptConfig, seed: u64) -> Workload {
    assert!(
        cfg.width.is_multiple_of(cfg.heads),
        "width must be divisible by heads"
    );
    let b = Builder::new("gpt-tiny");
    let mut init = Init::new(seed);
    let tokens = b.input("tokens", DType::I32, [cfg.batch, cfg.seq]);
    let targets = b.input("targets", DType::I32, [cfg.batch, cfg.seq]);
    next_token_data(&mut init, cfg, tokens, targets);

    let (c, v) = (cfg.width, cfg.vocab);
    let embed = init.param(&b, "embed", &[v, c], Initializer::Normal { std: 0.02 });
    let pos = init.param(&b, "pos", &[cfg.seq, c], Initializer::Normal { std: 0.02 });
    let mut h = embed.gather(tokens, 0) + pos;

    let small = Initializer::Normal {
        std: 1.0 / (cfg.mlp_hidden as f64).sqrt() / ((2 * cfg.layers) as f64).sqrt(),
    };
    let hid = cfg.mlp_hidden;
    for l in 1..=cfg.layers {
        let name = |n: &str| format!("l{l}.{n}");
        let mut param = |n: &str, shape: &[usize], kind| init.param(&b, &name(n), shape, kind);
        let g1 = param("ln1.gamma", &[c], Initializer::Ones);
        let b1 = param("ln1.beta", &[c], Initializer::Zeros);
        let wq = param("wq", &[c, c], Initializer::LeCunNormal);
        let wk = param("wk", &[c, c], Initializer::LeCunNormal);
        let wv = param("wv", &[c, c], Initializer::LeCunNormal);
        let wo = param("wo", &[c, c], small);
        let g2 = param("ln2.gamma", &[c], Initializer::Ones);
        let b2 = param("ln2.beta", &[c], Initializer::Zeros);
        let m1 = param("m1.w", &[c, hid], Initializer::LeCunNormal);
        let m1b = param("m1.b", &[hid], Initializer::Zeros);
        let m2 = param("m2.w", &[hid, c], small);
        let m2b = param("m2.b", &[c], Initializer::Zeros);

        let attn = causal_self_attention(h.layer_norm(g1, b1, 1e-5), wq, wk, wv, wo, cfg.heads);
        h = (h + attn).named(&name("attn_out"));
        let mlp = (h.layer_norm(g2, b2, 1e-5).matmul(m1) + m1b)
            .gelu()
            .matmul(m2)
            + m2b;
        h = (h + mlp).named(&name("out"));
    }
    let gf = init.param(&b, "lnf.gamma", &[c], Initializer::Ones);
    let bf = init.param(&b, "lnf.beta", &[c], Initializer::Zeros);
    let unembed = init.param(&b, "unembed", &[c, v], Initializer::LeCunNormal);
    let rows = cfg.batch * cfg.seq;
    let logits = h
        .layer_norm(gf, bf, 1e-5)
        .matmul(unembed)
        .reshape([rows, v])
        .named("logits");
    let loss = logits.cross_entropy(targets.reshape([rows])).named("loss");
    b.output("loss", loss);
    Workload {
        id: "W4",
        name: "gpt-tiny",
        graph: b.finish(),
        feeds: init.feeds,
        optimizer: Optimizer::adam_with(1e-3, 0.9, 0.999, 1e-8),
        matmul_flops: cfg.matmul_flops(),
    }
}

/// Random token sequences; each target is the next token of its sequence.
fn next_token_data(init: &mut Init, cfg: &GptConfig, tokens: Tensor<'_>, targets: Tensor<'_>) {
    let mut rng = init.rng_for("sequences");
    let (mut toks, mut tgts) = (Vec::new(), Vec::new());
    for _ in 0..cfg.batch {
        let seq: Vec<i32> = (0..=cfg.seq)
            .map(|_| rng.below(cfg.vocab as u64) as i32)
            .collect();
        toks.extend_from_slice(&seq[..cfg.seq]);
        tgts.extend_from_slice(&seq[1..]);
    }
    init.put_i32("tokens", tokens.shape(), toks);
    init.put_i32("targets", targets.shape(), tgts);
}

/// W4 `gpt-tiny` at benchmark size.
pub fn w4_gpt_tiny(seed: u64) -> Workload {
    gpt(&GptConfig::default(), seed)
}
