//! # Adjoint
//!
//! A tensor-graph compiler for training neural networks: build a model as a graph with the
//! [`Builder`], differentiate it, optimize it, and run it (the reference interpreter today; the
//! Cranelift JIT as it lands).
//!
//! ```
//! use adjoint::{Builder, DType};
//!
//! let b = Builder::new("affine");
//! let x = b.input("x", DType::F32, [2, 2]);
//! let w = b.parameter("w", DType::F32, [2, 2]);
//! b.output("y", x.matmul(w) + 1.0);
//! let graph = b.finish();
//! graph.verify().unwrap();
//! ```

pub use adjoint_interp as interp;
pub use adjoint_ir as ir;
pub use adjoint_ir::{
    BuildError, Builder, DType, Feeds, Graph, HostData, HostTensor, NodeId, Op, Shape, Tensor,
    TensorType,
};
