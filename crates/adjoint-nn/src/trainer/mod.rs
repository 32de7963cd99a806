//! The training loop: [`Trainer`] compiles a model's training step once with the JIT and runs
//! it over seeded mini-batches, with a learning-rate schedule, evaluation on a held-out split,
//! divergence checks, gradient-norm diagnostics and resumable checkpoints.
//!
//! ```
//! use adjoint_ir::DType;
//! use adjoint_autodiff::Optimizer;
//! use adjoint_nn::data::{digits_path, load_digits, Standardizer};
//! use adjoint_nn::layers::Linear;
//! use adjoint_nn::loss::cross_entropy;
//! use adjoint_nn::schedule::Schedule;
//! use adjoint_nn::trainer::{Forward, Pass, Trainer, TrainerOptions};
//! use adjoint_nn::Params;
//!
//! let digits = load_digits(digits_path()).unwrap();
//! let (train, test) = digits.split(0, 0.2).unwrap();
//! let scaler = Standardizer::fit(&train);
//! let (train, test) = (scaler.apply(&train).unwrap(), scaler.apply(&test).unwrap());
//!
//! // A softmax regression: the model function declares inputs `x` and `y` and returns the loss.
//! fn model<'b>(p: &mut Params<'b>, pass: &Pass) -> Forward<'b> {
//!     let b = p.builder();
//!     let x = b.input("x", DType::F32, [pass.batch_size, 64]);
//!     let y = b.input("y", DType::I32, [pass.batch_size]);
//!     let logits = Linear::new(p, "fc", 64, 10).forward(x);
//!     Forward { loss: cross_entropy(logits, y, 0.0), logits: Some(logits) }
//! }
//! let options = TrainerOptions { batch_size: 64, epochs: 2, quiet: true, ..Default::default() };
//! let mut trainer =
//!     Trainer::new("softmax_regression", model, Optimizer::adam(0.01), Schedule::Constant, options)
//!         .unwrap();
//! let history = trainer.fit(&train, Some(&test)).unwrap();
//! assert!(history.last_evaluation().unwrap().accuracy.unwrap() > 0.85);
//! ```

mod error;
mod feeds;
mod history;
mod options;
mod replica;

pub use error::TrainError;
pub use history::{Evaluation, GradNorms, History};
pub use options::{Forward, Mode, Pass, TrainerOptions, FEATURES_INPUT, LABELS_INPUT, LR_INPUT};

use crate::checkpoint::{load_checkpoint_matching, save_checkpoint, Checkpoint};
use crate::data::{gather_rows, Batch, Dataset};
use crate::loss::accuracy;
use crate::progress::{Progress, ProgressMode};
use crate::schedule::Schedule;
use crate::weights::{export_safetensors, import_safetensors, ImportReport, WeightMap};
use crate::{Params, RandomInput};
use adjoint_autodiff::{
    apply_precision, loss_scale, training_step_with, LearningRate, Optimizer, Precision,
};
use adjoint_ir::{
    AllReduceKind, Builder, Collective, DType, Feeds, Graph, HostTensor, NodeId, Rng, TensorType,
};
use adjoint_jit::{compile, CompiledStep, JitError, Options, StepOutputs};
use feeds::{conform, shard_rows, slice_rows};
use replica::{sync_from_root, Replica};
use std::path::Path;
use std::sync::Arc;

/// The model function: declares parameters in the store and inputs in its builder, and returns
/// the loss (and logits) of one batch. Called once for the training step and once per
/// evaluation batch size.
pub type ModelFn = dyn for<'b> Fn(&mut Params<'b>, &Pass) -> Forward<'b>;

/// The suffix of the training step's outputs holding each gradient's sum of squares.
pub const GRAD_SQ_SUFFIX: &str = ".grad_sq";

/// The checkpoint metadata keys the trainer writes (and checks on resume).
const META_SEED: &str = "seed";
const META_BATCH: &str = "batch_size";
const META_MODEL: &str = "model";

/// A compiled training step and everything needed to run it over a data set.
///
/// - **Built once**: [`Trainer::new`] calls the model function in [`Mode::Train`], appends
///   gradients and the optimizer update ([`adjoint_autodiff::training_step`]) with the learning
///   rate as the scalar input [`LR_INPUT`], adds one output per trained parameter holding its
///   gradient's sum of squares (`<name>.grad_sq`, accumulated in f64), and compiles the whole
///   step with [`adjoint_jit::compile`] (fusion on).
/// - **Trains** ([`Trainer::fit`]) only the parameters declared with
///   [`Params::get`]; state declared with [`Params::state`] is updated by the graph itself.
///   Batches come from [`Dataset::batches`] seeded by the options' seed and the epoch; random
///   inputs ([`Params::random_input`]) are drawn from a stream derived from the seed and the
///   step number, so a resumed run draws exactly what the uninterrupted run drew.
/// - **Checks every step** that the loss and every gradient's sum of squares are finite; the
///   first that is not stops training with [`TrainError::NonFinite`] naming the step and the
///   tensor. (The sums of squares are one reduction per parameter, cheap next to the matmuls,
///   so the check runs at every step rather than every N.)
/// - **Evaluates** on a held-out split with a second compiled graph built in [`Mode::Eval`],
///   after copying the current parameters into it.
/// - **Mixed precision**: with [`TrainerOptions::precision`] `Bf16` or `F16` the step runs the
///   policy of [`adjoint_autodiff::mixed`] (16-bit products and activations, f32 parameters,
///   statistics, losses and optimizer); `F16` adds dynamic loss scaling, whose skipped steps
///   [`Trainer::skipped_steps`] counts (a skipped step's non-finite gradients are not a
///   divergence). Evaluation runs in the same precision.
/// - **Checkpoints** parameters, optimizer state and the step ([`Trainer::save_checkpoint`]),
///   and continues from one bit-exactly ([`Trainer::resume`]).
/// - **Data parallel** ([`Trainer::new_replica`]): one trainer per replica of a group, each
///   training on its shard of every global batch with gradients averaged over the group.
pub struct Trainer {
    name: String,
    model: Box<ModelFn>,
    base_lr: f64,
    schedule: Schedule,
    options: TrainerOptions,
    step_fn: CompiledStep,
    trainable: Vec<String>,
    /// The optimizer-state parameters the training step created (moments, counters).
    optimizer_state: Vec<String>,
    random_inputs: Vec<RandomInput>,
    eval: Option<EvalStep>,
    step: u64,
    history: History,
    /// The data-parallel group this trainer is a replica of, if any.
    replica: Option<Replica>,
}

/// The compiled evaluation graph for one batch size.
struct EvalStep {
    step_fn: CompiledStep,
    batch_size: usize,
    params: Vec<String>,
    initial: Feeds,
    random_inputs: Vec<RandomInput>,
}

/// A model graph as the model function built it.
struct Built {
    graph: Graph,
    loss: NodeId,
    trainable: Vec<String>,
    random_inputs: Vec<RandomInput>,
    initial: Feeds,
}

impl Trainer {
    /// Builds and compiles the training step of `model` named `name`, trained by `optimizer`
    /// with its learning rate scaled by `schedule` at every step.
    ///
    /// The optimizer's learning rate must be a constant (the base rate); the trainer replaces
    /// it by the input [`LR_INPUT`], fed `base · schedule.factor(step)`.
    pub fn new<F>(
        name: &str,
        model: F,
        optimizer: Optimizer,
        schedule: Schedule,
        options: TrainerOptions,
    ) -> Result<Trainer, TrainError>
    where
        F: for<'b> Fn(&mut Params<'b>, &Pass) -> Forward<'b> + 'static,
    {
        Trainer::build(name, Box::new(model), optimizer, schedule, options, None)
    }

    /// [`Trainer::new`] as replica `collective.rank()` of a data-parallel group of
    /// `collective.size()` replicas (threads of one process with
    /// [`adjoint_ir::InProcess`], or processes with the MPI backend). Every replica is built
    /// with the same arguments; the options' `batch_size` is the global batch, which the group
    /// size must divide. Each replica trains on its shard of every global batch, gradients are
    /// averaged over the group, parameters start from rank 0's (broadcast when training
    /// starts), and only rank 0 evaluates and writes checkpoints during [`Trainer::fit`] (see
    /// the module `replica` in the source for the details). Building broadcasts too, so every
    /// replica must build its trainer.
    pub fn new_replica<F>(
        name: &str,
        model: F,
        optimizer: Optimizer,
        schedule: Schedule,
        options: TrainerOptions,
        collective: Arc<dyn Collective>,
    ) -> Result<Trainer, TrainError>
    where
        F: for<'b> Fn(&mut Params<'b>, &Pass) -> Forward<'b> + 'static,
    {
        let replica = Replica { collective };
        Trainer::build(
            name,
            Box::new(model),
            optimizer,
            schedule,
            options,
            Some(replica),
        )
    }

    fn build(
        name: &str,
        model: Box<ModelFn>,
        optimizer: Optimizer,
        schedule: Schedule,
        options: TrainerOptions,
        replica: Option<Replica>,
    ) -> Result<Trainer, TrainError> {
        let base_lr = match optimizer.lr {
            LearningRate::Constant(lr) => lr,
            LearningRate::Input(ref input) => {
                return Err(TrainError::Config(format!(
                    "give the optimizer a constant base learning rate: the trainer feeds the \
                     scheduled rate itself (the optimizer asks for the input `{input}`)"
                )))
            }
        };
        if options.batch_size == 0 {
            return Err(TrainError::Config(
                "the batch size must be at least 1".into(),
            ));
        }
        let replicas = replica.as_ref().map_or(1, Replica::size);
        if !options.batch_size.is_multiple_of(replicas) {
            return Err(TrainError::Config(format!(
                "the global batch size {} is not a multiple of the {replicas} replicas",
                options.batch_size
            )));
        }
        let pass = Pass {
            mode: Mode::Train,
            batch_size: options.batch_size / replicas,
        };
        let built = build(name, &*model, &pass, options.seed, replicas);
        let params: Vec<NodeId> = built
            .trainable
            .iter()
            .map(|n| built.graph.leaf(n).expect("declared by Params"))
            .collect();
        let opt = Optimizer {
            lr: LearningRate::input(LR_INPUT),
            ..optimizer
        }
        .with_data_parallel(replicas);
        let mixed = options.mixed_precision();
        let step = training_step_with(built.graph, built.loss, &params, &opt, &mixed)?;
        let b = Builder::from_graph(step.graph);
        for p in &step.params {
            let g = b.tensor(p.grad);
            let sq = g
                .try_cast(DType::F64)
                .map_err(build_error)?
                .square()
                .sum_all();
            b.output(&format!("{}{GRAD_SQ_SUFFIX}", p.name), sq);
        }
        if replicas > 1 {
            // Every replica reports (and checks) the mean loss of the global batch.
            let loss = b.tensor(step.loss);
            let mean = loss
                .try_all_reduce(AllReduceKind::Mean, replicas)
                .map_err(build_error)?;
            b.output("loss", mean);
        }
        let graph = b.finish();
        let mut step_fn = compile(&graph, &jit_options(&options))?;
        set_known_params(&mut step_fn, built.initial.iter())?;
        set_known_params(&mut step_fn, step.state.iter().map(|(n, t)| (n, t)))?;
        let mut start = 0;
        if let Some(r) = &replica {
            step_fn.set_collective(Some(Arc::clone(&r.collective)));
            sync_from_root(&*r.collective, &mut step_fn, &mut start)?;
        }
        let optimizer_state = step.state.iter().map(|(n, _)| n.clone()).collect();
        Ok(Trainer {
            name: name.to_string(),
            model,
            base_lr,
            schedule,
            options,
            step_fn,
            trainable: built.trainable,
            optimizer_state,
            random_inputs: built.random_inputs,
            eval: None,
            step: start,
            history: History::default(),
            replica,
        })
    }

    /// This trainer's rank in its data-parallel group (0 when it trains alone).
    pub fn rank(&self) -> usize {
        self.replica.as_ref().map_or(0, Replica::rank)
    }

    /// The number of replicas of its data-parallel group (1 when it trains alone).
    pub fn replicas(&self) -> usize {
        self.replica.as_ref().map_or(1, Replica::size)
    }

    /// True for the replica that evaluates and writes checkpoints during [`Trainer::fit`]:
    /// rank 0, or a trainer alone.
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// Trains until `epochs` epochs of `train` are done, or `max_steps` steps (continuing from
    /// the current step after [`Trainer::resume`]), and returns the history.
    ///
    /// With `test`, evaluates every `eval_every` steps (or at the end of every epoch) and once
    /// more at the end if the last step was not evaluated.
    ///
    /// Saves a checkpoint every `checkpoint_every` steps and at the end when a checkpoint path
    /// is set. Stops at the first non-finite loss or gradient with [`TrainError::NonFinite`].
    pub fn fit(&mut self, train: &Dataset, test: Option<&Dataset>) -> Result<&History, TrainError> {
        let bs = self.options.batch_size;
        let per_epoch = (train.len() / bs) as u64;
        if per_epoch == 0 {
            return Err(TrainError::Config(format!(
                "the training set has {} examples, fewer than one batch of {bs}",
                train.len()
            )));
        }
        let mut total = per_epoch * self.options.epochs;
        if let Some(max) = self.options.max_steps {
            total = total.min(max);
        }
        if let Some(r) = &self.replica {
            // Start from rank 0's parameters and step, whatever was done to the others.
            sync_from_root(&*r.collective, &mut self.step_fn, &mut self.step)?;
        }
        let quiet = self.options.quiet || !self.is_root();
        let mode = ProgressMode::auto(quiet, self.options.log_every);
        let mut progress = Progress::new(total, mode);
        let result = self.run_epochs(train, test, per_epoch, total, &mut progress);
        match &result {
            Ok(()) => {
                let summary = match self.history.last_evaluation() {
                    Some(Evaluation {
                        loss,
                        accuracy: Some(acc),
                        ..
                    }) => format!("test loss {loss:.4}  test accuracy {:.2}%", acc * 100.0),
                    Some(e) => format!("test loss {:.4}", e.loss),
                    None => "done".to_string(),
                };
                progress.finish(&summary);
            }
            Err(e) => progress.finish(&format!("stopped: {e}")),
        }
        result.map(|()| &self.history)
    }

    fn run_epochs(
        &mut self,
        train: &Dataset,
        test: Option<&Dataset>,
        per_epoch: u64,
        total: u64,
        progress: &mut Progress,
    ) -> Result<(), TrainError> {
        let opts = self.options.clone();
        let mut smooth: Option<f64> = None;
        let mut epoch_acc = (0.0, 0u64);
        while self.step < total {
            let epoch = self.step / per_epoch;
            let skip = (self.step % per_epoch) as usize;
            let left = (total - self.step) as usize;
            let batches = train.batches(opts.batch_size, opts.seed, epoch)?;
            for batch in batches.skip(skip).take(left) {
                let (loss, acc) = self.train_step(&batch)?;
                let s = smooth.map_or(loss, |m| 0.9 * m + 0.1 * loss);
                smooth = Some(s);
                if let Some(a) = acc {
                    epoch_acc = (epoch_acc.0 + a, epoch_acc.1 + 1);
                }
                let shown_acc = (epoch_acc.1 > 0).then(|| epoch_acc.0 / epoch_acc.1 as f64);
                progress.update(self.step, s, shown_acc);
                if opts.eval_every > 0 && self.step.is_multiple_of(opts.eval_every) {
                    self.evaluate_into_history(test, progress)?;
                }
                if opts.checkpoint_every > 0
                    && self.step.is_multiple_of(opts.checkpoint_every)
                    && self.is_root()
                {
                    if let Some(path) = &opts.checkpoint {
                        self.save_checkpoint(path)?;
                    }
                }
            }
            epoch_acc = (0.0, 0);
            if opts.eval_every == 0 && self.step.is_multiple_of(per_epoch) {
                self.evaluate_into_history(test, progress)?;
            }
        }
        let evaluated = self.history.last_evaluation().map(|e| e.step) == Some(self.step);
        if !evaluated {
            self.evaluate_into_history(test, progress)?;
        }
        if let (Some(path), true) = (&opts.checkpoint, self.is_root()) {
            self.save_checkpoint(path)?;
        }
        Ok(())
    }

    /// Evaluates on `test` (on rank 0 only: the replicas hold the same parameters).
    fn evaluate_into_history(
        &mut self,
        test: Option<&Dataset>,
        progress: &mut Progress,
    ) -> Result<(), TrainError> {
        let Some(test) = test.filter(|_| self.is_root()) else {
            return Ok(());
        };
        let e = self.evaluate(test)?;
        let acc = e
            .accuracy
            .map_or(String::new(), |a| format!("  accuracy {:.2}%", a * 100.0));
        progress.println(&format!("step {}: test loss {:.4}{acc}", e.step, e.loss));
        self.history.evaluations.push(e);
        Ok(())
    }

    /// Runs one training step on `batch` (the next step: [`Trainer::step`] + 1), returning the
    /// loss and the batch accuracy, and recording both in the history.
    pub fn train_step(&mut self, batch: &Batch) -> Result<(f64, Option<f64>), TrainError> {
        let index = self.step;
        let lr = self.learning_rate(index);
        let stream = match self.rank() {
            0 => format!("random inputs of step {index}"),
            r => format!("random inputs of step {index} on replica {r}"),
        };
        let mut rng = Rng::derive(self.options.seed, &stream);
        let (rank, replicas) = (self.rank(), self.replicas());
        let shard = |t: &HostTensor| -> Result<HostTensor, TrainError> {
            if replicas == 1 {
                return Ok(t.clone());
            }
            shard_rows(t, rank, replicas).ok_or_else(|| {
                TrainError::Config(format!(
                    "a batch of {} does not split into {replicas} equal shards",
                    t.ty()
                ))
            })
        };
        let (features, labels) = (shard(&batch.features)?, shard(&batch.labels)?);
        let mut feeds = Feeds::new();
        let mut fed_labels = None;
        for (name, ty) in self.step_fn.inputs() {
            let value = if name == FEATURES_INPUT {
                conform(name, &features, ty)?
            } else if name == LABELS_INPUT {
                let y = conform(name, &labels, ty)?;
                fed_labels = Some(y.clone());
                y
            } else if name == LR_INPUT {
                HostTensor::from_f64_as(ty.dtype, [], &[lr]).expect("a scalar")
            } else if let Some(r) = self.random_inputs.iter().find(|r| &r.name == name) {
                r.sample(&mut rng)
            } else {
                return Err(unfed_input(name));
            };
            feeds.insert(name.clone(), value);
        }
        let out = self.step_fn.run(&feeds)?;
        let step = index + 1;
        let loss = scalar(&out, "loss");
        if !loss.is_finite() {
            return Err(TrainError::NonFinite {
                step,
                tensor: "the loss".into(),
                value: loss,
            });
        }
        // A step that loss scaling skipped moved nothing: its non-finite gradients are the
        // signal that halved the scale, not a divergence.
        let skipped = out
            .output(loss_scale::SKIPPED_OUTPUT)
            .is_some_and(|t| t.to_f64_vec().first() == Some(&1.0));
        if skipped {
            self.history.skipped_steps.push(step);
        }
        let mut norms = Vec::with_capacity(self.trainable.len());
        for name in &self.trainable {
            let sq = scalar(&out, &format!("{name}{GRAD_SQ_SUFFIX}"));
            if !sq.is_finite() && !skipped {
                return Err(TrainError::NonFinite {
                    step,
                    tensor: format!("the gradient of `{name}` (its sum of squares)"),
                    value: sq,
                });
            }
            norms.push((name.clone(), sq.sqrt()));
        }
        self.step = step;
        let labels = fed_labels.unwrap_or(labels);
        let acc = out.output("logits").and_then(|z| accuracy(z, &labels));
        self.history.train_loss.push((step, loss));
        if let Some(a) = acc {
            self.history.train_accuracy.push((step, a));
        }
        let every = self.options.grad_norm_every;
        if every > 0 && step.is_multiple_of(every) {
            self.history.grad_norms.push(GradNorms { step, norms });
        }
        Ok((loss, acc))
    }

    /// The mean loss and the accuracy of the current parameters on `data`, computed by the
    /// evaluation graph ([`Mode::Eval`]).
    ///
    /// A split of up to `eval_batch_size` examples is evaluated in one call. A larger one is
    /// cut into chunks of that size, the last padded with examples from the start of the split:
    /// the padding is left out of the accuracy, but the loss of that chunk is the mean over
    /// the padded chunk, weighted by its real examples.
    pub fn evaluate(&mut self, data: &Dataset) -> Result<Evaluation, TrainError> {
        let n = data.len();
        if n == 0 {
            return Err(TrainError::Config(
                "cannot evaluate on an empty data set".into(),
            ));
        }
        let bs = n.min(self.options.eval_batch_size.max(1));
        self.prepare_eval(bs)?;
        let eval = self.eval.as_mut().expect("prepared above");
        let mut rng = Rng::derive(self.options.seed, "random inputs of evaluation");
        let (mut loss_sum, mut correct, mut counted) = (0.0, 0.0, 0usize);
        let mut has_acc = true;
        for start in (0..n).step_by(bs) {
            let real = (n - start).min(bs);
            let indices: Vec<usize> = (start..start + bs).map(|i| i % n).collect();
            let chunk = data.select(&indices)?;
            let mut feeds = Feeds::new();
            let mut labels = chunk.labels().clone();
            for (name, ty) in eval.step_fn.inputs() {
                let value = if name == FEATURES_INPUT {
                    conform(name, chunk.features(), ty)?
                } else if name == LABELS_INPUT {
                    labels = conform(name, chunk.labels(), ty)?;
                    labels.clone()
                } else if let Some(r) = eval.random_inputs.iter().find(|r| &r.name == name) {
                    r.sample(&mut rng)
                } else {
                    return Err(unfed_input(name));
                };
                feeds.insert(name.clone(), value);
            }
            let out = eval.step_fn.run(&feeds)?;
            loss_sum += scalar(&out, "loss") * real as f64;
            let acc = out.output("logits").and_then(|z| {
                if real == bs {
                    accuracy(z, &labels)
                } else {
                    accuracy(&slice_rows(z, bs, real)?, &slice_rows(&labels, bs, real)?)
                }
            });
            match acc {
                Some(a) => correct += a * real as f64,
                None => has_acc = false,
            }
            counted += real;
        }
        Ok(Evaluation {
            step: self.step,
            loss: loss_sum / counted as f64,
            accuracy: has_acc.then(|| correct / counted as f64),
        })
    }

    /// The model's logits for `inputs` — the features of `n` examples, `[n, ...]` as a data
    /// set's — computed by the evaluation graph ([`Mode::Eval`]) with the current parameters:
    /// one row of the model's [`Forward::logits`] per example, `[n, ...]`.
    ///
    /// Inputs are fed as [`Trainer::evaluate`] feeds them (in chunks of up to
    /// `eval_batch_size`, cast and reshaped to the model's `x`); the labels input `y`, which
    /// only the loss reads, is fed zeros. Errors: no examples, a model without logits, an input
    /// that does not fit `x`.
    pub fn predict(&mut self, inputs: &HostTensor) -> Result<HostTensor, TrainError> {
        let n = inputs.shape().dims().first().copied().unwrap_or(0);
        if n == 0 {
            return Err(TrainError::Config(format!(
                "predict needs at least one example [n, ...], got {}",
                inputs.ty()
            )));
        }
        let bs = n.min(self.options.eval_batch_size.max(1));
        self.prepare_eval(bs)?;
        let eval = self.eval.as_mut().expect("prepared above");
        let mut rng = Rng::derive(self.options.seed, "random inputs of prediction");
        let mut values = Vec::new();
        let mut row_type: Option<TensorType> = None;
        for start in (0..n).step_by(bs) {
            let real = (n - start).min(bs);
            let indices: Vec<usize> = (start..start + bs).map(|i| i % n).collect();
            let chunk = gather_rows(inputs, &indices);
            let mut feeds = Feeds::new();
            for (name, ty) in eval.step_fn.inputs() {
                let value = if name == FEATURES_INPUT {
                    conform(name, &chunk, ty)?
                } else if name == LABELS_INPUT {
                    HostTensor::zeros(ty.dtype, ty.shape.clone())
                } else if let Some(r) = eval.random_inputs.iter().find(|r| &r.name == name) {
                    r.sample(&mut rng)
                } else {
                    return Err(unfed_input(name));
                };
                feeds.insert(name.clone(), value);
            }
            let out = eval.step_fn.run(&feeds)?;
            let logits = out.output("logits").ok_or_else(|| {
                TrainError::Config("predict needs a model that returns logits".into())
            })?;
            let kept = slice_rows(logits, bs, real).ok_or_else(|| {
                TrainError::Config(format!(
                    "the logits {} do not have one row per example (batch {bs})",
                    logits.ty()
                ))
            })?;
            row_type.get_or_insert_with(|| logits.ty());
            values.extend(kept.to_f64_vec());
        }
        let ty = row_type.expect("at least one chunk");
        let mut shape = ty.shape.dims().to_vec();
        shape[0] = n;
        Ok(HostTensor::from_f64_as(ty.dtype, shape, &values).expect("one row per example"))
    }

    /// Compiles the evaluation graph for batch size `bs` (once) and copies the current
    /// parameters into it.
    fn prepare_eval(&mut self, bs: usize) -> Result<(), TrainError> {
        if self.eval.as_ref().is_none_or(|e| e.batch_size != bs) {
            let pass = Pass {
                mode: Mode::Eval,
                batch_size: bs,
            };
            let mut built = build(
                &format!("{}_eval", self.name),
                &*self.model,
                &pass,
                self.options.seed,
                1,
            );
            let params: Vec<String> = built
                .graph
                .parameters()
                .iter()
                .filter_map(|&p| built.graph.leaf_name(p).map(str::to_string))
                .collect();
            let b = Builder::from_graph(std::mem::replace(&mut built.graph, Graph::new("")));
            let mut graph = b.finish();
            // Evaluation computes in the precision training does.
            if self.options.precision != Precision::F32 {
                graph = apply_precision(&graph, self.options.precision, &[])
                    .map_err(|e| TrainError::Config(e.to_string()))?
                    .graph;
            }
            let step_fn = compile(&graph, &jit_options(&self.options))?;
            self.eval = Some(EvalStep {
                step_fn,
                batch_size: bs,
                params,
                initial: built.initial,
                random_inputs: built.random_inputs,
            });
        }
        let eval = self.eval.as_mut().expect("compiled above");
        for name in &eval.params {
            let value = self
                .step_fn
                .param(name)
                .or_else(|| eval.initial.get(name).cloned());
            if let Some(value) = value {
                set_known_param(&mut eval.step_fn, name, &value)?;
            }
        }
        Ok(())
    }

    /// Saves the parameters, the optimizer state and the step to `path` atomically (see
    /// [`crate::checkpoint::save_checkpoint`]); on error the previous file is intact.
    pub fn save_checkpoint(&self, path: impl AsRef<Path>) -> Result<(), TrainError> {
        let mut ckpt = Checkpoint::new(self.step);
        for (name, value) in self.step_fn.params() {
            ckpt.tensors.insert(name, value);
        }
        ckpt.metadata.insert(META_MODEL.into(), self.name.clone());
        ckpt.metadata
            .insert(META_SEED.into(), self.options.seed.to_string());
        ckpt.metadata
            .insert(META_BATCH.into(), self.options.batch_size.to_string());
        save_checkpoint(path, &ckpt)?;
        Ok(())
    }

    /// Loads a checkpoint saved by [`Trainer::save_checkpoint`] and continues from it: the
    /// parameters, optimizer state and step are restored, so [`Trainer::fit`] carries on with
    /// the same batches and random draws the uninterrupted run would have used. Returns the
    /// step.
    ///
    /// Every tensor's name, dtype and shape is checked against the compiled step, and the
    /// checkpoint's seed and batch size against the options; on any error (a missing,
    /// truncated, corrupted or mismatched file) the trainer is left unchanged.
    pub fn resume(&mut self, path: impl AsRef<Path>) -> Result<u64, TrainError> {
        let path = path.as_ref();
        let expected: Vec<(String, TensorType)> = self
            .step_fn
            .params()
            .into_iter()
            .map(|(n, t)| (n, t.ty()))
            .collect();
        let ckpt = load_checkpoint_matching(path, &expected)?;
        for (key, ours) in [
            (META_SEED, self.options.seed.to_string()),
            (META_BATCH, self.options.batch_size.to_string()),
        ] {
            if let Some(theirs) = ckpt.metadata.get(key) {
                if *theirs != ours {
                    return Err(TrainError::Config(format!(
                        "checkpoint {} was trained with {key} {theirs}, but this trainer uses \
                         {ours}: resuming would not continue the same run",
                        path.display()
                    )));
                }
            }
        }
        self.step_fn.set_params(&ckpt.tensors)?;
        self.step = ckpt.step;
        Ok(self.step)
    }

    /// How many steps dynamic loss scaling skipped so far (a gradient was not finite); 0
    /// without loss scaling. [`History::skipped_steps`] lists them.
    pub fn skipped_steps(&self) -> usize {
        self.history.skipped_steps.len()
    }

    /// The number of training steps done.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The learning rate fed at step `index` (from 0).
    pub fn learning_rate(&self, index: u64) -> f64 {
        self.schedule.lr(self.base_lr, index)
    }

    /// What happened so far (since construction; a resumed trainer's history starts at the
    /// resume).
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The recorded per-parameter gradient norms (every
    /// [`TrainerOptions::grad_norm_every`] steps).
    pub fn gradient_norms(&self) -> &[GradNorms] {
        &self.history.grad_norms
    }

    /// The names of the trained parameters, in declaration order.
    pub fn trainable(&self) -> &[String] {
        &self.trainable
    }

    /// The current value of a parameter, state or optimizer-state tensor.
    pub fn param(&self, name: &str) -> Option<HostTensor> {
        self.step_fn.param(name)
    }

    /// Every parameter, state and optimizer-state tensor, by name.
    pub fn params(&self) -> Feeds {
        self.step_fn.params().into_iter().collect()
    }

    /// The model's parameters and state (batch-norm statistics …) by name, without the
    /// optimizer's: what a PyTorch `state_dict` holds.
    pub fn model_params(&self) -> Feeds {
        self.step_fn
            .params()
            .into_iter()
            .filter(|(n, _)| !self.optimizer_state.contains(n))
            .collect()
    }

    /// Loads a plain safetensors file (a PyTorch `state_dict`, …) into the model's parameters
    /// by name through `map`, converting dtypes (see [`crate::weights`]); returns what was
    /// loaded, converted, missing and unexpected. On error nothing changes.
    pub fn import_safetensors(
        &mut self,
        path: impl AsRef<Path>,
        map: &WeightMap,
    ) -> Result<ImportReport, TrainError> {
        let expected: Vec<(String, TensorType)> = self
            .model_params()
            .into_iter()
            .map(|(n, t)| (n, t.ty()))
            .collect();
        let report = import_safetensors(path, &expected, map)?;
        self.step_fn.set_params(&report.loaded)?;
        Ok(report)
    }

    /// Writes the model's parameters ([`Trainer::model_params`]) as a plain safetensors file
    /// named and laid out as `map` says (see [`crate::weights::export_safetensors`]).
    pub fn export_safetensors(
        &self,
        path: impl AsRef<Path>,
        map: &WeightMap,
    ) -> Result<(), TrainError> {
        export_safetensors(path, &self.model_params(), map)?;
        Ok(())
    }

    /// Replaces the values of the named parameters (types must match).
    pub fn set_params(&mut self, values: &Feeds) -> Result<(), TrainError> {
        self.step_fn.set_params(values)?;
        Ok(())
    }

    /// The options.
    pub fn options(&self) -> &TrainerOptions {
        &self.options
    }

    /// The compiled training step (for its statistics or kernels).
    pub fn compiled_step(&self) -> &CompiledStep {
        &self.step_fn
    }
}

/// Calls the model function in a fresh builder and collects what it declared; `replicas` is
/// the data-parallel group size the graph runs on (1 alone, and for evaluation).
fn build(name: &str, model: &ModelFn, pass: &Pass, seed: u64, replicas: usize) -> Built {
    let b = Builder::new(name);
    let mut params = Params::new(&b, seed).with_replicas(replicas);
    let fwd = model(&mut params, pass);
    b.output("loss", fwd.loss);
    if let Some(logits) = fwd.logits {
        b.output("logits", logits);
    }
    let loss = fwd.loss.id();
    let trainable = params.trainable().to_vec();
    let random_inputs = params.random_inputs().to_vec();
    let initial = params.into_initial_values();
    Built {
        graph: b.finish(),
        loss,
        trainable,
        random_inputs,
        initial,
    }
}

fn jit_options(options: &TrainerOptions) -> Options {
    Options {
        fusion: true,
        threads: options.threads,
        ..Options::default()
    }
}

fn build_error(e: adjoint_ir::BuildError) -> TrainError {
    TrainError::Config(e.to_string())
}

/// Sets a parameter, skipping one the compiled step does not have (the planner removed it as
/// unused).
fn set_known_param(
    step: &mut CompiledStep,
    name: &str,
    value: &HostTensor,
) -> Result<(), TrainError> {
    match step.set_param(name, value) {
        Ok(()) | Err(JitError::UnknownParameter { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn set_known_params<'a>(
    step: &mut CompiledStep,
    values: impl Iterator<Item = (&'a String, &'a HostTensor)>,
) -> Result<(), TrainError> {
    for (name, value) in values {
        set_known_param(step, name, value)?;
    }
    Ok(())
}

fn unfed_input(name: &str) -> TrainError {
    TrainError::Config(format!(
        "the model declares the input `{name}`, which the trainer does not feed (it feeds \
         `{FEATURES_INPUT}`, `{LABELS_INPUT}`, `{LR_INPUT}` and the random inputs declared with \
         Params::random_input)"
    ))
}

/// The first element of output `name` as f64 (NaN when missing, which fails the checks).
fn scalar(out: &StepOutputs, name: &str) -> f64 {
    out.output(name)
        .and_then(|t| t.to_f64_vec().first().copied())
        .unwrap_or(f64::NAN)
}
