//! The parser: `.adj` text into a [`Graph`], checking every declared type.

use super::lexer::{lex_line, Kind, Token};
use super::names::is_number_name;
use super::number::parse_element;
use super::ParseError;
use crate::graph::{Graph, NodeId};
use crate::literal::Literal;
use crate::op::{
    AllReduceKind, BinaryOp, CompareOp, Op, ReduceOp, SliceRange, TensorType, UnaryOp,
};
use crate::shape::{Dims, Shape, MAX_RANK};
use crate::DType;
use std::collections::HashMap;

/// The largest element count a declared shape may have (2^40), and the largest integer an
/// attribute may hold: far beyond any real tensor, small enough that no shape arithmetic on
/// such values can overflow.
pub const MAX_ELEMENTS: usize = 1 << 40;

/// The most operands one node may list.
const MAX_OPERANDS: usize = 1 << 16;

/// Parses `.adj` text into a graph.
///
/// Every node's operand types are checked by the op's shape rule and its declared type must be
/// the type the op computes; inputs and parameter names must be unique; values must be defined
/// before they are used. Each node line makes one node of its own, even when it repeats an
/// earlier line (see the [module documentation](super)).
///
/// ```
/// let g = adjoint_ir::text::parse(
///     "graph g {\n  %x: f32[2] = input \"x\"\n  %y: f32[2] = exp %x\n  output \"y\" = %y\n}\n",
/// )
/// .unwrap();
/// assert_eq!(g.ty(g.output("y").unwrap()).to_string(), "f32[2]");
///
/// let err = adjoint_ir::text::parse("graph g {\n  %y: f32[2] = exp %x\n}\n").unwrap_err();
/// assert_eq!(err.to_string(), "2:20: undefined value `%x`");
/// ```
pub fn parse(text: &str) -> Result<Graph, ParseError> {
    Parser::new(text).parse_graph()
}

/// Where a value was defined: its node and the line.
struct Definition {
    id: NodeId,
    line: usize,
}

struct Parser<'t> {
    /// The source, split into lines (a trailing `\r` removed).
    lines: Vec<&'t str>,
    /// The current line (0-based) and its tokens.
    line: usize,
    tokens: Vec<Token>,
    pos: usize,
    graph: Graph,
    values: HashMap<String, Definition>,
    output_lines: HashMap<String, usize>,
    update_lines: HashMap<NodeId, usize>,
}

/// An attribute value as read, before it is checked against what the op wants.
enum Attr {
    Int(usize),
    List(Dims),
    Ranges(Vec<SliceRange>),
    Bool(bool),
    DType(DType),
}

/// The kind of value an attribute takes.
#[derive(Clone, Copy, PartialEq)]
enum AttrKind {
    Int,
    List,
    Shape,
    Ranges,
    Bool,
    DType,
}

/// The attributes each op takes, in the order the printer writes them.
fn attribute_spec(op: &str) -> &'static [(&'static str, AttrKind)] {
    match op {
        "iota" | "concat" | "gather" => &[("axis", AttrKind::Int)],
        "cast" => &[("to", AttrKind::DType)],
        "broadcast" | "reshape" => &[("shape", AttrKind::Shape)],
        "permute" => &[("perm", AttrKind::List)],
        "slice" => &[("ranges", AttrKind::Ranges)],
        "pad" => &[("low", AttrKind::List), ("high", AttrKind::List)],
        "reduce_sum" | "reduce_max" => &[("axes", AttrKind::List), ("keepdims", AttrKind::Bool)],
        "scatter_add" => &[("axis", AttrKind::Int), ("size", AttrKind::Int)],
        "all_reduce_sum" | "all_reduce_mean" => &[("replicas", AttrKind::Int)],
        _ => &[],
    }
}

/// Levenshtein distance, for suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// ` (did you mean `x`?)` when some candidate is close to `word`, else nothing.
fn suggestion<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    if word.chars().count() > 64 {
        return String::new();
    }
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, c)| d <= 2 && d < c.len())
        .min()
        .map_or(String::new(), |(_, c)| format!(" (did you mean `{c}`?)"))
}

/// How a token is shown in "found …" messages.
fn describe(kind: &Kind) -> String {
    match kind {
        Kind::Value(n) => format!("`%{n}`"),
        Kind::Word(w) | Kind::Number(w) => format!("`{w}`"),
        Kind::Str(s) => format!("string {s:?}"),
        Kind::Punct(c) => format!("`{c}`"),
    }
}

impl<'t> Parser<'t> {
    fn new(text: &'t str) -> Parser<'t> {
        Parser {
            lines: text
                .split('\n')
                .map(|l| l.strip_suffix('\r').unwrap_or(l))
                .collect(),
            line: 0,
            tokens: Vec::new(),
            pos: 0,
            graph: Graph::new(""),
            values: HashMap::new(),
            output_lines: HashMap::new(),
            update_lines: HashMap::new(),
        }
    }

    // ----- positions and errors -----

    /// An error at byte offset `byte` of the current line.
    fn error_at(&self, byte: usize, message: impl Into<String>) -> ParseError {
        let text = self.lines.get(self.line).copied().unwrap_or("");
        let column = text.get(..byte).map_or(1, |s| s.chars().count() + 1);
        ParseError {
            line: self.line + 1,
            column,
            message: message.into(),
        }
    }

    /// Byte offset of the current token, or the end of the line.
    fn here(&self) -> usize {
        match self.tokens.get(self.pos) {
            Some(t) => t.start,
            None => self.lines.get(self.line).map_or(0, |l| l.trim_end().len()),
        }
    }

    /// An error at the current token: "expected X, found Y".
    fn expected(&self, what: &str) -> ParseError {
        let found = match self.tokens.get(self.pos) {
            Some(t) => describe(&t.kind),
            None => "end of line".to_string(),
        };
        self.error_at(self.here(), format!("expected {what}, found {found}"))
    }

    // ----- token access -----

    fn peek(&self) -> Option<&Kind> {
        self.tokens.get(self.pos).map(|t| &t.kind)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.tokens.len()
    }

    fn next(&mut self) -> Option<Kind> {
        let k = self.tokens.get(self.pos).map(|t| t.kind.clone());
        if k.is_some() {
            self.pos += 1;
        }
        k
    }

    fn eat_punct(&mut self, c: char) -> bool {
        if self.peek() == Some(&Kind::Punct(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_punct(&mut self, c: char, what: &str) -> Result<(), ParseError> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            Err(self.expected(what))
        }
    }

    fn expect_end(&self, after: &str) -> Result<(), ParseError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.expected(&format!("end of line after {after}")))
        }
    }

    /// Moves to the next line that has tokens; false at the end of the text.
    fn next_line(&mut self) -> Result<bool, ParseError> {
        loop {
            if self.line + 1 >= self.lines.len() {
                self.line = self.lines.len();
                self.tokens.clear();
                self.pos = 0;
                return Ok(false);
            }
            self.line += 1;
            self.load_line()?;
            if !self.tokens.is_empty() {
                return Ok(true);
            }
        }
    }

    fn load_line(&mut self) -> Result<(), ParseError> {
        let text = self.lines.get(self.line).copied().unwrap_or("");
        self.pos = 0;
        self.tokens = lex_line(text).map_err(|(byte, msg)| self.error_at(byte, msg))?;
        Ok(())
    }

    // ----- the file -----

    fn parse_graph(mut self) -> Result<Graph, ParseError> {
        self.load_line()?;
        if self.tokens.is_empty() && !self.next_line()? {
            self.line = 0;
            return Err(self.error_at(0, "expected `graph NAME {`, found an empty text"));
        }
        if self.next() != Some(Kind::Word("graph".into())) {
            self.pos = 0;
            return Err(self.expected("`graph NAME {`"));
        }
        let name = match self.next() {
            Some(Kind::Word(w)) => w,
            Some(Kind::Str(s)) => s,
            _ => {
                self.pos = self.pos.saturating_sub(1);
                return Err(self.expected("the graph's name (a word or a quoted string)"));
            }
        };
        self.graph.set_name(&name);
        self.expect_punct('{', "`{` after the graph's name")?;
        self.expect_end("`{`")?;
        loop {
            if !self.next_line()? {
                let last = self.lines.len().saturating_sub(1);
                self.line = last;
                let end = self.lines.get(last).map_or(0, |l| l.len());
                return Err(
                    self.error_at(end, format!("missing `}}` at the end of graph `{name}`"))
                );
            }
            match self.peek() {
                Some(Kind::Punct('}')) => {
                    self.pos += 1;
                    self.expect_end("`}`")?;
                    break;
                }
                Some(Kind::Value(_)) => self.parse_node()?,
                Some(Kind::Word(w)) if w == "output" => self.parse_output()?,
                Some(Kind::Word(w)) if w == "update" => self.parse_update()?,
                _ => {
                    return Err(self.expected(
                        "a node (`%name: type = op …`), `output`, `update` or the closing `}`",
                    ))
                }
            }
        }
        if self.next_line()? {
            return Err(self.error_at(self.here(), "unexpected text after the closing `}`"));
        }
        Ok(self.graph)
    }

    // ----- node lines -----

    fn parse_node(&mut self) -> Result<(), ParseError> {
        let name_at = self.here();
        let Some(Kind::Value(name)) = self.next() else {
            return Err(self.expected("a value name `%name`"));
        };
        if let Some(prev) = self.values.get(&name) {
            let msg = format!(
                "duplicate name `%{name}` (first defined on line {})",
                prev.line
            );
            return Err(self.error_at(name_at, msg));
        }
        self.expect_punct(':', "`:` and the value's type after its name")?;
        let type_at = self.here();
        let ty = self.parse_type()?;
        self.expect_punct('=', "`=` after the type")?;
        let op_at = self.here();
        let op_name = match self.next() {
            Some(Kind::Word(w)) => w,
            _ => {
                self.pos = self.pos.saturating_sub(1);
                return Err(self.expected("an op name"));
            }
        };
        let names: Vec<&str> = Op::all_names().collect();
        if !names.contains(&op_name.as_str()) {
            let hint = suggestion(&op_name, names.iter().copied());
            return Err(self.error_at(op_at, format!("unknown op `{op_name}`{hint}")));
        }
        let (op, operands) = match op_name.as_str() {
            "input" | "parameter" => {
                let leaf = self.parse_leaf_name(&op_name)?;
                if self.graph.leaf(&leaf).is_some() {
                    let msg = format!(
                        "the name \"{leaf}\" is already taken by another input or parameter"
                    );
                    return Err(self.error_at(op_at, msg));
                }
                let op = if op_name == "input" {
                    Op::Input {
                        name: leaf,
                        ty: ty.clone(),
                    }
                } else {
                    Op::Parameter {
                        name: leaf,
                        ty: ty.clone(),
                    }
                };
                (op, Vec::new())
            }
            "constant" => (Op::Constant(self.parse_literal(&ty)?), Vec::new()),
            _ => {
                let operands = self.parse_operands()?;
                let attrs = self.parse_attributes(&op_name)?;
                (self.make_op(&op_name, &ty, attrs)?, operands)
            }
        };
        self.expect_end("the node")?;
        let before = self.graph.len();
        let id = self
            .graph
            .add(op.clone(), &operands)
            .map_err(|m| self.error_at(op_at, format!("{op_name}: {m}")))?;
        let computed = self.graph.ty(id).clone();
        if computed != ty {
            let msg = format!("declared type {ty} but `{op_name}` computes {computed}");
            return Err(self.error_at(type_at, msg));
        }
        // One line, one node: a repeated line gets a node of its own.
        let id = if self.graph.len() == before {
            self.graph.add_unchecked(op, &operands, computed)
        } else {
            id
        };
        if self.graph.leaf_name(id).is_none() && !is_number_name(&name) {
            self.graph.set_label(id, &name);
        }
        let line = self.line + 1;
        self.values.insert(name, Definition { id, line });
        Ok(())
    }

    /// `%dtype[d, …]` after the `:`.
    fn parse_type(&mut self) -> Result<TensorType, ParseError> {
        let at = self.here();
        let dtype = match self.next() {
            Some(Kind::Word(w)) => w.parse::<DType>().map_err(|m| self.error_at(at, m))?,
            _ => {
                self.pos = self.pos.saturating_sub(1);
                return Err(self.expected("a type like `f32[2,3]`"));
            }
        };
        let shape = self.parse_shape()?;
        let ty = TensorType::new(dtype, shape);
        ty.check_size()
            .map_err(|m| self.error_at(at, m.to_string()))?;
        Ok(ty)
    }

    /// `[d, …]`: at most [`MAX_RANK`] dimensions with at most [`MAX_ELEMENTS`] elements.
    fn parse_shape(&mut self) -> Result<Shape, ParseError> {
        let at = self.here();
        let dims = self.parse_int_list("a shape `[d, …]`")?;
        if dims.len() > MAX_RANK {
            let msg = format!("rank {} exceeds the maximum rank {MAX_RANK}", dims.len());
            return Err(self.error_at(at, msg));
        }
        let mut count: usize = 1;
        for &d in &dims {
            count = count.saturating_mul(d);
        }
        if count > MAX_ELEMENTS {
            let msg = format!(
                "shape {} has more than 2^40 elements",
                Shape::from(dims.clone())
            );
            return Err(self.error_at(at, msg));
        }
        Ok(Shape::from(dims))
    }

    /// `[n, …]` of non-negative integers; at most [`MAX_RANK`] of them are kept (a longer list is
    /// an error).
    fn parse_int_list(&mut self, what: &str) -> Result<Dims, ParseError> {
        let open = self.here();
        self.expect_punct('[', what)?;
        let mut items = Dims::new();
        if self.eat_punct(']') {
            return Ok(items);
        }
        loop {
            if items.len() >= MAX_RANK {
                return Err(self.error_at(
                    open,
                    format!("list has more than {MAX_RANK} entries (the maximum rank)"),
                ));
            }
            items.push(self.parse_int()?);
            if self.eat_punct(']') {
                return Ok(items);
            }
            self.expect_punct(',', "`,` or `]` in the list")?;
        }
    }

    /// A non-negative integer no larger than [`MAX_ELEMENTS`].
    fn parse_int(&mut self) -> Result<usize, ParseError> {
        let at = self.here();
        let Some(Kind::Number(text)) = self.peek().cloned() else {
            return Err(self.expected("a non-negative integer"));
        };
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.expected("a non-negative integer"));
        }
        self.pos += 1;
        match text.parse::<u64>() {
            Ok(v) if v <= MAX_ELEMENTS as u64 => Ok(v as usize),
            _ => Err(self.error_at(at, format!("integer {text} is too large (at most 2^40)"))),
        }
    }

    /// The quoted name of an input or parameter.
    fn parse_leaf_name(&mut self, op: &str) -> Result<String, ParseError> {
        match self.peek().cloned() {
            Some(Kind::Str(s)) => {
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.expected(&format!("the {op}'s name as a quoted string"))),
        }
    }

    /// A constant's value: one element for a rank-0 type, else `[v, …]` with one element per
    /// element of the type, row-major.
    fn parse_literal(&mut self, ty: &TensorType) -> Result<Literal, ParseError> {
        let at = self.here();
        let numel = ty.shape.numel();
        let mut values = Vec::new();
        if ty.shape.rank() == 0 {
            values.push(self.parse_element(ty.dtype)?);
        } else {
            self.expect_punct('[', &format!("`[` and {numel} value(s) of type {ty}"))?;
            if !self.eat_punct(']') {
                loop {
                    if values.len() >= numel {
                        let msg = format!("type {ty} needs {numel} value(s), found more");
                        return Err(self.error_at(self.here(), msg));
                    }
                    values.push(self.parse_element(ty.dtype)?);
                    if self.eat_punct(']') {
                        break;
                    }
                    self.expect_punct(',', "`,` or `]` after a value")?;
                }
            }
        }
        if values.len() != numel {
            let msg = format!("type {ty} needs {numel} value(s), found {}", values.len());
            return Err(self.error_at(at, msg));
        }
        Literal::new(ty.clone(), &values).map_err(|m| self.error_at(at, m.to_string()))
    }

    fn parse_element(&mut self, dtype: DType) -> Result<f64, ParseError> {
        let at = self.here();
        let text = match self.peek() {
            Some(Kind::Number(t) | Kind::Word(t)) => t.clone(),
            _ => return Err(self.expected(&format!("a {dtype} value"))),
        };
        self.pos += 1;
        parse_element(&text, dtype).map_err(|m| self.error_at(at, m))
    }

    /// `%a, %b, …` (possibly none).
    fn parse_operands(&mut self) -> Result<Vec<NodeId>, ParseError> {
        let mut ids = Vec::new();
        if !matches!(self.peek(), Some(Kind::Value(_))) {
            return Ok(ids);
        }
        loop {
            let at = self.here();
            let Some(Kind::Value(name)) = self.next() else {
                self.pos = self.pos.saturating_sub(1);
                return Err(self.expected("an operand `%name`"));
            };
            let Some(def) = self.values.get(&name) else {
                return Err(self.error_at(at, format!("undefined value `%{name}`")));
            };
            if ids.len() >= MAX_OPERANDS {
                return Err(self.error_at(at, format!("more than {MAX_OPERANDS} operands")));
            }
            ids.push(def.id);
            match self.peek() {
                Some(Kind::Punct(',')) => self.pos += 1,
                None | Some(Kind::Word(_)) => return Ok(ids),
                _ => {
                    return Err(self.expected(
                        "`,` or end of line after operand (or an attribute `key=value`)",
                    ))
                }
            }
        }
    }

    /// `key=value …` up to the end of the line, checked against what `op` takes.
    fn parse_attributes(&mut self, op: &str) -> Result<HashMap<&'static str, Attr>, ParseError> {
        let spec = attribute_spec(op);
        let mut attrs = HashMap::new();
        while !self.at_end() {
            let at = self.here();
            let Some(Kind::Word(key)) = self.next() else {
                self.pos = self.pos.saturating_sub(1);
                return Err(self.expected("an attribute `key=value` or end of line"));
            };
            let Some(&(key, kind)) = spec.iter().find(|(k, _)| *k == key) else {
                let msg = if spec.is_empty() {
                    format!("`{op}` takes no attributes, found `{key}`")
                } else {
                    let known: Vec<String> = spec.iter().map(|(k, _)| format!("`{k}`")).collect();
                    let hint = suggestion(&key, spec.iter().map(|(k, _)| *k));
                    format!(
                        "unknown attribute `{key}` for `{op}` (it takes {}){hint}",
                        known.join(", ")
                    )
                };
                return Err(self.error_at(at, msg));
            };
            if attrs.contains_key(key) {
                return Err(self.error_at(at, format!("attribute `{key}` given twice")));
            }
            self.expect_punct('=', &format!("`=` after attribute `{key}`"))?;
            let value = match kind {
                AttrKind::Int => Attr::Int(self.parse_int()?),
                AttrKind::List => Attr::List(self.parse_int_list("a list `[n, …]`")?),
                AttrKind::Shape => Attr::List(self.parse_shape()?.dims().into()),
                AttrKind::Ranges => Attr::Ranges(self.parse_ranges()?),
                AttrKind::Bool => match self.peek() {
                    Some(Kind::Word(w)) if w == "true" || w == "false" => {
                        let b = w == "true";
                        self.pos += 1;
                        Attr::Bool(b)
                    }
                    _ => return Err(self.expected("`true` or `false`")),
                },
                AttrKind::DType => {
                    let at = self.here();
                    match self.next() {
                        Some(Kind::Word(w)) => {
                            Attr::DType(w.parse().map_err(|m: String| self.error_at(at, m))?)
                        }
                        _ => {
                            self.pos = self.pos.saturating_sub(1);
                            return Err(self.expected("a dtype (f32, f64, bf16, f16, i32 or bool)"));
                        }
                    }
                }
            };
            attrs.insert(key, value);
        }
        if let Some((missing, _)) = spec.iter().find(|(k, _)| !attrs.contains_key(k)) {
            return Err(self.error_at(self.here(), format!("`{op}` needs attribute `{missing}`")));
        }
        Ok(attrs)
    }

    /// `[start:stop:step, …]`.
    fn parse_ranges(&mut self) -> Result<Vec<SliceRange>, ParseError> {
        let open = self.here();
        self.expect_punct('[', "a list of ranges `[start:stop:step, …]`")?;
        let mut ranges = Vec::new();
        if self.eat_punct(']') {
            return Ok(ranges);
        }
        loop {
            if ranges.len() >= MAX_RANK {
                let msg = format!("more than {MAX_RANK} ranges (the maximum rank)");
                return Err(self.error_at(open, msg));
            }
            let start = self.parse_int()?;
            self.expect_punct(':', "`:` in `start:stop:step`")?;
            let stop = self.parse_int()?;
            self.expect_punct(':', "`:` in `start:stop:step`")?;
            let step = self.parse_int()?;
            ranges.push(SliceRange { start, stop, step });
            if self.eat_punct(']') {
                return Ok(ranges);
            }
            self.expect_punct(',', "`,` or `]` after a range")?;
        }
    }

    /// The op called `name` with its attributes; leaves take their type from `ty`.
    fn make_op(
        &self,
        name: &str,
        ty: &TensorType,
        mut attrs: HashMap<&'static str, Attr>,
    ) -> Result<Op, ParseError> {
        let int = |attrs: &mut HashMap<&'static str, Attr>, k: &str| match attrs.remove(k) {
            Some(Attr::Int(v)) => v,
            _ => 0,
        };
        let op = match name {
            "iota" => Op::Iota {
                ty: ty.clone(),
                axis: int(&mut attrs, "axis"),
            },
            "concat" => Op::Concat {
                axis: int(&mut attrs, "axis"),
            },
            "gather" => Op::Gather {
                axis: int(&mut attrs, "axis"),
            },
            "scatter_add" => Op::ScatterAdd {
                axis: int(&mut attrs, "axis"),
                size: int(&mut attrs, "size"),
            },
            "all_reduce_sum" | "all_reduce_mean" => Op::AllReduce {
                kind: if name == "all_reduce_sum" {
                    AllReduceKind::Sum
                } else {
                    AllReduceKind::Mean
                },
                replicas: int(&mut attrs, "replicas"),
            },
            "select" => Op::Select,
            "matmul" => Op::MatMul,
            "cast" => match attrs.remove("to") {
                Some(Attr::DType(to)) => Op::Cast { to },
                _ => return Err(self.error_at(self.here(), "`cast` needs attribute `to`")),
            },
            "broadcast" | "reshape" => {
                let shape = match attrs.remove("shape") {
                    Some(Attr::List(d)) => Shape::from(d),
                    _ => Shape::scalar(),
                };
                if name == "broadcast" {
                    Op::Broadcast { shape }
                } else {
                    Op::Reshape { shape }
                }
            }
            "permute" => Op::Permute {
                perm: list(&mut attrs, "perm"),
            },
            "slice" => Op::Slice {
                ranges: match attrs.remove("ranges") {
                    Some(Attr::Ranges(r)) => r,
                    _ => Vec::new(),
                },
            },
            "pad" => Op::Pad {
                low: list(&mut attrs, "low"),
                high: list(&mut attrs, "high"),
            },
            "reduce_sum" | "reduce_max" => Op::Reduce {
                op: if name == "reduce_sum" {
                    ReduceOp::Sum
                } else {
                    ReduceOp::Max
                },
                axes: list(&mut attrs, "axes"),
                keepdims: matches!(attrs.remove("keepdims"), Some(Attr::Bool(true))),
            },
            other => {
                if let Some(u) = UnaryOp::from_name(other) {
                    Op::Unary(u)
                } else if let Some(b) = BinaryOp::from_name(other) {
                    Op::Binary(b)
                } else if let Some(c) = CompareOp::from_name(other) {
                    Op::Compare(c)
                } else {
                    return Err(self.error_at(0, format!("unknown op `{other}`")));
                }
            }
        };
        Ok(op)
    }

    // ----- output and update lines -----

    /// `output "name" = %value`.
    fn parse_output(&mut self) -> Result<(), ParseError> {
        self.pos += 1;
        let at = self.here();
        let Some(Kind::Str(name)) = self.peek().cloned() else {
            return Err(self.expected("the output's name as a quoted string"));
        };
        self.pos += 1;
        if let Some(prev) = self.output_lines.get(&name) {
            let msg = format!("duplicate output \"{name}\" (first declared on line {prev})");
            return Err(self.error_at(at, msg));
        }
        self.expect_punct('=', "`=` after the output's name")?;
        let id = self.parse_value_ref()?;
        self.expect_end("the output")?;
        self.graph.set_output(&name, id);
        self.output_lines.insert(name, self.line + 1);
        Ok(())
    }

    /// `update "param" = %value`.
    fn parse_update(&mut self) -> Result<(), ParseError> {
        self.pos += 1;
        let at = self.here();
        let Some(Kind::Str(name)) = self.peek().cloned() else {
            return Err(self.expected("the updated parameter's name as a quoted string"));
        };
        self.pos += 1;
        let param = match self.graph.leaf(&name) {
            Some(p) if matches!(self.graph.op(p), Op::Parameter { .. }) => p,
            Some(_) => {
                let msg = format!("\"{name}\" is an input; only a parameter can be updated");
                return Err(self.error_at(at, msg));
            }
            None => return Err(self.error_at(at, format!("no parameter named \"{name}\""))),
        };
        if let Some(prev) = self.update_lines.get(&param) {
            let msg = format!("parameter \"{name}\" is already updated on line {prev}");
            return Err(self.error_at(at, msg));
        }
        self.expect_punct('=', "`=` after the parameter's name")?;
        let value_at = self.here();
        let value = self.parse_value_ref()?;
        self.expect_end("the update")?;
        self.graph
            .set_update(param, value)
            .map_err(|e| self.error_at(value_at, e.to_string()))?;
        self.update_lines.insert(param, self.line + 1);
        Ok(())
    }

    /// A defined value `%name`.
    fn parse_value_ref(&mut self) -> Result<NodeId, ParseError> {
        let at = self.here();
        let Some(Kind::Value(name)) = self.peek().cloned() else {
            return Err(self.expected("a value `%name`"));
        };
        self.pos += 1;
        match self.values.get(&name) {
            Some(def) => Ok(def.id),
            None => Err(self.error_at(at, format!("undefined value `%{name}`"))),
        }
    }
}

/// Removes list attribute `key`, or an empty list if absent (the caller checked presence).
fn list(attrs: &mut HashMap<&'static str, Attr>, key: &str) -> Dims {
    match attrs.remove(key) {
        Some(Attr::List(d)) => d,
        _ => Dims::new(),
    }
}
