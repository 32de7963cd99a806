//! Constant folding: evaluates elementwise ops whose operands are all constants, but only where
//! the result is exactly what any correct evaluation computes.
//!
//! Folded: `neg`, `abs`, `sign` (of nonzero numbers), `sqrt`, `recip`, `add`, `sub`, `mul`,
//! `div`, `max`, `min` (not on zeros of opposite sign), comparisons, `select`, `cast`, and
//! `reshape` of a constant. IEEE-754 requires `+ - * / sqrt` to be correctly rounded, and
//! computing an `f32` operation in `f64` and rounding once more gives the same correctly
//! rounded `f32` (53 ≥ 2·24 + 2 bits), so these folds are bit-exact. `i32` arithmetic is
//! folded only when it does not overflow. Transcendental functions (`exp`, `log`, `tanh`,
//! `sin`, `cos`, `pow`) are **not** folded: their last bit depends on the math library, and the
//! folded value must equal what the interpreter and the compiled code compute at run time.
//!
//! Folding is limited to results of at most [`MAX_FOLD_ELEMENTS`] elements, so that the
//! graph never grows large literals; broadcasts of constants stay broadcasts (see the
//! `sink_broadcast` rule in [`crate::simplify`], which moves them past elementwise ops so that
//! the scalar underneath can be folded).

use crate::rewrite::{Expr, Rule};
use adjoint_ir::{
    round_to, BinaryOp, CompareOp, DType, Graph, Literal, NodeId, Op, TensorType, UnaryOp,
};

/// The largest constant a fold may produce, in elements.
pub const MAX_FOLD_ELEMENTS: usize = 4096;

/// The constant-folding rule.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConstantFold;

impl Rule for ConstantFold {
    fn name(&self) -> &'static str {
        "constant_fold"
    }

    fn is_exact(&self) -> bool {
        true
    }

    fn apply(&self, graph: &Graph, op: &Op, operands: &[NodeId]) -> Option<Expr> {
        if operands.is_empty() {
            return None;
        }
        let lits: Vec<&Literal> = operands
            .iter()
            .map(|&o| match graph.op(o) {
                Op::Constant(l) => Some(l),
                _ => None,
            })
            .collect::<Option<_>>()?;
        let tys: Vec<&TensorType> = operands.iter().map(|&o| graph.ty(o)).collect();
        let ty = adjoint_ir::infer::result_type(op, &tys).ok()?;
        if ty.shape.numel() > MAX_FOLD_ELEMENTS {
            return None;
        }
        let values: Vec<f64> = match op {
            Op::Reshape { .. } => lits[0].values().to_vec(),
            _ if op.is_elementwise() => (0..ty.shape.numel())
                .map(|i| {
                    let args: Vec<f64> = lits.iter().map(|l| l.values()[i]).collect();
                    let dtype = lits.last().expect("operands").ty().dtype;
                    eval_elementwise(op, dtype, &args)
                })
                .collect::<Option<_>>()?,
            _ => return None,
        };
        let lit = Literal::new(ty, &values).ok()?;
        Some(Expr::leaf(Op::Constant(lit)))
    }
}

/// The exact value of elementwise `op` on one element of each operand (`dtype` is the type of
/// the value operands), or `None` when it is not folded (see the module documentation).
pub fn eval_elementwise(op: &Op, dtype: DType, args: &[f64]) -> Option<f64> {
    let v = match op {
        Op::Unary(u) => eval_unary(*u, dtype, args[0])?,
        Op::Binary(b) => eval_binary(*b, dtype, args[0], args[1])?,
        Op::Compare(c) => {
            let (a, b) = (args[0], args[1]);
            let r = match c {
                CompareOp::Lt => a < b,
                CompareOp::Le => a <= b,
                CompareOp::Eq => a == b,
                CompareOp::Ne => a != b,
            };
            return Some(if r { 1.0 } else { 0.0 });
        }
        Op::Select => {
            if args[0] != 0.0 {
                args[1]
            } else {
                args[2]
            }
        }
        Op::Cast { to } => return Some(round_to(*to, args[0])),
        Op::Input { .. }
        | Op::Parameter { .. }
        | Op::Constant(_)
        | Op::Iota { .. }
        | Op::Broadcast { .. }
        | Op::Reshape { .. }
        | Op::Permute { .. }
        | Op::Slice { .. }
        | Op::Pad { .. }
        | Op::Concat { .. }
        | Op::Reduce { .. }
        | Op::MatMul
        | Op::Gather { .. }
        | Op::ScatterAdd { .. }
        | Op::AllReduce { .. } => return None,
    };
    Some(round_to(dtype, v))
}

fn eval_unary(u: UnaryOp, dtype: DType, x: f64) -> Option<f64> {
    if dtype == DType::I32 {
        let x = x as i32;
        return Some(match u {
            UnaryOp::Neg => x.checked_neg()?,
            UnaryOp::Abs => x.checked_abs()?,
            UnaryOp::Sign => x.signum(),
            UnaryOp::StopGradient => x,
            UnaryOp::Exp
            | UnaryOp::Log
            | UnaryOp::Sqrt
            | UnaryOp::Recip
            | UnaryOp::Tanh
            | UnaryOp::Sin
            | UnaryOp::Cos => return None,
        } as f64);
    }
    Some(match u {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::StopGradient => x,
        UnaryOp::Sign if x > 0.0 => 1.0,
        UnaryOp::Sign if x < 0.0 => -1.0,
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Recip => 1.0 / x,
        // sign(±0) and sign(NaN) are left to the interpreter's and the JIT's own rules.
        UnaryOp::Sign => return None,
        // Not folded: the host libm and the generated code may round differently.
        UnaryOp::Exp | UnaryOp::Log | UnaryOp::Tanh | UnaryOp::Sin | UnaryOp::Cos => return None,
    })
}

fn eval_binary(b: BinaryOp, dtype: DType, x: f64, y: f64) -> Option<f64> {
    if dtype == DType::I32 {
        let (x, y) = (x as i32, y as i32);
        return Some(match b {
            BinaryOp::Add => x.checked_add(y)?,
            BinaryOp::Sub => x.checked_sub(y)?,
            BinaryOp::Mul => x.checked_mul(y)?,
            BinaryOp::Max => x.max(y),
            BinaryOp::Min => x.min(y),
            BinaryOp::Div | BinaryOp::Pow => return None,
        } as f64);
    }
    let opposite_zeros = x == 0.0 && y == 0.0 && x.is_sign_negative() != y.is_sign_negative();
    Some(match b {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div => x / y,
        BinaryOp::Max | BinaryOp::Min if x.is_nan() || y.is_nan() => f64::NAN,
        BinaryOp::Max | BinaryOp::Min if opposite_zeros => return None,
        BinaryOp::Max => x.max(y),
        BinaryOp::Min => x.min(y),
        BinaryOp::Pow => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_arithmetic_rounds_once_to_f32() {
        let third = eval_binary(BinaryOp::Div, DType::F32, 1.0, 3.0).unwrap();
        assert_eq!(round_to(DType::F32, third), (1.0f32 / 3.0f32) as f64);
        let s = eval_binary(BinaryOp::Add, DType::F32, 0.1f32 as f64, 0.2f32 as f64).unwrap();
        assert_eq!(round_to(DType::F32, s), (0.1f32 + 0.2f32) as f64);
    }

    #[test]
    fn what_is_not_folded() {
        assert_eq!(eval_unary(UnaryOp::Exp, DType::F32, 1.0), None);
        assert_eq!(
            eval_binary(BinaryOp::Add, DType::I32, i32::MAX as f64, 1.0),
            None
        );
        assert_eq!(eval_binary(BinaryOp::Max, DType::F32, 0.0, -0.0), None);
        assert!(eval_binary(BinaryOp::Max, DType::F32, f64::NAN, 1.0)
            .unwrap()
            .is_nan());
        assert_eq!(eval_unary(UnaryOp::Sign, DType::F32, 0.0), None);
    }
}
