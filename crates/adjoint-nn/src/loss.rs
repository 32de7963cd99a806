//! Losses built from primitives, and accuracy computed on the host.
//!
//! Every loss is a mean over the examples, so it is a scalar the training step differentiates.
//!
//! **Accuracy is computed on the host** ([`accuracy`]): argmax is not a primitive, and the
//! logits of one batch are a few kilobytes, so the trainer reads them back as a step output and
//! compares their row-wise argmax with the labels. That keeps the graph free of comparison
//! chains that would only serve reporting.

use adjoint_ir::{DType, HostTensor, Tensor};

/// Mean squared error over all elements: `mean((pred - target)²)`.
#[track_caller]
pub fn mse<'b>(pred: Tensor<'b>, target: Tensor<'b>) -> Tensor<'b> {
    pred.mse(target)
}

/// Mean softmax cross-entropy of `logits` `[..., C]` against integer `labels` `[...]` (i32),
/// with label smoothing `smoothing` in `[0, 1)`.
///
/// With smoothing ε the target distribution is `(1-ε)·onehot(y) + ε/C`, so each example's loss
/// is `(1-ε)·(lse(z) - z_y) + ε·(lse(z) - mean_c z_c)`; ε = 0 is ordinary cross-entropy.
/// Leading axes are flattened into the batch (sequence models: `[B, T, C]` with `[B, T]`).
///
/// ```
/// use adjoint_ir::{Builder, DType, Feeds, HostTensor};
/// use adjoint_nn::loss::cross_entropy;
///
/// let b = Builder::new("ce");
/// let z = b.input("z", DType::F64, [1, 2]);
/// let y = b.input("y", DType::I32, [1]);
/// b.output("loss", cross_entropy(z, y, 0.0));
/// let mut feeds = Feeds::new();
/// feeds.insert("z".into(), HostTensor::from_f64([1, 2], vec![0.0, 0.0]).unwrap());
/// feeds.insert("y".into(), HostTensor::from_i32([1], vec![1]).unwrap());
/// let out = adjoint_interp::run(&b.finish(), &feeds).unwrap();
/// let loss = out.output("loss").unwrap().as_f64().unwrap()[0];
/// assert!((loss - 2f64.ln()).abs() < 1e-12);
/// ```
#[track_caller]
pub fn cross_entropy<'b>(logits: Tensor<'b>, labels: Tensor<'b>, smoothing: f64) -> Tensor<'b> {
    let shape = logits.shape();
    assert!(
        shape.rank() >= 1 && labels.shape().dims() == &shape.dims()[..shape.rank() - 1],
        "cross_entropy: labels {} must be the logits' shape {} without its last axis",
        labels.ty(),
        logits.ty()
    );
    assert!(
        (0.0..1.0).contains(&smoothing),
        "cross_entropy: label smoothing must be in [0, 1), got {smoothing}"
    );
    let classes = shape.dims()[shape.rank() - 1];
    let n = labels.shape().numel();
    let z = logits.reshape([n, classes]);
    let y = labels.reshape([n]);
    if smoothing == 0.0 {
        return z.cross_entropy(y);
    }
    let log_p = z.log_softmax(1);
    let class_ids = z.builder().iota(DType::I32, [n, classes], 1);
    let one_hot = class_ids.eq(y.unsqueeze(1)).cast(z.dtype());
    let target = one_hot * (1.0 - smoothing) + smoothing / classes as f64;
    -((target * log_p).sum(&[1]).mean(&[0]))
}

/// Mean binary cross-entropy of `logits` against targets in `[0, 1]` of the same shape, in
/// the stable form `max(x, 0) - x·y + log(1 + e^-|x|)` (no overflow for any logit).
#[track_caller]
pub fn binary_cross_entropy_with_logits<'b>(logits: Tensor<'b>, targets: Tensor<'b>) -> Tensor<'b> {
    let x = logits;
    let y = targets.cast(x.dtype());
    let per = x.relu() - x * y + ((-x.abs()).exp() + 1.0).log();
    let axes: Vec<isize> = (0..per.rank() as isize).collect();
    per.mean(&axes)
}

/// The index of the largest value of each row of `values` (`[..., C]`, any float dtype); ties
/// go to the first index, NaN is never the largest. `None` for a non-float tensor or a rank-0
/// one.
pub fn argmax_rows(values: &HostTensor) -> Option<Vec<usize>> {
    if !values.dtype().is_float() || values.shape().rank() == 0 {
        return None;
    }
    let classes = *values.shape().dims().last()?;
    if classes == 0 {
        return None;
    }
    let v = values.to_f64_vec();
    Some(
        v.chunks(classes)
            .map(|row| {
                let mut best = 0;
                for (i, &x) in row.iter().enumerate() {
                    if x > row[best] || row[best].is_nan() && !x.is_nan() {
                        best = i;
                    }
                }
                best
            })
            .collect(),
    )
}

/// The fraction of predictions that match `labels`, computed on the host.
///
/// - Multi-class: `logits` is `[..., C]` and `labels` holds one integer class per row
///   (`labels.numel() · C == logits.numel()`); the prediction is the row's argmax.
/// - Binary: `logits` and `labels` have the same number of elements; the prediction is
///   `logit > 0` and the label counts as 1 when it is > 0.5.
///
/// `None` when the shapes fit neither case or there are no examples.
///
/// ```
/// use adjoint_ir::HostTensor;
/// use adjoint_nn::loss::accuracy;
///
/// let logits = HostTensor::from_f32([3, 2], vec![0.1, 0.9, 2.0, -1.0, 0.0, 0.5]).unwrap();
/// let labels = HostTensor::from_i32([3], vec![1, 0, 0]).unwrap();
/// assert_eq!(accuracy(&logits, &labels), Some(2.0 / 3.0));
/// ```
pub fn accuracy(logits: &HostTensor, labels: &HostTensor) -> Option<f64> {
    let y = labels.to_f64_vec();
    if y.is_empty() {
        return None;
    }
    let correct = if logits.numel() == y.len() {
        logits
            .to_f64_vec()
            .iter()
            .zip(&y)
            .filter(|&(&z, &t)| (z > 0.0) == (t > 0.5))
            .count()
    } else if logits.numel().is_multiple_of(y.len())
        && logits.shape().dims().last() == Some(&(logits.numel() / y.len()))
    {
        argmax_rows(logits)?
            .iter()
            .zip(&y)
            .filter(|&(&p, &t)| p as f64 == t)
            .count()
    } else {
        return None;
    };
    Some(correct as f64 / y.len() as f64)
}
