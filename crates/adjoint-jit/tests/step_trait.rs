//! One way to run a step: the interpreter ([`InterpStep`]) and the compiled step take the same
//! parameter calls and feeds through [`Step`], so the same training loop runs on both — and
//! agrees, optimizer state and gradient outputs included.

use adjoint_autodiff::{float_parameters, training_step, Optimizer, StepGraph};
use adjoint_interp::{InterpError, InterpStep};
use adjoint_ir::{Feeds, HostTensor, Step};
use adjoint_jit::{compile, JitError, Options};
use adjoint_workloads::w1_mlp_small;

/// `steps` Adam steps of W1 on its one batch, through nothing but [`Step`]: the losses, the
/// last gradient of `w1`-like parameter `name`, and the final parameters.
fn train<S: Step>(step: &mut S, sg: &StepGraph, feeds: &Feeds, steps: usize) -> (Vec<f64>, Feeds) {
    step.set_params(feeds).unwrap();
    step.set_params(&sg.initial_state()).unwrap();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let out = step.run_feeds(feeds).unwrap();
        losses.push(out.output("loss").unwrap().to_f64_vec()[0]);
        for p in &sg.params {
            let g = out.output(&StepGraph::grad_output(&p.name)).unwrap();
            assert_eq!(g.ty(), sg.graph.ty(p.param).clone(), "{}", p.name);
        }
    }
    (losses, step.params())
}

fn close(a: &HostTensor, b: &HostTensor, what: &str) {
    for (x, y) in a.to_f64_vec().iter().zip(b.to_f64_vec()) {
        assert!(
            (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
            "{what}: {x} vs {y}"
        );
    }
}

#[test]
fn the_interpreter_and_the_compiled_step_train_alike_through_one_interface() {
    let w = w1_mlp_small(3);
    let loss = w.graph.output("loss").unwrap();
    let params = float_parameters(&w.graph);
    let sg = training_step(w.graph.clone(), loss, &params, &Optimizer::adam(1e-2))
        .unwrap()
        .with_gradient_outputs();

    let mut interp = InterpStep::new(sg.graph.clone()).unwrap();
    let mut jit = compile(&sg.graph, &Options::default()).unwrap();
    let (want_losses, want) = train(&mut interp, &sg, &w.feeds, 4);
    let (got_losses, got) = train(&mut jit, &sg, &w.feeds, 4);

    assert!(want_losses[3] < want_losses[0], "{want_losses:?}");
    for (a, b) in got_losses.iter().zip(&want_losses) {
        assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (name, t) in &want {
        close(&got[name], t, name);
    }
    assert_eq!(got["adam.step"].to_f64_vec(), [4.0]);
}

#[test]
fn both_refuse_the_same_mistakes() {
    let w = w1_mlp_small(3);
    let loss = w.graph.output("loss").unwrap();
    let params = float_parameters(&w.graph);
    let sg = training_step(w.graph.clone(), loss, &params, &Optimizer::sgd(0.1)).unwrap();
    let mut interp = InterpStep::new(sg.graph.clone()).unwrap();
    let mut jit = compile(&sg.graph, &Options::default()).unwrap();

    // Running before the parameters have values.
    assert!(matches!(
        interp.run_feeds(&w.feeds),
        Err(InterpError::UninitializedParameter { .. })
    ));
    assert!(matches!(
        jit.run_feeds(&w.feeds),
        Err(JitError::UninitializedParameter { .. })
    ));
    Step::set_params(&mut interp, &w.feeds).unwrap();
    Step::set_params(&mut jit, &w.feeds).unwrap();
    // A parameter fed to `run` (rather than set) is an error in both.
    let e1 = Step::run(&mut interp, &w.feeds).unwrap_err().to_string();
    let e2 = Step::run(&mut jit, &w.feeds).unwrap_err().to_string();
    for e in [&e1, &e2] {
        assert!(
            e.contains("is a parameter") && e.contains("set_param"),
            "{e}"
        );
    }
    // A misspelt input is an error in both, even through run_feeds.
    let mut typo = w.feeds.clone();
    let x = typo.remove("x").unwrap();
    typo.insert("X".into(), x);
    assert!(interp.run_feeds(&typo).is_err());
    assert!(jit.run_feeds(&typo).is_err());
}
