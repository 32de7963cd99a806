//! The trainer as one replica of a data-parallel group ([`Trainer::new_replica`]
//! (super::Trainer::new_replica)): what differs from training alone.
//!
//! - The options' `batch_size` is the **global** batch: each of the `n` replicas compiles its
//!   step for `batch_size / n` rows and feeds its shard (rows `r·b/n ..`) of every global
//!   batch, which every replica draws identically from the seed. The gradients are averaged
//!   over the replicas before the update (`Optimizer::with_data_parallel`), so every replica
//!   applies the same update; the reported loss is the mean of the replicas' losses, so every
//!   replica sees the same loss and stops (on a non-finite value) at the same step.
//! - Parameters, optimizer state and the step count are **broadcast from rank 0** before
//!   training ([`sync_from_root`]), so replicas start equal even after rank 0 alone imported
//!   weights or resumed.
//! - Only **rank 0** evaluates during [`Trainer::fit`](super::Trainer::fit) and writes
//!   checkpoints. A checkpoint stores the global batch size, so a run resumes with the same or
//!   a different number of replicas and sees the same batches.

use super::TrainError;
use adjoint_ir::collective::broadcast_tensor;
use adjoint_ir::{Collective, DType, HostTensor};
use adjoint_jit::CompiledStep;
use std::sync::Arc;

/// A trainer's place in its data-parallel group.
#[derive(Clone)]
pub(crate) struct Replica {
    /// The group.
    pub collective: Arc<dyn Collective>,
}

impl Replica {
    /// This replica's rank.
    pub fn rank(&self) -> usize {
        self.collective.rank()
    }

    /// The group's size.
    pub fn size(&self) -> usize {
        self.collective.size()
    }
}

/// Rank 0's parameters (every float one, in the step's parameter order, which is the same on
/// every replica) and `step` copied to every replica. Parameters of other dtypes are left as
/// they are (they are never trained).
pub(crate) fn sync_from_root(
    c: &dyn Collective,
    step_fn: &mut CompiledStep,
    step: &mut u64,
) -> Result<(), TrainError> {
    for (name, mut value) in step_fn.params() {
        if !matches!(value.dtype(), DType::F32 | DType::F64) {
            continue;
        }
        broadcast_tensor(c, &mut value, 0)?;
        step_fn.set_param(&name, &value)?;
    }
    // A step count is exact in f64 far beyond any run's length.
    let mut s = HostTensor::from_f64([1], vec![*step as f64]).expect("one element");
    broadcast_tensor(c, &mut s, 0)?;
    *step = s.to_f64_vec()[0] as u64;
    Ok(())
}
