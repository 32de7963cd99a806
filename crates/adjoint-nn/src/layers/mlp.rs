//! [`Mlp`]: the two-layer feed-forward block, and [`residual`] connections.

use super::{Activation, Linear};
use crate::Params;
use adjoint_ir::Tensor;

/// `fc2(activation(fc1(x)))`: `<name>.fc1` maps `in → hidden`, `<name>.fc2` maps
/// `hidden → out`, both [`Linear`] layers with their default initialization.
#[derive(Clone, Copy, Debug)]
pub struct Mlp<'b> {
    /// The first layer.
    pub fc1: Linear<'b>,
    /// The second layer.
    pub fc2: Linear<'b>,
    /// The activation between them.
    pub activation: Activation,
}

impl<'b> Mlp<'b> {
    /// A block `in → hidden → out` with `activation` in between.
    #[track_caller]
    pub fn new(
        params: &mut Params<'b>,
        name: &str,
        in_features: usize,
        hidden: usize,
        out_features: usize,
        activation: Activation,
    ) -> Mlp<'b> {
        params.scope(name, |p| Mlp {
            fc1: Linear::new(p, "fc1", in_features, hidden),
            fc2: Linear::new(p, "fc2", hidden, out_features),
            activation,
        })
    }

    /// The block applied to `x`.
    #[track_caller]
    pub fn forward(&self, x: Tensor<'b>) -> Tensor<'b> {
        self.fc2.forward(self.activation.apply(self.fc1.forward(x)))
    }
}

/// A residual connection: `x + f(x)` (`f` must keep `x`'s shape).
///
/// ```
/// use adjoint_ir::{Builder, DType};
/// use adjoint_nn::layers::{residual, Activation, Mlp};
/// use adjoint_nn::Params;
///
/// let b = Builder::new("net");
/// let mut params = Params::new(&b, 0);
/// let block = Mlp::new(&mut params, "block", 8, 32, 8, Activation::Relu);
/// let y = residual(b.input("x", DType::F32, [4, 8]), |h| block.forward(h));
/// assert_eq!(y.shape().dims(), &[4, 8]);
/// ```
#[track_caller]
pub fn residual<'b>(x: Tensor<'b>, f: impl FnOnce(Tensor<'b>) -> Tensor<'b>) -> Tensor<'b> {
    x + f(x)
}
