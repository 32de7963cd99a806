//! What recomputing a node costs, in floating-point operations, for the rematerialization
//! pass: the price of recomputing a value, set against the bytes of keeping it.
//!
//! The counts are per op class ([`Op::class`]):
//!
//! - leaves and movement ops: 0 (a movement op is an index map inside a kernel);
//! - elementwise ops: one per result element, [`DIVISION_FLOPS`] for division, square root and
//!   reciprocal, [`TRANSCENDENTAL_FLOPS`] for `exp`, `log`, `tanh`, `sin`, `cos` and `pow`
//!   (their polynomial evaluations);
//! - matrix products: `2·m·n·k` per batch element;
//! - reductions: one per operand element;
//! - gathers: one per result element; scatter-adds: one per update element.
//!
//! Byte sizes come from the value's type ([`adjoint_ir::TensorType::size_bytes`]), so a
//! 2-byte dtype halves what keeping it costs.

use adjoint_ir::{BinaryOp, Graph, NodeId, Op, OpClass, UnaryOp};

/// FLOPs per element of `exp`, `log`, `tanh`, `sin`, `cos` and `pow`.
pub const TRANSCENDENTAL_FLOPS: u64 = 16;

/// FLOPs per element of division, square root and reciprocal.
pub const DIVISION_FLOPS: u64 = 4;

/// FLOPs per result element of an elementwise op: unary and binary ops by the exhaustive
/// tables below (a new op must be priced there), compare, select and cast one.
pub fn elementwise_flops(op: &Op) -> u64 {
    if let Op::Unary(u) = op {
        return unary_flops(*u);
    }
    if let Op::Binary(b) = op {
        return binary_flops(*b);
    }
    1
}

fn unary_flops(u: UnaryOp) -> u64 {
    match u {
        UnaryOp::Exp | UnaryOp::Log | UnaryOp::Tanh | UnaryOp::Sin | UnaryOp::Cos => {
            TRANSCENDENTAL_FLOPS
        }
        UnaryOp::Sqrt | UnaryOp::Recip => DIVISION_FLOPS,
        UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign => 1,
        UnaryOp::StopGradient => 0,
    }
}

fn binary_flops(b: BinaryOp) -> u64 {
    match b {
        BinaryOp::Pow => TRANSCENDENTAL_FLOPS,
        BinaryOp::Div => DIVISION_FLOPS,
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Max | BinaryOp::Min => 1,
    }
}

/// FLOPs to compute node `v` of `graph` once (saturating at `u64::MAX`).
pub fn recompute_flops(graph: &Graph, v: NodeId) -> u64 {
    let op = graph.op(v);
    let numel = |n: NodeId| graph.ty(n).shape.try_numel().unwrap_or(usize::MAX) as u64;
    match op.class() {
        OpClass::Leaf | OpClass::Movement => 0,
        OpClass::Elementwise => numel(v).saturating_mul(elementwise_flops(op)),
        OpClass::Contraction => {
            // [..., m, k] @ [..., k, n]: 2·k multiply-adds per result element.
            let k = graph
                .operands(v)
                .first()
                .and_then(|&a| graph.ty(a).shape.dims().last().copied())
                .unwrap_or(1) as u64;
            numel(v).saturating_mul(k).saturating_mul(2)
        }
        OpClass::Reduction => graph
            .operands(v)
            .first()
            .map_or(0, |&a| numel(a))
            .max(numel(v)),
        OpClass::Gather => numel(v),
        OpClass::Scatter => graph.operands(v).first().map_or(0, |&u| numel(u)),
        // Communication, not arithmetic: remat never recomputes it; its sum is one add per
        // element and replica.
        OpClass::Collective => numel(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adjoint_ir::{Builder, DType};

    #[test]
    fn flops_follow_the_op_class() {
        let b = Builder::new("costs");
        let x = b.input("x", DType::F32, [8, 4]);
        let w = b.parameter("w", DType::F32, [4, 16]);
        let a = x.matmul(w);
        let t = a.tanh();
        let s = (t + a).sum(&[1]);
        let r = a.reshape([128]);
        b.output("s", s);
        b.output("r", r);
        let ids = [a.id(), t.id(), s.id(), r.id(), x.id()];
        let [a, t, s, r, x] = ids;
        let g = b.finish();
        assert_eq!(recompute_flops(&g, a), 2 * 8 * 16 * 4);
        assert_eq!(recompute_flops(&g, t), 128 * TRANSCENDENTAL_FLOPS);
        assert_eq!(recompute_flops(&g, s), 128);
        assert_eq!(recompute_flops(&g, r), 0);
        assert_eq!(recompute_flops(&g, x), 0);
    }
}
