//! Feeds from the command line: `NAME=V1,V2,…`, `NAME=random`, and seeded random fill.

use super::CliError;
use adjoint::ir::Rng;
use adjoint::{DType, Feeds, Graph, HostTensor, Options, TensorType};

/// How to fill feeds that `--feed` does not give.
pub struct RandomFill {
    /// Fill every unfed input and parameter.
    pub all: bool,
    /// Seed of the random stream.
    pub seed: u64,
    /// Exclusive upper bound of random i32 values.
    pub int_bound: u32,
}

/// Builds the feeds for `graph` from `NAME=VALUES` specs, then random data where asked.
pub fn build(graph: &Graph, specs: &[String], fill: &RandomFill) -> Result<Feeds, CliError> {
    let mut feeds = Feeds::new();
    for spec in specs {
        let Some((name, values)) = spec.split_once('=') else {
            return Err(CliError::general(format!(
                "--feed `{spec}`: expected NAME=VALUES (comma-separated) or NAME=random"
            )));
        };
        let Some(id) = graph.leaf(name) else {
            return Err(CliError::general(format!(
                "--feed `{name}`: the graph has no input or parameter of that name{}",
                known_names(graph)
            )));
        };
        let ty = graph.ty(id);
        let tensor = if values.trim() == "random" {
            random(ty, name, fill, &format!("--feed {name}=random"))?
        } else {
            parse_values(name, ty, values)?
        };
        feeds.insert(name.to_string(), tensor);
    }
    if fill.all {
        for &id in graph.inputs().iter().chain(graph.parameters()) {
            let name = graph.leaf_name(id).expect("leaves have names");
            if !feeds.contains_key(name) {
                let tensor = random(graph.ty(id), name, fill, "--random")?;
                feeds.insert(name.to_string(), tensor);
            }
        }
    }
    Ok(feeds)
}

fn known_names(graph: &Graph) -> String {
    let names: Vec<&str> = graph
        .inputs()
        .iter()
        .chain(graph.parameters())
        .filter_map(|&id| graph.leaf_name(id))
        .collect();
    if names.is_empty() {
        String::new()
    } else {
        format!(" (it has: {})", names.join(", "))
    }
}

/// Random data for one feed, from a stream derived from the seed and the feed's name (so a
/// feed's values do not depend on which other feeds are given). A tensor larger than
/// [`check_fits`] allows, or one the system refuses the memory for, is an error naming `flag`
/// and the input.
fn random(
    ty: &TensorType,
    name: &str,
    fill: &RandomFill,
    flag: &str,
) -> Result<HostTensor, CliError> {
    check_fits(ty, name, flag)?;
    let mut rng = Rng::derive(fill.seed, name);
    HostTensor::try_random(ty, &mut rng, fill.int_bound)
        .map_err(|e| CliError::general(format!("{flag}: `{name}`: {e}")))
}

fn parse_values(name: &str, ty: &TensorType, text: &str) -> Result<HostTensor, CliError> {
    let mut values = Vec::new();
    for (i, item) in text.split(',').enumerate() {
        let item = item.trim();
        let v = match item {
            "true" => 1.0,
            "false" => 0.0,
            _ => item.parse::<f64>().map_err(|_| {
                CliError::general(format!(
                    "--feed `{name}`: value {} `{item}` is not a number",
                    i + 1
                ))
            })?,
        };
        if v.is_infinite() && !names_infinity(item) {
            return Err(CliError::general(format!(
                "--feed `{name}`: value {} `{item}` is outside the f64 range (write `inf` for \
                 an infinity)",
                i + 1
            )));
        }
        if let Err(why) = representable(ty.dtype, v) {
            return Err(CliError::general(format!(
                "--feed `{name}`: value {} `{item}` {why}",
                i + 1
            )));
        }
        values.push(v);
    }
    let want = ty.shape.try_numel().ok_or_else(|| {
        CliError::general(format!(
            "--feed `{name}`: {ty} has more elements than a usize can count"
        ))
    })?;
    if values.len() != want {
        return Err(CliError::general(format!(
            "--feed `{name}`: {ty} needs {want} value(s), got {}",
            values.len()
        )));
    }
    HostTensor::from_f64_as(ty.dtype, ty.shape.clone(), &values)
        .map_err(|e| CliError::general(format!("--feed `{name}`: {e}")))
}

/// Checks that a tensor of type `ty` (the leaf `name`) is within the compiler's default limit
/// on one tensor ([`Options::DEFAULT_MAX_TENSOR_BYTES`]) before anything allocates it; the
/// error names `flag`, the leaf and its size.
pub fn check_fits(ty: &TensorType, name: &str, flag: &str) -> Result<(), CliError> {
    let limit = Options::DEFAULT_MAX_TENSOR_BYTES;
    match ty.try_size_bytes() {
        Some(bytes) if bytes <= limit => Ok(()),
        Some(bytes) => Err(CliError::general(format!(
            "{flag}: `{name}` ({ty}) would take {bytes} bytes, more than the limit of \
             {limit} bytes on one tensor"
        ))),
        None => Err(CliError::general(format!(
            "{flag}: `{name}` ({ty}) has more bytes than a usize can count"
        ))),
    }
}

/// Whether `item` spells an infinity (`inf`, `-Infinity`, …) rather than a finite number too
/// large for an f64.
fn names_infinity(item: &str) -> bool {
    let unsigned = item.trim_start_matches(['+', '-']).to_ascii_lowercase();
    unsigned == "inf" || unsigned == "infinity"
}

/// Whether `v` is a value of `dtype` as given, rather than one that would silently change on
/// conversion: i32 feeds take whole numbers within the i32 range, bool feeds 0 or 1 (`true`,
/// `false`), f32 feeds anything that does not overflow to an infinity. The error says why.
fn representable(dtype: DType, v: f64) -> Result<(), String> {
    match dtype {
        DType::I32 => {
            if !v.is_finite() || v.fract() != 0.0 {
                Err("is not a whole number (the input is i32)".to_string())
            } else if v < f64::from(i32::MIN) || v > f64::from(i32::MAX) {
                Err(format!(
                    "is outside the i32 range {}..={}",
                    i32::MIN,
                    i32::MAX
                ))
            } else {
                Ok(())
            }
        }
        DType::Bool if v != 0.0 && v != 1.0 => {
            Err("is not a bool (true, false, 1 or 0)".to_string())
        }
        DType::F32 if v.is_finite() && (v as f32).is_infinite() => {
            Err("is outside the f32 range".to_string())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i32_feeds_take_whole_numbers_in_range_only() {
        for ok in [0.0, -1.0, 1e3, 2147483647.0, -2147483648.0] {
            assert!(representable(DType::I32, ok).is_ok(), "{ok}");
        }
        for bad in [
            1e20,
            f64::NAN,
            f64::INFINITY,
            1.5,
            2147483648.0,
            -2147483649.0,
        ] {
            assert!(representable(DType::I32, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bool_and_f32_feeds_reject_values_that_would_change() {
        assert!(representable(DType::Bool, 1.0).is_ok());
        assert!(representable(DType::Bool, 0.5).is_err());
        assert!(representable(DType::Bool, f64::NAN).is_err());
        assert!(representable(DType::F32, 3.5e38).is_err());
        assert!(representable(DType::F32, f64::NAN).is_ok());
        assert!(representable(DType::F32, f64::INFINITY).is_ok());
        assert!(representable(DType::F64, 1e300).is_ok());
    }

    #[test]
    fn only_spelled_infinities_are_infinite() {
        for inf in ["inf", "-inf", "+Infinity", "INF"] {
            assert!(names_infinity(inf), "{inf}");
        }
        for finite in ["1e400", "-1e999", "nan"] {
            assert!(!names_infinity(finite), "{finite}");
        }
    }
}
