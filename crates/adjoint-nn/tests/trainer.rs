//! The training loop end to end: learning the digits, divergence, gradient norms, options.

mod common;

use adjoint_autodiff::Optimizer;
use adjoint_ir::{DType, HostTensor};
use adjoint_nn::data::Dataset;
use adjoint_nn::layers::Linear;
use adjoint_nn::loss::cross_entropy;
use adjoint_nn::schedule::Schedule;
use adjoint_nn::trainer::{Forward, Pass, TrainError, Trainer, TrainerOptions};
use adjoint_nn::Params;

fn quiet(epochs: u64) -> TrainerOptions {
    TrainerOptions {
        batch_size: 32,
        epochs,
        seed: 3,
        quiet: true,
        threads: 1,
        ..TrainerOptions::default()
    }
}

#[test]
fn digits_mlp_reaches_90_percent() {
    let (train, test) = common::digits(7);
    let opts = TrainerOptions {
        grad_norm_every: 10,
        ..quiet(3)
    };
    let mut trainer = Trainer::new(
        "digits_mlp",
        common::digits_mlp,
        Optimizer::adam(3e-3),
        Schedule::Constant,
        opts,
    )
    .unwrap();
    let history = trainer.fit(&train, Some(&test)).unwrap();
    let per_epoch = (train.len() / 32) as u64;
    assert_eq!(history.train_loss.len() as u64, 3 * per_epoch);
    assert_eq!(history.evaluations.len(), 3, "one evaluation per epoch");
    let first = history.train_loss[0].1;
    let last = history.evaluations.last().unwrap();
    assert!(last.loss < first / 4.0, "loss {first} → {}", last.loss);
    let acc = last.accuracy.unwrap();
    assert!(acc >= 0.90, "test accuracy {acc}");
    // Gradient norms every 10 steps, one per trained parameter, finite and positive.
    let norms = trainer.gradient_norms();
    assert_eq!(norms.len() as u64, 3 * per_epoch / 10);
    assert_eq!(norms[0].step, 10);
    let names: Vec<&str> = norms[0].norms.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "mlp.fc1.weight",
            "mlp.fc1.bias",
            "mlp.fc2.weight",
            "mlp.fc2.bias"
        ]
    );
    assert!(norms
        .iter()
        .all(|g| g.norms.iter().all(|(_, v)| v.is_finite() && *v > 0.0)));
}

#[test]
fn huge_learning_rate_stops_with_a_non_finite_error() {
    let (train, test) = common::digits(7);
    let mut trainer = Trainer::new(
        "diverge",
        common::digits_mlp,
        Optimizer::sgd(1e6),
        Schedule::Constant,
        quiet(1),
    )
    .unwrap();
    let err = trainer.fit(&train, Some(&test)).unwrap_err();
    let TrainError::NonFinite { step, tensor, .. } = &err else {
        panic!("expected a non-finite error, got {err}");
    };
    assert!(
        *step >= 2,
        "the first step's loss is finite, got step {step}"
    );
    assert_eq!(trainer.step(), step - 1, "the failing step is not counted");
    assert!(
        tensor == "the loss" || tensor.contains("gradient of `mlp."),
        "{tensor}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("step {step}")) && msg.contains("not finite"),
        "{msg}"
    );
}

#[test]
fn schedule_is_fed_as_the_learning_rate() {
    // A constant gradient of 1 (loss = sum of w) makes SGD move w by exactly -lr per step.
    let x = HostTensor::from_f32([4, 1], vec![0.0; 4]).unwrap();
    let y = HostTensor::from_i32([4], vec![0; 4]).unwrap();
    let data = Dataset::new(x, y, 1).unwrap();
    fn model<'b>(p: &mut Params<'b>, pass: &Pass) -> Forward<'b> {
        let b = p.builder();
        let x = b.input("x", DType::F32, [pass.batch_size, 1]);
        let w = p.get("w", &[1], adjoint_nn::Initializer::Zeros);
        Forward {
            loss: w.sum_all() + x.sum_all(),
            logits: None,
        }
    }
    let opts = TrainerOptions {
        batch_size: 1,
        epochs: 2,
        ..quiet(1)
    };
    let schedule = Schedule::step_decay(2, 0.5);
    let mut trainer = Trainer::new("sched", model, Optimizer::sgd(1.0), schedule, opts).unwrap();
    trainer.fit(&data, None).unwrap();
    // 8 steps with rates 1, 1, .5, .5, .25, .25, .125, .125: w = -3.75 exactly.
    let w = trainer.param("w").unwrap();
    assert_eq!(w.as_f32().unwrap(), &[-3.75]);
    assert_eq!(trainer.learning_rate(7), 0.125);
}

#[test]
fn unusable_configurations_are_errors() {
    let input_lr = Optimizer::sgd(adjoint_autodiff::LearningRate::input("lr"));
    let err = Trainer::new(
        "bad",
        common::digits_mlp,
        input_lr,
        Schedule::Constant,
        quiet(1),
    )
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("constant base learning rate"),
        "{err}"
    );
    let (train, _) = common::digits(7);
    let opts = TrainerOptions {
        batch_size: 5000,
        ..quiet(1)
    };
    let mut trainer = Trainer::new(
        "big",
        common::digits_mlp,
        Optimizer::sgd(0.1),
        Schedule::Constant,
        opts,
    )
    .unwrap();
    let err = trainer.fit(&train, None).unwrap_err();
    assert!(err.to_string().contains("fewer than one batch"), "{err}");
}

#[test]
fn a_model_input_of_another_shape_is_fed_reshaped() {
    // The features [b, 64] fed to an input declared [b, 8, 8] (as a convolution wants them).
    let (train, test) = common::digits(7);
    fn model<'b>(p: &mut Params<'b>, pass: &Pass) -> Forward<'b> {
        let b = p.builder();
        let x = b.input("x", DType::F32, [pass.batch_size, 8, 8]);
        let y = b.input("y", DType::I32, [pass.batch_size]);
        let logits = Linear::new(p, "fc", 64, 10).forward(x.reshape([pass.batch_size, 64]));
        Forward {
            loss: cross_entropy(logits, y, 0.0),
            logits: Some(logits),
        }
    }
    let mut trainer = Trainer::new(
        "reshaped",
        model,
        Optimizer::adam(1e-2),
        Schedule::Constant,
        quiet(1),
    )
    .unwrap();
    trainer.fit(&train, None).unwrap();
    let e = trainer.evaluate(&test).unwrap();
    assert!(e.accuracy.unwrap() > 0.8, "{e:?}");
    assert_eq!(e.step, trainer.step());
}
