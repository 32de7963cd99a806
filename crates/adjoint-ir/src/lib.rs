//! # adjoint-ir
//!
//! The graph IR of Adjoint: element types, static shapes, the primitive op set, the [`Graph`]
//! on petgraph with hash-consing, the [`Builder`] API with NumPy broadcasting and composite
//! builders, the verifier, host tensors and a seeded RNG.
//!
//! ```
//! use adjoint_ir::{Builder, DType};
//!
//! let b = Builder::new("softmax_regression");
//! let x = b.input("x", DType::F32, [8, 4]);
//! let y = b.input("y", DType::I32, [8]);
//! let w = b.parameter("w", DType::F32, [4, 3]);
//! let loss = x.matmul(w).cross_entropy(y);
//! b.output("loss", loss);
//! let g = b.finish();
//! g.verify().unwrap();
//! assert_eq!(g.ty(g.output("loss").unwrap()).to_string(), "f32[]");
//! ```

#![warn(missing_docs)]

mod builder;
pub mod collective;
pub mod dot;
mod dtype;
mod graph;
mod graph_error;
pub mod half_float;
mod host;
pub mod infer;
pub mod init;
mod literal;
mod op;
pub mod random_graph;
pub mod rng;
pub mod shape;
mod step;
pub mod text;
mod type_error;
mod verify;

pub use builder::{BuildError, Builder, Tensor};
pub use collective::{Collective, CollectiveError, InProcess};
pub use dtype::DType;
pub use graph::{Graph, Node, NodeId, Operands};
pub use graph_error::GraphError;
pub use half_float::{bf16, f16};
pub use host::{Feeds, HostData, HostDataMut, HostTensor};
pub use init::Initializer;
pub use literal::{round_to, Literal};
pub use op::{
    AllReduceKind, BinaryOp, CompareOp, Op, OpClass, ReduceOp, SliceRange, TensorType, UnaryOp,
};
pub use rng::Rng;
pub use shape::{Dims, Shape, MAX_RANK};
pub use step::{Step, StepOutputs};
pub use text::ParseError;
pub use type_error::{LiteralError, SizeError, TypeError};
pub use verify::VerifyError;
