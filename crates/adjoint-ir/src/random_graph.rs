//! Random well-formed graphs for property tests: the printer and parser, the interpreter, the
//! passes and the code generator all run on them.
//!
//! [`random_graph`] builds a graph through the [`Builder`], so it is well-formed by
//! construction (it always passes [`Graph::verify`]) and exercises every op the IR has. What a
//! test may rely on:
//!
//! - **Deterministic**: the same seed and config give the same graph, on every platform and
//!   release (the generator draws only from [`Rng`]).
//! - **Size**: building stops once the graph has `max_nodes` nodes; the last step may add a few
//!   more (at most [`MAX_STEP_NODES`]). Every tensor has rank at most 4 and at most 64 elements,
//!   unless [`RandomGraphConfig::large`] is set: then about one leaf shape in four is large
//!   (up to [`MAX_LARGE_ELEMENTS`] elements, dimensions past 256 and rows past 2^16 elements,
//!   matmuls up to 70 columns), so that compiled code crosses its threading, vector-tail and
//!   host-matmul blocking thresholds.
//! - **Types**: one float dtype per graph (`f32` or `f64`, drawn from the seed unless
//!   [`RandomGraphConfig::float`] fixes it, which may also choose `bf16` or `f16`) for every
//!   input, parameter and output; `i32` and `bool` tensors occur inside (index inputs, casts,
//!   comparisons, iota), and `f32` ones in graphs of a 16-bit float (casts to `f32` and back).
//!   In an `f16` graph values past 65504 overflow to infinity: the bounds below hold for the
//!   other dtypes.
//! - **Leaves**: float inputs are named `x0`, `x1`, …, parameters `w0`, `w1`, …. Index inputs
//!   are `i32` and named `idx<k>_lt<n>` ([`INDEX_PREFIX`]): their valid values are `0..n`
//!   ([`index_limit`] reads `n` back from the name). Out-of-range indices are still defined
//!   (gather reads 0, scatter-add drops them), so a test may feed those too.
//! - **Values**: every float constant is finite; constants include awkward values for printers
//!   and code generators (`-0`, `0.1`, `1/3`, `1e-30`, a subnormal, `16777217`, `65504`).
//!   Domain-restricted functions only see safe operands (`log`, `sqrt` and `recip` are applied
//!   to `x*x + 1`, `div` divides by `y*y + 1`, `pow` raises `y*y + 1` to `tanh(x)`, `exp` sees
//!   values of magnitude at most 10), and values are squashed with `tanh` before they could
//!   grow large. So when every float input and parameter lies in `[-4, 4]` and every index is
//!   valid ([`random_feeds`] makes such feeds), every value the graph computes is finite and of
//!   magnitude below `1e10`.
//! - **Outputs**: one to three outputs `out0`, `out1`, …; some parameters get an update of
//!   their own type. Nodes that no output or update depends on are left in (dead code for the
//!   passes to remove). Some nodes carry labels, including duplicate and awkward ones (`h`,
//!   `w.grad`, `tmp-1`, `3`) that the text printer must disambiguate.
//! - **Smoothness**: with [`RandomGraphConfig::smooth`] the graph avoids the ops whose result
//!   jumps (`sign`, comparisons with `select`, casts of float values to `i32` or `bool`), for
//!   finite-difference gradient checks; integer tensors that no float value flows into (iota,
//!   the one-hot mask of `cross_entropy`'s labels) are still compared and cast, and the
//!   composites' own selects remain (sigmoid's two sides, softmax's guards: they switch where a
//!   value crosses a constant and agree there). `max`, `min`,
//!   `abs` and `reduce_max` still occur: they are continuous but have kinks.

use crate::builder::{Builder, Tensor};
use crate::graph::Graph;
use crate::host::{Feeds, HostTensor};
use crate::op::{AllReduceKind, BinaryOp, CompareOp, SliceRange, UnaryOp};
use crate::rng::Rng;
use crate::shape::{Dims, Shape};
use crate::DType;

/// Index inputs are named `idx<k>_lt<n>`, valid values `0..n`.
pub const INDEX_PREFIX: &str = "idx";

/// The most nodes one generator step can add beyond `max_nodes`.
pub const MAX_STEP_NODES: usize = 40;

/// The most elements a generated tensor has.
const MAX_ELEMENTS: usize = 64;
/// The most elements a generated tensor has with [`RandomGraphConfig::large`].
pub const MAX_LARGE_ELEMENTS: usize = 1 << 18;
/// The highest rank a generated tensor has.
const MAX_GEN_RANK: usize = 4;
/// Operands of ops that make values larger are squashed above this magnitude.
const TAME: f64 = 1e4;
/// The magnitude assumed for inputs and parameters.
const LEAF_BOUND: f64 = 4.0;

/// What kind of graph [`random_graph_with`] builds.
#[derive(Clone, Debug, PartialEq)]
pub struct RandomGraphConfig {
    /// Stop adding operations once the graph has this many nodes.
    pub max_nodes: usize,
    /// The float dtype of the graph; `None` draws `f32` (three times in four) or `f64`; `bf16`
    /// and `f16` are only ever chosen here.
    pub float: Option<DType>,
    /// Leave out the ops whose result jumps (see the [module documentation](self)).
    pub smooth: bool,
    /// Draw some large shapes too (see the [module documentation](self)).
    pub large: bool,
}

impl RandomGraphConfig {
    /// Up to `max_nodes` nodes, float dtype drawn from the seed, every op allowed.
    pub fn new(max_nodes: usize) -> RandomGraphConfig {
        RandomGraphConfig {
            max_nodes,
            float: None,
            smooth: false,
            large: false,
        }
    }
}

/// A random well-formed graph of about `max_nodes` nodes, deterministic in `seed`, using every
/// op kind; see the [module documentation](self) for what it guarantees.
///
/// ```
/// use adjoint_ir::random_graph::{random_feeds, random_graph};
///
/// let g = random_graph(7, 40);
/// g.verify().unwrap();
/// assert!(g.len() >= 40 && !g.outputs().is_empty());
/// assert_eq!(adjoint_ir::text::print(&g), adjoint_ir::text::print(&random_graph(7, 40)));
/// let feeds = random_feeds(&g, 1);
/// assert_eq!(feeds.len(), g.inputs().len() + g.parameters().len());
/// ```
pub fn random_graph(seed: u64, max_nodes: usize) -> Graph {
    random_graph_with(seed, &RandomGraphConfig::new(max_nodes))
}

/// [`random_graph`] with a configuration.
pub fn random_graph_with(seed: u64, config: &RandomGraphConfig) -> Graph {
    let b = Builder::new(&format!("random_{seed}"));
    let mut rng = Rng::derive(seed, "random_graph");
    let float = config.float.unwrap_or(if rng.below(4) == 0 {
        DType::F64
    } else {
        DType::F32
    });
    let mut g = Gen {
        b: &b,
        rng,
        float,
        smooth: config.smooth,
        large: config.large,
        pool: Vec::new(),
        inputs: 0,
        params: 0,
        indices: 0,
    };
    g.build(config.max_nodes);
    drop(g);
    b.finish()
}

/// Feeds for every input and parameter of a generated graph: floats uniform in `[-2, 2]`,
/// index inputs uniform over their valid range, other `i32` inputs in `0..4`, bools fair coins.
pub fn random_feeds(graph: &Graph, seed: u64) -> Feeds {
    let mut rng = Rng::derive(seed, "random_feeds");
    let mut feeds = Feeds::new();
    for &id in graph.inputs().iter().chain(graph.parameters()) {
        let name = graph.leaf_name(id).unwrap_or_default().to_string();
        let ty = graph.ty(id);
        let t = if ty.dtype.is_float() {
            let n = ty.shape.numel();
            let v: Vec<f64> = (0..n).map(|_| rng.uniform_in(-2.0, 2.0)).collect();
            HostTensor::from_f64_as(ty.dtype, ty.shape.clone(), &v)
                .expect("the value count matches the shape")
        } else {
            let bound = index_limit(&name).unwrap_or(4);
            HostTensor::random(ty, &mut rng, bound.min(u32::MAX as usize) as u32)
        };
        feeds.insert(name, t);
    }
    feeds
}

/// The exclusive upper bound `n` of valid values of an index input named `idx<k>_lt<n>`, or
/// `None` for other names.
pub fn index_limit(name: &str) -> Option<usize> {
    let rest = name.strip_prefix(INDEX_PREFIX)?;
    let (k, n) = rest.split_once("_lt")?;
    if k.is_empty() || !k.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// A float tensor of the pool with a bound on its magnitude.
#[derive(Clone, Copy)]
struct Val<'b> {
    t: Tensor<'b>,
    bound: f64,
}

/// Awkward but finite values for constants.
const AWKWARD: [f64; 16] = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    0.1,
    1.0 / 3.0,
    -2.5,
    std::f64::consts::PI,
    1e-7,
    1e-30,
    1e-40,
    65504.0,
    16_777_217.0,
    -3.75,
    2.0,
];

/// Every how many steps a value goes through a one-replica `all_reduce`.
const ALL_REDUCE_EVERY: usize = 13;

/// Labels, duplicates and awkward spellings included.
const LABELS: [&str; 8] = ["h", "h", "act", "w.grad", "tmp-1", "3", "x0", "out"];

struct Gen<'b> {
    b: &'b Builder,
    rng: Rng,
    float: DType,
    smooth: bool,
    large: bool,
    pool: Vec<Val<'b>>,
    inputs: usize,
    params: usize,
    indices: usize,
}

/// `v` squashed with `tanh` if it could be larger than `limit`.
fn tame(v: Val<'_>, limit: f64) -> Val<'_> {
    if v.bound > limit {
        Val {
            t: v.t.tanh(),
            bound: 1.0,
        }
    } else {
        v
    }
}

impl<'b> Gen<'b> {
    /// Whether a tensor of `dims` may be generated.
    fn fits(&self, dims: &[usize]) -> bool {
        let most = if self.large {
            MAX_LARGE_ELEMENTS
        } else {
            MAX_ELEMENTS
        };
        dims.len() <= MAX_GEN_RANK && dims.iter().product::<usize>() <= most
    }

    fn below(&mut self, n: usize) -> usize {
        self.rng.below(n.max(1) as u64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.uniform() < p
    }

    fn build(&mut self, max_nodes: usize) {
        let first = self.random_shape();
        let x = self.input(first);
        self.pool.push(x);
        if self.chance(0.5) {
            let s = self.random_shape();
            let w = self.parameter(s);
            self.pool.push(w);
        }
        let mut steps = 0;
        while self.b.graph().len() < max_nodes && steps < 4 * max_nodes + 16 {
            steps += 1;
            if let Some(v) = self.step() {
                let v = Gen::all_reduce_every(ALL_REDUCE_EVERY, steps, v);
                let v = if self.chance(0.12) {
                    let label = LABELS[self.below(LABELS.len())];
                    Val {
                        t: v.t.named(label),
                        ..v
                    }
                } else {
                    v
                };
                self.pool.push(v);
            }
        }
        self.finish_outputs();
    }

    /// Every `every`-th step's float value goes through a one-replica `all_reduce` (the
    /// identity, alternately `sum` and `mean`): chosen by the step count rather than drawn, so
    /// that the op occurs without changing the random stream that the other ops draw from.
    fn all_reduce_every(every: usize, steps: usize, v: Val<'b>) -> Val<'b> {
        if !steps.is_multiple_of(every) || !matches!(v.t.dtype(), DType::F32 | DType::F64) {
            return v;
        }
        let kind = AllReduceKind::ALL[(steps / every) % AllReduceKind::ALL.len()];
        Val {
            t: v.t.all_reduce(kind, 1),
            bound: v.bound,
        }
    }

    /// Outputs (the newest value and up to two others) and some parameter updates.
    fn finish_outputs(&mut self) {
        let last = *self.pool.last().expect("the pool starts with an input");
        self.b.output("out0", last.t);
        let extra = self.below(3);
        for k in 0..extra {
            let i = self.below(self.pool.len());
            let v = self.pool[i];
            self.b.output(&format!("out{}", k + 1), v.t);
        }
        let params: Vec<_> = self.b.graph().parameters().to_vec();
        for p in params {
            if !self.chance(0.4) {
                continue;
            }
            let p = self.b.tensor(p);
            let shape = p.shape();
            let same: Vec<Val<'b>> = self
                .pool
                .iter()
                .filter(|v| v.t.shape() == shape && v.t.id() != p.id())
                .copied()
                .collect();
            let value = match same.as_slice() {
                [] => p - p.tanh() * 0.125,
                vs => vs[self.below(vs.len())].t,
            };
            self.b.update(p, value);
        }
    }

    // ----- shapes and leaves -----

    fn random_shape(&mut self) -> Shape {
        if self.large && self.chance(0.25) {
            return self.large_shape();
        }
        let rank = [0, 1, 1, 1, 2, 2, 2, 2, 3, 3][self.below(10)];
        let dims: Dims = (0..rank).map(|_| 1 + self.below(4)).collect();
        Shape::from(dims)
    }

    /// A shape past the code generator's thresholds: a row of more than 2^16 elements, an
    /// inner dimension past 256 (the host matmul's depth block) with an odd vector tail, or a
    /// batch of such matrices.
    fn large_shape(&mut self) -> Shape {
        let dims: Dims = match self.below(4) {
            0 => [65_536 + self.below(300)].into_iter().collect(),
            1 => [250 + self.below(70), 255 + self.below(20)]
                .into_iter()
                .collect(),
            2 => [3 + self.below(5), 20_000 + self.below(100)]
                .into_iter()
                .collect(),
            _ => [
                2 + self.below(2),
                100 + self.below(30),
                257 + self.below(40),
            ]
            .into_iter()
            .collect(),
        };
        Shape::from(dims)
    }

    fn input(&mut self, shape: Shape) -> Val<'b> {
        let name = format!("x{}", self.inputs);
        self.inputs += 1;
        Val {
            t: self.b.input(&name, self.float, shape),
            bound: LEAF_BOUND,
        }
    }

    fn parameter(&mut self, shape: Shape) -> Val<'b> {
        let name = format!("w{}", self.params);
        self.params += 1;
        Val {
            t: self.b.parameter(&name, self.float, shape),
            bound: LEAF_BOUND,
        }
    }

    fn constant(&mut self, shape: Shape) -> Val<'b> {
        let n = shape.numel();
        let values: Vec<f64> = (0..n).map(|_| AWKWARD[self.below(AWKWARD.len())]).collect();
        let bound = values.iter().fold(0.0f64, |m, v| m.max(v.abs())) * 1.01;
        Val {
            t: self.b.constant(self.float, shape, &values),
            bound,
        }
    }

    /// An index input of `shape` with valid values `0..limit`.
    fn index_input(&mut self, shape: Shape, limit: usize) -> Tensor<'b> {
        let name = format!("{INDEX_PREFIX}{}_lt{limit}", self.indices);
        self.indices += 1;
        self.b.input(&name, DType::I32, shape)
    }

    /// A new leaf of `shape`: input, parameter, constant or iota.
    fn fresh(&mut self, shape: Shape) -> Val<'b> {
        match self.below(8) {
            0..=2 => self.input(shape),
            3..=5 => self.parameter(shape),
            6 => self.constant(shape),
            _ if shape.rank() > 0 => {
                let axis = self.below(shape.rank());
                let bound = shape.dim(axis) as f64;
                let t = if self.chance(0.5) {
                    self.b.iota(self.float, shape, axis as isize)
                } else {
                    self.b
                        .iota(DType::I32, shape, axis as isize)
                        .cast(self.float)
                };
                Val { t, bound }
            }
            _ => self.constant(shape),
        }
    }

    /// A pool value of exactly `shape`, or a fresh leaf.
    fn value_of_shape(&mut self, shape: &Shape) -> Val<'b> {
        let matches: Vec<Val<'b>> = self
            .pool
            .iter()
            .filter(|v| &v.t.shape() == shape)
            .copied()
            .collect();
        if !matches.is_empty() && self.chance(0.7) {
            return matches[self.below(matches.len())];
        }
        self.fresh(shape.clone())
    }

    /// A random pool value, biased toward recent ones so that graphs grow deep.
    fn pick(&mut self) -> Val<'b> {
        let n = self.pool.len();
        let i = if self.chance(0.6) {
            n - 1 - self.below(n.min(4))
        } else {
            self.below(n)
        };
        self.pool[i]
    }

    /// `x*x + 1`: at least 1, smooth.
    fn square_plus_one(&mut self, v: Val<'b>) -> Val<'b> {
        let v = tame(v, TAME);
        Val {
            t: v.t * v.t + 1.0,
            bound: v.bound * v.bound + 1.0,
        }
    }

    // ----- one step -----

    /// Applies one random operation; `None` when the drawn operation does not fit.
    fn step(&mut self) -> Option<Val<'b>> {
        match self.below(17) {
            0 | 1 => self.unary(),
            2 | 3 => self.binary(),
            4 => self.compare_select(),
            5 => self.cast(),
            6 => self.broadcast(),
            7 => self.reshape(),
            8 => self.permute(),
            9 => self.slice(),
            10 => self.pad(),
            11 => self.concat(),
            12 => self.reduce(),
            13 => self.matmul(),
            14 => self.gather(),
            15 => self.scatter_add(),
            _ => self.composite(),
        }
    }

    fn unary(&mut self) -> Option<Val<'b>> {
        let v = self.pick();
        let u = UnaryOp::ALL[self.below(UnaryOp::ALL.len())];
        let (t, bound) = match u {
            UnaryOp::Neg => (v.t.neg_(), v.bound),
            UnaryOp::Abs => (v.t.abs(), v.bound),
            UnaryOp::Sin => (v.t.sin(), 1.0),
            UnaryOp::Cos => (v.t.cos(), 1.0),
            UnaryOp::Tanh => (v.t.tanh(), 1.0),
            UnaryOp::Sign if !self.smooth => (v.t.sign(), 1.0),
            UnaryOp::Sign => (v.t.tanh(), 1.0),
            // A finite-difference check sees through it: smooth graphs negate instead.
            UnaryOp::StopGradient if !self.smooth => (v.t.stop_gradient(), v.bound),
            UnaryOp::StopGradient => (v.t.neg_(), v.bound),
            UnaryOp::Exp => {
                let v = tame(v, 10.0);
                (v.t.exp(), v.bound.exp())
            }
            UnaryOp::Log => {
                let s = self.square_plus_one(v);
                (s.t.log(), s.bound.ln())
            }
            UnaryOp::Sqrt => {
                let s = self.square_plus_one(v);
                (s.t.sqrt(), s.bound.sqrt())
            }
            UnaryOp::Recip => {
                let s = self.square_plus_one(v);
                (s.t.recip(), 1.0)
            }
        };
        Some(Val { t, bound })
    }

    /// A shape that broadcasts with `s`: `s` itself, a suffix of it, or either with some axes 1.
    fn broadcast_partner(&mut self, s: &Shape) -> Shape {
        let dims = s.dims();
        let skip = if self.chance(0.3) {
            self.below(dims.len() + 1)
        } else {
            0
        };
        let mut out: Dims = dims[skip..].iter().copied().collect();
        for d in out.iter_mut() {
            if self.chance(0.25) {
                *d = 1;
            }
        }
        Shape::from(out)
    }

    fn binary(&mut self) -> Option<Val<'b>> {
        let a = self.pick();
        let shape = self.broadcast_partner(&a.t.shape());
        let b = self.value_of_shape(&shape);
        let (a, b) = if self.chance(0.5) { (a, b) } else { (b, a) };
        let op = BinaryOp::ALL[self.below(BinaryOp::ALL.len())];
        let (t, bound) = match op {
            BinaryOp::Add | BinaryOp::Sub => {
                let (a, b) = (tame(a, TAME), tame(b, TAME));
                let t = if op == BinaryOp::Add {
                    a.t + b.t
                } else {
                    a.t - b.t
                };
                (t, a.bound + b.bound)
            }
            BinaryOp::Mul => {
                let (a, b) = (tame(a, TAME), tame(b, TAME));
                (a.t * b.t, a.bound * b.bound)
            }
            BinaryOp::Max => (a.t.maximum(b.t), a.bound.max(b.bound)),
            BinaryOp::Min => (a.t.minimum(b.t), a.bound.max(b.bound)),
            BinaryOp::Div => {
                let d = self.square_plus_one(b);
                (a.t / d.t, a.bound)
            }
            BinaryOp::Pow => {
                let base = self.square_plus_one(b);
                (base.t.pow(a.t.tanh()), base.bound)
            }
        };
        Some(Val { t, bound })
    }

    fn compare_select(&mut self) -> Option<Val<'b>> {
        if self.smooth {
            return None;
        }
        let a = self.pick();
        let shape = self.broadcast_partner(&a.t.shape());
        let b = self.value_of_shape(&shape);
        let c = CompareOp::ALL[self.below(CompareOp::ALL.len())];
        let mut cond = a.t.try_compare(c, b.t).ok()?;
        if self.chance(0.3) {
            // Bool operands: eq/ne of two masks.
            let other = a.t.try_compare(CompareOp::Lt, b.t).ok()?;
            cond = cond.ne(other);
        }
        let shape = self.broadcast_partner(&a.t.shape());
        let on_false = self.value_of_shape(&shape);
        let t = cond.select(a.t, on_false.t);
        Some(Val {
            t,
            bound: a.bound.max(on_false.bound),
        })
    }

    fn cast(&mut self) -> Option<Val<'b>> {
        let v = self.pick();
        let other = match self.float {
            DType::F32 => DType::F64,
            // f64 graphs cast through f32; bf16 and f16 graphs widen to f32 and round back.
            _ => DType::F32,
        };
        if self.smooth || self.chance(0.4) {
            return Some(Val {
                t: v.t.cast(other).cast(self.float),
                bound: v.bound,
            });
        }
        if self.chance(0.3) {
            // bool -> float, the one-hot pattern.
            let zero = v.t.scalar_like(0.0);
            return Some(Val {
                t: v.t.lt(zero).cast(self.float),
                bound: 1.0,
            });
        }
        let v = tame(v, TAME);
        let i = v.t.cast(DType::I32);
        let shape = i.shape();
        let (i, bound) = match self.below(4) {
            0 => (i.neg_(), v.bound),
            1 => (i.abs(), v.bound),
            2 => (i * 3.0, v.bound * 3.0),
            _ if shape.rank() > 0 => {
                let axis = self.below(shape.rank()) as isize;
                let iota = self.b.iota(DType::I32, shape.clone(), axis);
                (i.maximum(iota) + iota, v.bound + 2.0 * shape.numel() as f64)
            }
            _ => (i - 1.0, v.bound + 1.0),
        };
        Some(Val {
            t: i.cast(self.float),
            bound,
        })
    }

    fn broadcast(&mut self) -> Option<Val<'b>> {
        let v = self.pick();
        let s = v.t.shape();
        let mut dims: Dims = s.dims().iter().copied().collect();
        let ones: Vec<usize> = (0..dims.len()).filter(|&i| dims[i] == 1).collect();
        if !ones.is_empty() && self.chance(0.5) {
            let i = ones[self.below(ones.len())];
            dims[i] = 2 + self.below(3);
        } else {
            dims.insert(0, 1 + self.below(4));
        }
        self.fits(&dims).then(|| Val {
            t: v.t.broadcast_to(dims),
            bound: v.bound,
        })
    }

    fn reshape(&mut self) -> Option<Val<'b>> {
        let v = self.pick();
        let mut n = v.t.shape().numel();
        let mut dims = Dims::new();
        let rank = 1 + self.below(3);
        for _ in 0..rank - 1 {
            let divisors: Vec<usize> = (1..=n).filter(|&d| n.is_multiple_of(d)).collect();
            let d = divisors[self.below(divisors.len())];
            dims.push(d);
            n /= d;
        }
        dims.push(n);
        Some(Val {
            t: v.t.reshape(dims),
            bound: v.bound,
        })
    }

    fn permute(&mut self) -> Option<Val<'b>> {
        let v = self.pick();
        let rank = v.t.rank();
        if rank < 2 {
            return None;
        }
        let mut perm: Vec<usize> = (0..rank).collect();
        self.rng.shuffle(&mut perm);
        Some(Val {
            t: v.t.permute(&perm),
            bound: v.bound,
        })
    }

    fn slice(&mut self) -> Option<Val<'b>> {
        let v = self.pick();
        let s = v.t.shape();
        if s.rank() == 0 {
            return None;
        }
        let ranges: Vec<SliceRange> = s
            .dims()
            .iter()
            .map(|&d| {
                let start = self.below(d);
                let stop = start + 1 + self.below(d - start);
                SliceRange {
                    start,
                    stop,
                    step: 1 + self.below(2),
                }
            })
            .collect();
        Some(Val {
            t: v.t.slice_ranges(&ranges),
            bound: v.bound,
        })
    }

    fn pad(&mut self) -> Option<Val<'b>> {
        let v = self.pick();
        let s = v.t.shape();
        let low: Vec<usize> = (0..s.rank()).map(|_| self.below(2)).collect();
        let high: Vec<usize> = (0..s.rank()).map(|_| self.below(2)).collect();
        let dims: Vec<usize> = (0..s.rank()).map(|i| low[i] + s.dim(i) + high[i]).collect();
        self.fits(&dims).then(|| Val {
            t: v.t.pad(&low, &high),
            bound: v.bound,
        })
    }

    fn concat(&mut self) -> Option<Val<'b>> {
        let a = self.pick();
        let s = a.t.shape();
        if s.rank() == 0 {
            return None;
        }
        let axis = self.below(s.rank());
        let mut parts = vec![a];
        let mut total = s.dim(axis);
        for _ in 0..1 + self.below(2) {
            let mut dims: Dims = s.dims().iter().copied().collect();
            dims[axis] = 1 + self.below(3);
            let p = self.value_of_shape(&Shape::from(dims.clone()));
            total += dims[axis];
            parts.push(p);
        }
        let mut out: Dims = s.dims().iter().copied().collect();
        out[axis] = total;
        if !self.fits(&out) {
            return None;
        }
        let bound = parts.iter().fold(0.0f64, |m, p| m.max(p.bound));
        let tensors: Vec<Tensor<'b>> = parts.iter().map(|p| p.t).collect();
        Some(Val {
            t: self.b.concat(&tensors, axis as isize),
            bound,
        })
    }

    fn reduce(&mut self) -> Option<Val<'b>> {
        let v = tame(self.pick(), TAME);
        let rank = v.t.rank();
        let axes: Vec<isize> = (0..rank as isize).filter(|_| self.chance(0.5)).collect();
        let keep = self.chance(0.4);
        let t = match (self.chance(0.5), keep) {
            (true, false) => v.t.sum(&axes),
            (true, true) => v.t.sum_keepdims(&axes),
            (false, false) => v.t.max(&axes),
            (false, true) => v.t.max_keepdims(&axes),
        };
        Some(Val {
            t,
            bound: v.bound * v.t.shape().numel() as f64,
        })
    }

    fn matmul(&mut self) -> Option<Val<'b>> {
        let a = tame(self.pick(), TAME);
        let s = a.t.shape();
        let r = s.rank();
        if r == 0 || r > 3 {
            return None;
        }
        let k = s.dim(r - 1);
        let n = if self.large && self.chance(0.5) {
            17 + self.below(54)
        } else {
            1 + self.below(4)
        };
        // A vector or matrix right operand, batched like `a` when `a` is batched.
        let batched = r == 3 && self.chance(0.7);
        let mut dims: Dims = if batched {
            s.dims()[..1].iter().copied().collect()
        } else {
            Dims::new()
        };
        dims.push(k);
        if r == 1 || batched || self.chance(0.85) {
            dims.push(n);
        }
        let rhs_shape = Shape::from(dims);
        let mut out: Dims = s.dims()[..r - 1].iter().copied().collect();
        if rhs_shape.rank() > 1 {
            out.push(n);
        }
        if !self.fits(&out) || !self.fits(rhs_shape.dims()) {
            return None;
        }
        let b = self.value_of_shape(&rhs_shape);
        let b = tame(b, TAME);
        Some(Val {
            t: a.t.matmul(b.t),
            bound: a.bound * b.bound * k as f64,
        })
    }

    fn gather(&mut self) -> Option<Val<'b>> {
        let x = self.pick();
        let s = x.t.shape();
        if s.rank() == 0 {
            return None;
        }
        let axis = self.below(s.rank());
        let idx_rank = self.below(3);
        let idx_dims: Dims = (0..idx_rank).map(|_| 1 + self.below(3)).collect();
        let out: Dims = s.dims()[..axis]
            .iter()
            .chain(&idx_dims)
            .chain(&s.dims()[axis + 1..])
            .copied()
            .collect();
        if !self.fits(&out) {
            return None;
        }
        let idx = self.index_input(Shape::from(idx_dims), s.dim(axis));
        Some(Val {
            t: x.t.gather(idx, axis as isize),
            bound: x.bound,
        })
    }

    fn scatter_add(&mut self) -> Option<Val<'b>> {
        let u = tame(self.pick(), TAME);
        let s = u.t.shape();
        let k = self.below(3).min(s.rank());
        let axis = self.below(s.rank() - k + 1);
        let size = 1 + self.below(4);
        let idx_dims: Dims = s.dims()[axis..axis + k].iter().copied().collect();
        let out: Dims = s.dims()[..axis]
            .iter()
            .chain(std::iter::once(&size))
            .chain(&s.dims()[axis + k..])
            .copied()
            .collect();
        if !self.fits(&out) {
            return None;
        }
        let count: usize = idx_dims.iter().product();
        let idx = self.index_input(Shape::from(idx_dims), size);
        Some(Val {
            t: u.t.scatter_add(idx, axis as isize, size),
            bound: u.bound * count as f64,
        })
    }

    fn composite(&mut self) -> Option<Val<'b>> {
        let v = tame(self.pick(), TAME);
        let s = v.t.shape();
        let r = s.rank();
        let last = -1isize;
        let all: Vec<isize> = (0..r as isize).collect();
        let n = s.numel() as f64;
        let (t, bound) = match self.below(11) {
            0 => (v.t.relu(), v.bound),
            1 => (v.t.sigmoid(), 1.0),
            2 => (v.t.gelu(), v.bound * 1.01),
            3 if r > 0 => (v.t.softmax(last), 1.0),
            4 if r > 0 => (v.t.log_softmax(last), 2.0 * v.bound + n.ln() + 1.0),
            5 => (v.t.logsumexp(&all), v.bound + n.ln() + 1.0),
            6 => (v.t.mean(&all), v.bound),
            7 => (v.t.var(&all), 4.0 * v.bound * v.bound),
            8 if r > 0 => {
                let d = s.dim(r - 1);
                let gamma = self.parameter(Shape::new(&[d]));
                let beta = self.parameter(Shape::new(&[d]));
                let t = v.t.layer_norm(gamma.t, beta.t, 1e-5);
                (t, n.sqrt() * LEAF_BOUND + LEAF_BOUND)
            }
            9 => {
                let target = self.value_of_shape(&s);
                let target = tame(target, TAME);
                let b = v.bound + target.bound;
                (v.t.mse(target.t), b * b)
            }
            10 if r == 2 => {
                let labels = self.index_input(Shape::new(&[s.dim(0)]), s.dim(1));
                (v.t.cross_entropy(labels), 2.0 * v.bound + n.ln() + 1.0)
            }
            _ => {
                let shape = self.random_shape();
                return Some(self.fresh(shape));
            }
        };
        Some(Val { t, bound })
    }
}

/// `-x` as a method, so that match arms read alike.
trait NegExt {
    fn neg_(self) -> Self;
}

impl NegExt for Tensor<'_> {
    fn neg_(self) -> Self {
        -self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::Op;
    use std::collections::BTreeSet;

    #[test]
    fn graphs_verify_and_stay_small() {
        for seed in 0..200 {
            let max_nodes = (seed as usize % 70) + 1;
            let g = random_graph(seed, max_nodes);
            g.verify().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            assert!(g.len() >= max_nodes.min(2), "seed {seed}");
            assert!(
                g.len() <= max_nodes + MAX_STEP_NODES,
                "seed {seed}: {}",
                g.len()
            );
            assert!(!g.outputs().is_empty());
            for id in g.node_ids() {
                let ty = g.ty(id);
                assert!(ty.shape.numel() <= MAX_ELEMENTS, "seed {seed}: {ty}");
                assert!(ty.shape.rank() <= MAX_GEN_RANK, "seed {seed}: {ty}");
            }
            for &id in g.inputs() {
                let name = g.leaf_name(id).unwrap();
                if g.ty(id).dtype == DType::I32 {
                    assert!(index_limit(name).is_some_and(|n| n > 0), "{name}");
                } else {
                    assert!(name.starts_with('x'), "{name}");
                }
            }
        }
    }

    #[test]
    fn every_op_occurs_across_seeds() {
        let mut names = BTreeSet::new();
        for seed in 0..60 {
            let g = random_graph(seed, 60);
            names.extend(g.node_ids().map(|id| g.op(id).name()));
        }
        let all: BTreeSet<&str> = Op::all_names().collect();
        assert_eq!(all.len(), Op::NAME_COUNT);
        assert_eq!(names, all);
    }

    #[test]
    fn same_seed_same_graph() {
        let a = crate::text::print(&random_graph(42, 50));
        let b = crate::text::print(&random_graph(42, 50));
        let c = crate::text::print(&random_graph(43, 50));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn smooth_graphs_avoid_jumps() {
        for seed in 0..40 {
            let mut config = RandomGraphConfig::new(50);
            config.smooth = true;
            config.float = Some(DType::F64);
            let g = random_graph_with(seed, &config);
            g.verify().unwrap();
            for id in g.node_ids() {
                let name = g.op(id).name();
                assert!(!["sign", "ne"].contains(&name), "{name}");
                // The composites' selects (sigmoid's sides, softmax's guards) switch where a
                // value crosses a constant, and their two sides agree there: no jump; masks of
                // integers no float flows into (cross-entropy's one-hot) are fixed. A select on
                // two computed values would jump.
                if ["select", "lt", "le"].contains(&name) {
                    let cond = if name == "select" {
                        g.operands(id)[0]
                    } else {
                        id
                    };
                    let fixed = !depends_on_float_leaf(&g, cond);
                    assert!(
                        fixed || compares_with_a_constant(&g, cond),
                        "seed {seed}: {name}"
                    );
                }
                if let crate::Op::Cast { to } = g.op(id) {
                    // Casts from integers only of values no float leaf flows into (iota,
                    // one-hot masks of labels).
                    assert!(to.is_float());
                    let src = g.operands(id)[0];
                    if !g.ty(src).dtype.is_float() {
                        assert!(!depends_on_float_leaf(&g, src), "seed {seed}");
                    }
                }
            }
        }
    }

    /// Whether `id` compares a value with a constant (possibly broadcast).
    fn compares_with_a_constant(g: &Graph, id: crate::NodeId) -> bool {
        let constant = |mut n: crate::NodeId| loop {
            match g.op(n) {
                crate::Op::Constant(_) => return true,
                crate::Op::Broadcast { .. } | crate::Op::Reshape { .. } => n = g.operands(n)[0],
                _ => return false,
            }
        };
        matches!(g.op(id), crate::Op::Compare(_)) && g.operands(id).iter().any(|&o| constant(o))
    }

    fn depends_on_float_leaf(g: &Graph, id: crate::NodeId) -> bool {
        let mut stack = vec![id];
        while let Some(n) = stack.pop() {
            if g.leaf_name(n).is_some() && g.ty(n).dtype.is_float() {
                return true;
            }
            stack.extend(g.operands(n));
        }
        false
    }

    #[test]
    fn large_graphs_cross_the_thresholds() {
        let mut largest = 0;
        for seed in 0..40 {
            let mut config = RandomGraphConfig::new(30);
            config.large = true;
            let g = random_graph_with(seed, &config);
            g.verify().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            for id in g.node_ids() {
                let n = g.ty(id).shape.numel();
                assert!(n <= MAX_LARGE_ELEMENTS, "seed {seed}: {}", g.ty(id));
                largest = largest.max(n);
            }
        }
        assert!(largest > 1 << 16, "{largest}");
    }

    #[test]
    fn half_graphs_are_well_formed_and_typed_in_their_dtype() {
        for float in [DType::Bf16, DType::F16] {
            for seed in 0..20 {
                let mut config = RandomGraphConfig::new(60);
                config.float = Some(float);
                let g = random_graph_with(seed, &config);
                g.verify()
                    .unwrap_or_else(|e| panic!("{float} seed {seed}: {e}"));
                for (_, id) in g.outputs() {
                    assert_eq!(g.ty(*id).dtype, float);
                }
                let text = crate::text::print(&g);
                let back = crate::text::parse(&text).unwrap();
                assert_eq!(crate::text::print(&back), text);
                let feeds = random_feeds(&g, seed);
                assert!(feeds.values().any(|t| t.dtype() == float));
            }
        }
    }

    #[test]
    fn index_names_parse() {
        assert_eq!(index_limit("idx3_lt5"), Some(5));
        assert_eq!(index_limit("idx_lt5"), None);
        assert_eq!(index_limit("x0"), None);
    }
}
