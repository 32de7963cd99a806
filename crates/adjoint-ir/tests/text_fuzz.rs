//! `parse` never panics: thousands of mutated printed graphs and random strings each give `Ok`
//! or `Err`. Whatever parses must verify and print to a fixed point.

use adjoint_ir::random_graph::random_graph;
use adjoint_ir::text::{parse, print};
use adjoint_ir::Rng;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Snippets that are likely to reach deep into the parser when inserted.
const SNIPPETS: [&str; 40] = [
    "%",
    "%x0",
    "%0",
    "[",
    "]",
    ",",
    "=",
    ":",
    "\"",
    "\\",
    "\\u{",
    "}",
    "{",
    "#",
    "\n",
    " ",
    "99999999999999999999",
    "1099511627776",
    "18446744073709551615",
    "-",
    "-1",
    "0",
    "1e999",
    "nan",
    "-inf",
    "f32",
    "i32[3]",
    "bool",
    "matmul",
    "concat",
    "axes=[",
    "keepdims=",
    "shape=[",
    "ranges=[0:1:0",
    "perm=[",
    "output \"",
    "update \"",
    "constant [",
    "ü",
    "\r",
];

/// Parses `text`; a panic fails the test with the input shown. Parsed graphs must verify and
/// print stably.
fn check(text: &str) -> bool {
    let result = catch_unwind(AssertUnwindSafe(|| parse(text)));
    let parsed = match result {
        Ok(r) => r,
        Err(_) => panic!("parse panicked on input:\n{text:?}"),
    };
    match parsed {
        Ok(g) => {
            g.verify()
                .unwrap_or_else(|e| panic!("parsed graph does not verify: {e}\n{text:?}"));
            let printed = print(&g);
            let again = parse(&printed)
                .unwrap_or_else(|e| panic!("printed graph does not parse: {e}\n{printed}"));
            assert_eq!(print(&again), printed, "from {text:?}");
            true
        }
        Err(e) => {
            assert!(e.line >= 1 && e.column >= 1 && !e.message.is_empty());
            false
        }
    }
}

/// One random edit of `text`.
fn mutate(text: &str, rng: &mut Rng) -> String {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len().max(1);
    let at = rng.below(n as u64) as usize;
    let mut out: Vec<char> = chars.clone();
    match rng.below(8) {
        0 => {
            // Replace a character by a random printable or special one.
            if at < out.len() {
                out[at] = match rng.below(4) {
                    0 => char::from(rng.below(128) as u8),
                    1 => ['%', '"', '[', ']', ',', ':', '=', '\n'][rng.below(8) as usize],
                    2 => char::from(b'0' + rng.below(10) as u8),
                    _ => char::from(b'a' + rng.below(26) as u8),
                };
            }
        }
        1 => {
            // Delete a run.
            let len = 1 + rng.below(12) as usize;
            let end = (at + len).min(out.len());
            out.drain(at.min(end)..end);
        }
        2 => {
            // Insert a snippet.
            let s = SNIPPETS[rng.below(SNIPPETS.len() as u64) as usize];
            let at = at.min(out.len());
            out.splice(at..at, s.chars());
        }
        3 => {
            // Truncate.
            out.truncate(at);
        }
        4 | 5 => {
            // Duplicate, drop or swap whole lines.
            let mut lines: Vec<&str> = text.lines().collect();
            if lines.len() > 1 {
                let i = rng.below(lines.len() as u64) as usize;
                let j = rng.below(lines.len() as u64) as usize;
                match rng.below(3) {
                    0 => lines.insert(j, lines[i]),
                    1 => {
                        lines.remove(i);
                    }
                    _ => lines.swap(i, j),
                }
            }
            return lines.join("\n") + "\n";
        }
        6 => {
            // Change a number into a huge or odd one.
            if let Some(pos) = chars.iter().skip(at).position(|c| c.is_ascii_digit()) {
                let p = at + pos;
                let s = ["99999999999999999999", "0", "7", "1e40", "-0", "4294967296"]
                    [rng.below(6) as usize];
                out.splice(p..p + 1, s.chars());
            }
        }
        _ => {
            // Replace a word (op name, attribute) by another.
            let words = [
                "add",
                "matmul",
                "slice",
                "pad",
                "gather",
                "scatter_add",
                "concat",
                "reduce_max",
                "iota",
                "constant",
                "input",
                "parameter",
                "cast",
                "select",
                "axis",
                "size",
                "shape",
                "true",
                "f64",
                "i32",
            ];
            let w = words[rng.below(words.len() as u64) as usize];
            if let Some(start) = (at..out.len()).find(|&i| out[i].is_ascii_lowercase()) {
                let end = (start..out.len())
                    .find(|&i| !(out[i].is_ascii_alphanumeric() || out[i] == '_'))
                    .unwrap_or(out.len());
                out.splice(start..end, w.chars());
            }
        }
    }
    out.into_iter().collect()
}

#[test]
fn mutated_graphs_never_panic() {
    let mut rng = Rng::new(0xF022);
    let mut parsed = 0;
    let mut total = 0;
    for seed in 0..120 {
        let text = print(&random_graph(seed, 12 + (seed as usize % 25)));
        for _ in 0..80 {
            let mut m = mutate(&text, &mut rng);
            for _ in 0..rng.below(3) {
                m = mutate(&m, &mut rng);
            }
            total += 1;
            if check(&m) {
                parsed += 1;
            }
        }
    }
    // Some mutations keep the text valid (a swapped output line, a digit in a name); most do not.
    eprintln!("{parsed} of {total} mutated texts parsed");
    assert!(parsed > 0 && parsed < total, "{parsed} of {total} parsed");
}

#[test]
fn random_strings_never_panic() {
    let mut rng = Rng::new(7);
    let alphabet: Vec<char> = "%:=,[]{}\"\\#-.0123456789abcdefgimnprstuxz_ \n\tü"
        .chars()
        .collect();
    for _ in 0..3000 {
        let len = rng.below(80) as usize;
        let body: String = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
            .collect();
        // Half of them get a valid header so the node-line parser sees them.
        let text = if rng.below(2) == 0 {
            format!("graph g {{\n{body}\n}}\n")
        } else {
            body
        };
        check(&text);
    }
}

#[test]
fn random_token_soups_never_panic() {
    let mut rng = Rng::new(11);
    for _ in 0..3000 {
        let mut line = String::from("  ");
        for _ in 0..rng.below(12) {
            line += SNIPPETS[rng.below(SNIPPETS.len() as u64) as usize];
            if rng.below(2) == 0 {
                line.push(' ');
            }
        }
        let text = format!("graph g {{\n  %x0: f32[2,3] = input \"x0\"\n{line}\n}}\n");
        check(&text);
    }
}

#[test]
fn hostile_but_valid_sizes_are_errors_not_crashes() {
    // Shapes at the element cap, attributes at the integer cap: arithmetic must not overflow.
    let texts = [
        "graph g {\n  %x: f32[1099511627776] = input \"x\"\n  %y: f32[1099511627776,1] = reshape %x shape=[1099511627776,1]\n}\n",
        "graph g {\n  %x: f32[1099511627776] = input \"x\"\n  %y: f32[3298534883328] = pad %x low=[1099511627776] high=[1099511627776]\n}\n",
        "graph g {\n  %x: f32[1099511627776] = input \"x\"\n  %y: f32[2] = concat %x, %x, %x, %x axis=0\n}\n",
        "graph g {\n  %x: f32[1099511627776] = input \"x\"\n  %i: i32[2] = input \"i\"\n  %y: f32[2] = scatter_add %x, %i axis=1099511627776 size=1099511627776\n}\n",
        "graph g {\n  %x: f32[4] = input \"x\"\n  %y: f32[2] = slice %x ranges=[1099511627776:0:1099511627776]\n}\n",
        "graph g {\n  %x: f32[1099511627776] = input \"x\"\n  %y: f32[1099511627776] = broadcast %x shape=[1099511627776]\n}\n",
        "graph g {\n  %x: f32[1099511627776] = constant [1]\n}\n",
        "graph g {\n  %x: f32[2,3] = input \"x\"\n  %y: f32[2,3] = permute %x perm=[5,5]\n}\n",
        "graph g {\n  %x: f32[2,3] = input \"x\"\n  %y: f32[2,3] = reduce_sum %x axes=[1099511627776] keepdims=true\n}\n",
        "graph g {\n  %x: f32[2,3] = input \"x\"\n  %i: i32[] = input \"i\"\n  %y: f32[2,3] = gather %x, %i axis=1099511627776\n}\n",
        "graph g {\n  %y: f32[0,1099511627776] = iota axis=1099511627776\n}\n",
    ];
    for text in texts {
        check(text);
    }
    // The pad one is actually valid: 2^40 + 2^41 elements is over the cap, so its type fails.
    assert!(parse(texts[1]).is_err());
    // A broadcast to the same huge shape is fine: no buffers are made.
    assert!(parse(texts[5]).is_ok());
}
