//! Seeded parameter initialization and data for the workloads.

use adjoint_ir::{Builder, DType, Feeds, HostTensor, Rng, Shape, Tensor};

/// How a parameter starts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum InitKind {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// He (Kaiming) normal: `std = sqrt(2 / fan_in)`, for weights feeding a ReLU.
    He,
    /// LeCun normal: `std = 1 / sqrt(fan_in)`.
    LeCun,
    /// Normal with the given standard deviation.
    Normal(f64),
}

/// Collects the initial values and data of a workload as it is built, each from its own named
/// random stream so that adding a parameter never changes the others.
pub(crate) struct Init {
    seed: u64,
    pub(crate) feeds: Feeds,
}

impl Init {
    pub(crate) fn new(seed: u64) -> Init {
        Init {
            seed,
            feeds: Feeds::new(),
        }
    }

    fn rng(&self, name: &str) -> Rng {
        Rng::derive(self.seed, name)
    }

    /// Declares an f32 parameter of `shape` and records its initial value.
    pub(crate) fn param<'b>(
        &mut self,
        b: &'b Builder,
        name: &str,
        shape: &[usize],
        kind: InitKind,
    ) -> Tensor<'b> {
        let t = b.parameter(name, DType::F32, shape);
        let fan_in = shape.first().copied().unwrap_or(1) as f64;
        match kind {
            InitKind::Zeros => self.fill(t, name, 0.0),
            InitKind::Ones => self.fill(t, name, 1.0),
            InitKind::He => self.normal(t, name, (2.0 / fan_in).sqrt()),
            InitKind::LeCun => self.normal(t, name, 1.0 / fan_in.sqrt()),
            InitKind::Normal(std) => self.normal(t, name, std),
        }
        t
    }

    /// Normal values with standard deviation `std` for `t`.
    pub(crate) fn normal(&mut self, t: Tensor<'_>, name: &str, std: f64) {
        let mut rng = self.rng(name);
        let n = t.shape().numel();
        let v: Vec<f32> = (0..n).map(|_| (rng.normal() * std) as f32).collect();
        self.put(name, t.shape(), v);
    }

    /// A constant fill.
    pub(crate) fn fill(&mut self, t: Tensor<'_>, name: &str, value: f32) {
        let n = t.shape().numel();
        self.put(name, t.shape(), vec![value; n]);
    }

    /// Uniform integers in `0..bound`.
    pub(crate) fn labels(&mut self, t: Tensor<'_>, name: &str, bound: u64) {
        let mut rng = self.rng(name);
        let n = t.shape().numel();
        let v: Vec<i32> = (0..n).map(|_| rng.below(bound) as i32).collect();
        self.put_i32(name, t.shape(), v);
    }

    pub(crate) fn put(&mut self, name: &str, shape: Shape, v: Vec<f32>) {
        let t = HostTensor::from_f32(shape, v).expect("sized from the shape");
        self.feeds.insert(name.to_string(), t);
    }

    pub(crate) fn put_i32(&mut self, name: &str, shape: Shape, v: Vec<i32>) {
        let t = HostTensor::from_i32(shape, v).expect("sized from the shape");
        self.feeds.insert(name.to_string(), t);
    }

    pub(crate) fn rng_for(&self, name: &str) -> Rng {
        self.rng(name)
    }
}
