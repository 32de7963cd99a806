//! Cranelift code generation: one JIT module per step, one function per loop nest, and one
//! entry point that calls them all in schedule order.
//!
//! Every generated function receives `ctx`, a table of pointers laid out by [`slot_of`]: the
//! host's `parallel_for`, the thread pool, the arena, then one pointer per parameter, input
//! and constant, and last the step's collective context ([`SlotLayout::collective`]). A nest function has the signature `fn(ctx, begin, end)` and runs iterations
//! `begin..end` of its outermost loop of more than one iteration
//! ([`crate::kernel::LoopNest::split_position`]); the entry `fn(ctx)` calls each nest directly over its
//! whole range, or through `parallel_for` (which splits the range over the pool's threads)
//! when the nest is large enough.

mod half;
mod nest;
mod ops;
mod parallel;
mod value;

use crate::collective::AllReduceDesc;
use crate::gemm::GemmDesc;
use crate::kernel::{AllReduceNest, BufferId, GemmNest, LoopNest, Program, Scalar, Storage};
use crate::math::MathOptions;
use crate::JitError;
use cranelift_codegen::ir::{types, AbiParam, InstBuilder, UserFuncName};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Fixed slots at the start of the pointer table.
pub const SLOT_PARALLEL_FOR: usize = 0;
/// The thread pool pointer.
pub const SLOT_POOL: usize = 1;
/// The arena base pointer.
pub const SLOT_ARENA: usize = 2;
/// The first parameter pointer.
pub const SLOT_FIRST_PARAM: usize = 3;

/// How the program's buffers map to pointer-table slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotLayout {
    /// Number of parameters.
    pub params: usize,
    /// Number of inputs.
    pub inputs: usize,
    /// Number of constants.
    pub constants: usize,
}

impl SlotLayout {
    /// Total number of slots.
    pub fn len(&self) -> usize {
        self.collective() + 1
    }

    /// The slot of the step's [`crate::collective::CollectiveContext`], after the constants.
    pub fn collective(&self) -> usize {
        SLOT_FIRST_PARAM + self.params + self.inputs + self.constants
    }

    /// True if there are no slots (never: the fixed slots are always there).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The slot of input `i`.
    pub fn input(&self, i: usize) -> usize {
        SLOT_FIRST_PARAM + self.params + i
    }

    /// The slot of constant `i`.
    pub fn constant(&self, i: usize) -> usize {
        SLOT_FIRST_PARAM + self.params + self.inputs + i
    }
}

/// The slot holding `buf`'s base pointer, and the byte offset from it.
pub fn slot_of(prog: &Program, buf: BufferId) -> (usize, usize) {
    let layout = layout_of(prog);
    match prog.buffers[buf.0 as usize].storage {
        Storage::Arena { offset } => (SLOT_ARENA, offset),
        Storage::Parameter { index } => (SLOT_FIRST_PARAM + index, 0),
        Storage::Input { index } => (layout.input(index), 0),
        Storage::Constant { index } => (layout.constant(index), 0),
    }
}

/// The slot layout of a program: a slot for each of the graph's parameters, inputs and
/// constants (the counts are fixed when the program is lowered).
pub fn layout_of(prog: &Program) -> SlotLayout {
    SlotLayout {
        params: prog.params,
        inputs: prog.inputs,
        constants: prog.constants.len(),
    }
}

/// Code generation settings.
#[derive(Clone, Debug)]
pub struct CodegenOptions {
    /// Run the Cranelift verifier on every function.
    pub verifier: bool,
    /// Threads of the pool (1: no parallel calls are generated).
    pub threads: usize,
    /// Threads that compile the functions (the code does not depend on it).
    pub compile_threads: usize,
    /// Keep the CLIF text and disassembly of every function.
    pub keep_text: bool,
    /// Allocate registers in a single pass instead of backtracking (see
    /// [`crate::RegisterAllocator`]).
    pub single_pass_regalloc: bool,
    /// Keep 16-bit float results unrounded (`f32`) inside a nest and round them only where
    /// they are stored (see [`crate::Options::excess_precision`]); `false` rounds every
    /// 16-bit result, as the interpreter does.
    pub excess_precision: bool,
    /// Run a matmul's elementwise epilogue on each block of the product inside the host
    /// kernel when [`crate::kernel::epilogue::block_epilogue`] allows it (see
    /// [`crate::Options::block_epilogue`]).
    pub block_epilogue: bool,
    /// Send long rows' `exp` and `tanh` to the host routines (`nest::wide`); set
    /// only where they run (see [`crate::Options::host_math`]).
    pub host_math: bool,
}

/// Time spent in each phase of code generation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PhaseTimes {
    /// Building CLIF from the kernel IR.
    pub lowering: Duration,
    /// Cranelift compilation (optimization, register allocation, emission).
    pub cranelift: Duration,
    /// Linking and making the code executable.
    pub finalize: Duration,
}

/// Compiled machine code of a step.
pub struct NativeCode {
    module: Option<JITModule>,
    /// Address of the entry function `fn(ctx)`.
    pub entry: *const u8,
    /// Number of generated functions (nests plus the entry).
    pub functions: usize,
    /// CLIF of every function (when kept).
    pub clif: String,
    /// Disassembly of every function (when kept).
    pub disasm: String,
    /// Phase times.
    pub times: PhaseTimes,
    /// Bytes of machine code.
    pub code_bytes: usize,
    /// Every nest function, in the order the entry point calls them (a matmul epilogue run
    /// block by block inside its host matmul is not among them: that matmul's nest calls it).
    pub nests: Vec<NestCall>,
    /// Matmul epilogues run block by block inside their host matmul.
    pub block_epilogues: usize,
    /// The descriptors of host matmuls; generated code holds their addresses, so each is
    /// boxed (its address must not move when the vector grows).
    #[allow(clippy::vec_box)]
    gemm_descs: Vec<Box<GemmDesc>>,
    /// The descriptors of all-reduces, boxed for the same reason.
    #[allow(clippy::vec_box)]
    all_reduce_descs: Vec<Box<AllReduceDesc>>,
}

/// One call the entry point makes: a nest function over the range of its split loop.
#[derive(Clone, Debug)]
pub struct NestCall {
    /// The function's name (`k3_matmul_n0`).
    pub name: String,
    /// Index of the kernel in [`Program::kernels`].
    pub kernel: usize,
    /// Index of the nest in its kernel.
    pub nest: usize,
    /// Address of the finalized `fn(ctx, begin, end)`.
    pub f: *const u8,
    /// Extent of the split loop ([`crate::kernel::LoopNest::split_position`]; units for a
    /// host matmul): the range the entry point passes.
    pub outer: i64,
    /// Chunks per thread when split ([`chunks_per_thread`]).
    pub chunks_per_thread: i64,
    /// Split over the pool's threads.
    pub parallel: bool,
}

// SAFETY: the module is never touched after `finalize_definitions` except to free its memory
// in `Drop`, and the code it holds is immutable; the entry pointer is plain data.
unsafe impl Send for NativeCode {}
// SAFETY: as above; calling the code concurrently is only done on distinct arenas by the
// runtime, which owns the mutable state.
unsafe impl Sync for NativeCode {}

impl Drop for NativeCode {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: `NativeCode` is the only owner of the module; every runtime that calls
            // into it holds an `Arc<NativeCode>`, so when this runs no call is in flight and no
            // function pointer into the module survives.
            unsafe { m.free_memory() };
            crate::runtime::LIVE_MODULES.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// The host matmul kernel's symbol in the module.
const GEMM_SYMBOL: &str = "adjoint_sgemm";
/// Its entry that runs the epilogue on each block of the product.
const GEMM_EPILOGUE_SYMBOL: &str = "adjoint_sgemm_epilogue";
/// Its entry that lands the product as a step of `C` in place.
const GEMM_STEP_SYMBOL: &str = "adjoint_sgemm_step";
/// The host all-reduce's symbol in the module.
const ALL_REDUCE_SYMBOL: &str = "adjoint_all_reduce";
/// Its entries for `bf16` and `f16` operands (an `f32` result).
const GEMM_BF16_SYMBOL: &str = "adjoint_gemm_bf16";
const GEMM_F16_SYMBOL: &str = "adjoint_gemm_f16";
/// The host routines for rows of `exp` and `tanh` (`math::host`).
const EXP_ROW_SYMBOL: &str = "adjoint_exp_f32";
const TANH_ROW_SYMBOL: &str = "adjoint_tanh_f32";

/// Work (multiply-adds) below which a nest with reductions runs on one thread.
const PARALLEL_WORK: usize = 1 << 15;
/// Elements below which an elementwise nest runs on one thread: handing a range to the pool
/// costs a few microseconds, about what 32K simple elements take.
const PARALLEL_ELEMENTS: usize = 1 << 16;
/// Multiply-adds below which a host matmul runs on one thread: about 30 µs of work on the
/// AVX2 kernel. Handing a product to the pool costs a few microseconds, so two threads must
/// save more than that.
const PARALLEL_GEMM: usize = 1 << 19;
/// The same for the AVX-512 kernel, about four times faster per multiply-add: W1's products
/// (2^19 to 2^20 of them, 5–10 µs) ran slower split over two threads than on one.
const PARALLEL_GEMM_AVX512: usize = 1 << 21;

/// Compiles `prog` to machine code for the host.
pub fn compile_program(prog: &Program, opts: &CodegenOptions) -> Result<NativeCode, JitError> {
    let t0 = Instant::now();
    let mut flags = settings::builder();
    let set = |f: &mut settings::Builder, k: &str, v: &str| {
        f.set(k, v)
            .map_err(|e| JitError::Codegen(format!("setting {k}={v}: {e}")))
    };
    set(&mut flags, "opt_level", "speed")?;
    let regalloc = if opts.single_pass_regalloc {
        "single_pass"
    } else {
        "backtracking"
    };
    set(&mut flags, "regalloc_algorithm", regalloc)?;
    set(
        &mut flags,
        "enable_verifier",
        if opts.verifier { "true" } else { "false" },
    )?;
    set(&mut flags, "use_colocated_libcalls", "false")?;
    set(&mut flags, "is_pic", "false")?;
    let isa = cranelift_native::builder()
        .map_err(|e| JitError::Codegen(format!("host not supported: {e}")))?
        .finish(settings::Flags::new(flags))
        .map_err(|e| JitError::Codegen(format!("building the host ISA: {e}")))?;
    let math = MathOptions::for_isa(isa.as_ref());
    let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
    jb.symbol(GEMM_SYMBOL, crate::gemm::adjoint_sgemm as *const u8);
    jb.symbol(
        GEMM_EPILOGUE_SYMBOL,
        crate::gemm::adjoint_sgemm_epilogue as *const u8,
    );
    jb.symbol(
        GEMM_STEP_SYMBOL,
        crate::gemm::adjoint_sgemm_step as *const u8,
    );
    jb.symbol(
        ALL_REDUCE_SYMBOL,
        crate::collective::adjoint_all_reduce as *const u8,
    );
    jb.symbol(
        GEMM_BF16_SYMBOL,
        crate::gemm::adjoint_gemm_bf16 as *const u8,
    );
    jb.symbol(GEMM_F16_SYMBOL, crate::gemm::adjoint_gemm_f16 as *const u8);
    jb.symbol(
        EXP_ROW_SYMBOL,
        crate::math::host::adjoint_exp_f32 as *const u8,
    );
    jb.symbol(
        TANH_ROW_SYMBOL,
        crate::math::host::adjoint_tanh_f32 as *const u8,
    );
    let mut module = JITModule::new(jb);
    crate::runtime::LIVE_MODULES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let mut code = NativeCode {
        module: None,
        entry: std::ptr::null(),
        functions: 0,
        clif: String::new(),
        disasm: String::new(),
        times: PhaseTimes::default(),
        code_bytes: 0,
        nests: Vec::new(),
        block_epilogues: 0,
        gemm_descs: Vec::new(),
        all_reduce_descs: Vec::new(),
    };
    let result = build(prog, opts, math, &mut module, &mut code, t0);
    code.module = Some(module);
    result?;
    Ok(code)
}

fn build(
    prog: &Program,
    opts: &CodegenOptions,
    math: MathOptions,
    module: &mut JITModule,
    code: &mut NativeCode,
    t0: Instant,
) -> Result<(), JitError> {
    let ptr = types::I64;
    let tcfg = module.target_config();
    let mut nest_sig = module.make_signature();
    nest_sig.params.extend([AbiParam::new(ptr); 3]);
    let mut entry_sig = module.make_signature();
    entry_sig.params.push(AbiParam::new(ptr));
    let mut pfor_sig = module.make_signature();
    pfor_sig.params.extend([AbiParam::new(ptr); 5]);

    let mut gemm_sig = module.make_signature();
    gemm_sig.params.extend([AbiParam::new(ptr); 6]);
    let declare = |module: &mut JITModule, name: &str| {
        module
            .declare_function(name, Linkage::Import, &gemm_sig)
            .map_err(|e| JitError::Codegen(format!("{e:?}")))
    };
    let gemm_fn = declare(module, GEMM_SYMBOL)?;
    // `fn(ctx, row0, row1, col0, col1)`: an epilogue over a block of its product.
    let mut block_sig = module.make_signature();
    block_sig.params.extend([AbiParam::new(ptr); 5]);
    let mut gemm_epilogue_sig = module.make_signature();
    gemm_epilogue_sig.params.extend([AbiParam::new(ptr); 8]);
    let gemm_epilogue_fn = module
        .declare_function(GEMM_EPILOGUE_SYMBOL, Linkage::Import, &gemm_epilogue_sig)
        .map_err(|e| JitError::Codegen(format!("{e:?}")))?;
    let mut gemm_step_sig = gemm_sig.clone();
    gemm_step_sig.params.push(AbiParam::new(types::F32));
    let gemm_step_fn = module
        .declare_function(GEMM_STEP_SYMBOL, Linkage::Import, &gemm_step_sig)
        .map_err(|e| JitError::Codegen(format!("{e:?}")))?;
    let gemm_bf16_fn = declare(module, GEMM_BF16_SYMBOL)?;
    let gemm_f16_fn = declare(module, GEMM_F16_SYMBOL)?;
    let mut all_reduce_sig = module.make_signature();
    all_reduce_sig.params.extend([AbiParam::new(ptr); 4]);
    let all_reduce_fn = module
        .declare_function(ALL_REDUCE_SYMBOL, Linkage::Import, &all_reduce_sig)
        .map_err(|e| JitError::Codegen(format!("{e:?}")))?;

    // `fn(values, n)`: a row routine of `math::host`.
    let mut row_sig = module.make_signature();
    row_sig.params.extend([AbiParam::new(ptr); 2]);
    let exp_row_fn = module
        .declare_function(EXP_ROW_SYMBOL, Linkage::Import, &row_sig)
        .map_err(|e| JitError::Codegen(format!("{e:?}")))?;
    let tanh_row_fn = module
        .declare_function(TANH_ROW_SYMBOL, Linkage::Import, &row_sig)
        .map_err(|e| JitError::Codegen(format!("{e:?}")))?;

    let mut fctx = FunctionBuilderContext::new();
    let mut ctx = module.make_context();
    ctx.set_disasm(opts.keep_text);
    // (function, outer extent, parallel, name, kernel, nest)
    let mut calls: Vec<(FuncId, usize, bool, String, usize, usize)> = Vec::new();
    let mut lowering = t0.elapsed();
    let mut batches = parallel::Batches::new(opts.compile_threads, opts.keep_text);
    let err = |e: cranelift_module::ModuleError| JitError::Codegen(format!("{e:?}"));
    for (ki, k) in prog.kernels.iter().enumerate() {
        let plan = nest::KernelPlan::new(k, math).with_host_math(opts.host_math);
        // The epilogue the previous nest (a host matmul) runs block by block, declared there.
        let mut block_epilogue: Option<FuncId> = None;
        for (ni, n) in k.nests.iter().enumerate() {
            let t = Instant::now();
            let (outer, parallel) = split_over_threads(k, n, opts.threads);
            let name = format!("{}_n{ni}", k.name);
            if let Some(id) = block_epilogue.take() {
                let (b, p) = begin_function(&mut ctx, &mut fctx, &block_sig, id);
                let nest_plan = plan.nest(k, n);
                let mut e = nest::NestEmitter::new(b, k, prog, math, &plan, p[0]);
                e.emit_block(n, &nest_plan, (p[1], p[2]), (p[3], p[4]));
                end_function(e.b, tcfg);
                lowering += t.elapsed();
                let f = take_function(&mut ctx, id, &name, opts.keep_text, code);
                batches.push(module, f)?;
                code.block_epilogues += 1;
                continue;
            }
            // A host matmul whose next nest is an epilogue it may run block by block, unless
            // that would take a parallel epilogue onto one thread.
            let fuse = opts.block_epilogue
                && n.gemm.is_some()
                && crate::kernel::epilogue::block_epilogue(prog, k, ni)
                && (parallel || !split_over_threads(k, &k.nests[ni + 1], opts.threads).1);
            if fuse {
                let id = module
                    .declare_function(
                        &format!("{}_n{}", k.name, ni + 1),
                        Linkage::Local,
                        &block_sig,
                    )
                    .map_err(err)?;
                block_epilogue = Some(id);
            }
            let id = module
                .declare_function(&name, Linkage::Local, &nest_sig)
                .map_err(err)?;
            {
                let (mut b, p) = begin_function(&mut ctx, &mut fctx, &nest_sig, id);
                let b = match (&n.gemm, &n.all_reduce) {
                    (Some(g), _) => {
                        let desc = Box::new(g.desc);
                        // By the product's 16-bit type, if any of its buffers has one (the
                        // others are f32: see `GemmDesc::wide`).
                        let callee = match (g.half_type(prog), block_epilogue) {
                            (Some(adjoint_ir::DType::Bf16), _) => gemm_bf16_fn,
                            (Some(_), _) => gemm_f16_fn,
                            (None, Some(_)) => gemm_epilogue_fn,
                            (None, None) if g.step.is_some() => gemm_step_fn,
                            (None, None) => gemm_fn,
                        };
                        let f = module.declare_func_in_func(callee, b.func);
                        let epilogue = block_epilogue.map(|id| {
                            let r = module.declare_func_in_func(id, b.func);
                            b.ins().func_addr(ptr, r)
                        });
                        emit_gemm_call(&mut b, prog, g, &desc, f, &p, epilogue);
                        code.gemm_descs.push(desc);
                        b
                    }
                    (None, Some(a)) => {
                        let desc = Box::new(AllReduceDesc {
                            elements: a.elements,
                            is_f64: u32::from(
                                prog.buffers[a.dst.0 as usize].dtype.size_bytes() == 8,
                            ),
                            is_mean: u32::from(a.kind == adjoint_ir::AllReduceKind::Mean),
                            replicas: a.replicas,
                        });
                        let f = module.declare_func_in_func(all_reduce_fn, b.func);
                        emit_all_reduce_call(&mut b, prog, a, &desc, f, &p);
                        code.all_reduce_descs.push(desc);
                        b
                    }
                    (None, None) => {
                        let nest_plan = plan.nest(k, n);
                        let host_math = (!nest_plan.wide.is_empty()).then(|| nest::HostMath {
                            exp: module.declare_func_in_func(exp_row_fn, b.func),
                            tanh: module.declare_func_in_func(tanh_row_fn, b.func),
                        });
                        let mut e = nest::NestEmitter::new(b, k, prog, math, &plan, p[0]);
                        e.excess_precision = opts.excess_precision;
                        e.host_math = host_math;
                        if parallel {
                            e.emit(n, &nest_plan, p[1], p[2]);
                        } else {
                            // Called once over the whole range (see the entry point below).
                            e.emit_whole(n, &nest_plan);
                        }
                        e.b
                    }
                };
                end_function(b, tcfg);
            }
            lowering += t.elapsed();
            let f = take_function(&mut ctx, id, &name, opts.keep_text, code);
            batches.push(module, f)?;
            calls.push((id, outer, parallel, name, ki, ni));
        }
    }
    // The entry point.
    let t = Instant::now();
    let entry_id = module
        .declare_function("step", Linkage::Local, &entry_sig)
        .map_err(err)?;
    {
        let (mut b, p) = begin_function(&mut ctx, &mut fctx, &entry_sig, entry_id);
        let table = p[0];
        let pfor_ref = b.import_signature(pfor_sig.clone());
        let mem = value::mem();
        for &(id, outer, parallel, _, ki, ni) in &calls {
            let f = module.declare_func_in_func(id, b.func);
            // Called through its absolute address: a direct call or a PC-relative address
            // reaches only ±2 GiB, and a very large step's code (the 10^6-op chain's is about
            // 2 GB) lies further apart than that, which made linking panic.
            b.func.dfg.ext_funcs[f].colocated = false;
            let n = b.ins().iconst(ptr, outer as i64);
            if parallel {
                let pfor = b
                    .ins()
                    .load(ptr, mem, table, (SLOT_PARALLEL_FOR * 8) as i32);
                let pool = b.ins().load(ptr, mem, table, (SLOT_POOL * 8) as i32);
                let addr = b.ins().func_addr(ptr, f);
                let per_thread = b
                    .ins()
                    .iconst(ptr, chunks_per_thread(&prog.kernels[ki].nests[ni]));
                b.ins()
                    .call_indirect(pfor_ref, pfor, &[pool, addr, table, n, per_thread]);
            } else {
                let zero = b.ins().iconst(ptr, 0);
                b.ins().call(f, &[table, zero, n]);
            }
        }
        end_function(b, tcfg);
    }
    let f = take_function(&mut ctx, entry_id, "step", opts.keep_text, code);
    lowering += t.elapsed();
    batches.push(module, f)?;
    batches.flush(module)?;
    code.code_bytes += batches.code_bytes;
    code.disasm += &batches.disasm;
    let cranelift = batches.time;
    let t = Instant::now();
    module
        .finalize_definitions()
        .map_err(|e| JitError::Codegen(format!("finalizing: {e:?}")))?;
    code.entry = module.get_finalized_function(entry_id);
    code.nests = calls
        .into_iter()
        .map(|(id, outer, parallel, name, kernel, nest)| NestCall {
            chunks_per_thread: chunks_per_thread(&prog.kernels[kernel].nests[nest]),
            name,
            kernel,
            nest,
            f: module.get_finalized_function(id),
            outer: outer as i64,
            parallel,
        })
        .collect();
    code.functions = code.nests.len() + 1;
    code.times = PhaseTimes {
        lowering,
        cranelift,
        finalize: t.elapsed(),
    };
    Ok(())
}

/// Whether nest `n` of `k` is split over the pool's `threads` (by the size of its work), and
/// the extent of its outermost range (units for a host matmul).
fn split_over_threads(k: &crate::kernel::Kernel, n: &LoopNest, threads: usize) -> (usize, bool) {
    let outer = match &n.gemm {
        Some(g) => g.desc.units() as usize,
        None => n
            .vars
            .get(n.split_position(&k.vars))
            .map_or(1, |v| k.vars[v.0 as usize]),
    };
    // No reduction inside: the work is the iteration count.
    let iterations: usize = n.vars.iter().map(|v| k.vars[v.0 as usize]).product();
    let elementwise = n.gemm.is_none() && iterations == k.work(n);
    let threshold = if n.gemm.is_some() {
        match crate::gemm::selected_isa() {
            crate::gemm::Isa::Avx512 => PARALLEL_GEMM_AVX512,
            crate::gemm::Isa::Avx2 | crate::gemm::Isa::Generic => PARALLEL_GEMM,
        }
    } else if elementwise {
        PARALLEL_ELEMENTS
    } else {
        PARALLEL_WORK
    };
    let parallel = n.parallel && threads > 1 && outer >= 2 && k.work(n) >= threshold;
    (outer, parallel)
}

/// Starts building function `id` with signature `sig` in `ctx`: a builder positioned in the
/// entry block, and the entry block's parameters (the function's arguments).
fn begin_function<'a>(
    ctx: &'a mut Context,
    fctx: &'a mut FunctionBuilderContext,
    sig: &cranelift_codegen::ir::Signature,
    id: FuncId,
) -> (FunctionBuilder<'a>, Vec<cranelift_codegen::ir::Value>) {
    ctx.func.signature = sig.clone();
    ctx.func.name = UserFuncName::user(0, id.as_u32());
    let mut b = FunctionBuilder::new(&mut ctx.func, fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let p = b.block_params(entry).to_vec();
    (b, p)
}

/// Ends a function started with [`begin_function`]: returns, seals its blocks and finalizes
/// it under `tcfg`.
fn end_function(mut b: FunctionBuilder<'_>, tcfg: cranelift_codegen::isa::TargetFrontendConfig) {
    b.ins().return_(&[]);
    b.seal_all_blocks();
    b.finalize(tcfg);
}

/// How many chunks per thread the pool cuts a parallel nest's range into: one for a host
/// matmul (each thread's units then pack their shared operand once), a few for generated
/// nests.
fn chunks_per_thread(n: &LoopNest) -> i64 {
    if n.gemm.is_some() {
        crate::runtime::pool::GEMM_CHUNKS_PER_THREAD
    } else {
        crate::runtime::pool::CHUNKS_PER_THREAD
    }
}

/// The body of a host-matmul nest: `adjoint_sgemm(desc, a, b, c, begin, end)` with each
/// operand's address of element 0 — or, with the address of an `epilogue` function
/// `fn(ctx, row0, row1, col0, col1)`, `adjoint_sgemm_epilogue(desc, a, b, c, begin, end,
/// epilogue, ctx)`, which runs it on each block of the product as it becomes final; or, for a
/// product that steps `C`, `adjoint_sgemm_step(desc, a, b, c, begin, end, scale)`.
fn emit_gemm_call(
    b: &mut FunctionBuilder<'_>,
    prog: &Program,
    g: &GemmNest,
    desc: &GemmDesc,
    f: cranelift_codegen::ir::FuncRef,
    params: &[cranelift_codegen::ir::Value],
    epilogue: Option<cranelift_codegen::ir::Value>,
) {
    let ptr = types::I64;
    let mut args = vec![b.ins().iconst(ptr, desc as *const GemmDesc as i64)];
    for (buf, off) in [g.a, g.b, g.c] {
        let (slot, bytes) = slot_of(prog, buf);
        let base = b
            .ins()
            .load(ptr, value::mem(), params[0], (slot * 8) as i32);
        let esize = prog.buffers[buf.0 as usize].dtype.size_bytes() as i64;
        args.push(b.ins().iadd_imm_s(base, bytes as i64 + off * esize));
    }
    args.extend([params[1], params[2]]);
    if let Some(e) = epilogue {
        args.extend([e, params[0]]);
    }
    if let Some(step) = &g.step {
        let scale = match step.scale {
            Scalar::Const(x) => b.ins().f32const(x),
            Scalar::Load { buffer, offset } => {
                let (slot, bytes) = slot_of(prog, buffer);
                let base = b
                    .ins()
                    .load(ptr, value::mem(), params[0], (slot * 8) as i32);
                let at = b.ins().iadd_imm_s(base, bytes as i64 + offset * 4);
                b.ins().load(types::F32, value::mem(), at, 0)
            }
        };
        args.push(if step.negate {
            b.ins().fneg(scale)
        } else {
            scale
        });
    }
    b.ins().call(f, &args);
}

/// The body of an all-reduce nest: `adjoint_all_reduce(collective, desc, src, dst)`, with the
/// step's collective context from its table slot.
fn emit_all_reduce_call(
    b: &mut FunctionBuilder<'_>,
    prog: &Program,
    a: &AllReduceNest,
    desc: &AllReduceDesc,
    f: cranelift_codegen::ir::FuncRef,
    params: &[cranelift_codegen::ir::Value],
) {
    let ptr = types::I64;
    let slot = layout_of(prog).collective();
    let ctx = b
        .ins()
        .load(ptr, value::mem(), params[0], (slot * 8) as i32);
    let mut args = vec![
        ctx,
        b.ins().iconst(ptr, desc as *const AllReduceDesc as i64),
    ];
    for buf in [a.src, a.dst] {
        let (slot, bytes) = slot_of(prog, buf);
        let base = b
            .ins()
            .load(ptr, value::mem(), params[0], (slot * 8) as i32);
        args.push(b.ins().iadd_imm_s(base, bytes as i64));
    }
    b.ins().call(f, &args);
}

/// Moves the function built in `ctx` out for compilation, writing its CLIF to the dump text.
fn take_function(
    ctx: &mut Context,
    id: FuncId,
    name: &str,
    keep_text: bool,
    code: &mut NativeCode,
) -> parallel::PendingFunction {
    if keep_text {
        let _ = writeln!(code.clif, "; {name}\n{}", ctx.func.display());
    }
    parallel::PendingFunction {
        id,
        name: name.to_string(),
        func: std::mem::replace(&mut ctx.func, cranelift_codegen::ir::Function::new()),
    }
}
