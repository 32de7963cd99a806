//! Inline, vectorized transcendental functions for generated kernels.
//!
//! CLIF has no `exp`, `log`, `tanh`, `sin`, `cos` or `pow`, and a libm call per element is
//! scalar, spills every live vector and is never inlined. Each `emit_*` function here appends
//! branch-free CLIF computing the function for a value of type `f32x4` or `f64x2` (the vector
//! body of a kernel loop) or `f32` / `f64` (its scalar tail, computed in lane 0 of a vector), at
//! the builder's current position, and returns the result value of the same type.
//!
//! [`host`] has `exp` and `tanh` as host routines over whole arrays, on 512-bit vectors where
//! the CPU has AVX-512F, returning the same bits as the inline `f32x4` code with FMA; generated
//! kernels call them on chunks of long rows (`crate::Options::host_math`).
//!
//! Every function is range reduction plus a polynomial: the reductions split off a power of two
//! or a multiple of `π/2` with Cody–Waite constants, the integer parts are obtained by the
//! "add `1.5·2^mantissa`" rounding trick (so no float-to-int conversion is needed, and none of
//! the `i64x2` conversions the x64 backend lacks without AVX-512), and scaling by `2^n` is
//! integer arithmetic on the exponent bits. Only instructions the x64 backend lowers on a
//! baseline (SSE2-only) x86-64 target are used, and none becomes a libcall; `fma` is emitted only
//! when [`MathOptions::fma`] says the target has it (elsewhere it is a libcall per lane). The
//! one exception is `sin`/`cos` of arguments beyond the inline reduction's range (`|x| > 1e5`
//! in f32, `1e6` in f64): such lanes branch to a call of the exact reduction [`rem_pio2`]. The
//! polynomial coefficients and splitting constants are reproduced by `gen_coefficients.py` in
//! this directory.
//!
//! # Accuracy
//!
//! Measured by `tests/math_accuracy.rs` on dense sweeps (a million or more points per function
//! and type, plus special values), for vectors and scalars, with FMA and without, and for vectors
//! also on a baseline x86-64 ISA; the figures are the same in every configuration. The f32
//! reference is the correctly rounded result (Rust's `f64` function rounded to `f32`); the f64
//! reference is Rust's `f64` function (glibc's libm on Linux, itself within about 1 ulp), so
//! f64 figures are ulps of difference from it. Each function's documentation gives its domain
//! and special values.
//!
//! | function  | f32 max ulp | domain swept (f32)        | f64 max ulp | domain swept (f64)        |
//! |-----------|-------------|---------------------------|-------------|---------------------------|
//! | `exp`     | 1           | `[-87.34, 89]`, and every f32 with a normal result | 1 | `[-708.4, 710]` |
//! | `log`     | 1           | all positive, subnormals  | 1           | all positive, subnormals  |
//! | `tanh`    | 1           | `[-10, 10]`, and every f32 in it | 2 | `[-20, 20]`         |
//! | `sigmoid` | 2           | `[-110, 110]`             | 2           | `[-750, 750]`             |
//! | `sin`     | 1           | all finite, dense to 1e5  | 1           | all finite, dense to 1e6  |
//! | `cos`     | 1           | all finite, dense to 1e5  | 1           | all finite, dense to 1e6  |
//! | `pow`     | 0           | `|y log2 x| <= 126`       | 1           | `|y log2 x| <= 1020`      |
//!
//! "Every f32": the vector kernel (with FMA) run on every `f32` bit pattern of the range, by
//! the ignored test `every_f32_of_exp_and_tanh` (two minutes in release, too long for the
//! suite).
//!
//! Special values (zeros, infinities, NaN, subnormals) follow C99 / IEEE 754 and are tested
//! exactly, except that `exp` flushes results below the smallest normal number to `+0`.
//!
//! # Cost
//!
//! Instructions emitted for one `f32x4` on a host with AVX and FMA, constants included
//! (Cranelift loads each vector constant from its constant pool at the use, inside the loop):
//! `exp` about 36 (20 besides constant loads and register copies), `log` 55, `tanh` 50 (30),
//! `sin` 75; `pow` about 380 (two `f64x2` halves), 230 for one `f64x2`. A scalar costs the
//! same as a vector. In a loop, the time is about the count of arithmetic instructions over
//! the three vector ports: on Sapphire Rapids (one thread, 2.6 GHz) `exp` takes 0.63 ns per
//! element and `tanh` 1.03 in a bare loop over 128K elements in L2.
//!
//! # Example
//!
//! ```
//! use adjoint_jit::math::{emit_exp, MathOptions};
//! use cranelift_codegen::ir::{types, AbiParam, Function, InstBuilder, Signature};
//! use cranelift_codegen::isa::CallConv;
//! use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
//!
//! let mut sig = Signature::new(CallConv::SystemV);
//! sig.params.push(AbiParam::new(types::F32X4));
//! sig.returns.push(AbiParam::new(types::F32X4));
//! let mut func = Function::with_name_signature(Default::default(), sig);
//! let mut ctx = FunctionBuilderContext::new();
//! let mut b = FunctionBuilder::new(&mut func, &mut ctx);
//! let entry = b.create_block();
//! b.append_block_params_for_function_params(entry);
//! b.switch_to_block(entry);
//! b.seal_block(entry);
//! let x = b.block_params(entry)[0];
//! let y = emit_exp(&mut b, MathOptions { fma: false }, x);
//! b.ins().return_(&[y]);
//! assert_eq!(b.func.dfg.value_type(y), types::F32X4);
//! ```

mod exp;
pub mod host;
mod lanes;
mod log;
mod logistic;
mod pow;
mod rem_pio2;
mod trig;

use cranelift_codegen::isa::TargetIsa;

pub use exp::emit_exp;
pub use log::emit_log;
pub use logistic::{emit_sigmoid, emit_tanh};
pub use pow::emit_pow;
pub use rem_pio2::rem_pio2;
pub use trig::{emit_cos, emit_sin};

/// Target facts the emitted code may rely on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MathOptions {
    /// Emit `fma` (one rounding) for multiply-adds. Set it only when the target lowers `fma`
    /// natively (x64: AVX and FMA); without it each `fma` becomes a libcall per lane, so with
    /// `false` the code uses `fmul` + `fadd` instead. The accuracy bounds hold either way.
    pub fma: bool,
}

impl MathOptions {
    /// The options for code that will run on `isa`.
    pub fn for_isa(isa: &dyn TargetIsa) -> Self {
        MathOptions {
            fma: isa.has_native_fma(),
        }
    }
}
