//! Row-wise kernels against the interpreter at every row length around the vector width and
//! the reduction's accumulator count: a row reduction vectorized along its axis (several
//! accumulators, a one-vector loop, a scalar tail), and softmax, whose one kernel keeps the
//! `exp` values its sum computes (the row cache) for the division. Fused and unfused, on one
//! and two threads.

mod common;

use adjoint_ir::{Builder, DType};
use common::{check_graph, random_feeds};

/// Lengths with every remainder modulo 4 and 16, below one vector, below and above the
/// accumulators' step, and a long row.
const ROW_LENGTHS: [usize; 14] = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 64, 100];

#[test]
fn row_maxima_and_sums_of_every_length() {
    for n in ROW_LENGTHS {
        let b = Builder::new(&format!("row_reductions_{n}"));
        let x = b.input("x", DType::F32, [5, n]);
        b.output("max", x.max_keepdims(&[-1]));
        b.output("sum", x.sum_keepdims(&[-1]));
        // A reduction read back by the row's elements (hoisted, then broadcast).
        b.output("centered", x - x.max_keepdims(&[-1]));
        let g = b.finish();
        check_graph(&g, &random_feeds(&g, 3, 10));
    }
}

#[test]
fn softmax_of_every_row_length() {
    for n in ROW_LENGTHS {
        let b = Builder::new(&format!("softmax_{n}"));
        let x = b.input("x", DType::F32, [6, n]);
        b.output("p", x.softmax(-1));
        b.output("logp", (x * 3.0).log_softmax(-1));
        let g = b.finish();
        check_graph(&g, &random_feeds(&g, 5, 10));
    }
}

#[test]
fn causally_masked_softmax_as_attention_computes_it() {
    // W4's attention scores: scaled, masked to -inf above the diagonal, softmax along rows.
    let src = r#"graph "masked_softmax" {
  %x: f32[2,3,37,37] = input "x"
  %c: f32[] = constant 0.17677669
  %cb: f32[2,3,37,37] = broadcast %c shape=[2,3,37,37]
  %s: f32[2,3,37,37] = mul %x, %cb
  %i: i32[37,37] = iota axis=0
  %j: i32[37,37] = iota axis=1
  %keep: bool[37,37] = le %j, %i
  %keepb: bool[2,3,37,37] = broadcast %keep shape=[2,3,37,37]
  %ninf: f32[] = constant -inf
  %ninfb: f32[2,3,37,37] = broadcast %ninf shape=[2,3,37,37]
  %m: f32[2,3,37,37] = select %keepb, %s, %ninfb
  %mx: f32[2,3,37,1] = reduce_max %m axes=[3] keepdims=true
  %mxs: f32[2,3,37,1] = stop_gradient %mx
  %mxb: f32[2,3,37,37] = broadcast %mxs shape=[2,3,37,37]
  %d: f32[2,3,37,37] = sub %m, %mxb
  %e: f32[2,3,37,37] = exp %d
  %z: f32[2,3,37,1] = reduce_sum %e axes=[3] keepdims=true
  %zb: f32[2,3,37,37] = broadcast %z shape=[2,3,37,37]
  %p: f32[2,3,37,37] = div %e, %zb
  output "p" = %p
}"#;
    let g = adjoint_ir::text::parse(src).unwrap();
    check_graph(&g, &random_feeds(&g, 7, 10));
}

#[test]
fn a_softmax_row_longer_than_the_row_cache() {
    let n = adjoint_opt::schedule::ROW_CACHE_LEN + 3;
    let b = Builder::new("softmax_long");
    let x = b.input("x", DType::F32, [2, n]);
    b.output("p", x.softmax(-1));
    let g = b.finish();
    check_graph(&g, &random_feeds(&g, 9, 10));
}

#[test]
fn column_sums_over_leading_axes_of_every_width() {
    // A bias gradient: the kept axes have one iteration each, so the nest splits (and tiles)
    // its columns instead: widths around the column tile (16 vectors, 64 columns) and two.
    for n in [1, 3, 4, 15, 16, 17, 63, 64, 65, 100, 128, 129, 300] {
        let b = Builder::new(&format!("column_sums_{n}"));
        let x = b.input("x", DType::F32, [6, 40, n]);
        let y = b.input("y", DType::F32, [6, 40, n]);
        b.output("db", x.sum_keepdims(&[0, 1]));
        b.output("dg", (x * y).sum_keepdims(&[0, 1]));
        b.output("dmax", x.max_keepdims(&[0, 1]));
        let g = b.finish();
        check_graph(&g, &random_feeds(&g, 13, 10));
    }
}
