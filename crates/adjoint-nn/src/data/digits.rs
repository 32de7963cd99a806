//! The bundled handwritten-digits data set (`data/digits.csv.gz`).

use super::{DataError, Dataset};
use adjoint_ir::HostTensor;
use std::path::{Path, PathBuf};

/// Pixels per digit image (8×8).
pub const DIGITS_FEATURES: usize = 64;
/// Digit classes (0..9).
pub const DIGITS_CLASSES: usize = 10;
/// The largest pixel count; [`load_digits`] divides by it to scale pixels to `[0, 1]`.
pub const DIGITS_MAX_PIXEL: i64 = 16;

/// The data file's path inside the workspace.
const DIGITS_RELATIVE: &str = "data/digits.csv.gz";

/// Where the bundled `data/digits.csv.gz` is: searched upwards from the running package's
/// `CARGO_MANIFEST_DIR` (set by `cargo run` / `cargo test`), from this crate's manifest
/// directory at build time, and from the current directory. When none has it, the path under
/// this crate's workspace is returned anyway, so that [`load_digits`] reports it as missing.
pub fn digits_path() -> PathBuf {
    let build_time = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut starts = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
        starts.push(PathBuf::from(dir));
    }
    starts.push(build_time.clone());
    if let Ok(dir) = std::env::current_dir() {
        starts.push(dir);
    }
    starts
        .iter()
        .flat_map(|start| start.ancestors())
        .map(|dir| dir.join(DIGITS_RELATIVE))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            let workspace = build_time.ancestors().nth(2).unwrap_or(&build_time);
            workspace.join(DIGITS_RELATIVE)
        })
}

/// Loads the digits data set from its gzip-compressed CSV file (see `data/README.md`): one
/// row per image, 64 pixel counts in `0..=16` then the label in `0..=9`, no header. Pixels
/// are scaled to `[0, 1]` (divided by 16); labels become `i32`. Blank lines are skipped.
///
/// Every problem is an error naming the file (and the 1-based line for content errors): a
/// missing file, a file that is not gzip, a row with the wrong number of fields, a field that
/// is not an integer, a pixel or label out of range, or no rows at all.
///
/// ```
/// use adjoint_nn::data::{digits_path, load_digits};
///
/// let digits = load_digits(digits_path()).unwrap();
/// assert_eq!((digits.len(), digits.num_features(), digits.classes()), (1797, 64, 10));
/// let (train, test) = digits.split(42, 0.2).unwrap();
/// assert_eq!(train.len() + test.len(), 1797);
/// ```
pub fn load_digits(path: impl AsRef<Path>) -> Result<Dataset, DataError> {
    let path = path.as_ref();
    let text = read_gzip(path)?;
    let (pixels, labels) = parse_digits_csv(&text, path)?;
    let n = labels.len();
    let features = pixels
        .iter()
        .map(|&p| p as f32 / DIGITS_MAX_PIXEL as f32)
        .collect();
    Dataset::new(
        HostTensor::from_f32([n, DIGITS_FEATURES], features).expect("one row per label"),
        HostTensor::from_i32([n], labels).expect("one label per row"),
        DIGITS_CLASSES,
    )
}

/// The decompressed bytes of a gzip file.
fn read_gzip(path: &Path) -> Result<Vec<u8>, DataError> {
    let compressed = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !compressed.starts_with(&[0x1f, 0x8b]) {
        return Err(DataError::Gzip {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "it does not start with the gzip magic bytes 1f 8b",
            ),
        });
    }
    gunzip(&compressed).map_err(|source| DataError::Gzip {
        path: path.to_path_buf(),
        source,
    })
}

/// The decompressed bytes of gzip data (every member, as `gzip -d` does).
#[cfg(feature = "gzip")]
fn gunzip(compressed: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(compressed).read_to_end(&mut text)?;
    Ok(text)
}

/// Without the `gzip` feature there is no decompressor: an error saying how to get one.
#[cfg(not(feature = "gzip"))]
fn gunzip(_compressed: &[u8]) -> std::io::Result<Vec<u8>> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "adjoint-nn was built without its `gzip` feature, which reads gzip files",
    ))
}

/// Raw pixel counts (row-major, 64 per row) and labels of the digits CSV text.
fn parse_digits_csv(text: &[u8], path: &Path) -> Result<(Vec<u8>, Vec<i32>), DataError> {
    let parse_error = |line: usize, message: String| DataError::Parse {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line_no = index + 1;
        let line = std::str::from_utf8(raw)
            .map_err(|e| parse_error(line_no, format!("the line is not UTF-8 text ({e})")))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != DIGITS_FEATURES + 1 {
            return Err(parse_error(
                line_no,
                format!(
                    "expected {} comma-separated fields ({DIGITS_FEATURES} pixels and a label), \
                     found {}",
                    DIGITS_FEATURES + 1,
                    fields.len()
                ),
            ));
        }
        for (k, field) in fields.iter().enumerate() {
            let field = field.trim();
            let value: i64 = field.parse().map_err(|_| {
                parse_error(
                    line_no,
                    format!("field {} is not an integer: {field:?}", k + 1),
                )
            })?;
            if k < DIGITS_FEATURES {
                if !(0..=DIGITS_MAX_PIXEL).contains(&value) {
                    return Err(parse_error(
                        line_no,
                        format!(
                            "pixel {k} (field {}) is {value}, outside 0..={DIGITS_MAX_PIXEL}",
                            k + 1
                        ),
                    ));
                }
                pixels.push(value as u8);
            } else {
                if !(0..DIGITS_CLASSES as i64).contains(&value) {
                    return Err(parse_error(
                        line_no,
                        format!(
                            "label (field {}) is {value}, outside 0..={}",
                            k + 1,
                            DIGITS_CLASSES - 1
                        ),
                    ));
                }
                labels.push(value as i32);
            }
        }
    }
    if labels.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok((pixels, labels))
}
