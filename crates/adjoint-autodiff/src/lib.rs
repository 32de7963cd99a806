//! # adjoint-autodiff
//!
//! Reverse-mode automatic differentiation as a graph transformation: [`grad`] takes a graph
//! and a scalar loss and returns the same graph with the adjoint nodes appended, so the
//! backward pass is ordinary IR that can be printed, optimized, interpreted, compiled — and
//! differentiated again ([`hvp`]). [`training_step`] appends optimizer updates on top, so that
//! one graph computes a whole training step.
//!
//! [`check_grads`] compares the gradients with central finite differences in f64.
//!
//! ```
//! use adjoint_autodiff::{training_step, Optimizer};
//! use adjoint_ir::{Builder, DType, Feeds, HostTensor};
//!
//! // loss = sum((w - 3)²); one SGD step with lr 0.25 moves w = 1 to 1 - 0.25·2·(1 - 3) = 2.
//! let b = Builder::new("quadratic");
//! let w = b.parameter("w", DType::F64, [1]);
//! let loss = (w - 3.0).square().sum_all();
//! b.output("loss", loss);
//! let (loss, w) = (loss.id(), w.id());
//! let step = training_step(b.finish(), loss, &[w], &Optimizer::sgd(0.25)).unwrap();
//!
//! let mut feeds = Feeds::new();
//! feeds.insert("w".into(), HostTensor::from_f64([1], vec![1.0]).unwrap());
//! let out = adjoint_interp::run(&step.graph, &feeds).unwrap();
//! assert_eq!(out.output("loss").unwrap().to_f64_vec(), vec![4.0]);
//! assert_eq!(out.update("w").unwrap().to_f64_vec(), vec![2.0]);
//! ```
//!
//! `docs/autodiff.md` explains how adjoints are appended and lists every rule with its
//! conventions at kinks and ties.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod check;
pub mod data_parallel;
mod error;
mod grad;
pub mod loss_scale;
pub mod mixed;
mod optim;
pub mod precision;
mod rules;

pub use check::{
    check_grads, check_grads_named, check_grads_with, random_feeds, CheckError, Direction,
    GradCheckOptions, GradCheckReport, WrtCheck,
};
pub use data_parallel::DataParallel;
pub use error::GradError;
pub use grad::{append_grad, append_hvp, find, grad, grad_named, hvp, Gradients};
pub use loss_scale::LossScaling;
pub use mixed::{apply_precision, Precision, PrecisionGraph};
pub use optim::{
    float_parameters, training_step, training_step_with, LearningRate, MixedPrecision, Optimizer,
    StepGraph, TrainedParam, UpdateRule, GRAD_OUTPUT_SUFFIX,
};
