//! Parameter initializers. They live in `adjoint-ir` beside the seeded [`Rng`](adjoint_ir::Rng)
//! so that the benchmark workloads and the layers draw initial values the same way.

pub use adjoint_ir::init::{fans, Initializer};
