//! The workload graphs are well formed, fully fed, and the sizes WORKLOADS.md specifies.

use adjoint_ir::{DType, Op};
use adjoint_workloads::{all, by_id, gpt, mlp, resmlp_ln, GptConfig, MlpConfig, ResMlpConfig};

#[test]
fn every_workload_verifies_and_every_leaf_is_fed_with_its_type() {
    let tiny = [
        mlp("W1", "tiny", &MlpConfig::tiny(), 1),
        resmlp_ln(&ResMlpConfig::tiny(), 1),
        gpt(&GptConfig::tiny(), 1),
    ];
    for w in all(0).iter().chain(&tiny) {
        w.graph.verify().unwrap_or_else(|e| panic!("{}: {e}", w.id));
        let loss = w.graph.output("loss").expect("loss output");
        assert_eq!(w.graph.ty(loss).to_string(), "f32[]", "{}", w.id);
        let leaves = w.graph.inputs().iter().chain(w.graph.parameters());
        let mut count = 0;
        for &leaf in leaves {
            let name = w.graph.leaf_name(leaf).unwrap();
            let fed = w
                .feeds
                .get(name)
                .unwrap_or_else(|| panic!("{}: {name} not fed", w.id));
            assert_eq!(&fed.ty(), w.graph.ty(leaf), "{}: {name}", w.id);
            count += 1;
        }
        assert_eq!(count, w.feeds.len(), "{}: feeds that name nothing", w.id);
    }
}

#[test]
fn matmul_flops_match_workloads_md() {
    let flops = |id| by_id(id, 0).unwrap().matmul_flops;
    // WORKLOADS.md: W1 ≈ 9.93 M, W2 ≈ 1.430 G, W3 ≈ 1.61 G.
    assert!((flops("W1") / 9.93e6 - 1.0).abs() < 0.005);
    assert!((flops("W2") / 1.430e9 - 1.0).abs() < 0.005);
    assert!((flops("W3") / 1.61e9 - 1.0).abs() < 0.005);
    assert!(flops("W4") > 0.0);
}

#[test]
fn seeds_are_reproducible_and_distinct() {
    let a = by_id("W1", 7).unwrap().feeds;
    let b = by_id("w1", 7).unwrap().feeds;
    let c = by_id("mlp-small", 8).unwrap().feeds;
    assert_eq!(a, b);
    assert_ne!(a.get("w1"), c.get("w1"));
}

#[test]
fn labels_and_tokens_are_in_range() {
    let w1 = by_id("W1", 3).unwrap();
    assert!(w1.feeds["y"]
        .as_i32()
        .unwrap()
        .iter()
        .all(|&y| (0..10).contains(&y)));
    let w4 = by_id("W4", 3).unwrap();
    let toks = w4.feeds["tokens"].as_i32().unwrap();
    let tgts = w4.feeds["targets"].as_i32().unwrap();
    assert!(toks.iter().chain(tgts).all(|&t| (0..256).contains(&t)));
    // Next-token data: each target is the following token of the same sequence.
    assert_eq!(&toks[1..64], &tgts[..63]);
}

#[test]
fn w4_uses_a_causal_mask_and_an_embedding_gather() {
    let w4 = by_id("W4", 0).unwrap();
    let g = &w4.graph;
    let ops: Vec<&Op> = g.node_ids().map(|id| g.op(id)).collect();
    assert!(ops.iter().any(|op| matches!(op, Op::Gather { axis: 0 })));
    assert!(ops.iter().any(|op| matches!(op, Op::Select)));
    let neg_inf = g.node_ids().any(|id| match g.op(id) {
        Op::Constant(l) => l.ty().dtype == DType::F32 && l.is_splat(f64::NEG_INFINITY),
        _ => false,
    });
    assert!(neg_inf, "future positions are masked with -inf");
}

#[test]
fn training_steps_update_every_parameter_and_feed_the_optimizer_state() {
    for w in [
        mlp("W1", "tiny", &MlpConfig::tiny(), 2),
        resmlp_ln(&ResMlpConfig::tiny(), 2),
    ] {
        let t = w.training_step();
        let g = &t.step.graph;
        g.verify().unwrap();
        assert_eq!(
            g.updates().len(),
            g.parameters().len(),
            "{}: every parameter and state is updated",
            w.id
        );
        for &p in g.parameters() {
            let name = g.leaf_name(p).unwrap();
            assert_eq!(&t.feeds[name].ty(), g.ty(p), "{}: {name}", w.id);
        }
    }
}
