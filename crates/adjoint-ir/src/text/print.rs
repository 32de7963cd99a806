//! The printer: a graph as `.adj` text.

use super::names::{assign_names, is_identifier};
use super::number::format_element;
use crate::graph::{Graph, NodeId};
use crate::literal::Literal;
use crate::op::{Op, ReduceOp};
use std::collections::HashMap;
use std::fmt::Write;

/// The graph as `.adj` text: a `graph NAME {` line, one line per node in
/// [`Graph::topo_order`], `output` and `update` lines, and `}`.
///
/// ```
/// use adjoint_ir::{text, Builder, DType};
///
/// let b = Builder::new("affine");
/// let x = b.input("x", DType::F32, [2, 3]);
/// let w = b.parameter("w", DType::F32, [3]);
/// b.output("y", (x * w).named("y"));
/// let g = b.finish();
/// let printed = text::print(&g);
/// assert_eq!(
///     printed,
///     "graph affine {\n  %x: f32[2,3] = input \"x\"\n  %w: f32[3] = parameter \"w\"\n  \
///      %0: f32[2,3] = broadcast %w shape=[2,3]\n  %y: f32[2,3] = mul %x, %0\n  \
///      output \"y\" = %y\n}\n"
/// );
/// let parsed = text::parse(&printed).unwrap();
/// assert_eq!(text::print(&parsed), printed);
/// ```
pub fn print(graph: &Graph) -> String {
    let order = graph.topo_order();
    let names = assign_names(graph, &order);
    let name = |id: NodeId| -> &str { names.get(&id).map_or("?", String::as_str) };
    let mut out = String::new();
    out += "graph ";
    if is_identifier(graph.name()) {
        out += graph.name();
    } else {
        push_quoted(&mut out, graph.name());
    }
    out += " {\n";
    for &id in &order {
        let node = graph.node(id);
        let _ = write!(out, "  %{}: {} = {}", name(id), node.ty, node.op.name());
        let operands = graph.operands(id);
        for (i, &o) in operands.iter().enumerate() {
            out += if i == 0 { " %" } else { ", %" };
            out += name(o);
        }
        push_attributes(&mut out, &node.op);
        out += "\n";
    }
    for (output, id) in graph.outputs() {
        out += "  output ";
        push_quoted(&mut out, output);
        let _ = writeln!(out, " = %{}", name(*id));
    }
    for &(param, value) in graph.updates() {
        out += "  update ";
        push_quoted(&mut out, graph.leaf_name(param).unwrap_or("?"));
        let _ = writeln!(out, " = %{}", name(value));
    }
    out += "}\n";
    out
}

/// Appends what follows the op name and operands: a leaf's name or value, or ` key=value`
/// attributes.
pub(crate) fn push_attributes(out: &mut String, op: &Op) {
    match op {
        Op::Input { name, .. } | Op::Parameter { name, .. } => {
            out.push(' ');
            push_quoted(out, name);
        }
        Op::Constant(lit) => {
            out.push(' ');
            push_literal(out, lit);
        }
        Op::Iota { axis, .. } => {
            let _ = write!(out, " axis={axis}");
        }
        Op::Cast { to } => {
            let _ = write!(out, " to={to}");
        }
        Op::Broadcast { shape } | Op::Reshape { shape } => {
            let _ = write!(out, " shape={shape}");
        }
        Op::Permute { perm } => {
            out.push_str(" perm=");
            push_list(out, perm);
        }
        Op::Slice { ranges } => {
            out.push_str(" ranges=[");
            for (i, r) in ranges.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{}:{}:{}", r.start, r.stop, r.step);
            }
            out.push(']');
        }
        Op::Pad { low, high } => {
            out.push_str(" low=");
            push_list(out, low);
            out.push_str(" high=");
            push_list(out, high);
        }
        Op::Concat { axis } | Op::Gather { axis } => {
            let _ = write!(out, " axis={axis}");
        }
        Op::Reduce { op, axes, keepdims } => {
            debug_assert!(matches!(op, ReduceOp::Sum | ReduceOp::Max));
            out.push_str(" axes=");
            push_list(out, axes);
            let _ = write!(out, " keepdims={keepdims}");
        }
        Op::ScatterAdd { axis, size } => {
            let _ = write!(out, " axis={axis} size={size}");
        }
        Op::AllReduce { replicas, .. } => {
            let _ = write!(out, " replicas={replicas}");
        }
        Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Select | Op::MatMul => {}
    }
}

/// `[a,b,c]`, the spelling of shapes, used for every list of integers.
fn push_list(out: &mut String, items: &[usize]) {
    out.push('[');
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{v}");
    }
    out.push(']');
}

/// A rank-0 literal as its value, any other as `[v, v, …]` in row-major order.
fn push_literal(out: &mut String, lit: &Literal) {
    let dtype = lit.ty().dtype;
    if lit.ty().shape.rank() == 0 {
        if let Some(&v) = lit.values().first() {
            out.push_str(&format_element(v, dtype));
            return;
        }
    }
    out.push('[');
    for (i, &v) in lit.values().iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&format_element(v, dtype));
    }
    out.push(']');
}

/// A string in double quotes, with `\"`, `\\`, `\n`, `\t`, `\r` and `\u{…}` for other control
/// characters.
pub(crate) fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Names printed for nodes, exposed for the DOT exporter so both dumps agree.
pub(crate) fn node_names(graph: &Graph) -> HashMap<NodeId, String> {
    assign_names(graph, &graph.topo_order())
}
