//! Seeded, stratified train/test splits.

use super::{DataError, Dataset};
use adjoint_ir::Rng;

impl Dataset {
    /// Splits the examples into a training and a test set, stratified by class: each class
    /// contributes `round(count * test_fraction)` of its examples, chosen by a shuffle with the
    /// project's seeded [`Rng`], to the test set, and the rest to the training set. The same
    /// seed always gives the same split. Both parts keep the original order of their examples.
    ///
    /// `test_fraction` must be in `(0, 1)` and leave both parts non-empty.
    pub fn split(&self, seed: u64, test_fraction: f64) -> Result<(Dataset, Dataset), DataError> {
        let (train, test) = self.split_indices(seed, test_fraction)?;
        Ok((self.gather(&train), self.gather(&test)))
    }

    /// The example indices of [`Dataset::split`]: `(train, test)`, each sorted ascending,
    /// disjoint, and together covering `0..len()`.
    pub fn split_indices(
        &self,
        seed: u64,
        test_fraction: f64,
    ) -> Result<(Vec<usize>, Vec<usize>), DataError> {
        if !(test_fraction > 0.0 && test_fraction < 1.0) {
            return Err(DataError::Invalid(format!(
                "test fraction must be strictly between 0 and 1, got {test_fraction}"
            )));
        }
        // Stratified by class when each example has one label; one group otherwise (sequence
        // targets have no single class to stratify by).
        let by_class: Vec<Vec<usize>> = if self.labels().shape().rank() == 1 {
            let mut by_class = vec![Vec::new(); self.classes()];
            for (i, &label) in self.label_values().iter().enumerate() {
                by_class[label as usize].push(i);
            }
            by_class
        } else {
            vec![(0..self.len()).collect()]
        };
        let mut rng = Rng::derive(seed, "dataset split");
        let mut train = Vec::with_capacity(self.len());
        let mut test = Vec::new();
        for mut members in by_class {
            rng.shuffle(&mut members);
            let n_test = (members.len() as f64 * test_fraction).round() as usize;
            test.extend_from_slice(&members[..n_test]);
            train.extend_from_slice(&members[n_test..]);
        }
        if train.is_empty() || test.is_empty() {
            return Err(DataError::Invalid(format!(
                "a test fraction of {test_fraction} of {} examples leaves {} for training and {} \
                 for testing; both need at least one",
                self.len(),
                train.len(),
                test.len()
            )));
        }
        train.sort_unstable();
        test.sort_unstable();
        Ok((train, test))
    }
}
