//! The commands that read one graph file: `dump`, `dot`, `run`; and `workload`.

use super::feeds::{self, RandomFill};
use super::CliError;
use adjoint::{Graph, HostData, HostTensor};
use std::path::Path;

/// Reads, parses and verifies a graph file.
pub fn load_graph(path: &Path) -> Result<Graph, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::in_file(path, format!("cannot read: {e}")))?;
    let graph = adjoint::ir::text::parse(&text)
        .map_err(|e| CliError::at(path, e.line, e.column, e.message.clone()))?;
    graph
        .verify()
        .map_err(|e| CliError::in_file(path, e.to_string()))?;
    Ok(graph)
}

/// Writes `text` to `output`, or to standard output.
pub fn emit(text: &str, output: Option<&Path>) -> Result<(), CliError> {
    match output {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| CliError::in_file(path, format!("cannot write: {e}"))),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

/// `adjoint dump FILE`.
pub fn dump(path: &Path) -> Result<(), CliError> {
    let graph = load_graph(path)?;
    emit(&adjoint::ir::text::print(&graph), None)
}

/// `adjoint dot FILE [-o OUT]`.
pub fn dot(path: &Path, output: Option<&Path>) -> Result<(), CliError> {
    let graph = load_graph(path)?;
    emit(&adjoint::ir::dot::to_dot(&graph), output)
}

/// Options of `adjoint run`.
pub struct RunOptions {
    /// `NAME=VALUES` feed specs.
    pub feeds: Vec<String>,
    /// Fill unfed leaves randomly.
    pub random: bool,
    /// Random seed.
    pub seed: u64,
    /// Bound of random i32 values.
    pub int_bound: u32,
    /// Values printed per tensor.
    pub max_values: usize,
    /// Run the compiled step instead of the interpreter (and compare the two).
    pub jit: bool,
}

/// `adjoint run FILE --feed …`.
pub fn run(path: &Path, opts: &RunOptions) -> Result<(), CliError> {
    let graph = load_graph(path)?;
    let fill = RandomFill {
        all: opts.random,
        seed: opts.seed,
        int_bound: opts.int_bound,
    };
    let feeds = feeds::build(&graph, &opts.feeds, &fill)?;
    if opts.jit {
        return super::jit_cmds::run_jit(path, &graph, &feeds, opts.max_values);
    }
    let result =
        adjoint::interp::run(&graph, &feeds).map_err(|e| CliError::in_file(path, e.to_string()))?;
    for (name, value) in &result.outputs {
        println!("{name}: {}", show(value, opts.max_values));
    }
    for (name, value) in &result.updates {
        println!("update {name}: {}", show(value, opts.max_values));
    }
    Ok(())
}

/// `adjoint workload ID [--step] [-o OUT]`.
pub fn workload(id: &str, step: bool, output: Option<&Path>) -> Result<(), CliError> {
    let w = adjoint::workloads::by_id(id, 0).ok_or_else(|| {
        CliError::general(format!(
            "unknown workload `{id}` (expected W1, W2, W3, W4 or mlp-small, mlp-wide, resmlp-ln, gpt-tiny)"
        ))
    })?;
    let graph = if step {
        w.training_step().step.graph
    } else {
        w.graph
    };
    emit(&adjoint::ir::text::print(&graph), output)
}

/// `f32[2,2] = [1, 2, 3, 4]`, with at most `max` values and a count of the rest.
pub(super) fn show(t: &HostTensor, max: usize) -> String {
    let mut parts: Vec<String> = match t.data() {
        // f32 values print at f32 precision (`0.1`, not `0.10000000149011612`).
        HostData::F32(v) => v.iter().take(max).map(|x| x.to_string()).collect(),
        HostData::F64(v) => v.iter().take(max).map(|x| x.to_string()).collect(),
        HostData::I32(v) => v.iter().take(max).map(|x| x.to_string()).collect(),
        HostData::Bool(v) => v.iter().take(max).map(|x| x.to_string()).collect(),
        // 16-bit floats print as the exact f32 value they hold.
        HostData::Bf16(v) => v.iter().take(max).map(|x| x.to_f32().to_string()).collect(),
        HostData::F16(v) => v.iter().take(max).map(|x| x.to_f32().to_string()).collect(),
    };
    if t.numel() > max {
        parts.push(format!("… ({} more)", t.numel() - max));
    }
    if t.shape().rank() == 0 {
        format!("{} = {}", t.ty(), parts.join(""))
    } else {
        format!("{} = [{}]", t.ty(), parts.join(", "))
    }
}
