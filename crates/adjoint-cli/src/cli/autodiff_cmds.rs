//! `adjoint grad` and `adjoint gradcheck`.

use super::feeds::check_fits;
use super::graph_cmds::{emit, load_graph};
use super::CliError;
use adjoint::{DType, TensorType};
use std::path::Path;

/// `adjoint grad FILE --loss NAME --wrt A,B [-o OUT]`.
pub fn grad(
    path: &Path,
    loss: &str,
    wrt: &[String],
    output: Option<&Path>,
) -> Result<(), CliError> {
    let graph = load_graph(path)?;
    let wrt: Vec<&str> = wrt.iter().map(String::as_str).collect();
    let grads = adjoint::autodiff::grad_named(graph, loss, &wrt)
        .map_err(|e| CliError::in_file(path, e.to_string()))?;
    emit(&adjoint::ir::text::print(&grads.graph), output)
}

/// `adjoint gradcheck FILE --loss NAME --wrt A,B [--seed N] [--tolerance T]`: prints the report
/// and fails when a gradient is off by more than the tolerance.
pub fn gradcheck(
    path: &Path,
    loss: &str,
    wrt: &[String],
    seed: u64,
    tolerance: f64,
) -> Result<(), CliError> {
    let graph = load_graph(path)?;
    // The check feeds every input and parameter with random data and differentiates in f64:
    // refuse tensors too large for either before anything allocates them.
    for &id in graph.inputs().iter().chain(graph.parameters()) {
        let name = graph.leaf_name(id).unwrap_or("?");
        let ty = graph.ty(id);
        check_fits(ty, name, "gradcheck")?;
        check_fits(
            &TensorType::new(DType::F64, ty.shape.clone()),
            name,
            "gradcheck (in f64)",
        )?;
    }
    let wrt: Vec<&str> = wrt.iter().map(String::as_str).collect();
    let report = adjoint::autodiff::check_grads_named(&graph, loss, &wrt, seed, tolerance)
        .map_err(|e| CliError::in_file(path, e.to_string()))?;
    println!("{report}");
    if report.passed() {
        Ok(())
    } else {
        Err(CliError::in_file(
            path,
            format!(
                "gradient check failed: worst relative error {:e} exceeds {tolerance:e}",
                report.worst_error()
            ),
        ))
    }
}
