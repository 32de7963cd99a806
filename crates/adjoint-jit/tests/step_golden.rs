//! Bit-exact regression of the compiled W1–W4 training steps.
//!
//! Restructuring the compiler (how groups are planned, lowered and emitted) must not change a
//! single bit of what a step computes when the graph passes are off. This test runs 20 steps
//! of every workload at its benchmark size with Cranelift-generated matmuls (whose summation
//! order is fixed by the kernel IR, not by the host CPU's vector width) on one thread, and
//! compares the losses and a hash of every parameter after the last step with
//! `tests/data/step_golden.txt`, recorded before the restructuring.
//!
//! `ADJOINT_BLESS=1 cargo test -p adjoint-jit --test step_golden` rewrites the file; do that
//! only for a change that is meant to alter the arithmetic, and say so in the commit.

use adjoint_ir::HostData;
use adjoint_jit::{compile, MatmulKernel, Options};
use std::fmt::Write;

const STEPS: usize = 20;

/// FNV-1a over bytes: stable across Rust versions, unlike `DefaultHasher`.
fn fnv1a(hash: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *hash ^= u64::from(b);
        *hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
}

fn hash_data(hash: &mut u64, data: &HostData) {
    match data {
        HostData::F32(v) => v
            .iter()
            .for_each(|x| fnv1a(hash, &x.to_bits().to_le_bytes())),
        HostData::F64(v) => v
            .iter()
            .for_each(|x| fnv1a(hash, &x.to_bits().to_le_bytes())),
        HostData::I32(v) => v.iter().for_each(|x| fnv1a(hash, &x.to_le_bytes())),
        HostData::Bool(v) => v.iter().for_each(|&x| fnv1a(hash, &[u8::from(x)])),
        HostData::Bf16(v) => v
            .iter()
            .for_each(|x| fnv1a(hash, &x.to_bits().to_le_bytes())),
        HostData::F16(v) => v
            .iter()
            .for_each(|x| fnv1a(hash, &x.to_bits().to_le_bytes())),
    }
}

/// The record of one workload: loss bits per step, then the parameter hash.
fn record(w: &adjoint_workloads::Workload) -> String {
    let t = w.training_step();
    let options = Options {
        threads: 1,
        cache: false,
        matmul: MatmulKernel::Generated,
        passes: false,
        ..Options::default()
    };
    let mut step = compile(&t.step.graph, &options).unwrap();
    step.set_params(&t.feeds).unwrap();
    let inputs = step.input_feeds(&t.feeds);
    let mut line = format!("{} loss", w.id);
    for _ in 0..STEPS {
        let out = step.run(&inputs).unwrap();
        let loss = out.output("loss").unwrap().as_f32().unwrap()[0];
        write!(line, " {:08x}", loss.to_bits()).unwrap();
    }
    let mut params = step.params();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for (name, value) in &params {
        fnv1a(&mut hash, name.as_bytes());
        hash_data(&mut hash, value.data());
    }
    write!(line, "\n{} params {hash:016x}\n", w.id).unwrap();
    line
}

#[test]
fn workload_steps_are_bit_identical_to_the_recorded_ones() {
    let workloads = [
        adjoint_workloads::w1_mlp_small(0),
        adjoint_workloads::w2_mlp_wide(0),
        adjoint_workloads::w3_resmlp_ln(0),
        adjoint_workloads::w4_gpt_tiny(0),
    ];
    let got: String = workloads.iter().map(record).collect();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/step_golden.txt");
    if std::env::var_os("ADJOINT_BLESS").is_some() {
        std::fs::write(path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(path).unwrap();
    for (g, w) in got.lines().zip(want.lines()) {
        assert_eq!(g, w, "a compiled step no longer computes what it did");
    }
    assert_eq!(got.lines().count(), want.lines().count());
}
