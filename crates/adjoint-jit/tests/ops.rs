//! Every primitive op, compiled and compared with the interpreter, in f32 and f64 (and i32
//! where the op takes it), fused and unfused, on one and two threads.

mod common;

use adjoint_ir::{BinaryOp, Builder, DType, Feeds, HostTensor, SliceRange, UnaryOp};
use common::{check_graph, random_feeds};

/// Shapes whose inner axis exercises the vector body, the unrolled body and the scalar tail.
const SHAPE: [usize; 2] = [3, 11];

#[test]
fn unary_ops() {
    for d in [DType::F32, DType::F64] {
        for op in UnaryOp::ALL {
            let b = Builder::new(&format!("unary_{}_{d}", op.name()));
            let x = b.input("x", d, SHAPE);
            // Keep log and sqrt in their domain; recip away from 0.
            let x = match op {
                UnaryOp::Log | UnaryOp::Sqrt => x.abs() + 0.1,
                UnaryOp::Recip => x.abs() + 0.5,
                _ => x * 3.0,
            };
            b.output("y", x.try_unary(op).unwrap());
            let g = b.finish();
            check_graph(&g, &random_feeds(&g, 1, 10));
        }
    }
    for op in [UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Sign] {
        let b = Builder::new(&format!("unary_{}_i32", op.name()));
        let x = b.input("x", DType::I32, SHAPE);
        b.output("y", (x - b.scalar(DType::I32, 5.0)).try_unary(op).unwrap());
        let g = b.finish();
        check_graph(&g, &random_feeds(&g, 2, 10));
    }
}

#[test]
fn binary_ops() {
    for d in [DType::F32, DType::F64, DType::I32] {
        for op in BinaryOp::ALL {
            if d == DType::I32 && !op.allows_int() {
                continue;
            }
            let b = Builder::new(&format!("binary_{}_{d}", op.name()));
            let x = b.input("x", d, SHAPE);
            let y = b.input("y", d, SHAPE);
            let (x, y) = match op {
                BinaryOp::Pow => (x.abs() + 0.5, y),
                BinaryOp::Div => (x, y.abs() + 0.5),
                _ => (x, y),
            };
            b.output("z", x.try_binary(op, y).unwrap());
            // Broadcast operands (a row and a column) and a scalar constant operand.
            let row = b.input("row", d, [SHAPE[1]]);
            let col = b.input("col", d, [SHAPE[0], 1]);
            let (row, col) = match op {
                BinaryOp::Pow | BinaryOp::Div => (row.abs() + 0.5, col.abs() + 0.5),
                _ => (row, col),
            };
            b.output("bc", row.try_binary(op, col).unwrap());
            b.output("c", x.try_binary(op, b.scalar(d, 2.0)).unwrap());
            let g = b.finish();
            check_graph(&g, &random_feeds(&g, 3, 100));
        }
    }
}

#[test]
fn max_and_relu_propagate_nan() {
    for d in [DType::F32, DType::F64] {
        let b = Builder::new("nan");
        let x = b.input("x", d, [6]);
        let y = b.input("y", d, [6]);
        b.output("relu", x.relu());
        b.output("max", x.maximum(y));
        b.output("min", x.minimum(y));
        b.output("reduce_max", x.max(&[0]));
        let g = b.finish();
        let v = [f64::NAN, -1.0, 2.0, -0.0, f64::INFINITY, 3.0];
        let w = [1.0, f64::NAN, 0.5, 4.0, -2.0, f64::NEG_INFINITY];
        let mut feeds = Feeds::new();
        feeds.insert("x".into(), HostTensor::from_f64_as(d, [6], &v).unwrap());
        feeds.insert("y".into(), HostTensor::from_f64_as(d, [6], &w).unwrap());
        check_graph(&g, &feeds);
        let (_, out) = common::run_jit(&g, &feeds, &common::modes()[0]);
        let relu = out.output("relu").unwrap().to_f64_vec();
        assert!(relu[0].is_nan());
        assert_eq!(&relu[1..], &[0.0, 2.0, 0.0, f64::INFINITY, 3.0]);
        assert!(out.output("reduce_max").unwrap().to_f64_vec()[0].is_nan());
    }
}

#[test]
fn compare_select_cast() {
    for d in [DType::F32, DType::F64, DType::I32] {
        let b = Builder::new(&format!("compare_{d}"));
        let x = b.input("x", d, SHAPE);
        let y = b.input("y", d, SHAPE);
        for (name, c) in [
            ("lt", x.lt(y)),
            ("le", x.le(y)),
            ("eq", x.eq(y)),
            ("ne", x.ne(y)),
            ("gt", x.gt(y)),
        ] {
            b.output(name, c);
            b.output(&format!("{name}_as_{d}"), c.cast(d));
        }
        b.output("sel", x.lt(y).select(x, y * 2.0));
        // A bool tensor read from memory: four lanes at a time in the vector body.
        let m = b.input("m", DType::Bool, SHAPE);
        b.output("sel_fed", m.select(x, y));
        b.output("eqb", x.lt(y).eq(y.lt(x)));
        for to in DType::ALL {
            if to != d {
                b.output(&format!("cast_{to}"), (x * 3.0).cast(to));
            }
        }
        let g = b.finish();
        check_graph(&g, &random_feeds(&g, 4, 3));
    }
    // Float to int saturates and maps NaN to 0.
    let b = Builder::new("saturate");
    let x = b.input("x", DType::F32, [5]);
    b.output("i", x.cast(DType::I32));
    let g = b.finish();
    let mut feeds = Feeds::new();
    let v = vec![f32::NAN, 3e9, -3e9, -2.7, 2.7];
    feeds.insert("x".into(), HostTensor::from_f32([5], v).unwrap());
    check_graph(&g, &feeds);
    let (_, out) = common::run_jit(&g, &feeds, &common::modes()[0]);
    assert_eq!(
        out.output("i").unwrap().as_i32().unwrap(),
        &[0, i32::MAX, i32::MIN, -2, 2]
    );
}

#[test]
fn leaves_constants_and_iota() {
    for d in [DType::F32, DType::F64, DType::I32] {
        let b = Builder::new(&format!("leaves_{d}"));
        let x = b.input("x", d, [2, 3]);
        let c = b.constant(d, [2, 3], &[1.0, -2.0, 3.0, 4.0, 5.5, -6.0]);
        b.output("c", x + c);
        b.output("iota0", b.iota(d, [2, 3], 0) + x);
        b.output("iota1", b.iota(d, [2, 3], 1));
        b.output("full", b.full(d, [2, 3], 7.0));
        let g = b.finish();
        check_graph(&g, &random_feeds(&g, 5, 10));
    }
}

#[test]
fn movement_ops() {
    for d in [DType::F32, DType::F64, DType::I32, DType::Bool] {
        let b = Builder::new(&format!("movement_{d}"));
        let x = b.input("x", d, [2, 3, 5]);
        b.output("perm", x.permute(&[2, 0, 1]));
        b.output("transpose", x.transpose(-1, -2));
        b.output("reshape", x.reshape([6, 5]));
        b.output("reshape_of_perm", x.permute(&[1, 0, 2]).reshape([3, 10]));
        b.output(
            "reshape_odd",
            x.reshape([5, 6]).permute(&[1, 0]).reshape([10, 3]),
        );
        b.output("bcast", x.reshape([2, 1, 3, 5]).broadcast_to([2, 4, 3, 5]));
        b.output("slice", x.slice(2, 1, 5, 2));
        let ranges = [
            SliceRange {
                start: 1,
                stop: 2,
                step: 1,
            },
            SliceRange {
                start: 0,
                stop: 3,
                step: 2,
            },
            SliceRange {
                start: 4,
                stop: 5,
                step: 1,
            },
        ];
        b.output("slice_all", x.slice_ranges(&ranges));
        b.output("pad", x.pad(&[0, 1, 2], &[1, 0, 3]));
        b.output("pad_slice", x.pad(&[1, 0, 1], &[0, 2, 0]).slice(1, 1, 5, 3));
        let y = b.input("y", d, [2, 1, 5]);
        b.output("concat", b.concat(&[x, y, x], 1));
        b.output("concat0", b.concat(&[x, x], 0));
        let g = b.finish();
        check_graph(&g, &random_feeds(&g, 6, 10));
    }
}

#[test]
fn reductions() {
    for d in [DType::F32, DType::F64, DType::I32] {
        let b = Builder::new(&format!("reduce_{d}"));
        let x = b.input("x", d, [3, 4, 9]);
        b.output("sum_last", x.sum(&[-1]));
        b.output("sum_first", x.sum(&[0]));
        b.output("sum_mid_keep", x.sum_keepdims(&[1]));
        b.output("sum_all", x.sum_all());
        b.output("sum_outer2", x.sum(&[0, 2]));
        b.output("max_last", x.max(&[-1]));
        b.output("max_first_keep", x.max_keepdims(&[0]));
        b.output("max_all", x.max(&[0, 1, 2]));
        b.output("sum_none", x.sum(&[]));
        let g = b.finish();
        check_graph(&g, &random_feeds(&g, 7, 50));
    }
    // Empty reductions give the identity.
    let b = Builder::new("reduce_empty");
    let x = b.input("x", DType::F32, [0, 3]);
    b.output("sum", x.sum(&[0]));
    b.output("max", x.max(&[0]));
    let g = b.finish();
    check_graph(&g, &random_feeds(&g, 8, 1));
}

#[test]
fn matmul_layouts() {
    for d in [DType::F32, DType::F64, DType::I32] {
        let b = Builder::new(&format!("matmul_{d}"));
        let (m, k, n) = (13, 7, 19);
        let a = b.input("a", d, [m, k]);
        let bb = b.input("b", d, [k, n]);
        let at = b.input("at", d, [k, m]);
        let bt = b.input("bt", d, [n, k]);
        b.output("ab", a.matmul(bb));
        b.output("atb", at.transpose(0, 1).matmul(bb));
        b.output("abt", a.matmul(bt.transpose(0, 1)));
        let ba = b.input("ba", d, [2, 3, m, k]);
        let bbm = b.input("bb", d, [2, 3, k, n]);
        b.output("batched", ba.matmul(bbm));
        b.output(
            "batched_bt",
            ba.matmul(bbm.transpose(-1, -2).transpose(-1, -2)),
        );
        let bias = b.input("bias", d, [n]);
        b.output("epilogue", (a.matmul(bb) + bias).relu());
        let g = b.finish();
        check_graph(&g, &random_feeds(&g, 9, 5));
    }
}

#[test]
fn gather_and_scatter_add() {
    for d in [DType::F32, DType::F64, DType::I32] {
        let b = Builder::new(&format!("gather_{d}"));
        let table = b.input("table", d, [5, 6]);
        // Indices include out-of-range values (-1 and 5..7): gathers read 0, scatters drop.
        let idx = b.input("idx", DType::I32, [3, 4]);
        let idx = idx - b.scalar(DType::I32, 1.0);
        b.output("rows", table.gather(idx, 0));
        b.output("cols", table.gather(idx, 1));
        let upd = b.input("upd", d, [3, 4, 6]);
        b.output("scatter", upd.scatter_add(idx, 0, 5));
        let upd1 = b.input("upd1", d, [5, 3, 4]);
        b.output("scatter1", upd1.scatter_add(idx, 1, 6));
        // Rows long enough for the unrolled vector body, the vector body and the tail: a
        // scatter-add of whole rows adds a vector at a time (repeated indices in order).
        let upd2 = b.input("upd2", d, [3, 4, 29]);
        b.output("scatter_rows", upd2.scatter_add(idx, 0, 5));
        let g = b.finish();
        check_graph(&g, &random_feeds(&g, 10, 8));
    }
}

/// Attention's head split and merge (reshape + permute, and back), with odd sizes too: the
/// nests that move the values address them by strides, with no division or remainder left in
/// the kernel IR, and agree with the interpreter. (An innermost axis is split only into parts
/// of at least 8, which these sizes allow.)
#[test]
fn head_split_and_merge_address_by_strides() {
    for (batch, seq, heads, dim) in [(2, 16, 4, 8), (3, 8, 2, 12)] {
        let b = Builder::new(&format!("heads_{batch}x{seq}x{heads}x{dim}"));
        let x = b.input("x", DType::F32, [batch * seq, heads * dim]);
        let split = x
            .reshape([batch, seq, heads, dim])
            .permute(&[0, 2, 1, 3])
            .exp();
        let merged = split
            .permute(&[0, 2, 1, 3])
            .reshape([batch * seq, heads * dim]);
        b.output("merged", merged * 2.0);
        b.output(
            "transposed",
            split
                .permute(&[1, 3, 0, 2])
                .reshape([heads * dim, batch * seq]),
        );
        let g = b.finish();
        let feeds = random_feeds(&g, 7, 10);
        check_graph(&g, &feeds);
        let step = adjoint_jit::compile(&g, &adjoint_jit::Options::default()).unwrap();
        let ir = step.program().to_string();
        assert!(
            !ir.contains(")/") && !ir.contains(")%"),
            "a division or remainder is left:\n{ir}"
        );
    }
}
