//! [`LayerNorm`]: normalization over the last axis (or the last k axes) with a learned scale
//! and shift.

use crate::{Initializer, Params};
use adjoint_ir::Tensor;

/// Layer normalization over the last axis: `(x - mean) / sqrt(var + eps) · γ + β`, with
/// `γ = <name>.gamma` (ones) and `β = <name>.beta` (zeros), both `[features]`; or, built with
/// [`LayerNorm::over`], over the last `k` axes (PyTorch's `normalized_shape`), with `γ` and `β`
/// of those axes' shape.
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

    /// Layer norm over the last `normalized_shape.len()` axes, which must have that shape
    /// (PyTorch's `LayerNorm(normalized_shape, eps)`).
    #[track_caller]
    pub fn over(
        params: &mut Params<'b>,
        name: &str,
        normalized_shape: &[usize],
        eps: f64,
    ) -> LayerNorm<'b> {
        assert!(
            !normalized_shape.is_empty(),
            "layer norm needs at least one normalized axis"
        );
        params.scope(name, |p| LayerNorm {
            gamma: p.get("gamma", normalized_shape, Initializer::Ones),
            beta: p.get("beta", normalized_shape, Initializer::Zeros),
            eps,
        })
    }

    /// The normalized `x`, whose trailing axes must have the shape of `gamma`.
    #[track_caller]
    pub fn forward(&self, x: Tensor<'b>) -> Tensor<'b> {
        let norm = self.gamma.shape();
        let k = norm.rank();
        if k == 1 {
            return x.layer_norm(self.gamma, self.beta, self.eps);
        }
        let s = x.shape();
        assert!(
            s.rank() >= k && s.dims()[s.rank() - k..] == *norm.dims(),
            "layer norm over {norm} expects an input ending in those axes, got {}",
            x.ty()
        );
        let axes: Vec<isize> = (-(k as isize)..0).collect();
        let count = x.scalar_like(norm.numel() as f64);
        let centered = x - x.sum_keepdims(&axes) / count;
        let var = centered.square().sum_keepdims(&axes) / count;
        centered * (var + self.eps).sqrt().recip() * self.gamma + self.beta
    }
}
