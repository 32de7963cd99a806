//! [`Dataset`]: a labelled classification data set held as host tensors.

use super::DataError;
use adjoint_ir::{DType, HostTensor};

/// A labelled classification data set: `n` examples of `d` features each, with integer class
/// labels in `0..classes`.
///
/// The features are an `f32[n, d]` tensor and the labels an `i32[n]` tensor — exactly what a
/// compiled training step is fed. The invariants (ranks, dtypes, matching `n`, labels in range)
/// are checked once by [`Dataset::new`] and hold for every value of this type.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    features: HostTensor,
    labels: HostTensor,
    classes: usize,
}

impl Dataset {
    /// A data set from an `f32[n, d]` feature tensor, an `i32[n]` label tensor and the number of
    /// classes; an error if the dtypes or shapes do not fit together or a label is outside
    /// `0..classes`.
    pub fn new(
        features: HostTensor,
        labels: HostTensor,
        classes: usize,
    ) -> Result<Dataset, DataError> {
        if features.dtype() != DType::F32 || features.shape().rank() != 2 {
            return Err(DataError::Invalid(format!(
                "features must be an f32 tensor of rank 2 [examples, features], got {}",
                features.ty()
            )));
        }
        if labels.dtype() != DType::I32 || labels.shape().rank() != 1 {
            return Err(DataError::Invalid(format!(
                "labels must be an i32 tensor of rank 1 [examples], got {}",
                labels.ty()
            )));
        }
        let n = features.shape().dim(0);
        if labels.shape().dim(0) != n {
            return Err(DataError::Invalid(format!(
                "features {} and labels {} disagree on the number of examples",
                features.ty(),
                labels.ty()
            )));
        }
        if classes == 0 {
            return Err(DataError::Invalid(
                "a data set needs at least one class".into(),
            ));
        }
        let label_values = labels.as_i32().expect("dtype checked above");
        if let Some((row, &label)) = label_values
            .iter()
            .enumerate()
            .find(|&(_, &l)| l < 0 || l as usize >= classes)
        {
            return Err(DataError::Invalid(format!(
                "label {label} of example {row} is outside 0..{classes}"
            )));
        }
        Ok(Dataset {
            features,
            labels,
            classes,
        })
    }

    /// The features, `f32[n, d]`.
    pub fn features(&self) -> &HostTensor {
        &self.features
    }

    /// The labels, `i32[n]`.
    pub fn labels(&self) -> &HostTensor {
        &self.labels
    }

    /// The feature values, row-major (`n * d` of them).
    pub fn feature_values(&self) -> &[f32] {
        self.features
            .as_f32()
            .expect("Dataset invariant: f32 features")
    }

    /// The label values (`n` of them).
    pub fn label_values(&self) -> &[i32] {
        self.labels.as_i32().expect("Dataset invariant: i32 labels")
    }

    /// The features of example `row` (`d` values); `None` past the end.
    pub fn row(&self, row: usize) -> Option<&[f32]> {
        let d = self.num_features();
        self.feature_values().get(row * d..(row + 1) * d)
    }

    /// Number of classes; every label is in `0..classes`.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Number of examples `n`.
    pub fn len(&self) -> usize {
        self.labels.shape().dim(0)
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of features per example `d`.
    pub fn num_features(&self) -> usize {
        self.features.shape().dim(1)
    }

    /// How many examples each class has, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &label in self.label_values() {
            counts[label as usize] += 1;
        }
        counts
    }

    /// A new data set of the examples at `indices`, in that order (repeats allowed); an error if
    /// an index is out of range.
    pub fn select(&self, indices: &[usize]) -> Result<Dataset, DataError> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(DataError::Invalid(format!(
                "example index {bad} is out of range for a data set of {} examples",
                self.len()
            )));
        }
        Ok(self.gather(indices))
    }

    /// [`Dataset::select`] for indices known to be in range.
    pub(crate) fn gather(&self, indices: &[usize]) -> Dataset {
        let (features, labels) = self.gather_tensors(indices);
        Dataset {
            features,
            labels,
            classes: self.classes,
        }
    }

    /// The feature and label tensors of the examples at `indices` (all in range).
    pub(crate) fn gather_tensors(&self, indices: &[usize]) -> (HostTensor, HostTensor) {
        let d = self.num_features();
        let x = self.feature_values();
        let y = self.label_values();
        let mut features = Vec::with_capacity(indices.len() * d);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            features.extend_from_slice(&x[i * d..(i + 1) * d]);
            labels.push(y[i]);
        }
        let features = HostTensor::from_f32([indices.len(), d], features)
            .expect("element count matches the shape");
        let labels =
            HostTensor::from_i32([indices.len()], labels).expect("element count matches the shape");
        (features, labels)
    }

    /// The same examples with every feature value replaced by `f(feature_index, value)`.
    pub(crate) fn map_features(&self, f: impl Fn(usize, f32) -> f32) -> Dataset {
        let d = self.num_features();
        let values = self
            .feature_values()
            .iter()
            .enumerate()
            .map(|(k, &v)| f(k % d, v))
            .collect();
        Dataset {
            features: HostTensor::from_f32([self.len(), d], values)
                .expect("element count unchanged"),
            labels: self.labels.clone(),
            classes: self.classes,
        }
    }
}
