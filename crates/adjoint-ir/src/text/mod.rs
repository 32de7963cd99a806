//! The `.adj` text format: [`print()`] a graph, [`parse()`] it back.
//!
//! A graph prints as one line per node in [`Graph::topo_order`](crate::Graph::topo_order), then its outputs and parameter
//! updates:
//!
//! ```text
//! graph mlp {
//!   %x: f32[4,3] = input "x"
//!   %w: f32[3,2] = parameter "w"
//!   %0: f32[4,2] = matmul %x, %w
//!   %h: f32[4,2] = tanh %0
//!   output "h" = %h
//! }
//! ```
//!
//! For every graph `g` that verifies, `print(&parse(&print(&g))?) == print(&g)`; floats
//! round-trip bit for bit (NaN payloads excepted: every NaN prints as `nan`). `docs/ir.md` gives
//! the grammar and every op's line.
//!
//! **Names.** An input or parameter is written `%` and its leaf name; another node is written
//! `%` and its label if it has one, else `%0`, `%1`, … numbered in print order. A name is made
//! of ASCII letters, digits, `_` and `.` and is not all digits: the printer replaces other
//! characters with `_`, puts `_` before an all-digit label, and makes names unique by adding
//! `_1`, `_2`, … (leaf names are placed first, then labels in print order). The parser labels each
//! non-leaf node with its name unless the name is all digits.
//!
//! **One line, one node.** The parser builds nodes with [`Graph::add`](crate::Graph::add), which checks every
//! operand type, but a line that repeats an earlier line's op and operands still makes a node of
//! its own (as [`Graph`](crate::Graph) can hold after in-place rewrites): `parse` reproduces exactly the graph
//! the text describes, and CSE is left to the passes.

mod lexer;
mod names;
mod number;
mod parse;
mod print;

pub use parse::{parse, MAX_ELEMENTS};
pub use print::print;
pub(crate) use print::{node_names, push_attributes};

use std::fmt;

/// Why a text could not be parsed, and where: 1-based line and column (in characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Line number, starting at 1.
    pub line: usize,
    /// Column number in characters, starting at 1.
    pub column: usize,
    /// What was found and what was expected.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for ParseError {}
