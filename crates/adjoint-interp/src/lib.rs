//! adjoint-interp
