//! # adjoint-opt
//!
//! Optimization passes over Adjoint graphs, fusion planning and memory planning. The
//! [`schedule`] module defines what the code generator consumes: fusion groups in execution
//! order and a memory plan.

#![warn(missing_docs)]

pub mod schedule;

pub use schedule::{BufferAssignment, FusionGroup, GroupKind, MemoryPlan, Placement, Schedule};
