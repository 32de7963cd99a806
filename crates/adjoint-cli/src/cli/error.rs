//! Errors of the command-line tool, printed as `FILE:LINE:COL: message` where a position is
//! known.

use std::fmt;
use std::path::Path;

/// A failed command: what went wrong, and where in which file when that is known.
#[derive(Debug)]
pub struct CliError {
    /// The file the error belongs to.
    pub file: Option<String>,
    /// Line and column (1-based) within it.
    pub position: Option<(usize, usize)>,
    /// What went wrong.
    pub message: String,
}

impl CliError {
    /// An error about `file` as a whole.
    pub fn in_file(file: &Path, message: impl Into<String>) -> CliError {
        CliError {
            file: Some(file.display().to_string()),
            position: None,
            message: message.into(),
        }
    }

    /// An error at `line:column` of `file`.
    pub fn at(file: &Path, line: usize, column: usize, message: impl Into<String>) -> CliError {
        CliError {
            file: Some(file.display().to_string()),
            position: Some((line, column)),
            message: message.into(),
        }
    }

    /// An error not tied to a file (bad flags, bad feeds).
    pub fn general(message: impl Into<String>) -> CliError {
        CliError {
            file: None,
            position: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.position) {
            (Some(file), Some((line, col))) => write!(f, "{file}:{line}:{col}: {}", self.message),
            (Some(file), None) => write!(f, "{file}: {}", self.message),
            _ => write!(f, "adjoint: {}", self.message),
        }
    }
}
