//! Dynamic loss scaling, compiled into the training step: the loss is multiplied by a scale
//! before differentiation (so that small f16 gradients do not flush to zero), the gradients are
//! divided by it, and a step whose gradients are not all finite is skipped and halves the scale;
//! after `growth_interval` clean steps in a row the scale doubles. PyTorch's `GradScaler`, with
//! its defaults, as graph nodes: the scale and the clean-step count are optimizer-state
//! parameters, so the whole policy runs inside the compiled step.

use adjoint_ir::{BuildError, Builder, DType, Tensor};

/// The parameter holding the current scale (rank-0 `f32`).
pub const SCALE_PARAM: &str = "loss_scale";
/// The parameter counting clean steps since the scale last changed (rank-0 `f32`).
pub const GOOD_STEPS_PARAM: &str = "loss_scale.good_steps";
/// The output that is 1 when the step was skipped (a non-finite gradient), else 0 (rank-0
/// `f32`).
pub const SKIPPED_OUTPUT: &str = "loss_scale.skipped";

/// The settings of dynamic loss scaling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossScaling {
    /// The scale of the first step (PyTorch's default: 2^16).
    pub initial: f64,
    /// Clean steps in a row after which the scale doubles (PyTorch's default: 2000).
    pub growth_interval: u32,
}

impl Default for LossScaling {
    fn default() -> LossScaling {
        LossScaling {
            initial: 65536.0,
            growth_interval: 2000,
        }
    }
}

/// The scale and clean-step count of one step, as graph values.
pub(crate) struct Scaler<'b> {
    /// The scale parameter.
    pub(crate) scale: Tensor<'b>,
    /// The clean-step count parameter.
    pub(crate) good: Tensor<'b>,
    growth_interval: u32,
}

impl<'b> Scaler<'b> {
    /// The scaler reading the two state parameters `scale` and `good`.
    pub(crate) fn new(scale: Tensor<'b>, good: Tensor<'b>, settings: &LossScaling) -> Scaler<'b> {
        Scaler {
            scale,
            good,
            growth_interval: settings.growth_interval.max(1),
        }
    }

    /// `loss · scale`.
    pub(crate) fn scale_loss(&self, loss: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
        loss.try_mul(
            self.scale
                .try_cast(loss.dtype())?
                .try_broadcast_to(loss.shape())?,
        )
    }

    /// `g / scale`, in `g`'s dtype.
    pub(crate) fn unscale(&self, g: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
        let inv = self.scale.try_recip()?.try_cast(g.dtype())?;
        g.try_mul(inv.try_broadcast_to(g.shape())?)
    }

    /// Whether every element of every gradient is finite (a rank-0 bool): `Σ sum(g · 0)` is 0
    /// exactly then, and NaN as soon as one element is infinite or NaN.
    pub(crate) fn all_finite(&self, grads: &[Tensor<'b>]) -> Result<Tensor<'b>, BuildError> {
        let mut total = self.scale.scalar_like(0.0);
        for &g in grads {
            let axes: Vec<isize> = (0..g.rank() as isize).collect();
            let zeroed = g.try_mul(g.scalar_like(0.0).try_broadcast_to(g.shape())?)?;
            let s = zeroed.try_sum(&axes)?.try_cast(DType::F32)?;
            total = total.try_add(s)?;
        }
        total.try_eq(total.scalar_like(0.0))
    }

    /// Guards every update of the graph with `finite` (a skipped step keeps every parameter and
    /// optimizer state), declares the scale's and the count's updates and the
    /// [`SKIPPED_OUTPUT`].
    pub(crate) fn finish(&self, b: &Builder, finite: Tensor<'b>) -> Result<(), BuildError> {
        let updates: Vec<_> = b.graph().updates().to_vec();
        for (param, value) in updates {
            let (p, v) = (b.tensor(param), b.tensor(value));
            let cond = finite.try_broadcast_to(v.shape())?;
            b.update(p, cond.try_select(v, p)?);
        }
        let (scale, good) = (self.scale, self.good);
        let one = good.scalar_like(1.0);
        let counted = finite.try_select(good.try_add(one)?, good.scalar_like(0.0))?;
        let grow = counted.try_ge(good.scalar_like(self.growth_interval as f64))?;
        let grown = grow.try_select(scale.try_mul(scale.scalar_like(2.0))?, scale)?;
        let new_scale = finite.try_select(grown, scale.try_mul(scale.scalar_like(0.5))?)?;
        let new_good = grow.try_select(good.scalar_like(0.0), counted)?;
        b.update(scale, new_scale.named("loss_scale.new"));
        b.update(good, new_good);
        let skipped = finite
            .try_select(scale.scalar_like(0.0), scale.scalar_like(1.0))?
            .named(SKIPPED_OUTPUT);
        b.output(SKIPPED_OUTPUT, skipped);
        Ok(())
    }
}
