//! Feeds from the command line: `NAME=V1,V2,…`, `NAME=random`, and seeded random fill.

use super::CliError;
use adjoint::ir::Rng;
use adjoint::{Feeds, Graph, HostTensor, TensorType};

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
            random(ty, name, fill)
        } else {
            parse_values(name, ty, values)?
        };
        feeds.insert(name.to_string(), tensor);
    }
    if fill.all {
        for &id in graph.inputs().iter().chain(graph.parameters()) {
            let name = graph.leaf_name(id).expect("leaves have names");
            if !feeds.contains_key(name) {
                feeds.insert(name.to_string(), random(graph.ty(id), name, fill));
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
/// feed's values do not depend on which other feeds are given).
fn random(ty: &TensorType, name: &str, fill: &RandomFill) -> HostTensor {
    let mut rng = Rng::derive(fill.seed, name);
    HostTensor::random(ty, &mut rng, fill.int_bound)
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
        values.push(v);
    }
    let want = ty.shape.numel();
    if values.len() != want {
        return Err(CliError::general(format!(
            "--feed `{name}`: {ty} needs {want} value(s), got {}",
            values.len()
        )));
    }
    HostTensor::from_f64_as(ty.dtype, ty.shape.clone(), &values)
        .map_err(|e| CliError::general(format!("--feed `{name}`: {e}")))
}
