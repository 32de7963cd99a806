//! The digits loader, splits, standardization and mini-batches.

mod common;
use common::TempDir;

use adjoint_ir::HostTensor;
use adjoint_nn::data::{digits_path, load_digits, DataError, Dataset, Standardizer};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

fn write_gz(path: &Path, text: &str) {
    let mut enc = GzEncoder::new(std::fs::File::create(path).unwrap(), Compression::fast());
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap();
}

/// A valid digits row: 64 pixels all equal to `pixel`, then `label`.
fn row(pixel: i64, label: i64) -> String {
    let mut fields: Vec<String> = (0..64).map(|_| pixel.to_string()).collect();
    fields.push(label.to_string());
    fields.join(",")
}

/// A data set whose single feature is the example's index: rows are identifiable.
fn indexed(n: usize, classes: usize) -> Dataset {
    let x = HostTensor::from_f32([n, 1], (0..n).map(|i| i as f32).collect()).unwrap();
    let y = HostTensor::from_i32([n], (0..n).map(|i| (i % classes) as i32).collect()).unwrap();
    Dataset::new(x, y, classes).unwrap()
}

#[test]
fn loads_the_bundled_digits() {
    let digits = load_digits(digits_path()).unwrap();
    assert_eq!(digits.len(), 1797);
    assert_eq!(digits.num_features(), 64);
    assert_eq!(digits.classes(), 10);
    assert_eq!(digits.features().shape().dims(), &[1797, 64]);
    assert_eq!(digits.labels().shape().dims(), &[1797]);
    let counts = digits.class_counts();
    assert_eq!(counts.iter().sum::<usize>(), 1797);
    for (class, &count) in counts.iter().enumerate() {
        assert!((170..=190).contains(&count), "class {class}: {count}");
    }
    // Pixels are counts 0..=16 divided by 16: in [0, 1], on a grid of 1/16, both ends used.
    let x = digits.feature_values();
    assert!(x
        .iter()
        .all(|&v| (0.0..=1.0).contains(&v) && (v * 16.0).fract() == 0.0));
    assert!(x.contains(&0.0) && x.contains(&1.0));
    // The first row of the file: 0,0,5,13,9,1,0,0,... label 0.
    assert_eq!(
        &digits.row(0).unwrap()[..6],
        &[0.0, 0.0, 5.0 / 16.0, 13.0 / 16.0, 9.0 / 16.0, 1.0 / 16.0]
    );
    assert_eq!(digits.label_values()[0], 0);
    assert_eq!(digits.label_values()[1], 1);
}

#[test]
fn split_is_stratified_reproducible_disjoint_and_complete() {
    let digits = load_digits(digits_path()).unwrap();
    let (train_idx, test_idx) = digits.split_indices(7, 0.2).unwrap();
    assert_eq!(
        digits.split_indices(7, 0.2).unwrap(),
        (train_idx.clone(), test_idx.clone())
    );
    assert_ne!(digits.split_indices(8, 0.2).unwrap().1, test_idx);

    let train_set: HashSet<usize> = train_idx.iter().copied().collect();
    let test_set: HashSet<usize> = test_idx.iter().copied().collect();
    assert_eq!(train_set.len(), train_idx.len(), "no repeats in train");
    assert_eq!(test_set.len(), test_idx.len(), "no repeats in test");
    assert!(train_set.is_disjoint(&test_set));
    let all: HashSet<usize> = train_set.union(&test_set).copied().collect();
    assert_eq!(all, (0..1797).collect());

    // Stratified: each class sends round(count / 5) examples to the test set.
    let (train, test) = digits.split(7, 0.2).unwrap();
    for (class, (&total, &in_test)) in digits
        .class_counts()
        .iter()
        .zip(&test.class_counts())
        .enumerate()
    {
        assert_eq!(
            in_test,
            (total as f64 * 0.2).round() as usize,
            "class {class}"
        );
    }
    assert_eq!(train, digits.select(&train_idx).unwrap());
    assert_eq!(test, digits.select(&test_idx).unwrap());
}

#[test]
fn split_rejects_fractions_that_leave_a_side_empty() {
    let data = indexed(10, 2);
    for bad in [0.0, 1.0, -0.5, 1.5, f64::NAN, 0.01] {
        let err = data.split(0, bad).unwrap_err();
        assert!(matches!(err, DataError::Invalid(_)), "{bad}: {err}");
    }
}

#[test]
fn standardization_uses_training_statistics_only() {
    let digits = load_digits(digits_path()).unwrap();
    let (train, test) = digits.split(1, 0.25).unwrap();
    let scaler = Standardizer::fit(&train);
    let train_z = scaler.apply(&train).unwrap();
    let test_z = scaler.apply(&test).unwrap();
    let d = 64;
    let n = train_z.len() as f64;
    for k in 0..d {
        let col: Vec<f64> = train_z
            .feature_values()
            .iter()
            .skip(k)
            .step_by(d)
            .map(|&v| v as f64)
            .collect();
        let mean = col.iter().sum::<f64>() / n;
        let var = col.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        assert!(mean.abs() < 1e-4, "feature {k}: mean {mean}");
        if scaler.std()[k] >= 1e-6 {
            assert!((var - 1.0).abs() < 1e-3, "feature {k}: var {var}");
        } else {
            assert_eq!(var, 0.0, "constant feature {k} stays constant");
        }
    }
    // The test split is transformed with the training statistics, not its own.
    let (raw, z) = (test.row(3).unwrap(), test_z.row(3).unwrap());
    for k in 0..d {
        let expected = if scaler.std()[k] >= 1e-6 {
            (raw[k] - scaler.mean()[k]) / scaler.std()[k]
        } else {
            raw[k] - scaler.mean()[k]
        };
        assert_eq!(z[k], expected);
    }
    assert_eq!(test_z.label_values(), test.label_values());
    // A data set with another feature count is refused.
    assert!(scaler.apply(&indexed(4, 2)).is_err());
}

#[test]
fn batches_cover_an_epoch_once_and_drop_the_remainder() {
    let data = indexed(103, 3);
    let batches: Vec<_> = data.batches(10, 5, 0).unwrap().collect();
    assert_eq!(batches.len(), 10);
    let mut seen = Vec::new();
    for b in &batches {
        assert_eq!(b.features.shape().dims(), &[10, 1]);
        assert_eq!(b.labels.shape().dims(), &[10]);
        for (j, &i) in b.indices.iter().enumerate() {
            // Feature 0 is the example's index, its label index % 3.
            assert_eq!(b.features.as_f32().unwrap()[j], i as f32);
            assert_eq!(b.labels.as_i32().unwrap()[j], (i % 3) as i32);
        }
        seen.extend_from_slice(&b.indices);
    }
    let distinct: HashSet<usize> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), 100, "no example twice in an epoch");
    // The dropped 3 are the tail of the epoch's order.
    let order = data.batches(10, 5, 0).unwrap().order().to_vec();
    assert_eq!(seen, order[..100]);

    // keep_last yields the remainder as an 11th, partial batch: every example exactly once.
    let all: Vec<_> = data.batches(10, 5, 0).unwrap().keep_last().collect();
    assert_eq!(all.len(), 11);
    assert_eq!(all[10].len(), 3);
    let mut every: Vec<usize> = all.iter().flat_map(|b| b.indices.clone()).collect();
    every.sort_unstable();
    assert_eq!(every, (0..103).collect::<Vec<_>>());

    // Exact sizes, an evenly dividing epoch, a batch larger than the data set.
    assert_eq!(data.batches(10, 5, 0).unwrap().len(), 10);
    assert_eq!(data.batches(10, 5, 0).unwrap().keep_last().len(), 11);
    assert_eq!(
        indexed(100, 3).batches(10, 5, 0).unwrap().keep_last().len(),
        10
    );
    assert_eq!(data.batches(200, 5, 0).unwrap().count(), 0);
    assert_eq!(data.batches(200, 5, 0).unwrap().keep_last().count(), 1);
    assert!(data.batches(0, 5, 0).is_err());
}

#[test]
fn batch_order_is_seeded_per_epoch() {
    let data = indexed(64, 2);
    let order = |seed, epoch| data.batches(8, seed, epoch).unwrap().order().to_vec();
    assert_eq!(order(3, 0), order(3, 0), "same seed and epoch: same order");
    assert_ne!(order(3, 0), order(3, 1), "epochs shuffle differently");
    assert_ne!(order(3, 0), order(4, 0), "seeds shuffle differently");
    assert_ne!(order(3, 0), (0..64).collect::<Vec<_>>(), "shuffled at all");
}

#[test]
fn dataset_new_checks_its_invariants() {
    let x = HostTensor::from_f32([2, 1], vec![0.0, 1.0]).unwrap();
    let y = HostTensor::from_i32([2], vec![0, 2]).unwrap();
    let err = Dataset::new(x.clone(), y, 2).unwrap_err().to_string();
    assert!(err.contains("label 2 of example 1"), "{err}");
    let y3 = HostTensor::from_i32([3], vec![0, 1, 0]).unwrap();
    assert!(Dataset::new(x.clone(), y3, 2).is_err());
    let yf = HostTensor::from_f32([2], vec![0.0, 1.0]).unwrap();
    assert!(Dataset::new(x, yf, 2).is_err());
    assert!(indexed(4, 2).select(&[0, 4]).is_err());
}

#[test]
fn a_small_valid_file_loads_exactly() {
    let dir = TempDir::new("valid");
    let path = dir.path("ok.csv.gz");
    write_gz(&path, &format!("{}\r\n\n{}\n", row(16, 9), row(4, 0)));
    let d = load_digits(&path).unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d.label_values(), &[9, 0]);
    assert!(d.row(0).unwrap().iter().all(|&v| v == 1.0));
    assert!(d.row(1).unwrap().iter().all(|&v| v == 0.25));
}

#[test]
fn malformed_files_give_errors_naming_file_and_line() {
    let dir = TempDir::new("errors");
    let check = |name: &str, text: &str, expected: &[&str]| {
        let path = dir.path(name);
        write_gz(&path, text);
        let err = load_digits(&path).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::Parse { .. }), "{name}: {msg}");
        assert!(msg.contains(name), "{name}: {msg}");
        for piece in expected {
            assert!(msg.contains(piece), "{name}: {msg} lacks {piece}");
        }
    };
    let short = row(1, 1).rsplit_once(',').unwrap().0.to_string();
    check(
        "fields.csv.gz",
        &format!("{}\n{}\n{short}\n", row(0, 0), row(1, 1)),
        &[":3:", "expected 65", "found 64"],
    );
    check(
        "label.csv.gz",
        &format!("{}\n{}\n", row(0, 0), row(0, 10)),
        &[":2:", "label", "10", "0..=9"],
    );
    check(
        "pixel.csv.gz",
        &format!("{}\n", row(17, 3)),
        &[":1:", "pixel 0", "17", "0..=16"],
    );
    check(
        "integer.csv.gz",
        &format!("{}\n{}\n", row(0, 0), row(0, 0).replacen("0", "x", 1)),
        &[":2:", "field 1 is not an integer", "\"x\""],
    );
    check(
        "negative.csv.gz",
        &format!("{}\n", row(-1, 3)),
        &[":1:", "-1"],
    );
}

#[test]
fn unreadable_files_give_errors_naming_the_file() {
    let dir = TempDir::new("io");
    let missing = dir.path("missing.csv.gz");
    let err = load_digits(&missing).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }), "{err}");
    assert!(err.to_string().contains("missing.csv.gz"), "{err}");

    let plain = dir.path("plain.csv.gz");
    std::fs::write(&plain, row(0, 0)).unwrap();
    let err = load_digits(&plain).unwrap_err();
    assert!(matches!(err, DataError::Gzip { .. }), "{err}");
    assert!(err.to_string().contains("plain.csv.gz"), "{err}");

    // A gzip stream cut in half.
    let cut = dir.path("cut.csv.gz");
    write_gz(
        &cut,
        &(0..50)
            .map(|i| row(i % 17, i % 10) + "\n")
            .collect::<String>(),
    );
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_digits(&cut).unwrap_err();
    assert!(matches!(err, DataError::Gzip { .. }), "{err}");

    let empty = dir.path("empty.csv.gz");
    write_gz(&empty, "\n\n");
    let err = load_digits(&empty).unwrap_err();
    assert!(matches!(err, DataError::Empty { .. }), "{err}");
}
