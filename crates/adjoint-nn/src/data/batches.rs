//! Mini-batches of a [`Dataset`] in a seeded order that changes every epoch.

use super::{DataError, Dataset};
use adjoint_ir::{HostTensor, Rng};

/// One mini-batch: the features and labels of some examples, ready to feed.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `f32[b, d]` features.
    pub features: HostTensor,
    /// `i32[b]` labels.
    pub labels: HostTensor,
    /// The examples' indices in the data set, in batch order.
    pub indices: Vec<usize>,
}

impl Batch {
    /// Number of examples in the batch.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// True for a batch without examples (never yielded by [`Batches`]).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// An iterator over the mini-batches of one epoch; see [`Dataset::batches`].
#[derive(Clone, Debug)]
pub struct Batches<'a> {
    data: &'a Dataset,
    order: Vec<usize>,
    batch_size: usize,
    drop_last: bool,
    next: usize,
}

impl Dataset {
    /// The mini-batches of epoch `epoch`: the examples in a random order (a shuffle seeded by
    /// `seed` and `epoch`, so every epoch differs and every run repeats), cut into batches of
    /// `batch_size`.
    ///
    /// **The last partial batch is dropped by default**: a compiled training step has a fixed
    /// batch size, so every batch has exactly `batch_size` examples and an epoch yields
    /// `len() / batch_size` of them. Call [`Batches::keep_last`] to also get the remainder
    /// (for evaluation, say). An error if `batch_size` is zero.
    ///
    /// ```
    /// use adjoint_ir::HostTensor;
    /// use adjoint_nn::data::Dataset;
    ///
    /// let x = HostTensor::from_f32([5, 1], vec![0.0, 1.0, 2.0, 3.0, 4.0]).unwrap();
    /// let y = HostTensor::from_i32([5], vec![0, 1, 0, 1, 0]).unwrap();
    /// let data = Dataset::new(x, y, 2).unwrap();
    /// let sizes: Vec<usize> = data.batches(2, 7, 0).unwrap().map(|b| b.len()).collect();
    /// assert_eq!(sizes, [2, 2]);
    /// let sizes: Vec<usize> = data.batches(2, 7, 0).unwrap().keep_last().map(|b| b.len()).collect();
    /// assert_eq!(sizes, [2, 2, 1]);
    /// ```
    pub fn batches(
        &self,
        batch_size: usize,
        seed: u64,
        epoch: u64,
    ) -> Result<Batches<'_>, DataError> {
        if batch_size == 0 {
            return Err(DataError::Invalid("batch size must be at least 1".into()));
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        Rng::derive(seed, &format!("batches of epoch {epoch}")).shuffle(&mut order);
        Ok(Batches {
            data: self,
            order,
            batch_size,
            drop_last: true,
            next: 0,
        })
    }
}

impl<'a> Batches<'a> {
    /// Also yield the last, partial batch (fewer than `batch_size` examples) when the epoch
    /// does not divide evenly.
    pub fn keep_last(mut self) -> Batches<'a> {
        self.drop_last = false;
        self
    }

    /// The example order of the whole epoch (including a dropped remainder at the end).
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    fn remaining(&self) -> usize {
        let left = self.order.len() - self.next;
        if self.drop_last {
            left / self.batch_size
        } else {
            left.div_ceil(self.batch_size)
        }
    }
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.remaining() == 0 {
            return None;
        }
        let end = (self.next + self.batch_size).min(self.order.len());
        let indices = self.order[self.next..end].to_vec();
        self.next = end;
        let (features, labels) = self.data.gather_tensors(&indices);
        Some(Batch {
            features,
            labels,
            indices,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining();
        (n, Some(n))
    }
}

impl ExactSizeIterator for Batches<'_> {}
