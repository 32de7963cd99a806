//! Reverse-mode automatic differentiation for Adjoint graphs (under construction).
