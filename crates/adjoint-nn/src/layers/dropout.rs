//! [`Dropout`]: inverted dropout with a mask the training loop redraws at every step.

use crate::params::{Params, RandomKind};
use adjoint_ir::Tensor;

/// Inverted dropout: in training, each element is zeroed with probability `rate` and the
/// survivors are scaled by `1 / (1 - rate)`, so the expected value is unchanged and
/// evaluation is the identity.
///
/// The mask is not computed in the graph: [`Dropout::forward_train`] declares it as a
/// [`Params::random_input`] of kind [`RandomKind::DropoutMask`] named `<name>.mask`, shaped
/// like `x`, and the training loop feeds a fresh seeded draw
/// ([`crate::RandomInput::sample`]) at every step. The evaluation graph, built with
/// [`Dropout::forward_eval`], has no mask input at all.
///
/// ```
/// use adjoint_ir::{Builder, DType};
/// use adjoint_nn::layers::Dropout;
/// use adjoint_nn::Params;
///
/// let b = Builder::new("drop");
/// let mut params = Params::new(&b, 0);
/// let x = b.input("x", DType::F32, [4, 8]);
/// let y = Dropout::new("drop1", 0.25).forward_train(&mut params, x);
/// assert_eq!(y.shape().dims(), &[4, 8]);
/// assert_eq!(params.random_inputs()[0].name, "drop1.mask");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Dropout {
    name: String,
    rate: f64,
}

impl Dropout {
    /// Dropout `name` of probability `rate`; panics unless `0 <= rate < 1`.
    #[track_caller]
    pub fn new(name: &str, rate: f64) -> Dropout {
        assert!(
            (0.0..1.0).contains(&rate),
            "dropout rate must be in [0, 1), got {rate}"
        );
        Dropout {
            name: name.to_string(),
            rate,
        }
    }

    /// The probability of zeroing an element.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Training mode: `x · mask`, declaring the random input `<name>.mask` of `x`'s shape.
    /// A rate of 0 declares nothing and returns `x`.
    #[track_caller]
    pub fn forward_train<'b>(&self, params: &mut Params<'b>, x: Tensor<'b>) -> Tensor<'b> {
        if self.rate == 0.0 {
            return x;
        }
        let keep = 1.0 - self.rate;
        let shape = x.shape();
        let kind = RandomKind::DropoutMask { keep };
        let mask = params.scope(&self.name, |p| p.random_input("mask", shape.dims(), kind));
        x * mask.cast(x.dtype())
    }

    /// Evaluation mode: the identity.
    pub fn forward_eval<'b>(&self, x: Tensor<'b>) -> Tensor<'b> {
        x
    }
}
