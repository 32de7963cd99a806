//! Training in bf16 and f16 through the Trainer: the accuracy tracks f32, parameters stay f32,
//! and f16's loss scaling skips overflowing steps and reports them.

use adjoint_autodiff::{LossScaling, Optimizer, Precision};
use adjoint_ir::DType;
use adjoint_nn::data::{digits_path, load_digits, Dataset, Standardizer};
use adjoint_nn::layers::{Activation, Mlp};
use adjoint_nn::loss::cross_entropy;
use adjoint_nn::schedule::Schedule;
use adjoint_nn::trainer::{Forward, Pass, Trainer, TrainerOptions};
use adjoint_nn::Params;

fn digits() -> (Dataset, Dataset) {
    let digits = load_digits(digits_path()).unwrap();
    let (train, test) = digits.split(7, 0.2).unwrap();
    let scaler = Standardizer::fit(&train);
    (scaler.apply(&train).unwrap(), scaler.apply(&test).unwrap())
}

fn mlp<'b>(p: &mut Params<'b>, pass: &Pass) -> Forward<'b> {
    let b = p.builder();
    let x = b.input("x", DType::F32, [pass.batch_size, 64]);
    let y = b.input("y", DType::I32, [pass.batch_size]);
    let logits = Mlp::new(p, "mlp", 64, 64, 10, Activation::Relu).forward(x);
    Forward {
        loss: cross_entropy(logits, y, 0.0),
        logits: Some(logits),
    }
}

fn train(precision: Precision, loss_scaling: Option<LossScaling>) -> (f64, Trainer) {
    let (train, test) = digits();
    let opts = TrainerOptions {
        batch_size: 32,
        epochs: 4,
        seed: 3,
        quiet: true,
        threads: 1,
        precision,
        loss_scaling,
        ..TrainerOptions::default()
    };
    let mut trainer = Trainer::new(
        "digits_mlp",
        mlp,
        Optimizer::adam(3e-3),
        Schedule::Constant,
        opts,
    )
    .unwrap();
    let history = trainer.fit(&train, Some(&test)).unwrap();
    let acc = history.last_evaluation().unwrap().accuracy.unwrap();
    (acc, trainer)
}

#[test]
fn bf16_and_f16_training_track_f32() {
    let (wide, _) = train(Precision::F32, None);
    for precision in [Precision::Bf16, Precision::F16] {
        let (acc, trainer) = train(precision, None);
        assert!(
            (acc - wide).abs() <= 0.02,
            "{precision}: {acc} against f32 {wide}"
        );
        // The master weights are f32; the step computes in 16 bits.
        for (name, t) in trainer.model_params() {
            assert_eq!(t.dtype(), DType::F32, "{name}");
        }
        // Loss scaling is on for f16 only.
        assert_eq!(
            trainer.param("loss_scale").is_some(),
            precision == Precision::F16
        );
        assert_eq!(trainer.skipped_steps(), 0);
    }
}

#[test]
fn f16_loss_scaling_skips_overflowing_steps_and_keeps_training() {
    // Start at a scale that overflows f16: the first steps are skipped (halving the scale each
    // time) until the scaled gradients fit, then training proceeds.
    let scaling = LossScaling {
        initial: 2f64.powi(40),
        growth_interval: 50,
    };
    let (acc, trainer) = train(Precision::F16, Some(scaling));
    let skipped = &trainer.history().skipped_steps;
    assert!(trainer.skipped_steps() >= 10, "{skipped:?}");
    assert_eq!(skipped[..10], (1..=10).collect::<Vec<u64>>()[..]);
    assert!(acc > 0.9, "{acc}");
    let scale = trainer.param("loss_scale").unwrap().to_f64_vec()[0];
    assert!(scale < 2f64.powi(40) / 1000.0, "{scale}");
}
