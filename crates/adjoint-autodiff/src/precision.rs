//! Re-emitting a graph in f64, for gradient checking (finite differences need the precision),
//! and with its `f32` functions rounded from `f64` (the fuzzer's reference for them).

use adjoint_ir::{BinaryOp, DType, Feeds, Graph, Literal, NodeId, Op, TensorType, UnaryOp};
use std::collections::HashMap;

/// A graph re-emitted with every `f32`, `bf16` and `f16` value turned into `f64`, and where
/// each node of the original went.
#[derive(Clone, Debug)]
pub struct WidenedGraph {
    /// The f64 graph: same inputs, parameters, outputs, updates and labels.
    pub graph: Graph,
    map: HashMap<NodeId, NodeId>,
}

impl WidenedGraph {
    /// The node of the f64 graph that computes what node `id` of the original computed.
    pub fn node(&self, id: NodeId) -> Option<NodeId> {
        self.map.get(&id).copied()
    }
}

/// Re-emits `graph` node by node (in topological order, through [`Graph::add`], so equal nodes
/// are merged) with every `f32`, `bf16` and `f16` input, parameter, constant and iota declared
/// `f64`, and every cast to one of those turned into a cast to `f64`. A cast that becomes `f64 → f64` disappears (its
/// users read its operand). Integer and bool values are unchanged. Constants keep their values,
/// which a literal of those types already holds exactly.
///
/// Errors: the graph does not verify.
pub fn widen_to_f64(graph: &Graph) -> Result<WidenedGraph, adjoint_ir::VerifyError> {
    let (graph, map) = re_emit(graph, |out, id, operands| match widen_op(graph.op(id)) {
        Op::Cast { to } if out.ty(operands[0]).dtype == to => operands[0],
        op => out
            .add(op, operands)
            .expect("widening keeps every type rule satisfied"),
    })?;
    Ok(WidenedGraph { graph, map })
}

/// A new graph built from `graph` in topological order: `emit(out, id, operands)` adds what
/// node `id` becomes (given its operands' new nodes) and returns its node. Labels, outputs
/// and parameter updates carry over; the map says where each node went. Errors: `graph`
/// does not verify.
fn re_emit(
    graph: &Graph,
    mut emit: impl FnMut(&mut Graph, NodeId, &[NodeId]) -> NodeId,
) -> Result<(Graph, HashMap<NodeId, NodeId>), adjoint_ir::VerifyError> {
    graph.verify()?;
    let mut out = Graph::new(graph.name());
    let mut map: HashMap<NodeId, NodeId> = HashMap::new();
    for id in graph.topo_order() {
        let operands: Vec<NodeId> = graph.operands(id).iter().map(|o| map[o]).collect();
        let new_id = emit(&mut out, id, &operands);
        if let Some(label) = &graph.node(id).label {
            if out.node(new_id).label.is_none() {
                out.set_label(new_id, label);
            }
        }
        map.insert(id, new_id);
    }
    for (name, id) in graph.outputs() {
        out.set_output(name, map[id]);
    }
    for (param, value) in graph.updates() {
        out.set_update(map[param], map[value])
            .expect("a parameter and its update are re-emitted with the same type");
    }
    Ok((out, map))
}

/// Re-emits `graph` node by node with every `f32` `exp`, `log`, `tanh`, `sin`, `cos` and `pow`
/// computed in `f64` from its widened operands and rounded to `f32` once: the correctly
/// rounded values (but for rare double roundings), of which the interpreter's `f32` libm
/// functions and the JIT's are each within an ulp or two. Everything else is copied as it
/// is. A comparison, a floor or a cast to `i32` downstream of such a function turns a
/// last-bit difference between two faithful implementations into an arbitrary one; the
/// fuzzer (`adjoint::fuzz`) takes this graph's values as a second reference for them.
///
/// Errors: the graph does not verify.
pub fn round_functions_from_f64(graph: &Graph) -> Result<Graph, adjoint_ir::VerifyError> {
    let add = |out: &mut Graph, op: Op, operands: &[NodeId]| {
        out.add(op, operands)
            .expect("a copy, or a function of widened operands, keeps every type rule satisfied")
    };
    let (out, _) = re_emit(graph, |out, id, operands| {
        let op = graph.op(id).clone();
        if is_f32_function(graph, id) {
            let wide: Vec<NodeId> = operands
                .iter()
                .map(|&o| add(out, Op::Cast { to: DType::F64 }, &[o]))
                .collect();
            let y = add(out, op, &wide);
            add(out, Op::Cast { to: DType::F32 }, &[y])
        } else {
            add(out, op, operands)
        }
    })?;
    Ok(out)
}

/// True if node `id` of `graph` is an `f32` function that [`round_functions_from_f64`] rounds
/// from `f64`: `exp`, `log`, `tanh`, `sin`, `cos` or `pow`.
pub fn is_f32_function(graph: &Graph, id: NodeId) -> bool {
    let function = matches!(
        graph.op(id),
        Op::Unary(UnaryOp::Exp | UnaryOp::Log | UnaryOp::Tanh | UnaryOp::Sin | UnaryOp::Cos)
            | Op::Binary(BinaryOp::Pow)
    );
    function && graph.ty(id).dtype == DType::F32
}

/// [`widen_feeds`], with a refused allocation as an error instead of an abort.
pub fn try_widen_feeds(feeds: &Feeds) -> Result<Feeds, String> {
    feeds
        .iter()
        .map(|(name, t)| {
            let t = if widen_dtype(t.dtype()) != t.dtype() {
                t.try_cast(DType::F64)?
            } else {
                t.try_cast(t.dtype())?
            };
            Ok((name.clone(), t))
        })
        .collect()
}

/// The same feeds with every `f32`, `bf16` and `f16` tensor converted to `f64`.
pub fn widen_feeds(feeds: &Feeds) -> Feeds {
    feeds
        .iter()
        .map(|(name, t)| {
            let t = if widen_dtype(t.dtype()) != t.dtype() {
                t.cast(DType::F64)
            } else {
                t.clone()
            };
            (name.clone(), t)
        })
        .collect()
}

fn widen_ty(ty: &TensorType) -> TensorType {
    TensorType::new(widen_dtype(ty.dtype), ty.shape.clone())
}

fn widen_dtype(d: DType) -> DType {
    if matches!(d, DType::F32 | DType::Bf16 | DType::F16) {
        DType::F64
    } else {
        d
    }
}

fn widen_op(op: &Op) -> Op {
    match op {
        Op::Input { name, ty } => Op::Input {
            name: name.clone(),
            ty: widen_ty(ty),
        },
        Op::Parameter { name, ty } => Op::Parameter {
            name: name.clone(),
            ty: widen_ty(ty),
        },
        Op::Constant(lit) => Op::Constant(
            Literal::new(widen_ty(lit.ty()), lit.values()).expect("same element count"),
        ),
        Op::Iota { ty, axis } => Op::Iota {
            ty: widen_ty(ty),
            axis: *axis,
        },
        Op::Cast { to } => Op::Cast {
            to: widen_dtype(*to),
        },
        other => other.clone(),
    }
}
