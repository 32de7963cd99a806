//! Builder methods that emit one primitive each (plus the broadcasts their operands need).

use super::{unwrap_build, BuildError, Tensor};
use crate::graph::NodeId;
use crate::op::{AllReduceKind, BinaryOp, CompareOp, Op, ReduceOp, SliceRange, UnaryOp};
use crate::shape::{broadcast_shapes, normalize_axis, Dims, Shape};
use crate::DType;

/// Defines panicking builder methods that call their `try_` twin.
macro_rules! panicking {
    ($( $(#[$doc:meta])* $name:ident => $try_name:ident ( $($arg:ident : $t:ty),* ); )*) => {
        $(
            $(#[$doc])*
            #[doc = concat!("\n\nPanics on a shape or dtype error; see [`Tensor::", stringify!($try_name), "`].")]
            #[track_caller]
            pub fn $name(self, $($arg: $t),*) -> Tensor<'b> {
                unwrap_build(self.$try_name($($arg),*))
            }
        )*
    };
}
pub(crate) use panicking;

impl<'b> Tensor<'b> {
    panicking! {
        /// `e^x`.
        exp => try_exp();
        /// Natural logarithm.
        log => try_log();
        /// Square root.
        sqrt => try_sqrt();
        /// `1/x`.
        recip => try_recip();
        /// Hyperbolic tangent.
        tanh => try_tanh();
        /// Sine.
        sin => try_sin();
        /// Cosine.
        cos => try_cos();
        /// Absolute value.
        abs => try_abs();
        /// Sign: -1, 0 or 1.
        sign => try_sign();
        /// The same values with no gradient (JAX's `stop_gradient`, PyTorch's `detach`).
        stop_gradient => try_stop_gradient();
        /// `self ^ rhs`, broadcasting.
        pow => try_pow(rhs: Tensor<'b>);
        /// Elementwise maximum, broadcasting.
        maximum => try_maximum(rhs: Tensor<'b>);
        /// Elementwise minimum, broadcasting.
        minimum => try_minimum(rhs: Tensor<'b>);
        /// `self < rhs` (bool), broadcasting.
        lt => try_lt(rhs: Tensor<'b>);
        /// `self <= rhs` (bool), broadcasting.
        le => try_le(rhs: Tensor<'b>);
        /// `self > rhs` (bool), broadcasting.
        gt => try_gt(rhs: Tensor<'b>);
        /// `self >= rhs` (bool), broadcasting.
        ge => try_ge(rhs: Tensor<'b>);
        /// `self == rhs` (bool), broadcasting.
        eq => try_eq(rhs: Tensor<'b>);
        /// `self != rhs` (bool), broadcasting.
        ne => try_ne(rhs: Tensor<'b>);
        /// With `self` a bool mask: `on_true` where it is true, `on_false` elsewhere (all three
        /// broadcast together).
        select => try_select(on_true: Tensor<'b>, on_false: Tensor<'b>);
        /// Element type conversion.
        cast => try_cast(to: DType);
        /// NumPy `broadcast_to`.
        broadcast_to => try_broadcast_to(shape: impl Into<Shape>);
        /// Same elements in a new shape.
        reshape => try_reshape(shape: impl Into<Shape>);
        /// Permutes axes: result axis `i` is axis `perm[i]`.
        permute => try_permute(perm: &[usize]);
        /// Swaps two axes (negative axes count from the end).
        transpose => try_transpose(a: isize, b: isize);
        /// Takes `start..stop` by `step` along one axis.
        slice => try_slice(axis: isize, start: usize, stop: usize, step: usize);
        /// Strided slice with one range per axis.
        slice_ranges => try_slice_ranges(ranges: &[SliceRange]);
        /// Zero padding before (`low`) and after (`high`) each axis.
        pad => try_pad(low: &[usize], high: &[usize]);
        /// Sum over `axes` (removed from the shape).
        sum => try_sum(axes: &[isize]);
        /// Sum over `axes`, kept with size 1.
        sum_keepdims => try_sum_keepdims(axes: &[isize]);
        /// Maximum over `axes` (removed from the shape).
        max => try_max(axes: &[isize]);
        /// Maximum over `axes`, kept with size 1.
        max_keepdims => try_max_keepdims(axes: &[isize]);
        /// Matrix product with NumPy `matmul` rules: 1-D operands are promoted to matrices and
        /// batch axes broadcast; an N-D left operand times a matrix is one large matrix product.
        matmul => try_matmul(rhs: Tensor<'b>);
        /// NumPy `take(self, idx, axis)`.
        gather => try_gather(idx: Tensor<'b>, axis: isize);
        /// Adds `self` into zeros whose `axis` has `size` elements, at positions `idx`.
        scatter_add => try_scatter_add(idx: Tensor<'b>, axis: isize, size: usize);
        /// Inserts an axis of size 1 at `axis`.
        unsqueeze => try_unsqueeze(axis: isize);
        /// Removes an axis of size 1.
        squeeze => try_squeeze(axis: isize);
        /// The sum (`AllReduceKind::Sum`) or mean of `self` over the `replicas` replicas of a
        /// data-parallel group ([`Op::AllReduce`]).
        all_reduce => try_all_reduce(kind: AllReduceKind, replicas: usize);
    }

    /// Emits `op` on operand nodes.
    #[track_caller]
    fn op(self, op: Op, operands: &[NodeId]) -> Result<Tensor<'b>, BuildError> {
        Ok(self.with(self.builder.emit(op, operands)?))
    }

    /// Applies a unary op.
    #[track_caller]
    pub fn try_unary(self, u: UnaryOp) -> Result<Tensor<'b>, BuildError> {
        self.op(Op::Unary(u), &[self.id])
    }

    /// Broadcasts `self` and `rhs` to a common shape; both must have the same dtype.
    #[track_caller]
    pub fn try_broadcast_with(
        self,
        op: &str,
        rhs: Tensor<'b>,
    ) -> Result<(Tensor<'b>, Tensor<'b>), BuildError> {
        let (sa, sb) = (self.shape(), rhs.shape());
        let Some(shape) = broadcast_shapes(&sa, &sb) else {
            let msg = format!("shapes {sa} and {sb} do not broadcast");
            return Err(self.builder.error(op, &[self, rhs], msg));
        };
        Ok((
            self.try_broadcast_to(shape.clone())?,
            rhs.try_broadcast_to(shape)?,
        ))
    }

    /// Applies a binary op after broadcasting.
    #[track_caller]
    pub fn try_binary(self, bop: BinaryOp, rhs: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
        self.check_same_dtype(bop.name(), rhs)?;
        let (a, b) = self.try_broadcast_with(bop.name(), rhs)?;
        self.op(Op::Binary(bop), &[a.id, b.id])
    }

    /// Applies a comparison after broadcasting.
    #[track_caller]
    pub fn try_compare(self, c: CompareOp, rhs: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
        self.check_same_dtype(c.name(), rhs)?;
        let (a, b) = self.try_broadcast_with(c.name(), rhs)?;
        self.op(Op::Compare(c), &[a.id, b.id])
    }

    #[track_caller]
    fn check_same_dtype(self, op: &str, rhs: Tensor<'b>) -> Result<(), BuildError> {
        if self.dtype() == rhs.dtype() {
            return Ok(());
        }
        let msg = format!(
            "dtypes {} and {} differ (cast one of them)",
            self.dtype(),
            rhs.dtype()
        );
        Err(self.builder.error(op, &[self, rhs], msg))
    }

    /// Reduction over `axes` (negative axes count from the end; duplicates are an error).
    #[track_caller]
    pub fn try_reduce(
        self,
        rop: ReduceOp,
        axes: &[isize],
        keepdims: bool,
    ) -> Result<Tensor<'b>, BuildError> {
        let name = if rop == ReduceOp::Sum { "sum" } else { "max" };
        let axes = self.resolve_axes(name, axes)?;
        self.op(
            Op::Reduce {
                op: rop,
                axes,
                keepdims,
            },
            &[self.id],
        )
    }

    /// Resolves axes against this tensor's rank, sorted and checked for duplicates.
    #[track_caller]
    pub(crate) fn resolve_axes(self, op: &str, axes: &[isize]) -> Result<Dims, BuildError> {
        let rank = self.rank();
        let mut out = Dims::new();
        for &a in axes {
            match normalize_axis(a, rank) {
                Some(a) if !out.contains(&a) => out.push(a),
                Some(_) => {
                    return Err(self
                        .builder
                        .error(op, &[self], format!("axis {a} given twice")))
                }
                None => {
                    return Err(self.builder.error(
                        op,
                        &[self],
                        format!("axis {a} out of range for rank {rank}"),
                    ))
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    #[track_caller]
    fn resolve_axis(self, op: &str, axis: isize) -> Result<usize, BuildError> {
        Ok(self.resolve_axes(op, &[axis])?[0])
    }

    /// `-x`, or an error.
    #[track_caller]
    pub fn try_neg(self) -> Result<Tensor<'b>, BuildError> {
        self.try_unary(UnaryOp::Neg)
    }
    /// `e^x`, or an error.
    #[track_caller]
    pub fn try_exp(self) -> Result<Tensor<'b>, BuildError> {
        self.try_unary(UnaryOp::Exp)
    }
    /// `ln x`, or an error.
    #[track_caller]
    pub fn try_log(self) -> Result<Tensor<'b>, BuildError> {
        self.try_unary(UnaryOp::Log)
    }
    /// `sqrt x`, or an error.
    #[track_caller]
    pub fn try_sqrt(self) -> Result<Tensor<'b>, BuildError> {
        self.try_unary(UnaryOp::Sqrt)
    }
    /// `1/x`, or an error.
    #[track_caller]
    pub fn try_recip(self) -> Result<Tensor<'b>, BuildError> {
        self.try_unary(UnaryOp::Recip)
    }
    /// `tanh x`, or an error.
    #[track_caller]
    pub fn try_tanh(self) -> Result<Tensor<'b>, BuildError> {
        self.try_unary(UnaryOp::Tanh)
    }
    /// `sin x`, or an error.
    #[track_caller]
    pub fn try_sin(self) -> Result<Tensor<'b>, BuildError> {
        self.try_unary(UnaryOp::Sin)
    }
    /// `cos x`, or an error.
    #[track_caller]
    pub fn try_cos(self) -> Result<Tensor<'b>, BuildError> {
        self.try_unary(UnaryOp::Cos)
    }
    /// `|x|`, or an error.
    #[track_caller]
    pub fn try_abs(self) -> Result<Tensor<'b>, BuildError> {
        self.try_unary(UnaryOp::Abs)
    }
    /// `sign x`, or an error.
    #[track_caller]
    pub fn try_sign(self) -> Result<Tensor<'b>, BuildError> {
        self.try_unary(UnaryOp::Sign)
    }
    /// The same values with no gradient, or an error.
    #[track_caller]
    pub fn try_stop_gradient(self) -> Result<Tensor<'b>, BuildError> {
        self.try_unary(UnaryOp::StopGradient)
    }
    /// `self + rhs`, or an error.
    #[track_caller]
    pub fn try_add(self, rhs: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
        self.try_binary(BinaryOp::Add, rhs)
    }
    /// `self - rhs`, or an error.
    #[track_caller]
    pub fn try_sub(self, rhs: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
        self.try_binary(BinaryOp::Sub, rhs)
    }
    /// `self * rhs`, or an error.
    #[track_caller]
    pub fn try_mul(self, rhs: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
        self.try_binary(BinaryOp::Mul, rhs)
    }
    /// `self / rhs`, or an error.
    #[track_caller]
    pub fn try_div(self, rhs: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
        self.try_binary(BinaryOp::Div, rhs)
    }
    /// `self ^ rhs`, or an error.
    #[track_caller]
    pub fn try_pow(self, rhs: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
        self.try_binary(BinaryOp::Pow, rhs)
    }
    /// Elementwise maximum, or an error.
    #[track_caller]
    pub fn try_maximum(self, rhs: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
        self.try_binary(BinaryOp::Max, rhs)
    }
    /// Elementwise minimum, or an error.
    #[track_caller]
    pub fn try_minimum(self, rhs: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
        self.try_binary(BinaryOp::Min, rhs)
    }
    /// `self < rhs`, or an error.
    #[track_caller]
    pub fn try_lt(self, rhs: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
        self.try_compare(CompareOp::Lt, rhs)
    }
    /// `self <= rhs`, or an error.
    #[track_caller]
    pub fn try_le(self, rhs: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
        self.try_compare(CompareOp::Le, rhs)
    }
    /// `self > rhs` (emitted as `rhs < self`), or an error.
    #[track_caller]
    pub fn try_gt(self, rhs: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
        rhs.try_compare(CompareOp::Lt, self)
    }
    /// `self >= rhs` (emitted as `rhs <= self`), or an error.
    #[track_caller]
    pub fn try_ge(self, rhs: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
        rhs.try_compare(CompareOp::Le, self)
    }
    /// `self == rhs`, or an error.
    #[track_caller]
    pub fn try_eq(self, rhs: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
        self.try_compare(CompareOp::Eq, rhs)
    }
    /// `self != rhs`, or an error.
    #[track_caller]
    pub fn try_ne(self, rhs: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
        self.try_compare(CompareOp::Ne, rhs)
    }

    /// Select, or an error.
    #[track_caller]
    pub fn try_select(
        self,
        on_true: Tensor<'b>,
        on_false: Tensor<'b>,
    ) -> Result<Tensor<'b>, BuildError> {
        let b = self.builder;
        if self.dtype() != DType::Bool {
            let msg = format!("the condition must be bool, got {}", self.dtype());
            return Err(b.error("select", &[self, on_true, on_false], msg));
        }
        on_true.check_same_dtype("select", on_false)?;
        let (t, f) = on_true.try_broadcast_with("select", on_false)?;
        let Some(shape) = broadcast_shapes(&self.shape(), &t.shape()) else {
            let msg = format!(
                "condition shape {} and value shape {} do not broadcast",
                self.shape(),
                t.shape()
            );
            return Err(b.error("select", &[self, on_true, on_false], msg));
        };
        let c = self.try_broadcast_to(shape.clone())?;
        let (t, f) = (
            t.try_broadcast_to(shape.clone())?,
            f.try_broadcast_to(shape)?,
        );
        self.op(Op::Select, &[c.id, t.id, f.id])
    }

    /// Cast, or an error. Casting to the same dtype returns `self`.
    #[track_caller]
    pub fn try_cast(self, to: DType) -> Result<Tensor<'b>, BuildError> {
        if self.dtype() == to {
            return Ok(self);
        }
        self.op(Op::Cast { to }, &[self.id])
    }

    /// Broadcast, or an error. Broadcasting to the same shape returns `self`.
    #[track_caller]
    pub fn try_broadcast_to(self, shape: impl Into<Shape>) -> Result<Tensor<'b>, BuildError> {
        let shape = shape.into();
        if self.shape() == shape {
            return Ok(self);
        }
        self.op(Op::Broadcast { shape }, &[self.id])
    }

    /// Reshape, or an error. Reshaping to the same shape returns `self`.
    #[track_caller]
    pub fn try_reshape(self, shape: impl Into<Shape>) -> Result<Tensor<'b>, BuildError> {
        let shape = shape.into();
        if self.shape() == shape {
            return Ok(self);
        }
        self.op(Op::Reshape { shape }, &[self.id])
    }

    /// Permute, or an error.
    #[track_caller]
    pub fn try_permute(self, perm: &[usize]) -> Result<Tensor<'b>, BuildError> {
        if perm.iter().enumerate().all(|(i, &p)| i == p) && perm.len() == self.rank() {
            return Ok(self);
        }
        self.op(
            Op::Permute {
                perm: Dims::from_slice(perm),
            },
            &[self.id],
        )
    }

    /// Transpose of two axes, or an error.
    #[track_caller]
    pub fn try_transpose(self, a: isize, b: isize) -> Result<Tensor<'b>, BuildError> {
        let (a, b) = (
            self.resolve_axis("transpose", a)?,
            self.resolve_axis("transpose", b)?,
        );
        let mut perm: Dims = (0..self.rank()).collect();
        perm.swap(a, b);
        self.try_permute(&perm)
    }

    /// One-axis slice, or an error.
    #[track_caller]
    pub fn try_slice(
        self,
        axis: isize,
        start: usize,
        stop: usize,
        step: usize,
    ) -> Result<Tensor<'b>, BuildError> {
        let axis = self.resolve_axis("slice", axis)?;
        let mut ranges: Vec<SliceRange> = self
            .shape()
            .dims()
            .iter()
            .map(|&d| SliceRange::full(d))
            .collect();
        ranges[axis] = SliceRange { start, stop, step };
        self.try_slice_ranges(&ranges)
    }

    /// Strided slice, or an error.
    #[track_caller]
    pub fn try_slice_ranges(self, ranges: &[SliceRange]) -> Result<Tensor<'b>, BuildError> {
        let shape = self.shape();
        let whole = ranges.len() == shape.rank()
            && ranges
                .iter()
                .zip(shape.dims())
                .all(|(r, &d)| *r == SliceRange::full(d));
        if whole {
            return Ok(self);
        }
        self.op(
            Op::Slice {
                ranges: ranges.to_vec(),
            },
            &[self.id],
        )
    }

    /// Zero padding, or an error.
    #[track_caller]
    pub fn try_pad(self, low: &[usize], high: &[usize]) -> Result<Tensor<'b>, BuildError> {
        self.op(
            Op::Pad {
                low: Dims::from_slice(low),
                high: Dims::from_slice(high),
            },
            &[self.id],
        )
    }

    /// Sum, or an error.
    #[track_caller]
    pub fn try_sum(self, axes: &[isize]) -> Result<Tensor<'b>, BuildError> {
        self.try_reduce(ReduceOp::Sum, axes, false)
    }
    /// Sum keeping dims, or an error.
    #[track_caller]
    pub fn try_sum_keepdims(self, axes: &[isize]) -> Result<Tensor<'b>, BuildError> {
        self.try_reduce(ReduceOp::Sum, axes, true)
    }
    /// Max, or an error.
    #[track_caller]
    pub fn try_max(self, axes: &[isize]) -> Result<Tensor<'b>, BuildError> {
        self.try_reduce(ReduceOp::Max, axes, false)
    }
    /// Max keeping dims, or an error.
    #[track_caller]
    pub fn try_max_keepdims(self, axes: &[isize]) -> Result<Tensor<'b>, BuildError> {
        self.try_reduce(ReduceOp::Max, axes, true)
    }

    /// Sum over every axis: a scalar.
    #[track_caller]
    pub fn sum_all(self) -> Tensor<'b> {
        let axes: Vec<isize> = (0..self.rank() as isize).collect();
        self.sum(&axes)
    }

    /// Matmul, or an error.
    #[track_caller]
    pub fn try_matmul(self, rhs: Tensor<'b>) -> Result<Tensor<'b>, BuildError> {
        let (sa, sb) = (self.shape(), rhs.shape());
        let operands = [self, rhs];
        if sa.rank() == 0 || sb.rank() == 0 {
            let msg = "operands must have rank at least 1".to_string();
            return Err(self.builder.error("matmul", &operands, msg));
        }
        self.check_same_dtype("matmul", rhs)?;
        // NumPy: a 1-D left operand is a row vector, a 1-D right operand a column vector; the
        // added axis is removed from the result.
        if sa.rank() == 1 {
            let a = self.try_reshape([1, sa.dim(0)])?;
            let out = a.try_matmul(rhs)?;
            return out.try_squeeze(-2);
        }
        if sb.rank() == 1 {
            let b = rhs.try_reshape([sb.dim(0), 1])?;
            let out = self.try_matmul(b)?;
            return out.try_squeeze(-1);
        }
        let (ra, rb) = (sa.rank(), sb.rank());
        let (m, k) = (sa.dim(ra - 2), sa.dim(ra - 1));
        let (k2, n) = (sb.dim(rb - 2), sb.dim(rb - 1));
        if k != k2 {
            let msg =
                format!("contraction dimensions differ: {sa} has {k} columns, {sb} has {k2} rows");
            return Err(self.builder.error("matmul", &operands, msg));
        }
        if ra > 2 && rb == 2 {
            // [..., m, k] @ [k, n]: one matrix product over all rows.
            let rows = sa.numel() / k;
            let flat = self.try_reshape([rows, k])?;
            let out = flat.op(Op::MatMul, &[flat.id, rhs.id])?;
            let mut dims = Dims::from_slice(sa.dims());
            dims[ra - 1] = n;
            return out.try_reshape(dims);
        }
        let batch_a = Shape::new(&sa.dims()[..ra - 2]);
        let batch_b = Shape::new(&sb.dims()[..rb - 2]);
        let Some(batch) = broadcast_shapes(&batch_a, &batch_b) else {
            let msg = format!("batch dimensions {batch_a} and {batch_b} do not broadcast");
            return Err(self.builder.error("matmul", &operands, msg));
        };
        let mut dims_a = Dims::from_slice(batch.dims());
        let mut dims_b = dims_a.clone();
        dims_a.extend([m, k]);
        dims_b.extend([k, n]);
        let (a, b) = (
            self.try_broadcast_to(dims_a)?,
            rhs.try_broadcast_to(dims_b)?,
        );
        self.op(Op::MatMul, &[a.id, b.id])
    }

    /// Gather, or an error.
    #[track_caller]
    pub fn try_gather(self, idx: Tensor<'b>, axis: isize) -> Result<Tensor<'b>, BuildError> {
        let axis = self.resolve_axis("gather", axis)?;
        self.op(Op::Gather { axis }, &[self.id, idx.id])
    }

    /// Scatter-add, or an error. `axis` is an axis of the result.
    #[track_caller]
    pub fn try_scatter_add(
        self,
        idx: Tensor<'b>,
        axis: isize,
        size: usize,
    ) -> Result<Tensor<'b>, BuildError> {
        let out_rank = (self.rank() + 1).saturating_sub(idx.rank());
        let Some(axis) = normalize_axis(axis, out_rank) else {
            let msg = format!("axis {axis} out of range for result rank {out_rank}");
            return Err(self.builder.error("scatter_add", &[self, idx], msg));
        };
        self.op(Op::ScatterAdd { axis, size }, &[self.id, idx.id])
    }

    /// All-reduce over `replicas` replicas, or an error (the operand must be `f32` or `f64`;
    /// `replicas` at least 1).
    #[track_caller]
    pub fn try_all_reduce(
        self,
        kind: AllReduceKind,
        replicas: usize,
    ) -> Result<Tensor<'b>, BuildError> {
        self.op(Op::AllReduce { kind, replicas }, &[self.id])
    }

    /// Unsqueeze, or an error.
    #[track_caller]
    pub fn try_unsqueeze(self, axis: isize) -> Result<Tensor<'b>, BuildError> {
        let s = self.shape();
        let Some(axis) = normalize_axis(axis, s.rank() + 1) else {
            let msg = format!("axis {axis} out of range for rank {}", s.rank() + 1);
            return Err(self.builder.error("unsqueeze", &[self], msg));
        };
        let mut dims = Dims::from_slice(s.dims());
        dims.insert(axis, 1);
        self.try_reshape(dims)
    }

    /// Squeeze, or an error.
    #[track_caller]
    pub fn try_squeeze(self, axis: isize) -> Result<Tensor<'b>, BuildError> {
        let s = self.shape();
        let axis = self.resolve_axis("squeeze", axis)?;
        if s.dim(axis) != 1 {
            let msg = format!("axis {axis} of {s} has size {}, not 1", s.dim(axis));
            return Err(self.builder.error("squeeze", &[self], msg));
        }
        let mut dims = Dims::from_slice(s.dims());
        dims.remove(axis);
        self.try_reshape(dims)
    }
}
