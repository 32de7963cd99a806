//! Losses built from primitives, and accuracy computed on the host.
//!
//! By default every loss is a mean over the examples, a scalar the training step differentiates;
//! the `_with` variants take PyTorch's other options ([`Reduction`], `ignore_index`, class
//! weights, `pos_weight`).
//!
//! **Accuracy is computed on the host** ([`accuracy`]): argmax is not a primitive, and the
//! logits of one batch are a few kilobytes, so the trainer reads them back as a step output and
//! compares their row-wise argmax with the labels. That keeps the graph free of comparison
//! chains that would only serve reporting.

use adjoint_ir::{DType, HostTensor, Tensor};

/// How a loss reduces its per-example values, PyTorch's `reduction`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The mean (for a weighted cross-entropy, the weighted mean), a scalar.
    #[default]
    Mean,
    /// The sum, a scalar.
    Sum,
    /// No reduction: one value per example (per element for BCE and MSE).
    None,
}

/// Reduces `per` (one value per example) by `reduction`; `Mean` divides by `count`, or by the
/// number of elements when `count` is `None`.
fn reduce<'b>(per: Tensor<'b>, reduction: Reduction, count: Option<Tensor<'b>>) -> Tensor<'b> {
    let axes: Vec<isize> = (0..per.rank() as isize).collect();
    match (reduction, count) {
        (Reduction::None, _) => per,
        (Reduction::Sum, _) => per.sum(&axes),
        (Reduction::Mean, None) => per.mean(&axes),
        (Reduction::Mean, Some(count)) => per.sum(&axes) / count,
    }
}

/// Mean squared error reduced by `reduction`.
#[track_caller]
pub fn mse_with<'b>(pred: Tensor<'b>, target: Tensor<'b>, reduction: Reduction) -> Tensor<'b> {
    reduce((pred - target).square(), reduction, None)
}

/// The options of [`cross_entropy_with`], PyTorch's `label_smoothing`, `ignore_index`,
/// `weight` and `reduction`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CrossEntropyOptions<'b> {
    /// Label smoothing ε in `[0, 1)`.
    pub smoothing: f64,
    /// A label value whose examples count for nothing (PyTorch's default is -100; `None` here,
    /// so that every label counts unless asked).
    pub ignore_index: Option<i32>,
    /// Class weights `[C]`.
    pub weights: Option<Tensor<'b>>,
    /// The reduction.
    pub reduction: Reduction,
}

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

/// Softmax cross-entropy of `logits` `[..., C]` against integer `labels` `[...]` (i32) with
/// every PyTorch option, following PyTorch's formula: with class weights `w` (ones when not
/// given) and ε the smoothing, example `i` with label `y` contributes
/// `(1-ε)·w_y·(lse(z) - z_y) + (ε/C)·Σ_c w_c·(lse(z) - z_c)`, or 0 when `y` is the ignored
/// index; `Mean` divides the sum by `Σ_i w_{y_i}` over the examples not ignored (NaN when all
/// are ignored, as PyTorch), `None` returns the per-example values of shape `[...]`.
///
/// ```
/// use adjoint_ir::{Builder, DType, Feeds, HostTensor};
/// use adjoint_nn::loss::{cross_entropy_with, CrossEntropyOptions};
///
/// let b = Builder::new("ce");
/// let z = b.input("z", DType::F64, [2, 2]);
/// let y = b.input("y", DType::I32, [2]);
/// let options = CrossEntropyOptions { ignore_index: Some(-100), ..Default::default() };
/// b.output("loss", cross_entropy_with(z, y, options));
/// let mut feeds = Feeds::new();
/// feeds.insert("z".into(), HostTensor::from_f64([2, 2], vec![0.0, 0.0, 5.0, 1.0]).unwrap());
/// feeds.insert("y".into(), HostTensor::from_i32([2], vec![1, -100]).unwrap());
/// let out = adjoint_interp::run(&b.finish(), &feeds).unwrap();
/// let loss = out.output("loss").unwrap().as_f64().unwrap()[0];
/// assert!((loss - 2f64.ln()).abs() < 1e-12); // the ignored example does not count
/// ```
#[track_caller]
pub fn cross_entropy_with<'b>(
    logits: Tensor<'b>,
    labels: Tensor<'b>,
    options: CrossEntropyOptions<'b>,
) -> Tensor<'b> {
    let shape = logits.shape();
    let plain = options.ignore_index.is_none()
        && options.weights.is_none()
        && options.reduction == Reduction::Mean;
    if plain {
        return cross_entropy(logits, labels, options.smoothing);
    }
    assert!(
        shape.rank() >= 1 && labels.shape().dims() == &shape.dims()[..shape.rank() - 1],
        "cross_entropy: labels {} must be the logits' shape {} without its last axis",
        labels.ty(),
        logits.ty()
    );
    let eps = options.smoothing;
    assert!(
        (0.0..1.0).contains(&eps),
        "cross_entropy: label smoothing must be in [0, 1), got {eps}"
    );
    let classes = shape.dims()[shape.rank() - 1];
    if let Some(w) = options.weights {
        assert!(
            w.shape().dims() == [classes] && w.dtype() == logits.dtype(),
            "cross_entropy: class weights must be {}[{classes}], got {}",
            logits.dtype(),
            w.ty()
        );
    }
    let n = labels.shape().numel();
    let z = logits.reshape([n, classes]);
    let y = labels.reshape([n]);
    let b = z.builder();
    let zero = z.scalar_like(0.0);
    let neg_log_p = -z.log_softmax(1);
    let one_hot = b.iota(DType::I32, [n, classes], 1).eq(y.unsqueeze(1));
    let weights = match options.weights {
        Some(w) => w.reshape([1, classes]).broadcast_to([n, classes]),
        None => z.scalar_like(1.0).broadcast_to([n, classes]),
    };
    // w_y and w_y·(lse - z_y), picked by select (a -inf logit elsewhere stays harmless).
    let w_y = one_hot.select(weights, zero).sum(&[1]);
    let mut per = one_hot.select(weights * neg_log_p, zero).sum(&[1]);
    if eps > 0.0 {
        let smooth = (weights * neg_log_p).sum(&[1]);
        per = per * (1.0 - eps) + smooth * (eps / classes as f64);
    }
    let (per, w_y) = match options.ignore_index {
        Some(ignored) => {
            let counted = y.ne(b.constant(DType::I32, [], &[ignored as f64]));
            (counted.select(per, zero), counted.select(w_y, zero))
        }
        None => (per, w_y),
    };
    match options.reduction {
        Reduction::None => per.reshape(labels.shape()),
        r => reduce(per, r, Some(w_y.sum(&[0]))),
    }
}

/// The options of [`binary_cross_entropy_with_logits_with`], PyTorch's `pos_weight` and
/// `reduction`.
#[derive(Clone, Copy, Debug, Default)]
pub struct BceOptions<'b> {
    /// The weight of the positive term, broadcast against the logits (one per class `[C]`).
    pub pos_weight: Option<Tensor<'b>>,
    /// The reduction.
    pub reduction: Reduction,
}

/// Binary cross-entropy with logits and PyTorch's options: with `p` the positive weight,
/// `(1 - y)·x + (1 + (p - 1)·y)·softplus(-x)` per element, which is
/// `-[p·y·log σ(x) + (1 - y)·log(1 - σ(x))]`, reduced by `reduction`.
#[track_caller]
pub fn binary_cross_entropy_with_logits_with<'b>(
    logits: Tensor<'b>,
    targets: Tensor<'b>,
    options: BceOptions<'b>,
) -> Tensor<'b> {
    let x = logits;
    let y = targets.cast(x.dtype());
    let per = match options.pos_weight {
        None => x.softplus() - x * y,
        Some(p) => (1.0 - y) * x + ((p - 1.0) * y + 1.0) * (-x).softplus(),
    };
    reduce(per, options.reduction, None)
}

/// Mean binary cross-entropy of `logits` against targets in `[0, 1]` of the same shape, in
/// the stable form `softplus(x) - x·y` (softplus computed as `max(x, 0) + log1p(e^-|x|)`): no
/// overflow for any finite logit, and a finite gradient `(sigmoid(x) - y) / n`.
#[track_caller]
pub fn binary_cross_entropy_with_logits<'b>(logits: Tensor<'b>, targets: Tensor<'b>) -> Tensor<'b> {
    let x = logits;
    let y = targets.cast(x.dtype());
    let per = x.softplus() - x * y;
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
