//! Errors from reading and arranging data sets.

use std::fmt;
use std::path::PathBuf;

/// Why a data set could not be read, built or arranged.
#[derive(Debug)]
pub enum DataError {
    /// The file could not be opened or read (missing, unreadable).
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid gzip, or its compressed stream is damaged.
    Gzip {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        source: std::io::Error,
    },
    /// A line of the CSV text is malformed: wrong field count, a non-integer, a value out of range.
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// The file holds no rows.
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// Tensors or arguments that do not form a valid data set or request (shapes, fractions,
    /// batch sizes).
    Invalid(String),
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Io { path, source } => {
                write!(f, "cannot read data file {}: {source}", path.display())
            }
            DataError::Gzip { path, source } => write!(
                f,
                "data file {} is not a valid gzip file: {source}",
                path.display()
            ),
            DataError::Parse {
                path,
                line,
                message,
            } => write!(f, "{}:{line}: {message}", path.display()),
            DataError::Empty { path } => write!(f, "data file {} holds no rows", path.display()),
            DataError::Invalid(message) => write!(f, "{message}"),
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { source, .. } | DataError::Gzip { source, .. } => Some(source),
            _ => None,
        }
    }
}
