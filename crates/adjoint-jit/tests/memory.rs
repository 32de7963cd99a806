//! Dropping a compiled step frees its JIT code (`JITModule::free_memory`). In its own test
//! binary so that no other test compiles or drops modules while the count is read.

use adjoint_ir::{Builder, DType};
use adjoint_jit::runtime::LIVE_MODULES;
use adjoint_jit::{compile, Options};
use std::sync::atomic::Ordering;

#[test]
fn dropping_a_step_frees_its_code() {
    let b = Builder::new("freed");
    let x = b.input("x", DType::F32, [4, 4]);
    let w = b.parameter("w", DType::F32, [4, 4]);
    b.output("y", x.matmul(w).tanh());
    let g = b.finish();
    let opts = Options {
        cache: false,
        ..Options::default()
    };
    assert_eq!(LIVE_MODULES.load(Ordering::SeqCst), 0);
    for _ in 0..3 {
        let steps: Vec<_> = (0..4).map(|_| compile(&g, &opts).unwrap()).collect();
        assert_eq!(LIVE_MODULES.load(Ordering::SeqCst), 4);
        drop(steps);
        assert_eq!(LIVE_MODULES.load(Ordering::SeqCst), 0);
    }
    // With the cache on, the cache keeps one module alive until it is cleared.
    let cached = Options::default();
    let a = compile(&g, &cached).unwrap();
    let b2 = compile(&g, &cached).unwrap();
    assert!(b2.stats().cached);
    drop((a, b2));
    assert_eq!(LIVE_MODULES.load(Ordering::SeqCst), 1);
    adjoint_jit::cache::clear();
    assert_eq!(LIVE_MODULES.load(Ordering::SeqCst), 0);
}
