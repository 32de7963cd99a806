//! [`Linear`]: the affine layer `x · W + b`.

use crate::{Initializer, Params};
use adjoint_ir::Tensor;

/// Options of a [`Linear`] layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearOptions {
    /// Whether the layer has a bias.
    pub bias: bool,
    /// How the weight is initialized; `None` for the default (see [`Linear::new`]).
    pub weight_init: Option<Initializer>,
    /// How the bias is initialized; `None` for the default (see [`Linear::new`]).
    pub bias_init: Option<Initializer>,
}

impl Default for LinearOptions {
    fn default() -> LinearOptions {
        LinearOptions {
            bias: true,
            weight_init: None,
            bias_init: None,
        }
    }
}

/// The affine layer `y = x · W + b` with `W: [in, out]` (`<name>.weight`) and `b: [out]`
/// (`<name>.bias`, optional).
///
/// `x` may have any rank ≥ 1 with `in` as its last axis: leading axes are batch axes.
///
/// ```
/// use adjoint_ir::{Builder, DType};
/// use adjoint_nn::layers::{Linear, LinearOptions};
/// use adjoint_nn::{Initializer, Params};
///
/// let b = Builder::new("net");
/// let mut params = Params::new(&b, 0);
/// let fc = Linear::with_options(&mut params, "fc", 3, 5, LinearOptions {
///     bias: false,
///     weight_init: Some(Initializer::HeNormal),
///     ..LinearOptions::default()
/// });
/// let y = fc.forward(b.input("x", DType::F32, [2, 7, 3]));
/// assert_eq!(y.shape().dims(), &[2, 7, 5]);
/// assert_eq!(params.trainable(), ["fc.weight"]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Linear<'b> {
    /// The weight, `[in, out]`.
    pub weight: Tensor<'b>,
    /// The bias, `[out]`, if the layer has one.
    pub bias: Option<Tensor<'b>>,
}

impl<'b> Linear<'b> {
    /// A layer from `in_features` to `out_features` with a bias, declared as `<name>.weight`
    /// and `<name>.bias`.
    ///
    /// The default initialization is PyTorch's for `nn.Linear`: weight and bias both uniform in
    /// `[-1/√in, 1/√in)` (Kaiming-uniform with `a = √5`). For deep ReLU stacks
    /// [`Initializer::HeNormal`] is a common override ([`Linear::with_options`]).
    #[track_caller]
    pub fn new(
        params: &mut Params<'b>,
        name: &str,
        in_features: usize,
        out_features: usize,
    ) -> Linear<'b> {
        Linear::with_options(
            params,
            name,
            in_features,
            out_features,
            LinearOptions::default(),
        )
    }

    /// A layer with explicit [`LinearOptions`].
    #[track_caller]
    pub fn with_options(
        params: &mut Params<'b>,
        name: &str,
        in_features: usize,
        out_features: usize,
        options: LinearOptions,
    ) -> Linear<'b> {
        let bound = 1.0 / (in_features.max(1) as f64).sqrt();
        let default = Initializer::Uniform {
            low: -bound,
            high: bound,
        };
        params.scope(name, |p| {
            let weight = p.get(
                "weight",
                &[in_features, out_features],
                options.weight_init.unwrap_or(default),
            );
            let bias = options.bias.then(|| {
                p.get(
                    "bias",
                    &[out_features],
                    options.bias_init.unwrap_or(default),
                )
            });
            Linear { weight, bias }
        })
    }

    /// Number of input features.
    pub fn in_features(&self) -> usize {
        self.weight.shape().dim(0)
    }

    /// Number of output features.
    pub fn out_features(&self) -> usize {
        self.weight.shape().dim(1)
    }

    /// `x · W + b`.
    #[track_caller]
    pub fn forward(&self, x: Tensor<'b>) -> Tensor<'b> {
        let y = x.matmul(self.weight);
        match self.bias {
            Some(b) => y + b,
            None => y,
        }
    }
}
