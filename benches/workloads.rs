//! Criterion benchmarks: one training step of each workload (W1–W4) in each execution mode,
//! and the time to compile each step. `cargo bench` runs them; `adjoint bench` gives the same
//! measurements as a table or JSON.

use adjoint::autodiff::Precision;
use adjoint::bench::{prepare, Mode};
use adjoint::workloads::by_id;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::time::Duration;

fn training_steps(c: &mut Criterion) {
    for id in ["W1", "W2", "W3", "W4"] {
        let workload = by_id(id, 0).expect("a workload");
        let mut group = c.benchmark_group(format!("step/{id}"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(3));
        for mode in Mode::ALL {
            let mut prepared =
                prepare(&workload, mode, 1, Precision::F32).expect("the step prepares");
            group.bench_function(BenchmarkId::from_parameter(mode.name()), |b| {
                b.iter(|| prepared.runner.step().expect("the step runs"))
            });
        }
        group.finish();
    }
}

fn compile_times(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for id in ["W1", "W2", "W3", "W4"] {
        let workload = by_id(id, 0).expect("a workload");
        group.bench_function(BenchmarkId::from_parameter(id), |b| {
            b.iter(|| {
                prepare(&workload, Mode::JitFused, 1, Precision::F32)
                    .expect("compiles")
                    .compile
            })
        });
    }
    group.finish();
}

criterion_group!(benches, training_steps, compile_times);
criterion_main!(benches);
