//! [`MultiHeadAttention`]: causal multi-head self-attention, and the pre-LN
//! [`TransformerBlock`] built on it.

use super::{Activation, LayerNorm, Mlp};
use crate::init::Initializer;
use crate::params::Params;
use adjoint_ir::Tensor;

/// Causal multi-head self-attention over `[batch, seq, width]`, the attention of a decoder-only
/// transformer (GPT).
///
/// Declares `<name>.wq`, `<name>.wk`, `<name>.wv` (LeCun normal) and `<name>.wo` (LeCun normal
/// scaled by `out_scale`, 1 by default), each `[width, width]`, without biases. The forward pass
/// projects `x` to queries, keys and values, splits them into `heads` heads of
/// `width / heads`, applies [`Tensor::scaled_dot_product_attention`] with the causal mask (a
/// position sees itself and earlier positions only), merges the heads and projects by `wo` —
/// the same graph as `adjoint_workloads::causal_self_attention`.
///
/// ```
/// use adjoint_ir::{Builder, DType};
/// use adjoint_nn::layers::MultiHeadAttention;
/// use adjoint_nn::Params;
///
/// let b = Builder::new("attn");
/// let mut params = Params::new(&b, 0);
/// let x = b.input("x", DType::F32, [2, 5, 8]);
/// let attn = MultiHeadAttention::new(&mut params, "attn", 8, 2);
/// assert_eq!(attn.forward(x).shape().dims(), &[2, 5, 8]);
/// assert_eq!(params.trainable(), &["attn.wq", "attn.wk", "attn.wv", "attn.wo"]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct MultiHeadAttention<'b> {
    /// Query projection `[width, width]`.
    pub wq: Tensor<'b>,
    /// Key projection `[width, width]`.
    pub wk: Tensor<'b>,
    /// Value projection `[width, width]`.
    pub wv: Tensor<'b>,
    /// Output projection `[width, width]`.
    pub wo: Tensor<'b>,
    /// Number of heads.
    pub heads: usize,
}

impl<'b> MultiHeadAttention<'b> {
    /// Declares attention `name` of `width` split into `heads` heads; panics unless `heads`
    /// divides `width`.
    #[track_caller]
    pub fn new(
        params: &mut Params<'b>,
        name: &str,
        width: usize,
        heads: usize,
    ) -> MultiHeadAttention<'b> {
        MultiHeadAttention::with_out_scale(params, name, width, heads, 1.0)
    }

    /// [`MultiHeadAttention::new`] with the output projection's initial values scaled by
    /// `out_scale` (GPT-2 scales residual projections by `1/sqrt(2·layers)`).
    #[track_caller]
    pub fn with_out_scale(
        params: &mut Params<'b>,
        name: &str,
        width: usize,
        heads: usize,
        out_scale: f64,
    ) -> MultiHeadAttention<'b> {
        assert!(
            heads > 0 && width.is_multiple_of(heads),
            "attention heads ({heads}) must divide the width ({width})"
        );
        let std = (1.0 / width as f64).sqrt();
        let shape = [width, width];
        params.scope(name, |p| MultiHeadAttention {
            wq: p.get("wq", &shape, Initializer::Normal { std }),
            wk: p.get("wk", &shape, Initializer::Normal { std }),
            wv: p.get("wv", &shape, Initializer::Normal { std }),
            wo: p.get(
                "wo",
                &shape,
                Initializer::Normal {
                    std: std * out_scale,
                },
            ),
            heads,
        })
    }

    /// The attention of `x` `[batch, seq, width]`, of the same shape.
    #[track_caller]
    pub fn forward(&self, x: Tensor<'b>) -> Tensor<'b> {
        let s = x.shape();
        let width = self.wq.shape().dim(0);
        assert!(
            s.rank() == 3 && s.dim(2) == width,
            "attention of width {width} expects [batch, seq, {width}], got {}",
            x.ty()
        );
        let (batch, seq) = (s.dim(0), s.dim(1));
        let head_dim = width / self.heads;
        let split = |m: Tensor<'b>| {
            m.reshape([batch, seq, self.heads, head_dim])
                .permute(&[0, 2, 1, 3])
        };
        let q = split(x.matmul(self.wq));
        let k = split(x.matmul(self.wk));
        let v = split(x.matmul(self.wv));
        let attended = q.scaled_dot_product_attention(k, v, true);
        let merged = attended.permute(&[0, 2, 1, 3]).reshape([batch, seq, width]);
        merged.matmul(self.wo)
    }
}

/// A pre-LN decoder block (GPT-2, and W4's block): `h = x + attn(ln1(x))`,
/// `out = h + mlp(ln2(h))`, with a GELU MLP `width → mlp_hidden → width`.
///
/// Declares `<name>.ln1`, `<name>.attn` ([`MultiHeadAttention`]), `<name>.ln2` and `<name>.mlp`
/// ([`Mlp`] with `fc1` and `fc2`).
///
/// ```
/// use adjoint_ir::{Builder, DType};
/// use adjoint_nn::layers::TransformerBlock;
/// use adjoint_nn::Params;
///
/// let b = Builder::new("gpt");
/// let mut params = Params::new(&b, 0);
/// let block = TransformerBlock::new(&mut params, "block1", 8, 2, 32);
/// let x = b.input("x", DType::F32, [2, 5, 8]);
/// assert_eq!(block.forward(x).shape().dims(), &[2, 5, 8]);
/// assert_eq!(params.trainable().len(), 2 + 4 + 2 + 4);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TransformerBlock<'b> {
    /// The norm before attention.
    pub ln1: LayerNorm<'b>,
    /// The causal self-attention.
    pub attn: MultiHeadAttention<'b>,
    /// The norm before the MLP.
    pub ln2: LayerNorm<'b>,
    /// The feed-forward block.
    pub mlp: Mlp<'b>,
}

impl<'b> TransformerBlock<'b> {
    /// Declares a block `name` of `width` with `heads` attention heads and an MLP of
    /// `mlp_hidden` units.
    #[track_caller]
    pub fn new(
        params: &mut Params<'b>,
        name: &str,
        width: usize,
        heads: usize,
        mlp_hidden: usize,
    ) -> TransformerBlock<'b> {
        params.scope(name, |p| TransformerBlock {
            ln1: LayerNorm::new(p, "ln1", width),
            attn: MultiHeadAttention::new(p, "attn", width, heads),
            ln2: LayerNorm::new(p, "ln2", width),
            mlp: Mlp::new(p, "mlp", width, mlp_hidden, width, Activation::Gelu),
        })
    }

    /// The block applied to `x` `[batch, seq, width]`.
    #[track_caller]
    pub fn forward(&self, x: Tensor<'b>) -> Tensor<'b> {
        let h = x + self.attn.forward(self.ln1.forward(x));
        h + self.mlp.forward(self.ln2.forward(h))
    }
}
