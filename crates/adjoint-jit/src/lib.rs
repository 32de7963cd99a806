//! # adjoint-jit
//!
//! The code generator of Adjoint: a planned graph (fusion groups and a memory plan from
//! `adjoint-opt`) becomes a [`kernel::Program`] of loop nests, which Cranelift compiles into
//! one JIT module with one entry point per training step. The runtime ([`CompiledStep`]) owns
//! the arena and the parameter storage, checks every feed, and updates parameters in place.
//!
//! ```
//! use adjoint_ir::{Builder, DType, Feeds, HostTensor};
//! use adjoint_jit::{compile, Options};
//!
//! let b = Builder::new("affine");
//! let x = b.input("x", DType::F32, [2, 2]);
//! let w = b.parameter("w", DType::F32, [2]);
//! b.output("y", (x * w + 1.0).relu());
//! b.update(w, w * 0.5);
//! let graph = b.finish();
//!
//! let mut step = compile(&graph, &Options::default()).unwrap();
//! step.set_param("w", &HostTensor::from_f32([2], vec![10.0, -100.0]).unwrap()).unwrap();
//! let mut feeds = Feeds::new();
//! feeds.insert("x".into(), HostTensor::from_f32([2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap());
//! let out = step.run(&feeds).unwrap();
//! assert_eq!(out.output("y").unwrap().as_f32().unwrap(), &[11.0, 0.0, 31.0, 0.0]);
//! assert_eq!(step.param("w").unwrap().as_f32().unwrap(), &[5.0, -50.0]);
//!
//! // Feeds are checked before any native code runs.
//! feeds.insert("x".into(), HostTensor::from_f32([4], vec![0.0; 4]).unwrap());
//! let err = step.run(&feeds).unwrap_err();
//! assert_eq!(err.to_string(), "`x` has type f32[4], but the graph expects f32[2,2]");
//! ```

#![warn(missing_docs)]
// `JitError` carries the declared and fed tensor types by value, as its public API promises; an
// error is returned at most once per compile or run, so its size costs nothing worth boxing.
#![allow(clippy::result_large_err)]

pub mod cache;
pub mod codegen;
pub mod collective;
mod error;
pub mod gemm;
pub mod kernel;
pub mod math;
pub mod runtime;

pub use adjoint_ir::{Step, StepOutputs};
pub use error::JitError;
pub use runtime::profile::{Profile, ProfileEntry};
pub use runtime::{CompileStats, CompiledStep};

use adjoint_ir::{Graph, Op};
use adjoint_opt::{PassOptions, Placement, PlanOptions};
use codegen::CodegenOptions;
use kernel::lower::lower_program;
use runtime::{Compiled, Interface, Source};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// The environment variable naming a directory to dump kernels, CLIF, disassembly and
/// compile statistics into (the same variable the pass manager dumps under).
pub const DUMP_ENV: &str = "ADJOINT_DUMP";

/// How to compile a step.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Options {
    /// Fuse producers into consumers (`adjoint-opt`'s fusion planner); `false` gives one
    /// kernel per node.
    pub fusion: bool,
    /// Threads for large kernels; 0 means every available core, and more than the available
    /// cores are capped at that count ([`Options::thread_count`]). With 1, results are
    /// bit-identical from run to run (they are with more threads too: work is split over
    /// output rows, never inside a reduction).
    pub threads: usize,
    /// Threads that compile the step's functions with Cranelift; 0 (the default) means every
    /// available core, and never more than the cores. The machine code does not depend on it,
    /// so a step compiled on one thread and on several is the same.
    pub compile_threads: usize,
    /// Write the kernel IR, CLIF, disassembly and statistics here (also set by
    /// `ADJOINT_DUMP`).
    pub dump_dir: Option<PathBuf>,
    /// Run Cranelift's verifier on every function (default: on in debug builds).
    pub verifier: bool,
    /// Reuse the code of an identical graph compiled earlier in this process.
    pub cache: bool,
    /// Keep every forward value the backward needs rather than recomputing cheap ones.
    pub keep_all: bool,
    /// Record the wall time of every loop nest of each run ([`CompiledStep::profile`]). The
    /// nests are then called one by one from the runtime rather than by the entry point.
    pub profile: bool,
    /// Which code runs `f32` matmuls.
    pub matmul: MatmulKernel,
    /// Run the graph passes (`adjoint_opt::optimize`: folding, simplification, CSE, DCE)
    /// before planning; `false` compiles the graph as built, for comparison.
    pub passes: bool,
    /// The most bytes one tensor of the graph may have; a larger one makes `compile` return
    /// [`JitError::TooLarge`]. Default [`Options::DEFAULT_MAX_TENSOR_BYTES`] (16 GiB).
    pub max_tensor_bytes: usize,
    /// The most bytes the arena (every intermediate value live at once, plus kernel scratch)
    /// may have; a larger one makes `compile` return [`JitError::TooLarge`]. Default
    /// [`Options::DEFAULT_MAX_ARENA_BYTES`] (64 GiB).
    pub max_arena_bytes: usize,
    /// Test-time checking: place the arena, every parameter, and a copy of every input and
    /// constant against inaccessible guard pages (mmap + mprotect, Unix), so that generated
    /// code reading or writing outside a buffer faults at once instead of corrupting memory.
    /// Costs a mapping per buffer and a copy of the inputs per run; off by default.
    pub guard_pages: bool,
    /// Check the memory plan (`adjoint_opt::check_memory_plan`) and the lowered kernel IR
    /// ([`kernel::verify::verify_program`]: every access inside its buffer, dtypes, scopes,
    /// reductions, parallel stores) before generating code, returning
    /// [`JitError::MemoryPlan`] or [`JitError::KernelIr`] instead of compiling a bad program.
    /// Default: on in debug builds; the fuzzer always sets it.
    pub check_ir: bool,
    /// The most bytes the arena may have, kernel scratch included: rematerialization then
    /// recomputes forward values in the backward so that the planned arena fits, adding as
    /// few FLOPs as its search finds (`adjoint_opt::budget`). If no plan fits, `compile`
    /// returns [`JitError::OverBudget`] naming the smallest arena reached. `None` (default):
    /// the default plan, whatever its arena.
    pub memory_budget: Option<usize>,
    /// Which register allocator Cranelift runs: by default the backtracking one, and the
    /// single-pass one for steps with more than [`RegisterAllocator::SINGLE_PASS_FROM`]
    /// functions.
    pub register_allocator: RegisterAllocator,
    /// Excess precision for 16-bit floats (on by default; it changes nothing in a graph
    /// without `bf16` or `f16` values): inside one generated kernel, the `bf16` or `f16`
    /// result of an elementwise operation or a reduction that feeds other operations of the
    /// kernel keeps its `f32` value, and is rounded to its type only where it is stored to a
    /// buffer (a `cast` to a 16-bit type still rounds). Stored values keep their 16-bit types
    /// and sizes, so the memory plan is the same; loads of 16-bit values are exact either way.
    /// As XLA (`xla_allow_excess_precision`) and PyTorch Inductor do, this skips the rounding
    /// after each operation, about ten vector instructions per bf16 result (the
    /// rounding is integer code, Cranelift having no conversion instruction), and the results
    /// are at least as accurate (`docs/ir.md`, *The 16-bit floats*). `false` rounds every
    /// 16-bit result as the interpreter does, so compiled and interpreted steps agree bit for
    /// bit.
    pub excess_precision: bool,
    /// Run a matmul's elementwise epilogue (bias, activation, an optimizer's update) on each
    /// row block of the product as the host kernel finishes it, while the block is in L2,
    /// rather than in a second pass over the whole output, where [`kernel::epilogue`] allows
    /// it. The values are the same bits either way. Default: off — on the Sapphire Rapids
    /// machine it was measured on it was no faster (W2's weight-gradient + SGD kernels 1–7%
    /// slower, the others within noise; see `docs/jit.md`, *Epilogues on the block of C*).
    pub block_epilogue: bool,
    /// Compute `f32` `exp` and `tanh` in the lane loops of long rows (at least 64 elements)
    /// with the host routines of [`math::host`], on the selected ISA's vectors (512-bit for
    /// AVX-512, 256-bit for AVX2; not for the generic ISA), rather than inline on 128-bit
    /// vectors, a chunk of the row at a time. The results are the same bits. Default: on.
    pub host_math: bool,
}

/// Cranelift's register allocator for a step's functions. The allocator only decides which
/// values live in which registers: the arithmetic, and so every result, is the same with
/// either.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RegisterAllocator {
    /// [`RegisterAllocator::Backtracking`] for steps of up to
    /// [`RegisterAllocator::SINGLE_PASS_FROM`] functions, [`RegisterAllocator::SinglePass`]
    /// above.
    #[default]
    Auto,
    /// Backtracking with live-range splitting: fewer spills, the better code.
    Backtracking,
    /// One pass over each function: about 2.5 times less Cranelift time, code about 1.8 times
    /// larger and up to 2 times slower (the 10^4-op chain of `tests/deep_chain.rs`).
    SinglePass,
}

impl RegisterAllocator {
    /// Functions (loop nests and the entry point) above which [`RegisterAllocator::Auto`]
    /// chooses the single-pass allocator. Cranelift's time is linear in the code, about half a
    /// millisecond per kernel of a deep elementwise chain: a step this large spends tens of
    /// seconds in the backtracking allocator, far more than its steps run. W1-W4 have at most a
    /// few hundred functions.
    pub const SINGLE_PASS_FROM: usize = 8192;

    /// Whether a step of `functions` functions is compiled with the single-pass allocator.
    pub fn single_pass(self, functions: usize) -> bool {
        match self {
            RegisterAllocator::Auto => functions > RegisterAllocator::SINGLE_PASS_FROM,
            RegisterAllocator::Backtracking => false,
            RegisterAllocator::SinglePass => true,
        }
    }
}

/// The code that runs a matmul.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MatmulKernel {
    /// The host kernel ([`gemm`]: AVX-512, AVX2 + FMA or portable, chosen at run time; see
    /// [`gemm::Isa`]). `f64` matmuls and operands that are not affine views always use
    /// generated code.
    #[default]
    Host,
    /// Cranelift-generated register-blocked loops (128-bit vectors) for every matmul.
    Generated,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            fusion: true,
            threads: 0,
            compile_threads: 0,
            dump_dir: None,
            verifier: cfg!(debug_assertions),
            cache: true,
            keep_all: false,
            profile: false,
            matmul: MatmulKernel::default(),
            passes: true,
            max_tensor_bytes: Options::DEFAULT_MAX_TENSOR_BYTES,
            max_arena_bytes: Options::DEFAULT_MAX_ARENA_BYTES,
            guard_pages: false,
            check_ir: cfg!(debug_assertions),
            memory_budget: None,
            register_allocator: RegisterAllocator::default(),
            excess_precision: true,
            block_epilogue: false,
            host_math: true,
        }
    }
}

impl Options {
    /// Default of [`Options::max_tensor_bytes`]: 2^34 bytes (16 GiB), 100 times the largest
    /// tensor of the W1-W4 workloads and beyond what a laptop holds; a shape past it is far
    /// more likely a mistake than a model.
    pub const DEFAULT_MAX_TENSOR_BYTES: usize = 1 << 34;
    /// Default of [`Options::max_arena_bytes`]: 2^36 bytes (64 GiB).
    pub const DEFAULT_MAX_ARENA_BYTES: usize = 1 << 36;

    /// The number of threads `threads` stands for: every available core for 0, and never more
    /// than the available cores (more threads than cores only wait for each other).
    pub fn thread_count(&self) -> usize {
        cores_for(self.threads)
    }

    /// The number of threads `compile_threads` stands for, by the same rule as
    /// [`Options::thread_count`].
    pub fn compile_thread_count(&self) -> usize {
        cores_for(self.compile_threads)
    }
}

/// Every available core for 0, else `n` capped at the available cores.
fn cores_for(n: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if n == 0 {
        cores
    } else {
        n.min(cores)
    }
}

/// Compiles `graph` (forward, backward and updates, as built) into a native step.
///
/// The pipeline: the graph is verified; optimized by `adjoint_opt::optimize` (folding,
/// simplification, CSE and DCE to a fixpoint, unless `options.passes` is off; the report is in
/// [`CompileStats::passes`]); planned by `adjoint_opt::plan` (rematerialization, fusion unless
/// `options.fusion` is off, memory plan); lowered to kernel IR; and compiled by Cranelift. An
/// identical graph compiled before with the same options reuses its code.
pub fn compile(graph: &Graph, options: &Options) -> Result<CompiledStep, JitError> {
    graph.verify()?;
    check_tensor_sizes(graph, options)?;
    let threads = options.thread_count();
    let dump = options
        .dump_dir
        .clone()
        .or_else(|| std::env::var_os(DUMP_ENV).map(PathBuf::from));
    let key = options.cache.then(|| cache::key(graph, options, threads));
    if let Some(code) = key.as_ref().and_then(|k| cache::get(k)) {
        return CompiledStep::new(code, threads, true, options.profile, options.guard_pages);
    }
    let t0 = Instant::now();
    let optimized;
    let (graph, passes) = if options.passes {
        let (g, report) = adjoint_opt::optimize(
            graph,
            &PassOptions {
                verify: options.verifier,
                dump_dir: dump.clone(),
                ..PassOptions::default()
            },
        )?;
        optimized = g;
        (&optimized, Some(report))
    } else {
        (graph, None)
    };
    let optimizing = t0.elapsed();
    let t0 = Instant::now();
    let host_gemm = options.matmul == MatmulKernel::Host && gemm::available();
    let (plan, program) = plan_and_lower(graph, options, host_gemm)?;
    if options.check_ir {
        adjoint_opt::check_memory_plan(&plan.graph, &plan.schedule, &plan.memory)?;
        kernel::verify::verify_program(&program)?;
    }
    let planning = t0.elapsed();
    if program.arena_bytes > options.max_arena_bytes {
        return Err(JitError::TooLarge {
            what: "the arena".into(),
            bytes: program.arena_bytes,
            limit: options.max_arena_bytes,
            option: "max_arena_bytes",
        });
    }
    let iface = interface(&plan.graph, &plan.memory, &program)?;
    let native = codegen::compile_program(
        &program,
        &CodegenOptions {
            verifier: options.verifier,
            threads,
            compile_threads: options.compile_thread_count(),
            keep_text: dump.is_some(),
            single_pass_regalloc: options
                .register_allocator
                .single_pass(function_count(&program)),
            excess_precision: options.excess_precision,
            block_epilogue: options.block_epilogue,
            host_math: options.host_math && math::host::has_wide_routines(gemm::selected_isa()),
        },
    )?;
    let stats = runtime::CompileStats {
        optimizing,
        passes,
        planning,
        codegen: native.times.clone(),
        kernels: program.kernels.len(),
        functions: native.functions,
        block_epilogues: native.block_epilogues,
        code_bytes: native.code_bytes,
        arena_bytes: program.arena_bytes,
        recompute_flops: plan.remat.recompute_flops,
        budget: plan.budget.clone(),
        cached: false,
    };
    let code = Arc::new(Compiled {
        native,
        program,
        iface,
        stats,
    });
    if let Some(dir) = dump {
        write_dump(&dir, graph.name(), &code)?;
    }
    if let Some(k) = key {
        cache::put(k, Arc::clone(&code));
    }
    CompiledStep::new(code, threads, false, options.profile, options.guard_pages)
}

/// Plans `graph` (under `options.memory_budget` if set) and lowers the plan to kernel IR.
///
/// The budget covers the whole arena, kernel scratch included, while the planner sees only
/// its memory plan: when the scratch of a plan that fits takes the arena over the budget, the
/// plan is searched again with the budget lowered by the excess. When no plan fits, the plan
/// returned is the one with the smallest arena, so the error names its true size.
fn plan_and_lower(
    graph: &Graph,
    options: &Options,
    host_gemm: bool,
) -> Result<(adjoint_opt::Plan, kernel::Program), JitError> {
    let mut plan_budget = options.memory_budget;
    // The smallest whole arena seen, and the keep-everything arena, for the error.
    let mut smallest = (usize::MAX, 0);
    for _ in 0..8 {
        let plan = adjoint_opt::plan(
            graph,
            &PlanOptions {
                fuse: options.fusion,
                keep_all: options.keep_all,
                memory_budget: plan_budget,
                ..PlanOptions::default()
            },
        );
        let program = lower_program(&plan.graph, &plan.schedule, &plan.memory, host_gemm)?;
        let (Some(budget), Some(report)) = (options.memory_budget, &plan.budget) else {
            return Ok((plan, program));
        };
        if program.arena_bytes <= budget {
            return Ok((plan, program));
        }
        smallest = smallest.min((program.arena_bytes, report.keep_all_arena));
        if !report.fits {
            return Err(JitError::OverBudget {
                budget,
                smallest: program.arena_bytes,
                keep_all: report.keep_all_arena,
            });
        }
        // It fit without its scratch: ask for less by the excess.
        let excess = program.arena_bytes - budget;
        plan_budget = Some(report.budget.saturating_sub(excess.max(MIN_BUDGET_STEP)));
    }
    Err(JitError::OverBudget {
        budget: options.memory_budget.unwrap_or(0),
        smallest: smallest.0,
        keep_all: smallest.1,
    })
}

/// The functions code generation makes for `program`: one per loop nest, and the entry point.
fn function_count(program: &kernel::Program) -> usize {
    program.kernels.iter().map(|k| k.nests.len()).sum::<usize>() + 1
}

/// The least the planner's budget is lowered by when kernel scratch takes a plan over.
const MIN_BUDGET_STEP: usize = 64;

/// Checks every node's size against [`Options::max_tensor_bytes`].
fn check_tensor_sizes(graph: &Graph, options: &Options) -> Result<(), JitError> {
    for id in graph.node_ids() {
        let bytes = graph.ty(id).size_bytes();
        if bytes > options.max_tensor_bytes {
            return Err(JitError::TooLarge {
                what: graph.describe(id),
                bytes,
                limit: options.max_tensor_bytes,
                option: "max_tensor_bytes",
            });
        }
    }
    Ok(())
}

/// Where every input, parameter, output and update of the planned graph lives.
fn interface(
    graph: &Graph,
    plan: &adjoint_opt::MemoryPlan,
    program: &kernel::Program,
) -> Result<Interface, JitError> {
    let inputs: Vec<_> = graph
        .inputs()
        .iter()
        .map(|&id| {
            (
                graph.leaf_name(id).unwrap_or("").to_string(),
                graph.ty(id).clone(),
            )
        })
        .collect();
    let params: Vec<_> = graph
        .parameters()
        .iter()
        .map(|&id| {
            (
                graph.leaf_name(id).unwrap_or("").to_string(),
                graph.ty(id).clone(),
            )
        })
        .collect();
    let param_index: HashMap<_, _> = graph
        .parameters()
        .iter()
        .enumerate()
        .map(|(i, &p)| (p, i))
        .collect();
    let source = |id| -> Result<Source, JitError> {
        if let Some(i) = graph.inputs().iter().position(|&x| x == id) {
            return Ok(Source::Input(i));
        }
        if let Some(&i) = param_index.get(&id) {
            return Ok(Source::Param(i));
        }
        match plan.buffer(id).map(|b| b.placement) {
            Some(Placement::Arena { offset }) => Ok(Source::Arena(offset)),
            Some(Placement::Parameter { param }) => Ok(Source::Param(param_index[&param])),
            None => Err(JitError::Plan(format!(
                "{} is an output but has no buffer",
                graph.describe(id)
            ))),
        }
    };
    let mut outputs = Vec::new();
    for (name, id) in graph.outputs() {
        outputs.push((name.clone(), graph.ty(*id).clone(), source(*id)?));
    }
    let mut updates = Vec::new();
    for &(p, v) in graph.updates() {
        let pi = param_index[&p];
        match source(v)? {
            Source::Param(i) if i == pi => {}
            src => updates.push((pi, src)),
        }
    }
    let constants = program
        .constants
        .iter()
        .map(|c| runtime::constant_bytes(c.dtype, &c.values))
        .collect();
    let layout = codegen::layout_of(program);
    // Constants that a graph output or update is (and so never enters a kernel) are not
    // expected: the schedule puts every constant into a group.
    debug_assert!(graph
        .outputs()
        .iter()
        .all(|(_, id)| !matches!(graph.op(*id), Op::Constant(_)) || plan.buffer(*id).is_some()));
    Ok(Interface {
        inputs,
        params,
        outputs,
        updates,
        constants,
        arena_bytes: program.arena_bytes,
        layout,
    })
}

fn write_dump(dir: &std::path::Path, name: &str, code: &Compiled) -> Result<(), JitError> {
    let err = |e: std::io::Error| JitError::Dump(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(err)?;
    let base = if name.is_empty() { "step" } else { name };
    let s = &code.stats;
    let stats = format!(
        "kernels {}\nfunctions {}\ncode_bytes {}\narena_bytes {}\nplanning_us {}\n\
         lowering_us {}\ncranelift_us {}\nfinalize_us {}\ntotal_us {}\n",
        s.kernels,
        s.functions,
        s.code_bytes,
        s.arena_bytes,
        s.planning.as_micros(),
        s.codegen.lowering.as_micros(),
        s.codegen.cranelift.as_micros(),
        s.codegen.finalize.as_micros(),
        s.total().as_micros()
    );
    let files = [
        (format!("{base}.kernels.txt"), code.program.to_string()),
        (format!("{base}.clif"), code.native.clif.clone()),
        (format!("{base}.disasm.txt"), code.native.disasm.clone()),
        (format!("{base}.compile-stats.txt"), stats),
    ];
    for (file, text) in files {
        std::fs::write(dir.join(file), text).map_err(err)?;
    }
    Ok(())
}
