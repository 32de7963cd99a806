//! The runtime's contract: feed and parameter checks, the compile cache, memory release,
//! deterministic and parallel execution, dumps, and gradients of a compiled f64 step.

mod common;

use adjoint_ir::{Builder, DType, Feeds, HostTensor, Rng};
use adjoint_jit::{compile, JitError, MatmulKernel, Options};
use common::{assert_close, random_feeds, run_jit};

fn affine() -> adjoint_ir::Graph {
    let b = Builder::new("affine");
    let x = b.input("x", DType::F32, [2, 3]);
    let w = b.parameter("w", DType::F32, [3, 2]);
    b.output("y", x.matmul(w));
    b.update(w, w * 0.5);
    b.finish()
}

fn x_feed() -> Feeds {
    let mut f = Feeds::new();
    f.insert(
        "x".into(),
        HostTensor::from_f32([2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap(),
    );
    f
}

#[test]
fn feeds_and_parameters_are_checked_before_running() {
    let opts = Options {
        cache: false,
        ..Options::default()
    };
    let mut step = compile(&affine(), &opts).unwrap();
    let err = step.run(&x_feed()).unwrap_err();
    assert_eq!(err, JitError::UninitializedParameter { name: "w".into() });
    let w = HostTensor::from_f32([3, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0]).unwrap();
    let bad = HostTensor::from_f64([3, 2], vec![0.0; 6]).unwrap();
    assert!(matches!(
        step.set_param("w", &bad),
        Err(JitError::TypeMismatch { .. })
    ));
    assert!(matches!(
        step.set_param("v", &w),
        Err(JitError::UnknownParameter { .. })
    ));
    step.set_param("w", &w).unwrap();

    let err = step.run(&Feeds::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "missing feed `x`: the graph needs a tensor of type f32[2,3]"
    );
    let mut wrong = x_feed();
    wrong.insert(
        "x".into(),
        HostTensor::from_i32([2, 3], vec![0; 6]).unwrap(),
    );
    assert_eq!(
        step.run(&wrong).unwrap_err().to_string(),
        "`x` has type i32[2,3], but the graph expects f32[2,3]"
    );
    let mut extra = x_feed();
    extra.insert("z".into(), HostTensor::scalar_f32(1.0));
    assert_eq!(
        step.run(&extra).unwrap_err().to_string(),
        "feed `z` names no input of the graph"
    );
    let mut param = x_feed();
    param.insert("w".into(), w.clone());
    assert!(step
        .run(&param)
        .unwrap_err()
        .to_string()
        .contains("is a parameter"));

    // After the failed calls nothing changed; a good call computes and updates in place.
    let out = step.run(&x_feed()).unwrap();
    assert_eq!(
        out.output("y").unwrap().as_f32().unwrap(),
        &[4.0, 5.0, 10.0, 11.0]
    );
    assert_eq!(
        step.param("w").unwrap().as_f32().unwrap(),
        &[0.5, 0.0, 0.0, 0.5, 0.5, 0.5]
    );
    assert_eq!(step.params().len(), 1);
}

#[test]
fn identical_graphs_share_compiled_code() {
    let b = Builder::new("cached");
    let x = b.input("x", DType::F32, [7]);
    b.output("y", (x * 3.0).exp());
    let g = b.finish();
    let opts = Options::default();
    let first = compile(&g, &opts).unwrap();
    let second = compile(&g, &opts).unwrap();
    assert!(second.stats().cached);
    // The same graph with another constant is another program.
    let b = Builder::new("cached");
    let x = b.input("x", DType::F32, [7]);
    b.output("y", (x * 4.0).exp());
    let other = compile(&b.finish(), &opts).unwrap();
    assert!(!other.stats().cached);
    drop((first, second, other));
}

/// A graph big enough for the nests to be split over threads.
fn large() -> (adjoint_ir::Graph, Feeds) {
    let b = Builder::new("large");
    let x = b.input("x", DType::F32, [96, 160]);
    let w = b.parameter("w", DType::F32, [160, 120]);
    let h = x.matmul(w).gelu();
    b.output("rows", h.softmax(-1).sum(&[0]));
    b.output("loss", h.logsumexp(&[0, 1]));
    b.update(w, w - x.transpose(0, 1).matmul(h) * 1e-3);
    let g = b.finish();
    let feeds = random_feeds(&g, 21, 1);
    (g, feeds)
}

#[test]
fn parallel_and_repeated_runs_are_bit_identical() {
    let (g, feeds) = large();
    let want = adjoint_interp::run(&g, &feeds).unwrap();
    let mut results = Vec::new();
    for threads in [1, 1, 2, 3] {
        let opts = Options {
            threads,
            cache: false,
            ..Options::default()
        };
        let (step, out) = run_jit(&g, &feeds, &opts);
        for (name, t) in &want.outputs {
            assert_close(name, out.output(name).unwrap(), t);
        }
        assert_close("w", &step.param("w").unwrap(), want.update("w").unwrap());
        results.push((out, step.param("w").unwrap()));
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0], results[2]);
    assert_eq!(results[0], results[3]);
}

#[test]
fn dumps_kernels_clif_disassembly_and_statistics() {
    let dir = std::env::temp_dir().join(format!("adjoint-jit-dump-{}", std::process::id()));
    // The generated matmul (a reduction with fma in the CLIF); the host kernel's nest is a
    // call instead.
    let opts = Options {
        dump_dir: Some(dir.clone()),
        cache: false,
        matmul: MatmulKernel::Generated,
        ..Options::default()
    };
    let step = compile(&affine(), &opts).unwrap();
    assert!(step.clif().contains("function"));
    for (file, needle) in [
        ("affine.kernels.txt", "reduce_sum"),
        ("affine.clif", "fma"),
        ("affine.disasm.txt", "ret"),
        ("affine.compile-stats.txt", "cranelift_us"),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(text.contains(needle), "{file} lacks {needle}:\n{text}");
    }
    // Every function's disassembly is written, not only the first one's.
    let disasm = std::fs::read_to_string(dir.join("affine.disasm.txt")).unwrap();
    let headers = disasm
        .lines()
        .filter(|l| l.starts_with("; k") || *l == "; step")
        .count();
    assert_eq!(headers, step.stats().functions, "{disasm}");
    // The entry point calls every nest through its absolute address, never by a PC-relative
    // call, which reaches only ±2 GiB of a step's code.
    let entry = &disasm[disasm.find("; step\n").expect("the entry is dumped")..];
    let calls: Vec<&str> = entry
        .lines()
        .filter(|l| l.trim_start().starts_with("call"))
        .collect();
    assert!(!calls.is_empty(), "{entry}");
    assert!(calls.iter().all(|l| l.contains("call    *%")), "{entry}");
    if adjoint_jit::gemm::available() {
        let host = Options {
            matmul: MatmulKernel::Host,
            ..opts
        };
        compile(&affine(), &host).unwrap();
        let text = std::fs::read_to_string(dir.join("affine.kernels.txt")).unwrap();
        assert!(text.contains("host gemm 2x2x3"), "{text}");
        let clif = std::fs::read_to_string(dir.join("affine.clif")).unwrap();
        assert!(clif.contains("call fn0"), "{clif}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Central finite differences of the compiled f64 loss agree with its compiled gradient.
#[test]
fn compiled_f64_gradients_pass_a_finite_difference_check() {
    let b = Builder::new("gradcheck");
    let x = b.input("x", DType::F64, [5, 4]);
    let y = b.input("y", DType::I32, [5]);
    let w1 = b.parameter("w1", DType::F64, [4, 6]);
    let g1 = b.parameter("g1", DType::F64, [6]);
    let b1 = b.parameter("b1", DType::F64, [6]);
    let w2 = b.parameter("w2", DType::F64, [6, 3]);
    let h = x.matmul(w1).layer_norm(g1, b1, 1e-5).gelu();
    let loss = h.matmul(w2).cross_entropy(y);
    b.output("loss", loss);
    let params = [w1.id(), g1.id(), b1.id(), w2.id()];
    let loss = loss.id();
    let grads = adjoint_autodiff::grad(b.finish(), loss, &params).unwrap();
    let g = grads.graph;
    let feeds = random_feeds(&g, 31, 3);
    let opts = Options {
        cache: false,
        ..Options::default()
    };
    let (mut step, out) = run_jit(&g, &feeds, &opts);
    let inputs: Feeds = ["x", "y"]
        .iter()
        .map(|&n| (n.to_string(), feeds[n].clone()))
        .collect();
    let mut rng = Rng::new(5);
    for name in ["w1", "g1", "b1", "w2"] {
        let analytic = out.output(&format!("{name}.grad")).unwrap().to_f64_vec();
        let base = feeds[name].to_f64_vec();
        for _ in 0..4 {
            let i = rng.below(base.len() as u64) as usize;
            let h = 1e-6;
            let mut loss_at = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                let t = HostTensor::from_f64(feeds[name].shape().clone(), v).unwrap();
                step.set_param(name, &t).unwrap();
                step.run(&inputs)
                    .unwrap()
                    .output("loss")
                    .unwrap()
                    .to_f64_vec()[0]
            };
            let numeric = (loss_at(h) - loss_at(-h)) / (2.0 * h);
            step.set_param(name, &feeds[name]).unwrap();
            let err = (numeric - analytic[i]).abs() / analytic[i].abs().max(1e-3);
            assert!(
                err < 1e-5,
                "{name}[{i}]: numeric {numeric}, compiled {}",
                analytic[i]
            );
        }
    }
}

#[test]
fn profiling_times_every_nest_and_changes_no_result() {
    let w = HostTensor::from_f32([3, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0]).unwrap();
    let mut plain = compile(&affine(), &Options::default()).unwrap();
    assert!(plain.profile().is_none());
    let opts = Options {
        profile: true,
        ..Options::default()
    };
    let mut step = compile(&affine(), &opts).unwrap();
    plain.set_param("w", &w).unwrap();
    step.set_param("w", &w).unwrap();
    for _ in 0..3 {
        let a = plain.run(&x_feed()).unwrap();
        let b = step.run(&x_feed()).unwrap();
        assert_eq!(a, b);
    }
    // x·w with w = [[1,0],[0,1],[1,1]] scaled by 0.5 twice before the third run.
    let y = step.run(&x_feed()).unwrap();
    assert_eq!(
        y.output("y").unwrap().as_f32().unwrap(),
        &[0.5, 0.625, 1.25, 1.375]
    );
    let p = step.profile().unwrap();
    assert_eq!(p.entries.len(), step.stats().functions - 1);
    assert!(p.entries.iter().all(|e| e.calls == 4));
    assert!(p.to_string().contains(&p.entries[0].name));
    step.reset_profile();
    assert!(step.profile().unwrap().entries.iter().all(|e| e.calls == 0));
}

#[test]
fn compile_runs_the_graph_passes_and_reports_them() {
    // `x * 1` and a reshape of a reshape: the passes remove both.
    let b = Builder::new("passes");
    let x = b.input("x", DType::F32, [4, 3]);
    let y = (x * b.scalar(DType::F32, 1.0))
        .reshape([12])
        .reshape([3, 4]);
    b.output("y", y.exp());
    let g = b.finish();
    let mut feeds = Feeds::new();
    let xs: Vec<f32> = (0..12).map(|i| i as f32 * 0.1).collect();
    feeds.insert(
        "x".into(),
        HostTensor::from_f32([4, 3], xs.clone()).unwrap(),
    );
    let mut results = Vec::new();
    for passes in [true, false] {
        let options = Options {
            passes,
            cache: false,
            ..Options::default()
        };
        let mut step = compile(&g, &options).unwrap();
        let report = step.stats().passes.clone();
        assert_eq!(report.is_some(), passes);
        if let Some(r) = report {
            assert!(r.nodes_after < r.nodes_before, "{r:?}");
            assert!(r.stats.iter().any(|s| s.changes > 0));
        }
        let out = step.run(&feeds).unwrap();
        results.push(out.output("y").unwrap().as_f32().unwrap().to_vec());
    }
    assert_eq!(results[0], results[1]);
    let want: Vec<f32> = xs.iter().map(|v| v.exp()).collect();
    for (a, b) in results[0].iter().zip(&want) {
        assert!((a - b).abs() <= 1e-6 * b.abs(), "{a} vs {b}");
    }
}

#[test]
fn the_code_does_not_depend_on_the_compile_threads() {
    let w = adjoint_workloads::mlp("W1", "mlp-small", &adjoint_workloads::MlpConfig::tiny(), 1);
    let t = w.training_step();
    let mut runs = Vec::new();
    for compile_threads in [1, 2] {
        let options = Options {
            compile_threads,
            cache: false,
            ..Options::default()
        };
        let (step, out) = run_jit(&t.step.graph, &t.feeds, &options);
        let loss = out.output("loss").unwrap().as_f32().unwrap()[0].to_bits();
        let params: Vec<_> = step.params();
        runs.push((
            step.stats().code_bytes,
            step.stats().functions,
            loss,
            params,
        ));
    }
    assert_eq!(runs[0], runs[1]);
}
