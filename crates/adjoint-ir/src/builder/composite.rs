//! Composite builders: functions that emit several primitives (softmax, layer norm, losses).
//!
//! Each is numerically careful in the usual ways (max-shifted softmax and logsumexp) and, like
//! the primitives, panics at the caller's location or returns a [`BuildError`] from its `try_`
//! twin.

use super::primitives::panicking;
use super::{unwrap_build, BuildError, Tensor};
use crate::DType;

impl<'b> Tensor<'b> {
    panicking! {
        /// `max(x, 0)`.
        relu => try_relu();
        /// `x * x`.
        square => try_square();
        /// Softmax along `axis`, shifted by the maximum for stability. Values and gradients are
        /// finite for any finite row and for rows with some `-inf` entries (masked positions
        /// get 0); a row that is all `-inf` gives NaN, as in PyTorch (see
        /// [`Tensor::softmax_or_zeros`]).
        softmax => try_softmax(axis: isize);
        /// Softmax along `axis` that gives zeros, and a zero gradient, for a row that is all
        /// `-inf` (an attention query whose keys are all masked), at the cost of two guarding
        /// selects; otherwise equal to [`Tensor::softmax`].
        softmax_or_zeros => try_softmax_or_zeros(axis: isize);
        /// `log(softmax(x))` along `axis`, computed as `x - logsumexp(x)`.
        log_softmax => try_log_softmax(axis: isize);
        /// `log(sum(exp(x)))` over `axes`, shifted by the maximum (reduced axes removed).
        logsumexp => try_logsumexp(axes: &[isize]);
        /// Mean over `axes` (removed).
        mean => try_mean(axes: &[isize]);
        /// Biased variance over `axes` (removed).
        var => try_var(axes: &[isize]);
        /// Layer normalization over the last axis: `(x - mean) / sqrt(var + eps) * gamma + beta`,
        /// with `gamma` and `beta` of the last axis' size.
        layer_norm => try_layer_norm(gamma: Tensor<'b>, beta: Tensor<'b>, eps: f64);
        /// Mean softmax cross-entropy of logits `[N, C]` against integer labels `[N]` (i32):
        /// `mean_i(logsumexp(logits_i) - logits_i[y_i])`. A label outside `0..C` selects no
        /// logit, so its row contributes `logsumexp(logits_i)`.
        cross_entropy => try_cross_entropy(labels: Tensor<'b>);
        /// Mean squared error over all elements.
        mse => try_mse(target: Tensor<'b>);
        /// Scaled dot-product attention with `self` as the queries `[..., Sq, D]`, keys
        /// `[..., Sk, D]` and values `[..., Sk, Dv]` (equal ranks of at least 2, equal leading
        /// axes): `softmax(q kᵀ / sqrt(D)) @ v`, of shape `[..., Sq, Dv]`. With `causal`, query
        /// `i` sees only keys `j <= i` (scores of later keys are `-inf`; needs `Sq == Sk`).
        scaled_dot_product_attention => try_scaled_dot_product_attention(
            k: Tensor<'b>,
            v: Tensor<'b>,
            causal: bool
        );
    }

    /// ReLU, or an error.
    #[track_caller]
    pub fn try_relu(self) -> Result<Tensor<'b>, BuildError> {
        self.try_maximum(self.scalar_like(0.0))
    }

    /// Square, or an error.
    #[track_caller]
    pub fn try_square(self) -> Result<Tensor<'b>, BuildError> {
        self.try_mul(self)
    }

    /// Softmax, or an error.
    ///
    /// `exp(x - max)` times the reciprocal of its sum, as PyTorch's CPU kernel computes it:
    /// one division per row rather than per element, in the forward and in the gradient (whose
    /// rules then multiply by the row's reciprocal instead of dividing by its sum). Each result
    /// is rounded twice (the reciprocal, the product) instead of once.
    #[track_caller]
    pub fn try_softmax(self, axis: isize) -> Result<Tensor<'b>, BuildError> {
        let shifted = self.try_sub(self.try_shift(&[axis])?)?;
        let e = shifted.try_exp()?;
        e.try_mul(e.try_sum_keepdims(&[axis])?.try_recip()?)
    }

    /// Softmax with zeros for empty rows, or an error.
    #[track_caller]
    pub fn try_softmax_or_zeros(self, axis: isize) -> Result<Tensor<'b>, BuildError> {
        // Shift by the maximum, or by 0 where it is -inf (-inf - -inf would be NaN).
        let m = self.try_shift(&[axis])?;
        let finite = m.try_gt(self.scalar_like(f64::NEG_INFINITY))?;
        let m = finite.try_select(m, self.scalar_like(0.0))?;
        let e = self.try_sub(m)?.try_exp()?;
        // A row of -inf has total 0: scale its zeros by 1 instead. One division per row, as in
        // `softmax`.
        let total = e.try_sum_keepdims(&[axis])?;
        let nonzero = total.try_gt(self.scalar_like(0.0))?;
        e.try_mul(
            nonzero
                .try_select(total, self.scalar_like(1.0))?
                .try_recip()?,
        )
    }

    /// Log-softmax, or an error.
    #[track_caller]
    pub fn try_log_softmax(self, axis: isize) -> Result<Tensor<'b>, BuildError> {
        let shifted = self.try_sub(self.try_shift(&[axis])?)?;
        let lse = shifted.try_exp()?.try_sum_keepdims(&[axis])?.try_log()?;
        shifted.try_sub(lse)
    }

    /// Logsumexp, or an error.
    #[track_caller]
    pub fn try_logsumexp(self, axes: &[isize]) -> Result<Tensor<'b>, BuildError> {
        let m = self.try_shift(axes)?;
        let s = self.try_sub(m)?.try_exp()?.try_sum(axes)?.try_log()?;
        let m = m.try_reshape(s.shape())?;
        s.try_add(m)
    }

    /// The stabilizing shift of softmax and logsumexp: the maximum over `axes` (kept), with no
    /// gradient. The results do not depend on the shift, so its gradient would only add terms
    /// that cancel (the maximum's ties mask, a row sum of the incoming gradient), as JAX's
    /// `stop_gradient` in `logsumexp` avoids.
    #[track_caller]
    fn try_shift(self, axes: &[isize]) -> Result<Tensor<'b>, BuildError> {
        self.try_max_keepdims(axes)?.try_stop_gradient()
    }

    /// Mean, or an error.
    #[track_caller]
    pub fn try_mean(self, axes: &[isize]) -> Result<Tensor<'b>, BuildError> {
        let count = self.count(axes)?;
        self.try_sum(axes)?.try_div(self.scalar_like(count))
    }

    /// Variance, or an error.
    #[track_caller]
    pub fn try_var(self, axes: &[isize]) -> Result<Tensor<'b>, BuildError> {
        let count = self.count(axes)?;
        let mean = self
            .try_sum_keepdims(axes)?
            .try_div(self.scalar_like(count))?;
        self.try_sub(mean)?.try_square()?.try_mean(axes)
    }

    /// Number of elements covered by `axes`, checked for float dtype.
    #[track_caller]
    fn count(self, axes: &[isize]) -> Result<f64, BuildError> {
        if !self.dtype().is_float() {
            let msg = format!("needs a float tensor, got {}", self.dtype());
            return Err(self.builder.error("mean", &[self], msg));
        }
        let shape = self.shape();
        let axes = self.resolve_axes("mean", axes)?;
        Ok(axes.iter().map(|&a| shape.dim(a)).product::<usize>() as f64)
    }

    /// Layer norm, or an error.
    #[track_caller]
    pub fn try_layer_norm(
        self,
        gamma: Tensor<'b>,
        beta: Tensor<'b>,
        eps: f64,
    ) -> Result<Tensor<'b>, BuildError> {
        let s = self.shape();
        let last = s.dims().last().copied().unwrap_or(0);
        let ok = |t: Tensor<'b>| t.rank() == 1 && t.shape().dim(0) == last;
        if s.rank() == 0 || !ok(gamma) || !ok(beta) {
            let msg =
                format!("gamma and beta must have shape [{last}], the last axis of the input");
            return Err(self.builder.error("layer_norm", &[self, gamma, beta], msg));
        }
        let count = last as f64;
        let mean = self
            .try_sum_keepdims(&[-1])?
            .try_div(self.scalar_like(count))?;
        let centered = self.try_sub(mean)?;
        let var = centered
            .try_square()?
            .try_sum_keepdims(&[-1])?
            .try_div(self.scalar_like(count))?;
        let inv_std = var
            .try_add(self.scalar_like(eps))?
            .try_sqrt()?
            .try_recip()?;
        centered.try_mul(inv_std)?.try_mul(gamma)?.try_add(beta)
    }

    /// Cross-entropy, or an error.
    #[track_caller]
    pub fn try_cross_entropy(self, labels: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
        let s = self.shape();
        if s.rank() != 2 || labels.shape().dims() != [s.dim(0)] || labels.dtype() != DType::I32 {
            let msg = "expects logits [N, C] (float) and labels [N] (i32)".to_string();
            return Err(self.builder.error("cross_entropy", &[self, labels], msg));
        }
        let classes = self.builder.iota(DType::I32, s.clone(), 1);
        let one_hot = classes.try_eq(labels.try_unsqueeze(1)?)?;
        // Selected, not multiplied by the one-hot: a masked logit (-inf) times 0 would be NaN.
        let picked = one_hot
            .try_select(self, self.scalar_like(0.0))?
            .try_sum(&[1])?;
        self.try_logsumexp(&[1])?.try_sub(picked)?.try_mean(&[0])
    }

    /// MSE, or an error.
    #[track_caller]
    pub fn try_mse(self, target: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
        let d = self.try_sub(target)?.try_square()?;
        let axes: Vec<isize> = (0..d.rank() as isize).collect();
        d.try_mean(&axes)
    }

    /// Scaled dot-product attention, or an error.
    #[track_caller]
    pub fn try_scaled_dot_product_attention(
        self,
        k: Tensor<'b>,
        v: Tensor<'b>,
        causal: bool,
    ) -> Result<Tensor<'b>, BuildError> {
        let (sq, sk, sv) = (self.shape(), k.shape(), v.shape());
        let r = sq.rank();
        let fits = r >= 2
            && sk.rank() == r
            && sv.rank() == r
            && sq.dims()[..r - 2] == sk.dims()[..r - 2]
            && sq.dims()[..r - 2] == sv.dims()[..r - 2]
            && sq.dim(r - 1) == sk.dim(r - 1)
            && sk.dim(r - 2) == sv.dim(r - 2)
            && (!causal || sq.dim(r - 2) == sk.dim(r - 2));
        if !fits {
            let msg = "expects queries [..., Sq, D], keys [..., Sk, D] and values [..., Sk, Dv] \
                       with equal leading axes (and Sq == Sk when causal)"
                .to_string();
            return Err(self
                .builder
                .error("scaled_dot_product_attention", &[self, k, v], msg));
        }
        let head_dim = sq.dim(r - 1) as f64;
        let scores = self
            .try_matmul(k.try_transpose(-1, -2)?)?
            .try_mul(self.scalar_like(1.0 / head_dim.sqrt()))?;
        let scores = if causal {
            let seq = sq.dim(r - 2);
            let query_pos = self.builder.try_iota(DType::I32, [seq, seq], 0)?;
            let key_pos = self.builder.try_iota(DType::I32, [seq, seq], 1)?;
            let visible = key_pos.try_le(query_pos)?;
            visible.try_select(scores, scores.scalar_like(f64::NEG_INFINITY))?
        } else {
            scores
        };
        scores.try_softmax(-1)?.try_matmul(v)
    }
}
