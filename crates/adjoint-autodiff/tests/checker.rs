//! The gradient checker itself: it fails where the derivative does not exist, reports where,
//! refuses what it cannot perturb, and its random feeds respect index bounds.

use adjoint_autodiff::{
    check_grads, check_grads_named, check_grads_with, hvp, random_feeds, CheckError, Direction,
    GradCheckOptions, GradError,
};
use adjoint_interp::eval_nodes;
use adjoint_ir::{Builder, DType, Feeds, HostTensor};

#[test]
fn a_jump_fails_the_check_and_is_located() {
    // sign has no derivative at 0: the analytic gradient is 0 there, the finite difference is
    // about 1/h. Element 2 is the one at the jump.
    let b = Builder::new("jump");
    let x = b.parameter("x", DType::F64, [3]);
    let loss = (x.sign() + x * 2.0).sum_all();
    let (loss, x) = (loss.id(), x.id());
    let g = b.finish();
    let mut feeds = Feeds::new();
    feeds.insert(
        "x".into(),
        HostTensor::from_f64([3], vec![1.0, -2.0, 0.0]).unwrap(),
    );
    let report = check_grads(&g, loss, &[x], &feeds, 1e-6).unwrap();
    assert!(!report.passed());
    let worst = report.worst().unwrap();
    assert_eq!(worst.name, "x");
    assert_eq!(worst.worst_at, Direction::Coordinate(2));
    assert_eq!(worst.analytic, 2.0);
    assert!(worst.numeric > 1e3);
    assert!(report.to_string().contains("FAIL"), "{report}");
}

#[test]
fn large_tensors_are_checked_along_random_directions() {
    let b = Builder::new("large");
    let w = b.parameter("w", DType::F32, [10, 10]);
    let small = b.parameter("s", DType::F32, [4]);
    let loss = w.tanh().sum_all() + small.square().sum_all();
    let (loss, w, small) = (loss.id(), w.id(), small.id());
    let g = b.finish();
    let feeds = random_feeds(&g, 4).unwrap();
    let opts = GradCheckOptions {
        directions: 3,
        ..GradCheckOptions::default()
    };
    let report = check_grads_with(&g, loss, &[w, small], &feeds, &opts).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.checks[0].compared, 3);
    assert!(matches!(report.checks[0].worst_at, Direction::Random(_)));
    assert_eq!(report.checks[1].compared, 4);
}

#[test]
fn refuses_what_it_cannot_perturb() {
    let b = Builder::new("refuse");
    let x = b.parameter("x", DType::F64, [2]);
    let h = x.exp().named("h");
    let loss = h.sum_all();
    let (x, h, loss) = (x.id(), h.id(), loss.id());
    let g = b.finish();
    let e = check_grads(&g, loss, &[h], &random_feeds(&g, 0).unwrap(), 1e-6).unwrap_err();
    assert!(matches!(e, CheckError::NotALeaf { .. }), "{e}");
    let e = check_grads(&g, loss, &[x], &Feeds::new(), 1e-6).unwrap_err();
    assert!(matches!(e, CheckError::MissingFeed { .. }), "{e}");
    assert!(e.to_string().contains("`x`"), "{e}");
}

#[test]
fn named_check_with_random_feeds_for_the_command_line() {
    // Labels index a table through gather: random feeds keep them within its 5 rows.
    let b = Builder::new("embed");
    let table = b.parameter("table", DType::F32, [5, 3]);
    let ids = b.input("ids", DType::I32, [16]);
    b.output("loss", table.gather(ids, 0).tanh().sum_all());
    let g = b.finish();
    let feeds = random_feeds(&g, 9).unwrap();
    let ids = feeds["ids"].as_i32().unwrap();
    assert!(ids.iter().all(|&i| (0..5).contains(&i)));
    assert!(
        ids.iter().any(|&i| i >= 2),
        "the bound is 5, not the default 2"
    );
    let report = check_grads_named(&g, "loss", &["table"], 9, 1e-6).unwrap();
    assert!(report.passed(), "{report}");
    let e = check_grads_named(&g, "loss", &["ids"], 9, 1e-6).unwrap_err();
    assert!(
        matches!(e, CheckError::Grad(GradError::NotDifferentiable { .. })),
        "{e}"
    );
}

#[test]
fn hvp_declares_its_products_and_checks_vectors() {
    // loss = sum(x³): the Hessian is diag(6x), so H v = 6 x v.
    let b = Builder::new("cubic");
    let x = b.parameter("x", DType::F64, [3]);
    let v = b.input("v", DType::F64, [3]);
    let bad = b.input("bad", DType::F64, [2]);
    let loss = (x * x * x).sum_all();
    let (x, v, bad, loss) = (x.id(), v.id(), bad.id(), loss.id());
    let g = b.finish();
    let e = hvp(g.clone(), loss, &[x], &[bad]).unwrap_err();
    assert!(matches!(e, GradError::VectorMismatch { .. }), "{e}");
    let e = hvp(g.clone(), loss, &[x], &[]).unwrap_err();
    assert!(matches!(e, GradError::VectorCount { .. }), "{e}");
    let products = hvp(g, loss, &[x], &[v]).unwrap();
    let hv = products.graph.output("x.hvp").unwrap();
    assert_eq!(products.of(x), Some(hv));
    let mut feeds = Feeds::new();
    feeds.insert(
        "x".into(),
        HostTensor::from_f64([3], vec![1.0, -2.0, 0.5]).unwrap(),
    );
    feeds.insert(
        "v".into(),
        HostTensor::from_f64([3], vec![2.0, 1.0, -4.0]).unwrap(),
    );
    let got = eval_nodes(&products.graph, &feeds, &[hv]).unwrap()[0].to_f64_vec();
    assert_eq!(got, vec![12.0, -12.0, -12.0]);
}

#[test]
fn feeds_beyond_memory_are_an_error_not_an_abort() {
    // 2^48 bytes of f32: more than the 47-bit address space, so the allocation fails whatever
    // the overcommit policy.
    let b = Builder::new("huge");
    let x = b.parameter("x", DType::F32, [1 << 46]);
    b.output("loss", x.sum_all());
    let g = b.finish();
    let e = random_feeds(&g, 0).unwrap_err();
    assert!(matches!(e, CheckError::OutOfMemory(_)), "{e}");
    assert!(e.to_string().contains("random feed `x`"), "{e}");
    assert!(e.to_string().contains("out of memory"), "{e}");
    let e = check_grads_named(&g, "loss", &["x"], 0, 1e-6).unwrap_err();
    assert!(matches!(e, CheckError::OutOfMemory(_)), "{e}");
}

#[test]
fn random_feeds_keep_their_values() {
    // The fallible generator draws the same streams as before: a fixed seed gives fixed data.
    let b = Builder::new("values");
    let x = b.parameter("x", DType::F64, [3]);
    b.output("loss", x.sum_all());
    let g = b.finish();
    let a = random_feeds(&g, 5).unwrap();
    let mut rng = adjoint_ir::Rng::derive(5, "x");
    let want: Vec<f64> = (0..3).map(|_| rng.normal()).collect();
    assert_eq!(a["x"].to_f64_vec(), want);
}
