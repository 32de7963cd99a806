//! Every kind of parse error names its line and column and says what was expected.

use adjoint_ir::text::parse;

/// The error for a graph whose third line is `line` (after `%x: f32[2,3]` and `%w: f32[3,2]`).
fn err_on_line_3(line: &str) -> String {
    let text = format!(
        "graph g {{\n  %x: f32[2,3] = input \"x\"\n{line}\n  %w: f32[3,2] = parameter \"w\"\n}}\n"
    );
    err(&text)
}

fn err(text: &str) -> String {
    match parse(text) {
        Ok(g) => panic!("parsed, expected an error:\n{text}\n{g:?}"),
        Err(e) => {
            assert!(e.line >= 1 && e.column >= 1);
            e.to_string()
        }
    }
}

#[test]
fn misspelled_op_suggests_the_right_one() {
    assert_eq!(
        err_on_line_3("  %y: f32[2,2] = matmull %x, %x"),
        "3:18: unknown op `matmull` (did you mean `matmul`?)"
    );
    assert_eq!(
        err_on_line_3("  %y: f32[2,3] = frobnicate %x"),
        "3:18: unknown op `frobnicate`"
    );
    assert_eq!(
        err_on_line_3("  %y: f32[2] = reduce_summ %x axes=[1] keepdims=false"),
        "3:16: unknown op `reduce_summ` (did you mean `reduce_sum`?)"
    );
}

#[test]
fn shape_rule_violations_name_the_op() {
    assert_eq!(
        err_on_line_3("  %y: f32[2,3] = matmul %x, %x"),
        "3:18: matmul: contraction dimensions differ: [2,3] has 3 columns, [2,3] has 2 rows"
    );
    assert_eq!(
        err_on_line_3("  %y: f32[3,3] = reshape %x shape=[3,3]"),
        "3:18: reshape: cannot reshape [2,3] (6 elements) to [3,3] (9 elements)"
    );
    assert_eq!(
        err_on_line_3("  %y: f32[2,3] = add %x"),
        "3:18: add: takes 2 operand(s), got 1"
    );
    assert_eq!(
        err_on_line_3("  %y: f32[2,3] = log %i"),
        "3:22: undefined value `%i`"
    );
}

#[test]
fn declared_type_must_match_the_computed_one() {
    assert_eq!(
        err_on_line_3("  %y: f32[3,2] = exp %x"),
        "3:7: declared type f32[3,2] but `exp` computes f32[2,3]"
    );
    assert_eq!(
        err_on_line_3("  %y: f64[2,3] = neg %x"),
        "3:7: declared type f64[2,3] but `neg` computes f32[2,3]"
    );
}

#[test]
fn undefined_and_duplicate_values() {
    assert_eq!(
        err_on_line_3("  %y: f32[2,3] = add %x, %nope"),
        "3:26: undefined value `%nope`"
    );
    assert_eq!(
        err_on_line_3("  %x: f32[2,3] = exp %x"),
        "3:3: duplicate name `%x` (first defined on line 2)"
    );
    assert_eq!(
        err_on_line_3("  %z: f32[1] = input \"x\""),
        "3:16: the name \"x\" is already taken by another input or parameter"
    );
    // A value is defined only after its line: no forward references.
    assert_eq!(
        err_on_line_3("  %y: f32[2,2] = matmul %x, %w"),
        "3:29: undefined value `%w`"
    );
}

#[test]
fn bad_types() {
    assert_eq!(
        err_on_line_3("  %y: f33[2,3] = exp %x"),
        "3:7: unknown dtype `f33` (expected f32, f64, bf16, f16, i32 or bool)"
    );
    assert_eq!(
        err_on_line_3("  %y: f32 = exp %x"),
        "3:11: expected a shape `[d, …]`, found `=`"
    );
    assert_eq!(
        err_on_line_3("  %y: f32[2,-3] = exp %x"),
        "3:13: expected a non-negative integer, found `-3`"
    );
    assert_eq!(
        err_on_line_3("  %y: f32[99999999999999999999] = exp %x"),
        "3:11: integer 99999999999999999999 is too large (at most 2^40)"
    );
    assert_eq!(
        err_on_line_3("  %y: f32[1099511627776,1099511627776] = exp %x"),
        "3:10: shape [1099511627776,1099511627776] has more than 2^40 elements"
    );
    assert_eq!(
        err_on_line_3("  %y: f32[1,1,1,1,1,1,1] = exp %x"),
        "3:10: list has more than 6 entries (the maximum rank)"
    );
    assert_eq!(
        err_on_line_3("  %y f32[2,3] = exp %x"),
        "3:6: expected `:` and the value's type after its name, found `f32`"
    );
}

#[test]
fn bad_attributes() {
    assert_eq!(
        err_on_line_3("  %y: f32[2] = reduce_sum %x axis=[1] keepdims=false"),
        "3:30: unknown attribute `axis` for `reduce_sum` (it takes `axes`, `keepdims`) \
         (did you mean `axes`?)"
    );
    assert_eq!(
        err_on_line_3("  %y: f32[2] = reduce_sum %x axes=[1]"),
        "3:38: `reduce_sum` needs attribute `keepdims`"
    );
    assert_eq!(
        err_on_line_3("  %y: f32[2] = reduce_sum %x axes=[1] keepdims=maybe"),
        "3:48: expected `true` or `false`, found `maybe`"
    );
    assert_eq!(
        err_on_line_3("  %y: f32[2] = reduce_sum %x axes=[1] axes=[1] keepdims=true"),
        "3:39: attribute `axes` given twice"
    );
    assert_eq!(
        err_on_line_3("  %y: f32[2,3] = exp %x fast=true"),
        "3:25: `exp` takes no attributes, found `fast`"
    );
    assert_eq!(
        err_on_line_3("  %y: f32[2,3] = cast %x to=f8"),
        "3:29: unknown dtype `f8` (expected f32, f64, bf16, f16, i32 or bool)"
    );
    assert_eq!(
        err_on_line_3("  %y: f32[2,3] = slice %x ranges=[0:2, 0:3:1]"),
        "3:38: expected `:` in `start:stop:step`, found `,`"
    );
    assert_eq!(
        err_on_line_3("  %y: f32[2,3] = slice %x ranges=[0:2:0, 0:3:1]"),
        "3:18: slice: range 0:2:0 is not valid for axis 0 of size 2"
    );
    assert_eq!(
        err_on_line_3("  %y: f32[2,3] = permute %x perm=[0,0]"),
        "3:18: permute: [0, 0] is not a permutation of the axes of [2,3]"
    );
}

#[test]
fn bad_operand_lists_and_trailing_garbage() {
    assert_eq!(
        err_on_line_3("  %y: f32[2,3] = add %x %x"),
        "3:25: expected `,` or end of line after operand (or an attribute `key=value`), found `%x`"
    );
    assert_eq!(
        err_on_line_3("  %y: f32[2,3] = add %x, 3"),
        "3:26: expected an operand `%name`, found `3`"
    );
    assert_eq!(
        err_on_line_3("  %y: f32[2,3] = input \"y\" extra"),
        "3:28: expected end of line after the node, found `extra`"
    );
    assert_eq!(
        err_on_line_3("  output \"y\" = %x %x"),
        "3:19: expected end of line after the output, found `%x`"
    );
    assert_eq!(
        err_on_line_3("  %y: f32[2,3] = exp %x @"),
        "3:25: unexpected character `@`"
    );
    assert_eq!(
        err("graph g {\n}\n}\n"),
        "3:1: unexpected text after the closing `}`"
    );
    assert_eq!(
        err("graph g {\n} trailing\n"),
        "2:3: expected end of line after `}`, found `trailing`"
    );
}

#[test]
fn constants() {
    assert_eq!(
        err_on_line_3("  %c: f32[3] = constant [1, 2]"),
        "3:25: type f32[3] needs 3 value(s), found 2"
    );
    assert_eq!(
        err_on_line_3("  %c: f32[2] = constant [1, 2, 3]"),
        "3:32: type f32[2] needs 2 value(s), found more"
    );
    assert_eq!(
        err_on_line_3("  %c: i32[] = constant 1.5"),
        "3:24: expected an i32 value (an integer), found `1.5`"
    );
    assert_eq!(
        err_on_line_3("  %c: i32[] = constant 3000000000"),
        "3:24: `3000000000` does not fit in i32"
    );
    assert_eq!(
        err_on_line_3("  %c: f32[] = constant 1.2.3"),
        "3:24: expected a f32 value (like `1`, `-2.5`, `1e-3`, `inf`, `nan`), found `1.2.3`"
    );
    assert_eq!(
        err_on_line_3("  %c: bool[] = constant 1"),
        "3:25: expected a bool value (`true` or `false`), found `1`"
    );
    assert_eq!(
        err_on_line_3("  %c: f32[2] = constant 1"),
        "3:25: expected `[` and 2 value(s) of type f32[2], found `1`"
    );
}

#[test]
fn outputs_and_updates() {
    assert_eq!(
        err("graph g {\n  %x: f32[2] = input \"x\"\n  output \"o\" = %x\n  output \"o\" = %x\n}\n"),
        "4:10: duplicate output \"o\" (first declared on line 3)"
    );
    assert_eq!(
        err("graph g {\n  %x: f32[2] = input \"x\"\n  update \"x\" = %x\n}\n"),
        "3:10: \"x\" is an input; only a parameter can be updated"
    );
    assert_eq!(
        err("graph g {\n  %w: f32[2] = parameter \"w\"\n  %c: f32[] = constant 1\n  update \"w\" = %c\n}\n"),
        "4:16: update of type f32[] does not match parameter type f32[2]"
    );
    assert_eq!(
        err("graph g {\n  update \"w\" = %c\n}\n"),
        "2:10: no parameter named \"w\""
    );
    assert_eq!(
        err("graph g {\n  output o = %c\n}\n"),
        "2:10: expected the output's name as a quoted string, found `o`"
    );
}

#[test]
fn file_structure() {
    assert_eq!(
        err("graph g {\n  %x: f32[2] = input \"x\"\n"),
        "3:1: missing `}` at the end of graph `g`"
    );
    assert_eq!(
        err("graph g {\n  %x: f32[2] = input \"x\""),
        "2:25: missing `}` at the end of graph `g`"
    );
    assert_eq!(err(""), "1:1: expected `graph NAME {`, found an empty text");
    assert_eq!(
        err("  # only a comment\n\n"),
        "1:1: expected `graph NAME {`, found an empty text"
    );
    assert_eq!(
        err("grph g {\n}\n"),
        "1:1: expected `graph NAME {`, found `grph`"
    );
    assert_eq!(
        err("graph {\n}\n"),
        "1:7: expected the graph's name (a word or a quoted string), found `{`"
    );
    assert_eq!(
        err("graph g\n}\n"),
        "1:8: expected `{` after the graph's name, found end of line"
    );
    assert_eq!(
        err("graph g {\n  exp %x\n}\n"),
        "2:3: expected a node (`%name: type = op …`), `output`, `update` or the closing `}`, found `exp`"
    );
    assert_eq!(
        err("graph \"open {\n}\n"),
        "1:7: unterminated string (missing closing `\"`)"
    );
    assert_eq!(
        err("graph \"a\\qb\" {\n}\n"),
        "1:9: unknown escape `\\q` (expected \\\", \\\\, \\n, \\t, \\r or \\u{…})"
    );
    // Columns count characters, not bytes.
    assert_eq!(
        err("graph \"größe\" { x\n}\n"),
        "1:17: expected end of line after `{`, found `x`"
    );
    assert_eq!(
        err("graph g {\n  %y: f32[2] = exp %ü\n}\n"),
        "2:20: expected a value name after `%` (letters, digits, `_`, `.`)"
    );
}
