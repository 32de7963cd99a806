//! The parameter store that layers declare their parameters in.

use crate::init::Initializer;
use adjoint_ir::{Builder, DType, Feeds, HostTensor, Rng, Tensor, TensorType};

/// An input the training loop fills with fresh random values at every step (dropout masks).
#[derive(Clone, Debug, PartialEq)]
pub struct RandomInput {
    /// The input's name.
    pub name: String,
    /// Its type.
    pub ty: TensorType,
    /// What to draw.
    pub kind: RandomKind,
}

/// The distribution of a [`RandomInput`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RandomKind {
    /// Each element `1/keep` with probability `keep`, else 0 (an inverted-dropout mask).
    DropoutMask {
        /// Probability of keeping an element.
        keep: f64,
    },
}

/// Declares parameters in a [`Builder`] and records their seeded initial values.
///
/// Names are scoped like PyTorch module paths (`block1.attn.wq`): [`Params::scope`] returns a
/// store whose parameters are prefixed. Each parameter draws from its own random stream,
/// derived from the seed and its full name, so adding or reordering layers never changes the
/// initial values of the others.
///
/// ```
/// use adjoint_ir::{Builder, DType};
/// use adjoint_nn::{Initializer, Params};
///
/// let b = Builder::new("net");
/// let mut params = Params::new(&b, 42);
/// let w = params.get("layer1.w", &[3, 4], Initializer::XavierUniform);
/// assert_eq!(w.shape().dims(), &[3, 4]);
/// assert_eq!(params.initial_values()["layer1.w"].numel(), 12);
/// ```
pub struct Params<'b> {
    builder: &'b Builder,
    seed: u64,
    prefix: String,
    dtype: DType,
    values: Feeds,
    trainable: Vec<String>,
    random_inputs: Vec<RandomInput>,
    replicas: usize,
}

impl<'b> Params<'b> {
    /// A store declaring f32 parameters in `builder`, initialized from `seed`.
    pub fn new(builder: &'b Builder, seed: u64) -> Params<'b> {
        Params {
            builder,
            seed,
            prefix: String::new(),
            dtype: DType::F32,
            values: Feeds::new(),
            trainable: Vec::new(),
            random_inputs: Vec::new(),
            replicas: 1,
        }
    }

    /// The same store for a graph that runs as one of `replicas` data-parallel replicas:
    /// layers that compute batch statistics ([`crate::layers::BatchNorm`]) combine them over
    /// the replicas (synchronized batch norm). The trainer sets it for a replica's training
    /// step.
    pub fn with_replicas(mut self, replicas: usize) -> Params<'b> {
        self.replicas = replicas.max(1);
        self
    }

    /// The number of data-parallel replicas the graph runs on (1 unless
    /// [`Params::with_replicas`] said otherwise).
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// The same store declaring parameters of `dtype` (f32 or f64) from now on.
    pub fn with_dtype(mut self, dtype: DType) -> Params<'b> {
        self.dtype = dtype;
        self
    }

    /// The builder parameters are declared in.
    pub fn builder(&self) -> &'b Builder {
        self.builder
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The float dtype of declared parameters.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Runs `f` with every parameter name prefixed by `name.` (scopes nest).
    pub fn scope<R>(&mut self, name: &str, f: impl FnOnce(&mut Params<'b>) -> R) -> R {
        let saved = self.prefix.clone();
        self.prefix = self.full_name(name);
        let r = f(self);
        self.prefix = saved;
        r
    }

    /// `name` with the current scope prefix.
    pub fn full_name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// Declares the trainable parameter `name` (scoped) of `shape`, initialized by `init`.
    ///
    /// Panics at the caller's location if the name is already taken.
    #[track_caller]
    pub fn get(&mut self, name: &str, shape: &[usize], init: Initializer) -> Tensor<'b> {
        let t = self.state(name, shape, init);
        self.trainable.push(self.full_name(name));
        t
    }

    /// Declares a parameter that the optimizer does not train but the step may update (running
    /// statistics of batch norm): a graph parameter with an initial value, left out of
    /// [`Params::trainable`].
    #[track_caller]
    pub fn state(&mut self, name: &str, shape: &[usize], init: Initializer) -> Tensor<'b> {
        let full = self.full_name(name);
        let t = self.builder.parameter(&full, self.dtype, shape);
        let mut rng = Rng::derive(self.seed, &full);
        let values = init.sample(shape, &mut rng);
        let value = HostTensor::from_f64_as(self.dtype, shape, &values).expect("sized from shape");
        self.values.insert(full, value);
        t
    }

    /// Declares an input (scoped name) that the training loop fills with fresh random values of
    /// `kind` at every step.
    #[track_caller]
    pub fn random_input(&mut self, name: &str, shape: &[usize], kind: RandomKind) -> Tensor<'b> {
        let full = self.full_name(name);
        let t = self.builder.input(&full, self.dtype, shape);
        self.random_inputs.push(RandomInput {
            name: full,
            ty: TensorType::new(self.dtype, shape),
            kind,
        });
        t
    }

    /// Full names of the trainable parameters, in declaration order.
    pub fn trainable(&self) -> &[String] {
        &self.trainable
    }

    /// The inputs to refill with random values at every step.
    pub fn random_inputs(&self) -> &[RandomInput] {
        &self.random_inputs
    }

    /// Records the initial value of a non-float parameter or state declared elsewhere (e.g. a
    /// step counter).
    pub fn set_initial(&mut self, name: &str, value: HostTensor) {
        self.values.insert(name.to_string(), value);
    }

    /// The initial value of every parameter declared so far, by full name.
    pub fn initial_values(&self) -> &Feeds {
        &self.values
    }

    /// Ends declaration, returning the initial values.
    pub fn into_initial_values(self) -> Feeds {
        self.values
    }
}

impl RandomInput {
    /// A fresh draw for this input from `rng`.
    pub fn sample(&self, rng: &mut Rng) -> HostTensor {
        let n = self.ty.shape.numel();
        let values: Vec<f64> = match self.kind {
            RandomKind::DropoutMask { keep } => (0..n)
                .map(|_| {
                    if rng.uniform() < keep {
                        1.0 / keep
                    } else {
                        0.0
                    }
                })
                .collect(),
        };
        HostTensor::from_f64_as(self.ty.dtype, self.ty.shape.clone(), &values)
            .expect("sized from the type")
    }
}
