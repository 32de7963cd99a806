//! Graphviz DOT export: draw a graph with `dot -Tsvg`.
//!
//! Each node is a box labelled with its name (the one the text format prints), its op with
//! attributes, and its type. Inputs are green ellipses, parameters blue cylinders, constants
//! and iota grey rounded boxes; each output is an extra double-bordered box, and its node gets a
//! double border too. Edges run from operand to user and carry the operand's position when the
//! op has more than one operand; a dashed edge runs from a parameter's update value to the
//! parameter.

use crate::graph::{Graph, NodeId};
use crate::op::Op;
use crate::text::{node_names, push_attributes};
use std::fmt::Write;

/// Longest op-and-attributes text shown in a node before it is cut with `…` (long literals).
const MAX_OP_TEXT: usize = 48;

/// The graph in Graphviz DOT syntax.
///
/// ```
/// use adjoint_ir::{dot, Builder, DType};
///
/// let b = Builder::new("g");
/// let x = b.input("x", DType::F32, [2]);
/// b.output("y", x.exp());
/// let text = dot::to_dot(&b.finish());
/// assert!(text.starts_with("digraph \"g\" {"));
/// assert!(text.contains("exp\\nf32[2]"));
/// ```
pub fn to_dot(graph: &Graph) -> String {
    to_dot_with_clusters(graph, &[])
}

/// [`to_dot`], drawing each `(title, nodes)` group as a `subgraph cluster_N` box (fusion groups,
/// for instance). Ids that are not in the graph are skipped; a node listed in two groups is
/// drawn in the first.
pub fn to_dot_with_clusters(graph: &Graph, clusters: &[(String, Vec<NodeId>)]) -> String {
    let names = node_names(graph);
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(graph.name()));
    out += "  rankdir=TB;\n";
    out += "  node [shape=box, fontname=\"monospace\", fontsize=10];\n";
    out += "  edge [fontname=\"monospace\", fontsize=9];\n";
    let outputs: Vec<NodeId> = graph.outputs().iter().map(|&(_, id)| id).collect();
    let order = graph.topo_order();
    for &id in &order {
        let node = graph.node(id);
        let name = names.get(&id).map_or("?", String::as_str);
        let mut op_text = node.op.name().to_string();
        push_attributes(&mut op_text, &node.op);
        if op_text.chars().count() > MAX_OP_TEXT {
            op_text = op_text.chars().take(MAX_OP_TEXT - 1).collect::<String>() + "…";
        }
        let label = format!("%{name}\n{op_text}\n{}", node.ty);
        let style = match node.op {
            Op::Input { .. } => {
                "shape=ellipse, style=filled, fillcolor=\"#c7e9b4\", color=\"#2e7d32\""
            }
            Op::Parameter { .. } => {
                "shape=cylinder, style=filled, fillcolor=\"#c6dbef\", color=\"#1f4e99\""
            }
            Op::Constant(_) | Op::Iota { .. } => {
                "style=\"filled,rounded\", fillcolor=\"#e0e0e0\", color=\"#757575\""
            }
            _ => "style=solid",
        };
        let border = if outputs.contains(&id) {
            ", peripheries=2"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  n{} [label={}, {style}{border}];",
            id.index(),
            quote(&label)
        );
    }
    for &id in &order {
        let operands = graph.operands(id);
        for (i, o) in operands.iter().enumerate() {
            if operands.len() > 1 {
                let _ = writeln!(out, "  n{} -> n{} [label=\"{i}\"];", o.index(), id.index());
            } else {
                let _ = writeln!(out, "  n{} -> n{};", o.index(), id.index());
            }
        }
    }
    for (k, (name, id)) in graph.outputs().iter().enumerate() {
        let label = format!("output \"{name}\"");
        let _ = writeln!(
            out,
            "  out{k} [label={}, shape=box, peripheries=2, style=bold];",
            quote(&label)
        );
        let _ = writeln!(out, "  n{} -> out{k} [style=bold];", id.index());
    }
    for &(param, value) in graph.updates() {
        let _ = writeln!(
            out,
            "  n{} -> n{} [style=dashed, label=\"update\", constraint=false];",
            value.index(),
            param.index()
        );
    }
    let mut placed = std::collections::HashSet::new();
    for (k, (title, members)) in clusters.iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_{k} {{");
        let _ = writeln!(out, "    label={};", quote(title));
        out += "    style=\"rounded,dashed\"; color=\"#9e9e9e\";\n";
        for &id in members {
            if graph.contains(id) && placed.insert(id) {
                let _ = writeln!(out, "    n{};", id.index());
            }
        }
        out += "  }\n";
    }
    out += "}\n";
    out
}

/// A DOT string literal: `"` and `\` escaped, newlines as `\n`.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\r' => {}
            c => q.push(c),
        }
    }
    q.push('"');
    q
}
