//! One loop nest as one native function `fn(ctx, begin, end)`, where `begin..end` is the range
//! of the outermost loop this call runs (the whole range, or one thread's share).
//!
//! Code generation for a nest happens in two steps:
//!
//! 1. **Decide** ([`plan`]): from the kernel and the nest alone, with no code emitted, choose the
//!    vector width of the lane loop, the register tile (rows × vectors), and for every reduction
//!    how it accumulates (with `fma` or not; along its own contiguous axis in a scalar context or
//!    not). The result is a plain description, [`KernelPlan`] and [`plan::NestPlan`], that tests and
//!    dumps can read.
//! 2. **Emit** ([`emit`], [`access`], [`reduce`]): [`NestEmitter`] follows the plan and builds the
//!    Cranelift function; it makes no choice of its own.
//!
//! The innermost loop variable is the *lane* variable: the body computes `W` consecutive
//! elements at once (`W` = 4 for 32-bit kernels, 2 when an `f64` is involved) followed by a
//! scalar tail. Nests whose values are reductions (a matmul is one) are register-blocked: the
//! body computes a tile of 4 rows × 2 vectors with one accumulator each in a single reduction
//! loop, so each loaded vector and broadcast scalar is used several times. A reduction over the
//! contiguous axis of its operand in a scalar context (a row sum) is vectorized along the
//! reduced axis instead, with a horizontal combine at the end.

mod access;
mod emit;
mod plan;
mod reduce;
mod row_cache;
mod wide;

pub use emit::{HostMath, NestEmitter};
pub use plan::KernelPlan;
pub use row_cache::RowCache;
