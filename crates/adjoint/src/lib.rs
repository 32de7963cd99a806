//! # Adjoint
//!
//! A tensor-graph compiler for training neural networks: build a model as a graph with the
//! [`Builder`], differentiate it ([`autodiff`]), optimize and plan it ([`opt`]), and run it
//! with the reference interpreter ([`interp`]) or the Cranelift JIT.
//!
//! A whole SGD training step — forward, loss, gradients, update — as one graph, run by the
//! interpreter:
//!
//! ```
//! use adjoint::{autodiff, Builder, DType, Feeds, HostTensor};
//!
//! let b = Builder::new("linear_regression");
//! let x = b.input("x", DType::F32, [4, 1]);
//! let y = b.input("y", DType::F32, [4, 1]);
//! let w = b.parameter("w", DType::F32, [1, 1]);
//! let loss = x.matmul(w).mse(y);
//! b.output("loss", loss);
//! let (loss, w) = (loss.id(), w.id());
//!
//! let opt = autodiff::Optimizer::sgd(0.1);
//! let step = autodiff::training_step(b.finish(), loss, &[w], &opt).unwrap();
//!
//! let mut feeds = Feeds::new();
//! feeds.insert("x".into(), HostTensor::from_f32([4, 1], vec![1.0, 2.0, 3.0, 4.0]).unwrap());
//! feeds.insert("y".into(), HostTensor::from_f32([4, 1], vec![2.0, 4.0, 6.0, 8.0]).unwrap());
//! let mut weight = 0.0f32;
//! for _ in 0..20 {
//!     feeds.insert("w".into(), HostTensor::from_f32([1, 1], vec![weight]).unwrap());
//!     let result = adjoint::interp::run(&step.graph, &feeds).unwrap();
//!     weight = result.update("w").unwrap().as_f32().unwrap()[0];
//! }
//! assert!((weight - 2.0).abs() < 1e-3, "learned y = 2x, got w = {weight}");
//! ```

pub mod bench;
pub mod fuzz;
pub mod memory_budget;

pub use memory_budget::MemoryBudget;

pub use adjoint_autodiff as autodiff;
pub use adjoint_interp as interp;
pub use adjoint_ir as ir;
pub use adjoint_ir::{
    BuildError, Builder, DType, Feeds, Graph, HostData, HostTensor, NodeId, Op, Shape, Step,
    StepOutputs, Tensor, TensorType,
};
pub use adjoint_jit as jit;
pub use adjoint_jit::{compile, CompiledStep, Options};
pub use adjoint_nn as nn;
pub use adjoint_opt as opt;
pub use adjoint_workloads as workloads;

/// The README's Rust examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
