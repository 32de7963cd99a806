//! The runtime: owns a compiled step's arena and parameter storage, checks every feed, and is
//! the one place that calls native code.

pub mod pool;
pub mod profile;
pub mod storage;

use crate::codegen::{NativeCode, PhaseTimes, SlotLayout, SLOT_ARENA, SLOT_FIRST_PARAM};
use crate::codegen::{SLOT_PARALLEL_FOR, SLOT_POOL};
use crate::collective::CollectiveContext;
use crate::kernel::Program;
use crate::JitError;
use adjoint_ir::{
    bf16, f16, Collective, DType, Feeds, HostData, HostTensor, Step, StepOutputs, TensorType,
};
use pool::Pool;
use profile::{Profile, ProfileEntry};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;
use storage::Storage;

/// Number of JIT modules whose memory has not been freed yet (for leak tests and diagnostics).
pub static LIVE_MODULES: AtomicUsize = AtomicUsize::new(0);

/// Where a value is found after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// At a byte offset of the arena.
    Arena(usize),
    /// In parameter `i`'s storage.
    Param(usize),
    /// The tensor fed as input `i`.
    Input(usize),
}

/// The interface of a compiled step: its inputs, parameters and outputs.
#[derive(Clone, Debug)]
pub(crate) struct Interface {
    pub inputs: Vec<(String, TensorType)>,
    pub params: Vec<(String, TensorType)>,
    pub outputs: Vec<(String, TensorType, Source)>,
    /// Parameter updates the runtime copies after the step: `(param, source)`.
    pub updates: Vec<(usize, Source)>,
    pub constants: Vec<Vec<u8>>,
    pub arena_bytes: usize,
    pub layout: SlotLayout,
}

/// Compile-time figures of a step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompileStats {
    /// The graph passes (`adjoint_opt::optimize`).
    pub optimizing: Duration,
    /// What the graph passes did, per pass (`None` when `Options::passes` is off).
    pub passes: Option<adjoint_opt::PassReport>,
    /// Rematerialization, fusion and memory planning.
    pub planning: Duration,
    /// Kernel IR and CLIF construction, Cranelift compilation, finalization.
    pub codegen: PhaseTimes,
    /// Kernels (fusion groups).
    pub kernels: usize,
    /// Native functions (loop nests plus the entry point).
    pub functions: usize,
    /// Matmul epilogues run on each block of their product inside the host kernel
    /// ([`crate::Options::block_epilogue`]).
    pub block_epilogues: usize,
    /// Bytes of machine code.
    pub code_bytes: usize,
    /// Bytes of the arena (memory plan plus kernel scratch).
    pub arena_bytes: usize,
    /// FLOPs the step recomputes in the backward (rematerialization).
    pub recompute_flops: u64,
    /// What the memory-budget search did, when `Options::memory_budget` was set.
    pub budget: Option<adjoint_opt::BudgetReport>,
    /// True when the code came from the compile cache.
    pub cached: bool,
}

impl CompileStats {
    /// Total compile time (planning and code generation).
    pub fn total(&self) -> Duration {
        self.optimizing
            + self.planning
            + self.codegen.lowering
            + self.codegen.cranelift
            + self.codegen.finalize
    }
}

/// Everything compiled for a graph: shared by the steps made from it (and the cache).
pub(crate) struct Compiled {
    pub native: NativeCode,
    pub program: Program,
    pub iface: Interface,
    pub stats: CompileStats,
}

/// A compiled training step: native code plus its arena and parameter values.
///
/// Made by [`crate::compile`]. Parameters must be given values ([`CompiledStep::set_param`]
/// or [`CompiledStep::set_params`]) before the first [`CompiledStep::run`]; each run reads the
/// fed inputs, computes the outputs, and writes every parameter update in place.
pub struct CompiledStep {
    code: Arc<Compiled>,
    params: Vec<Option<Storage>>,
    arena: Storage,
    pool: Arc<Pool>,
    stats: CompileStats,
    profile: Option<Profile>,
    /// Place the arena, parameters, inputs and constants against guard pages.
    guard: bool,
    /// The data-parallel group `all_reduce` nests reduce over (boxed: generated code holds
    /// its address during a call).
    collective: Box<CollectiveContext>,
}

impl CompiledStep {
    pub(crate) fn new(
        code: Arc<Compiled>,
        threads: usize,
        cached: bool,
        profile: bool,
        guard: bool,
    ) -> Result<CompiledStep, JitError> {
        let mut stats = code.stats.clone();
        stats.cached = cached;
        let profile = profile.then(|| Profile {
            entries: code
                .native
                .nests
                .iter()
                .map(|n| {
                    let k = &code.program.kernels[n.kernel];
                    ProfileEntry {
                        name: n.name.clone(),
                        kernel: n.kernel,
                        nest: n.nest,
                        work: k.work(&k.nests[n.nest]),
                        parallel: n.parallel,
                        calls: 0,
                        total: Duration::ZERO,
                    }
                })
                .collect(),
        });
        let arena = Storage::new(code.iface.arena_bytes, guard, "the arena")?;
        Ok(CompiledStep {
            profile,
            guard,
            params: (0..code.iface.params.len()).map(|_| None).collect(),
            arena,
            pool: Pool::shared(threads),
            code,
            stats,
            collective: Box::default(),
        })
    }

    /// Makes this step one replica of a data-parallel group: its `all_reduce` nodes combine
    /// values with the other replicas through `collective` (`None`: a step of its own, which
    /// only allows one-replica `all_reduce`s).
    pub fn set_collective(&mut self, collective: Option<Arc<dyn Collective>>) {
        self.collective.collective = collective;
    }

    /// Runs one step: checks `feeds` (exactly the graph's inputs, each of its declared type),
    /// runs the native code, writes parameter updates, and returns the outputs.
    pub fn run(&mut self, feeds: &Feeds) -> Result<StepOutputs, JitError> {
        let code = Arc::clone(&self.code);
        let iface = &code.iface;
        for name in feeds.keys() {
            if !iface.inputs.iter().any(|(n, _)| n == name) {
                let reason = if iface.params.iter().any(|(n, _)| n == name) {
                    "is a parameter: the step owns its value; set it with set_param".to_string()
                } else {
                    "names no input of the graph".to_string()
                };
                return Err(JitError::UnknownFeed {
                    name: name.clone(),
                    reason,
                });
            }
        }
        let mut inputs: Vec<&HostTensor> = Vec::with_capacity(iface.inputs.len());
        for (name, ty) in &iface.inputs {
            let t = feeds.get(name).ok_or_else(|| JitError::MissingFeed {
                name: name.clone(),
                expected: ty.clone(),
            })?;
            if t.ty() != *ty {
                return Err(JitError::TypeMismatch {
                    name: name.clone(),
                    expected: ty.clone(),
                    got: t.ty(),
                });
            }
            inputs.push(t);
        }
        for (i, (name, _)) in iface.params.iter().enumerate() {
            if self.params[i].is_none() {
                return Err(JitError::UninitializedParameter { name: name.clone() });
            }
        }
        self.call(&inputs)?;
        if let Some(e) = self.collective.take_error() {
            return Err(JitError::Collective(e));
        }
        let outputs = iface
            .outputs
            .iter()
            .map(|(name, ty, src)| (name.clone(), self.read(*src, ty, &inputs)))
            .collect();
        // Updates not written in place: read every source first (an update may read another
        // parameter), then store.
        let mut new: Vec<(usize, Storage)> = Vec::with_capacity(iface.updates.len());
        for &(p, src) in &iface.updates {
            let (name, ty) = &iface.params[p];
            let what = format!("the update of `{name}`");
            let bytes = self.bytes(src, ty, &inputs);
            new.push((p, Storage::from_bytes(bytes, self.guard, &what)?));
        }
        for (p, bytes) in new {
            self.params[p] = Some(bytes);
        }
        Ok(StepOutputs { outputs })
    }

    /// Calls the entry point with a pointer table for this step's buffers.
    fn call(&mut self, inputs: &[&HostTensor]) -> Result<(), JitError> {
        let code = Arc::clone(&self.code);
        // With guard pages, inputs and constants are copied into guarded storage for the call.
        let mut guarded: Vec<Storage> = Vec::new();
        if self.guard {
            for (i, t) in inputs.iter().enumerate() {
                let what = format!("input `{}`", code.iface.inputs[i].0);
                guarded.push(Storage::from_bytes(data_bytes(t.data()), true, &what)?);
            }
            for c in &code.iface.constants {
                guarded.push(Storage::from_bytes(c, true, "a constant")?);
            }
        }
        let layout = code.iface.layout;
        let mut table: Vec<*mut u8> = vec![std::ptr::null_mut(); layout.len()];
        table[SLOT_PARALLEL_FOR] = pool::parallel_for as *mut u8;
        table[SLOT_POOL] = Arc::as_ptr(&self.pool) as *mut u8;
        table[SLOT_ARENA] = self.arena.as_mut_ptr();
        for (i, p) in self.params.iter_mut().enumerate() {
            table[SLOT_FIRST_PARAM + i] = p.as_mut().expect("checked before the call").as_mut_ptr();
        }
        for (i, t) in inputs.iter().enumerate() {
            table[layout.input(i)] = match guarded.get_mut(i) {
                Some(g) => g.as_mut_ptr(),
                None => data_ptr(t.data()),
            };
        }
        for (i, c) in code.iface.constants.iter().enumerate() {
            table[layout.constant(i)] = match guarded.get_mut(inputs.len() + i) {
                Some(g) => g.as_mut_ptr(),
                None => c.as_ptr() as *mut u8,
            };
        }
        table[layout.collective()] = &*self.collective as *const CollectiveContext as *mut u8;
        if let Some(profile) = self.profile.as_mut() {
            for (call, entry) in code.native.nests.iter().zip(profile.entries.iter_mut()) {
                let t = std::time::Instant::now();
                // SAFETY: `call.f` is a finalized nest function `fn(ctx, begin, end)` of
                // `code.native` (alive through the `Arc` above), called in the entry point's
                // order over the same range with the same thread split, so every buffer
                // argument is valid exactly as for the entry point below.
                unsafe {
                    let f = std::mem::transmute::<*const u8, pool::NestFn>(call.f);
                    let ctx = table.as_ptr() as *const u8;
                    if call.parallel {
                        self.pool.run(f, ctx, call.outer, call.chunks_per_thread);
                    } else {
                        f(ctx, 0, call.outer);
                    }
                }
                entry.calls += 1;
                entry.total += t.elapsed();
            }
            return Ok(());
        }
        // SAFETY: `entry` is the finalized `fn(ctx)` of `code.native`, which stays alive (the
        // `Arc` above) for the call. Every slot of the table points to a live buffer of the
        // size the kernels were generated for: the arena was allocated with the program's
        // arena size, each parameter's bytes were checked against its type by `set_param`,
        // each input against its declared type in `run`, and constants come from the program.
        // Generated code only indexes inside those shapes (guarded reads clamp their index),
        // writes only the arena and parameter storage (which `&mut self` owns exclusively),
        // and splits work over the pool on disjoint ranges, waiting for all of it to finish.
        unsafe {
            let entry: unsafe extern "C" fn(*const *mut u8) = std::mem::transmute::<
                *const u8,
                unsafe extern "C" fn(*const *mut u8),
            >(code.native.entry);
            entry(table.as_ptr());
        }
        Ok(())
    }

    fn bytes<'s>(&'s self, src: Source, ty: &TensorType, inputs: &[&'s HostTensor]) -> &'s [u8] {
        match src {
            Source::Arena(off) => &self.arena.as_slice()[off..off + ty.size_bytes()],
            Source::Param(i) => self.params[i].as_ref().expect("initialized").as_slice(),
            Source::Input(i) => data_bytes(inputs[i].data()),
        }
    }

    fn read(&self, src: Source, ty: &TensorType, inputs: &[&HostTensor]) -> HostTensor {
        from_bytes(ty, self.bytes(src, ty, inputs))
    }

    /// The current value of parameter `name`, or `None` if it has none or is not a parameter.
    pub fn param(&self, name: &str) -> Option<HostTensor> {
        let i = self.code.iface.params.iter().position(|(n, _)| n == name)?;
        let ty = &self.code.iface.params[i].1;
        self.params[i]
            .as_ref()
            .map(|b| from_bytes(ty, b.as_slice()))
    }

    /// Sets parameter `name`; its dtype and shape must be the declared ones.
    pub fn set_param(&mut self, name: &str, value: &HostTensor) -> Result<(), JitError> {
        let i = self
            .code
            .iface
            .params
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| JitError::UnknownParameter {
                name: name.to_string(),
            })?;
        let ty = &self.code.iface.params[i].1;
        if value.ty() != *ty {
            return Err(JitError::TypeMismatch {
                name: name.to_string(),
                expected: ty.clone(),
                got: value.ty(),
            });
        }
        let what = format!("parameter `{name}`");
        self.params[i] = Some(Storage::from_bytes(
            data_bytes(value.data()),
            self.guard,
            &what,
        )?);
        Ok(())
    }

    /// Sets every parameter named in `values`; entries naming inputs are skipped (so the same
    /// map can feed the interpreter), any other name is an error.
    pub fn set_params(&mut self, values: &Feeds) -> Result<(), JitError> {
        for (name, t) in values {
            if self.code.iface.inputs.iter().any(|(n, _)| n == name) {
                continue;
            }
            self.set_param(name, t)?;
        }
        Ok(())
    }

    /// Every parameter that has a value, in the graph's parameter order.
    pub fn params(&self) -> Vec<(String, HostTensor)> {
        self.code
            .iface
            .params
            .iter()
            .filter_map(|(n, _)| self.param(n).map(|t| (n.clone(), t)))
            .collect()
    }

    /// The names and types of the step's inputs.
    pub fn inputs(&self) -> &[(String, TensorType)] {
        &self.code.iface.inputs
    }

    /// The entries of `feeds` that are inputs of this step: with [`CompiledStep::set_params`],
    /// which takes the parameters from the same map, one map of initial values and data feeds
    /// a step.
    pub fn input_feeds(&self, feeds: &Feeds) -> Feeds {
        feeds
            .iter()
            .filter(|(n, _)| self.code.iface.inputs.iter().any(|(i, _)| i == *n))
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect()
    }

    /// The kernel IR of the step, as text.
    pub fn kernels(&self) -> String {
        self.code.program.to_string()
    }

    /// The kernel IR of the step.
    pub fn program(&self) -> &Program {
        &self.code.program
    }

    /// Per-nest wall times of the runs so far, when compiled with `Options::profile`.
    pub fn profile(&self) -> Option<&Profile> {
        self.profile.as_ref()
    }

    /// Starts the per-nest times again from zero (no effect without `Options::profile`).
    pub fn reset_profile(&mut self) {
        if let Some(p) = self.profile.as_mut() {
            for e in &mut p.entries {
                e.calls = 0;
                e.total = Duration::ZERO;
            }
        }
    }

    /// Compile-time figures.
    pub fn stats(&self) -> &CompileStats {
        &self.stats
    }

    /// The CLIF of every generated function (empty unless dumps were requested).
    pub fn clif(&self) -> &str {
        &self.code.native.clif
    }

    /// The disassembly of every generated function (empty unless dumps were requested).
    pub fn disassembly(&self) -> &str {
        &self.code.native.disasm
    }
}

fn data_ptr(d: &HostData) -> *mut u8 {
    match d {
        HostData::F32(v) => v.as_ptr() as *mut u8,
        HostData::F64(v) => v.as_ptr() as *mut u8,
        HostData::I32(v) => v.as_ptr() as *mut u8,
        HostData::Bool(v) => v.as_ptr() as *mut u8,
        HostData::Bf16(v) => v.as_ptr() as *mut u8,
        HostData::F16(v) => v.as_ptr() as *mut u8,
    }
}

/// The elements of `d` as bytes (native endianness, `bool` as 0/1).
fn data_bytes(d: &HostData) -> &[u8] {
    let (ptr, len) = match d {
        HostData::F32(v) => (v.as_ptr() as *const u8, v.len() * 4),
        HostData::F64(v) => (v.as_ptr() as *const u8, v.len() * 8),
        HostData::I32(v) => (v.as_ptr() as *const u8, v.len() * 4),
        HostData::Bool(v) => (v.as_ptr() as *const u8, v.len()),
        HostData::Bf16(v) => (v.as_ptr() as *const u8, v.len() * 2),
        HostData::F16(v) => (v.as_ptr() as *const u8, v.len() * 2),
    };
    // SAFETY: the pointer and length describe exactly the initialized elements of the vector,
    // which is borrowed for the returned lifetime; every byte of an f32/f64/i32/bf16/f16 is
    // initialized (the 16-bit floats are `repr(transparent)` over `u16`) and a `bool` is one
    // byte holding 0 or 1.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// A tensor of type `ty` from its bytes.
pub(crate) fn from_bytes(ty: &TensorType, b: &[u8]) -> HostTensor {
    let data = match ty.dtype {
        DType::F32 => HostData::F32(
            b.chunks_exact(4)
                .map(|c| f32::from_ne_bytes(c.try_into().expect("4 bytes")))
                .collect(),
        ),
        DType::F64 => HostData::F64(
            b.chunks_exact(8)
                .map(|c| f64::from_ne_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        ),
        DType::I32 => HostData::I32(
            b.chunks_exact(4)
                .map(|c| i32::from_ne_bytes(c.try_into().expect("4 bytes")))
                .collect(),
        ),
        DType::Bool => HostData::Bool(b.iter().map(|&x| x != 0).collect()),
        DType::Bf16 => HostData::Bf16(
            b.chunks_exact(2)
                .map(|c| bf16::from_bits(u16::from_ne_bytes(c.try_into().expect("2 bytes"))))
                .collect(),
        ),
        DType::F16 => HostData::F16(
            b.chunks_exact(2)
                .map(|c| f16::from_bits(u16::from_ne_bytes(c.try_into().expect("2 bytes"))))
                .collect(),
        ),
    };
    HostTensor::new(ty.shape.clone(), data).expect("byte count matches the type")
}

/// The bytes of constant data of dtype `d`.
pub(crate) fn constant_bytes(d: DType, values: &[f64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * d.size_bytes());
    for &v in values {
        match d {
            DType::F32 => out.extend_from_slice(&(v as f32).to_ne_bytes()),
            DType::F64 => out.extend_from_slice(&v.to_ne_bytes()),
            DType::I32 => out.extend_from_slice(&(v as i32).to_ne_bytes()),
            DType::Bool => out.push((v != 0.0) as u8),
            // A literal of a 16-bit type holds values of that type: the conversion is exact.
            DType::Bf16 => out.extend_from_slice(&bf16::from_f32(v as f32).to_bits().to_ne_bytes()),
            DType::F16 => out.extend_from_slice(&f16::from_f32(v as f32).to_bits().to_ne_bytes()),
        }
    }
    out
}

/// The interpreter's and the compiled step's common interface: see [`Step`]. Each method is the
/// inherent one of the same name.
impl Step for CompiledStep {
    type Error = JitError;

    fn input_types(&self) -> Vec<(String, TensorType)> {
        self.inputs().to_vec()
    }

    fn param_types(&self) -> Vec<(String, TensorType)> {
        self.code.iface.params.clone()
    }

    fn set_param(&mut self, name: &str, value: &HostTensor) -> Result<(), JitError> {
        CompiledStep::set_param(self, name, value)
    }

    fn set_params(&mut self, values: &Feeds) -> Result<(), JitError> {
        CompiledStep::set_params(self, values)
    }

    fn param(&self, name: &str) -> Option<HostTensor> {
        CompiledStep::param(self, name)
    }

    fn params(&self) -> Feeds {
        CompiledStep::params(self).into_iter().collect()
    }

    fn run(&mut self, inputs: &Feeds) -> Result<StepOutputs, JitError> {
        CompiledStep::run(self, inputs)
    }

    fn set_collective(&mut self, collective: Option<Arc<dyn Collective>>) {
        CompiledStep::set_collective(self, collective)
    }
}
