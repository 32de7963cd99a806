//! A one-line-per-node listing of a graph, for reports and dumps: `%12 = add(%3, %11) : f32[4,8]
//! "h1"`.

use adjoint_ir::{Graph, NodeId, Op};
use std::fmt::Write;

/// How reports name a value: `%name` for an input or parameter (its name in the graph and the
/// text format), `%index` for any other node.
pub fn value_ref(g: &Graph, id: NodeId) -> String {
    match g.leaf_name(id) {
        Some(name) => format!("%{name}"),
        None => format!("%{}", id.index()),
    }
}

/// One node as a line: `%id = op[attributes](operands) : type "label"`.
pub fn node_line(g: &Graph, id: NodeId) -> String {
    let mut s = format!("{} = {}", value_ref(g, id), g.op(id).name());
    match g.op(id) {
        Op::Input { name, .. } | Op::Parameter { name, .. } => {
            let _ = write!(s, " \"{name}\"");
        }
        Op::Constant(lit) => {
            let vals = lit.values();
            if vals.len() == 1 {
                let _ = write!(s, " {}", vals[0]);
            } else {
                let _ = write!(s, " [{} values]", vals.len());
            }
        }
        Op::Iota { axis, .. } => {
            let _ = write!(s, " axis={axis}");
        }
        Op::Cast { to } => {
            let _ = write!(s, " to={to}");
        }
        Op::Broadcast { shape } | Op::Reshape { shape } => {
            let _ = write!(s, " {shape}");
        }
        Op::Permute { perm } => {
            let _ = write!(s, " {perm:?}");
        }
        Op::Reduce { axes, keepdims, .. } => {
            let _ = write!(
                s,
                " axes={axes:?}{}",
                if *keepdims { " keepdims" } else { "" }
            );
        }
        Op::Concat { axis } | Op::Gather { axis } => {
            let _ = write!(s, " axis={axis}");
        }
        Op::ScatterAdd { axis, size } => {
            let _ = write!(s, " axis={axis} size={size}");
        }
        Op::Slice { ranges } => {
            let r: Vec<String> = ranges
                .iter()
                .map(|r| format!("{}:{}:{}", r.start, r.stop, r.step))
                .collect();
            let _ = write!(s, " [{}]", r.join(","));
        }
        Op::Pad { low, high } => {
            let _ = write!(s, " low={low:?} high={high:?}");
        }
        Op::AllReduce { replicas, .. } => {
            let _ = write!(s, " replicas={replicas}");
        }
        // No attributes beyond the name.
        Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Select | Op::MatMul => {}
    }
    let ops: Vec<String> = g.operands(id).iter().map(|&o| value_ref(g, o)).collect();
    if !ops.is_empty() {
        let _ = write!(s, "({})", ops.join(", "));
    }
    let _ = write!(s, " : {}", g.ty(id));
    if let Some(l) = &g.node(id).label {
        let _ = write!(s, " \"{l}\"");
    }
    s
}

/// Every node in topological order, one line each, then the outputs and updates.
pub fn listing(g: &Graph) -> String {
    let mut s = format!("graph {}\n", g.name());
    for id in g.topo_order() {
        let _ = writeln!(s, "  {}", node_line(g, id));
    }
    for (name, id) in g.outputs() {
        let _ = writeln!(s, "  output \"{name}\" = %{}", id.index());
    }
    for (p, v) in g.updates() {
        let _ = writeln!(s, "  update %{} <- %{}", p.index(), v.index());
    }
    s
}
