//! Data-parallel training steps: [`training_step`](crate::training_step) with
//! [`Optimizer::with_data_parallel`](crate::Optimizer::with_data_parallel) replaces each
//! gradient by its mean over the replicas (`all_reduce_mean`) before clipping, weight decay and
//! the update, so every replica applies the same update to the same parameters.
//!
//! # Buckets
//!
//! One collective call per gradient pays the call's latency once per parameter; one call for
//! all of them waits for the last gradient. Gradients are therefore grouped into *buckets* of
//! about [`DataParallel::bucket_bytes`], in the order the backward pass produces them (the
//! order of their nodes: the adjoints of the last layers are emitted first), one bucket per
//! dtype: a bucket is the concatenation of its flattened gradients, reduced by one
//! `all_reduce`, then sliced back. A bucket depends only on its own gradients, so an engine
//! may start reducing it while the rest of the backward pass runs; today's engines run each
//! `all_reduce` as a blocking call at its place in the schedule (see `docs/distributed.md`).

use adjoint_ir::{AllReduceKind, BuildError, DType, Tensor};

/// How a training step combines gradients across the replicas of a data-parallel group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataParallel {
    /// How many replicas the group has (each runs the same step on its shard of the batch).
    pub replicas: usize,
    /// The most bytes of gradients one `all_reduce` carries (a larger gradient gets a bucket
    /// of its own); 0 reduces every gradient on its own.
    pub bucket_bytes: usize,
}

impl DataParallel {
    /// The default bucket size: 4 MiB.
    pub const DEFAULT_BUCKET_BYTES: usize = 4 << 20;

    /// `replicas` replicas with the default bucket size.
    pub fn new(replicas: usize) -> DataParallel {
        DataParallel {
            replicas,
            bucket_bytes: DataParallel::DEFAULT_BUCKET_BYTES,
        }
    }
}

/// The gradients `grads` replaced by their means over the replicas, in the same order,
/// reduced in buckets (see the module documentation). With one replica they are returned as
/// they are.
pub(crate) fn all_reduce_gradients<'b>(
    grads: &[Tensor<'b>],
    dp: &DataParallel,
) -> Result<Vec<Tensor<'b>>, BuildError> {
    let mut out: Vec<Tensor<'b>> = grads.to_vec();
    if dp.replicas <= 1 || grads.is_empty() {
        return Ok(out);
    }
    for bucket in buckets(grads, dp.bucket_bytes) {
        let reduced = reduce_bucket(&bucket.iter().map(|&i| grads[i]).collect::<Vec<_>>(), dp)?;
        for (i, r) in bucket.into_iter().zip(reduced) {
            out[i] = r;
        }
    }
    Ok(out)
}

/// The buckets as lists of indices into `grads`: in the order the gradients' nodes were
/// created, one open bucket per dtype, each closed when the next gradient would take it past
/// `limit` bytes.
fn buckets(grads: &[Tensor<'_>], limit: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..grads.len()).collect();
    order.sort_by_key(|&i| grads[i].id().index());
    let mut done: Vec<Vec<usize>> = Vec::new();
    let mut open: Vec<(DType, Vec<usize>, usize)> = Vec::new();
    for i in order {
        let g = grads[i];
        let bytes = g.shape().numel() * g.dtype().size_bytes();
        let slot = match open.iter().position(|(d, ..)| *d == g.dtype()) {
            Some(s) => s,
            None => {
                open.push((g.dtype(), Vec::new(), 0));
                open.len() - 1
            }
        };
        let (_, members, size) = &mut open[slot];
        if !members.is_empty() && *size + bytes > limit {
            done.push(std::mem::take(members));
            *size = 0;
        }
        members.push(i);
        *size += bytes;
    }
    done.extend(
        open.into_iter()
            .map(|(_, m, _)| m)
            .filter(|m| !m.is_empty()),
    );
    done
}

/// One `all_reduce_mean` of the concatenated, flattened `grads` (of one dtype), sliced back
/// into each gradient's shape; a bucket of one gradient is reduced as it is.
fn reduce_bucket<'b>(
    grads: &[Tensor<'b>],
    dp: &DataParallel,
) -> Result<Vec<Tensor<'b>>, BuildError> {
    if let [g] = grads {
        return Ok(vec![g.try_all_reduce(AllReduceKind::Mean, dp.replicas)?]);
    }
    let b = grads[0].builder();
    let flat: Vec<Tensor<'b>> = grads
        .iter()
        .map(|g| g.try_reshape([g.shape().numel()]))
        .collect::<Result<_, _>>()?;
    let reduced = b
        .try_concat(&flat, 0)?
        .try_all_reduce(AllReduceKind::Mean, dp.replicas)?;
    let mut offset = 0;
    let mut out = Vec::with_capacity(grads.len());
    for g in grads {
        let n = g.shape().numel();
        out.push(
            reduced
                .try_slice(0, offset, offset + n, 1)?
                .try_reshape(g.shape())?,
        );
        offset += n;
    }
    Ok(out)
}
