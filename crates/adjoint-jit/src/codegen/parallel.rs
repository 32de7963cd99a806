//! Cranelift compilation of a step's functions on several threads.
//!
//! Building the CLIF of every function is sequential (it declares functions in the module);
//! compiling each one to machine code is independent of the others, so the functions are
//! compiled on up to `threads` scoped threads, each with its own [`Context`], and then
//! defined in the module in their original order from the finished bytes and relocations.
//! The machine code of a function does not depend on which thread compiled it. Functions are
//! built, compiled and defined in batches of [`BATCH_FUNCTIONS`] ([`Batches`]), so the CLIF
//! held at a time does not grow with the step.

use crate::JitError;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::Function;
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::{CodegenError, Context};
use cranelift_jit::JITModule;
use cranelift_module::{FuncId, Module, ModuleReloc};
use std::time::{Duration, Instant};

/// A function whose CLIF is built and that waits to be compiled.
pub(super) struct PendingFunction {
    /// Its id in the module.
    pub id: FuncId,
    /// Its name, for errors and dumps.
    pub name: String,
    /// Its CLIF.
    pub func: Function,
}

/// A compiled function, ready to be defined in the module.
struct MachineCode {
    bytes: Vec<u8>,
    alignment: u64,
    relocs: Vec<ModuleReloc>,
    vcode: Option<String>,
}

/// What compiling the pending functions gave: bytes of machine code and, with `keep_text`,
/// the disassembly of each function in order.
pub(super) struct Compiled {
    pub code_bytes: usize,
    pub disasm: String,
}

/// Functions whose CLIF is held at a time: [`Batches`] compiles and defines them when this many
/// are built. Holding every function of a step instead took tens of gigabytes for the
/// 10^6-op chain of `tests/deep_chain.rs` (140,000 functions); a batch keeps the memory of
/// code generation bounded while giving every compile thread many functions.
pub(super) const BATCH_FUNCTIONS: usize = 256;

/// Built functions waiting to be compiled, compiled and defined in order [`BATCH_FUNCTIONS`]
/// at a time, and what compiling them gave so far.
pub(super) struct Batches {
    pending: Vec<PendingFunction>,
    threads: usize,
    keep_text: bool,
    /// Bytes of machine code defined so far.
    pub code_bytes: usize,
    /// Disassembly of the functions defined so far (with `keep_text`).
    pub disasm: String,
    /// Time spent compiling and defining.
    pub time: Duration,
}

impl Batches {
    /// No functions yet; they will be compiled on up to `threads` threads.
    pub fn new(threads: usize, keep_text: bool) -> Batches {
        Batches {
            pending: Vec::new(),
            threads,
            keep_text,
            code_bytes: 0,
            disasm: String::new(),
            time: Duration::ZERO,
        }
    }

    /// Adds a built function; compiles and defines the batch when it is full.
    pub fn push(&mut self, module: &mut JITModule, f: PendingFunction) -> Result<(), JitError> {
        self.pending.push(f);
        if self.pending.len() >= BATCH_FUNCTIONS {
            self.flush(module)?;
        }
        Ok(())
    }

    /// Compiles and defines every function still pending.
    pub fn flush(&mut self, module: &mut JITModule) -> Result<(), JitError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let t = Instant::now();
        let pending = std::mem::take(&mut self.pending);
        let done = compile_and_define(module, pending, self.threads, self.keep_text)?;
        self.code_bytes += done.code_bytes;
        self.disasm += &done.disasm;
        self.time += t.elapsed();
        Ok(())
    }
}

/// Compiles `pending` on up to `threads` threads and defines every function in `module`, in
/// order.
fn compile_and_define(
    module: &mut JITModule,
    pending: Vec<PendingFunction>,
    threads: usize,
    keep_text: bool,
) -> Result<Compiled, JitError> {
    let threads = threads.clamp(1, pending.len().max(1));
    let ids: Vec<(FuncId, String)> = pending.iter().map(|p| (p.id, p.name.clone())).collect();
    let mut shares: Vec<Vec<(usize, PendingFunction)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, p) in pending.into_iter().enumerate() {
        shares[i % threads].push((i, p));
    }
    let isa = module.isa();
    let mut results: Vec<Option<Result<MachineCode, JitError>>> =
        (0..ids.len()).map(|_| None).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = shares
            .into_iter()
            .map(|share| {
                s.spawn(move || {
                    share
                        .into_iter()
                        .map(|(i, p)| (i, compile_function(isa, p, keep_text)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(done) => {
                    for (i, r) in done {
                        results[i] = Some(r);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    let mut out = Compiled {
        code_bytes: 0,
        disasm: String::new(),
    };
    for ((id, name), r) in ids.into_iter().zip(results) {
        let code = r.expect("every function is compiled by one thread")?;
        module
            .define_function_bytes(id, code.alignment, &code.bytes, &code.relocs)
            .map_err(|e| JitError::Codegen(format!("defining {name}: {e:?}")))?;
        out.code_bytes += code.bytes.len();
        if let Some(v) = code.vcode {
            out.disasm += &format!("; {name}\n{v}\n");
        }
    }
    Ok(out)
}

fn compile_function(
    isa: &dyn TargetIsa,
    p: PendingFunction,
    keep_text: bool,
) -> Result<MachineCode, JitError> {
    let mut ctx = Context::for_function(p.func);
    ctx.set_disasm(keep_text);
    let alignment = ctx
        .compile(isa, &mut ControlPlane::default())
        .map_err(|e| {
            let detail = match &e.inner {
                CodegenError::Verifier(errors) => format!("{errors}"),
                other => format!("{other:?}"),
            };
            JitError::Codegen(format!("compiling {}: {detail}", p.name))
        })?
        .buffer
        .alignment as u64;
    let alignment = alignment
        .max(isa.function_alignment().minimum as u64)
        .max(isa.symbol_alignment());
    let compiled = ctx
        .compiled_code()
        .expect("a compiled context holds its code");
    let bytes = compiled.code_buffer().to_vec();
    let vcode = compiled.vcode.clone();
    let relocs = compiled
        .buffer
        .relocs()
        .iter()
        .map(|r| ModuleReloc::from_mach_reloc(r, &ctx.func, p.id))
        .collect();
    Ok(MachineCode {
        bytes,
        alignment,
        relocs,
        vcode,
    })
}
