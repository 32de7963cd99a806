//! Data sets for training: the [`Dataset`] type, the bundled digits loader, seeded stratified
//! splits, per-feature standardization and seeded mini-batches.
//!
//! ```
//! use adjoint_nn::data::{digits_path, load_digits, Standardizer};
//!
//! let digits = load_digits(digits_path()).unwrap();
//! let (train, test) = digits.split(0, 0.25).unwrap();
//! let scaler = Standardizer::fit(&train); // statistics of the training split only
//! let (train, test) = (scaler.apply(&train).unwrap(), scaler.apply(&test).unwrap());
//! for batch in train.batches(64, 0, 0).unwrap() {
//!     assert_eq!(batch.features.shape().dims(), &[64, 64]);
//!     assert_eq!(batch.labels.shape().dims(), &[64]);
//! }
//! # let _ = test;
//! ```

mod batches;
mod dataset;
mod digits;
mod error;
mod split;
mod standardize;

pub use batches::{Batch, Batches};
pub(crate) use dataset::gather_rows;
pub use dataset::Dataset;
pub use digits::{digits_path, load_digits, DIGITS_CLASSES, DIGITS_FEATURES, DIGITS_MAX_PIXEL};
pub use error::DataError;
pub use standardize::Standardizer;
