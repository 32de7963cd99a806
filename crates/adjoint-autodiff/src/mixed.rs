//! Mixed precision as a graph pass: the policy that decides which values of an `f32` graph are
//! computed and stored in a 16-bit float, applied before differentiation so that the backward
//! pass follows it.
//!
//! The policy ([`apply_precision`]), node by node over the `f32` values of the graph:
//!
//! - **Leaves stay `f32`** (parameters are the f32 master weights, inputs what was fed), as do
//!   constants and iotas. A leaf is converted where a 16-bit consumer reads it, by one shared
//!   `cast`; its gradient comes back through the cast, in `f32`.
//! - **Products are 16-bit**: both operands of a `matmul` are cast to the low type; the product
//!   accumulates in `f32` and its result is stored in the low type (the IR's rule for 16-bit
//!   values, see `docs/ir.md`).
//! - **Accumulations and sensitive functions stay `f32`**: every reduction (so softmax's and
//!   LayerNorm's statistics and every loss, which end in a sum), `scatter_add`, `exp`, `log`,
//!   `sqrt`, `recip`, `div` and `pow` read `f32` operands and produce `f32`.
//! - **Everything else follows its operands**: an elementwise or movement op with an `f32`
//!   computed operand is `f32`; otherwise, with a 16-bit operand, it is 16-bit (a bias add or an
//!   activation after a matmul stores its result in 16 bits); with only leaves, constants and
//!   their kind, it stays `f32`.
//! - **Outputs and updates keep their type**: a 16-bit value that is an output is cast back.
//!
//! The optimizer update, built afterwards by [`crate::training_step`], reads the `f32`
//! parameters and their gradients, which the casts return in `f32`: it runs in `f32`.
//! Values of other dtypes (`f64`, `i32`, `bool`) are left as they are.

use adjoint_ir::{BinaryOp, DType, Graph, NodeId, Op, UnaryOp};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// The precision a model is trained in: the one switch of mixed precision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// Everything in `f32` (the graph as built).
    #[default]
    F32,
    /// Products and activations in bfloat16 (f32's range: no loss scaling needed).
    Bf16,
    /// Products and activations in IEEE half (a narrow range: train with loss scaling).
    F16,
}

impl Precision {
    /// The 16-bit dtype of the policy, or `None` for [`Precision::F32`].
    pub fn low(self) -> Option<DType> {
        match self {
            Precision::F32 => None,
            Precision::Bf16 => Some(DType::Bf16),
            Precision::F16 => Some(DType::F16),
        }
    }

    /// The name on the command line: `f32`, `bf16`, `f16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            "f16" => Ok(Precision::F16),
            _ => Err(format!(
                "unknown precision `{s}` (expected f32, bf16 or f16)"
            )),
        }
    }
}

/// A graph with a precision policy applied, and where each node of the original went.
#[derive(Clone, Debug)]
pub struct PrecisionGraph {
    /// The rewritten graph: same leaves, outputs and updates, of the same types.
    pub graph: Graph,
    map: HashMap<NodeId, NodeId>,
}

impl PrecisionGraph {
    /// The node of the rewritten graph holding what node `id` of the original held, in the
    /// original's type (leaves, outputs and the nodes the policy kept in `f32`), or `None` for a
    /// node that became 16-bit and has no `f32` copy.
    pub fn node(&self, id: NodeId) -> Option<NodeId> {
        self.map.get(&id).copied()
    }
}

/// Where the value of an original `f32` node lives in the rewritten graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Home {
    /// A leaf, a constant, or computed from those only: `f32`, and converted where needed.
    Neutral,
    /// Computed in `f32`.
    Wide,
    /// Computed and stored in the 16-bit type.
    Low,
}

/// What an op of the policy wants of its `f32` operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    /// 16-bit operands, 16-bit result (products).
    Low,
    /// `f32` operands, `f32` result (accumulations, sensitive functions).
    Wide,
    /// Follow the operands.
    Follow,
}

fn want(op: &Op) -> Want {
    match op {
        Op::MatMul => Want::Low,
        Op::Reduce { .. } | Op::ScatterAdd { .. } => Want::Wide,
        Op::Unary(UnaryOp::Exp | UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Recip) => Want::Wide,
        Op::Binary(BinaryOp::Div | BinaryOp::Pow) => Want::Wide,
        Op::Cast { .. } => Want::Wide,
        _ => Want::Follow,
    }
}

/// Applies the mixed-precision policy of `precision` to `graph` (see the
/// [module documentation](self)); [`Precision::F32`] returns the graph unchanged. Every node of
/// `keep` (a loss, say) gets a node of its original type in the result
/// ([`PrecisionGraph::node`]), as outputs and updates do.
///
/// Errors: the graph does not verify.
pub fn apply_precision(
    graph: &Graph,
    precision: Precision,
    keep: &[NodeId],
) -> Result<PrecisionGraph, adjoint_ir::VerifyError> {
    graph.verify()?;
    let Some(low) = precision.low() else {
        return Ok(PrecisionGraph {
            graph: graph.clone(),
            map: graph.node_ids().map(|id| (id, id)).collect(),
        });
    };
    let mut r = Rewrite {
        out: Graph::new(graph.name()),
        low,
        home: HashMap::new(),
        as_low: HashMap::new(),
        as_wide: HashMap::new(),
    };
    for id in graph.topo_order() {
        r.emit(graph, id);
    }
    let mut map = HashMap::new();
    for id in graph.node_ids() {
        if let Some(&(n, h)) = r.home.get(&id) {
            if h != Home::Low {
                map.insert(id, n);
            } else if let Some(&w) = r.as_wide.get(&id) {
                map.insert(id, w);
            }
        }
    }
    for &id in keep {
        let n = r.wide(id);
        map.entry(id).or_insert(n);
    }
    for (name, id) in graph.outputs() {
        let n = r.wide(*id);
        map.entry(*id).or_insert(n);
        r.out.set_output(name, n);
    }
    for (param, value) in graph.updates() {
        let v = r.wide(*value);
        map.entry(*value).or_insert(v);
        r.out
            .set_update(r.home[param].0, v)
            .expect("a parameter and its update keep their types");
    }
    Ok(PrecisionGraph { graph: r.out, map })
}

struct Rewrite {
    out: Graph,
    low: DType,
    /// Each original node's node in `out` and where its value lives.
    home: HashMap<NodeId, (NodeId, Home)>,
    /// The 16-bit casts of neutral and wide nodes, made once.
    as_low: HashMap<NodeId, NodeId>,
    /// The `f32` casts of 16-bit nodes, made once.
    as_wide: HashMap<NodeId, NodeId>,
}

impl Rewrite {
    fn is_f32(graph: &Graph, id: NodeId) -> bool {
        graph.ty(id).dtype == DType::F32
    }

    fn add(&mut self, op: Op, operands: &[NodeId]) -> NodeId {
        self.out
            .add(op, operands)
            .expect("the precision policy keeps every type rule satisfied")
    }

    /// Original node `id` in `out` as `f32` (its original type, for non-`f32` nodes).
    fn wide(&mut self, id: NodeId) -> NodeId {
        let (n, h) = self.home[&id];
        if h != Home::Low {
            return n;
        }
        if let Some(&w) = self.as_wide.get(&id) {
            return w;
        }
        let w = self.add(Op::Cast { to: DType::F32 }, &[n]);
        self.as_wide.insert(id, w);
        w
    }

    /// Original `f32` node `id` in `out` as the 16-bit type.
    fn low(&mut self, id: NodeId) -> NodeId {
        let (n, h) = self.home[&id];
        if h == Home::Low {
            return n;
        }
        if let Some(&l) = self.as_low.get(&id) {
            return l;
        }
        let l = self.add(Op::Cast { to: self.low }, &[n]);
        self.as_low.insert(id, l);
        l
    }

    fn emit(&mut self, graph: &Graph, id: NodeId) {
        let op = graph.op(id).clone();
        let operands = graph.operands(id).to_vec();
        let f32_operands: Vec<NodeId> = operands
            .iter()
            .copied()
            .filter(|&o| Self::is_f32(graph, o))
            .collect();
        // The form every f32 operand is read in, and where the result lives.
        let home = if f32_operands.is_empty() {
            // Leaves, constants, iotas, casts into f32 and ops on other dtypes.
            Home::Neutral
        } else {
            match want(&op) {
                Want::Low => Home::Low,
                Want::Wide => Home::Wide,
                Want::Follow => {
                    let homes: Vec<Home> = f32_operands.iter().map(|o| self.home[o].1).collect();
                    if homes.contains(&Home::Wide) {
                        Home::Wide
                    } else if homes.contains(&Home::Low) {
                        Home::Low
                    } else {
                        Home::Neutral
                    }
                }
            }
        };
        let new_operands: Vec<NodeId> = operands
            .iter()
            .map(|&o| {
                if !Self::is_f32(graph, o) {
                    self.wide(o)
                } else if home == Home::Low {
                    self.low(o)
                } else {
                    self.wide(o)
                }
            })
            .collect();
        // A result of another dtype (a comparison's mask, a cast to i32) is as in the original.
        let result_home = if Self::is_f32(graph, id) {
            home
        } else {
            Home::Wide
        };
        let n = match &op {
            Op::Input { .. } | Op::Parameter { .. } => self.add(op.clone(), &[]),
            _ => self.add(op.clone(), &new_operands),
        };
        if let Some(label) = &graph.node(id).label {
            if self.out.node(n).label.is_none() {
                self.out.set_label(n, label);
            }
        }
        self.home.insert(id, (n, result_home));
    }
}
