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
//! `docs/autodiff.md` explains how adjoints are appended and lists every rule with its
//! conventions at kinks and ties.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod check;
mod error;
mod grad;
mod optim;
pub mod precision;
mod rules;

pub use check::{
    check_grads, check_grads_named, check_grads_with, random_feeds, CheckError, Direction,
    GradCheckOptions, GradCheckReport, WrtCheck,
};
pub use error::GradError;
pub use grad::{append_grad, append_hvp, find, grad, grad_named, hvp, Gradients};
pub use optim::{
    float_parameters, training_step, LearningRate, Optimizer, StepGraph, TrainedParam, UpdateRule,
};
