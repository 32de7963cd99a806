//! Plain safetensors weight files in and out: a PyTorch `state_dict` saved with
//! `safetensors.torch.save_file`, a JAX/Flax export, anything the `safetensors` library writes.
//!
//! Unlike a [checkpoint](crate::checkpoint), such a file carries no step, no checksum and no
//! optimizer state, and its names, layouts and dtypes are the other tool's. So importing
//! matches tensors to parameters **by name**, through an optional [`WeightMap`]:
//!
//! - `rename`: the file's name for a parameter, where it differs (`layers.0.weight` for
//!   `fc1.weight`); other names are used as they are;
//! - `transpose`: parameters whose matrix the file holds transposed — PyTorch's `nn.Linear`
//!   stores `[out, in]` where Adjoint's [`Linear`](crate::layers::Linear) holds `[in, out]`;
//! - `strict`: whether a parameter missing from the file, or a file tensor matching no
//!   parameter, is an error (PyTorch's `load_state_dict(strict=True)`) or only reported.
//!
//! Values are converted to the parameter's dtype: F16, BF16, F32 and F64 files load into f32 or
//! f64 parameters; I8–I64 and U8–U32 into i32 (range-checked); BOOL into bool. A tensor whose
//! shape differs from its parameter's is always an error. [`import_safetensors`] returns an
//! [`ImportReport`] listing what was loaded, converted, missing and unexpected.
//!
//! [`export_safetensors`] writes parameters as a plain file (each tensor in its own dtype, the
//! same map applied the other way, `{"format": "pt"}` metadata) that
//! `safetensors.torch.load_file` and `safetensors.numpy.load_file` read.
//!
//! ```
//! use adjoint_ir::{DType, Feeds, HostTensor, TensorType};
//! use adjoint_nn::weights::{export_safetensors, import_safetensors, WeightMap};
//!
//! // Adjoint's `fc.weight` is [in, out] = [3, 2]; the file holds PyTorch's [out, in] as `0.weight`.
//! let map = WeightMap::new().rename("fc.weight", "0.weight").transpose("fc.weight");
//! let mut params = Feeds::new();
//! params.insert("fc.weight".into(), HostTensor::from_f32([3, 2], vec![1., 2., 3., 4., 5., 6.]).unwrap());
//! let path = std::env::temp_dir().join(format!("adjoint-weights-doc-{}.safetensors", std::process::id()));
//! export_safetensors(&path, &params, &map).unwrap();
//!
//! let expected = [("fc.weight".to_string(), TensorType::new(DType::F32, [3, 2]))];
//! let report = import_safetensors(&path, &expected, &map).unwrap();
//! assert_eq!(report.loaded, params);
//! assert!(report.missing.is_empty() && report.unexpected.is_empty());
//! # std::fs::remove_file(&path).unwrap();
//! ```

use crate::checkpoint::{write_atomically, Encoded};
use adjoint_ir::{DType, Feeds, Graph, HostData, HostTensor, TensorType};
use safetensors::tensor::{Dtype, SafeTensors};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

/// How parameter names and layouts correspond to a file's (see the [module](self) docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WeightMap {
    /// Parameter name → the file's name for it, where they differ.
    pub rename: BTreeMap<String, String>,
    /// Parameters (by parameter name) whose 2-D value the file holds transposed.
    pub transpose: BTreeSet<String>,
    /// Missing and unexpected tensors are errors (otherwise only reported).
    pub strict: bool,
}

impl WeightMap {
    /// Names as they are, nothing transposed, strict.
    pub fn new() -> WeightMap {
        WeightMap {
            strict: true,
            ..WeightMap::default()
        }
    }

    /// The file calls parameter `param` `file_name`.
    pub fn rename(mut self, param: &str, file_name: &str) -> WeightMap {
        self.rename.insert(param.to_string(), file_name.to_string());
        self
    }

    /// The file holds parameter `param` (a matrix) transposed.
    pub fn transpose(mut self, param: &str) -> WeightMap {
        self.transpose.insert(param.to_string());
        self
    }

    /// Missing and unexpected tensors are only reported, not errors.
    pub fn lenient(mut self) -> WeightMap {
        self.strict = false;
        self
    }

    /// The file's name for parameter `param`.
    pub fn file_name<'a>(&'a self, param: &'a str) -> &'a str {
        self.rename.get(param).map_or(param, String::as_str)
    }
}

/// What [`import_safetensors`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImportReport {
    /// The loaded values by parameter name, in each parameter's dtype and shape.
    pub loaded: Feeds,
    /// Parameters loaded from another dtype: `(parameter, the file's dtype)`.
    pub converted: Vec<(String, String)>,
    /// Parameters the file has no tensor for.
    pub missing: Vec<String>,
    /// File tensors (by the file's name) that match no parameter.
    pub unexpected: Vec<String>,
}

/// One problem found while importing.
#[derive(Clone, Debug, PartialEq)]
pub enum WeightProblem {
    /// A parameter the file has no tensor for (an error only when strict).
    Missing {
        /// The parameter.
        param: String,
        /// The name looked for in the file.
        file_name: String,
    },
    /// A file tensor that matches no parameter (an error only when strict).
    Unexpected {
        /// Its name in the file.
        file_name: String,
    },
    /// A tensor whose shape differs from its parameter's (after any transposition).
    WrongShape {
        /// The parameter.
        param: String,
        /// The parameter's type.
        expected: TensorType,
        /// The file tensor's shape, as stored.
        found: Vec<usize>,
    },
    /// A tensor whose dtype cannot become the parameter's (a float for an integer parameter,
    /// an unsupported dtype, an integer out of the i32 range).
    WrongDtype {
        /// The parameter.
        param: String,
        /// Why.
        message: String,
    },
}

impl fmt::Display for WeightProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeightProblem::Missing { param, file_name } if param == file_name => {
                write!(f, "missing `{param}`")
            }
            WeightProblem::Missing { param, file_name } => {
                write!(f, "missing `{file_name}` (for parameter `{param}`)")
            }
            WeightProblem::Unexpected { file_name } => write!(f, "unexpected `{file_name}`"),
            WeightProblem::WrongShape {
                param,
                expected,
                found,
            } => {
                let dims: Vec<String> = found.iter().map(usize::to_string).collect();
                write!(
                    f,
                    "`{param}` is {expected} but the file's tensor has shape [{}]",
                    dims.join(",")
                )
            }
            WeightProblem::WrongDtype { param, message } => write!(f, "`{param}`: {message}"),
        }
    }
}

/// Why a weight file could not be imported or exported.
#[derive(Debug)]
pub enum WeightsError {
    /// Reading or writing the file failed.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not valid safetensors.
    Format {
        /// The file, when there is one.
        path: Option<PathBuf>,
        /// What is wrong.
        message: String,
    },
    /// The file's tensors do not fit the parameters: every problem, in parameter order then
    /// the unexpected ones.
    Mismatch {
        /// The file, when there is one.
        path: Option<PathBuf>,
        /// The problems (never empty).
        problems: Vec<WeightProblem>,
    },
}

impl WeightsError {
    fn at(self, file: &Path) -> WeightsError {
        match self {
            WeightsError::Format { message, .. } => WeightsError::Format {
                path: Some(file.to_path_buf()),
                message,
            },
            WeightsError::Mismatch { problems, .. } => WeightsError::Mismatch {
                path: Some(file.to_path_buf()),
                problems,
            },
            io => io,
        }
    }
}

fn describe(path: &Option<PathBuf>) -> String {
    path.as_ref().map_or("weights".to_string(), |p| {
        format!("weights {}", p.display())
    })
}

impl fmt::Display for WeightsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeightsError::Io { path, source } => {
                write!(f, "weights {}: {source}", path.display())
            }
            WeightsError::Format { path, message } => {
                write!(
                    f,
                    "{}: not a valid safetensors file: {message}",
                    describe(path)
                )
            }
            WeightsError::Mismatch { path, problems } => {
                write!(
                    f,
                    "{}: the file does not fit the parameters ({} problem{}): ",
                    describe(path),
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" }
                )?;
                for (i, p) in problems.iter().enumerate() {
                    if i > 0 {
                        write!(f, "; ")?;
                    }
                    write!(f, "{p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for WeightsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WeightsError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Every parameter of `graph` with its type, in order: the `expected` of
/// [`import_safetensors`] for a model built by hand.
pub fn parameter_types(graph: &Graph) -> Vec<(String, TensorType)> {
    graph
        .parameters()
        .iter()
        .filter_map(|&p| {
            graph
                .leaf_name(p)
                .map(|n| (n.to_string(), graph.ty(p).clone()))
        })
        .collect()
}

/// Loads the plain safetensors file at `path` into the `expected` parameters, matched by name
/// through `map`, converting dtypes (see the [module](self) docs).
///
/// Errors: the file cannot be read or is not safetensors; any tensor of the wrong shape or an
/// unconvertible dtype; with `map.strict`, any missing or unexpected tensor. The error lists
/// every problem at once.
pub fn import_safetensors(
    path: impl AsRef<Path>,
    expected: &[(String, TensorType)],
    map: &WeightMap,
) -> Result<ImportReport, WeightsError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    import_safetensors_bytes(&bytes, expected, map).map_err(|e| e.at(path))
}

/// [`import_safetensors`] from the file's bytes.
pub fn import_safetensors_bytes(
    bytes: &[u8],
    expected: &[(String, TensorType)],
    map: &WeightMap,
) -> Result<ImportReport, WeightsError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| WeightsError::Format {
        path: None,
        message: e.to_string(),
    })?;
    let mut report = ImportReport::default();
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for (param, ty) in expected {
        let file_name = map.file_name(param);
        let Ok(view) = st.tensor(file_name) else {
            report.missing.push(param.clone());
            if map.strict {
                problems.push(WeightProblem::Missing {
                    param: param.clone(),
                    file_name: file_name.to_string(),
                });
            }
            continue;
        };
        used.insert(file_name.to_string());
        let transpose = map.transpose.contains(param);
        match convert(
            param,
            view.dtype(),
            view.shape(),
            view.data(),
            ty,
            transpose,
        ) {
            Ok(value) => {
                if !same_kind_and_width(view.dtype(), ty.dtype) {
                    report
                        .converted
                        .push((param.clone(), view.dtype().to_string()));
                }
                report.loaded.insert(param.clone(), value);
            }
            Err(p) => problems.push(p),
        }
    }
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    for name in names.into_iter().filter(|n| !used.contains(n)) {
        if map.strict {
            problems.push(WeightProblem::Unexpected {
                file_name: name.clone(),
            });
        }
        report.unexpected.push(name);
    }
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(WeightsError::Mismatch {
            path: None,
            problems,
        })
    }
}

/// Every tensor of the plain safetensors file at `path`, by the file's own names: the
/// `state_dict` that [`crate::torch_map::import`] maps onto a model's parameters.
///
/// Values keep their kind: F16, BF16 and F32 tensors are read as f32, F64 as f64, I8–I64 and
/// U8–U32 as i32 (range-checked), BOOL as bool.
///
/// Errors: the file cannot be read or is not safetensors; a tensor of a dtype Adjoint does not
/// read or an integer out of the i32 range (every such tensor is listed at once).
pub fn read_safetensors(path: impl AsRef<Path>) -> Result<Feeds, WeightsError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_safetensors_bytes(&bytes).map_err(|e| e.at(path))
}

/// [`read_safetensors`] from the file's bytes.
pub fn read_safetensors_bytes(bytes: &[u8]) -> Result<Feeds, WeightsError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| WeightsError::Format {
        path: None,
        message: e.to_string(),
    })?;
    let mut tensors = Feeds::new();
    let mut problems = Vec::new();
    for (name, view) in st.tensors() {
        let dtype = match view.dtype() {
            Dtype::F16 | Dtype::BF16 | Dtype::F32 => DType::F32,
            Dtype::F64 => DType::F64,
            Dtype::BOOL => DType::Bool,
            _ => DType::I32,
        };
        let ty = TensorType::new(dtype, view.shape().to_vec());
        match convert(&name, view.dtype(), view.shape(), view.data(), &ty, false) {
            Ok(value) => {
                tensors.insert(name, value);
            }
            Err(p) => problems.push(p),
        }
    }
    if problems.is_empty() {
        Ok(tensors)
    } else {
        problems.sort_by_key(|p| p.to_string());
        Err(WeightsError::Mismatch {
            path: None,
            problems,
        })
    }
}

/// Whether a file dtype is exactly the parameter's (no conversion).
fn same_kind_and_width(file: Dtype, param: DType) -> bool {
    matches!(
        (file, param),
        (Dtype::F32, DType::F32)
            | (Dtype::F64, DType::F64)
            | (Dtype::I32, DType::I32)
            | (Dtype::BOOL, DType::Bool)
    )
}

/// One file tensor as the parameter `param` of type `ty`.
fn convert(
    param: &str,
    dtype: Dtype,
    shape: &[usize],
    bytes: &[u8],
    ty: &TensorType,
    transpose: bool,
) -> Result<HostTensor, WeightProblem> {
    let wrong_dtype = |message: String| WeightProblem::WrongDtype {
        param: param.to_string(),
        message,
    };
    let stored_shape: Vec<usize> = if transpose {
        if shape.len() != 2 {
            return Err(wrong_dtype(format!(
                "marked transposed, but the file's tensor has rank {} (shape {shape:?}), not 2",
                shape.len()
            )));
        }
        vec![shape[1], shape[0]]
    } else {
        shape.to_vec()
    };
    if stored_shape.as_slice() != ty.shape.dims() {
        return Err(WeightProblem::WrongShape {
            param: param.to_string(),
            expected: ty.clone(),
            found: shape.to_vec(),
        });
    }
    let values = decode(dtype, bytes).ok_or_else(|| {
        wrong_dtype(format!(
            "the file's dtype {dtype} is not one Adjoint reads (F16, BF16, F32, F64, I8-I64, \
             U8-U32, BOOL)"
        ))
    })?;
    let file_is_float = matches!(dtype, Dtype::F16 | Dtype::BF16 | Dtype::F32 | Dtype::F64);
    match ty.dtype {
        DType::F32 | DType::F64 if !file_is_float => {
            return Err(wrong_dtype(format!(
                "the file holds {dtype} for a {} parameter",
                ty.dtype
            )))
        }
        DType::I32 | DType::Bool if file_is_float => {
            return Err(wrong_dtype(format!(
                "the file holds {dtype} for a {} parameter",
                ty.dtype
            )))
        }
        DType::I32 => {
            if let Some(v) = values
                .iter()
                .find(|&&v| v < i32::MIN as f64 || v > i32::MAX as f64)
            {
                return Err(wrong_dtype(format!("the value {v} does not fit in i32")));
            }
        }
        _ => {}
    }
    let values = if transpose {
        transposed(&values, shape[0], shape[1])
    } else {
        values
    };
    HostTensor::from_f64_as(ty.dtype, ty.shape.clone(), &values)
        .map_err(|e| wrong_dtype(format!("does not fit its shape: {e}")))
}

/// The row-major `[cols, rows]` transpose of a row-major `[rows, cols]` matrix.
fn transposed(v: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = v[r * cols + c];
        }
    }
    t
}

/// The values of little-endian `bytes` of `dtype`, exactly, as f64 (every supported dtype's
/// values are f64 values; i64 beyond 2^53 only matters out of the i32 range, which is refused).
fn decode(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f64>> {
    fn each<const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<f64> {
        bytes
            .chunks_exact(N)
            .map(|c| f(c.try_into().expect("chunk of N bytes")))
            .collect()
    }
    Some(match dtype {
        Dtype::F16 => each(bytes, |b| f16_to_f64(u16::from_le_bytes(b))),
        Dtype::BF16 => each(bytes, |b| {
            f32::from_bits((u16::from_le_bytes(b) as u32) << 16) as f64
        }),
        Dtype::F32 => each(bytes, |b| f32::from_le_bytes(b) as f64),
        Dtype::F64 => each(bytes, f64::from_le_bytes),
        Dtype::I8 => each(bytes, |b| i8::from_le_bytes(b) as f64),
        Dtype::U8 => each(bytes, |b: [u8; 1]| b[0] as f64),
        Dtype::I16 => each(bytes, |b| i16::from_le_bytes(b) as f64),
        Dtype::U16 => each(bytes, |b| u16::from_le_bytes(b) as f64),
        Dtype::I32 => each(bytes, |b| i32::from_le_bytes(b) as f64),
        Dtype::U32 => each(bytes, |b| u32::from_le_bytes(b) as f64),
        Dtype::I64 => each(bytes, |b| i64::from_le_bytes(b) as f64),
        Dtype::BOOL => each(bytes, |b: [u8; 1]| (b[0] != 0) as u8 as f64),
        _ => return None,
    })
}

/// An IEEE half-precision value, exactly.
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = ((h >> 10) & 0x1f) as i32;
    let fraction = (h & 0x3ff) as f64;
    match exponent {
        0 => sign * fraction * 2f64.powi(-24),
        0x1f if fraction == 0.0 => sign * f64::INFINITY,
        0x1f => f64::NAN,
        e => sign * (1.0 + fraction / 1024.0) * 2f64.powi(e - 15),
    }
}

fn encode(t: &HostTensor, transpose: bool) -> Result<Encoded, String> {
    let dims = t.shape().dims().to_vec();
    let (t, shape) = if transpose {
        if dims.len() != 2 {
            return Err(format!(
                "marked transposed, but it has shape {dims:?}, not a matrix"
            ));
        }
        let values = transposed(&t.to_f64_vec(), dims[0], dims[1]);
        let shape = vec![dims[1], dims[0]];
        (
            HostTensor::from_f64_as(t.dtype(), shape.clone(), &values)?,
            shape,
        )
    } else {
        (t.clone(), dims)
    };
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
    Ok(Encoded {
        dtype,
        shape,
        bytes,
    })
}

/// The plain safetensors bytes of `tensors` (by parameter name), named and laid out as `map`
/// says, with `{"format": "pt"}` metadata.
pub fn export_safetensors_bytes(tensors: &Feeds, map: &WeightMap) -> Result<Vec<u8>, WeightsError> {
    let mut encoded = Vec::with_capacity(tensors.len());
    let mut problems = Vec::new();
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (param, t) in tensors {
        let file_name = map.file_name(param);
        if let Some(other) = seen.insert(file_name, param) {
            problems.push(WeightProblem::WrongDtype {
                param: param.clone(),
                message: format!("renamed to `{file_name}`, the name of `{other}` too"),
            });
        }
        match encode(t, map.transpose.contains(param)) {
            Ok(e) => encoded.push((file_name.to_string(), e)),
            Err(message) => problems.push(WeightProblem::WrongDtype {
                param: param.clone(),
                message,
            }),
        }
    }
    if !problems.is_empty() {
        return Err(WeightsError::Mismatch {
            path: None,
            problems,
        });
    }
    let metadata: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    safetensors::serialize(encoded, Some(metadata)).map_err(|e| WeightsError::Format {
        path: None,
        message: e.to_string(),
    })
}

/// Writes `tensors` (by parameter name) to `path` as a plain safetensors file, named and laid
/// out as `map` says (the inverse of [`import_safetensors`] with the same map), atomically
/// ([`write_atomically`]): on error a previous file at `path` is intact.
pub fn export_safetensors(
    path: impl AsRef<Path>,
    tensors: &Feeds,
    map: &WeightMap,
) -> Result<(), WeightsError> {
    let path = path.as_ref();
    let bytes = export_safetensors_bytes(tensors, map).map_err(|e| e.at(path))?;
    write_atomically(path, |w| w.write_all(&bytes)).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_values_decode_exactly() {
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert_eq!(f16_to_f64(0x7bff), 65504.0);
        assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24)); // smallest subnormal
        assert_eq!(f16_to_f64(0x0400), 2f64.powi(-14)); // smallest normal
        assert_eq!(f16_to_f64(0x3555), 0.333251953125);
        assert_eq!(f16_to_f64(0x8000).to_bits(), (-0.0f64).to_bits());
        assert_eq!(f16_to_f64(0xfc00), f64::NEG_INFINITY);
        assert!(f16_to_f64(0x7e00).is_nan());
        // bfloat16 is the top half of an f32.
        assert_eq!(
            decode(Dtype::BF16, &0x3fc0u16.to_le_bytes()),
            Some(vec![1.5])
        );
    }

    #[test]
    fn transposing_swaps_rows_and_columns() {
        assert_eq!(
            transposed(&[1., 2., 3., 4., 5., 6.], 2, 3),
            vec![1., 4., 2., 5., 3., 6.]
        );
    }

    #[test]
    fn problems_are_all_reported() {
        let mut t = Feeds::new();
        t.insert(
            "a".into(),
            HostTensor::from_f32([2], vec![1.0, 2.0]).unwrap(),
        );
        t.insert("b".into(), HostTensor::from_i32([1], vec![7]).unwrap());
        t.insert(
            "extra".into(),
            HostTensor::from_f32([1], vec![0.0]).unwrap(),
        );
        let bytes = export_safetensors_bytes(&t, &WeightMap::new()).unwrap();
        let expected = vec![
            ("a".to_string(), TensorType::new(DType::F32, [3])),
            ("b".to_string(), TensorType::new(DType::F32, [1])),
            ("c".to_string(), TensorType::new(DType::F64, [1])),
        ];
        let err = import_safetensors_bytes(&bytes, &expected, &WeightMap::new()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("(4 problems)"), "{msg}");
        assert!(
            msg.contains("`a` is f32[3] but the file's tensor has shape [2]"),
            "{msg}"
        );
        assert!(
            msg.contains("`b`: the file holds I32 for a f32 parameter"),
            "{msg}"
        );
        assert!(
            msg.contains("missing `c`") && msg.contains("unexpected `extra`"),
            "{msg}"
        );
        // Lenient: missing and unexpected are reported, the rest still refused.
        let expected = vec![
            ("a".to_string(), TensorType::new(DType::F64, [2])),
            ("c".to_string(), TensorType::new(DType::F64, [1])),
        ];
        let report =
            import_safetensors_bytes(&bytes, &expected, &WeightMap::new().lenient()).unwrap();
        assert_eq!(report.missing, ["c"]);
        assert_eq!(report.unexpected, ["b", "extra"]);
        assert_eq!(report.converted, [("a".to_string(), "F32".to_string())]);
        assert_eq!(report.loaded["a"].to_f64_vec(), [1.0, 2.0]);
    }
}
