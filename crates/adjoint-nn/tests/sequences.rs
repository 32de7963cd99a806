//! The trainer on sequences: a data set of token sequences with one target per position
//! (`Dataset::sequences`), trained, evaluated and predicted through the Trainer.

use adjoint_autodiff::Optimizer;
use adjoint_ir::{DType, HostTensor, Rng};
use adjoint_nn::data::Dataset;
use adjoint_nn::layers::{Embedding, Linear};
use adjoint_nn::loss::cross_entropy;
use adjoint_nn::schedule::Schedule;
use adjoint_nn::trainer::{Forward, Pass, Trainer, TrainerOptions};
use adjoint_nn::Params;

const VOCAB: usize = 6;
const LEN: usize = 4;

/// `n` random sequences; the target of each position is the next token value, `(t + 1) % 6`.
fn data(n: usize, seed: u64) -> Dataset {
    let mut rng = Rng::derive(seed, "sequences");
    let tokens: Vec<i32> = (0..n * LEN)
        .map(|_| rng.below(VOCAB as u64) as i32)
        .collect();
    let targets: Vec<i32> = tokens.iter().map(|&t| (t + 1) % VOCAB as i32).collect();
    Dataset::sequences(
        HostTensor::from_i32([n, LEN], tokens).unwrap(),
        HostTensor::from_i32([n, LEN], targets).unwrap(),
        VOCAB,
    )
    .unwrap()
}

/// Per-position logits `[batch, LEN, VOCAB]` from an embedding and a linear layer.
fn model<'b>(p: &mut Params<'b>, pass: &Pass) -> Forward<'b> {
    let b = p.builder();
    let x = b.input("x", DType::I32, [pass.batch_size, LEN]);
    let y = b.input("y", DType::I32, [pass.batch_size, LEN]);
    let h = Embedding::new(p, "embed", VOCAB, 16).forward(x);
    let logits = Linear::new(p, "out", 16, VOCAB).forward(h);
    Forward {
        loss: cross_entropy(logits, y, 0.0),
        logits: Some(logits),
    }
}

#[test]
fn a_sequence_model_trains_evaluates_and_predicts_through_the_trainer() {
    let (train, test) = (data(512, 1), data(100, 2));
    let options = TrainerOptions {
        batch_size: 32,
        epochs: 4,
        quiet: true,
        threads: 1,
        eval_batch_size: 64, // the 100 test sequences in two chunks, the last padded
        ..TrainerOptions::default()
    };
    let mut trainer = Trainer::new(
        "next_token",
        model,
        Optimizer::adam(0.05),
        Schedule::Constant,
        options,
    )
    .unwrap();
    let history = trainer.fit(&train, Some(&test)).unwrap().clone();
    let last = history.last_evaluation().unwrap();
    assert!(last.accuracy.unwrap() > 0.99, "{last:?}");

    let e = trainer.evaluate(&test).unwrap();
    assert_eq!(e.accuracy, last.accuracy);

    let logits = trainer.predict(test.features()).unwrap();
    assert_eq!(logits.shape().dims(), &[100, LEN, VOCAB]);
    let z = logits.to_f64_vec();
    let tokens = test.features().as_i32().unwrap();
    for (k, &t) in tokens.iter().enumerate() {
        let row = &z[k * VOCAB..(k + 1) * VOCAB];
        let best = (0..VOCAB)
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .unwrap();
        assert_eq!(best as i32, (t + 1) % VOCAB as i32, "position {k}");
    }
    // A prediction of one example agrees with the batched one.
    let one = HostTensor::from_i32([1, LEN], tokens[..LEN].to_vec()).unwrap();
    let single = trainer.predict(&one).unwrap().to_f64_vec();
    for (a, b) in single.iter().zip(&z[..LEN * VOCAB]) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn sequence_data_sets_are_checked_and_split_without_stratifying() {
    let d = data(50, 3);
    let (train, test) = d.split(0, 0.2).unwrap();
    assert_eq!((train.len(), test.len()), (40, 10));
    assert_eq!(train.labels().shape().dims(), &[40, LEN]);
    let bad = Dataset::sequences(
        HostTensor::from_i32([2, 2], vec![0, 1, 2, 3]).unwrap(),
        HostTensor::from_i32([2, 2], vec![0, 1, 9, 3]).unwrap(),
        VOCAB,
    );
    assert!(bad
        .unwrap_err()
        .to_string()
        .contains("target 9 of example 1"));
    let mismatched = Dataset::sequences(
        HostTensor::from_i32([2, 2], vec![0; 4]).unwrap(),
        HostTensor::from_i32([3], vec![0; 3]).unwrap(),
        VOCAB,
    );
    assert!(mismatched.is_err());
}
