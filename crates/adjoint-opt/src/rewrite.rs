//! The rewriter: re-emits a graph node by node into a fresh [`Graph`], substituting where a
//! [`Rule`] matches.
//!
//! Because [`Graph::add`] hash-conses, the fresh graph has no duplicate subexpressions (CSE),
//! and because only nodes that an output or an update depends on are emitted, it has no dead
//! nodes either (DCE). Inputs and parameters are kept, with their names and in their order;
//! outputs, updates and labels carry over.
//!
//! Rules see the op of the node being emitted with its operands *already rewritten* (ids of the
//! fresh graph), so a rule can look at its operands' ops to match a pattern. A replacement is a
//! small expression ([`Expr`]) whose new nodes go through the rules again, so rewrites chain.

use adjoint_ir::{Graph, GraphError, NodeId, Op, TensorType};
use std::collections::BTreeMap;
use std::fmt;

/// How deep replacements may chain into further replacements before a node is emitted as is
/// (a guard against rules that undo each other).
const MAX_CHAIN: usize = 16;

/// A replacement expression over nodes of the graph being built.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// An existing node of the fresh graph.
    Node(NodeId),
    /// `op` applied to the values of the sub-expressions.
    Op(Op, Vec<Expr>),
}

impl Expr {
    /// `op` applied to existing nodes.
    pub fn op(op: Op, operands: &[NodeId]) -> Expr {
        Expr::Op(op, operands.iter().map(|&n| Expr::Node(n)).collect())
    }

    /// A leaf op (constant, iota) with no operands.
    pub fn leaf(op: Op) -> Expr {
        Expr::Op(op, Vec::new())
    }
}

/// One rewrite rule.
pub trait Rule {
    /// The rule's name, used in statistics.
    fn name(&self) -> &'static str;

    /// True when the rule's replacement computes bit-identical results for every input
    /// (documented per rule in `docs/passes.md`).
    fn is_exact(&self) -> bool;

    /// A replacement for `op` applied to `operands` (nodes of `graph`, the graph being built),
    /// or `None` when the rule does not match. The replacement must have the same type.
    fn apply(&self, graph: &Graph, op: &Op, operands: &[NodeId]) -> Option<Expr>;
}

/// What one run of the rewriter did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RewriteStats {
    /// How often each rule fired, by rule name.
    pub hits: BTreeMap<&'static str, usize>,
}

impl RewriteStats {
    /// Total number of rule applications.
    pub fn total(&self) -> usize {
        self.hits.values().sum()
    }
}

/// Re-emits graphs through a list of rules. With no rules it is plain CSE + DCE.
pub struct Rewriter<'r> {
    rules: Vec<&'r dyn Rule>,
}

impl<'r> Rewriter<'r> {
    /// A rewriter applying `rules`, tried in order for every node.
    pub fn new(rules: Vec<&'r dyn Rule>) -> Rewriter<'r> {
        Rewriter { rules }
    }

    /// The rewritten graph and what fired. Errors only if a rule builds an ill-typed node (a
    /// bug in the rule), naming the rule.
    pub fn run(&self, graph: &Graph) -> Result<(Graph, RewriteStats), RewriteError> {
        let mut emitter = Emitter {
            rules: &self.rules,
            out: Graph::new(graph.name()),
            stats: RewriteStats::default(),
        };
        let bound = graph.node_ids().map(|n| n.index() + 1).max().unwrap_or(0);
        let mut map: Vec<Option<NodeId>> = vec![None; bound];
        for &id in graph.inputs().iter().chain(graph.parameters()) {
            let new = emitter
                .out
                .add(graph.op(id).clone(), &[])
                .map_err(RewriteError::Graph)?;
            copy_label(graph, id, &mut emitter.out, new);
            map[id.index()] = Some(new);
        }
        let live = live_nodes(graph);
        for id in graph.topo_order() {
            if !live[id.index()] || map[id.index()].is_some() {
                continue;
            }
            let operands: Vec<NodeId> = graph
                .operands(id)
                .iter()
                .map(|o| map[o.index()].expect("operands are emitted first"))
                .collect();
            let new = emitter.emit(graph.op(id).clone(), operands, 0)?;
            copy_label(graph, id, &mut emitter.out, new);
            map[id.index()] = Some(new);
        }
        for (name, id) in graph.outputs() {
            let new = map[id.index()].expect("outputs are live");
            emitter.out.set_output(name, new);
        }
        for &(p, v) in graph.updates() {
            let (np, nv) = (map[p.index()].expect("live"), map[v.index()].expect("live"));
            emitter
                .out
                .set_update(np, nv)
                .map_err(RewriteError::Graph)?;
        }
        // Operands emitted for a node that a rule then replaced may have no user left.
        emitter.out.remove_dead();
        Ok((emitter.out, emitter.stats))
    }
}

/// Which nodes an output or an update depends on (inputs and parameters always count), indexed
/// by node index.
pub fn live_nodes(graph: &Graph) -> Vec<bool> {
    let bound = graph.node_ids().map(|n| n.index() + 1).max().unwrap_or(0);
    let mut live = vec![false; bound];
    let mut stack: Vec<NodeId> = graph.outputs().iter().map(|&(_, id)| id).collect();
    stack.extend(graph.updates().iter().flat_map(|&(p, v)| [p, v]));
    stack.extend(graph.inputs().iter().chain(graph.parameters()).copied());
    while let Some(id) = stack.pop() {
        if !std::mem::replace(&mut live[id.index()], true) {
            stack.extend(graph.operands(id));
        }
    }
    live
}

fn copy_label(from: &Graph, id: NodeId, to: &mut Graph, new: NodeId) {
    if let Some(label) = &from.node(id).label {
        if to.node(new).label.is_none() {
            to.set_label(new, label);
        }
    }
}

struct Emitter<'a, 'r> {
    rules: &'a [&'r dyn Rule],
    out: Graph,
    stats: RewriteStats,
}

impl Emitter<'_, '_> {
    fn emit(
        &mut self,
        op: Op,
        operands: Vec<NodeId>,
        depth: usize,
    ) -> Result<NodeId, RewriteError> {
        if depth < MAX_CHAIN && !operands.is_empty() {
            for rule in self.rules {
                if let Some(expr) = rule.apply(&self.out, &op, &operands) {
                    *self.stats.hits.entry(rule.name()).or_default() += 1;
                    let id =
                        self.emit_expr(expr, depth + 1)
                            .map_err(|e| RewriteError::InvalidRule {
                                rule: rule.name(),
                                source: Box::new(e),
                            })?;
                    let tys: Vec<&TensorType> = operands.iter().map(|&o| self.out.ty(o)).collect();
                    let want = adjoint_ir::infer::result_type(&op, &tys).map_err(|reason| {
                        RewriteError::Graph(GraphError::Type {
                            op: op.name(),
                            operands: tys.iter().map(|&t| t.clone()).collect(),
                            reason,
                        })
                    })?;
                    if self.out.ty(id) != &want {
                        return Err(RewriteError::TypeChanged {
                            rule: rule.name(),
                            op: op.name(),
                            want: Box::new(want),
                            got: Box::new(self.out.ty(id).clone()),
                        });
                    }
                    return Ok(id);
                }
            }
        }
        self.out.add(op, &operands).map_err(RewriteError::Graph)
    }

    fn emit_expr(&mut self, expr: Expr, depth: usize) -> Result<NodeId, RewriteError> {
        match expr {
            Expr::Node(id) => Ok(id),
            Expr::Op(op, args) => {
                let mut operands = Vec::with_capacity(args.len());
                for a in args {
                    operands.push(self.emit_expr(a, depth)?);
                }
                self.emit(op, operands, depth)
            }
        }
    }
}

/// Why a rewrite failed: always a bug (in a rule, or an inconsistent input graph).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RewriteError {
    /// Re-emitting a node or an update failed.
    Graph(GraphError),
    /// A rule built a node that does not type-check.
    InvalidRule {
        /// The rule.
        rule: &'static str,
        /// What was wrong with what it built.
        source: Box<RewriteError>,
    },
    /// A rule replaced a value by one of another type.
    TypeChanged {
        /// The rule.
        rule: &'static str,
        /// The op it replaced.
        op: &'static str,
        /// The replaced value's type.
        want: Box<TensorType>,
        /// The replacement's type.
        got: Box<TensorType>,
    },
}

impl fmt::Display for RewriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RewriteError::Graph(e) => write!(f, "{e}"),
            RewriteError::InvalidRule { rule, source } => {
                write!(f, "rule `{rule}` built an invalid node: {source}")
            }
            RewriteError::TypeChanged {
                rule,
                op,
                want,
                got,
            } => write!(
                f,
                "rule `{rule}` replaced a {op} of type {want} by a value of type {got}"
            ),
        }
    }
}

impl std::error::Error for RewriteError {}
