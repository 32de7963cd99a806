//! Shape and dtype mistakes are reported at build time with the op, the shapes and the
//! caller's file:line.

use adjoint_ir::{Builder, DType};
use std::sync::atomic::{AtomicU32, Ordering};

#[test]
fn matmul_shape_mismatch_panics_naming_op_shapes_and_caller_line() {
    static CALL_LINE: AtomicU32 = AtomicU32::new(0);
    let result = std::panic::catch_unwind(|| {
        let b = Builder::new("bad");
        let x = b.input("x", DType::F32, [2, 3]);
        let w = b.input("w", DType::F32, [4, 5]);
        CALL_LINE.store(line!() + 1, Ordering::SeqCst);
        let _ = x.matmul(w);
    });
    let payload = result.expect_err("matmul of [2,3] by [4,5] must panic");
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    let line = CALL_LINE.load(Ordering::SeqCst);
    assert!(msg.starts_with("matmul:"), "{msg}");
    assert!(
        msg.contains("f32[2,3]") && msg.contains("f32[4,5]"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("builder_errors.rs:{line}:")),
        "message should name this file and line {line}: {msg}"
    );
}

#[test]
fn try_twin_returns_the_same_error() {
    let b = Builder::new("bad");
    let x = b.input("x", DType::F32, [2, 3]);
    let w = b.input("w", DType::F32, [4, 5]);
    let err = x.try_matmul(w).unwrap_err();
    assert_eq!(err.op, "matmul");
    assert_eq!(err.location.line(), line!() - 2);
    assert!(err.location.file().ends_with("builder_errors.rs"));
}

#[test]
fn errors_inside_composites_point_at_the_user_call() {
    let b = Builder::new("bad");
    let x = b.input("x", DType::F32, [2, 3]);
    let gamma = b.parameter("g", DType::F32, [4]);
    let beta = b.parameter("b", DType::F32, [4]);
    let err = x.try_layer_norm(gamma, beta, 1e-5).unwrap_err();
    assert_eq!(err.location.line(), line!() - 1);
    let err = x.try_softmax(5).unwrap_err();
    assert_eq!(err.location.line(), line!() - 1);
    assert!(err.to_string().contains("axis 5 out of range"), "{err}");
}

#[test]
fn dtype_mismatch_is_refused() {
    let b = Builder::new("bad");
    let x = b.input("x", DType::F32, [2]);
    let y = b.input("y", DType::F64, [2]);
    let err = x.try_add(y).unwrap_err();
    assert!(
        err.to_string().contains("dtypes f32 and f64 differ"),
        "{err}"
    );
}
