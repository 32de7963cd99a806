//! Adjoint training library (under construction).
