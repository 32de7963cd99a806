//! [`Dataset`]: a labelled classification data set held as host tensors.

use super::DataError;
use adjoint_ir::{DType, HostData, HostTensor};

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

    /// A data set of arbitrary inputs and targets: `inputs` of any rank `[n, ...]`, f32 or
    /// i32 (token ids, images, sequences), and i32 `targets` `[n, ...]` in `0..classes` (one
    /// label per example, or one per position of a sequence). The [`Trainer`] feeds them to
    /// the model's `x` and `y` inputs batch by batch, whatever their shapes.
    ///
    /// [`Trainer`]: crate::trainer::Trainer
    ///
    /// ```
    /// use adjoint_ir::HostTensor;
    /// use adjoint_nn::data::Dataset;
    ///
    /// // Three sequences of 4 tokens; the target of each position is the next token.
    /// let tokens = HostTensor::from_i32([3, 4], vec![1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6]).unwrap();
    /// let next = HostTensor::from_i32([3, 4], vec![2, 3, 4, 5, 3, 4, 5, 6, 4, 5, 6, 7]).unwrap();
    /// let data = Dataset::sequences(tokens, next, 8).unwrap();
    /// let batch = data.batches(2, 0, 0).unwrap().next().unwrap();
    /// assert_eq!(batch.features.shape().dims(), &[2, 4]);
    /// assert_eq!(batch.labels.shape().dims(), &[2, 4]);
    /// ```
    pub fn sequences(
        inputs: HostTensor,
        targets: HostTensor,
        classes: usize,
    ) -> Result<Dataset, DataError> {
        if !matches!(inputs.dtype(), DType::F32 | DType::I32) || inputs.shape().rank() == 0 {
            return Err(DataError::Invalid(format!(
                "inputs must be an f32 or i32 tensor [examples, ...], got {}",
                inputs.ty()
            )));
        }
        if targets.dtype() != DType::I32 || targets.shape().rank() == 0 {
            return Err(DataError::Invalid(format!(
                "targets must be an i32 tensor [examples, ...], got {}",
                targets.ty()
            )));
        }
        if targets.shape().dim(0) != inputs.shape().dim(0) {
            return Err(DataError::Invalid(format!(
                "inputs {} and targets {} disagree on the number of examples",
                inputs.ty(),
                targets.ty()
            )));
        }
        if classes == 0 {
            return Err(DataError::Invalid(
                "a data set needs at least one class".into(),
            ));
        }
        let per_row = targets.numel() / targets.shape().dim(0).max(1);
        let values = targets.as_i32().expect("dtype checked above");
        if let Some((k, &t)) = values
            .iter()
            .enumerate()
            .find(|&(_, &t)| t < 0 || t as usize >= classes)
        {
            return Err(DataError::Invalid(format!(
                "target {t} of example {} is outside 0..{classes}",
                k / per_row.max(1)
            )));
        }
        Ok(Dataset {
            features: inputs,
            labels: targets,
            classes,
        })
    }

    /// The features, `f32[n, d]`.
    pub fn features(&self) -> &HostTensor {
        &self.features
    }

    /// The labels, `i32[n]` (`i32[n, ...]` for [`Dataset::sequences`]).
    pub fn labels(&self) -> &HostTensor {
        &self.labels
    }

    /// The feature values, row-major (`n * d` of them).
    ///
    /// Panics for a [`Dataset::sequences`] of i32 inputs: read [`Dataset::features`] instead.
    pub fn feature_values(&self) -> &[f32] {
        self.features
            .as_f32()
            .expect("feature_values: this data set's inputs are not f32; use features()")
    }

    /// The label values (`n` of them; every target of every example for
    /// [`Dataset::sequences`]).
    pub fn label_values(&self) -> &[i32] {
        self.labels.as_i32().expect("Dataset invariant: i32 labels")
    }

    /// The features of example `row` (`d` values); `None` past the end or when the inputs are
    /// not f32.
    pub fn row(&self, row: usize) -> Option<&[f32]> {
        let d = self.num_features();
        self.features.as_f32()?.get(row * d..(row + 1) * d)
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

    /// Number of features per example `d` (the product of the inputs' trailing axes).
    pub fn num_features(&self) -> usize {
        self.features.shape().dims()[1..].iter().product()
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
        (
            gather_rows(&self.features, indices),
            gather_rows(&self.labels, indices),
        )
    }

    pub(crate) fn map_features(&self, f: impl Fn(usize, f32) -> f32) -> Dataset {
        let d = self.num_features();
        let values = self
            .feature_values()
            .iter()
            .enumerate()
            .map(|(k, &v)| f(k % d, v))
            .collect();
        Dataset {
            features: HostTensor::from_f32(self.features.shape().clone(), values)
                .expect("element count unchanged"),
            labels: self.labels.clone(),
            classes: self.classes,
        }
    }
}

/// The rows `indices` (along the leading axis) of `t`, in that order.
pub(crate) fn gather_rows(t: &HostTensor, indices: &[usize]) -> HostTensor {
    fn pick<T: Copy>(v: &[T], per_row: usize, indices: &[usize]) -> Vec<T> {
        let mut out = Vec::with_capacity(indices.len() * per_row);
        for &i in indices {
            out.extend_from_slice(&v[i * per_row..(i + 1) * per_row]);
        }
        out
    }
    let dims = t.shape().dims();
    let per_row = dims[1..].iter().product::<usize>();
    let data = match t.data() {
        HostData::F32(v) => HostData::F32(pick(v, per_row, indices)),
        HostData::F64(v) => HostData::F64(pick(v, per_row, indices)),
        HostData::I32(v) => HostData::I32(pick(v, per_row, indices)),
        HostData::Bool(v) => HostData::Bool(pick(v, per_row, indices)),
        HostData::Bf16(v) => HostData::Bf16(pick(v, per_row, indices)),
        HostData::F16(v) => HostData::F16(pick(v, per_row, indices)),
    };
    let mut shape = dims.to_vec();
    shape[0] = indices.len();
    HostTensor::new(shape, data).expect("element count matches the shape")
}
