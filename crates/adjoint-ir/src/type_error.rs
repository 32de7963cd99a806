//! Why a type, an op's operands or a literal are refused.

use crate::op::TensorType;
use std::fmt;

/// A tensor type too large to address: its span in bytes exceeds `isize::MAX`
/// ([`TensorType::check_size`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SizeError {
    /// The type.
    pub ty: TensorType,
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "type {} is too large: its size in bytes exceeds 2^63 - 1 (isize::MAX)",
            self.ty
        )
    }
}

impl std::error::Error for SizeError {}

/// Why an op does not accept its operands ([`crate::infer::result_type`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeError {
    /// The wrong number of operands.
    Arity {
        /// How many the op takes; `None`: at least one.
        expected: Option<usize>,
        /// How many it got.
        got: usize,
    },
    /// The operands fit, but the result would be too large to address.
    TooLarge(Box<SizeError>),
    /// The result would have more than [`crate::MAX_RANK`] dimensions.
    RankTooHigh {
        /// The result's rank.
        rank: usize,
    },
    /// The op's own rule refuses the operands' dtypes, shapes or the op's attributes; the
    /// message says which and why.
    Rule(String),
}

impl fmt::Display for TypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypeError::Arity {
                expected: Some(n),
                got,
            } => write!(f, "takes {n} operand(s), got {got}"),
            TypeError::Arity {
                expected: None,
                got,
            } => write!(f, "takes at least one operand, got {got}"),
            TypeError::TooLarge(e) => e.fmt(f),
            TypeError::RankTooHigh { rank } => write!(
                f,
                "result rank {rank} exceeds the maximum rank {}",
                crate::MAX_RANK
            ),
            TypeError::Rule(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for TypeError {}

impl From<SizeError> for TypeError {
    fn from(e: SizeError) -> Self {
        TypeError::TooLarge(Box::new(e))
    }
}

/// Why [`crate::Literal::new`] refuses a literal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LiteralError {
    /// Not one value per element.
    Count {
        /// The literal's type.
        ty: Box<TensorType>,
        /// The values given.
        got: usize,
    },
    /// The type is too large to address.
    TooLarge(Box<SizeError>),
}

impl fmt::Display for LiteralError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LiteralError::Count { ty, got } => write!(
                f,
                "a literal of type {ty} needs {} values, got {got}",
                ty.shape.numel()
            ),
            LiteralError::TooLarge(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for LiteralError {}

impl From<SizeError> for LiteralError {
    fn from(e: SizeError) -> Self {
        LiteralError::TooLarge(Box::new(e))
    }
}
