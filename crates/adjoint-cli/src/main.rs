//! The `adjoint` command-line tool: inspect, run and (as the stages land) differentiate,
//! optimize and benchmark graphs in the `.adj` text format.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
