//! The byte format of a checkpoint: safetensors with the step and a content checksum in the
//! `__metadata__` header entry.

use super::crc32::Crc32;
use super::{Checkpoint, CheckpointError, CheckpointErrorKind};
use adjoint_ir::{Feeds, HostData, HostTensor, MAX_RANK};
use safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// The `__metadata__` key holding the step number (decimal).
pub const STEP_KEY: &str = "step";
/// The `__metadata__` key holding the CRC-32 (8 hex digits) of the checkpoint's content: every
/// tensor's name, dtype, shape and bytes in name order, then the other metadata entries in key
/// order. Loading requires it, so that damage anywhere in the file is detected.
pub const CHECKSUM_KEY: &str = "adjoint_crc32";

/// The largest header the safetensors format accepts.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// A tensor's bytes as safetensors stores them (little-endian, bools one byte each); the
/// checkpoint writer and the plain safetensors export (`crate::weights`) both write these.
pub(crate) struct Encoded {
    pub(crate) dtype: Dtype,
    pub(crate) shape: Vec<usize>,
    pub(crate) bytes: Vec<u8>,
}

impl View for Encoded {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn encode_tensor(t: &HostTensor) -> Encoded {
    let (dtype, bytes) = match t.data() {
        HostData::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        HostData::F64(v) => (Dtype::F64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        HostData::I32(v) => (Dtype::I32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        HostData::Bool(v) => (Dtype::BOOL, v.iter().map(|&b| b as u8).collect()),
        HostData::Bf16(v) => (
            Dtype::BF16,
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        HostData::F16(v) => (Dtype::F16, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
    };
    Encoded {
        dtype,
        shape: t.shape().dims().to_vec(),
        bytes,
    }
}

/// The content checksum over `tensors` (in name order) and `metadata` (in key order).
fn checksum<'a>(
    tensors: impl Iterator<Item = (&'a str, Dtype, &'a [usize], &'a [u8])>,
    metadata: &BTreeMap<String, String>,
) -> u32 {
    let mut crc = Crc32::new();
    for (name, dtype, shape, bytes) in tensors {
        crc.update(name.as_bytes());
        crc.update(&[0]);
        crc.update(dtype.to_string().as_bytes());
        crc.update(&[0]);
        crc.update(&(shape.len() as u64).to_le_bytes());
        for &d in shape {
            crc.update(&(d as u64).to_le_bytes());
        }
        crc.update(&(bytes.len() as u64).to_le_bytes());
        crc.update(bytes);
    }
    for (key, value) in metadata.iter().filter(|(k, _)| k.as_str() != CHECKSUM_KEY) {
        crc.update(key.as_bytes());
        crc.update(&[0]);
        crc.update(value.as_bytes());
        crc.update(&[0]);
    }
    crc.sum()
}

/// The safetensors bytes of `ckpt`.
pub(super) fn encode(ckpt: &Checkpoint) -> Result<Vec<u8>, CheckpointError> {
    let invalid = |m: String| CheckpointError::new(None, CheckpointErrorKind::Invalid(m));
    for key in [STEP_KEY, CHECKSUM_KEY] {
        if ckpt.metadata.contains_key(key) {
            return Err(invalid(format!(
                "metadata key `{key}` is reserved for the checkpoint's own use"
            )));
        }
    }
    if ckpt.tensors.contains_key("__metadata__") {
        return Err(invalid(
            "`__metadata__` is reserved by the safetensors format and cannot name a tensor".into(),
        ));
    }
    let encoded: Vec<(&String, Encoded)> = ckpt
        .tensors
        .iter()
        .map(|(name, t)| (name, encode_tensor(t)))
        .collect();
    let mut metadata = ckpt.metadata.clone();
    metadata.insert(STEP_KEY.into(), ckpt.step.to_string());
    let crc = checksum(
        encoded
            .iter()
            .map(|(n, e)| (n.as_str(), e.dtype, e.shape.as_slice(), e.bytes.as_slice())),
        &metadata,
    );
    metadata.insert(CHECKSUM_KEY.into(), format!("{crc:08x}"));
    let header: HashMap<String, String> = metadata.into_iter().collect();
    safetensors::serialize(encoded, Some(header))
        .map_err(|e| invalid(format!("cannot encode as safetensors: {e}")))
}

/// A checkpoint from safetensors bytes, validated.
pub(super) fn decode(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
    let truncated = |m: String| CheckpointError::new(None, CheckpointErrorKind::Truncated(m));
    let corrupted = |m: String| CheckpointError::new(None, CheckpointErrorKind::Corrupted(m));

    let Some(len_bytes) = bytes.first_chunk::<8>() else {
        return Err(truncated(format!(
            "the file is {} bytes long, shorter than the 8-byte header length",
            bytes.len()
        )));
    };
    let header_len = u64::from_le_bytes(*len_bytes);
    if header_len > MAX_HEADER_BYTES {
        return Err(corrupted(format!(
            "the header length field says {header_len} bytes, more than the format allows"
        )));
    }
    let available = bytes.len() as u64 - 8;
    if header_len > available {
        return Err(truncated(format!(
            "the header length field says {header_len} bytes but only {available} follow"
        )));
    }
    let st = SafeTensors::deserialize(bytes).map_err(|e| match e {
        SafeTensorError::MetadataIncompleteBuffer => truncated(format!(
            "the data section ({} bytes) is not the size the header describes: the file \
             was cut short or has bytes appended",
            available - header_len
        )),
        other => corrupted(format!("invalid safetensors header: {other}")),
    })?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| corrupted(format!("invalid safetensors header: {e}")))?;
    let metadata: BTreeMap<String, String> = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();

    // Convert in name order, so errors are deterministic.
    let mut views = st.tensors();
    views.sort_by(|a, b| a.0.cmp(&b.0));
    let mut tensors = Feeds::new();
    for (name, view) in &views {
        let tensor = decode_tensor(name, view.dtype(), view.shape(), view.data())?;
        tensors.insert(name.clone(), tensor);
    }

    let Some(stored) = metadata.get(CHECKSUM_KEY) else {
        return Err(corrupted(format!(
            "the header has no `{CHECKSUM_KEY}` entry in __metadata__: it is damaged or was \
             not written by Adjoint"
        )));
    };
    let stored = u32::from_str_radix(stored, 16).map_err(|_| {
        corrupted(format!(
            "the content checksum {stored:?} is not a hex number"
        ))
    })?;
    let computed = checksum(
        views
            .iter()
            .map(|(n, v)| (n.as_str(), v.dtype(), v.shape(), v.data())),
        &metadata,
    );
    if stored != computed {
        return Err(corrupted(format!(
            "content checksum mismatch (stored {stored:08x}, computed {computed:08x}): \
             tensor data or metadata was altered"
        )));
    }

    let step = match metadata.get(STEP_KEY) {
        Some(s) => s
            .parse::<u64>()
            .map_err(|_| corrupted(format!("the step {s:?} is not a non-negative integer")))?,
        None => {
            return Err(corrupted(format!(
                "the header has no `{STEP_KEY}` entry in __metadata__: not an Adjoint checkpoint"
            )))
        }
    };
    let metadata = metadata
        .into_iter()
        .filter(|(k, _)| k != STEP_KEY && k != CHECKSUM_KEY)
        .collect();
    Ok(Checkpoint {
        step,
        tensors,
        metadata,
    })
}

/// One tensor from its safetensors dtype, shape and little-endian bytes.
fn decode_tensor(
    name: &str,
    dtype: Dtype,
    shape: &[usize],
    bytes: &[u8],
) -> Result<HostTensor, CheckpointError> {
    let corrupted = |m: String| CheckpointError::new(None, CheckpointErrorKind::Corrupted(m));
    if shape.len() > MAX_RANK {
        return Err(CheckpointError::new(
            None,
            CheckpointErrorKind::Invalid(format!(
                "tensor `{name}` has rank {}, more than Adjoint's maximum {MAX_RANK}",
                shape.len()
            )),
        ));
    }
    let data = match dtype {
        Dtype::F32 => HostData::F32(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4-byte chunk")))
                .collect(),
        ),
        Dtype::F64 => HostData::F64(
            bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8-byte chunk")))
                .collect(),
        ),
        Dtype::I32 => HostData::I32(
            bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().expect("4-byte chunk")))
                .collect(),
        ),
        Dtype::BF16 => HostData::Bf16(
            bytes
                .chunks_exact(2)
                .map(|c| adjoint_ir::bf16::from_le_bytes(c.try_into().expect("2-byte chunk")))
                .collect(),
        ),
        Dtype::F16 => HostData::F16(
            bytes
                .chunks_exact(2)
                .map(|c| adjoint_ir::f16::from_le_bytes(c.try_into().expect("2-byte chunk")))
                .collect(),
        ),
        Dtype::BOOL => {
            if let Some(pos) = bytes.iter().position(|&b| b > 1) {
                return Err(corrupted(format!(
                    "bool tensor `{name}` holds byte {} at element {pos}; bools are 0 or 1",
                    bytes[pos]
                )));
            }
            HostData::Bool(bytes.iter().map(|&b| b == 1).collect())
        }
        other => {
            return Err(CheckpointError::new(
                None,
                CheckpointErrorKind::UnsupportedDtype {
                    name: name.to_string(),
                    dtype: other.to_string(),
                },
            ))
        }
    };
    HostTensor::new(shape, data)
        .map_err(|e| corrupted(format!("tensor `{name}` does not fit its shape: {e}")))
}
