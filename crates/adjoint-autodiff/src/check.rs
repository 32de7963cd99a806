//! Gradient checking: analytic gradients against central finite differences, in f64.

use crate::error::GradError;
use crate::grad::{append_grad, display_name, find};
use crate::precision::{try_widen_feeds, widen_to_f64};
use adjoint_interp::{eval_nodes, InterpError};
use adjoint_ir::{Builder, DType, Feeds, Graph, HostTensor, NodeId, Op, Rng};
use std::cell::RefCell;
use std::fmt;

/// Settings of [`check_grads_with`]; [`Default`] gives the documented ones.
#[derive(Clone, Debug, PartialEq)]
pub struct GradCheckOptions {
    /// The check passes when the worst relative error is at most this.
    pub tolerance: f64,
    /// Base finite-difference step `h` (scaled by the magnitude of the values): 1e-4.
    pub step: f64,
    /// Relative-error floor factor: errors are divided by at least `floor · max(1, |loss|)`:
    /// 1e-5.
    pub floor: f64,
    /// Tensors with at most this many elements are checked along every coordinate axis: 64.
    pub coordinate_limit: usize,
    /// Larger tensors are checked along this many random unit directions: 6.
    pub directions: usize,
    /// Seed of the random directions: 0.
    pub seed: u64,
}

impl Default for GradCheckOptions {
    fn default() -> Self {
        GradCheckOptions {
            tolerance: 1e-6,
            step: 1e-4,
            floor: 1e-5,
            coordinate_limit: 64,
            directions: 6,
            seed: 0,
        }
    }
}

/// Along what a derivative was compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The coordinate axis of this (row-major) element.
    Coordinate(usize),
    /// The `k`-th seeded random unit direction.
    Random(usize),
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Direction::Coordinate(i) => write!(f, "element {i}"),
            Direction::Random(k) => write!(f, "random direction {k}"),
        }
    }
}

/// The worst disagreement found for one `wrt` node.
#[derive(Clone, Debug, PartialEq)]
pub struct WrtCheck {
    /// The `wrt` node (in the graph given to the check).
    pub node: NodeId,
    /// Its name.
    pub name: String,
    /// How many directional derivatives were compared.
    pub compared: usize,
    /// The worst relative error (infinite if a NaN appeared).
    pub worst_error: f64,
    /// Where the worst error occurred.
    pub worst_at: Direction,
    /// The analytic directional derivative there.
    pub analytic: f64,
    /// The finite-difference estimate there.
    pub numeric: f64,
}

/// The result of a gradient check.
#[derive(Clone, Debug, PartialEq)]
pub struct GradCheckReport {
    /// One entry per `wrt` node, in the order given.
    pub checks: Vec<WrtCheck>,
    /// The loss value at the checked point.
    pub loss: f64,
    /// The tolerance the worst error was compared with.
    pub tolerance: f64,
}

impl GradCheckReport {
    /// The entry with the worst error, if any node was checked.
    pub fn worst(&self) -> Option<&WrtCheck> {
        self.checks
            .iter()
            .max_by(|a, b| a.worst_error.total_cmp(&b.worst_error))
    }

    /// The worst relative error over all nodes (0 when there are none).
    pub fn worst_error(&self) -> f64 {
        self.worst().map_or(0.0, |w| w.worst_error)
    }

    /// True when the worst error is within the tolerance.
    pub fn passed(&self) -> bool {
        self.worst_error() <= self.tolerance
    }
}

impl fmt::Display for GradCheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            writeln!(
                f,
                "{:<24} {:>5} checks  worst {:.3e} at {} (analytic {:.10e}, numeric {:.10e})",
                c.name, c.compared, c.worst_error, c.worst_at, c.analytic, c.numeric
            )?;
        }
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        match self.worst() {
            Some(w) => write!(
                f,
                "{verdict}: worst relative error {:.3e} ({}) against tolerance {:.1e}",
                w.worst_error, w.name, self.tolerance
            ),
            None => write!(f, "{verdict}: nothing to check"),
        }
    }
}

/// Why a gradient check could not run.
#[derive(Debug)]
pub enum CheckError {
    /// Differentiating failed.
    Grad(GradError),
    /// The graph does not verify.
    InvalidGraph(adjoint_ir::VerifyError),
    /// A `wrt` node is not an input or parameter, so it cannot be perturbed through the feeds.
    NotALeaf {
        /// The node, described.
        node: String,
    },
    /// A `wrt` node has no feed.
    MissingFeed {
        /// Its name.
        name: String,
    },
    /// The interpreter failed (boxed to keep the error small).
    Interp(Box<InterpError>),
    /// The system refused memory for random feeds, their `f64` copies or a perturbed point.
    OutOfMemory(String),
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Grad(e) => write!(f, "{e}"),
            CheckError::InvalidGraph(e) => write!(f, "cannot check gradients: {e}"),
            CheckError::NotALeaf { node } => write!(
                f,
                "cannot check the gradient with respect to {node}: only inputs and \
                 parameters can be perturbed through the feeds"
            ),
            CheckError::MissingFeed { name } => {
                write!(f, "no value is fed for `{name}`, whose gradient is checked")
            }
            CheckError::Interp(e) => write!(f, "evaluating the graph failed: {e}"),
            CheckError::OutOfMemory(m) => write!(f, "cannot check gradients: {m}"),
        }
    }
}

impl std::error::Error for CheckError {}

impl From<GradError> for CheckError {
    fn from(e: GradError) -> CheckError {
        CheckError::Grad(e)
    }
}

impl From<InterpError> for CheckError {
    fn from(e: InterpError) -> CheckError {
        CheckError::Interp(Box::new(e))
    }
}

/// Checks the gradients of `loss` with respect to the inputs or parameters `wrt` at the point
/// `feeds` against central finite differences, in f64, with the default options and the given
/// tolerance (see [`GradCheckOptions`] and `docs/autodiff.md` for the method).
///
/// ```
/// use adjoint_ir::{Builder, DType, Feeds, HostTensor};
///
/// let b = Builder::new("cubic");
/// let x = b.parameter("x", DType::F32, [3]);
/// let loss = (x * x * x).sum_all();
/// let (loss, x) = (loss.id(), x.id());
/// let mut feeds = Feeds::new();
/// feeds.insert("x".into(), HostTensor::from_f32([3], vec![0.5, -1.0, 2.0]).unwrap());
/// let report = adjoint_autodiff::check_grads(&b.finish(), loss, &[x], &feeds, 1e-6).unwrap();
/// assert!(report.passed(), "{report}");
/// ```
pub fn check_grads(
    graph: &Graph,
    loss: NodeId,
    wrt: &[NodeId],
    feeds: &Feeds,
    tolerance: f64,
) -> Result<GradCheckReport, CheckError> {
    let opts = GradCheckOptions {
        tolerance,
        ..GradCheckOptions::default()
    };
    check_grads_with(graph, loss, wrt, feeds, &opts)
}

/// [`check_grads`] with the loss and `wrt` nodes given by name and seeded random feeds
/// ([`random_feeds`]) — what `adjoint gradcheck FILE --loss NAME --wrt …` calls.
pub fn check_grads_named(
    graph: &Graph,
    loss: &str,
    wrt: &[&str],
    seed: u64,
    tolerance: f64,
) -> Result<GradCheckReport, CheckError> {
    let loss = find(graph, "loss", loss)?;
    let wrt = wrt
        .iter()
        .map(|name| find(graph, "wrt", name))
        .collect::<Result<Vec<_>, _>>()?;
    check_grads(graph, loss, &wrt, &random_feeds(graph, seed)?, tolerance)
}

/// [`check_grads`] with every option.
pub fn check_grads_with(
    graph: &Graph,
    loss: NodeId,
    wrt: &[NodeId],
    feeds: &Feeds,
    opts: &GradCheckOptions,
) -> Result<GradCheckReport, CheckError> {
    let wide = widen_to_f64(graph).map_err(CheckError::InvalidGraph)?;
    let mut names = Vec::with_capacity(wrt.len());
    let mut wide_wrt = Vec::with_capacity(wrt.len());
    for &w in wrt {
        let Some(ww) = wide.node(w) else {
            return Err(GradError::NotInGraph {
                role: "wrt",
                index: w.index(),
            }
            .into());
        };
        let Some(name) = graph.leaf_name(w) else {
            return Err(CheckError::NotALeaf {
                node: graph.describe(w),
            });
        };
        if !feeds.contains_key(name) {
            return Err(CheckError::MissingFeed {
                name: name.to_string(),
            });
        }
        names.push(name.to_string());
        wide_wrt.push(ww);
    }
    let Some(wide_loss) = wide.node(loss) else {
        return Err(GradError::NotInGraph {
            role: "loss",
            index: loss.index(),
        }
        .into());
    };
    let point = try_widen_feeds(feeds).map_err(CheckError::OutOfMemory)?;

    // Analytic gradients on a copy of the f64 graph.
    let b = Builder::from_graph(wide.graph.clone());
    let grads = append_grad(&b, wide_loss, &wide_wrt)?;
    let with_grads = b.finish();
    let mut wanted = vec![wide_loss];
    wanted.extend(&grads);
    let values = eval_nodes(&with_grads, &point, &wanted)?;
    let f0 = values[0].to_f64_vec()[0];
    let floor = opts.floor * f0.abs().max(1.0);

    let xs = names
        .iter()
        .map(|name| point[name].try_to_f64_vec())
        .collect::<Result<Vec<_>, _>>()
        .map_err(CheckError::OutOfMemory)?;
    let fd = FiniteDifference {
        graph: &wide.graph,
        loss: wide_loss,
        feeds: RefCell::new(point),
    };
    let mut checks = Vec::with_capacity(wrt.len());
    for (i, name) in names.iter().enumerate() {
        let analytic = values[i + 1]
            .try_to_f64_vec()
            .map_err(CheckError::OutOfMemory)?;
        let x = &xs[i];
        let mut check = WrtCheck {
            node: wrt[i],
            name: display_name(graph, wrt[i]),
            compared: 0,
            worst_error: 0.0,
            worst_at: Direction::Coordinate(0),
            analytic: 0.0,
            numeric: 0.0,
        };
        let mut record = |at: Direction, a: f64, n: f64| {
            let err = relative_error(a, n, floor);
            check.compared += 1;
            if check.compared == 1 || err > check.worst_error {
                check.worst_error = err;
                check.worst_at = at;
                check.analytic = a;
                check.numeric = n;
            }
        };
        if x.len() <= opts.coordinate_limit {
            for (j, &xj) in x.iter().enumerate() {
                let mut d = try_vec(x.len(), || 0.0)?;
                d[j] = 1.0;
                let h = opts.step * xj.abs().max(1.0);
                let n = fd.derivative(name, x, &d, h)?;
                record(Direction::Coordinate(j), analytic[j], n);
            }
        } else {
            let mut rng = Rng::derive(opts.seed, name);
            let rms = (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt();
            let h = opts.step * rms.max(1.0);
            for k in 0..opts.directions {
                let mut d = try_vec(x.len(), || rng.normal())?;
                let norm = d.iter().map(|v| v * v).sum::<f64>().sqrt();
                d.iter_mut().for_each(|v| *v /= norm);
                let a: f64 = analytic.iter().zip(&d).map(|(g, v)| g * v).sum();
                let n = fd.derivative(name, x, &d, h)?;
                record(Direction::Random(k), a, n);
            }
        }
        checks.push(check);
    }
    Ok(GradCheckReport {
        checks,
        loss: f0,
        tolerance: opts.tolerance,
    })
}

/// `|a - n| / max(|a|, |n|, floor)`, infinite when either is NaN.
fn relative_error(a: f64, n: f64, floor: f64) -> f64 {
    let e = (a - n).abs() / a.abs().max(n.abs()).max(floor);
    if e.is_nan() {
        f64::INFINITY
    } else {
        e
    }
}

/// `n` values from `f` in a vector allocated fallibly.
fn try_vec(n: usize, f: impl FnMut() -> f64) -> Result<Vec<f64>, CheckError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        CheckError::OutOfMemory(format!(
            "out of memory: cannot allocate {} bytes for a perturbation",
            n.saturating_mul(8)
        ))
    })?;
    v.extend(std::iter::repeat_with(f).take(n));
    Ok(v)
}

/// Evaluates directional derivatives of the loss by finite differences.
struct FiniteDifference<'a> {
    graph: &'a Graph,
    loss: NodeId,
    /// The point (every feed in f64); a perturbed feed is swapped in for one evaluation and
    /// swapped back, so no evaluation copies the other feeds.
    feeds: RefCell<Feeds>,
}

impl FiniteDifference<'_> {
    /// The loss with feed `name` set to `x + t·d`.
    fn loss_at(&self, name: &str, x: &[f64], d: &[f64], t: f64) -> Result<f64, CheckError> {
        let mut moved = try_vec(x.len(), || 0.0)?;
        for (m, (xi, di)) in moved.iter_mut().zip(x.iter().zip(d)) {
            *m = xi + t * di;
        }
        let mut feeds = self.feeds.borrow_mut();
        let shape = feeds[name].shape().clone();
        let tensor = HostTensor::from_f64(shape, moved).expect("same element count");
        let original = feeds.insert(name.to_string(), tensor);
        let v = eval_nodes(self.graph, &feeds, &[self.loss]);
        if let Some(original) = original {
            feeds.insert(name.to_string(), original);
        }
        Ok(v?[0].to_f64_vec()[0])
    }

    /// Central difference with one Richardson extrapolation step:
    /// `(4 D(h/2) - D(h)) / 3` with `D(h) = (f(x + h d) - f(x - h d)) / 2h`.
    fn derivative(&self, name: &str, x: &[f64], d: &[f64], h: f64) -> Result<f64, CheckError> {
        let central = |h: f64| -> Result<f64, CheckError> {
            Ok((self.loss_at(name, x, d, h)? - self.loss_at(name, x, d, -h)?) / (2.0 * h))
        };
        let (coarse, fine) = (central(h)?, central(h / 2.0)?);
        Ok((4.0 * fine - coarse) / 3.0)
    }
}

/// Seeded random feeds for every input and parameter of `graph`: floats standard normal; i32
/// uniform in `0..n`, where `n` is the smallest axis size the tensor indexes through a `gather`
/// or `scatter_add` that uses it directly, else 2; bools fair coin flips. Each leaf draws from
/// its own stream derived from `(seed, name)`, so adding a leaf leaves the others unchanged.
/// A tensor the system refuses the memory for is [`CheckError::OutOfMemory`].
pub fn random_feeds(graph: &Graph, seed: u64) -> Result<Feeds, CheckError> {
    let mut feeds = Feeds::new();
    for &id in graph.inputs().iter().chain(graph.parameters()) {
        let name = graph
            .leaf_name(id)
            .expect("inputs and parameters have names");
        let ty = graph.ty(id);
        let bound = if ty.dtype == DType::I32 {
            index_bound(graph, id).unwrap_or(2)
        } else {
            2
        };
        let mut rng = Rng::derive(seed, name);
        let t = HostTensor::try_random(ty, &mut rng, bound.min(u32::MAX as usize) as u32)
            .map_err(|e| CheckError::OutOfMemory(format!("random feed `{name}`: {e}")))?;
        feeds.insert(name.to_string(), t);
    }
    Ok(feeds)
}

/// The smallest axis size that `idx` indexes as the index operand of a gather or scatter-add.
fn index_bound(graph: &Graph, idx: NodeId) -> Option<usize> {
    graph
        .users(idx)
        .into_iter()
        .filter_map(|u| {
            let ops = graph.operands(u);
            if ops.len() != 2 || ops[1] != idx {
                return None;
            }
            match graph.op(u) {
                Op::Gather { axis } => Some(graph.ty(ops[0]).shape.dim(*axis)),
                Op::ScatterAdd { size, .. } => Some(*size),
                _ => None,
            }
        })
        .min()
}
