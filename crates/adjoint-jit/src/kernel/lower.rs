//! Lowering: a graph, its schedule and its memory plan become a [`Program`] of loop nests.
//!
//! Each group is lowered on its own, following the decisions the fusion planner recorded in
//! its [`FusionGroup`]: the anchor, its prologue and its epilogue. The root gets a loop nest
//! over its shape; a stored anchor (the root itself, or a scatter-add) gets a nest of its own
//! before it. Every other member is inlined into the expressions of the values that use it,
//! evaluated at the index its consumer asks for: movement ops only transform that index
//! ([`Ix`]), so they never copy. A non-root anchor is inlined into its epilogue — the matmul
//! epilogue (bias, activation) and the reduction epilogue (mean's division) — which reads it at
//! the index the epilogue stores. In-place parameter updates are decided by the memory plan;
//! lowering checks that the kernel honours them.

use super::{
    Buffer, BufferId, ConstantData, Expr, ExprId, ExprNode, Ix, Kernel, LoopNest, Program, Storage,
    Store, VarId,
};
use crate::JitError;
use adjoint_ir::{DType, Graph, NodeId, Op, ReduceOp, Shape, TensorType};
use adjoint_opt::schedule::is_row_level;
use adjoint_opt::{FusionGroup, GroupKind, MemoryPlan, Placement, Schedule};
use std::collections::{HashMap, HashSet};

/// Lowers every group of `schedule` to a kernel, with buffers placed by `plan`. With
/// `host_gemm`, `f32` matmuls whose operands are affine views become host-kernel nests
/// ([`super::gemm`]).
pub fn lower_program(
    graph: &Graph,
    schedule: &Schedule,
    plan: &MemoryPlan,
    host_gemm: bool,
) -> Result<Program, JitError> {
    let mut prog = Program {
        params: graph.parameters().len(),
        inputs: graph.inputs().len(),
        ..Program::default()
    };
    let mut values: HashMap<NodeId, BufferId> = HashMap::new();
    for (i, &id) in graph.inputs().iter().enumerate() {
        let b = add_buffer(&mut prog, graph, id, Storage::Input { index: i });
        values.insert(id, b);
    }
    for (i, &id) in graph.parameters().iter().enumerate() {
        let b = add_buffer(&mut prog, graph, id, Storage::Parameter { index: i });
        values.insert(id, b);
    }
    let param_index: HashMap<NodeId, usize> = graph
        .parameters()
        .iter()
        .enumerate()
        .map(|(i, &p)| (p, i))
        .collect();
    for a in &plan.buffers {
        let storage = match a.placement {
            Placement::Arena { offset } => Storage::Arena { offset },
            Placement::Parameter { param } => Storage::Parameter {
                index: *param_index.get(&param).ok_or_else(|| {
                    JitError::Plan(format!(
                        "{} is placed in {}, which is not a parameter",
                        graph.describe(a.value),
                        graph.describe(param)
                    ))
                })?,
            },
        };
        let b = add_buffer(&mut prog, graph, a.value, storage);
        values.insert(a.value, b);
    }
    let planned: HashSet<BufferId> = values.values().copied().collect();
    let scratch_base = align(plan.arena_bytes);
    prog.arena_bytes = plan.arena_bytes;
    let mut constants: HashMap<NodeId, BufferId> = HashMap::new();
    for (gi, group) in schedule.groups.iter().enumerate() {
        for &out in &group.outputs {
            if !values.contains_key(&out) {
                return Err(JitError::Plan(format!(
                    "output {} of group {gi} has no buffer in the memory plan",
                    graph.describe(out)
                )));
            }
        }
        let mut g = GroupLower::new(
            graph,
            group,
            gi,
            &mut prog,
            &values,
            &mut constants,
            scratch_base,
            host_gemm,
        );
        let mut kernel = g.lower()?;
        if let Some(n) = g.in_place_hazard(&kernel) {
            return Err(JitError::Plan(format!(
                "group {gi} writes {} into its parameter's storage while still reading the \
                 parameter at other elements (the memory plan approved an unsafe in-place update)",
                graph.describe(n)
            )));
        }
        let used = g.scratch_end;
        if host_gemm {
            fold_steps(&prog, &mut kernel, &planned);
        }
        prog.arena_bytes = prog.arena_bytes.max(used);
        prog.kernels.push(kernel);
    }
    Ok(prog)
}

/// Folds each SGD step of a host matmul's product into the matmul
/// ([`super::epilogue::fold_step`]).
fn fold_steps(prog: &Program, kernel: &mut Kernel, planned: &HashSet<BufferId>) {
    let scratch = |b: BufferId| !planned.contains(&b);
    for ni in (0..kernel.nests.len()).rev() {
        super::epilogue::fold_step(prog, kernel, ni, &scratch);
    }
}

fn add_buffer(prog: &mut Program, graph: &Graph, id: NodeId, storage: Storage) -> BufferId {
    let ty = graph.ty(id);
    let name = graph
        .leaf_name(id)
        .map(str::to_string)
        .or_else(|| graph.node(id).label.clone())
        .unwrap_or_else(|| format!("#{}", id.index()));
    prog.buffers.push(Buffer {
        name,
        dtype: ty.dtype,
        shape: ty.shape.clone(),
        storage,
    });
    BufferId(prog.buffers.len() as u32 - 1)
}

fn align(n: usize) -> usize {
    n.div_ceil(MemoryPlan::ALIGN) * MemoryPlan::ALIGN
}

/// The lowering of one group into one kernel.
pub(super) struct GroupLower<'a> {
    pub(super) graph: &'a Graph,
    group: &'a FusionGroup,
    index: usize,
    pub(super) prog: &'a mut Program,
    values: &'a HashMap<NodeId, BufferId>,
    constants: &'a mut HashMap<NodeId, BufferId>,
    pub(super) in_group: HashSet<NodeId>,
    /// Values of this group stored to memory and read back by later nests.
    local: HashMap<NodeId, BufferId>,
    pub(super) computing: Option<NodeId>,
    pub(super) kernel: Kernel,
    interned: HashMap<ExprNode, ExprId>,
    /// Reductions and matmuls already lowered at an index: a value used several times by its
    /// epilogue (GELU's backward reads `dy·Bᵀ` in four places) is one reduction, not four.
    reductions: HashMap<(NodeId, Vec<Ix>, Option<NodeId>), ExprId>,
    /// Products the host kernel writes into scratch, by matmul node ([`super::gemm`]).
    pub(super) products: HashMap<NodeId, BufferId>,
    /// The group's product stored through its root permute ([`Self::permuted_product`]) and
    /// the strides, per product axis, at which it is written into the root's buffer.
    permuted: Option<(NodeId, Vec<i64>)>,
    scratch_end: usize,
    /// Matmuls go to the host kernel, which reads any affine view in place.
    pub(super) host_gemm: bool,
}

impl<'a> GroupLower<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        graph: &'a Graph,
        group: &'a FusionGroup,
        index: usize,
        prog: &'a mut Program,
        values: &'a HashMap<NodeId, BufferId>,
        constants: &'a mut HashMap<NodeId, BufferId>,
        scratch_base: usize,
        host_gemm: bool,
    ) -> Self {
        let main = group
            .anchor
            .or(group.nodes.last().copied())
            .map(|n| graph.op(n).name())
            .unwrap_or("empty");
        GroupLower {
            graph,
            group,
            index,
            prog,
            values,
            constants,
            in_group: group.nodes.iter().copied().collect(),
            local: HashMap::new(),
            computing: None,
            kernel: Kernel {
                name: format!("k{index}_{main}"),
                group: index,
                kind: group.kind,
                vars: Vec::new(),
                exprs: Vec::new(),
                nests: Vec::new(),
            },
            interned: HashMap::new(),
            reductions: HashMap::new(),
            products: HashMap::new(),
            permuted: None,
            scratch_end: scratch_base,
            host_gemm,
        }
    }

    fn lower(&mut self) -> Result<Kernel, JitError> {
        let g = self.graph;
        let outputs: HashSet<NodeId> = self.group.outputs.iter().copied().collect();
        // The anchor gets a nest of its own when it is stored (the group's root, or a
        // scatter-add, which accumulates into memory); otherwise it is inlined into its
        // epilogue, which reads it at the index the epilogue stores (the fusion planner's
        // epilogue rule), as the bias and activation of a matmul or mean's division.
        // A product stored through a permute (the planner's root is the permute) is written
        // by the host kernel straight into the root's buffer, at the permuted strides.
        let permuted = self.permuted_product();
        self.permuted = permuted.map(|(p, m)| (m, self.permuted_strides(p)));
        let heavy: Vec<NodeId> = self
            .group
            .anchor
            .filter(|&a| {
                outputs.contains(&a)
                    || matches!(g.op(a), Op::ScatterAdd { .. })
                    || permuted.is_some_and(|(_, m)| m == a)
            })
            .into_iter()
            .collect();
        for &n in &heavy {
            let b = match permuted {
                Some((p, m)) if m == n => self.values[&p],
                _ if outputs.contains(&n) => self.values[&n],
                _ => self.scratch(n),
            };
            self.local.insert(n, b);
        }
        // Each materialized node is stored by the nest after the last heavy node it reads.
        let mut stage: HashMap<NodeId, usize> = HashMap::new();
        for (i, &h) in heavy.iter().enumerate() {
            stage.insert(h, i + 1);
        }
        let mut elementwise: Vec<(usize, NodeId)> = Vec::new();
        for &n in &self.group.nodes {
            if heavy.contains(&n) || permuted.is_some_and(|(p, _)| p == n) {
                continue;
            }
            let s = g
                .operands(n)
                .iter()
                .filter(|o| self.in_group.contains(o))
                .map(|o| stage.get(o).copied().unwrap_or(0))
                .max()
                .unwrap_or(0);
            stage.insert(n, s);
            if outputs.contains(&n) {
                elementwise.push((s, n));
            }
        }
        for i in 0..=heavy.len() {
            if i > 0 {
                self.heavy_nests(heavy[i - 1])?;
            }
            let mut batch: Vec<NodeId> = Vec::new();
            for &(s, n) in &elementwise {
                if s == i {
                    batch.push(n);
                }
            }
            // One nest per distinct shape, in first-appearance order; a row-wise group's
            // row-level outputs are stored from the root's nest, once per row.
            let root_shape = self.group.outputs.first().map(|&r| g.ty(r).shape.clone());
            let nest_shape = |n: NodeId| -> Shape {
                let s = &g.ty(n).shape;
                match &root_shape {
                    Some(r) if self.group.kind == GroupKind::RowWise && is_row_level(s, r) => {
                        r.clone()
                    }
                    _ => s.clone(),
                }
            };
            let mut shapes: Vec<Shape> = Vec::new();
            for &n in &batch {
                let s = nest_shape(n);
                if !shapes.contains(&s) {
                    shapes.push(s);
                }
            }
            for shape in shapes {
                let nodes: Vec<NodeId> = batch
                    .iter()
                    .copied()
                    .filter(|&n| nest_shape(n) == shape)
                    .collect();
                self.elementwise_nest(&shape, &nodes)?;
            }
        }
        super::split::split_divided_vars(&mut self.kernel);
        Ok(std::mem::replace(
            &mut self.kernel,
            Kernel {
                name: String::new(),
                group: self.index,
                kind: GroupKind::Elementwise,
                vars: Vec::new(),
                exprs: Vec::new(),
                nests: Vec::new(),
            },
        ))
    }

    /// `(root, product)` when the group's root is a permute that its product, an `f32` host
    /// matmul and the group's anchor, is stored through
    /// ([`adjoint_opt::fusion::stores_product_permuted`]).
    fn permuted_product(&self) -> Option<(NodeId, NodeId)> {
        let g = self.graph;
        let root = self.group.root()?;
        let m = self.group.anchor?;
        (self.group.outputs.len() == 1
            && g.operands(root)[..] == [m]
            && adjoint_opt::fusion::stores_product_permuted(g, root)
            && g.ty(m).dtype == DType::F32
            && self.host_contraction(m))
        .then_some((root, m))
    }

    /// The strides, per axis of permute `p`'s operand, of that operand's elements in `p`'s
    /// row-major buffer: axis `perm[i]` of the operand is axis `i` of the permute.
    fn permuted_strides(&self, p: NodeId) -> Vec<i64> {
        let Op::Permute { perm } = self.graph.op(p) else {
            unreachable!("a permuted product's root is a permute")
        };
        let stored = self.graph.ty(p).shape.strides();
        let mut strides = vec![0; perm.len()];
        for (i, &axis) in perm.iter().enumerate() {
            strides[axis] = stored[i] as i64;
        }
        strides
    }

    pub(super) fn scratch(&mut self, n: NodeId) -> BufferId {
        let bytes = self.graph.ty(n).size_bytes();
        let offset = self.scratch_end;
        self.scratch_end = align(offset + bytes.max(1));
        let b = add_buffer(self.prog, self.graph, n, Storage::Arena { offset });
        self.prog.buffers[b.0 as usize].name += ".scratch";
        b
    }

    /// Kernel scratch holding `n`'s shape in `f32` (a 16-bit result's accumulator).
    pub(super) fn f32_scratch(&mut self, n: NodeId) -> BufferId {
        let ty = TensorType::new(DType::F32, self.graph.ty(n).shape.clone());
        let offset = self.scratch_end;
        self.scratch_end = align(offset + ty.size_bytes().max(1));
        self.prog.buffers.push(Buffer {
            name: format!("{}.f32.scratch", self.graph.describe(n)),
            dtype: DType::F32,
            shape: ty.shape,
            storage: Storage::Arena { offset },
        });
        BufferId(self.prog.buffers.len() as u32 - 1)
    }

    /// The buffer stores of `n` go to.
    fn target(&self, n: NodeId) -> BufferId {
        self.local
            .get(&n)
            .copied()
            .unwrap_or_else(|| self.values[&n])
    }

    fn elementwise_nest(&mut self, shape: &Shape, nodes: &[NodeId]) -> Result<(), JitError> {
        let vars = self.fresh_vars(shape.dims());
        let idx: Vec<Ix> = vars.iter().map(|&v| Ix::var(v)).collect();
        let offset = linearize(&idx, shape);
        let mut stores = Vec::new();
        for &n in nodes {
            self.computing = Some(n);
            // A row-level output (size 1 where the nest's shape is not) is read and stored at
            // index 0 of those axes: its store does not depend on their variables.
            let own = &self.graph.ty(n).shape;
            let (nidx, noffset) = if own == shape {
                (idx.clone(), offset.clone())
            } else {
                let nidx: Vec<Ix> = idx
                    .iter()
                    .enumerate()
                    .map(|(k, i)| {
                        if own.dim(k) == 1 && shape.dim(k) != 1 {
                            Ix::constant(0)
                        } else {
                            i.clone()
                        }
                    })
                    .collect();
                let noffset = linearize(&nidx, own);
                (nidx, noffset)
            };
            let value = self.eval(n, &nidx)?;
            let buffer = self.target(n);
            stores.push(Store {
                buffer,
                offset: noffset,
                value,
                accumulate: false,
                guard: None,
            });
        }
        self.computing = None;
        self.kernel
            .nests
            .push(LoopNest::generated(vars, stores, true));
        Ok(())
    }

    /// Pushes a parallel loop nest over `shape` that stores the value of node `n` into
    /// `buffer`, evaluating it with `computing` as the node being computed.
    pub(super) fn store_nest(
        &mut self,
        n: NodeId,
        buffer: BufferId,
        shape: &Shape,
        computing: Option<NodeId>,
    ) -> Result<(), JitError> {
        let vars = self.fresh_vars(shape.dims());
        let idx: Vec<Ix> = vars.iter().map(|&v| Ix::var(v)).collect();
        let saved = std::mem::replace(&mut self.computing, computing);
        let value = self.eval(n, &idx);
        self.computing = saved;
        self.kernel.nests.push(LoopNest::generated(
            vars,
            vec![Store::write(buffer, linearize(&idx, shape), value?)],
            true,
        ));
        Ok(())
    }

    fn heavy_nests(&mut self, n: NodeId) -> Result<(), JitError> {
        let g = self.graph;
        let ty = g.ty(n).clone();
        let buffer = self.target(n);
        if matches!(g.op(n), Op::MatMul) && self.host_contraction(n) {
            return match self.permuted.clone() {
                Some((m, strides)) if m == n => self.host_matmul_at(n, buffer, &strides),
                _ => self.host_matmul_into(n, buffer),
            };
        }
        if let Op::AllReduce { kind, replicas } = *g.op(n) {
            // The host reads the operand's buffer: a collective's group holds nothing else.
            let x = g.operands(n)[0];
            let src = self.source(x)?.ok_or_else(|| {
                JitError::Plan(format!(
                    "the operand {} of {} is not in memory",
                    g.describe(x),
                    g.describe(n)
                ))
            })?;
            self.kernel.nests.push(LoopNest {
                vars: Vec::new(),
                stores: Vec::new(),
                parallel: false,
                gemm: None,
                all_reduce: Some(super::AllReduceNest {
                    src,
                    dst: buffer,
                    elements: ty.shape.numel(),
                    kind,
                    replicas,
                }),
            });
            return Ok(());
        }
        if let Op::ScatterAdd { axis, size } = *g.op(n) {
            // Zero the result, then add every update at its index. A 16-bit result
            // accumulates in an f32 scratch buffer, rounded into the result at the end.
            let wide = ty.dtype.is_half().then(|| self.f32_scratch(n));
            let (buffer, ty) = match wide {
                Some(w) => (w, TensorType::new(DType::F32, ty.shape.clone())),
                None => (buffer, ty),
            };
            let vars = self.fresh_vars(ty.shape.dims());
            let idx: Vec<Ix> = vars.iter().map(|&v| Ix::var(v)).collect();
            let zero = self.constant(0.0, ty.dtype);
            self.kernel.nests.push(LoopNest::generated(
                vars,
                vec![Store::write(buffer, linearize(&idx, &ty.shape), zero)],
                true,
            ));
            let ops = g.operands(n);
            let (upd, ind) = (ops[0], ops[1]);
            let ushape = g.ty(upd).shape.clone();
            let k = g.ty(ind).shape.rank();
            let vars = self.fresh_vars(ushape.dims());
            let uidx: Vec<Ix> = vars.iter().map(|&v| Ix::var(v)).collect();
            self.computing = Some(n);
            let value = self.eval(upd, &uidx)?;
            // A 16-bit update widens (exactly) to the f32 scratch it adds into.
            let value = match wide {
                Some(_) => self.intern(Expr::Cast { x: value }, DType::F32),
                None => value,
            };
            let at = self.eval(ind, &uidx[axis..axis + k])?;
            self.computing = None;
            let pos = Ix::atom(super::Atom::Value(at));
            let guard = self.intern(
                Expr::InBounds {
                    conds: vec![(pos.clone(), 0, size as i64)],
                },
                DType::Bool,
            );
            let mut oidx: Vec<Ix> = uidx[..axis].to_vec();
            oidx.push(pos.clamp_to(0, size as i64 - 1, &self.kernel.vars));
            oidx.extend_from_slice(&uidx[axis + k..]);
            self.kernel.nests.push(LoopNest {
                vars,
                stores: vec![Store {
                    buffer,
                    offset: linearize(&oidx, &ty.shape),
                    value,
                    accumulate: true,
                    guard: Some(guard),
                }],
                parallel: false,
                gemm: None,
                all_reduce: None,
            });
            if wide.is_some() {
                let target = self.target(n);
                let dtype = g.ty(n).dtype;
                let vars = self.fresh_vars(ty.shape.dims());
                let idx: Vec<Ix> = vars.iter().map(|&v| Ix::var(v)).collect();
                let offset = linearize(&idx, &ty.shape);
                let sum = self.intern(
                    Expr::Load {
                        buffer,
                        offset: offset.clone(),
                    },
                    DType::F32,
                );
                let value = self.intern(Expr::Cast { x: sum }, dtype);
                self.kernel.nests.push(LoopNest::generated(
                    vars,
                    vec![Store::write(target, offset, value)],
                    true,
                ));
            }
            return Ok(());
        }
        self.store_nest(n, buffer, &ty.shape, Some(n))
    }

    pub(super) fn fresh_vars(&mut self, extents: &[usize]) -> Vec<VarId> {
        extents
            .iter()
            .map(|&e| {
                self.kernel.vars.push(e);
                VarId(self.kernel.vars.len() as u32 - 1)
            })
            .collect()
    }

    pub(super) fn intern(&mut self, expr: Expr, dtype: DType) -> ExprId {
        let node = ExprNode { expr, dtype };
        if let Some(&id) = self.interned.get(&node) {
            return id;
        }
        self.kernel.exprs.push(node.clone());
        let id = ExprId(self.kernel.exprs.len() as u32 - 1);
        self.interned.insert(node, id);
        id
    }

    fn constant(&mut self, v: f64, dtype: DType) -> ExprId {
        let v = adjoint_ir::round_to(dtype, v);
        self.intern(Expr::Const { bits: v.to_bits() }, dtype)
    }

    /// The buffer to read `n` from, or `None` when it is computed inline.
    fn source(&mut self, n: NodeId) -> Result<Option<BufferId>, JitError> {
        if Some(n) == self.computing {
            return Ok(None);
        }
        if let Some(&b) = self.local.get(&n) {
            return Ok(Some(b));
        }
        if self.in_group.contains(&n) {
            return Ok(None);
        }
        match self.values.get(&n) {
            Some(&b) => Ok(Some(b)),
            None if matches!(self.graph.op(n), Op::Constant(_)) => Ok(None),
            None => Err(JitError::Plan(format!(
                "group {} reads {}, which no earlier group stores",
                self.index,
                self.graph.describe(n)
            ))),
        }
    }

    /// The expression for element `index` of node `n`.
    pub(super) fn eval(&mut self, n: NodeId, index: &[Ix]) -> Result<ExprId, JitError> {
        let g = self.graph;
        let ty = g.ty(n);
        let dtype = ty.dtype;
        if let Some(buffer) = self.source(n)? {
            let offset = linearize(index, &ty.shape);
            return Ok(self.intern(Expr::Load { buffer, offset }, dtype));
        }
        if matches!(g.op(n), Op::Reduce { .. } | Op::MatMul) {
            // The node being computed changes what is loaded only when it is a value this
            // kernel stores and reads back (`local`); otherwise the outputs of a group share
            // one expression per reduction (a row-wise group's stored row sum and its root).
            let computing = self.computing.filter(|c| self.local.contains_key(c));
            let key = (n, index.to_vec(), computing);
            if let Some(&e) = self.reductions.get(&key) {
                return Ok(e);
            }
            let e = self.eval_node(n, index)?;
            self.reductions.insert(key, e);
            return Ok(e);
        }
        self.eval_node(n, index)
    }

    /// [`Self::eval`] without the memo of reductions.
    fn eval_node(&mut self, n: NodeId, index: &[Ix]) -> Result<ExprId, JitError> {
        let g = self.graph;
        let ty = g.ty(n);
        let dtype = ty.dtype;
        let ops = g.operands(n);
        let ext = self.kernel.vars.clone();
        let e = match g.op(n) {
            Op::Input { .. } | Op::Parameter { .. } => {
                return Err(JitError::Plan(format!("{} has no buffer", g.describe(n))))
            }
            Op::Constant(lit) => {
                if let Some(v) = lit.values().first().filter(|&&v| lit.is_splat(v)) {
                    return Ok(self.constant(*v, dtype));
                }
                let buffer = match self.constants.get(&n) {
                    Some(&b) => b,
                    None => {
                        self.prog.constants.push(ConstantData {
                            dtype,
                            values: lit.values().to_vec(),
                        });
                        let index = self.prog.constants.len() - 1;
                        let b = add_buffer(self.prog, g, n, Storage::Constant { index });
                        self.constants.insert(n, b);
                        b
                    }
                };
                let offset = linearize(index, &ty.shape);
                return Ok(self.intern(Expr::Load { buffer, offset }, dtype));
            }
            Op::Iota { axis, .. } => Expr::Index {
                ix: index[*axis].clone(),
            },
            Op::Unary(op) => Expr::Unary {
                op: *op,
                x: self.eval(ops[0], index)?,
            },
            Op::Binary(op) => Expr::Binary {
                op: *op,
                a: self.eval(ops[0], index)?,
                b: self.eval(ops[1], index)?,
            },
            Op::Compare(op) => Expr::Compare {
                op: *op,
                a: self.eval(ops[0], index)?,
                b: self.eval(ops[1], index)?,
            },
            Op::Select => Expr::Select {
                cond: self.eval(ops[0], index)?,
                a: self.eval(ops[1], index)?,
                b: self.eval(ops[2], index)?,
            },
            Op::Cast { .. } => Expr::Cast {
                x: self.eval(ops[0], index)?,
            },
            Op::Broadcast { .. } => {
                let from = g.ty(ops[0]).shape.clone();
                let lead = index.len() - from.rank();
                let idx: Vec<Ix> = (0..from.rank())
                    .map(|k| {
                        if from.dim(k) == 1 {
                            Ix::constant(0)
                        } else {
                            index[lead + k].clone()
                        }
                    })
                    .collect();
                return self.eval(ops[0], &idx);
            }
            Op::Reshape { .. } => {
                let from = g.ty(ops[0]).shape.clone();
                let lin = linearize(index, &ty.shape);
                let strides = from.strides();
                let idx: Vec<Ix> = (0..from.rank())
                    .map(|k| {
                        lin.div(strides[k] as i64, &ext)
                            .rem(from.dim(k) as i64, &ext)
                    })
                    .collect();
                return self.eval(ops[0], &idx);
            }
            Op::Permute { perm } => {
                let mut idx = vec![Ix::constant(0); perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    idx[p] = index[i].clone();
                }
                return self.eval(ops[0], &idx);
            }
            Op::Slice { ranges } => {
                let idx: Vec<Ix> = ranges
                    .iter()
                    .zip(index)
                    .map(|(r, i)| i.scale(r.step as i64).offset(r.start as i64))
                    .collect();
                return self.eval(ops[0], &idx);
            }
            Op::Pad { low, .. } => {
                let from = g.ty(ops[0]).shape.clone();
                let mut conds = Vec::new();
                let mut idx = Vec::new();
                for (k, i) in index.iter().enumerate() {
                    let d = from.dim(k) as i64;
                    let j = i.offset(-(low[k] as i64));
                    match j.range(&ext) {
                        Some((lo, hi)) if lo >= 0 && hi < d => idx.push(j),
                        _ => {
                            conds.push((j.clone(), 0, d));
                            idx.push(j.clamp_to(0, (d - 1).max(0), &ext));
                        }
                    }
                }
                if from.numel() == 0 {
                    return Ok(self.constant(0.0, dtype));
                }
                let x = self.eval(ops[0], &idx)?;
                if conds.is_empty() {
                    return Ok(x);
                }
                let cond = self.intern(Expr::InBounds { conds }, DType::Bool);
                let zero = self.constant(0.0, dtype);
                Expr::Select {
                    cond,
                    a: x,
                    b: zero,
                }
            }
            Op::Concat { axis } => {
                let axis = *axis;
                let mut parts: Vec<(NodeId, i64, i64)> = Vec::new();
                let mut off = 0i64;
                for &p in &ops {
                    let d = g.ty(p).shape.dim(axis) as i64;
                    if d > 0 {
                        parts.push((p, off, d));
                    }
                    off += d;
                }
                let mut acc: Option<ExprId> = None;
                for &(p, off, d) in parts.iter().rev() {
                    let mut idx = index.to_vec();
                    idx[axis] = index[axis].offset(-off).clamp_to(0, d - 1, &ext);
                    let v = self.eval(p, &idx)?;
                    acc = Some(match acc {
                        None => v,
                        Some(rest) => {
                            let cond = self.intern(
                                Expr::InBounds {
                                    conds: vec![(index[axis].clone(), off, off + d)],
                                },
                                DType::Bool,
                            );
                            self.intern(
                                Expr::Select {
                                    cond,
                                    a: v,
                                    b: rest,
                                },
                                dtype,
                            )
                        }
                    });
                }
                return Ok(acc.unwrap_or_else(|| self.constant(0.0, dtype)));
            }
            Op::Reduce { op, axes, keepdims } => {
                let from = g.ty(ops[0]).shape.clone();
                if axes.is_empty() {
                    return self.eval(ops[0], index);
                }
                let dims: Vec<usize> = axes.iter().map(|&a| from.dim(a)).collect();
                let vars = self.fresh_vars(&dims);
                let mut idx = Vec::with_capacity(from.rank());
                let mut out_pos = 0;
                for k in 0..from.rank() {
                    if let Some(j) = axes.iter().position(|&a| a == k) {
                        idx.push(Ix::var(vars[j]));
                        if *keepdims {
                            out_pos += 1;
                        }
                    } else {
                        idx.push(index[out_pos].clone());
                        out_pos += 1;
                    }
                }
                let body = self.eval(ops[0], &idx)?;
                Expr::Reduce {
                    op: *op,
                    vars,
                    body,
                }
            }
            Op::MatMul if self.host_contraction(n) => return self.host_matmul_value(n, index),
            Op::MatMul => {
                let a_shape = g.ty(ops[0]).shape.clone();
                let r = a_shape.rank();
                let k = self.fresh_vars(&[a_shape.dim(r - 1)])[0];
                let mut ai = index[..r - 2].to_vec();
                ai.extend([index[r - 2].clone(), Ix::var(k)]);
                let mut bi = index[..r - 2].to_vec();
                bi.extend([Ix::var(k), index[r - 1].clone()]);
                let a = self.operand_panel(ops[0], &ai, None)?;
                let lane = index[r - 1].terms.first().and_then(|(a, c)| match a {
                    super::Atom::Var(v) if *c == 1 && index[r - 1].terms.len() == 1 => Some(*v),
                    _ => None,
                });
                let b = self.operand_panel(ops[1], &bi, lane)?;
                // The products of 16-bit operands are f32 (exact) and sum in f32; only the
                // total rounds, as the interpreter's matmul does.
                let body = self.intern(
                    Expr::Binary {
                        op: adjoint_ir::BinaryOp::Mul,
                        a,
                        b,
                    },
                    dtype.compute(),
                );
                Expr::Reduce {
                    op: ReduceOp::Sum,
                    vars: vec![k],
                    body,
                }
            }
            Op::Gather { axis } => {
                let axis = *axis;
                let x_shape = g.ty(ops[0]).shape.clone();
                let k = g.ty(ops[1]).shape.rank();
                let at = self.eval(ops[1], &index[axis..axis + k])?;
                let d = x_shape.dim(axis) as i64;
                if d == 0 {
                    return Ok(self.constant(0.0, dtype));
                }
                let pos = Ix::atom(super::Atom::Value(at));
                let mut idx = index[..axis].to_vec();
                idx.push(pos.clamp_to(0, d - 1, &ext));
                idx.extend_from_slice(&index[axis + k..]);
                let x = self.eval(ops[0], &idx)?;
                let cond = self.intern(
                    Expr::InBounds {
                        conds: vec![(pos, 0, d)],
                    },
                    DType::Bool,
                );
                let zero = self.constant(0.0, dtype);
                Expr::Select {
                    cond,
                    a: x,
                    b: zero,
                }
            }
            Op::ScatterAdd { .. } | Op::AllReduce { .. } => {
                return Err(JitError::Plan(format!(
                    "{} must be stored before it is read",
                    g.describe(n)
                )))
            }
        };
        Ok(self.intern(e, dtype))
    }

    /// A matmul operand at `index`: read in place when it is a view of a buffer (through
    /// movement ops) that is contiguous along `lane` (the output column, for the right
    /// operand), else first computed into a row-major scratch panel by a nest of its own — so
    /// elementwise producers are not recomputed for every row or column of the product, and a
    /// transposed right operand is read with vector loads.
    fn operand_panel(
        &mut self,
        n: NodeId,
        index: &[Ix],
        lane: Option<VarId>,
    ) -> Result<ExprId, JitError> {
        let e = self.eval(n, index)?;
        let ok = match &self.kernel.expr(e).expr {
            Expr::Load { offset, .. } => match lane {
                None => true,
                Some(v) => {
                    let no_data = |_: ExprId, _: VarId| true;
                    offset.stride_of(v, &no_data) == Some(1)
                }
            },
            _ => false,
        };
        if ok {
            return Ok(e);
        }
        let buffer = self.store_panel(n)?;
        let ty = self.graph.ty(n);
        let offset = linearize(index, &ty.shape);
        Ok(self.intern(Expr::Load { buffer, offset }, ty.dtype))
    }

    /// Stores the value of `n` row-major into a scratch panel by a nest of its own (a matmul
    /// operand that cannot be read in place), and returns the panel.
    pub(super) fn store_panel(&mut self, n: NodeId) -> Result<BufferId, JitError> {
        let ty = self.graph.ty(n).clone();
        let buffer = self.scratch(n);
        self.prog.buffers[buffer.0 as usize].name += "(panel)";
        let computing = if self.in_group.contains(&n) {
            Some(n)
        } else {
            self.computing
        };
        self.store_nest(n, buffer, &ty.shape, computing)?;
        Ok(buffer)
    }

    /// A group output stored into parameter storage while the same kernel still reads that
    /// parameter at another element or in a later nest. The memory plan decides in-place
    /// updates so that this never happens; lowering only checks it.
    fn in_place_hazard(&self, k: &Kernel) -> Option<NodeId> {
        let storage = |b: BufferId| self.prog.buffers[b.0 as usize].storage;
        let loads: Vec<Vec<(Storage, Ix)>> = k
            .nests
            .iter()
            .map(|nest| {
                k.exprs_of(nest)
                    .into_iter()
                    .filter_map(|e| match &k.expr(e).expr {
                        Expr::Load { buffer, offset } => Some((storage(*buffer), offset.clone())),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        for (ni, nest) in k.nests.iter().enumerate() {
            for s in &nest.stores {
                let st = storage(s.buffer);
                if !matches!(st, Storage::Parameter { .. }) {
                    continue;
                }
                let bad = loads.iter().enumerate().any(|(li, ls)| {
                    ls.iter().any(|(ls_st, off)| {
                        *ls_st == st && (li > ni || (li == ni && *off != s.offset))
                    })
                });
                if bad {
                    if let Some((&n, _)) = self.values.iter().find(|(_, &b)| b == s.buffer) {
                        return Some(n);
                    }
                }
            }
        }
        None
    }
}

/// The row-major element offset of `index` in `shape`.
pub fn linearize(index: &[Ix], shape: &Shape) -> Ix {
    let strides = shape.strides();
    let mut lin = Ix::constant(0);
    for (i, s) in index.iter().zip(strides.iter()) {
        lin = lin.add(&i.scale(*s as i64));
    }
    lin
}
