//! [`TrainError`]: why training could not start or had to stop.

use crate::checkpoint::CheckpointError;
use crate::data::DataError;
use crate::weights::WeightsError;
use adjoint_autodiff::GradError;
use adjoint_ir::CollectiveError;
use adjoint_jit::JitError;
use std::fmt;

/// Why a [`Trainer`](super::Trainer) could not build, train, evaluate or checkpoint.
#[derive(Debug)]
pub enum TrainError {
    /// The options or the model do not fit together (a message says how).
    Config(String),
    /// Building the training step failed.
    Grad(Box<GradError>),
    /// Compiling or running a step failed.
    Jit(Box<JitError>),
    /// The data could not be batched or fed.
    Data(DataError),
    /// Saving or loading a checkpoint failed.
    Checkpoint(CheckpointError),
    /// Importing or exporting a plain safetensors weight file failed.
    Weights(WeightsError),
    /// Communicating with the other replicas of a data-parallel group failed.
    Collective(CollectiveError),
    /// The loss or a gradient stopped being finite: training diverged.
    NonFinite {
        /// The step (counted from 1) whose outputs were not finite.
        step: u64,
        /// The first non-finite tensor: `loss`, or the gradient of a parameter (`grad of w`).
        tensor: String,
        /// Its value (the loss) or its squared norm (a gradient).
        value: f64,
    },
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainError::Config(m) => write!(f, "trainer: {m}"),
            TrainError::Grad(e) => write!(f, "building the training step: {e}"),
            TrainError::Jit(e) => write!(f, "compiled step: {e}"),
            TrainError::Data(e) => write!(f, "data: {e}"),
            TrainError::Checkpoint(e) => write!(f, "{e}"),
            TrainError::Weights(e) => write!(f, "{e}"),
            TrainError::Collective(e) => write!(f, "data-parallel training: {e}"),
            TrainError::NonFinite {
                step,
                tensor,
                value,
            } => write!(
                f,
                "training diverged at step {step}: {tensor} is not finite ({value}); \
                 lower the learning rate or clip the gradient norm"
            ),
        }
    }
}

impl std::error::Error for TrainError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TrainError::Grad(e) => Some(&**e),
            TrainError::Jit(e) => Some(&**e),
            TrainError::Data(e) => Some(e),
            TrainError::Checkpoint(e) => Some(e),
            TrainError::Weights(e) => Some(e),
            TrainError::Collective(e) => Some(e),
            TrainError::Config(_) | TrainError::NonFinite { .. } => None,
        }
    }
}

impl From<GradError> for TrainError {
    fn from(e: GradError) -> TrainError {
        TrainError::Grad(Box::new(e))
    }
}

impl From<JitError> for TrainError {
    fn from(e: JitError) -> TrainError {
        TrainError::Jit(Box::new(e))
    }
}

impl From<DataError> for TrainError {
    fn from(e: DataError) -> TrainError {
        TrainError::Data(e)
    }
}

impl From<CheckpointError> for TrainError {
    fn from(e: CheckpointError) -> TrainError {
        TrainError::Checkpoint(e)
    }
}

impl From<CollectiveError> for TrainError {
    fn from(e: CollectiveError) -> TrainError {
        TrainError::Collective(e)
    }
}

impl From<WeightsError> for TrainError {
    fn from(e: WeightsError) -> TrainError {
        TrainError::Weights(e)
    }
}
