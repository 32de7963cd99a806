//! The primitive op set.
//!
//! Everything else (softmax, layer norm, cross-entropy, attention) is a builder function that
//! emits these primitives. `docs/ir.md` gives each op's semantics and shape rule.

use crate::literal::Literal;
use crate::shape::{Dims, Shape, MAX_TENSOR_BYTES};
use crate::DType;
use std::fmt;

/// A tensor's static type: element type and shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    /// Element type.
    pub dtype: DType,
    /// Static shape.
    pub shape: Shape,
}

impl TensorType {
    /// A tensor type from its parts.
    pub fn new(dtype: DType, shape: impl Into<Shape>) -> TensorType {
        TensorType {
            dtype,
            shape: shape.into(),
        }
    }

    /// Bytes of a dense buffer of this type.
    ///
    /// Panics if the size overflows `usize`; a type in a verified graph never does (use
    /// [`TensorType::try_size_bytes`] for types read from outside).
    pub fn size_bytes(&self) -> usize {
        self.try_size_bytes()
            .unwrap_or_else(|| panic!("the size of {self} in bytes overflows usize"))
    }

    /// Bytes of a dense buffer of this type, or `None` if the count overflows `usize`.
    pub fn try_size_bytes(&self) -> Option<usize> {
        self.shape.try_numel()?.checked_mul(self.dtype.size_bytes())
    }

    /// Checks that a tensor of this type is addressable: its [`Shape::span`] in bytes is at most
    /// [`MAX_TENSOR_BYTES`], so its element count, strides and byte size cannot overflow.
    pub fn check_size(&self) -> Result<(), crate::SizeError> {
        let bytes = self
            .shape
            .span()
            .and_then(|n| n.checked_mul(self.dtype.size_bytes()));
        match bytes {
            Some(b) if b <= MAX_TENSOR_BYTES => Ok(()),
            _ => Err(crate::SizeError { ty: self.clone() }),
        }
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype, self.shape)
    }
}

/// Declares an elementwise op enum from its table: one row per op with its text-format name
/// and whether it is defined on `i32`. `ALL`, `COUNT`, `name`, `allows_int` and `from_name`
/// are derived from the rows, so an op cannot be added without its name and dtype rule, and
/// nothing that loops over `ALL` (the parser, the random graph generator, the op tests) can
/// miss it.
macro_rules! op_table {
    (
        $(#[$meta:meta])*
        pub enum $Enum:ident {
            $( $(#[$doc:meta])* $Variant:ident = $name:literal, int: $int:literal; )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $Enum {
            $( $(#[$doc])* $Variant, )+
        }

        impl $Enum {
            /// How many ops the table has.
            pub const COUNT: usize = [$($name),+].len();

            /// Every op of the table, in declaration order.
            pub const ALL: [$Enum; $Enum::COUNT] = [$($Enum::$Variant),+];

            /// Text-format name.
            pub fn name(self) -> &'static str {
                match self {
                    $( $Enum::$Variant => $name, )+
                }
            }

            /// True for the ops defined on i32 as well as floats.
            pub fn allows_int(self) -> bool {
                match self {
                    $( $Enum::$Variant => $int, )+
                }
            }

            /// The op whose text-format name is `name`.
            pub fn from_name(name: &str) -> Option<$Enum> {
                $Enum::ALL.into_iter().find(|op| op.name() == name)
            }
        }
    };
}

op_table! {
    /// Elementwise functions of one operand.
    pub enum UnaryOp {
        /// `-x` (floats and i32).
        Neg = "neg", int: true;
        /// `e^x`.
        Exp = "exp", int: false;
        /// Natural logarithm.
        Log = "log", int: false;
        /// Square root.
        Sqrt = "sqrt", int: false;
        /// `1/x`.
        Recip = "recip", int: false;
        /// Hyperbolic tangent.
        Tanh = "tanh", int: false;
        /// Sine (radians).
        Sin = "sin", int: false;
        /// Cosine (radians).
        Cos = "cos", int: false;
        /// `|x|` (floats and i32).
        Abs = "abs", int: true;
        /// `-1`, `0` or `1` (floats and i32); `sign(±0) = 0`, `sign(NaN) = NaN`.
        Sign = "sign", int: true;
        /// `x` itself, with no gradient: reverse mode sends nothing through it (JAX's
        /// `stop_gradient`, PyTorch's `detach`). Every type.
        StopGradient = "stop_gradient", int: true;
    }
}

op_table! {
    /// Elementwise functions of two operands of the same type and shape.
    pub enum BinaryOp {
        /// `a + b`.
        Add = "add", int: true;
        /// `a - b`.
        Sub = "sub", int: true;
        /// `a * b`.
        Mul = "mul", int: true;
        /// `a / b` (floats only).
        Div = "div", int: false;
        /// `a^b` (floats only).
        Pow = "pow", int: false;
        /// `max(a, b)`; NaN if either is NaN.
        Max = "max", int: true;
        /// `min(a, b)`; NaN if either is NaN.
        Min = "min", int: true;
    }
}

op_table! {
    /// Elementwise comparisons; the result is `bool`.
    pub enum CompareOp {
        /// `a < b`.
        Lt = "lt", int: true;
        /// `a <= b`.
        Le = "le", int: true;
        /// `a == b`.
        Eq = "eq", int: true;
        /// `a != b`.
        Ne = "ne", int: true;
    }
}

/// Reductions over a set of axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReduceOp {
    /// Sum (0 over an empty set).
    Sum,
    /// Maximum (`-inf` for floats, `i32::MIN` for i32 over an empty set).
    Max,
}

/// How an [`Op::AllReduce`] combines the replicas' values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AllReduceKind {
    /// The sum over the replicas.
    Sum,
    /// The sum over the replicas divided by their number.
    Mean,
}

impl AllReduceKind {
    /// Both kinds.
    pub const ALL: [AllReduceKind; 2] = [AllReduceKind::Sum, AllReduceKind::Mean];

    /// Text-format name of the op of this kind (`all_reduce_sum`, `all_reduce_mean`).
    pub fn op_name(self) -> &'static str {
        match self {
            AllReduceKind::Sum => "all_reduce_sum",
            AllReduceKind::Mean => "all_reduce_mean",
        }
    }
}

/// One axis of a [`Op::Slice`]: the elements `start, start+step, …` below `stop`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SliceRange {
    /// First index taken.
    pub start: usize,
    /// One past the last index that may be taken (`start <= stop <= dim`).
    pub stop: usize,
    /// Distance between taken indices (at least 1).
    pub step: usize,
}

impl SliceRange {
    /// The whole of an axis of size `dim`.
    pub fn full(dim: usize) -> SliceRange {
        SliceRange {
            start: 0,
            stop: dim,
            step: 1,
        }
    }

    /// How many indices the range takes.
    pub fn len(&self) -> usize {
        if self.stop <= self.start {
            0
        } else {
            (self.stop - self.start).div_ceil(self.step)
        }
    }

    /// True when the range takes no index.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A primitive operation. Its operands are the node's incoming edges, ordered by edge weight.
///
/// Every op carries all of its attributes, so the result type of a node is a pure function of
/// its op and its operands' types ([`crate::infer::result_type`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// A tensor fed at run time (data, labels). No operands.
    Input {
        /// Name the feed is given under.
        name: String,
        /// Its type.
        ty: TensorType,
    },
    /// A persistent tensor owned by the runtime (weights, optimizer state). No operands.
    Parameter {
        /// Name the value is stored under.
        name: String,
        /// Its type.
        ty: TensorType,
    },
    /// A literal tensor (a scalar has rank 0). No operands.
    Constant(Literal),
    /// Values `0, 1, 2, …` along `axis`, repeated over the other axes. No operands.
    Iota {
        /// Its type (numeric).
        ty: TensorType,
        /// The axis that counts.
        axis: usize,
    },
    /// Elementwise function of one operand.
    Unary(UnaryOp),
    /// Elementwise function of two operands of equal type.
    Binary(BinaryOp),
    /// Elementwise comparison of two operands of equal type; result `bool`.
    Compare(CompareOp),
    /// `select(cond, a, b)`: `a` where `cond` is true, else `b`; all three the same shape.
    Select,
    /// Element type conversion (float→i32 truncates toward zero and saturates; NaN→0;
    /// bool→number gives 0/1; number→bool is `x != 0`).
    Cast {
        /// Target element type.
        to: DType,
    },
    /// NumPy `broadcast_to`: aligned on the last axis, each operand dimension 1 or equal.
    Broadcast {
        /// Result shape.
        shape: Shape,
    },
    /// Same elements, new shape (row-major order); element counts must match.
    Reshape {
        /// Result shape.
        shape: Shape,
    },
    /// Axis permutation: result axis `i` is operand axis `perm[i]`.
    Permute {
        /// A permutation of `0..rank`.
        perm: Dims,
    },
    /// Strided slice, one range per axis.
    Slice {
        /// One range per operand axis.
        ranges: Vec<SliceRange>,
    },
    /// Zero padding: `low[i]` zeros before and `high[i]` after axis `i`.
    Pad {
        /// Zeros before each axis.
        low: Dims,
        /// Zeros after each axis.
        high: Dims,
    },
    /// Joins one or more operands along `axis`; other dimensions must match.
    Concat {
        /// The joined axis.
        axis: usize,
    },
    /// Sum or max over `axes` (sorted, distinct); reduced axes are kept as size 1 if `keepdims`.
    Reduce {
        /// Which reduction.
        op: ReduceOp,
        /// Reduced axes, ascending.
        axes: Dims,
        /// Keep reduced axes with size 1.
        keepdims: bool,
    },
    /// Batched matrix product `[..., m, k] @ [..., k, n] -> [..., m, n]`; both operands have the
    /// same rank (at least 2) and the same batch dimensions.
    MatMul,
    /// NumPy `take(x, idx, axis)`: result shape is
    /// `x.shape[..axis] ++ idx.shape ++ x.shape[axis+1..]`. Indices outside `0..x.shape[axis]`
    /// read 0.
    Gather {
        /// The indexed axis of the first operand.
        axis: usize,
    },
    /// The adjoint of [`Op::Gather`]: `scatter_add(upd, idx)` starts from zeros whose `axis` has
    /// `size` elements and adds `upd` at the indexed positions (`upd.shape` is
    /// `out.shape[..axis] ++ idx.shape ++ out.shape[axis+1..]`). Out-of-range indices are dropped.
    ScatterAdd {
        /// The scattered axis of the result.
        axis: usize,
        /// Size of that axis.
        size: usize,
    },
    /// The sum or mean of the operand over the `replicas` replicas of a data-parallel group
    /// (each running the same graph on its own data): every replica gets the same result, of
    /// the operand's type (`f32` or `f64`). The engines call a `Collective` for it
    /// ([`crate::collective`]); with one replica it is the identity.
    AllReduce {
        /// Sum or mean.
        kind: AllReduceKind,
        /// How many replicas take part (at least 1).
        replicas: usize,
    },
}

impl Op {
    /// The op's name in the text format (`add`, `matmul`, `reduce_sum`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Parameter { .. } => "parameter",
            Op::Constant(_) => "constant",
            Op::Iota { .. } => "iota",
            Op::Unary(u) => u.name(),
            Op::Binary(b) => b.name(),
            Op::Compare(c) => c.name(),
            Op::Select => "select",
            Op::Cast { .. } => "cast",
            Op::Broadcast { .. } => "broadcast",
            Op::Reshape { .. } => "reshape",
            Op::Permute { .. } => "permute",
            Op::Slice { .. } => "slice",
            Op::Pad { .. } => "pad",
            Op::Concat { .. } => "concat",
            Op::Reduce {
                op: ReduceOp::Sum, ..
            } => "reduce_sum",
            Op::Reduce {
                op: ReduceOp::Max, ..
            } => "reduce_max",
            Op::MatMul => "matmul",
            Op::Gather { .. } => "gather",
            Op::ScatterAdd { .. } => "scatter_add",
            Op::AllReduce { kind, .. } => kind.op_name(),
        }
    }

    /// The op's cost class: how the compiler schedules, fuses and lowers it. Every
    /// classification in the compiler (fusion anchors, rematerialization costs, group kinds,
    /// lowering) derives from this one exhaustive match.
    pub fn class(&self) -> OpClass {
        match self {
            Op::Input { .. } | Op::Parameter { .. } | Op::Constant(_) | Op::Iota { .. } => {
                OpClass::Leaf
            }
            Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Select | Op::Cast { .. } => {
                OpClass::Elementwise
            }
            Op::Broadcast { .. }
            | Op::Reshape { .. }
            | Op::Permute { .. }
            | Op::Slice { .. }
            | Op::Pad { .. }
            | Op::Concat { .. } => OpClass::Movement,
            Op::Reduce { .. } => OpClass::Reduction,
            Op::MatMul => OpClass::Contraction,
            Op::Gather { .. } => OpClass::Gather,
            Op::ScatterAdd { .. } => OpClass::Scatter,
            Op::AllReduce { .. } => OpClass::Collective,
        }
    }

    /// The text-format names of the ops outside the elementwise tables, one per [`Op`]
    /// variant (two for `reduce` and two for `all_reduce`).
    const STRUCTURAL_NAMES: [&'static str; 19] = [
        "input",
        "parameter",
        "constant",
        "iota",
        "select",
        "cast",
        "broadcast",
        "reshape",
        "permute",
        "slice",
        "pad",
        "concat",
        "reduce_sum",
        "reduce_max",
        "matmul",
        "gather",
        "scatter_add",
        "all_reduce_sum",
        "all_reduce_mean",
    ];

    /// How many op names the text format has: every [`Op::all_names`] entry.
    pub const NAME_COUNT: usize =
        Op::STRUCTURAL_NAMES.len() + UnaryOp::COUNT + BinaryOp::COUNT + CompareOp::COUNT;

    /// Every op name of the text format: the structural ops, then the unary, binary and
    /// comparison tables.
    pub fn all_names() -> impl Iterator<Item = &'static str> {
        Op::STRUCTURAL_NAMES
            .into_iter()
            .chain(UnaryOp::ALL.into_iter().map(UnaryOp::name))
            .chain(BinaryOp::ALL.into_iter().map(BinaryOp::name))
            .chain(CompareOp::ALL.into_iter().map(CompareOp::name))
    }

    /// True for ops without operands: inputs, parameters, constants and iota.
    pub fn is_leaf(&self) -> bool {
        self.class() == OpClass::Leaf
    }

    /// How many operands the op takes; `None` for variadic [`Op::Concat`] (one or more).
    pub fn arity(&self) -> Option<usize> {
        Some(match self {
            Op::Input { .. } | Op::Parameter { .. } | Op::Constant(_) | Op::Iota { .. } => 0,
            Op::Unary(_)
            | Op::Cast { .. }
            | Op::Broadcast { .. }
            | Op::Reshape { .. }
            | Op::Permute { .. }
            | Op::Slice { .. }
            | Op::Pad { .. }
            | Op::Reduce { .. }
            | Op::AllReduce { .. } => 1,
            Op::Binary(_) | Op::Compare(_) | Op::MatMul | Op::Gather { .. } => 2,
            Op::ScatterAdd { .. } => 2,
            Op::Select => 3,
            Op::Concat { .. } => return None,
        })
    }

    /// True for ops applied element by element with no data movement (unary, binary, compare,
    /// select, cast).
    pub fn is_elementwise(&self) -> bool {
        self.class() == OpClass::Elementwise
    }

    /// True for ops that only move or replicate elements (broadcast, reshape, permute, slice,
    /// pad, concat).
    pub fn is_movement(&self) -> bool {
        self.class() == OpClass::Movement
    }

    /// True for the ops that read an operand element many times or out of order, or that the
    /// host runs, and so give a fusion group its kind and a structure of their own: reductions,
    /// contractions, gathers, scatters and collectives ([`OpClass::is_anchor`]).
    pub fn is_anchor(&self) -> bool {
        self.class().is_anchor()
    }
}

/// The cost class of an op ([`Op::class`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpClass {
    /// No operands: inputs, parameters, constants, iota.
    Leaf,
    /// One result element from the same element of each operand: unary, binary, compare,
    /// select, cast.
    Elementwise,
    /// Moves or replicates elements without computing: broadcast, reshape, permute, slice,
    /// pad, concat. Inside a kernel these are index maps.
    Movement,
    /// Sum or max over axes.
    Reduction,
    /// A matrix product.
    Contraction,
    /// Reads an operand at data-dependent positions (`gather`).
    Gather,
    /// Accumulates at data-dependent positions (`scatter_add`).
    Scatter,
    /// Communicates with the other replicas of a data-parallel group (`all_reduce`): run by
    /// the host as a group of its own, never fused, recomputed or folded.
    Collective,
}

impl OpClass {
    /// True for the classes that anchor a fusion group: reduction, contraction, gather,
    /// scatter, collective.
    pub fn is_anchor(self) -> bool {
        match self {
            OpClass::Reduction
            | OpClass::Contraction
            | OpClass::Gather
            | OpClass::Scatter
            | OpClass::Collective => true,
            OpClass::Leaf | OpClass::Elementwise | OpClass::Movement => false,
        }
    }
}
