//! [`MultiHeadAttention`]: multi-head self-attention (causal or not, with optional biases,
//! key padding mask and attention dropout), and the pre-LN
//! [`TransformerBlock`] built on it.

use super::{Activation, Dropout, LayerNorm, Mlp};
use crate::init::Initializer;
use crate::params::Params;
use adjoint_ir::{DType, Tensor};

/// The options of a [`MultiHeadAttention`], PyTorch's `bias`, `dropout` and `is_causal`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionOptions {
    /// Whether a position sees only itself and earlier positions (a decoder).
    pub causal: bool,
    /// Whether the four projections have biases `bq`, `bk`, `bv`, `bo` `[width]` (zeros).
    pub bias: bool,
    /// Probability of dropping an attention weight in training
    /// ([`MultiHeadAttention::forward_train`]).
    pub dropout: f64,
    /// Scale of the output projection's initial values (GPT-2 scales residual projections by
    /// `1/sqrt(2·layers)`).
    pub out_scale: f64,
}

impl Default for AttentionOptions {
    /// Causal, without biases or dropout, output scale 1: GPT's attention.
    fn default() -> AttentionOptions {
        AttentionOptions {
            causal: true,
            bias: false,
            dropout: 0.0,
            out_scale: 1.0,
        }
    }
}

/// Multi-head self-attention over `[batch, seq, width]`: causal by default (the attention of a
/// decoder-only transformer, GPT), or bidirectional, with optional projection biases, a key
/// padding mask and attention dropout ([`AttentionOptions`]).
///
/// Declares `<name>.wq`, `<name>.wk`, `<name>.wv` (LeCun normal) and `<name>.wo` (LeCun normal
/// scaled by `out_scale`), each `[width, width]`, and with `bias` also `<name>.bq`, `<name>.bk`,
/// `<name>.bv`, `<name>.bo` `[width]` (zeros). The forward pass projects `x` to queries, keys
/// and values, splits them into `heads` heads of `width / heads`, applies scaled dot-product
/// attention (with the causal mask, a position sees itself and earlier positions only), merges
/// the heads and projects by `wo`. Without padding or dropout this is
/// [`Tensor::scaled_dot_product_attention`], the same graph as
/// `adjoint_workloads::causal_self_attention` for the default options.
///
/// A query whose keys are all masked (causal and padding together) attends to nothing: its
/// attention weights are 0 and its output is the output bias (PyTorch returns NaN there).
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
    /// The biases of the query, key, value and output projections, `[width]` each, when the
    /// layer has them.
    pub biases: Option<[Tensor<'b>; 4]>,
    /// Number of heads.
    pub heads: usize,
    /// Whether the attention is causal.
    pub causal: bool,
    /// Attention dropout probability (training only).
    pub dropout: f64,
}

impl<'b> MultiHeadAttention<'b> {
    /// Declares causal attention `name` of `width` split into `heads` heads, without biases;
    /// panics unless `heads` divides `width`.
    #[track_caller]
    pub fn new(
        params: &mut Params<'b>,
        name: &str,
        width: usize,
        heads: usize,
    ) -> MultiHeadAttention<'b> {
        MultiHeadAttention::with_options(params, name, width, heads, AttentionOptions::default())
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
        let options = AttentionOptions {
            out_scale,
            ..AttentionOptions::default()
        };
        MultiHeadAttention::with_options(params, name, width, heads, options)
    }

    /// Declares attention `name` with every option; panics unless `heads` divides `width` and
    /// `0 <= dropout < 1`.
    #[track_caller]
    pub fn with_options(
        params: &mut Params<'b>,
        name: &str,
        width: usize,
        heads: usize,
        options: AttentionOptions,
    ) -> MultiHeadAttention<'b> {
        assert!(
            heads > 0 && width.is_multiple_of(heads),
            "attention heads ({heads}) must divide the width ({width})"
        );
        assert!(
            (0.0..1.0).contains(&options.dropout),
            "attention dropout must be in [0, 1), got {}",
            options.dropout
        );
        let std = (1.0 / width as f64).sqrt();
        let shape = [width, width];
        params.scope(name, |p| {
            let wq = p.get("wq", &shape, Initializer::Normal { std });
            let wk = p.get("wk", &shape, Initializer::Normal { std });
            let wv = p.get("wv", &shape, Initializer::Normal { std });
            let out_std = std * options.out_scale;
            let wo = p.get("wo", &shape, Initializer::Normal { std: out_std });
            let biases = options
                .bias
                .then(|| ["bq", "bk", "bv", "bo"].map(|n| p.get(n, &[width], Initializer::Zeros)));
            MultiHeadAttention {
                wq,
                wk,
                wv,
                wo,
                biases,
                heads,
                causal: options.causal,
                dropout: options.dropout,
            }
        })
    }

    /// The attention of `x` `[batch, seq, width]`, of the same shape, without dropout (the
    /// evaluation graph).
    #[track_caller]
    pub fn forward(&self, x: Tensor<'b>) -> Tensor<'b> {
        self.attend(x, None, None)
    }

    /// [`MultiHeadAttention::forward`] with a key padding mask `[batch, seq]` (bool, PyTorch's
    /// `key_padding_mask`): where it is true, that key is ignored by every query.
    #[track_caller]
    pub fn forward_masked(&self, x: Tensor<'b>, key_padding: Tensor<'b>) -> Tensor<'b> {
        self.attend(x, Some(key_padding), None)
    }

    /// Training mode: like [`MultiHeadAttention::forward_masked`] (the mask is optional), with
    /// attention dropout applied to the attention weights. The dropout mask is a random input
    /// `<name>.dropout.mask` `[batch, heads, seq, seq]` (see [`Dropout`]), declared in `params`
    /// (under its current scope) when the dropout probability is above 0.
    #[track_caller]
    pub fn forward_train(
        &self,
        params: &mut Params<'b>,
        x: Tensor<'b>,
        key_padding: Option<Tensor<'b>>,
    ) -> Tensor<'b> {
        if self.dropout == 0.0 {
            return self.attend(x, key_padding, None);
        }
        let name = {
            let graph = x.builder().graph();
            let wq = graph.leaf_name(self.wq.id()).unwrap_or("attention.wq");
            wq.strip_suffix(".wq").unwrap_or(wq).to_string()
        };
        let dropout = Dropout::new(&format!("{name}.dropout"), self.dropout);
        self.attend(x, key_padding, Some((params, dropout)))
    }

    /// The attention of `x`, masked by `key_padding` (true = ignored), with `dropout` applied
    /// to the attention weights.
    #[track_caller]
    fn attend(
        &self,
        x: Tensor<'b>,
        key_padding: Option<Tensor<'b>>,
        dropout: Option<(&mut Params<'b>, Dropout)>,
    ) -> Tensor<'b> {
        let s = x.shape();
        let width = self.wq.shape().dim(0);
        assert!(
            s.rank() == 3 && s.dim(2) == width,
            "attention of width {width} expects [batch, seq, {width}], got {}",
            x.ty()
        );
        let (batch, seq) = (s.dim(0), s.dim(1));
        if let Some(m) = key_padding {
            assert!(
                m.shape().dims() == [batch, seq] && m.dtype() == DType::Bool,
                "a key padding mask for {} must be bool [{batch}, {seq}], got {}",
                x.ty(),
                m.ty()
            );
        }
        let head_dim = width / self.heads;
        let bias = |k: usize| self.biases.map(|b| b[k]);
        let project = |w: Tensor<'b>, b: Option<Tensor<'b>>, t: Tensor<'b>| {
            let y = t.matmul(w);
            b.map_or(y, |b| y + b)
        };
        let split = |m: Tensor<'b>| {
            m.reshape([batch, seq, self.heads, head_dim])
                .permute(&[0, 2, 1, 3])
        };
        let q = split(project(self.wq, bias(0), x));
        let k = split(project(self.wk, bias(1), x));
        let v = split(project(self.wv, bias(2), x));
        let attended = if key_padding.is_none() && dropout.is_none() {
            q.scaled_dot_product_attention(k, v, self.causal)
        } else {
            let weights = self.weights(q, k, key_padding);
            let weights = match dropout {
                Some((params, d)) => d.forward_train(params, weights),
                None => weights,
            };
            weights.matmul(v)
        };
        let merged = attended.permute(&[0, 2, 1, 3]).reshape([batch, seq, width]);
        project(self.wo, bias(3), merged)
    }

    /// The attention weights `softmax(mask(q kᵀ / sqrt(D)))` `[batch, heads, seq, seq]`.
    fn weights(&self, q: Tensor<'b>, k: Tensor<'b>, key_padding: Option<Tensor<'b>>) -> Tensor<'b> {
        let b = q.builder();
        let (batch, seq, head_dim) = (q.shape().dim(0), q.shape().dim(2), q.shape().dim(3));
        let scores = q.matmul(k.transpose(-1, -2)) * (1.0 / (head_dim as f64).sqrt());
        let hidden = scores.scalar_like(f64::NEG_INFINITY);
        let scores = if self.causal {
            let query_pos = b.iota(DType::I32, [seq, seq], 0);
            let key_pos = b.iota(DType::I32, [seq, seq], 1);
            key_pos.le(query_pos).select(scores, hidden)
        } else {
            scores
        };
        let scores = match key_padding {
            Some(m) => m.reshape([batch, 1, 1, seq]).select(hidden, scores),
            None => scores,
        };
        // A padding mask (with the causal one) may hide every key of a query.
        if key_padding.is_some() {
            scores.softmax_or_zeros(-1)
        } else {
            scores.softmax(-1)
        }
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
