//! adjoint-jit

pub mod math;
