//! [`History`]: what happened during training, step by step.

/// One evaluation on the held-out split.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// The number of training steps done when it was taken.
    pub step: u64,
    /// The mean loss over the split.
    pub loss: f64,
    /// The accuracy over the split, when the model has logits.
    pub accuracy: Option<f64>,
}

/// Every parameter's gradient norm at one step (the vanishing/exploding-gradient diagnostic).
#[derive(Clone, Debug, PartialEq)]
pub struct GradNorms {
    /// The step (counted from 1) whose gradients these are.
    pub step: u64,
    /// `(parameter name, ‖gradient‖₂)`, in declaration order.
    pub norms: Vec<(String, f64)>,
}

/// The record of training: the loss curve, evaluations and gradient norms.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// `(step, training loss)` of every step (steps counted from 1).
    pub train_loss: Vec<(u64, f64)>,
    /// `(step, training-batch accuracy)` of every step, when the model has logits.
    pub train_accuracy: Vec<(u64, f64)>,
    /// The evaluations on the held-out split.
    pub evaluations: Vec<Evaluation>,
    /// Gradient norms every [`grad_norm_every`](super::TrainerOptions::grad_norm_every) steps.
    pub grad_norms: Vec<GradNorms>,
    /// The steps (counted from 1) that dynamic loss scaling skipped: a gradient was not
    /// finite, so no parameter moved and the scale was halved.
    pub skipped_steps: Vec<u64>,
}

impl History {
    /// The training loss as `(step, loss)` points for [`crate::chart::write_loss_chart`].
    pub fn train_loss_points(&self) -> Vec<(f64, f64)> {
        self.train_loss
            .iter()
            .map(|&(s, l)| (s as f64, l))
            .collect()
    }

    /// The held-out loss as chart points.
    pub fn eval_loss_points(&self) -> Vec<(f64, f64)> {
        self.evaluations
            .iter()
            .map(|e| (e.step as f64, e.loss))
            .collect()
    }

    /// The held-out accuracy as chart points (evaluations without accuracy are left out).
    pub fn eval_accuracy_points(&self) -> Vec<(f64, f64)> {
        self.evaluations
            .iter()
            .filter_map(|e| e.accuracy.map(|a| (e.step as f64, a)))
            .collect()
    }

    /// The last evaluation, if any.
    pub fn last_evaluation(&self) -> Option<&Evaluation> {
        self.evaluations.last()
    }
}
