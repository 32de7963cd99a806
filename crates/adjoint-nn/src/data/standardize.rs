//! Per-feature standardization fitted on a training set.

use super::{DataError, Dataset};

/// Per-feature mean and standard deviation, fitted on a training set and applied unchanged to
/// any other split, so no statistic of the test set leaks into training.
///
/// Features that are constant on the training set (a standard deviation below `1e-6`; the
/// digits have several always-blank corner pixels) are only centered, not divided.
///
/// ```
/// use adjoint_ir::HostTensor;
/// use adjoint_nn::data::{Dataset, Standardizer};
///
/// let x = HostTensor::from_f32([2, 2], vec![1.0, 5.0, 3.0, 5.0]).unwrap();
/// let y = HostTensor::from_i32([2], vec![0, 1]).unwrap();
/// let train = Dataset::new(x, y, 2).unwrap();
/// let s = Standardizer::fit(&train);
/// assert_eq!(s.mean(), &[2.0, 5.0]);
/// assert_eq!(s.std(), &[1.0, 0.0]);
/// let z = s.apply(&train).unwrap();
/// assert_eq!(z.feature_values(), &[-1.0, 0.0, 1.0, 0.0]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer {
    mean: Vec<f32>,
    std: Vec<f32>,
}

/// Below this standard deviation a feature counts as constant and is only centered.
const MIN_STD: f64 = 1e-6;

impl Standardizer {
    /// The per-feature mean and population standard deviation of `train` (computed in `f64`).
    /// For f32 features only: panics on the integer inputs of a [`Dataset::sequences`].
    pub fn fit(train: &Dataset) -> Standardizer {
        let d = train.num_features();
        let n = train.len().max(1) as f64;
        let mut sum = vec![0.0f64; d];
        for row in train.feature_values().chunks_exact(d.max(1)) {
            for (s, &v) in sum.iter_mut().zip(row) {
                *s += v as f64;
            }
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let mut sq = vec![0.0f64; d];
        for row in train.feature_values().chunks_exact(d.max(1)) {
            for ((s, &v), m) in sq.iter_mut().zip(row).zip(&mean) {
                *s += (v as f64 - m) * (v as f64 - m);
            }
        }
        Standardizer {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std: sq.iter().map(|s| (s / n).sqrt() as f32).collect(),
        }
    }

    /// The fitted per-feature means.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// The fitted per-feature standard deviations (0 for constant features).
    pub fn std(&self) -> &[f32] {
        &self.std
    }

    /// `data` with every feature replaced by `(x - mean) / std` (or `x - mean` for a constant
    /// feature); an error if `data` has a different number of features than the fitted set.
    pub fn apply(&self, data: &Dataset) -> Result<Dataset, DataError> {
        if data.features().dtype() != adjoint_ir::DType::F32 {
            return Err(DataError::Invalid(format!(
                "a standardizer scales f32 features, but the data set's are {}",
                data.features().ty()
            )));
        }
        if data.num_features() != self.mean.len() {
            return Err(DataError::Invalid(format!(
                "standardizer was fitted on {} features but the data set has {}",
                self.mean.len(),
                data.num_features()
            )));
        }
        Ok(data.map_features(|k, v| {
            let centered = v - self.mean[k];
            if (self.std[k] as f64) < MIN_STD {
                centered
            } else {
                centered / self.std[k]
            }
        }))
    }
}
