//! The lexer: one line of `.adj` text into tokens. The format is line-oriented, so tokens never
//! span lines; `#` starts a comment that runs to the end of the line.

use super::names::is_name_char;

/// What a token is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    /// `%name`, without the `%`.
    Value(String),
    /// A word: op names, dtypes, attribute names, `graph`, `output`, `true`, `inf`, ….
    Word(String),
    /// A number as written: `-`? then digits, letters, `_` and `.` (`12`, `-2.5e-3`, `-inf`).
    Number(String),
    /// A double-quoted string, escapes resolved.
    Str(String),
    /// One of `: = , [ ] { }`.
    Punct(char),
}

/// A token and the byte offset in its line where it starts.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub kind: Kind,
    pub start: usize,
}

/// A lexing error: byte offset in the line and message.
pub(crate) type LexError = (usize, String);

/// Splits one line into tokens.
pub(crate) fn lex_line(line: &str) -> Result<Vec<Token>, LexError> {
    let mut tokens = Vec::new();
    let mut chars = line.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        let kind = match c {
            '#' => break,
            c if c.is_whitespace() => {
                chars.next();
                continue;
            }
            ':' | '=' | ',' | '[' | ']' | '{' | '}' => {
                chars.next();
                Kind::Punct(c)
            }
            '%' => {
                chars.next();
                let name = take_while(line, &mut chars, is_name_char);
                if name.is_empty() {
                    return Err((
                        start,
                        "expected a value name after `%` (letters, digits, `_`, `.`)".into(),
                    ));
                }
                Kind::Value(name.to_string())
            }
            '"' => {
                chars.next();
                Kind::Str(string_body(&mut chars, start)?)
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                chars.next();
                let mut end = start + c.len_utf8();
                let mut prev = c;
                let numeric =
                    c.is_ascii_digit() || chars.peek().is_some_and(|&(_, d)| d.is_ascii_digit());
                while let Some(&(i, d)) = chars.peek() {
                    let exponent_sign =
                        numeric && (d == '-' || d == '+') && (prev == 'e' || prev == 'E');
                    if !(is_name_char(d) || exponent_sign) {
                        break;
                    }
                    chars.next();
                    end = i + d.len_utf8();
                    prev = d;
                }
                Kind::Number(line[start..end].to_string())
            }
            c if c.is_alphabetic() || c == '_' => Kind::Word(
                take_while(line, &mut chars, |d| is_name_char(d) || d.is_alphabetic()).to_string(),
            ),
            c => {
                return Err((
                    start,
                    format!("unexpected character `{}`", c.escape_debug()),
                ))
            }
        };
        tokens.push(Token { kind, start });
    }
    Ok(tokens)
}

type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

/// Consumes characters while `keep` holds and returns them as a slice of `line`.
fn take_while<'a>(line: &'a str, chars: &mut Chars<'_>, keep: impl Fn(char) -> bool) -> &'a str {
    let start = chars.peek().map_or(line.len(), |&(i, _)| i);
    let mut end = start;
    while let Some(&(i, c)) = chars.peek() {
        if !keep(c) {
            break;
        }
        chars.next();
        end = i + c.len_utf8();
    }
    line.get(start..end).unwrap_or("")
}

/// The rest of a string after its opening quote (at byte `open`), through the closing quote.
fn string_body(chars: &mut Chars<'_>, open: usize) -> Result<String, LexError> {
    let mut s = String::new();
    loop {
        let Some((i, c)) = chars.next() else {
            return Err((open, "unterminated string (missing closing `\"`)".into()));
        };
        match c {
            '"' => return Ok(s),
            '\\' => {
                let Some((_, e)) = chars.next() else {
                    return Err((i, "unterminated string (missing closing `\"`)".into()));
                };
                match e {
                    '"' => s.push('"'),
                    '\\' => s.push('\\'),
                    'n' => s.push('\n'),
                    't' => s.push('\t'),
                    'r' => s.push('\r'),
                    'u' => s.push(unicode_escape(chars, i)?),
                    e => {
                        return Err((
                            i,
                            format!(
                                "unknown escape `\\{}` (expected \\\", \\\\, \\n, \\t, \\r or \\u{{…}})",
                                e.escape_debug()
                            ),
                        ))
                    }
                }
            }
            c => s.push(c),
        }
    }
}

/// The `{hex}` part of a `\u{hex}` escape starting at byte `at`.
fn unicode_escape(chars: &mut Chars<'_>, at: usize) -> Result<char, LexError> {
    let bad = || {
        (
            at,
            "expected `\\u{` hex digits `}` (a Unicode scalar value)".to_string(),
        )
    };
    if chars.next().map(|(_, c)| c) != Some('{') {
        return Err(bad());
    }
    let mut value: u32 = 0;
    let mut digits = 0;
    loop {
        let Some((_, c)) = chars.next() else {
            return Err(bad());
        };
        if c == '}' {
            break;
        }
        let d = c.to_digit(16).ok_or_else(bad)?;
        digits += 1;
        if digits > 6 {
            return Err(bad());
        }
        value = value * 16 + d;
    }
    if digits == 0 {
        return Err(bad());
    }
    char::from_u32(value).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(line: &str) -> Vec<Kind> {
        lex_line(line)
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn a_node_line_lexes() {
        let k = kinds("%h.1: f32[2,3] = slice %x ranges=[0:2:1, 1:3:1] # note");
        assert_eq!(k[0], Kind::Value("h.1".into()));
        assert_eq!(k[1], Kind::Punct(':'));
        assert_eq!(k[2], Kind::Word("f32".into()));
        assert!(k.contains(&Kind::Number("0".into())));
        assert_eq!(k.last(), Some(&Kind::Punct(']')));
    }

    #[test]
    fn numbers_strings_and_errors() {
        assert_eq!(
            kinds("-2.5e-3, -inf 1e+5"),
            vec![
                Kind::Number("-2.5e-3".into()),
                Kind::Punct(','),
                Kind::Number("-inf".into()),
                Kind::Number("1e+5".into())
            ]
        );
        assert_eq!(
            kinds(r#""a\"b\\\u{41}""#),
            vec![Kind::Str("a\"b\\A".into())]
        );
        assert_eq!(lex_line("%x @").unwrap_err().0, 3);
        assert!(lex_line("\"open").is_err());
        assert!(lex_line("\"\\u{110000}\"").is_err());
        assert!(lex_line("% x").is_err());
    }
}
