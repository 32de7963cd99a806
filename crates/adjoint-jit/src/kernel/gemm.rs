//! Contractions on the host kernel: a `matmul` node of an `f32` group lowers directly to a
//! [`GemmNest`], which the host kernel ([`crate::gemm`]) runs reading the operands in place
//! through their strides.
//!
//! Each operand is evaluated at symbolic indices `[batch…, i, k]` and `[batch…, k, j]`: when
//! it is a view of a buffer (movement ops only, so its offset is affine in those variables with
//! non-negative strides) the kernel reads it in place; otherwise it is first stored row-major
//! into a scratch panel by a nest of its own. The product goes straight into the stored buffer
//! when the matmul is its group's stored value; otherwise (an epilogue such as
//! `relu(x·w + b)`) into kernel scratch, which the epilogue reads at the index it stores, so the
//! epilogue still runs in one pass over the output.
//!
//! A 16-bit (`bf16`, `f16`) matmul runs on the host kernel's 16-bit entry
//! ([`crate::gemm::adjoint_gemm_bf16`]), which reads its 16-bit operands in place (or from a
//! 16-bit panel), accumulates in `f32` and rounds each sum once as it writes the 16-bit
//! result — the interpreter's rule (sums in f32, one rounding). An operand that is a cast of
//! an `f32` view to the product's type (a parameter's cast, fused into the matmul's group) is
//! read as `f32` and rounded by the kernel while it packs it, so the 16-bit copy is never
//! stored.

use super::lower::{linearize, GroupLower};
use super::{Atom, BufferId, Expr, ExprId, GemmNest, Ix, LoopNest, VarId};
use crate::gemm::{GemmDesc, MAX_BATCH};
use crate::JitError;
use adjoint_ir::{DType, NodeId};

/// An operand as the host kernel reads it: buffer, element offset of its first element, and
/// its stride along each of the variables it was evaluated at.
struct View {
    buffer: BufferId,
    offset: i64,
    strides: Vec<i64>,
}

impl GroupLower<'_> {
    /// True when matmul node `n` runs on the host kernel: host matmuls are on, it is `f32`,
    /// and its batch rank fits a [`GemmDesc`].
    pub(super) fn host_contraction(&self, n: NodeId) -> bool {
        let ty = self.graph.ty(n);
        let float = ty.dtype == DType::F32 || ty.dtype.is_half();
        let rank = ty.shape.rank();
        self.host_gemm && float && (2..=MAX_BATCH + 2).contains(&rank)
    }

    /// Pushes the host-kernel nest computing matmul node `n` into `c`, a row-major buffer of
    /// `n`'s shape, after the nests that store its operands' panels.
    pub(super) fn host_matmul_into(&mut self, n: NodeId, c: BufferId) -> Result<(), JitError> {
        let strides: Vec<i64> = self
            .graph
            .ty(n)
            .shape
            .strides()
            .iter()
            .map(|&s| s as i64)
            .collect();
        self.host_matmul_at(n, c, &strides)
    }

    /// [`Self::host_matmul_into`], writing element `[b…, i, j]` of the product at
    /// `Σ cs[d]·index[d]` in `c` (non-negative strides of a one-to-one layout: a permute of
    /// the row-major one). When the product's rows are the contiguous axis of `c` (`cs` is 1
    /// along `i`, not along `j`), the kernel computes `Cᵀ = Bᵀ·Aᵀ` instead, reading the
    /// operands with their strides swapped, so that it still writes whole rows of its tiles:
    /// the same sums over `k`, in the same order.
    pub(super) fn host_matmul_at(
        &mut self,
        n: NodeId,
        c: BufferId,
        cs: &[i64],
    ) -> Result<(), JitError> {
        let g = self.graph;
        let ops = g.operands(n);
        let out = g.ty(n).shape.clone();
        let r = out.rank();
        let nb = r - 2;
        let kdim = g.ty(ops[0]).shape.dim(r - 1);
        let batch = self.fresh_vars(&out.dims()[..nb]);
        let ijk = self.fresh_vars(&[out.dim(r - 2), out.dim(r - 1), kdim]);
        let (i, j, k) = (ijk[0], ijk[1], ijk[2]);
        let at = |rows: VarId, cols: VarId| -> Vec<VarId> {
            batch.iter().copied().chain([rows, cols]).collect()
        };
        let a = self.gemm_operand(ops[0], &at(i, k))?;
        let b = self.gemm_operand(ops[1], &at(k, j))?;
        let transposed = cs[r - 1] != 1 && cs[r - 2] == 1;
        // Operands, extents and `C` strides as the kernel sees them.
        let (a, b, m, n, c_rc) = if transposed {
            let swap = |v: View| View {
                strides: v
                    .strides
                    .iter()
                    .copied()
                    .take(nb)
                    .chain([v.strides[nb + 1], v.strides[nb]])
                    .collect(),
                ..v
            };
            let (m, n) = (out.dim(r - 1), out.dim(r - 2));
            (swap(b), swap(a), m, n, [cs[r - 1], cs[r - 2]])
        } else {
            (a, b, out.dim(r - 2), out.dim(r - 1), [cs[r - 2], cs[r - 1]])
        };
        let stride = |v: &View, d: usize| v.strides[d];
        let mut desc = GemmDesc {
            m: m as i64,
            n: n as i64,
            k: kdim as i64,
            a: [stride(&a, nb), stride(&a, nb + 1)],
            b: [stride(&b, nb), stride(&b, nb + 1)],
            c: c_rc,
            batch: [1; MAX_BATCH],
            batch_strides: [[0; 3]; MAX_BATCH],
            split_rows: 1,
            unit: 1,
            wide: [a.buffer, b.buffer, c]
                .map(|x| i64::from(self.prog.buffers[x.0 as usize].dtype == DType::F32)),
        };
        for (d, &c_stride) in cs.iter().enumerate().take(nb) {
            let slot = MAX_BATCH - nb + d;
            desc.batch[slot] = out.dim(d) as i64;
            desc.batch_strides[slot] = [stride(&a, d), stride(&b, d), c_stride];
        }
        self.kernel.nests.push(LoopNest {
            vars: Vec::new(),
            stores: Vec::new(),
            parallel: true,
            gemm: Some(GemmNest {
                a: (a.buffer, a.offset),
                b: (b.buffer, b.offset),
                c: (c, 0),
                desc: desc.with_split(),
                step: None,
            }),
            all_reduce: None,
        });
        Ok(())
    }

    /// The value of matmul node `n` at `index`, read from the scratch buffer the host kernel
    /// writes the product into (computed once per kernel, before the nest reading it).
    pub(super) fn host_matmul_value(
        &mut self,
        n: NodeId,
        index: &[Ix],
    ) -> Result<ExprId, JitError> {
        let buffer = match self.products.get(&n) {
            Some(&b) => b,
            None => {
                let b = self.scratch(n);
                self.host_matmul_into(n, b)?;
                self.products.insert(n, b);
                b
            }
        };
        let ty = self.graph.ty(n);
        let offset = linearize(index, &ty.shape);
        Ok(self.intern(Expr::Load { buffer, offset }, ty.dtype))
    }

    /// Operand `n` evaluated at `vars`, as a strided view the host kernel reads in place, or
    /// stored row-major into a scratch panel first.
    fn gemm_operand(&mut self, n: NodeId, vars: &[VarId]) -> Result<View, JitError> {
        let idx: Vec<Ix> = vars.iter().map(|&v| Ix::var(v)).collect();
        let e = self.eval(n, &idx)?;
        if let Some(view) = self.affine_view(e, vars, self.graph.ty(n).dtype) {
            return Ok(view);
        }
        let buffer = self.store_panel(n)?;
        let ty = self.graph.ty(n);
        Ok(View {
            buffer,
            offset: 0,
            strides: ty.shape.strides().iter().map(|&s| s as i64).collect(),
        })
    }

    /// `e` as a view: a load of a `dtype` buffer whose offset is `Σ stride·var + offset` over
    /// `vars` only, with non-negative strides and offset — or, for a 16-bit `dtype`, such a
    /// load of an `f32` buffer cast to `dtype`, which the host kernel rounds as it reads it.
    fn affine_view(&self, e: ExprId, vars: &[VarId], dtype: DType) -> Option<View> {
        let mut load = &self.kernel.expr(e).expr;
        let mut stored = dtype;
        if let Expr::Cast { x } = load {
            if !dtype.is_half() {
                return None;
            }
            load = &self.kernel.expr(*x).expr;
            stored = DType::F32;
        }
        let Expr::Load { buffer, offset } = load else {
            return None;
        };
        if self.prog.buffers[buffer.0 as usize].dtype != stored || offset.constant < 0 {
            return None;
        }
        let mut strides = vec![0i64; vars.len()];
        for (atom, c) in &offset.terms {
            let Atom::Var(v) = atom else {
                return None;
            };
            let d = vars.iter().position(|w| w == v)?;
            if *c < 0 {
                return None;
            }
            strides[d] += c;
        }
        Some(View {
            buffer: *buffer,
            offset: offset.constant,
            strides,
        })
    }
}
