//! Rules for the elementwise ops: unary, binary, select and cast.

use super::zeros_like;
use adjoint_ir::{BinaryOp, BuildError, Tensor, UnaryOp};

/// `y = u(x)`: `dx = g · u'(x)`, written with `y` where that reuses the forward node.
pub(super) fn unary<'b>(
    u: UnaryOp,
    x: Tensor<'b>,
    y: Tensor<'b>,
    g: Tensor<'b>,
) -> Result<Option<Tensor<'b>>, BuildError> {
    let dx = match u {
        UnaryOp::Neg => g.try_neg()?,
        // d e^x = e^x: reuse the forward exp.
        UnaryOp::Exp => g.try_mul(y)?,
        UnaryOp::Log => g.try_div(x)?,
        // d sqrt(x) = 1 / (2 sqrt(x)).
        UnaryOp::Sqrt => g.try_div(y.try_add(y)?)?,
        // d (1/x) = -1/x² = -y².
        UnaryOp::Recip => g.try_mul(y.try_square()?)?.try_neg()?,
        // d tanh(x) = 1 - tanh(x)².
        UnaryOp::Tanh => g.try_mul(y.scalar_like(1.0).try_sub(y.try_square()?)?)?,
        UnaryOp::Sin => g.try_mul(x.try_cos()?)?,
        UnaryOp::Cos => g.try_mul(x.try_sin()?)?.try_neg()?,
        // d |x| = sign(x), so 0 at x = 0.
        UnaryOp::Abs => g.try_mul(x.try_sign()?)?,
        // sign is piecewise constant: no gradient anywhere (0 at its jump too).
        UnaryOp::Sign => return Ok(None),
        // By definition.
        UnaryOp::StopGradient => return Ok(None),
    };
    Ok(Some(dx))
}

/// `y = a ∘ b` with `a`, `b`, `y` and `g` all of one type.
pub(super) fn binary<'b>(
    op: BinaryOp,
    a: Tensor<'b>,
    b: Tensor<'b>,
    y: Tensor<'b>,
    g: Tensor<'b>,
    need: &[bool],
) -> Result<Vec<Option<Tensor<'b>>>, BuildError> {
    let (da, db): (Option<Tensor<'b>>, Option<Tensor<'b>>) = match op {
        BinaryOp::Add => (Some(g), Some(g)),
        BinaryOp::Sub => (Some(g), lazy(need[1], || g.try_neg())?),
        BinaryOp::Mul => (
            lazy(need[0], || g.try_mul(b))?,
            lazy(need[1], || g.try_mul(a))?,
        ),
        // d(a/b)/db = -a/b² = -y/b: reuse the forward quotient.
        BinaryOp::Div => (
            lazy(need[0], || g.try_div(b))?,
            lazy(need[1], || g.try_mul(y)?.try_div(b)?.try_neg())?,
        ),
        BinaryOp::Pow => (
            lazy(need[0], || pow_base(a, b, g))?,
            lazy(need[1], || pow_exponent(a, y, g))?,
        ),
        BinaryOp::Max => max_min(a.try_gt(b)?, b.try_gt(a)?, a.try_eq(b)?, g, need)?,
        BinaryOp::Min => max_min(a.try_lt(b)?, b.try_lt(a)?, a.try_eq(b)?, g, need)?,
    };
    Ok(vec![da, db])
}

/// Runs `f` only when `needed`.
fn lazy<'b>(
    needed: bool,
    f: impl FnOnce() -> Result<Tensor<'b>, BuildError>,
) -> Result<Option<Tensor<'b>>, BuildError> {
    if needed {
        f().map(Some)
    } else {
        Ok(None)
    }
}

/// `d(a^b)/da = b · a^(b-1)`, written with `pow` so that it is finite where it should be at
/// `a = 0` (`b = 1` gives 1, `b = 2` gives 0).
fn pow_base<'b>(a: Tensor<'b>, b: Tensor<'b>, g: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
    let b_minus_1 = b.try_sub(b.scalar_like(1.0))?;
    g.try_mul(b)?.try_mul(a.try_pow(b_minus_1)?)
}

/// `d(a^b)/db = a^b · ln a` where `a > 0`, and 0 where `a <= 0`: at `a = 0` the product would
/// be `0 · -inf = NaN`, and for `a < 0` the power is real only at integer `b`, where it is not
/// differentiable in `b`. The logarithm is taken of `select(a > 0, a, 1)`, so no infinity or NaN
/// appears even on the unselected side (which keeps second derivatives finite too).
fn pow_exponent<'b>(a: Tensor<'b>, y: Tensor<'b>, g: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
    let positive = a.try_gt(a.scalar_like(0.0))?;
    let safe_a = positive.try_select(a, a.scalar_like(1.0))?;
    let d = g.try_mul(y)?.try_mul(safe_a.try_log()?)?;
    positive.try_select(d, zeros_like(d)?)
}

/// `max` (`a_wins = a > b`, `b_wins = b > a`) or `min` (the reverse): the gradient goes to the
/// operand that is the result; at a tie (`a == b`) each operand gets half of it. Where either
/// operand is NaN neither wins and neither gets a gradient.
fn max_min<'b>(
    a_wins: Tensor<'b>,
    b_wins: Tensor<'b>,
    tie: Tensor<'b>,
    g: Tensor<'b>,
    need: &[bool],
) -> Result<(Option<Tensor<'b>>, Option<Tensor<'b>>), BuildError> {
    let dt = g.dtype();
    let half_tie = tie.try_cast(dt)?.try_mul(g.scalar_like(0.5))?;
    let share = |wins: Tensor<'b>| g.try_mul(wins.try_cast(dt)?.try_add(half_tie)?);
    Ok((
        lazy(need[0], || share(a_wins))?,
        lazy(need[1], || share(b_wins))?,
    ))
}

/// `select(c, a, b)`: the adjoint goes to `a` where `c` holds and to `b` elsewhere; the mask
/// gets none.
pub(super) fn select<'b>(
    cond: Tensor<'b>,
    g: Tensor<'b>,
    need: &[bool],
) -> Result<Vec<Option<Tensor<'b>>>, BuildError> {
    let zero = zeros_like(g)?;
    Ok(vec![
        None,
        lazy(need[1], || cond.try_select(g, zero))?,
        lazy(need[2], || cond.try_select(zero, g))?,
    ])
}

/// A float-to-float cast passes the adjoint through, cast back to the operand's precision;
/// casts to or from integers and bools carry no gradient.
pub(super) fn cast<'b>(x: Tensor<'b>, g: Tensor<'b>) -> Result<Option<Tensor<'b>>, BuildError> {
    if x.dtype().is_float() && g.dtype().is_float() {
        g.try_cast(x.dtype()).map(Some)
    } else {
        Ok(None)
    }
}
