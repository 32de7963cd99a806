//! Elementwise activation functions, chosen by value (for layers that take one as an option).

use adjoint_ir::Tensor;

/// An elementwise nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// GELU (tanh approximation).
    Gelu,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `x` unchanged.
    Identity,
}

impl Activation {
    /// The activation applied to `x`.
    #[track_caller]
    pub fn apply<'b>(self, x: Tensor<'b>) -> Tensor<'b> {
        match self {
            Activation::Relu => x.relu(),
            Activation::Gelu => x.gelu(),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Identity => x,
        }
    }
}
