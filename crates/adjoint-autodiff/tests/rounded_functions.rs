//! `precision::round_functions_from_f64`: every `f32` function computed in `f64` and rounded
//! once, everything else as it was (the fuzzer's reference for the functions' last bit).

use adjoint_autodiff::precision::round_functions_from_f64;
use adjoint_interp::run;
use adjoint_ir::{Builder, DType, Feeds, HostTensor, Op};

#[test]
fn f32_functions_are_rounded_once_from_f64_and_the_rest_is_unchanged() {
    let b = Builder::new("functions");
    let x = b.input("x", DType::F32, [6]);
    let p = b.input("p", DType::F32, [6]);
    let d = b.input("d", DType::F64, [6]);
    b.output("exp", x.exp());
    b.output("log", (x * x + 1.0).log());
    b.output("tanh", x.tanh());
    b.output("sin", x.sin());
    b.output("cos", x.cos());
    b.output("pow", (x * x + 1.0).pow(p));
    b.output("plain", x * 3.0 + p);
    b.output("f64", d.tanh());
    let g = b.finish();
    let r = round_functions_from_f64(&g).unwrap();
    // Six f32 functions, each now between two casts; the f64 one is untouched.
    let count = |op: &dyn Fn(&Op) -> bool| r.node_ids().filter(|&n| op(r.op(n))).count();
    assert_eq!(count(&|op| matches!(op, Op::Cast { to: DType::F32 })), 6);
    let f64_functions = r
        .node_ids()
        .filter(|&n| matches!(r.op(n), Op::Unary(_) | Op::Binary(_)))
        .filter(|&n| r.ty(n).dtype == DType::F64)
        .count();
    assert_eq!(f64_functions, 7, "six widened functions and the f64 tanh");

    let xs = [-3.419_658e-4, 0.5, -1.25, 3.0, 10.0, -7.5];
    let ps = [0.5, -1.5, 2.0, 0.25, 3.0, -0.75];
    let mut feeds = Feeds::new();
    let f32s = |v: &[f64]| HostTensor::from_f64_as(DType::F32, [6], v).unwrap();
    feeds.insert("x".into(), f32s(&xs));
    feeds.insert("p".into(), f32s(&ps));
    feeds.insert(
        "d".into(),
        HostTensor::from_f64_as(DType::F64, [6], &xs).unwrap(),
    );
    let want = run(&g, &feeds).unwrap();
    let got = run(&r, &feeds).unwrap();
    let x32: Vec<f64> = xs.iter().map(|&v| f64::from(v as f32)).collect();
    let p32: Vec<f64> = ps.iter().map(|&v| f64::from(v as f32)).collect();
    let sq1 = |v: f64| f64::from((v as f32) * (v as f32) + 1.0);
    type Reference = fn(f64, f64) -> f64;
    let cases: [(&str, Reference); 6] = [
        ("exp", |x, _| x.exp()),
        ("log", |x, _| x.ln()),
        ("tanh", |x, _| x.tanh()),
        ("sin", |x, _| x.sin()),
        ("cos", |x, _| x.cos()),
        ("pow", |x, p| x.powf(p)),
    ];
    for (name, f) in cases {
        let arg = |i: usize| match name {
            "log" | "pow" => sq1(x32[i]),
            _ => x32[i],
        };
        let expect: Vec<f64> = (0..6)
            .map(|i| f64::from(f(arg(i), p32[i]) as f32))
            .collect();
        assert_eq!(got.output(name).unwrap().to_f64_vec(), expect, "{name}");
    }
    for name in ["plain", "f64"] {
        assert_eq!(
            got.output(name).unwrap().to_f64_vec(),
            want.output(name).unwrap().to_f64_vec(),
            "{name}"
        );
    }
}
