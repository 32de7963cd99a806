//! The DOT export names every node with its shape, styles inputs, parameters, constants and
//! outputs apart, labels operand positions, escapes quotes, and draws clusters.

use adjoint_ir::dot::{to_dot, to_dot_with_clusters};
use adjoint_ir::random_graph::random_graph;
use adjoint_ir::{Builder, DType, Graph, NodeId};

fn small() -> Graph {
    let b = Builder::new("tiny \"net\"");
    let x = b.input("x", DType::F32, [2, 3]);
    let w = b.parameter("w", DType::F32, [3, 4]);
    let h = x.matmul(w).named("h");
    let y = (h * 2.0).named("y");
    b.output("out \"y\"", y);
    b.update(w, w * 0.5);
    b.finish()
}

/// The DOT statement that defines node `id`.
fn node_line(dot: &str, id: NodeId) -> &str {
    let prefix = format!("  n{} [", id.index());
    dot.lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no line for node {id:?} in\n{dot}"))
}

#[test]
fn every_node_appears_with_its_type() {
    let g = small();
    let dot = to_dot(&g);
    assert!(dot.starts_with("digraph \"tiny \\\"net\\\"\" {\n"), "{dot}");
    assert!(dot.ends_with("}\n"));
    for id in g.node_ids() {
        let line = node_line(&dot, id);
        assert!(line.contains(&g.ty(id).to_string()), "{line}");
        assert!(line.contains(g.op(id).name()), "{line}");
    }
    let h = g.find("h").unwrap();
    assert_eq!(
        node_line(&dot, h),
        format!(
            "  n{} [label=\"%h\\nmatmul\\nf32[2,4]\", style=solid];",
            h.index()
        )
    );
}

#[test]
fn leaf_kinds_and_outputs_look_different() {
    let g = small();
    let dot = to_dot(&g);
    let x = node_line(&dot, g.leaf("x").unwrap());
    let w = node_line(&dot, g.leaf("w").unwrap());
    let c = g
        .node_ids()
        .find(|&id| g.op(id).name() == "constant")
        .unwrap();
    let c = node_line(&dot, c);
    let y = node_line(&dot, g.output("out \"y\"").unwrap());
    assert!(x.contains("shape=ellipse") && x.contains("#c7e9b4"), "{x}");
    assert!(w.contains("shape=cylinder") && w.contains("#c6dbef"), "{w}");
    assert!(c.contains("#e0e0e0") && c.contains("constant 2"), "{c}");
    assert!(y.contains("peripheries=2"), "{y}");
    assert!(!x.contains("peripheries"));
    // The output also gets a node of its own, with the quote escaped.
    assert!(
        dot.contains("  out0 [label=\"output \\\"out \\\"y\\\"\\\"\", shape=box, peripheries=2"),
        "{dot}"
    );
    // The update is a dashed edge into the parameter.
    let w_id = g.leaf("w").unwrap().index();
    assert!(
        dot.contains(&format!("-> n{w_id} [style=dashed, label=\"update\"")),
        "{dot}"
    );
}

#[test]
fn operand_positions_label_edges_of_multi_operand_ops() {
    let g = small();
    let dot = to_dot(&g);
    let h = g.find("h").unwrap().index();
    let x = g.leaf("x").unwrap().index();
    let w = g.leaf("w").unwrap().index();
    assert!(
        dot.contains(&format!("  n{x} -> n{h} [label=\"0\"];")),
        "{dot}"
    );
    assert!(
        dot.contains(&format!("  n{w} -> n{h} [label=\"1\"];")),
        "{dot}"
    );
    // A one-operand op's edge has no label.
    let b = Builder::new("u");
    let x = b.input("x", DType::F32, [2]);
    let e = x.exp();
    b.output("e", e);
    let line = format!("  n{} -> n{};", x.id().index(), e.id().index());
    let g = b.finish();
    let dot = to_dot(&g);
    assert!(dot.lines().any(|l| l == line), "{dot}");
}

#[test]
fn clusters_become_subgraphs() {
    let g = small();
    let h = g.find("h").unwrap();
    let y = g.find("y").unwrap();
    let clusters = vec![
        ("fused \"matmul\" + mul".to_string(), vec![h, y]),
        ("second".to_string(), vec![y, NodeId::new(9999)]),
    ];
    let dot = to_dot_with_clusters(&g, &clusters);
    let expected = format!(
        "  subgraph cluster_0 {{\n    label=\"fused \\\"matmul\\\" + mul\";\n    \
         style=\"rounded,dashed\"; color=\"#9e9e9e\";\n    n{};\n    n{};\n  }}\n",
        h.index(),
        y.index()
    );
    assert!(dot.contains(&expected), "{dot}");
    // `y` is already in the first cluster; the unknown id is skipped.
    assert!(dot.contains("  subgraph cluster_1 {\n    label=\"second\";\n    style=\"rounded,dashed\"; color=\"#9e9e9e\";\n  }\n"), "{dot}");
    assert!(!to_dot(&g).contains("subgraph"));
}

#[test]
fn random_graphs_export_every_node() {
    for seed in 0..20 {
        let g = random_graph(seed, 40);
        let dot = to_dot(&g);
        for id in g.node_ids() {
            node_line(&dot, id);
        }
        // Balanced quotes on every line: escaping never leaves a string open.
        for line in dot.lines() {
            let unescaped = line.replace("\\\\", "").replace("\\\"", "");
            assert_eq!(unescaped.matches('"').count() % 2, 0, "{line}");
        }
    }
}
