//! Errors from saving, loading and checking checkpoints.

use adjoint_ir::TensorType;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why a checkpoint could not be saved or loaded: what went wrong ([`CheckpointErrorKind`])
/// and, when a file was involved, which one.
#[derive(Debug)]
pub struct CheckpointError {
    path: Option<PathBuf>,
    kind: CheckpointErrorKind,
}

/// The kinds of [`CheckpointError`].
#[derive(Debug)]
pub enum CheckpointErrorKind {
    /// Reading or writing the file failed (for example: it does not exist).
    Io(std::io::Error),
    /// The file ends before the data its header describes (or its length field is damaged).
    Truncated(String),
    /// The file is damaged: its header is not valid safetensors JSON, its offsets are
    /// inconsistent, its content checksum does not match, or a value is impossible.
    Corrupted(String),
    /// A tensor has a safetensors dtype that Adjoint does not support (only `F32`, `F64`, `I32`
    /// and `BOOL` are).
    UnsupportedDtype {
        /// The tensor's name.
        name: String,
        /// The safetensors dtype, e.g. `F16`.
        dtype: String,
    },
    /// The checkpoint cannot be written as asked (a reserved metadata key, a reserved name).
    Invalid(String),
    /// The checkpoint loaded but does not hold the tensors the model expects.
    Mismatch(CheckpointMismatch),
    /// A tensor holds a NaN or an infinity where a model's parameters or optimizer state are
    /// expected (see [`Checkpoint::check_finite`](super::Checkpoint::check_finite)).
    NonFinite {
        /// The tensor's name.
        name: String,
        /// The row-major index of its first non-finite element.
        index: usize,
        /// That element.
        value: f64,
        /// How many of its elements are not finite.
        count: usize,
    },
}

impl CheckpointError {
    pub(crate) fn new(path: Option<&Path>, kind: CheckpointErrorKind) -> CheckpointError {
        CheckpointError {
            path: path.map(Path::to_path_buf),
            kind,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &CheckpointErrorKind {
        &self.kind
    }

    /// The file involved, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The same error, attributed to `path`.
    pub(crate) fn at(mut self, path: &Path) -> CheckpointError {
        self.path = Some(path.to_path_buf());
        self
    }
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "checkpoint {}: ", path.display())?,
            None => write!(f, "checkpoint: ")?,
        }
        match &self.kind {
            CheckpointErrorKind::Io(e) => write!(f, "{e}"),
            CheckpointErrorKind::Truncated(m) => write!(f, "truncated file: {m}"),
            CheckpointErrorKind::Corrupted(m) => write!(f, "corrupted file: {m}"),
            CheckpointErrorKind::UnsupportedDtype { name, dtype } => write!(
                f,
                "tensor `{name}` has dtype {dtype}, which Adjoint does not support \
                 (supported: F32, F64, I32, BOOL)"
            ),
            CheckpointErrorKind::Invalid(m) => write!(f, "{m}"),
            CheckpointErrorKind::Mismatch(m) => write!(f, "{m}"),
            CheckpointErrorKind::NonFinite {
                name,
                index,
                value,
                count,
            } => write!(
                f,
                "tensor `{name}` holds {count} non-finite value{} (the first, {value}, at \
                 element {index}): the run that saved it had diverged; resume from an earlier \
                 checkpoint or start over",
                if *count == 1 { "" } else { "s" }
            ),
        }
    }
}

impl std::error::Error for CheckpointError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            CheckpointErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// One difference between a checkpoint's tensors and the expected ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// An expected tensor is absent from the checkpoint.
    Missing {
        /// The tensor's name.
        name: String,
        /// The type the model expects.
        expected: TensorType,
    },
    /// The checkpoint holds a tensor the model does not expect.
    Unexpected {
        /// The tensor's name.
        name: String,
        /// Its type in the checkpoint.
        found: TensorType,
    },
    /// A tensor's dtype or shape differs.
    WrongType {
        /// The tensor's name.
        name: String,
        /// The type the model expects.
        expected: TensorType,
        /// Its type in the checkpoint.
        found: TensorType,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Missing { name, expected } => {
                write!(f, "missing tensor `{name}` (expected {expected})")
            }
            Mismatch::Unexpected { name, found } => {
                write!(f, "unexpected tensor `{name}` ({found})")
            }
            Mismatch::WrongType {
                name,
                expected,
                found,
            } => write!(f, "tensor `{name}`: expected {expected}, found {found}"),
        }
    }
}

/// Every difference between a checkpoint's tensors and the expected ones, in name order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointMismatch {
    /// The differences (never empty).
    pub mismatches: Vec<Mismatch>,
}

impl fmt::Display for CheckpointMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.mismatches.len();
        write!(
            f,
            "the checkpoint does not match the model ({n} difference{}): ",
            if n == 1 { "" } else { "s" }
        )?;
        for (i, m) in self.mismatches.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CheckpointMismatch {}
