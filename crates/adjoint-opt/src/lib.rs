//! # adjoint-opt
//!
//! Optimization passes over Adjoint graphs, fusion planning, rematerialization and memory
//! planning. The [`schedule`] module defines what the code generator consumes: fusion groups in
//! execution order and a memory plan.
//!
//! Two entry points cover the pipeline: [`optimize`] runs the graph-to-graph passes (constant
//! folding, algebraic simplification, CSE, DCE) under a [`PassManager`]; [`plan`] turns a graph
//! into a schedule of fused kernels with a memory plan.
//!
//! ```
//! use adjoint_ir::{Builder, DType};
//! use adjoint_opt::{optimize, PassOptions};
//!
//! let b = Builder::new("tiny");
//! let x = b.input("x", DType::F32, [4, 3]);
//! let y = (x * b.scalar(DType::F32, 1.0)).reshape([12]).reshape([3, 4]);
//! b.output("y", y);
//! let (g, report) = optimize(&b.finish(), &PassOptions::default()).unwrap();
//! // `x * 1` is gone and the two reshapes became one.
//! assert_eq!(g.len(), 2);
//! assert!(report.nodes_after < report.nodes_before);
//! ```

#![warn(missing_docs)]

pub mod budget;
pub mod cost;
pub mod fold;
pub mod fusion;
pub mod listing;
mod manager;
pub mod memory;
pub mod passes;
mod plan;
pub mod recompute;
pub mod remat;
pub mod rewrite;
pub mod schedule;
pub mod simplify;

pub use budget::{plan_within_budget, BudgetReport};
pub use manager::{
    PassError, PassManager, PassOptions, PassReport, PassStat, UnknownPass, DUMP_ENV,
};
pub use memory::{check_memory_plan, plan_memory};
pub use passes::{Pass, PassResult, PASS_NAMES};
pub use plan::{plan, plan_with_policy, Plan, PlanOptions};
pub use remat::{RematPolicy, RematReport, SavedValue};
pub use rewrite::{Expr, RewriteError, Rewriter, Rule};
pub use schedule::{
    BufferAssignment, FusionGroup, GroupKind, InvalidPlan, MemoryPlan, Placement, Schedule,
};

use adjoint_ir::Graph;

/// Runs the graph-to-graph passes of `options` on `graph` (to a fixpoint) and returns the
/// optimized graph with what each pass did.
pub fn optimize(graph: &Graph, options: &PassOptions) -> Result<(Graph, PassReport), PassError> {
    PassManager::new(options)?.run(graph)
}
