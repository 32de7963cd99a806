//! [`LayerNorm`]: normalization over the last axis with a learned scale and shift.

use crate::{Initializer, Params};
use adjoint_ir::Tensor;

/// Layer normalization over the last axis: `(x - mean) / sqrt(var + eps) · γ + β`, with
/// `γ = <name>.gamma` (ones) and `β = <name>.beta` (zeros), both `[features]`.
///
/// ```
/// use adjoint_ir::{Builder, DType};
/// use adjoint_nn::layers::LayerNorm;
/// use adjoint_nn::Params;
///
/// let b = Builder::new("net");
/// let mut params = Params::new(&b, 0);
/// let norm = LayerNorm::new(&mut params, "ln", 8);
/// let y = norm.forward(b.input("x", DType::F32, [4, 8]));
/// assert_eq!(y.shape().dims(), &[4, 8]);
/// assert_eq!(params.trainable(), ["ln.gamma", "ln.beta"]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct LayerNorm<'b> {
    /// The scale γ, `[features]`.
    pub gamma: Tensor<'b>,
    /// The shift β, `[features]`.
    pub beta: Tensor<'b>,
    /// Added to the variance.
    pub eps: f64,
}

impl<'b> LayerNorm<'b> {
    /// Layer norm over `features` values with `eps = 1e-5` (PyTorch's default).
    #[track_caller]
    pub fn new(params: &mut Params<'b>, name: &str, features: usize) -> LayerNorm<'b> {
        LayerNorm::with_eps(params, name, features, 1e-5)
    }

    /// Layer norm with an explicit `eps`.
    #[track_caller]
    pub fn with_eps(
        params: &mut Params<'b>,
        name: &str,
        features: usize,
        eps: f64,
    ) -> LayerNorm<'b> {
        params.scope(name, |p| LayerNorm {
            gamma: p.get("gamma", &[features], Initializer::Ones),
            beta: p.get("beta", &[features], Initializer::Zeros),
            eps,
        })
    }

    /// The normalized `x` (last axis of size `features`).
    #[track_caller]
    pub fn forward(&self, x: Tensor<'b>) -> Tensor<'b> {
        x.layer_norm(self.gamma, self.beta, self.eps)
    }
}
