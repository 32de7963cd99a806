//! The kernel-IR verifier and the memory-plan checker: every program the lowering makes from
//! hand-written and random graphs passes, and each kind of broken program or plan is refused
//! with its typed error.

use adjoint_ir::random_graph::{random_graph_with, RandomGraphConfig};
use adjoint_ir::{DType, Graph};
use adjoint_jit::kernel::lower::lower_program;
use adjoint_jit::kernel::verify::{verify_program, KernelIrError, Location, Problem};
use adjoint_jit::kernel::{Atom, BufferId, Expr, Ix, Program, Storage, VarId};
use adjoint_jit::{compile, JitError, Options};
use adjoint_opt::{check_memory_plan, plan, Placement, PlanOptions};

/// Gathers, a scatter, padding, concatenation, reductions and a matmul (host and generated).
const GRAPH: &str = r#"graph mixed {
  %table: f32[10,16] = parameter "table"
  %tokens: i32[8] = input "tokens"
  %w: f32[16,24] = parameter "w"
  %e: f32[8,16] = gather %table, %tokens axis=0
  %h: f32[8,24] = matmul %e, %w
  %t: f32[8,24] = tanh %h
  %p: f32[10,24] = pad %t low=[1,0] high=[1,0]
  %c: f32[10,40] = concat %p, %table axis=1
  %m: f32[10,1] = reduce_max %c axes=[1] keepdims=true
  %s: f32[] = reduce_sum %m axes=[0,1] keepdims=false
  %g: f32[10,24] = scatter_add %t, %tokens axis=0 size=10
  output "s" = %s
  output "g" = %g
}
"#;

fn parse(text: &str) -> Graph {
    adjoint_ir::text::parse(text).unwrap()
}

fn lower(g: &Graph, fuse: bool, host_gemm: bool) -> Program {
    let p = plan(
        g,
        &PlanOptions {
            fuse,
            ..PlanOptions::default()
        },
    );
    check_memory_plan(&p.graph, &p.schedule, &p.memory).unwrap();
    lower_program(&p.graph, &p.schedule, &p.memory, host_gemm).unwrap()
}

/// The problem `verify_program` finds in `prog`.
fn problem(prog: &Program) -> Problem {
    match verify_program(prog) {
        Ok(()) => panic!("the broken program passed:\n{prog}"),
        Err(KernelIrError { problem, .. }) => problem,
    }
}

#[test]
fn lowered_programs_verify() {
    let g = parse(GRAPH);
    for fuse in [true, false] {
        for host in [true, false] {
            let prog = lower(&g, fuse, host);
            verify_program(&prog).unwrap_or_else(|e| panic!("{e}\n{prog}"));
        }
    }
    for seed in 0..150 {
        let mut config = RandomGraphConfig::new(24);
        config.large = seed % 4 == 0;
        let g = random_graph_with(seed, &config);
        for fuse in [true, false] {
            let prog = lower(&g, fuse, true);
            verify_program(&prog).unwrap_or_else(|e| panic!("seed {seed}: {e}\n{prog}"));
        }
    }
}

/// The first store of `prog` (kernel, nest, store numbers) whose buffer satisfies `pick`.
fn find_store(
    prog: &Program,
    pick: impl Fn(&Program, usize, usize) -> bool,
) -> (usize, usize, usize) {
    for (ki, k) in prog.kernels.iter().enumerate() {
        for (ni, n) in k.nests.iter().enumerate() {
            if pick(prog, ki, ni) {
                if let Some(si) = (0..n.stores.len()).next() {
                    return (ki, ni, si);
                }
            }
        }
    }
    panic!("no such store in\n{prog}");
}

#[test]
fn a_store_past_its_buffer_is_out_of_bounds() {
    let mut prog = lower(&parse(GRAPH), true, true);
    let (k, n, s) = find_store(&prog, |p, k, n| !p.kernels[k].nests[n].stores.is_empty());
    let store = &mut prog.kernels[k].nests[n].stores[s];
    store.offset = store.offset.offset(1);
    let buffer = store.buffer;
    match problem(&prog) {
        Problem::OutOfBounds {
            buffer: b, hi, len, ..
        } => {
            assert_eq!(b, buffer);
            assert_eq!(hi, len as i128);
        }
        p => panic!("{p}"),
    }
    // And the location names the kernel, nest and store.
    let e = verify_program(&prog).unwrap_err();
    assert!(matches!(e.at, Location::Nest { store: Some(_), .. }), "{e}");
    assert!(e.to_string().contains("outside its"), "{e}");
}

#[test]
fn a_load_with_a_negative_offset_is_out_of_bounds() {
    let mut prog = lower(&parse(GRAPH), false, false);
    let k = &mut prog.kernels[0];
    let i = k
        .exprs
        .iter()
        .position(|e| matches!(e.expr, Expr::Load { .. }))
        .unwrap();
    if let Expr::Load { offset, .. } = &mut k.exprs[i].expr {
        *offset = offset.offset(-1);
    }
    assert!(matches!(
        problem(&prog),
        Problem::OutOfBounds { lo: -1, .. }
    ));
}

#[test]
fn a_gather_without_its_clamp_is_refused() {
    let mut prog = lower(&parse(GRAPH), false, false);
    let mut found = false;
    for k in &mut prog.kernels {
        for e in &mut k.exprs {
            if let Expr::Load { offset, .. } = &mut e.expr {
                for (atom, _) in &mut offset.terms {
                    if let Atom::Clamp(inner, _, _) = atom {
                        if matches!(inner.terms.first(), Some((Atom::Value(_), _))) {
                            *atom = inner.terms[0].0.clone();
                            found = true;
                        }
                    }
                }
            }
        }
    }
    assert!(found, "no clamped gather in\n{prog}");
    assert!(matches!(problem(&prog), Problem::UnclampedDataIndex { .. }));
}

#[test]
fn a_division_of_a_negative_index_is_refused() {
    let mut prog = lower(&parse(GRAPH), false, false);
    let k = &mut prog.kernels[0];
    let i = k
        .exprs
        .iter()
        .position(|e| matches!(e.expr, Expr::Load { .. }))
        .unwrap();
    if let Expr::Load { offset, .. } = &mut k.exprs[i].expr {
        let v = Ix::var(VarId(0)).offset(-3);
        *offset = Ix::atom(Atom::Rem(Box::new(v), 4));
    }
    assert!(matches!(problem(&prog), Problem::BadIndexOp(_)));
}

#[test]
fn mismatched_dtypes_are_refused() {
    // A stored value of another dtype than its buffer.
    let mut prog = lower(&parse(GRAPH), false, false);
    let (k, n, s) = find_store(&prog, |p, k, n| {
        let nest = &p.kernels[k].nests[n];
        nest.stores
            .first()
            .is_some_and(|s| p.buffers[s.buffer.0 as usize].dtype == DType::F32)
    });
    let buffer = prog.kernels[k].nests[n].stores[s].buffer;
    prog.buffers[buffer.0 as usize].dtype = DType::F64;
    // (Loads of the buffer now mismatch too; whichever comes first is a dtype error.)
    assert!(matches!(problem(&prog), Problem::Dtype { .. }));

    // A float-only function on i32.
    let mut prog = lower(&parse(GRAPH), false, false);
    let (ki, i) = prog
        .kernels
        .iter()
        .enumerate()
        .find_map(|(ki, k)| {
            k.exprs
                .iter()
                .position(|e| matches!(e.expr, Expr::Unary { .. }))
                .map(|i| (ki, i))
        })
        .unwrap();
    let Expr::Unary { x, .. } = prog.kernels[ki].exprs[i].expr else {
        unreachable!()
    };
    prog.kernels[ki].exprs[x.0 as usize].dtype = DType::I32;
    prog.kernels[ki].exprs[i].dtype = DType::I32;
    assert!(matches!(problem(&prog), Problem::Dtype { .. }));
}

#[test]
fn malformed_reductions_are_refused() {
    let g = parse(GRAPH);
    let reduce_at = |prog: &Program| {
        prog.kernels
            .iter()
            .enumerate()
            .find_map(|(ki, k)| {
                k.exprs
                    .iter()
                    .position(|e| matches!(e.expr, Expr::Reduce { .. }))
                    .map(|i| (ki, i))
            })
            .unwrap()
    };
    // Over no variable.
    let mut prog = lower(&g, false, false);
    let (k, i) = reduce_at(&prog);
    if let Expr::Reduce { vars, .. } = &mut prog.kernels[k].exprs[i].expr {
        vars.clear();
    }
    assert!(matches!(problem(&prog), Problem::BadReduction(_)));
    // Over a variable that is also a loop variable of the nest.
    let mut prog = lower(&g, false, false);
    let (k, i) = reduce_at(&prog);
    let v = prog.kernels[k]
        .nests
        .iter()
        .find_map(|n| n.vars.first().copied())
        .unwrap();
    if let Expr::Reduce { vars, .. } = &mut prog.kernels[k].exprs[i].expr {
        vars[0] = v;
    }
    assert!(matches!(
        problem(&prog),
        Problem::VarBoundTwice(_) | Problem::UnboundVar(_)
    ));
}

#[test]
fn a_variable_used_outside_its_loop_is_unbound() {
    let mut prog = lower(&parse(GRAPH), false, false);
    let k = prog
        .kernels
        .iter()
        .position(|k| {
            k.exprs
                .iter()
                .any(|e| matches!(e.expr, Expr::Reduce { .. }))
        })
        .unwrap();
    let Some(Expr::Reduce { vars, .. }) = prog.kernels[k]
        .exprs
        .iter()
        .map(|e| &e.expr)
        .find(|e| matches!(e, Expr::Reduce { .. }))
    else {
        unreachable!()
    };
    let r = vars[0];
    let nest = prog.kernels[k]
        .nests
        .iter_mut()
        .find(|n| !n.stores.is_empty())
        .unwrap();
    // Index the store by the reduction variable (in bounds, but not bound there).
    nest.stores[0].offset = Ix::atom(Atom::Clamp(Box::new(Ix::var(r)), 0, 0));
    assert!(matches!(problem(&prog), Problem::UnboundVar(v) if v == r));
}

#[test]
fn overlapping_writes_in_a_parallel_nest_are_refused() {
    // A large elementwise nest is parallel; make every iteration of its outer loop write row 0.
    let g = parse(
        "graph g {\n  %x: f32[64,256] = input \"x\"\n  %y: f32[64,256] = exp %x\n  output \"y\" = %y\n}\n",
    );
    let mut prog = lower(&g, true, true);
    let nest = prog
        .kernels
        .iter_mut()
        .flat_map(|k| k.nests.iter_mut())
        .find(|n| n.vars.len() == 2)
        .unwrap();
    nest.parallel = true;
    let v0 = nest.vars[0];
    verify_program(&prog).unwrap();
    let nest = prog
        .kernels
        .iter_mut()
        .flat_map(|k| k.nests.iter_mut())
        .find(|n| n.vars.first() == Some(&v0))
        .unwrap();
    let s = &mut nest.stores[0];
    s.offset.terms.retain(|(a, _)| *a != Atom::Var(v0));
    assert!(matches!(problem(&prog), Problem::ParallelOverlap { .. }));
}

#[test]
fn broken_buffers_are_refused() {
    let g = parse(GRAPH);
    // A store into a buffer that does not exist.
    let mut prog = lower(&g, false, false);
    let (k, n, s) = find_store(&prog, |p, k, n| !p.kernels[k].nests[n].stores.is_empty());
    prog.kernels[k].nests[n].stores[s].buffer = BufferId(9999);
    assert_eq!(problem(&prog), Problem::UnknownBuffer(BufferId(9999)));
    // An arena too small for its buffers.
    let mut prog = lower(&g, false, false);
    prog.arena_bytes = 8;
    assert!(matches!(problem(&prog), Problem::OutsideArena { .. }));
    // A store into an input.
    let mut prog = lower(&g, false, false);
    let input = prog
        .buffers
        .iter()
        .position(|b| matches!(b.storage, Storage::Input { .. }))
        .unwrap();
    let (k, n, s) = find_store(&prog, |p, k, n| !p.kernels[k].nests[n].stores.is_empty());
    prog.kernels[k].nests[n].stores[s].buffer = BufferId(input as u32);
    assert_eq!(
        problem(&prog),
        Problem::ReadOnlyStore(BufferId(input as u32))
    );
    // A parameter number the program does not have.
    let mut prog = lower(&g, false, false);
    let p = prog
        .buffers
        .iter()
        .position(|b| matches!(b.storage, Storage::Parameter { .. }))
        .unwrap();
    prog.buffers[p].storage = Storage::Parameter { index: 77 };
    assert!(matches!(problem(&prog), Problem::UnknownStorage { .. }));
}

#[test]
fn a_host_matmul_reaching_past_its_output_is_refused() {
    let mut prog = lower(&parse(GRAPH), false, true);
    let gemm = prog
        .kernels
        .iter_mut()
        .flat_map(|k| k.nests.iter_mut())
        .find_map(|n| n.gemm.as_mut())
        .expect("a host matmul");
    gemm.desc.c[0] += 1;
    assert!(matches!(problem(&prog), Problem::OutOfBounds { .. }));
}

#[test]
fn an_overlapping_memory_plan_is_refused() {
    let g = parse(GRAPH);
    let mut p = plan(&g, &PlanOptions::default());
    check_memory_plan(&p.graph, &p.schedule, &p.memory).unwrap();
    // Two arena buffers live together (one written by the group that reads the other) put
    // at the same offset.
    let arena: Vec<usize> = (0..p.memory.buffers.len())
        .filter(|&i| {
            matches!(p.memory.buffers[i].placement, Placement::Arena { .. })
                && p.memory.buffers[i].bytes > 0
        })
        .collect();
    let (a, b) = arena
        .iter()
        .flat_map(|&a| arena.iter().map(move |&b| (a, b)))
        .find(|&(a, b)| {
            let (x, y) = (&p.memory.buffers[a], &p.memory.buffers[b]);
            a != b && x.first_group <= y.first_group && y.first_group <= x.last_group
        })
        .expect("two buffers live together");
    let at = p.memory.buffers[a].placement;
    p.memory.buffers[b].placement = at;
    let err = check_memory_plan(&p.graph, &p.schedule, &p.memory).unwrap_err();
    assert!(err.to_string().contains("overlap"), "{err}");
    // As `compile` reports it.
    let jit: JitError = err.into();
    assert!(matches!(jit, JitError::MemoryPlan(_)));
    assert!(jit.to_string().starts_with("invalid memory plan"), "{jit}");
}

#[test]
fn compile_checks_by_default_in_debug_builds() {
    assert_eq!(Options::default().check_ir, cfg!(debug_assertions));
    let g = parse(GRAPH);
    let opts = Options {
        check_ir: true,
        cache: false,
        ..Options::default()
    };
    compile(&g, &opts).unwrap();
}
