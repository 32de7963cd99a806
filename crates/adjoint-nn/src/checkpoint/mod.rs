//! Checkpoints: parameters and optimizer state with the step number, in the
//! [safetensors](https://github.com/huggingface/safetensors) format.
//!
//! - **Atomic saves**: [`save_checkpoint`] writes a temporary file next to the target, fsyncs
//!   it, renames it over the target and fsyncs the directory ([`write_atomically`]), so a crash
//!   or a failed write never destroys the previous checkpoint.
//! - **Validated loads**: [`load_checkpoint`] returns a [`CheckpointError`] — never a panic —
//!   for a missing, truncated or corrupted file or an unsupported dtype. Adjoint writes a
//!   CRC-32 of the content into the header ([`CHECKSUM_KEY`]), so flipped bytes in the tensor
//!   data are caught too. [`Checkpoint::check_against`] and [`load_checkpoint_matching`] report
//!   every missing, unexpected or mistyped tensor by name.
//! - **Bit-exact**: values are stored as their little-endian bits (NaN payloads and `-0.0`
//!   survive); the step goes into the safetensors `__metadata__` as [`STEP_KEY`], and the
//!   user's metadata entries alongside it.
//!
//! - **Finite for training**: [`load_checkpoint`] returns what the file holds, NaNs included
//!   (to inspect a diverged run); [`load_checkpoint_matching`], which resuming uses, also
//!   refuses a tensor with a NaN or an infinity ([`Checkpoint::check_finite`]), naming it.
//!
//! The files are ordinary safetensors files that other frameworks read. Loading requires the
//! two `__metadata__` entries Adjoint writes (the step and the checksum), so a file from
//! another tool is refused with a message saying so; [`crate::weights`] loads such plain
//! files into parameters by name.
//!
//! ```
//! use adjoint_ir::{DType, HostTensor, TensorType};
//! use adjoint_nn::checkpoint::{load_checkpoint, save_checkpoint, Checkpoint};
//!
//! let mut ckpt = Checkpoint::new(100);
//! ckpt.tensors.insert("w".into(), HostTensor::from_f32([2], vec![0.5, -0.0]).unwrap());
//! ckpt.metadata.insert("model".into(), "mlp".into());
//! let path = std::env::temp_dir().join(format!("adjoint-ckpt-doc-{}.safetensors", std::process::id()));
//! save_checkpoint(&path, &ckpt).unwrap();
//! let loaded = load_checkpoint(&path).unwrap();
//! assert_eq!(loaded, ckpt);
//! loaded.check_against(&[("w".to_string(), TensorType::new(DType::F32, [2]))]).unwrap();
//! # std::fs::remove_file(&path).unwrap();
//! ```

mod atomic;
mod crc32;
mod error;
mod format;

pub use atomic::write_atomically;
pub use error::{CheckpointError, CheckpointErrorKind, CheckpointMismatch, Mismatch};
pub(crate) use format::Encoded;
pub use format::{CHECKSUM_KEY, STEP_KEY};

use adjoint_ir::{Feeds, HostTensor, TensorType};
use std::collections::BTreeMap;
use std::path::Path;

/// A snapshot of training: the step number, the named tensors (parameters and optimizer
/// state) and free-form string metadata.
///
/// Tensors are kept by name in a [`Feeds`] map: names are unique and the order is
/// deterministic, and the map feeds a compiled step directly.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Checkpoint {
    /// The training step the snapshot was taken after.
    pub step: u64,
    /// Parameters and optimizer state by name.
    pub tensors: Feeds,
    /// Free-form metadata (model name, seed, …). The keys [`STEP_KEY`] and [`CHECKSUM_KEY`]
    /// are reserved.
    pub metadata: BTreeMap<String, String>,
}

impl Checkpoint {
    /// An empty checkpoint at `step`.
    pub fn new(step: u64) -> Checkpoint {
        Checkpoint {
            step,
            ..Checkpoint::default()
        }
    }

    /// The checkpoint with one more tensor (replacing one of the same name).
    pub fn with_tensor(mut self, name: impl Into<String>, tensor: HostTensor) -> Checkpoint {
        self.tensors.insert(name.into(), tensor);
        self
    }

    /// Each tensor's name and type, in name order.
    pub fn types(&self) -> Vec<(String, TensorType)> {
        self.tensors
            .iter()
            .map(|(name, t)| (name.clone(), t.ty()))
            .collect()
    }

    /// Checks that the checkpoint holds exactly the `expected` tensors with the expected dtypes
    /// and shapes; otherwise every difference (missing, unexpected, wrong type), in name order.
    pub fn check_against(
        &self,
        expected: &[(String, TensorType)],
    ) -> Result<(), CheckpointMismatch> {
        let expected: BTreeMap<&str, &TensorType> =
            expected.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut mismatches = Vec::new();
        let names: std::collections::BTreeSet<&str> = expected
            .keys()
            .copied()
            .chain(self.tensors.keys().map(String::as_str))
            .collect();
        for name in names {
            match (expected.get(name), self.tensors.get(name)) {
                (Some(&want), Some(have)) if *want != have.ty() => {
                    mismatches.push(Mismatch::WrongType {
                        name: name.to_string(),
                        expected: want.clone(),
                        found: have.ty(),
                    })
                }
                (Some(&want), None) => mismatches.push(Mismatch::Missing {
                    name: name.to_string(),
                    expected: want.clone(),
                }),
                (None, Some(have)) => mismatches.push(Mismatch::Unexpected {
                    name: name.to_string(),
                    found: have.ty(),
                }),
                _ => {}
            }
        }
        if mismatches.is_empty() {
            Ok(())
        } else {
            Err(CheckpointMismatch { mismatches })
        }
    }

    /// Checks that every float tensor is finite; otherwise a [`CheckpointErrorKind::NonFinite`]
    /// error naming the first such tensor (in name order), its first bad element and how many
    /// there are.
    pub fn check_finite(&self) -> Result<(), CheckpointError> {
        for (name, t) in &self.tensors {
            if !t.dtype().is_float() {
                continue;
            }
            let values = t.to_f64_vec();
            let mut bad = values.iter().enumerate().filter(|(_, v)| !v.is_finite());
            if let Some((index, &value)) = bad.next() {
                return Err(CheckpointError::new(
                    None,
                    CheckpointErrorKind::NonFinite {
                        name: name.clone(),
                        index,
                        value,
                        count: 1 + bad.count(),
                    },
                ));
            }
        }
        Ok(())
    }

    /// The checkpoint as safetensors bytes; an error for a reserved metadata key or tensor name.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CheckpointError> {
        format::encode(self)
    }

    /// A checkpoint from safetensors bytes, validated as [`load_checkpoint`] validates a file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
        format::decode(bytes)
    }
}

/// Saves `ckpt` to `path` atomically: the whole checkpoint is encoded first, then written to a
/// temporary file in the same directory, fsynced and renamed over `path`
/// ([`write_atomically`]). On any error the previous file at `path` is left intact.
pub fn save_checkpoint(path: impl AsRef<Path>, ckpt: &Checkpoint) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    let bytes = ckpt.to_bytes().map_err(|e| e.at(path))?;
    write_atomically(path, |w| w.write_all(&bytes))
        .map_err(|e| CheckpointError::new(Some(path), CheckpointErrorKind::Io(e)))
}

/// Loads and validates the checkpoint at `path`. Errors name the file: missing or unreadable
/// ([`CheckpointErrorKind::Io`]), truncated, corrupted (invalid header, inconsistent offsets,
/// a missing or mismatching checksum, no step), or holding a dtype other than f32, f64, i32
/// and bool.
pub fn load_checkpoint(path: impl AsRef<Path>) -> Result<Checkpoint, CheckpointError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path)
        .map_err(|e| CheckpointError::new(Some(path), CheckpointErrorKind::Io(e)))?;
    format::decode(&bytes).map_err(|e| e.at(path))
}

/// [`load_checkpoint`], then [`Checkpoint::check_against`] `expected` and
/// [`Checkpoint::check_finite`]: a mismatch is a [`CheckpointErrorKind::Mismatch`] error naming
/// the file and every differing tensor, a NaN or infinity a [`CheckpointErrorKind::NonFinite`]
/// error naming the file and the tensor. What resuming training uses.
pub fn load_checkpoint_matching(
    path: impl AsRef<Path>,
    expected: &[(String, TensorType)],
) -> Result<Checkpoint, CheckpointError> {
    let path = path.as_ref();
    let ckpt = load_checkpoint(path)?;
    ckpt.check_against(expected)
        .map_err(|m| CheckpointError::new(Some(path), CheckpointErrorKind::Mismatch(m)))?;
    ckpt.check_finite().map_err(|e| e.at(path))?;
    Ok(ckpt)
}
