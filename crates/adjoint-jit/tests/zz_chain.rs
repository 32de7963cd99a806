use adjoint_autodiff::{training_step, Optimizer};
use adjoint_ir::{Builder, DType, Graph};
use adjoint_jit::{compile, Options};
use std::time::Instant;
fn step(n: usize) -> Graph {
    let b = Builder::new("chain");
    let w = b.parameter("w", DType::F32, [8]);
    let mut h = w;
    for i in 0..n {
        h = if i % 2 == 0 { h.sin() } else { h * 0.999 };
    }
    b.output("loss", h.sum_all());
    let g = b.finish();
    let (loss, w) = (g.output("loss").unwrap(), g.leaf("w").unwrap());
    training_step(g, loss, &[w], &Optimizer::sgd(0.1))
        .unwrap()
        .graph
}
#[test]
fn chain_times() {
    let sizes: Vec<usize> = std::env::var("N")
        .unwrap_or("10000".into())
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    for n in sizes {
        let g = step(n);
        for threads in [1usize, 0] {
            let opts = Options {
                cache: false,
                verifier: false,
                check_ir: false,
                compile_threads: threads,
                ..Options::default()
            };
            let t = Instant::now();
            let c = compile(&g, &opts).unwrap();
            let st = c.stats();
            println!("n={n} compile_threads={threads}: total {:.2}s optimizing {:.2} planning {:.2} lowering {:.2} cranelift {:.2} finalize {:.2}; kernels {} functions {} code {} B",
                t.elapsed().as_secs_f64(), st.optimizing.as_secs_f64(), st.planning.as_secs_f64(), st.codegen.lowering.as_secs_f64(), st.codegen.cranelift.as_secs_f64(), st.codegen.finalize.as_secs_f64(), st.kernels, st.functions, st.code_bytes);
        }
    }
}
