//! Training-step builder: one graph that computes the loss, the gradients, the new parameter
//! values and the new optimizer state, each new value declared as its parameter's update.

use crate::data_parallel::{all_reduce_gradients, DataParallel};
use crate::error::GradError;
use crate::grad::{append_grad, display_name};
use crate::loss_scale::{LossScaling, Scaler, GOOD_STEPS_PARAM, SCALE_PARAM};
use crate::mixed::{apply_precision, Precision};
use adjoint_ir::{BuildError, Builder, DType, Feeds, Graph, HostTensor, NodeId, Op, Tensor};

/// The learning rate of an [`Optimizer`]: a constant baked into the graph, or a scalar input fed
/// at every step (for schedules).
#[derive(Clone, Debug, PartialEq)]
pub enum LearningRate {
    /// A constant.
    Constant(f64),
    /// A rank-0 input of this name, of the parameters' float type (created if the graph does
    /// not have it yet).
    Input(String),
}

impl LearningRate {
    /// A learning rate fed as the scalar input `name`.
    pub fn input(name: &str) -> LearningRate {
        LearningRate::Input(name.to_string())
    }
}

impl From<f64> for LearningRate {
    fn from(lr: f64) -> LearningRate {
        LearningRate::Constant(lr)
    }
}

/// How each parameter moves given its gradient.
#[derive(Clone, Debug, PartialEq)]
pub enum UpdateRule {
    /// `w ← w - lr·g`.
    Sgd,
    /// Heavy-ball momentum (PyTorch's form, no dampening): `buf ← μ·buf + g`, then
    /// `w ← w - lr·buf`, or with Nesterov `w ← w - lr·(g + μ·buf)`. State: `<param>.momentum`.
    Momentum {
        /// μ.
        momentum: f64,
        /// Use the Nesterov look-ahead.
        nesterov: bool,
    },
    /// Adam with bias correction: `t ← t + 1`, `m ← β1·m + (1-β1)·g`, `v ← β2·v + (1-β2)·g²`,
    /// `w ← w - (lr / c1)·(m / (sqrt(v) / c2 + ε))` with `c1 = 1-β1^t` and `c2 = sqrt(1-β2^t)`
    /// (PyTorch's arrangement: the step size `lr / c1` is one scalar, so each element takes two
    /// divisions). The corrections `c1` and `c2` are computed in f64 and cast once
    /// to the parameter's dtype, as PyTorch computes them in Python floats: in f32 they would be
    /// off by up to 1e-5 relative (β2 = 0.999 rounds to 0.99900001), and every early update with
    /// them. State: `<param>.adam_m`, `<param>.adam_v` and one shared step counter `adam.step`
    /// (a rank-0 f64 parameter, exact for any realistic number of steps).
    Adam {
        /// β1, the first-moment decay.
        beta1: f64,
        /// β2, the second-moment decay.
        beta2: f64,
        /// ε, added to the denominator.
        eps: f64,
    },
}

/// An optimizer configuration for [`training_step`].
///
/// ```
/// use adjoint_autodiff::{LearningRate, Optimizer};
/// let sgd = Optimizer::sgd(0.01);
/// let nesterov = Optimizer::momentum(0.1, 0.9).with_nesterov();
/// let adamw = Optimizer::adam(LearningRate::input("lr"))
///     .with_weight_decay(0.01)
///     .with_clip_global_norm(1.0);
/// assert_ne!(sgd, nesterov);
/// assert_eq!(adamw.lr, LearningRate::Input("lr".into()));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Optimizer {
    /// The update rule.
    pub rule: UpdateRule,
    /// The learning rate.
    pub lr: LearningRate,
    /// Weight decay λ (0 for none). SGD and momentum add `λ·w` to the gradient (L2
    /// regularization); Adam decays decoupled from the gradient (AdamW): `w ← w - lr·λ·w`
    /// before the Adam step.
    pub weight_decay: f64,
    /// Clip the global gradient norm: when `‖g‖ = sqrt(Σ_p sum(g_p²))` exceeds `c`, every
    /// gradient is scaled by `c / (‖g‖ + 1e-6)` (PyTorch's `clip_grad_norm_`), before weight
    /// decay and the update rule.
    pub clip_global_norm: Option<f64>,
    /// Train as one replica of a data-parallel group: each gradient is replaced by its mean
    /// over the replicas (`all_reduce_mean`, in buckets) before clipping, weight decay and the
    /// update rule ([`crate::data_parallel`]).
    pub data_parallel: Option<DataParallel>,
}

impl Optimizer {
    /// Plain SGD.
    pub fn sgd(lr: impl Into<LearningRate>) -> Optimizer {
        Optimizer::with_rule(UpdateRule::Sgd, lr)
    }

    /// SGD with heavy-ball momentum μ.
    pub fn momentum(lr: impl Into<LearningRate>, momentum: f64) -> Optimizer {
        Optimizer::with_rule(
            UpdateRule::Momentum {
                momentum,
                nesterov: false,
            },
            lr,
        )
    }

    /// Adam with β1 0.9, β2 0.999, ε 1e-8.
    pub fn adam(lr: impl Into<LearningRate>) -> Optimizer {
        Optimizer::adam_with(lr, 0.9, 0.999, 1e-8)
    }

    /// Adam with the given β1, β2 and ε.
    pub fn adam_with(lr: impl Into<LearningRate>, beta1: f64, beta2: f64, eps: f64) -> Optimizer {
        Optimizer::with_rule(UpdateRule::Adam { beta1, beta2, eps }, lr)
    }

    fn with_rule(rule: UpdateRule, lr: impl Into<LearningRate>) -> Optimizer {
        Optimizer {
            rule,
            lr: lr.into(),
            weight_decay: 0.0,
            clip_global_norm: None,
            data_parallel: None,
        }
    }

    /// Switches momentum to Nesterov momentum (no effect on other rules).
    pub fn with_nesterov(mut self) -> Optimizer {
        if let UpdateRule::Momentum { nesterov, .. } = &mut self.rule {
            *nesterov = true;
        }
        self
    }

    /// Sets the weight decay λ.
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Optimizer {
        self.weight_decay = weight_decay;
        self
    }

    /// Averages the gradients over `replicas` data-parallel replicas before the update
    /// ([`DataParallel::new`]; 1 changes nothing).
    pub fn with_data_parallel(self, replicas: usize) -> Optimizer {
        self.with_data_parallel_options(DataParallel::new(replicas))
    }

    /// Averages the gradients over the replicas of `dp` before the update.
    pub fn with_data_parallel_options(mut self, dp: DataParallel) -> Optimizer {
        self.data_parallel = (dp.replicas > 1).then_some(dp);
        self
    }

    /// Clips the global gradient norm at `max_norm`.
    pub fn with_clip_global_norm(mut self, max_norm: f64) -> Optimizer {
        self.clip_global_norm = Some(max_norm);
        self
    }
}

/// One trained parameter of a [`StepGraph`].
#[derive(Clone, Debug, PartialEq)]
pub struct TrainedParam {
    /// Its name.
    pub name: String,
    /// The parameter node.
    pub param: NodeId,
    /// Its gradient (before clipping and weight decay; with data parallelism, the mean over
    /// the replicas).
    pub grad: NodeId,
    /// Its new value, declared as its update.
    pub update: NodeId,
}

/// A training step: a graph computing the loss, the gradients, the new parameter values and the
/// new optimizer state, with every new value declared as the update of its parameter.
#[derive(Clone, Debug)]
pub struct StepGraph {
    /// The step graph.
    pub graph: Graph,
    /// The loss node.
    pub loss: NodeId,
    /// The trained parameters, in the order given.
    pub params: Vec<TrainedParam>,
    /// The optimizer-state parameters the step created (momentum buffers, Adam moments, step
    /// counter), by name, with the value they start from (zeros). A runtime feeds these along
    /// with the model's parameters at the first step.
    pub state: Vec<(String, HostTensor)>,
    /// The learning-rate input to feed at every step, when the rate is [`LearningRate::Input`].
    pub lr_input: Option<String>,
}

/// The suffix of the outputs [`StepGraph::with_gradient_outputs`] adds: `<param>.grad`.
pub const GRAD_OUTPUT_SUFFIX: &str = ".grad";

impl StepGraph {
    /// The optimizer state's starting values by name ([`StepGraph::state`] as a map): set them
    /// on a step along with the model's parameters before the first run.
    pub fn initial_state(&self) -> Feeds {
        self.state.iter().cloned().collect()
    }

    /// The same step with one more output per trained parameter, `<param>.grad`
    /// ([`GRAD_OUTPUT_SUFFIX`]): its gradient, before clipping and weight decay.
    pub fn with_gradient_outputs(self) -> StepGraph {
        let b = Builder::from_graph(self.graph);
        for p in &self.params {
            b.output(&format!("{}{GRAD_OUTPUT_SUFFIX}", p.name), b.tensor(p.grad));
        }
        StepGraph {
            graph: b.finish(),
            ..self
        }
    }

    /// The name of the output holding `param`'s gradient after
    /// [`StepGraph::with_gradient_outputs`].
    pub fn grad_output(param: &str) -> String {
        format!("{param}{GRAD_OUTPUT_SUFFIX}")
    }
}

/// Appends to `graph` the gradients of `loss` with respect to `params` and the update of
/// `opt` for every parameter (and its optimizer state): one graph for a whole training step.
///
/// Errors: those of [`crate::append_grad`]; a `params` node that is not a parameter; a state or
/// learning-rate name that already belongs to a leaf of another type.
pub fn training_step(
    graph: Graph,
    loss: NodeId,
    params: &[NodeId],
    opt: &Optimizer,
) -> Result<StepGraph, GradError> {
    training_step_with(graph, loss, params, opt, &MixedPrecision::default())
}

/// How a training step handles precision: the policy ([`Precision`]) and, optionally, dynamic
/// loss scaling ([`LossScaling`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MixedPrecision {
    /// Which values are 16-bit (see [`crate::mixed`]).
    pub precision: Precision,
    /// Dynamic loss scaling, if any.
    pub loss_scaling: Option<LossScaling>,
}

impl MixedPrecision {
    /// `precision` with the loss scaling it needs: PyTorch's default dynamic scaling for
    /// [`Precision::F16`] (whose narrow range flushes small gradients to zero), none otherwise.
    pub fn new(precision: Precision) -> MixedPrecision {
        MixedPrecision {
            precision,
            loss_scaling: (precision == Precision::F16).then(LossScaling::default),
        }
    }
}

/// [`training_step`] under a precision policy: the policy is applied to the forward graph
/// first ([`apply_precision`]; `loss` and `params` are nodes of `graph`, mapped), then the
/// gradients and updates are appended; with loss scaling, the step scales the loss, unscales
/// the gradients, skips every update when one is not finite and adjusts the scale (see
/// [`crate::loss_scale`]). The returned [`StepGraph`]'s nodes are those of the new graph.
pub fn training_step_with(
    graph: Graph,
    loss: NodeId,
    params: &[NodeId],
    opt: &Optimizer,
    mixed: &MixedPrecision,
) -> Result<StepGraph, GradError> {
    let (graph, loss, params) = if mixed.precision == Precision::F32 {
        (graph, loss, params.to_vec())
    } else {
        for &p in params.iter().chain([&loss]) {
            if !graph.contains(p) {
                return Err(GradError::NotInGraph {
                    role: "parameter or loss",
                    index: p.index(),
                });
            }
        }
        let rewritten =
            apply_precision(&graph, mixed.precision, &[loss]).map_err(GradError::InvalidGraph)?;
        let map = |id: NodeId| {
            rewritten
                .node(id)
                .expect("leaves and kept nodes are mapped")
        };
        let params: Vec<NodeId> = params.iter().map(|&p| map(p)).collect();
        let loss = map(loss);
        (rewritten.graph, loss, params)
    };
    build_step(graph, loss, &params, opt, mixed.loss_scaling.as_ref())
}

fn build_step(
    graph: Graph,
    loss: NodeId,
    params: &[NodeId],
    opt: &Optimizer,
    scaling: Option<&LossScaling>,
) -> Result<StepGraph, GradError> {
    for &p in params {
        if !graph.contains(p) {
            return Err(GradError::NotInGraph {
                role: "parameter",
                index: p.index(),
            });
        }
        if !matches!(graph.op(p), Op::Parameter { .. }) {
            return Err(GradError::NotAParameter {
                node: graph.describe(p),
            });
        }
    }
    let b = Builder::from_graph(graph);
    let mut step = Step {
        b: &b,
        opt,
        state: Vec::new(),
        counter: None,
        corrections: Vec::new(),
    };
    let scaler = match scaling {
        Some(settings) => {
            let scale = step
                .state_param_from(SCALE_PARAM, HostTensor::scalar_f32(settings.initial as f32))?;
            let good = step.state_param_from(GOOD_STEPS_PARAM, HostTensor::scalar_f32(0.0))?;
            Some(Scaler::new(scale, good, settings))
        }
        None => None,
    };
    let grads = match &scaler {
        Some(sc) => {
            let scaled = sc.scale_loss(b.tensor(loss))?;
            let raw = append_grad(&b, scaled.id(), params)?;
            raw.iter()
                .map(|&g| Ok(sc.unscale(b.tensor(g))?.id()))
                .collect::<Result<Vec<_>, GradError>>()?
        }
        None => append_grad(&b, loss, params)?,
    };
    let mut gs: Vec<Tensor<'_>> = grads.iter().map(|&g| b.tensor(g)).collect();
    if let Some(dp) = &opt.data_parallel {
        gs = all_reduce_gradients(&gs, dp)?;
    }
    let grads: Vec<NodeId> = gs.iter().map(|g| g.id()).collect();
    let finite = match &scaler {
        Some(sc) => Some(sc.all_finite(&gs)?),
        None => None,
    };
    if let Some(max_norm) = opt.clip_global_norm {
        gs = step.clip(&gs, max_norm)?;
    }
    let lr = step.learning_rate(params)?;
    let mut trained = Vec::with_capacity(params.len());
    for ((&p, &grad), g) in params.iter().zip(&grads).zip(gs) {
        let w = b.tensor(p);
        let name = display_name(&b.graph(), p);
        let lr = match lr {
            SharedRate::Constant(c) => w.scalar_like(c),
            SharedRate::Input(t) => t.try_cast(w.dtype())?,
        };
        let new = step.update(&name, w, g, lr)?;
        let new = new.named(&format!("{name}.new"));
        b.update(w, new);
        trained.push(TrainedParam {
            name,
            param: p,
            grad,
            update: new.id(),
        });
    }
    if let (Some(sc), Some(finite)) = (&scaler, finite) {
        sc.finish(&b, finite)?;
    }
    let state = step.state;
    let lr_input = match &opt.lr {
        LearningRate::Input(name) => Some(name.clone()),
        LearningRate::Constant(_) => None,
    };
    Ok(StepGraph {
        graph: b.finish(),
        loss,
        params: trained,
        state,
        lr_input,
    })
}

/// The float parameters of `graph`, in order: what [`training_step`] usually trains.
pub fn float_parameters(graph: &Graph) -> Vec<NodeId> {
    graph
        .parameters()
        .iter()
        .copied()
        .filter(|&p| graph.ty(p).dtype.is_float())
        .collect()
}

/// Emits the update of one step.
struct Step<'b, 'o> {
    b: &'b Builder,
    opt: &'o Optimizer,
    state: Vec<(String, HostTensor)>,
    /// Adam's incremented step counter `t + 1` (f64), once the first Adam update has created it.
    counter: Option<Tensor<'b>>,
    /// Adam's bias corrections `(1-β1^t, sqrt(1-β2^t))`, computed in f64 and cast once to each
    /// parameter dtype that needed them.
    corrections: Vec<(DType, Tensor<'b>, Tensor<'b>)>,
}

/// The learning rate shared by every parameter's update.
#[derive(Clone, Copy)]
enum SharedRate<'b> {
    /// A constant, emitted in each parameter's dtype.
    Constant(f64),
    /// The rank-0 learning-rate input, cast to each parameter's dtype.
    Input(Tensor<'b>),
}

impl<'b> Step<'b, '_> {
    /// A new optimizer-state parameter starting at zeros.
    fn state_param(
        &mut self,
        name: &str,
        dtype: DType,
        shape: &[usize],
    ) -> Result<Tensor<'b>, GradError> {
        let t = self
            .b
            .try_parameter(name, dtype, shape)
            .map_err(|_| self.taken(name))?;
        self.state
            .push((name.to_string(), HostTensor::zeros(dtype, shape)));
        Ok(t)
    }

    /// A new optimizer-state parameter starting at `init` (its type).
    fn state_param_from(&mut self, name: &str, init: HostTensor) -> Result<Tensor<'b>, GradError> {
        let t = self
            .b
            .try_parameter(name, init.dtype(), init.shape().clone())
            .map_err(|_| self.taken(name))?;
        self.state.push((name.to_string(), init));
        Ok(t)
    }

    fn taken(&self, name: &str) -> GradError {
        let g = self.b.graph();
        let holder = g
            .leaf(name)
            .map_or("another node".to_string(), |id| g.describe(id));
        GradError::NameTaken {
            name: name.to_string(),
            holder,
        }
    }

    /// The learning rate: the constant, or the rank-0 input (created if missing).
    fn learning_rate(&mut self, params: &[NodeId]) -> Result<SharedRate<'b>, GradError> {
        let name = match &self.opt.lr {
            LearningRate::Constant(c) => return Ok(SharedRate::Constant(*c)),
            LearningRate::Input(name) => name,
        };
        let dt = params
            .first()
            .map_or(DType::F32, |&p| self.b.tensor(p).dtype());
        let existing = self.b.graph().leaf(name);
        match existing {
            Some(id) => {
                let t = self.b.tensor(id);
                let is_input = matches!(self.b.graph().op(id), Op::Input { .. });
                if is_input && t.rank() == 0 && t.dtype().is_float() {
                    Ok(SharedRate::Input(t))
                } else {
                    Err(self.taken(name))
                }
            }
            None => Ok(SharedRate::Input(self.b.try_input(name, dt, [])?)),
        }
    }

    /// Adam's step counter after this step, `t + 1`; the first call creates the rank-0 f64
    /// parameter `adam.step` (starting at 0) and declares its update.
    fn counter(&mut self) -> Result<Tensor<'b>, GradError> {
        if let Some(t) = self.counter {
            return Ok(t);
        }
        let t = self.state_param("adam.step", DType::F64, &[])?;
        let next = t.try_add(t.scalar_like(1.0))?;
        self.b.update(t, next);
        self.counter = Some(next);
        Ok(next)
    }

    /// Adam's bias corrections `(1-β1^t, sqrt(1-β2^t))` for this step in `dtype`: computed in
    /// f64 from the f64 step counter and cast once, so the only rounding is the final cast.
    fn bias_corrections(
        &mut self,
        beta1: f64,
        beta2: f64,
        dtype: DType,
    ) -> Result<(Tensor<'b>, Tensor<'b>), GradError> {
        if let Some(&(_, c1, c2)) = self.corrections.iter().find(|c| c.0 == dtype) {
            return Ok((c1, c2));
        }
        let t = self.counter()?;
        let one = t.scalar_like(1.0);
        let c1 = one.try_sub(t.scalar_like(beta1).try_pow(t)?)?;
        let c2 = one.try_sub(t.scalar_like(beta2).try_pow(t)?)?.try_sqrt()?;
        let (c1, c2) = (c1.try_cast(dtype)?, c2.try_cast(dtype)?);
        self.corrections.push((dtype, c1, c2));
        Ok((c1, c2))
    }

    /// Scales every gradient by `min(1, c / (‖g‖ + 1e-6))`.
    fn clip(&self, gs: &[Tensor<'b>], max_norm: f64) -> Result<Vec<Tensor<'b>>, GradError> {
        let Some(first) = gs.first() else {
            return Ok(vec![]);
        };
        let dt = first.dtype();
        let mut total: Option<Tensor<'b>> = None;
        for &g in gs {
            let axes: Vec<isize> = (0..g.rank() as isize).collect();
            let sq = g.try_square()?.try_sum(&axes)?.try_cast(dt)?;
            total = Some(match total {
                Some(t) => t.try_add(sq)?,
                None => sq,
            });
        }
        let norm = total.expect("at least one gradient").try_sqrt()?;
        let scale = norm
            .scalar_like(max_norm)
            .try_div(norm.try_add(norm.scalar_like(1e-6))?)?
            .try_minimum(norm.scalar_like(1.0))?
            .named("grad_norm.scale");
        Ok(gs
            .iter()
            .map(|&g| g.try_mul(scale.try_cast(g.dtype())?))
            .collect::<Result<Vec<_>, BuildError>>()?)
    }

    /// The new value of parameter `w` with gradient `g`.
    fn update(
        &mut self,
        name: &str,
        w: Tensor<'b>,
        g: Tensor<'b>,
        lr: Tensor<'b>,
    ) -> Result<Tensor<'b>, GradError> {
        let opt = self.opt;
        let wd = opt.weight_decay;
        let dims = w.shape().dims().to_vec();
        Ok(match opt.rule {
            UpdateRule::Sgd => {
                let g = coupled_decay(w, g, wd)?;
                w.try_sub(lr.try_mul(g)?)?
            }
            UpdateRule::Momentum { momentum, nesterov } => {
                let g = coupled_decay(w, g, wd)?;
                let buf = self.state_param(&format!("{name}.momentum"), w.dtype(), &dims)?;
                let mu = w.scalar_like(momentum);
                let buf_next = mu.try_mul(buf)?.try_add(g)?;
                self.b.update(buf, buf_next);
                let dir = if nesterov {
                    g.try_add(mu.try_mul(buf_next)?)?
                } else {
                    buf_next
                };
                w.try_sub(lr.try_mul(dir)?)?
            }
            UpdateRule::Adam { beta1, beta2, eps } => {
                let (c1, c2) = self.bias_corrections(beta1, beta2, w.dtype())?;
                let m = self.state_param(&format!("{name}.adam_m"), w.dtype(), &dims)?;
                let v = self.state_param(&format!("{name}.adam_v"), w.dtype(), &dims)?;
                let (b1, b2) = (w.scalar_like(beta1), w.scalar_like(beta2));
                let m_next = b1
                    .try_mul(m)?
                    .try_add(w.scalar_like(1.0 - beta1).try_mul(g)?)?;
                let v_next = b2
                    .try_mul(v)?
                    .try_add(w.scalar_like(1.0 - beta2).try_mul(g.try_square()?)?)?;
                self.b.update(m, m_next);
                self.b.update(v, v_next);
                // PyTorch's `step_size = lr / c1`, a scalar, then `w - step_size·m / denom`:
                // two divisions per element (the denominator's and the step's), not three.
                let step_size = lr.try_div(c1)?;
                let denom = v_next
                    .try_sqrt()?
                    .try_div(c2)?
                    .try_add(w.scalar_like(eps))?;
                let step = m_next.try_div(denom)?;
                let decayed = if wd != 0.0 {
                    w.try_sub(lr.try_mul(w.scalar_like(wd))?.try_mul(w)?)?
                } else {
                    w
                };
                decayed.try_sub(step_size.try_mul(step)?)?
            }
        })
    }
}

/// `g + λ·w` (L2 weight decay), or `g` when λ is 0.
fn coupled_decay<'b>(w: Tensor<'b>, g: Tensor<'b>, wd: f64) -> Result<Tensor<'b>, BuildError> {
    if wd == 0.0 {
        Ok(g)
    } else {
        g.try_add(w.scalar_like(wd).try_mul(w)?)
    }
}
