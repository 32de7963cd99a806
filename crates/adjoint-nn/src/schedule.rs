//! Learning-rate schedules, evaluated on the host at every step and fed to the compiled step
//! as the scalar input `lr` (see [`adjoint_autodiff::LearningRate::Input`]).
//!
//! A schedule is a **factor** applied to the optimizer's base learning rate, as PyTorch's
//! `LambdaLR` is: `lr(step) = base · factor(step)`, with `step` counted from 0.
//!
//! ```
//! use adjoint_nn::schedule::Schedule;
//!
//! let s = Schedule::warmup_cosine(10, 110, 0.0);
//! assert_eq!(s.factor(0), 0.1);                 // warm-up: (step + 1) / warmup
//! assert_eq!(s.lr(0.1, 9), 0.1);                // end of warm-up
//! assert!((s.lr(0.1, 60) - 0.05).abs() < 1e-12); // half-way through the cosine
//! assert_eq!(s.lr(0.1, 500), 0.0);              // past the end: the floor
//! ```

/// How the learning rate changes over the steps of training.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// The base rate at every step.
    Constant,
    /// Multiplied by `gamma` every `every` steps: `factor = gamma^(step / every)`.
    StepDecay {
        /// Steps between decays (at least 1).
        every: u64,
        /// The decay factor.
        gamma: f64,
    },
    /// Linear warm-up from `1/warmup` to 1 over the first `warmup` steps, then a half cosine
    /// from 1 down to `min_factor` at step `total`, and `min_factor` after that.
    WarmupCosine {
        /// Warm-up steps (0 for none).
        warmup: u64,
        /// The step at which the cosine reaches `min_factor`.
        total: u64,
        /// The final factor.
        min_factor: f64,
    },
}

impl Schedule {
    /// [`Schedule::StepDecay`].
    pub fn step_decay(every: u64, gamma: f64) -> Schedule {
        Schedule::StepDecay { every, gamma }
    }

    /// [`Schedule::WarmupCosine`].
    pub fn warmup_cosine(warmup: u64, total: u64, min_factor: f64) -> Schedule {
        Schedule::WarmupCosine {
            warmup,
            total,
            min_factor,
        }
    }

    /// The factor at `step` (from 0).
    pub fn factor(&self, step: u64) -> f64 {
        match *self {
            Schedule::Constant => 1.0,
            Schedule::StepDecay { every, gamma } => {
                let decays = step / every.max(1);
                gamma.powi(decays.min(i32::MAX as u64) as i32)
            }
            Schedule::WarmupCosine {
                warmup,
                total,
                min_factor,
            } => {
                if step < warmup {
                    return (step + 1) as f64 / warmup as f64;
                }
                if step >= total {
                    return min_factor;
                }
                let span = (total - warmup).max(1) as f64;
                let progress = ((step - warmup) as f64 / span).min(1.0);
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                min_factor + (1.0 - min_factor) * cosine
            }
        }
    }

    /// The learning rate at `step` for base rate `base`.
    pub fn lr(&self, base: f64, step: u64) -> f64 {
        base * self.factor(step)
    }
}
