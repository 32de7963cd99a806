//! adjoint-jit
