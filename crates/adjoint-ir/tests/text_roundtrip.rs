//! The text format round-trips: `print(parse(print(g))) == print(g)` for random graphs, every op
//! and attribute reads back as written, floats keep their bits, and a golden dump stays stable.

use adjoint_ir::random_graph::random_graph;
use adjoint_ir::text::{parse, print};
use adjoint_ir::{Builder, DType, Graph, Op, SliceRange};
use proptest::prelude::*;
use std::collections::BTreeSet;

/// Parses `text`, checks that it verifies and prints back to exactly `text`.
fn assert_fixed_point(text: &str) -> Graph {
    let g = parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    g.verify().unwrap();
    assert_eq!(print(&g), text);
    g
}

/// Every op and every attribute, written as the printer writes them.
const EVERY_OP: &str = r#"graph every_op {
  %x: f32[2,3] = input "x"
  %w: f32[3,4] = parameter "w"
  %idx: i32[5] = input "idx"
  %0: f32[2,3] = neg %x
  %1: f32[2,3] = exp %0
  %2: f32[2,3] = log %1
  %3: f32[2,3] = sqrt %2
  %4: f32[2,3] = recip %3
  %5: f32[2,3] = tanh %4
  %6: f32[2,3] = sin %5
  %7: f32[2,3] = cos %6
  %8: f32[2,3] = abs %7
  %9: f32[2,3] = sign %8
  %10: f32[2,3] = add %x, %9
  %11: f32[2,3] = sub %10, %x
  %12: f32[2,3] = mul %11, %x
  %13: f32[2,3] = div %12, %x
  %14: f32[2,3] = pow %13, %x
  %15: f32[2,3] = max %14, %x
  %16: f32[2,3] = min %15, %x
  %17: bool[2,3] = lt %16, %x
  %18: bool[2,3] = le %16, %x
  %19: bool[2,3] = eq %17, %18
  %20: bool[2,3] = ne %16, %x
  %21: f32[2,3] = select %19, %x, %16
  %22: f64[2,3] = cast %21 to=f64
  %23: i32[2,3] = cast %22 to=i32
  %24: i32[2,3] = neg %23
  %25: f32[4,2,3] = broadcast %x shape=[4,2,3]
  %26: f32[3,2] = reshape %x shape=[3,2]
  %27: f32[3,2] = permute %x perm=[1,0]
  %28: f32[1,2] = slice %x ranges=[1:2:1, 0:3:2]
  %29: f32[3,6] = pad %x low=[0,1] high=[1,2]
  %30: f32[4,3] = concat %x, %x axis=0
  %31: f32[2,6] = concat %x, %x axis=1
  %32: f32[2] = reduce_sum %x axes=[1] keepdims=false
  %33: f32[2,1] = reduce_max %x axes=[1] keepdims=true
  %34: f32[] = reduce_sum %x axes=[0,1] keepdims=false
  %35: f32[2,3] = reduce_max %x axes=[] keepdims=false
  %36: f32[2,4] = matmul %x, %w
  %37: f32[4,3,4] = broadcast %w shape=[4,3,4]
  %38: f32[4,2,4] = matmul %25, %37
  %39: f32[5,3] = gather %x, %idx axis=0
  %40: f32[2,5] = gather %x, %idx axis=1
  %41: f32[7,3] = scatter_add %39, %idx axis=0 size=7
  %42: i32[2,3] = iota axis=1
  %43: f64[4] = iota axis=0
  %44: f32[] = constant 0
  %45: f32[3] = constant [1, 2.5, -0]
  %46: f64[2,2] = constant [0.1, 0.30000000000000004, 1e-300, -1.7976931348623157e308]
  %47: f32[4] = constant [inf, -inf, nan, 3.4028235e38]
  %48: i32[2] = constant [-2147483648, 7]
  %49: bool[2] = constant [true, false]
  %50: f32[0] = constant []
  %51: f32[2,0] = slice %x ranges=[0:2:1, 3:3:1]
  %52: f32[7,3] = all_reduce_sum %41 replicas=4
  %53: f64[4] = all_reduce_mean %43 replicas=1
  %54: f32[3] = stop_gradient %45
  output "loss" = %34
  output "scatter" = %41
  update "w" = %w
}
"#;

#[test]
fn every_op_and_attribute_reads_back_as_written() {
    let g = assert_fixed_point(EVERY_OP);
    // Spot-check that attributes landed in the ops, not just in the text.
    let find = |n: &str| g.find(n).unwrap_or_else(|| panic!("no node {n}"));
    assert_eq!(g.len(), 58);
    let slice = g
        .node_ids()
        .find(|&id| matches!(g.op(id), Op::Slice { .. }))
        .unwrap();
    let Op::Slice { ranges } = g.op(slice) else {
        unreachable!()
    };
    assert_eq!(
        ranges[1],
        SliceRange {
            start: 0,
            stop: 3,
            step: 2
        }
    );
    assert_eq!(g.ty(find("loss")).to_string(), "f32[]");
    assert_eq!(g.ty(find("scatter")).to_string(), "f32[7,3]");
    assert_eq!(g.updates().len(), 1);
    let all_reduce = g
        .node_ids()
        .find(|&id| matches!(g.op(id), Op::AllReduce { replicas: 4, .. }))
        .unwrap();
    assert_eq!(g.op(all_reduce).name(), "all_reduce_sum");
    // Every op name of the IR occurs.
    let names: BTreeSet<&str> = g.node_ids().map(|id| g.op(id).name()).collect();
    let all: BTreeSet<&str> = Op::all_names().collect();
    assert_eq!(all.len(), Op::NAME_COUNT);
    assert_eq!(names, all);
}

#[test]
fn floats_keep_their_bits() {
    let g = parse(EVERY_OP).unwrap();
    let lits: Vec<_> = g
        .node_ids()
        .filter_map(|id| match g.op(id) {
            Op::Constant(l) => Some(l.clone()),
            _ => None,
        })
        .collect();
    let bits = |vs: &[f64]| vs.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let f32s = lits.iter().find(|l| l.values().len() == 3).unwrap();
    assert_eq!(bits(f32s.values()), bits(&[1.0, 2.5, -0.0]));
    let f64s = lits.iter().find(|l| l.ty().dtype == DType::F64).unwrap();
    assert_eq!(
        bits(f64s.values()),
        bits(&[0.1, 0.1 + 0.2, 1e-300, -f64::MAX])
    );
    let special = lits
        .iter()
        .find(|l| l.values().len() == 4 && l.ty().dtype == DType::F32)
        .unwrap();
    assert_eq!(special.values()[0], f64::INFINITY);
    assert_eq!(special.values()[1], f64::NEG_INFINITY);
    assert!(special.values()[2].is_nan());
    assert_eq!(special.values()[3], f32::MAX as f64);
}

#[test]
fn builder_floats_round_trip_bit_exactly() {
    let awkward32 = [
        0.1f32,
        1.0 / 3.0,
        -0.0,
        f32::MIN_POSITIVE,
        f32::MIN_POSITIVE / 1024.0,
        f32::EPSILON,
        16_777_217.0,
        -1e-38,
        f32::MAX,
        f32::MIN,
    ];
    let awkward64 = [
        0.1f64,
        1.0 / 3.0,
        -0.0,
        5e-324,
        f64::EPSILON,
        1e22,
        2f64.powi(70),
    ];
    let b = Builder::new("floats");
    let a: Vec<f64> = awkward32.iter().map(|&v| v as f64).collect();
    let c32 = b.constant(DType::F32, [a.len()], &a);
    let c64 = b.constant(DType::F64, [awkward64.len()], &awkward64);
    b.output("a", c32);
    b.output("b", c64);
    let g = b.finish();
    let text = print(&g);
    let back = parse(&text).unwrap();
    for name in ["a", "b"] {
        let (Op::Constant(x), Op::Constant(y)) = (
            g.op(g.output(name).unwrap()),
            back.op(back.output(name).unwrap()),
        ) else {
            panic!("outputs are constants")
        };
        assert_eq!(x, y, "{name}: literal equality compares bits\n{text}");
    }
    assert!(
        text.contains("%0: f32[10] = constant [0.1, 0.33333334, -0, 1.1754944e-38"),
        "{text}"
    );
}

#[test]
fn golden_dump_of_a_small_model() {
    let b = Builder::new("mlp");
    let x = b.input("x", DType::F32, [4, 3]);
    let y = b.input("y", DType::I32, [4]);
    let w = b.parameter("w", DType::F32, [3, 2]);
    let bias = b.parameter("b", DType::F32, [2]);
    let h = (x.matmul(w) + bias).named("h").relu();
    let loss = h.cross_entropy(y).named("loss");
    b.output("loss", loss);
    b.update(w, w - w * 0.5);
    let g = b.finish();
    let expected = r#"graph mlp {
  %x: f32[4,3] = input "x"
  %y: i32[4] = input "y"
  %w: f32[3,2] = parameter "w"
  %b: f32[2] = parameter "b"
  %0: f32[4,2] = matmul %x, %w
  %1: f32[4,2] = broadcast %b shape=[4,2]
  %h: f32[4,2] = add %0, %1
  %2: f32[] = constant 0
  %3: f32[4,2] = broadcast %2 shape=[4,2]
  %4: f32[4,2] = max %h, %3
  %5: i32[4,2] = iota axis=1
  %6: i32[4,1] = reshape %y shape=[4,1]
  %7: i32[4,2] = broadcast %6 shape=[4,2]
  %8: bool[4,2] = eq %5, %7
  %9: f32[4,2] = select %8, %4, %3
  %10: f32[4] = reduce_sum %9 axes=[1] keepdims=false
  %11: f32[4,1] = reduce_max %4 axes=[1] keepdims=true
  %12: f32[4,1] = stop_gradient %11
  %13: f32[4,2] = broadcast %12 shape=[4,2]
  %14: f32[4,2] = sub %4, %13
  %15: f32[4,2] = exp %14
  %16: f32[4] = reduce_sum %15 axes=[1] keepdims=false
  %17: f32[4] = log %16
  %18: f32[4] = reshape %12 shape=[4]
  %19: f32[4] = add %17, %18
  %20: f32[4] = sub %19, %10
  %21: f32[] = reduce_sum %20 axes=[0] keepdims=false
  %22: f32[] = constant 4
  %loss: f32[] = div %21, %22
  %23: f32[] = constant 0.5
  %24: f32[3,2] = broadcast %23 shape=[3,2]
  %25: f32[3,2] = mul %w, %24
  %26: f32[3,2] = sub %w, %25
  output "loss" = %loss
  update "w" = %26
}
"#;
    assert_eq!(print(&g), expected);
    assert_fixed_point(expected);
}

#[test]
fn names_are_sanitized_and_made_unique() {
    let b = Builder::new("names with spaces");
    let x = b.input("x", DType::F32, [2]);
    let odd = b.input("odd name", DType::F32, [2]);
    let e = x.exp().named("x"); // collides with the input
    let s = (e + odd).named("h");
    let t = (s * x).named("h"); // duplicate label
    let u = t.abs().named("7"); // all digits
    let v = (-u).named("a\"b"); // a quote
    let w = v.sin().named("h_1"); // collides with a generated suffix
    b.output("out \"quoted\"\n", w);
    let g = b.finish();
    let text = print(&g);
    let expected = "graph \"names with spaces\" {
  %x: f32[2] = input \"x\"
  %odd_name: f32[2] = input \"odd name\"
  %x_1: f32[2] = exp %x
  %h: f32[2] = add %x_1, %odd_name
  %h_1: f32[2] = mul %h, %x
  %_7: f32[2] = abs %h_1
  %a_b: f32[2] = neg %_7
  %h_1_1: f32[2] = sin %a_b
  output \"out \\\"quoted\\\"\\n\" = %h_1_1
}
";
    assert_eq!(text, expected);
    let back = assert_fixed_point(&text);
    assert_eq!(back.name(), "names with spaces");
    assert_eq!(back.outputs()[0].0, "out \"quoted\"\n");
    assert_eq!(back.leaf_name(back.inputs()[1]), Some("odd name"));
    assert_eq!(
        back.node(back.outputs()[0].1).label.as_deref(),
        Some("h_1_1")
    );
}

#[test]
fn a_repeated_line_is_a_node_of_its_own() {
    let text = "graph dup {
  %x: f32[2] = input \"x\"
  %a: f32[2] = exp %x
  %b: f32[2] = exp %x
  %c: f32[2] = add %a, %b
  output \"c\" = %c
}
";
    let g = assert_fixed_point(text);
    assert_eq!(g.len(), 4);
    let c = g.output("c").unwrap();
    let ops = g.operands(c);
    assert_ne!(ops[0], ops[1]);
}

#[test]
fn comments_blank_lines_and_spacing_are_accepted() {
    let text = "# a model\n\ngraph g{ # open\n   %x :f32[ 2 ]=input\"x\"   # the data\n\n%y:f32[2]=exp %x\n output \"y\"=%y\n}  # done\n\n";
    let g = parse(text).unwrap();
    assert_eq!(
        print(&g),
        "graph g {\n  %x: f32[2] = input \"x\"\n  %y: f32[2] = exp %x\n  output \"y\" = %y\n}\n"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_graphs_round_trip(seed in any::<u64>(), max_nodes in 1usize..60) {
        let g = random_graph(seed, max_nodes);
        g.verify().unwrap();
        let text = print(&g);
        let back = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        back.verify().unwrap();
        prop_assert_eq!(print(&back), text);
        prop_assert_eq!(back.len(), g.len());
        prop_assert_eq!(back.outputs().len(), g.outputs().len());
        prop_assert_eq!(back.updates().len(), g.updates().len());
    }
}
