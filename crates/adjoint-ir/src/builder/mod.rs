//! The builder API: `Copy` tensor handles that borrow a [`Builder`] and emit primitives.
//!
//! ```
//! use adjoint_ir::{Builder, DType};
//!
//! let b = Builder::new("mlp");
//! let x = b.input("x", DType::F32, [4, 3]);
//! let w = b.parameter("w", DType::F32, [3, 2]);
//! let bias = b.parameter("b", DType::F32, [2]);
//! let h = (x.matmul(w) + bias).relu(); // bias is broadcast to [4, 2]
//! b.output("h", h);
//! let graph = b.finish();
//! assert_eq!(graph.ty(graph.output("h").unwrap()).to_string(), "f32[4,2]");
//! ```
//!
//! Shape and dtype mistakes panic where the builder method is called, naming the op, the
//! operand types and the caller's `file:line:column`; every method has a `try_` twin that
//! returns the same [`BuildError`] instead.

mod composite;
mod ops;
mod primitives;
mod stable;

use crate::graph::{Graph, NodeId};
use crate::literal::Literal;
use crate::op::{Op, TensorType};
use crate::shape::Shape;
use crate::DType;
use std::cell::{Ref, RefCell};
use std::fmt;
use std::panic::Location;

/// Builds a [`Graph`]. Methods take `&self`, so any number of [`Tensor`] handles can borrow it.
#[derive(Debug, Default)]
pub struct Builder {
    graph: RefCell<Graph>,
}

/// A handle to a node under construction. It is `Copy`: pass it around freely; it borrows the
/// [`Builder`] that made it.
#[derive(Clone, Copy)]
pub struct Tensor<'b> {
    id: NodeId,
    builder: &'b Builder,
}

/// A shape or dtype mistake found while building, with the caller's source location.
#[derive(Clone, Debug)]
pub struct BuildError {
    /// The op or builder function that refused its operands (`matmul`, `softmax`, …).
    pub op: String,
    /// The types of the operands it was given.
    pub operands: Vec<TensorType>,
    /// What is wrong.
    pub message: String,
    /// Where the builder method was called.
    pub location: &'static Location<'static>,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, self.message)?;
        if !self.operands.is_empty() {
            let tys: Vec<String> = self.operands.iter().map(|t| t.to_string()).collect();
            write!(f, " (operands: {})", tys.join(", "))?;
        }
        write!(
            f,
            " at {}:{}:{}",
            self.location.file(),
            self.location.line(),
            self.location.column()
        )
    }
}

impl std::error::Error for BuildError {}

/// Unwraps a builder result, panicking with the error's message at the caller's location.
#[track_caller]
pub(crate) fn unwrap_build<T>(r: Result<T, BuildError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

impl Builder {
    /// A builder for a new, empty graph called `name`.
    pub fn new(name: &str) -> Builder {
        Builder {
            graph: RefCell::new(Graph::new(name)),
        }
    }

    /// A builder that continues an existing graph (autodiff and passes append to graphs).
    pub fn from_graph(graph: Graph) -> Builder {
        Builder {
            graph: RefCell::new(graph),
        }
    }

    /// The graph built so far, and the end of building.
    pub fn finish(self) -> Graph {
        self.graph.into_inner()
    }

    /// Read access to the graph built so far. Do not hold the guard across builder calls.
    pub fn graph(&self) -> Ref<'_, Graph> {
        self.graph.borrow()
    }

    /// A handle to an existing node of the graph.
    pub fn tensor(&self, id: NodeId) -> Tensor<'_> {
        assert!(
            self.graph.borrow().contains(id),
            "node {id:?} is not in this builder's graph"
        );
        Tensor { id, builder: self }
    }

    /// Adds `op` on `operands` (hash-consed), or explains why the operands do not fit it.
    #[track_caller]
    pub(crate) fn emit(&self, op: Op, operands: &[NodeId]) -> Result<NodeId, BuildError> {
        let location = Location::caller();
        let mut g = self.graph.borrow_mut();
        let name = op.name();
        g.add(op, operands).map_err(|e| BuildError {
            op: name.to_string(),
            operands: operands.iter().map(|&o| g.ty(o).clone()).collect(),
            message: e.to_string(),
            location,
        })
    }

    /// A builder error for `op` with operand types, at the caller's location.
    #[track_caller]
    pub(crate) fn error(&self, op: &str, operands: &[Tensor<'_>], message: String) -> BuildError {
        BuildError {
            op: op.to_string(),
            operands: operands.iter().map(|t| t.ty()).collect(),
            message,
            location: Location::caller(),
        }
    }

    fn wrap(&self, id: NodeId) -> Tensor<'_> {
        Tensor { id, builder: self }
    }

    /// A tensor fed at run time. Panics if the name is taken.
    #[track_caller]
    pub fn input(&self, name: &str, dtype: DType, shape: impl Into<Shape>) -> Tensor<'_> {
        unwrap_build(self.try_input(name, dtype, shape))
    }

    /// [`Builder::input`], returning an error instead of panicking.
    #[track_caller]
    pub fn try_input(
        &self,
        name: &str,
        dtype: DType,
        shape: impl Into<Shape>,
    ) -> Result<Tensor<'_>, BuildError> {
        let (name, ty) = (name.to_string(), TensorType::new(dtype, shape));
        Ok(self.wrap(self.emit(Op::Input { name, ty }, &[])?))
    }

    /// A persistent tensor (weight or optimizer state). Panics if the name is taken.
    #[track_caller]
    pub fn parameter(&self, name: &str, dtype: DType, shape: impl Into<Shape>) -> Tensor<'_> {
        unwrap_build(self.try_parameter(name, dtype, shape))
    }

    /// [`Builder::parameter`], returning an error instead of panicking.
    #[track_caller]
    pub fn try_parameter(
        &self,
        name: &str,
        dtype: DType,
        shape: impl Into<Shape>,
    ) -> Result<Tensor<'_>, BuildError> {
        let (name, ty) = (name.to_string(), TensorType::new(dtype, shape));
        Ok(self.wrap(self.emit(Op::Parameter { name, ty }, &[])?))
    }

    /// A rank-0 constant, rounded to `dtype`.
    #[track_caller]
    pub fn scalar(&self, dtype: DType, value: f64) -> Tensor<'_> {
        let lit = Literal::scalar(dtype, value);
        unwrap_build(self.emit(Op::Constant(lit), &[]).map(|id| self.wrap(id)))
    }

    /// A tensor literal from row-major values, rounded to `dtype`.
    #[track_caller]
    pub fn constant(&self, dtype: DType, shape: impl Into<Shape>, values: &[f64]) -> Tensor<'_> {
        unwrap_build(self.try_constant(dtype, shape, values))
    }

    /// [`Builder::constant`], returning an error instead of panicking.
    #[track_caller]
    pub fn try_constant(
        &self,
        dtype: DType,
        shape: impl Into<Shape>,
        values: &[f64],
    ) -> Result<Tensor<'_>, BuildError> {
        let ty = TensorType::new(dtype, shape);
        let lit = match Literal::new(ty, values) {
            Ok(lit) => lit,
            Err(m) => return Err(self.error("constant", &[], m.to_string())),
        };
        Ok(self.wrap(self.emit(Op::Constant(lit), &[])?))
    }

    /// A tensor of `shape` filled with `value` (a scalar constant, broadcast).
    #[track_caller]
    pub fn full(&self, dtype: DType, shape: impl Into<Shape>, value: f64) -> Tensor<'_> {
        self.scalar(dtype, value).broadcast_to(shape)
    }

    /// A tensor of zeros.
    #[track_caller]
    pub fn zeros(&self, dtype: DType, shape: impl Into<Shape>) -> Tensor<'_> {
        self.full(dtype, shape, 0.0)
    }

    /// Values `0, 1, …` along `axis` of `shape` (negative axes count from the end).
    #[track_caller]
    pub fn iota(&self, dtype: DType, shape: impl Into<Shape>, axis: isize) -> Tensor<'_> {
        unwrap_build(self.try_iota(dtype, shape, axis))
    }

    /// [`Builder::iota`], returning an error instead of panicking.
    #[track_caller]
    pub fn try_iota(
        &self,
        dtype: DType,
        shape: impl Into<Shape>,
        axis: isize,
    ) -> Result<Tensor<'_>, BuildError> {
        let shape = shape.into();
        let Some(axis) = shape.axis(axis) else {
            let msg = format!("axis {axis} out of range for shape {shape}");
            return Err(self.error("iota", &[], msg));
        };
        let op = Op::Iota {
            ty: TensorType::new(dtype, shape),
            axis,
        };
        Ok(self.wrap(self.emit(op, &[])?))
    }

    /// Joins `parts` along `axis`.
    #[track_caller]
    pub fn concat<'b>(&'b self, parts: &[Tensor<'b>], axis: isize) -> Tensor<'b> {
        unwrap_build(self.try_concat(parts, axis))
    }

    /// [`Builder::concat`], returning an error instead of panicking.
    #[track_caller]
    pub fn try_concat<'b>(
        &'b self,
        parts: &[Tensor<'b>],
        axis: isize,
    ) -> Result<Tensor<'b>, BuildError> {
        let rank = parts.first().map_or(0, |t| t.rank());
        let Some(axis) = crate::shape::normalize_axis(axis, rank) else {
            let msg = format!("axis {axis} out of range for rank {rank}");
            return Err(self.error("concat", parts, msg));
        };
        let ids: Vec<NodeId> = parts.iter().map(|t| t.id).collect();
        Ok(self.wrap(self.emit(Op::Concat { axis }, &ids)?))
    }

    /// Declares `t` an output called `name`.
    pub fn output(&self, name: &str, t: Tensor<'_>) {
        self.graph.borrow_mut().set_output(name, t.id);
    }

    /// Declares that after a step parameter `param` takes the value `value`.
    #[track_caller]
    pub fn update(&self, param: Tensor<'_>, value: Tensor<'_>) {
        let r = self.graph.borrow_mut().set_update(param.id, value.id);
        if let Err(e) = r {
            unwrap_build::<()>(Err(self.error("update", &[param, value], e.to_string())));
        }
    }
}

impl<'b> Tensor<'b> {
    /// The node this handle refers to.
    pub fn id(self) -> NodeId {
        self.id
    }

    /// The builder it belongs to.
    pub fn builder(self) -> &'b Builder {
        self.builder
    }

    /// Its type.
    pub fn ty(self) -> TensorType {
        self.builder.graph.borrow().ty(self.id).clone()
    }

    /// Its element type.
    pub fn dtype(self) -> DType {
        self.builder.graph.borrow().ty(self.id).dtype
    }

    /// Its shape.
    pub fn shape(self) -> Shape {
        self.builder.graph.borrow().ty(self.id).shape.clone()
    }

    /// Its rank.
    pub fn rank(self) -> usize {
        self.builder.graph.borrow().ty(self.id).shape.rank()
    }

    /// Labels the node (its name in dumps) and returns the handle.
    pub fn named(self, label: &str) -> Tensor<'b> {
        self.builder.graph.borrow_mut().set_label(self.id, label);
        self
    }

    /// A handle to another node of the same builder.
    pub(crate) fn with(self, id: NodeId) -> Tensor<'b> {
        Tensor {
            id,
            builder: self.builder,
        }
    }

    /// A scalar constant of this tensor's dtype.
    #[track_caller]
    pub fn scalar_like(self, value: f64) -> Tensor<'b> {
        self.builder.scalar(self.dtype(), value)
    }
}

impl fmt::Debug for Tensor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tensor({} : {})",
            self.builder.graph.borrow().describe(self.id),
            self.ty()
        )
    }
}
