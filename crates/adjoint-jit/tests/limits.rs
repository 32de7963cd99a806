//! Hostile sizes: shapes whose element count or byte size overflows, tensors and arenas larger
//! than the limits or than memory, and absurd thread counts are clear errors (or are capped),
//! never a crash.

use adjoint_interp::InterpError;
use adjoint_ir::{Builder, DType, Feeds, HostTensor};
use adjoint_jit::{compile, JitError, Options};

fn uncached() -> Options {
    Options {
        cache: false,
        ..Options::default()
    }
}

#[test]
fn a_shape_whose_element_count_overflows_is_refused_by_the_builder() {
    let b = Builder::new("huge");
    let err = b
        .try_input("x", DType::F32, [1 << 32, 1 << 32])
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("f32[4294967296,4294967296] is too large"),
        "{msg}"
    );
    // And a host tensor of that shape cannot be made, so nothing can be fed for it.
    let err = HostTensor::new([1 << 32, 1 << 32], adjoint_ir::HostData::F32(vec![])).unwrap_err();
    assert!(
        err.contains("more elements than a usize can count"),
        "{err}"
    );
}

#[test]
fn a_shape_past_2_to_the_63_elements_is_refused_not_wrapped() {
    let b = Builder::new("wrap");
    let err = b
        .try_input("x", DType::F32, [(1usize << 63) + 1, 2])
        .unwrap_err();
    assert!(err.to_string().contains("is too large"), "{err}");
    // A zero dimension does not hide an overflowing stride.
    let err = b
        .try_parameter("p", DType::F32, [0, 1 << 40, 1 << 40])
        .unwrap_err();
    assert!(err.to_string().contains("is too large"), "{err}");
    // The largest shape that fits still builds.
    assert!(b.try_input("ok", DType::Bool, [1 << 31, 1 << 31]).is_ok());
}

#[test]
fn the_text_format_refuses_oversized_types_with_a_location() {
    let src =
        "graph g {\n  %x: f32[0,9223372036854775807,4] = input \"x\"\n  output \"y\" = %x\n}\n";
    let err = adjoint_ir::text::parse(src).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("2:") && msg.contains("too large"), "{msg}");
}

#[test]
fn a_tensor_over_the_limit_is_a_compile_error() {
    let b = Builder::new("tera");
    let x = b.input("x", DType::F32, [1 << 40]);
    b.output("s", x.sum(&[0]));
    let err = compile(&b.finish(), &uncached())
        .err()
        .expect("must not compile");
    assert!(
        matches!(err, JitError::TooLarge { option: "max_tensor_bytes", bytes, .. } if bytes == 1 << 42),
        "{err}"
    );
    assert!(
        err.to_string().contains("Options::max_tensor_bytes"),
        "{err}"
    );
}

/// `exp(x)` of a large input, unfused so that its value takes an arena buffer of `bytes`.
fn arena_of(bytes: usize) -> adjoint_ir::Graph {
    let b = Builder::new("arena");
    let x = b.input("x", DType::F32, [bytes / 4]);
    b.output("s", x.exp().sum(&[0]));
    b.finish()
}

#[test]
fn a_4_tib_arena_over_the_limit_is_a_compile_error() {
    let opts = Options {
        fusion: false,
        max_tensor_bytes: usize::MAX,
        ..uncached()
    };
    let err = compile(&arena_of(1 << 42), &opts)
        .err()
        .expect("must not compile");
    assert!(
        matches!(
            err,
            JitError::TooLarge {
                option: "max_arena_bytes",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn an_arena_larger_than_memory_is_an_error_not_an_abort() {
    // 2^48 bytes: more than the 47-bit user address space of x86-64 Linux, so the allocation
    // fails whatever the overcommit policy.
    let opts = Options {
        fusion: false,
        max_tensor_bytes: usize::MAX,
        max_arena_bytes: usize::MAX,
        ..uncached()
    };
    let err = compile(&arena_of(1 << 48), &opts)
        .err()
        .expect("must not compile");
    assert!(
        matches!(err, JitError::OutOfMemory { bytes, .. } if bytes >= 1 << 48),
        "{err}"
    );
    assert!(err.to_string().starts_with("out of memory"), "{err}");
}

#[test]
fn the_interpreter_reports_a_value_larger_than_memory() {
    let b = Builder::new("big");
    let x = b.input("x", DType::F32, [1]);
    let y = x.broadcast_to([1usize << 46]);
    b.output("s", y.sum(&[0]));
    let mut feeds = Feeds::new();
    feeds.insert("x".into(), HostTensor::from_f32([1], vec![1.0]).unwrap());
    let err = adjoint_interp::run(&b.finish(), &feeds).unwrap_err();
    assert!(matches!(err, InterpError::OutOfMemory { .. }), "{err}");
}

#[test]
fn threads_beyond_the_core_count_are_capped() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let opts = Options {
        threads: 100_000,
        ..uncached()
    };
    assert_eq!(opts.thread_count(), cores);
    let b = Builder::new("t");
    let x = b.input("x", DType::F32, [256, 256]);
    b.output("y", (x * 2.0).sum(&[1]));
    let mut step = compile(&b.finish(), &opts).unwrap();
    let mut feeds = Feeds::new();
    feeds.insert(
        "x".into(),
        HostTensor::from_f32([256, 256], vec![1.0; 256 * 256]).unwrap(),
    );
    let out = step.run(&feeds).unwrap();
    assert!(out
        .output("y")
        .unwrap()
        .as_f32()
        .unwrap()
        .iter()
        .all(|&v| v == 512.0));
}

#[test]
fn host_tensors_too_large_for_memory_are_errors() {
    let err = HostTensor::try_zeros(DType::F32, [1usize << 46]).unwrap_err();
    assert!(err.starts_with("out of memory"), "{err}");
    let ty = adjoint_ir::TensorType::new(DType::F32, [1usize << 32, 1 << 32]);
    let err = HostTensor::try_random(&ty, &mut adjoint_ir::Rng::new(0), 4).unwrap_err();
    assert!(err.contains("than a usize can count"), "{err}");
    assert_eq!(HostTensor::try_zeros(DType::I32, [3]).unwrap().numel(), 3);
}
