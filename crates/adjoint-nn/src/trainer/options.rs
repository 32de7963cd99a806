//! What a [`Trainer`](super::Trainer) is told: its options, and the model function's interface
//! ([`Pass`] in, [`Forward`] out).

use adjoint_autodiff::{LossScaling, MixedPrecision, Precision};
use adjoint_ir::Tensor;
use std::path::PathBuf;

/// The name of the input the trainer feeds each batch's features to.
pub const FEATURES_INPUT: &str = "x";
/// The name of the input the trainer feeds each batch's labels to.
pub const LABELS_INPUT: &str = "y";
/// The name of the scalar learning-rate input of the training step.
pub const LR_INPUT: &str = "lr";

/// Whether a graph is built for training or for evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The training step: dropout active, batch norm on batch statistics (and updating its
    /// running statistics).
    Train,
    /// Evaluation: dropout off, batch norm on its running statistics, no updates.
    Eval,
}

/// What the model function is building: the mode and the batch size of the graph.
///
/// The model function declares the inputs [`FEATURES_INPUT`] (`x`) and, when its loss needs
/// them, [`LABELS_INPUT`] (`y`), with `batch_size` as their leading axis. The trainer feeds
/// `x` the batch's features (`f32[batch, d]`, or any `[batch, ...]` of a
/// [`Dataset::sequences`](crate::data::Dataset::sequences)) and `y` its targets (`i32[batch]`,
/// or `i32[batch, ...]` — one per position of a sequence), each **cast to the input's declared
/// dtype and reshaped to its declared shape** (which must have the same number of elements):
/// `x: f32[b, 1, 8, 8]` for a convolution, `y: f32[b, 1]` for a regression on the label
/// values, `x: i32[b, t]` and `y: i32[b, t]` for a sequence model all work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pass {
    /// Training or evaluation.
    pub mode: Mode,
    /// The number of examples of one batch.
    pub batch_size: usize,
}

impl Pass {
    /// True when building the training step.
    pub fn is_training(&self) -> bool {
        self.mode == Mode::Train
    }
}

/// What the model function returns: the scalar loss and, for accuracy, the logits.
#[derive(Clone, Copy, Debug)]
pub struct Forward<'b> {
    /// The scalar loss to minimize.
    pub loss: Tensor<'b>,
    /// The logits `[..., C]` (or one logit per label for binary tasks), read back to compute
    /// accuracy on the host ([`crate::loss::accuracy`]); `None` to skip accuracy.
    pub logits: Option<Tensor<'b>>,
}

/// How a [`Trainer`](super::Trainer) trains.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainerOptions {
    /// Examples per training step.
    pub batch_size: usize,
    /// Passes over the training set; an epoch has `len / batch_size` steps (the remainder of
    /// the shuffled order is skipped, differently every epoch).
    pub epochs: u64,
    /// Stop after this many steps in total (counted from the start of training, so a resumed
    /// run counts the steps before the checkpoint); `None` for all `epochs`.
    pub max_steps: Option<u64>,
    /// Seeds the initial parameters, the batch order and the random inputs (dropout masks).
    pub seed: u64,
    /// Evaluate on the held-out split every this many steps; 0 for the end of every epoch.
    pub eval_every: u64,
    /// Record every parameter's gradient norm every this many steps (0 for never): the
    /// vanishing/exploding-gradient diagnostic, see [`History::grad_norms`](super::History).
    pub grad_norm_every: u64,
    /// Print a progress line every this many steps when stderr is not a terminal.
    pub log_every: u64,
    /// Show no progress at all.
    pub quiet: bool,
    /// Where to save checkpoints (`None` for nowhere).
    pub checkpoint: Option<PathBuf>,
    /// Save a checkpoint every this many steps (0 for only at the end of training).
    pub checkpoint_every: u64,
    /// Threads of the compiled step (0 for every core). With 1 every run is bit-identical.
    pub threads: usize,
    /// The largest evaluation batch: a held-out split up to this size is evaluated in one
    /// call of the compiled evaluation graph.
    pub eval_batch_size: usize,
    /// The precision of products and activations, in training and evaluation
    /// ([`adjoint_autodiff::mixed`]): parameters, their gradients and the optimizer stay f32.
    pub precision: Precision,
    /// Dynamic loss scaling; `None` for the precision's default (on for
    /// [`Precision::F16`], off otherwise: [`MixedPrecision::new`]).
    pub loss_scaling: Option<LossScaling>,
}

impl TrainerOptions {
    /// The training step's precision settings.
    pub fn mixed_precision(&self) -> MixedPrecision {
        let mut mixed = MixedPrecision::new(self.precision);
        if self.loss_scaling.is_some() {
            mixed.loss_scaling = self.loss_scaling;
        }
        mixed
    }
}

impl Default for TrainerOptions {
    fn default() -> TrainerOptions {
        TrainerOptions {
            batch_size: 32,
            epochs: 1,
            max_steps: None,
            seed: 0,
            eval_every: 0,
            grad_norm_every: 0,
            log_every: 100,
            quiet: false,
            checkpoint: None,
            checkpoint_every: 0,
            threads: 0,
            eval_batch_size: 4096,
            precision: Precision::F32,
            loss_scaling: None,
        }
    }
}
