//! [`BatchNorm`]: batch normalization over the batch (and spatial) axes, per channel.

use crate::init::Initializer;
use crate::params::Params;
use adjoint_ir::{AllReduceKind, Tensor};

/// Batch normalization of `[N, C]` or `[N, C, H, W]` inputs, per channel `C`.
///
/// Declares the trainable `<name>.gamma` (ones) and `<name>.beta` (zeros) of shape `[C]` (unless
/// built [`BatchNorm::with_affine`] `false`), and
/// the non-trainable state `<name>.running_mean` (zeros) and `<name>.running_var` (ones),
/// declared with [`Params::state`].
///
/// There are two forward passes, one per mode, because the two modes are different graphs:
///
/// - [`BatchNorm::forward_train`] normalizes with the statistics of the batch (mean and biased
///   variance over `N`, or over `N, H, W`) and declares the updates of the running statistics
///   (`running ← (1 - momentum)·running + momentum·batch`, the variance unbiased by
///   `n / (n - 1)`, as PyTorch does), so every compiled training step advances them in place.
///   Applied several times in one graph (a shared layer), each update starts from the previous
///   one, so a step advances the statistics once per application, as PyTorch's module does;
/// - [`BatchNorm::forward_eval`] normalizes with the running statistics and updates nothing.
///
/// Built from a store for data-parallel replicas ([`Params::with_replicas`], which the trainer
/// uses for a replica's step), training mode is **synchronized batch norm**: the mean and the
/// variance are those of the global batch, each an `all_reduce_mean` of the replicas' (equal
/// shards), so the replicas normalize alike and keep identical running statistics.
///
/// ```
/// use adjoint_ir::{Builder, DType};
/// use adjoint_nn::layers::BatchNorm;
/// use adjoint_nn::Params;
///
/// let b = Builder::new("bn");
/// let mut params = Params::new(&b, 0);
/// let x = b.input("x", DType::F32, [8, 3, 4, 4]);
/// let bn = BatchNorm::new(&mut params, "bn1", 3);
/// let y = bn.forward_train(x);
/// assert_eq!(y.shape().dims(), &[8, 3, 4, 4]);
/// assert_eq!(params.trainable(), &["bn1.gamma", "bn1.beta"]);
/// let graph = b.finish();
/// assert_eq!(graph.updates().len(), 2); // running_mean and running_var
/// ```
#[derive(Clone, Copy, Debug)]
pub struct BatchNorm<'b> {
    /// Scale, `[C]` (`None` without affine parameters).
    pub gamma: Option<Tensor<'b>>,
    /// Shift, `[C]` (`None` without affine parameters).
    pub beta: Option<Tensor<'b>>,
    /// Running mean, `[C]` (state).
    pub running_mean: Tensor<'b>,
    /// Running (unbiased) variance, `[C]` (state).
    pub running_var: Tensor<'b>,
    /// Weight of the batch statistics in the running update: 0.1.
    pub momentum: f64,
    /// Added to the variance before the square root: 1e-5.
    pub eps: f64,
    /// Data-parallel replicas whose batch statistics are combined in training mode (1: none).
    pub replicas: usize,
}

impl<'b> BatchNorm<'b> {
    /// Declares a batch norm `name` over `channels` channels, with momentum 0.1 and ε 1e-5.
    #[track_caller]
    pub fn new(params: &mut Params<'b>, name: &str, channels: usize) -> BatchNorm<'b> {
        BatchNorm::with_affine(params, name, channels, true)
    }

    /// Declares a batch norm `name`, with the affine parameters `gamma` and `beta` only when
    /// `affine` (PyTorch's `affine=False` normalizes without scale or shift).
    #[track_caller]
    pub fn with_affine(
        params: &mut Params<'b>,
        name: &str,
        channels: usize,
        affine: bool,
    ) -> BatchNorm<'b> {
        params.scope(name, |p| BatchNorm {
            gamma: affine.then(|| p.get("gamma", &[channels], Initializer::Ones)),
            beta: affine.then(|| p.get("beta", &[channels], Initializer::Zeros)),
            running_mean: p.state("running_mean", &[channels], Initializer::Zeros),
            running_var: p.state("running_var", &[channels], Initializer::Ones),
            momentum: 0.1,
            eps: 1e-5,
            replicas: p.replicas(),
        })
    }

    /// The same layer with another momentum.
    pub fn with_momentum(mut self, momentum: f64) -> BatchNorm<'b> {
        self.momentum = momentum;
        self
    }

    /// The same layer with another ε.
    pub fn with_eps(mut self, eps: f64) -> BatchNorm<'b> {
        self.eps = eps;
        self
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.running_mean.shape().dim(0)
    }

    /// Training mode: normalizes `x` with its batch statistics and declares the updates of the
    /// running statistics. Panics at the caller unless `x` is `[N, C]` or `[N, C, H, W]` with
    /// this layer's `C` and more than one value per channel.
    #[track_caller]
    pub fn forward_train(&self, x: Tensor<'b>) -> Tensor<'b> {
        let (axes, stat_shape) = self.layout(x);
        let n: usize = axes.iter().map(|&a| x.shape().dim(a as usize)).product();
        assert!(
            n > 1,
            "batch norm needs more than one value per channel in training mode, got {}",
            x.ty()
        );
        let count = x.scalar_like(n as f64);
        // Over replicas of equal shards, the global mean is the mean of the shards' means.
        let global = |t: Tensor<'b>| match self.replicas {
            1 => t,
            r => t.all_reduce(AllReduceKind::Mean, r),
        };
        let mean = global(x.sum_keepdims(&axes) / count);
        let centered = x - mean;
        let var = global(centered.square().sum_keepdims(&axes) / count);
        let n = n * self.replicas;
        let normalized = centered * (var + self.eps).sqrt().recip();
        let c = self.channels();
        let m = self.momentum;
        let batch_mean = mean.reshape([c]);
        let unbiased = var.reshape([c]) * (n as f64 / (n - 1) as f64);
        let b = x.builder();
        let (running_mean, running_var) = (current(self.running_mean), current(self.running_var));
        b.update(self.running_mean, running_mean * (1.0 - m) + batch_mean * m);
        b.update(self.running_var, running_var * (1.0 - m) + unbiased * m);
        self.affine(normalized, &stat_shape)
    }

    /// Evaluation mode: normalizes `x` with the running statistics (as updated by any
    /// [`BatchNorm::forward_train`] earlier in the same graph).
    #[track_caller]
    pub fn forward_eval(&self, x: Tensor<'b>) -> Tensor<'b> {
        let (_, stat_shape) = self.layout(x);
        let mean = current(self.running_mean).reshape(stat_shape.as_slice());
        let inv_std = (current(self.running_var) + self.eps)
            .sqrt()
            .recip()
            .reshape(stat_shape.as_slice());
        self.affine((x - mean) * inv_std, &stat_shape)
    }

    /// `normalized · gamma + beta`, the parameters reshaped to broadcast over `x` (the
    /// identity without affine parameters).
    fn affine(&self, normalized: Tensor<'b>, stat_shape: &[usize]) -> Tensor<'b> {
        match (self.gamma, self.beta) {
            (Some(g), Some(b)) => normalized * g.reshape(stat_shape) + b.reshape(stat_shape),
            _ => normalized,
        }
    }

    /// The reduced axes and the per-channel broadcast shape for `x`.
    #[track_caller]
    fn layout(&self, x: Tensor<'b>) -> (Vec<isize>, Vec<usize>) {
        let c = self.channels();
        let s = x.shape();
        assert!(
            matches!(s.rank(), 2 | 4) && s.dim(1) == c,
            "batch norm over {c} channels expects [N, {c}] or [N, {c}, H, W], got {}",
            x.ty()
        );
        if s.rank() == 2 {
            (vec![0], vec![1, c])
        } else {
            (vec![0, 2, 3], vec![1, c, 1, 1])
        }
    }
}

/// The value `state` has at this point of the graph: the new value declared by an update earlier
/// in the graph (a previous training application of the same layer), else `state` itself.
fn current(state: Tensor<'_>) -> Tensor<'_> {
    let b = state.builder();
    let pending = b.graph().update_of(state.id());
    pending.map_or(state, |v| b.tensor(v))
}
