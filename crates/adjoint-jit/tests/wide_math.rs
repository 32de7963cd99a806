//! `exp` and `tanh` of long rows computed by the host routines a chunk at a time
//! (`Options::host_math`, `codegen/nest/wide.rs`), against the interpreter and, bit for bit,
//! against the inline code: row lengths around the chunk (256) and the vector widths, chains
//! of routines, a routine after a hoisted row reduction, and a one-dimensional nest split over
//! two threads inside its lane loop. The routines run on the selected ISA's vectors (run the
//! suite under `ADJOINT_ISA=avx2` for the 256-bit ones); under `generic` both runs are inline.

mod common;

use adjoint_ir::{Builder, DType, Graph};
use adjoint_jit::Options;
use common::{check_graph, random_feeds, run_jit};

/// Lengths at and around the shortest row sent to the routines (64), the chunk (256) and
/// two chunks, with every remainder modulo 4 and 16.
const ROW_LENGTHS: [usize; 12] = [63, 64, 65, 100, 255, 256, 257, 300, 511, 512, 513, 1001];

/// `exp`, `tanh`, GELU, a chain (`exp(tanh(x))`, two routines, the second reading the first's
/// results) and log-softmax of `[rows, n]`.
fn functions(rows: usize, n: usize) -> Graph {
    let b = Builder::new(&format!("wide_{rows}x{n}"));
    let x = b.input("x", DType::F32, [rows, n]);
    let y = x * 3.0 - 1.0;
    b.output("exp", y.exp());
    b.output("tanh", (x * 0.5 + 0.1).tanh());
    b.output("gelu", y.gelu());
    b.output("chain", y.tanh().exp() + y);
    b.output("logp", y.log_softmax(-1));
    b.finish()
}

/// Runs `g` with the routines and inline, and asserts that every output has the same bits.
fn same_bits_either_way(g: &Graph, threads: usize) {
    let feeds = random_feeds(g, 11, 10);
    let run = |host_math| {
        let opts = Options {
            threads,
            cache: false,
            host_math,
            ..Options::default()
        };
        run_jit(g, &feeds, &opts).1
    };
    let (wide, inline) = (run(true), run(false));
    for name in g.outputs().iter().map(|(n, _)| n) {
        let (a, b) = (wide.output(name).unwrap(), inline.output(name).unwrap());
        let (a, b) = (a.as_f32().unwrap(), b.as_f32().unwrap());
        for (i, (p, q)) in a.iter().zip(b).enumerate() {
            assert!(
                p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()),
                "{} {name}[{i}] on {threads} thread(s): {p:e} with the routines, {q:e} inline",
                g.name()
            );
        }
    }
}

#[test]
fn rows_of_every_length_match_the_interpreter_and_the_inline_bits() {
    for n in ROW_LENGTHS {
        let g = functions(3, n);
        check_graph(&g, &random_feeds(&g, 5, 10));
        for threads in [1, 2] {
            same_bits_either_way(&g, threads);
        }
    }
}

#[test]
fn a_long_vector_split_over_threads_inside_its_lane_loop() {
    // One loop of 70,001 elements: parallel (at least 65,536), so each thread's share starts
    // and ends where the split falls, not on a chunk boundary.
    let b = Builder::new("wide_vector");
    let x = b.input("x", DType::F32, [70_001]);
    b.output("tanh", (x * 2.0).tanh());
    b.output("exp", x.exp() * 0.5);
    let g = b.finish();
    check_graph(&g, &random_feeds(&g, 3, 10));
    same_bits_either_way(&g, 2);
}
