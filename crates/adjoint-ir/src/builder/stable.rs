//! Saturating elementwise composites (sigmoid, softplus, log-sigmoid, GELU) written so that both
//! their values and every gradient the chain rule derives from them stay finite wherever the
//! function's value is finite.
//!
//! The rule they follow: no node of the forward graph may overflow to `±inf` while the result
//! is finite, because the reverse pass then multiplies that infinity by a zero adjoint and gets
//! NaN. So exponentials are only ever taken of `-|x|` (at most 1), and both sides of every
//! `select` are finite. `docs/ir.md` lists the formulations. GELU keeps PyTorch's tanh
//! formula, finite up to `|x| = 1.8e19` (f32); see [`Tensor::gelu`].

use super::primitives::panicking;
use super::{unwrap_build, BuildError, Tensor};

/// `sqrt(2/pi)`, the GELU tanh-approximation constant.
const GELU_C: f64 = 0.797_884_560_802_865_4;

impl<'b> Tensor<'b> {
    panicking! {
        /// `1 / (1 + e^-x)`, computed as `1 / (1 + e^-x)` for `x >= 0` and `e^x / (1 + e^x)`
        /// below, so that no intermediate overflows and the gradient is finite (and accurate,
        /// down to `1.8e-35` at `x = -80` in f32) for every finite `x`.
        sigmoid => try_sigmoid();
        /// `log(1 + e^x)`, computed as `x + log1p(e^-x)` for `x >= 0` and `log1p(e^x)` below:
        /// exact to rounding for all `x` (including `e^x` for very negative `x`), with a finite
        /// gradient `sigmoid(x)`.
        softplus => try_softplus();
        /// `log(sigmoid(x)) = -softplus(-x)`, computed as `-log1p(e^-x)` for `x >= 0` and
        /// `x - log1p(e^x)` below.
        log_sigmoid => try_log_sigmoid();
        /// GELU, tanh form, PyTorch's formula: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
        /// Its value and gradient are finite for `|x|` below `1.8e19` in f32 (`1.3e154` in
        /// f64), where `x²` overflows and the gradient becomes `0 · inf = NaN`, as PyTorch's
        /// does; capping `x²` would cost a select in every training step's GELU (8 more
        /// kernels in W3) to protect inputs no trained network produces. Like PyTorch's, it is
        /// accurate to an absolute (not relative) rounding error for negative `x`, where
        /// `1 + tanh` cancels, and NaN at `x = -inf`.
        gelu => try_gelu();
    }

    /// Sigmoid, or an error.
    #[track_caller]
    pub fn try_sigmoid(self) -> Result<Tensor<'b>, BuildError> {
        let (non_negative, e) = self.try_split_exp()?;
        let r = e.try_add(self.scalar_like(1.0))?.try_recip()?;
        non_negative.try_select(r, e.try_mul(r)?)
    }

    /// Softplus, or an error.
    #[track_caller]
    pub fn try_softplus(self) -> Result<Tensor<'b>, BuildError> {
        let (non_negative, e) = self.try_split_exp()?;
        let positive_part = non_negative.try_select(self, self.scalar_like(0.0))?;
        positive_part.try_add(log1p_unit(e)?)
    }

    /// Log-sigmoid, or an error.
    #[track_caller]
    pub fn try_log_sigmoid(self) -> Result<Tensor<'b>, BuildError> {
        let (non_negative, e) = self.try_split_exp()?;
        let negative_part = non_negative.try_select(self.scalar_like(0.0), self)?;
        negative_part.try_sub(log1p_unit(e)?)
    }

    /// The mask `x >= 0` and `e^-|x|` (at most 1), with `-|x|` written as `select(x >= 0, -x, x)`
    /// rather than through `abs`: the gradient of `abs` at 0 is 0, which would give these
    /// functions a zero derivative at `x = 0`; each side of the select is differentiated on its
    /// own, so the derivative at 0 is the right-hand one (the functions are smooth there).
    #[track_caller]
    fn try_split_exp(self) -> Result<(Tensor<'b>, Tensor<'b>), BuildError> {
        let non_negative = self.try_ge(self.scalar_like(0.0))?;
        let e = non_negative.try_select(self.try_neg()?, self)?.try_exp()?;
        Ok((non_negative, e))
    }

    /// GELU, or an error.
    #[track_caller]
    pub fn try_gelu(self) -> Result<Tensor<'b>, BuildError> {
        let cube = self.try_mul(self.try_square()?)?;
        let inner = self
            .try_add(cube.try_mul(self.scalar_like(0.044715))?)?
            .try_mul(self.scalar_like(GELU_C))?;
        let gate = inner.try_tanh()?.try_add(self.scalar_like(1.0))?;
        self.try_mul(self.scalar_like(0.5))?.try_mul(gate)
    }
}

/// `log(1 + u)` for `u` in `[0, 1]`, accurate to rounding even where `1 + u` rounds to 1:
/// with `w = 1 + u`, it is `u` where `w == 1` and `log(w) · u / (w - 1)` elsewhere (the
/// rounding error of `w` cancels in the ratio). The division never sees `w - 1 = 0` (the
/// denominator is replaced by 1 there), so the unselected side and its gradient stay finite.
#[track_caller]
fn log1p_unit(u: Tensor<'_>) -> Result<Tensor<'_>, BuildError> {
    let one = u.scalar_like(1.0);
    let w = u.try_add(one)?;
    let d = w.try_sub(one)?;
    let exact = d.try_eq(u.scalar_like(0.0))?;
    let safe_d = exact.try_select(one, d)?;
    let corrected = w.try_log()?.try_mul(u.try_div(safe_d)?)?;
    exact.try_select(u, corrected)
}
