//! The register allocator changes where values live, never what a step computes: W1 and the
//! tiny transformer compiled with the single-pass allocator give bit-identical losses and
//! parameters to the backtracking one, step after step.

use adjoint_jit::{compile, Options, RegisterAllocator};

/// Loss bits of each of three steps and the bits of every parameter after them.
fn run(w: &adjoint_workloads::Workload, register_allocator: RegisterAllocator) -> Vec<u64> {
    let t = w.training_step();
    let options = Options {
        threads: 1,
        cache: false,
        register_allocator,
        ..Options::default()
    };
    let mut step = compile(&t.step.graph, &options).unwrap();
    step.set_params(&t.feeds).unwrap();
    let inputs = step.input_feeds(&t.feeds);
    let mut bits = Vec::new();
    for _ in 0..3 {
        let out = step.run(&inputs).unwrap();
        bits.extend(
            out.output("loss")
                .unwrap()
                .to_f64_vec()
                .iter()
                .map(|x| x.to_bits()),
        );
    }
    let mut params = step.params();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, value) in &params {
        bits.extend(value.to_f64_vec().iter().map(|x| x.to_bits()));
    }
    bits
}

#[test]
fn single_pass_and_backtracking_allocation_compute_the_same_bits() {
    for w in [
        adjoint_workloads::w1_mlp_small(0),
        adjoint_workloads::gpt(&adjoint_workloads::GptConfig::tiny(), 0),
    ] {
        let backtracking = run(&w, RegisterAllocator::Backtracking);
        let single_pass = run(&w, RegisterAllocator::SinglePass);
        assert_eq!(backtracking.len(), single_pass.len());
        assert!(backtracking == single_pass, "{} differs", w.id);
    }
}

#[test]
fn auto_switches_to_single_pass_only_for_very_large_steps() {
    let from = RegisterAllocator::SINGLE_PASS_FROM;
    assert!(!RegisterAllocator::Auto.single_pass(from));
    assert!(RegisterAllocator::Auto.single_pass(from + 1));
    assert!(!RegisterAllocator::Backtracking.single_pass(usize::MAX));
    assert!(RegisterAllocator::SinglePass.single_pass(1));
}
