//! `all_reduce` from compiled code: generated code calls [`adjoint_all_reduce`] from inside the
//! step (a host call, as for the host matmul), so a step stays one native call per replica.
//!
//! The call gets the step's [`CollectiveContext`] (the replica's [`Collective`], set with
//! [`crate::CompiledStep::set_collective`]), a descriptor of the reduction, and the addresses
//! of the operand and result buffers. The host function cannot return an error through
//! generated code, so it records the first one in the context; the runtime turns it into a
//! [`crate::JitError::Collective`] when the step returns.

use adjoint_ir::{AllReduceKind, Collective};
use std::sync::{Arc, Mutex};

/// The reduction one `all_reduce` nest performs; generated code holds its address.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllReduceDesc {
    /// Elements of the operand (and of the result).
    pub elements: usize,
    /// 1 for `f64` elements, 0 for `f32`.
    pub is_f64: u32,
    /// 1 for a mean, 0 for a sum.
    pub is_mean: u32,
    /// The replica count the graph was built for.
    pub replicas: usize,
}

impl AllReduceDesc {
    /// The kind of reduction.
    pub fn kind(&self) -> AllReduceKind {
        if self.is_mean != 0 {
            AllReduceKind::Mean
        } else {
            AllReduceKind::Sum
        }
    }
}

/// A compiled step's link to its data-parallel group (or to none).
#[derive(Default)]
pub struct CollectiveContext {
    /// The replica's handle; `None` for a step of its own.
    pub collective: Option<Arc<dyn Collective>>,
    /// The first error of a run, taken by the runtime after the call.
    pub error: Mutex<Option<String>>,
}

impl CollectiveContext {
    /// Takes the error recorded by the last run, if any.
    pub fn take_error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn record(&self, message: String) {
        let mut e = self.error.lock().unwrap_or_else(|e| e.into_inner());
        e.get_or_insert(message);
    }

    /// Reduces `data` (the result buffer, already holding the operand) over the group.
    fn reduce(&self, desc: &AllReduceDesc, data: Elements<'_>) -> Result<(), String> {
        let kind = desc.kind();
        match &self.collective {
            Some(c) if c.size() != desc.replicas => Err(format!(
                "the graph reduces over {} replicas, the collective has {}",
                desc.replicas,
                c.size()
            )),
            Some(c) => match data {
                Elements::F32(v) => c.all_reduce_f32(v, kind),
                Elements::F64(v) => c.all_reduce_f64(v, kind),
            }
            .map_err(|e| e.to_string()),
            None if desc.replicas == 1 => Ok(()),
            None => Err(format!(
                "the graph reduces over {} replicas but the step has no collective \
                 (CompiledStep::set_collective)",
                desc.replicas
            )),
        }
    }
}

enum Elements<'a> {
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
}

/// The host function generated code calls for an `all_reduce` nest: copies the operand at
/// `src` to the result at `dst` (they may overlap or coincide), then all-reduces `dst` in
/// place through the context's collective. Errors and panics are recorded in the context.
///
/// # Safety
/// `ctx` and `desc` point to live values; `src` and `dst` to `desc.elements` elements of the
/// descriptor's type, `dst` writable and not read or written by anyone else during the call.
pub unsafe extern "C" fn adjoint_all_reduce(
    ctx: *const CollectiveContext,
    desc: *const AllReduceDesc,
    src: *const u8,
    dst: *mut u8,
) {
    // SAFETY: the caller's contract: both point to live values for the call.
    let (ctx, desc) = unsafe { (&*ctx, &*desc) };
    let esize = if desc.is_f64 != 0 { 8 } else { 4 };
    // SAFETY: the caller's contract: both buffers hold `elements` elements; `ptr::copy`
    // allows overlap.
    unsafe { std::ptr::copy(src, dst, desc.elements * esize) };
    // SAFETY: `dst` holds `elements` initialized elements of the descriptor's type, aligned
    // (arena offsets are 64-byte aligned, parameter storage to its element), and is ours alone
    // for the call.
    let data = unsafe {
        if desc.is_f64 != 0 {
            Elements::F64(std::slice::from_raw_parts_mut(
                dst as *mut f64,
                desc.elements,
            ))
        } else {
            Elements::F32(std::slice::from_raw_parts_mut(
                dst as *mut f32,
                desc.elements,
            ))
        }
    };
    // Generated code has no unwind tables to cross: catch a panic and record it.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ctx.reduce(desc, data)));
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => ctx.record(e),
        Err(_) => ctx.record("the collective panicked".into()),
    }
}
