//! The op table is the one list of ops: everything that must know every op is checked
//! against it, so that adding a variant fails here until each place is done.

use adjoint_ir::{BinaryOp, CompareOp, Op, UnaryOp};
use std::collections::BTreeSet;

fn doc(name: &str) -> String {
    let path = format!("{}/../../docs/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn names_are_distinct_and_counted() {
    let names: Vec<&str> = Op::all_names().collect();
    let distinct: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(names.len(), Op::NAME_COUNT);
    assert_eq!(distinct.len(), names.len(), "{names:?}");
    for u in UnaryOp::ALL {
        assert_eq!(UnaryOp::from_name(u.name()), Some(u));
    }
    for b in BinaryOp::ALL {
        assert_eq!(BinaryOp::from_name(b.name()), Some(b));
    }
    for c in CompareOp::ALL {
        assert_eq!(CompareOp::from_name(c.name()), Some(c));
    }
}

#[test]
fn the_ir_reference_documents_every_op() {
    let text = doc("ir.md");
    let missing: Vec<&str> = Op::all_names()
        .filter(|n| !text.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/ir.md does not mention {missing:?}"
    );
}

#[test]
fn the_autodiff_reference_gives_every_elementwise_rule() {
    let text = doc("autodiff.md");
    let names = UnaryOp::ALL
        .iter()
        .map(|u| u.name())
        .chain(BinaryOp::ALL.iter().map(|b| b.name()))
        .chain(CompareOp::ALL.iter().map(|c| c.name()));
    let missing: Vec<&str> = names
        .filter(|n| {
            !text
                .lines()
                .any(|l| l.starts_with('|') && l.contains(&format!("`{n}`")))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/autodiff.md has no rule row for {missing:?}"
    );
}
