//! Parameter initializers: seeded, reproducible, and named the way PyTorch and JAX name them.

use crate::Rng;

/// How a parameter's initial values are drawn. `fan_in` and `fan_out` come from the shape: for a
/// `[in, out]` matrix they are `in` and `out`; for a convolution kernel
/// `[out_channels, in_channels, kh, kw]` they are `in_channels·kh·kw` and `out_channels·kh·kw`;
/// for a vector both are its length.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Initializer {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// Every element `value`.
    Constant(f64),
    /// Normal with mean 0 and standard deviation `std`.
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// Uniform in `[low, high)`.
    Uniform {
        /// Lower bound.
        low: f64,
        /// Upper bound (exclusive).
        high: f64,
    },
    /// Xavier/Glorot uniform: `U(-a, a)` with `a = sqrt(6 / (fan_in + fan_out))`.
    XavierUniform,
    /// Xavier/Glorot normal: `std = sqrt(2 / (fan_in + fan_out))`.
    XavierNormal,
    /// He/Kaiming normal for ReLU layers: `std = sqrt(2 / fan_in)`.
    HeNormal,
    /// He/Kaiming uniform for ReLU layers: `U(-a, a)` with `a = sqrt(6 / fan_in)`.
    HeUniform,
    /// LeCun normal: `std = sqrt(1 / fan_in)`.
    LeCunNormal,
}

/// `(fan_in, fan_out)` of a parameter shape (see [`Initializer`]).
pub fn fans(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (*n, *n),
        [rows, cols] => (*rows, *cols),
        [out, inp, rest @ ..] => {
            let field: usize = rest.iter().product();
            (inp * field, out * field)
        }
    }
}

impl Initializer {
    /// `n` values for a parameter of `shape`, drawn from `rng`.
    pub fn sample(self, shape: &[usize], rng: &mut Rng) -> Vec<f64> {
        let n: usize = shape.iter().product();
        let (fan_in, fan_out) = fans(shape);
        let (fan_in, fan_out) = (fan_in.max(1) as f64, fan_out.max(1) as f64);
        let normal = |rng: &mut Rng, std: f64| (0..n).map(|_| rng.normal() * std).collect();
        let uniform = |rng: &mut Rng, a: f64| (0..n).map(|_| rng.uniform_in(-a, a)).collect();
        match self {
            Initializer::Zeros => vec![0.0; n],
            Initializer::Ones => vec![1.0; n],
            Initializer::Constant(v) => vec![v; n],
            Initializer::Normal { std } => normal(rng, std),
            Initializer::Uniform { low, high } => {
                (0..n).map(|_| rng.uniform_in(low, high)).collect()
            }
            Initializer::XavierUniform => uniform(rng, (6.0 / (fan_in + fan_out)).sqrt()),
            Initializer::XavierNormal => normal(rng, (2.0 / (fan_in + fan_out)).sqrt()),
            Initializer::HeNormal => normal(rng, (2.0 / fan_in).sqrt()),
            Initializer::HeUniform => uniform(rng, (6.0 / fan_in).sqrt()),
            Initializer::LeCunNormal => normal(rng, (1.0 / fan_in).sqrt()),
        }
    }
}
