//! # adjoint-nn
//!
//! Adjoint's training library. This crate currently provides the input/output foundations of
//! training:
//!
//! - [`data`]: the [`Dataset`](data::Dataset) type, the bundled digits loader, seeded stratified
//!   train/test splits, standardization and seeded mini-batches;
//! - [`checkpoint`]: parameters and optimizer state in the safetensors format, written
//!   atomically and validated on load;
//! - [`weights`]: plain safetensors files (a PyTorch `state_dict`, …) loaded into parameters
//!   by name and parameters exported as one;
//! - [`chart`]: loss curves as SVG line charts (feature `chart`);
//! - [`progress`]: a progress bar for the training loop that falls back to plain log lines when
//!   stderr is not a terminal (the bar needs the feature `progress-bar`).
//!
//! ## Features
//!
//! All on by default; a program that needs none of them builds without plotters, indicatif
//! and flate2 (`default-features = false`):
//!
//! - `chart`: the [`chart`] module (plotters);
//! - `progress-bar`: an animated bar on a terminal (indicatif); without it, progress is shown
//!   as plain lines;
//! - `gzip`: reading gzip files, such as the bundled digits (flate2).
//!
//! ```
//! use adjoint_nn::data::{digits_path, load_digits};
//!
//! let digits = load_digits(digits_path()).unwrap();
//! let (train, test) = digits.split(42, 0.2).unwrap();
//! let batch = train.batches(32, 42, 0).unwrap().next().unwrap();
//! assert_eq!(batch.features.shape().dims(), &[32, 64]);
//! # let _ = test;
//! ```

#![warn(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "chart")]
pub mod chart;
pub mod checkpoint;
pub mod data;
pub mod init;
pub mod layers;
pub mod loss;
#[cfg(feature = "mpi")]
pub mod mpi_collective;
pub mod params;
pub mod progress;
pub mod schedule;
pub mod torch_map;
pub mod trainer;
pub mod weights;

pub use init::Initializer;
#[cfg(feature = "mpi")]
pub use mpi_collective::MpiCollective;
pub use params::{Params, RandomInput, RandomKind};
pub use schedule::Schedule;
pub use trainer::{Forward, Mode, Pass, TrainError, Trainer, TrainerOptions};
