//! Helpers shared by the integration tests.

#![allow(dead_code)]

use adjoint_ir::DType;
use adjoint_nn::data::{digits_path, load_digits, Dataset, Standardizer};
use adjoint_nn::layers::{Activation, Mlp};
use adjoint_nn::loss::cross_entropy;
use adjoint_nn::trainer::{Forward, Pass};
use adjoint_nn::Params;
use std::path::PathBuf;

/// The bundled digits split 80/20 with `seed`, standardized by the training split's
/// statistics: (train, test).
pub fn digits(seed: u64) -> (Dataset, Dataset) {
    let digits = load_digits(digits_path()).unwrap();
    let (train, test) = digits.split(seed, 0.2).unwrap();
    let scaler = Standardizer::fit(&train);
    (scaler.apply(&train).unwrap(), scaler.apply(&test).unwrap())
}

/// A 64-64-10 ReLU MLP on the digits with a cross-entropy loss.
pub fn digits_mlp<'b>(p: &mut Params<'b>, pass: &Pass) -> Forward<'b> {
    let b = p.builder();
    let x = b.input("x", DType::F32, [pass.batch_size, 64]);
    let y = b.input("y", DType::I32, [pass.batch_size]);
    let logits = Mlp::new(p, "mlp", 64, 64, 10, Activation::Relu).forward(x);
    Forward {
        loss: cross_entropy(logits, y, 0.0),
        logits: Some(logits),
    }
}

/// A fresh, empty directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new directory whose name contains `name`, the process id and the time, so parallel
    /// tests never share one.
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "adjoint-nn-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// The path of `file` inside the directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    /// The names of the files in the directory, sorted.
    pub fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
