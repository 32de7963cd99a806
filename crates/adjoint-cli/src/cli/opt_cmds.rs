//! `adjoint opt` and `adjoint plan`.

use super::graph_cmds::{emit, load_graph};
use super::CliError;
use adjoint::opt::{PassOptions, PlanOptions};
use std::path::{Path, PathBuf};

/// `adjoint opt FILE [--passes LIST] [--print-after-all] [--dump DIR]`.
pub fn opt(
    path: &Path,
    passes: Option<&str>,
    print_after_all: bool,
    dump: Option<PathBuf>,
) -> Result<(), CliError> {
    let graph = load_graph(path)?;
    let mut options = match passes {
        Some(list) => {
            PassOptions::with_passes(list).map_err(|e| CliError::general(e.to_string()))?
        }
        None => PassOptions::default(),
    };
    // --print-after-all dumps into a scratch directory and echoes each dump in order.
    let scratch = print_after_all.then(|| {
        std::env::temp_dir().join(format!("adjoint-print-after-all-{}", std::process::id()))
    });
    options.dump_dir = dump.or_else(|| scratch.clone());
    let (optimized, report) = adjoint::opt::optimize(&graph, &options)
        .map_err(|e| CliError::in_file(path, e.to_string()))?;
    if let Some(dir) = scratch {
        let echoed = echo_text_dumps(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        echoed?;
    }
    eprint!("{report}");
    emit(&adjoint::ir::text::print(&optimized), None)
}

/// Prints every `*.txt` dump in `dir` to standard error, in file-name (pass) order.
fn echo_text_dumps(dir: &Path) -> Result<(), CliError> {
    let read = |e: std::io::Error| CliError::general(format!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(read)?;
        let name = f.file_name().unwrap_or_default().to_string_lossy();
        eprintln!("{}\n{text}", dump_heading(&name));
    }
    Ok(())
}

/// The heading of one echoed dump, from its file name `<graph>.<index>.<pass>.txt`: the pass
/// (and its position), not the file.
fn dump_heading(file_name: &str) -> String {
    let stem = file_name.strip_suffix(".txt").unwrap_or(file_name);
    let mut parts = stem.rsplitn(3, '.');
    let (pass, index) = (parts.next(), parts.next());
    match (pass, index.and_then(|i| i.parse::<usize>().ok())) {
        (Some("input"), Some(0)) => "// ---- the input graph".to_string(),
        (Some(pass), Some(i)) => format!("// ---- after pass {i}: {pass}"),
        _ => format!("// ---- {stem}"),
    }
}

/// Flags of `adjoint plan`.
pub struct PlanFlags {
    /// Fuse (otherwise one kernel per node).
    pub fuse: bool,
    /// No rematerialization.
    pub keep_all: bool,
    /// Write the clustered DOT here.
    pub dot: Option<PathBuf>,
    /// Compile and print the kernel IR.
    pub kernels: bool,
}

/// `adjoint plan FILE [--no-fusion] [--keep-all] [--dot OUT] [--kernels]`.
pub fn plan(path: &Path, flags: &PlanFlags) -> Result<(), CliError> {
    let graph = load_graph(path)?;
    let (optimized, _) = adjoint::opt::optimize(&graph, &PassOptions::default())
        .map_err(|e| CliError::in_file(path, e.to_string()))?;
    let options = PlanOptions {
        fuse: flags.fuse,
        keep_all: flags.keep_all,
        ..PlanOptions::default()
    };
    let plan = adjoint::opt::plan(&optimized, &options);
    if let Some(out) = &flags.dot {
        emit(&plan.to_dot(), Some(out))?;
    }
    emit(&plan.to_string(), None)?;
    if flags.kernels {
        let jit_options = adjoint::Options {
            fusion: flags.fuse,
            keep_all: flags.keep_all,
            cache: false,
            ..adjoint::Options::default()
        };
        let step = adjoint::compile(&optimized, &jit_options)
            .map_err(|e| CliError::in_file(path, e.to_string()))?;
        println!("\n== kernels ==\n{}", step.kernels());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::dump_heading;

    #[test]
    fn headings_name_the_pass_not_the_file() {
        assert_eq!(
            dump_heading("w3.step.000.input.txt"),
            "// ---- the input graph"
        );
        assert_eq!(
            dump_heading("w3.step.004.cse.txt"),
            "// ---- after pass 4: cse"
        );
        assert_eq!(dump_heading("odd.txt"), "// ---- odd");
    }
}
