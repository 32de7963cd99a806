//! The graph-to-graph passes: constant folding, algebraic simplification, CSE and DCE.
//!
//! Each pass takes a graph and returns a new one; [`crate::PassManager`] chains them.

use crate::fold::ConstantFold;
use crate::rewrite::{RewriteError, Rewriter, Rule};
use crate::simplify;
use adjoint_ir::Graph;

/// What a pass changed.
#[derive(Clone, Debug, Default)]
pub struct PassResult {
    /// The rewritten graph.
    pub graph: Graph,
    /// How many rewrites fired or nodes went away (0 means the pass changed nothing).
    pub changes: usize,
    /// Per-rule counts, for passes made of rules.
    pub hits: Vec<(&'static str, usize)>,
}

/// A graph-to-graph transformation.
pub trait Pass {
    /// The pass's name (`fold`, `simplify`, `cse`, `dce`): used by `--passes` lists, statistics
    /// and dump file names.
    fn name(&self) -> &'static str;

    /// Runs the pass. Errors only on an internal bug (a rule that builds an ill-typed node).
    fn run(&self, graph: &Graph) -> Result<PassResult, RewriteError>;
}

/// Names of the built-in passes, in the default pipeline's order.
pub const PASS_NAMES: [&str; 4] = ["fold", "simplify", "cse", "dce"];

/// The built-in pass called `name`; `allow_inexact` admits the simplification rules that are
/// not bit-exact.
pub fn pass_by_name(name: &str, allow_inexact: bool) -> Option<Box<dyn Pass>> {
    Some(match name {
        "fold" => Box::new(FoldPass),
        "simplify" => Box::new(SimplifyPass { allow_inexact }),
        "cse" => Box::new(CsePass),
        "dce" => Box::new(DcePass),
        _ => return None,
    })
}

fn run_rules(graph: &Graph, rules: Vec<&dyn Rule>) -> Result<PassResult, RewriteError> {
    let before = graph.len();
    let (g, stats) = Rewriter::new(rules).run(graph)?;
    let removed = before.saturating_sub(g.len());
    Ok(PassResult {
        changes: stats.total() + removed,
        hits: stats.hits.into_iter().collect(),
        graph: g,
    })
}

/// Constant folding ([`crate::fold`]): bit-exact.
#[derive(Clone, Copy, Debug, Default)]
pub struct FoldPass;

impl Pass for FoldPass {
    fn name(&self) -> &'static str {
        "fold"
    }

    fn run(&self, graph: &Graph) -> Result<PassResult, RewriteError> {
        run_rules(graph, vec![&ConstantFold])
    }
}

/// Algebraic simplification ([`crate::simplify`]), with constant folding of what the rules
/// expose.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimplifyPass {
    /// Also apply the rules that are not bit-exact.
    pub allow_inexact: bool,
}

impl Pass for SimplifyPass {
    fn name(&self) -> &'static str {
        "simplify"
    }

    fn run(&self, graph: &Graph) -> Result<PassResult, RewriteError> {
        let mut rules = simplify::rules(self.allow_inexact);
        rules.push(&ConstantFold);
        run_rules(graph, rules)
    }
}

/// Common-subexpression elimination: re-emission through the hash-consing [`Graph::add`]
/// merges every pair of nodes with the same op on the same operands (and drops dead nodes).
#[derive(Clone, Copy, Debug, Default)]
pub struct CsePass;

impl Pass for CsePass {
    fn name(&self) -> &'static str {
        "cse"
    }

    fn run(&self, graph: &Graph) -> Result<PassResult, RewriteError> {
        run_rules(graph, Vec::new())
    }
}

/// Dead-code elimination in place: removes every node that no output and no update depends
/// on (inputs and parameters stay, they are the graph's interface).
#[derive(Clone, Copy, Debug, Default)]
pub struct DcePass;

impl Pass for DcePass {
    fn name(&self) -> &'static str {
        "dce"
    }

    fn run(&self, graph: &Graph) -> Result<PassResult, RewriteError> {
        let mut g = graph.clone();
        let removed = g.remove_dead();
        Ok(PassResult {
            graph: g,
            changes: removed,
            hits: Vec::new(),
        })
    }
}
