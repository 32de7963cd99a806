//! Seeded parameter initialization and data for the workloads.

use adjoint_ir::{Builder, DType, Feeds, HostTensor, Initializer, Rng, Shape, Tensor};

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

    /// Declares an f32 parameter of `shape` and records its initial value, drawn by `init`
    /// from the parameter's own stream.
    pub(crate) fn param<'b>(
        &mut self,
        b: &'b Builder,
        name: &str,
        shape: &[usize],
        init: Initializer,
    ) -> Tensor<'b> {
        let t = b.parameter(name, DType::F32, shape);
        let values = init.sample(shape, &mut self.rng(name));
        self.put(name, t.shape(), values.iter().map(|&v| v as f32).collect());
        t
    }

    /// Normal values with standard deviation `std` for `t`.
    pub(crate) fn normal(&mut self, t: Tensor<'_>, name: &str, std: f64) {
        let mut rng = self.rng(name);
        let n = t.shape().numel();
        let v: Vec<f32> = (0..n).map(|_| (rng.normal() * std) as f32).collect();
        self.put(name, t.shape(), v);
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
