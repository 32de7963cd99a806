//! Value names in the text format: what a name may contain and how the printer picks them.

use crate::graph::{Graph, NodeId};
use crate::op::Op;
use std::collections::{HashMap, HashSet};

/// True for the characters a `%name` is made of.
pub(crate) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// True for the printer's generated names: all ASCII digits.
pub(crate) fn is_number_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// True when `s` can stand unquoted as the graph's name: a letter or `_`, then name characters.
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(is_name_char)
}

/// `s` made into a label name: other characters become `_`, and an empty or all-digit result
/// gets a leading `_`.
fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if is_name_char(c) { c } else { '_' })
        .collect();
    if out.is_empty() || is_number_name(&out) {
        out.insert(0, '_');
    }
    out
}

/// The name each node prints under, for the nodes of `order` (a topological order).
///
/// Inputs and parameters are named first, after their leaf names; then, in `order`, labelled
/// nodes after their labels and the rest `0`, `1`, …. A name already taken gets the first free
/// suffix `_1`, `_2`, …. Applied to a graph parsed from this function's output, it gives the same
/// names again, which is what makes printing idempotent.
pub(crate) fn assign_names(graph: &Graph, order: &[NodeId]) -> HashMap<NodeId, String> {
    let mut names = HashMap::with_capacity(order.len());
    let mut taken: HashSet<String> = HashSet::with_capacity(order.len());
    let mut claim = |id: NodeId, wanted: String, names: &mut HashMap<NodeId, String>| {
        let mut name = wanted.clone();
        let mut n = 1usize;
        while taken.contains(&name) {
            name = format!("{wanted}_{n}");
            n += 1;
        }
        taken.insert(name.clone());
        names.insert(id, name);
    };
    for &id in order {
        if let Some(leaf) = graph.leaf_name(id) {
            claim(id, sanitize(leaf), &mut names);
        }
    }
    let mut next_number = 0usize;
    for &id in order {
        if matches!(graph.op(id), Op::Input { .. } | Op::Parameter { .. }) {
            continue;
        }
        match &graph.node(id).label {
            Some(label) => claim(id, sanitize(label), &mut names),
            None => {
                names.insert(id, next_number.to_string());
                next_number += 1;
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizing_keeps_good_names_and_fixes_bad_ones() {
        assert_eq!(sanitize("w1.grad"), "w1.grad");
        assert_eq!(sanitize("layer-1 out"), "layer_1_out");
        assert_eq!(sanitize("42"), "_42");
        assert_eq!(sanitize(""), "_");
        assert!(is_number_name("42") && !is_number_name("_42") && !is_number_name(""));
        assert!(is_identifier("mlp.v2") && !is_identifier("2mlp") && !is_identifier(""));
    }
}
