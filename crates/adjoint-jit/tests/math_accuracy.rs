//! Accuracy and special-value tests for `adjoint_jit::math`, run through real JIT-compiled
//! kernels: a loop that loads an `f32x4` / `f64x2` (or one scalar), applies the function and
//! stores the result, compiled for the host with `opt_level=speed` and the verifier on. Every
//! function is checked in all four types, with FMA and without, and in vectors also for a
//! baseline x86-64 target (SSE2 only: no SSE4.1, AVX or FMA), to show that nothing it emits
//! needs more.
//!
//! The f32 reference is the correctly rounded result (Rust's `f64` function rounded to `f32`);
//! the f64 reference is Rust's `f64` function. Run with `--nocapture` to see the measured
//! maximum errors.

use adjoint_jit::math::{
    emit_cos, emit_exp, emit_log, emit_pow, emit_sigmoid, emit_sin, emit_tanh, rem_pio2,
    MathOptions,
};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, AbiParam, BlockArg, InstBuilder, MemFlagsData, Type};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};

// ---- the JIT harness ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Func {
    Exp,
    Log,
    Tanh,
    Sigmoid,
    Sin,
    Cos,
    Pow,
}

/// `fn(x, y, out, bytes)`: `out[i] = f(x[i], y[i])` for every element of the `bytes`-long
/// buffers, one vector (or scalar) per iteration.
type KernelFn = unsafe extern "C" fn(*const u8, *const u8, *mut u8, usize);

/// How a kernel is compiled: its value type, the math options, and whether the ISA has the
/// host's features or only the x86-64 baseline.
#[derive(Clone, Copy, Debug)]
struct Config {
    ty: Type,
    opts: MathOptions,
    native: bool,
}

impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let isa = if self.native { "host" } else { "baseline" };
        write!(f, "{} fma={} isa={isa}", self.ty, self.opts.fma)
    }
}

/// One compiled kernel and the module that owns its code.
struct Kernel {
    module: Option<JITModule>,
    entry: KernelFn,
    lanes: usize,
}

impl Kernel {
    /// Compiles `func` applied to values of `config.ty` (vector or scalar).
    fn compile(func: Func, config: Config) -> Kernel {
        let Config { ty, opts, native } = config;
        let mut flags = settings::builder();
        flags.set("opt_level", "speed").unwrap();
        flags.set("enable_verifier", "true").unwrap();
        let isa = cranelift_native::builder_with_options(native)
            .unwrap()
            .finish(settings::Flags::new(flags))
            .unwrap();
        let ptr = isa.pointer_type();
        let mut module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
        let mut ctx = module.make_context();
        for _ in 0..4 {
            ctx.func.signature.params.push(AbiParam::new(ptr));
        }
        let mut fctx = FunctionBuilderContext::new();
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        let entry = b.create_block();
        let header = b.create_block();
        let body = b.create_block();
        let exit = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.append_block_param(header, ptr);

        b.switch_to_block(entry);
        let params = b.block_params(entry).to_vec();
        let (x, y, out, len) = (params[0], params[1], params[2], params[3]);
        let zero = b.ins().iconst(ptr, 0);
        b.ins().jump(header, &[BlockArg::Value(zero)]);

        b.switch_to_block(header);
        let i = b.block_params(header)[0];
        let more = b.ins().icmp(IntCC::UnsignedLessThan, i, len);
        b.ins().brif(more, body, &[], exit, &[]);

        b.switch_to_block(body);
        let mem = MemFlagsData::trusted();
        let xa = b.ins().iadd(x, i);
        let xv = b.ins().load(ty, mem, xa, 0);
        let r = match func {
            Func::Exp => emit_exp(&mut b, opts, xv),
            Func::Log => emit_log(&mut b, opts, xv),
            Func::Tanh => emit_tanh(&mut b, opts, xv),
            Func::Sigmoid => emit_sigmoid(&mut b, opts, xv),
            Func::Sin => emit_sin(&mut b, opts, xv),
            Func::Cos => emit_cos(&mut b, opts, xv),
            Func::Pow => {
                let ya = b.ins().iadd(y, i);
                let yv = b.ins().load(ty, mem, ya, 0);
                emit_pow(&mut b, opts, xv, yv)
            }
        };
        assert_eq!(b.func.dfg.value_type(r), ty);
        let oa = b.ins().iadd(out, i);
        b.ins().store(mem, r, oa, 0);
        let next = b.ins().iadd_imm_s(i, i64::from(ty.bytes()));
        b.ins().jump(header, &[BlockArg::Value(next)]);

        b.switch_to_block(exit);
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(module.target_config());

        let id = module
            .declare_function("kernel", Linkage::Local, &ctx.func.signature)
            .unwrap();
        if let Err(e) = module.define_function(id, &mut ctx) {
            panic!("{func:?} ({config}) failed to compile: {e:?}");
        }
        module.clear_context(&mut ctx);
        module.finalize_definitions().unwrap();
        let code = module.get_finalized_function(id);
        // SAFETY: `code` is the finalized entry of a function whose signature is four
        // pointer-sized integers and no returns in the host's default calling convention
        // (System V on x86-64 Linux), which is exactly `KernelFn`.
        let entry = unsafe { std::mem::transmute::<*const u8, KernelFn>(code) };
        Kernel {
            module: Some(module),
            entry,
            lanes: ty.lane_count() as usize,
        }
    }

    /// Applies the kernel to whole buffers.
    fn run<T: Lane>(&self, x: &[T], y: &[T], out: &mut [T]) {
        assert_eq!(x.len(), out.len());
        assert_eq!(y.len(), out.len());
        assert_eq!(x.len() % self.lanes, 0);
        // SAFETY: the kernel reads `size_of_val(x)` bytes from `x` and from `y` and writes as
        // many to `out`, in steps of one value of its type, which divides the length (checked
        // above); all three slices are that long, and `out` is exclusively borrowed.
        unsafe {
            (self.entry)(
                x.as_ptr().cast(),
                y.as_ptr().cast(),
                out.as_mut_ptr().cast(),
                std::mem::size_of_val(x),
            );
        }
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        if let Some(module) = self.module.take() {
            // SAFETY: the only pointer into the module's code is `self.entry`, which is dropped
            // with `self` and never called again; no call is running (`run` borrows `self`).
            unsafe { module.free_memory() };
        }
    }
}

/// The float types under test.
trait Lane: Copy + std::fmt::Debug + Default + 'static {
    const SCALAR: Type;
    const VECTOR: Type;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn bits(self) -> u64;
    /// A monotone integer image: consecutive floats differ by 1, `±0` map to 0.
    fn ordinal(self) -> i64;
    /// The float with ordinal `o` (`+0` for 0).
    fn from_ordinal(o: i64) -> Self;
}

impl Lane for f32 {
    const SCALAR: Type = types::F32;
    const VECTOR: Type = types::F32X4;
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
    fn ordinal(self) -> i64 {
        let magnitude = i64::from(self.to_bits() & 0x7fff_ffff);
        if self.is_sign_negative() {
            -magnitude
        } else {
            magnitude
        }
    }
    fn from_ordinal(o: i64) -> Self {
        let magnitude = f32::from_bits(u32::try_from(o.unsigned_abs()).unwrap());
        if o < 0 {
            -magnitude
        } else {
            magnitude
        }
    }
}

impl Lane for f64 {
    const SCALAR: Type = types::F64;
    const VECTOR: Type = types::F64X2;
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn bits(self) -> u64 {
        self.to_bits()
    }
    fn ordinal(self) -> i64 {
        let magnitude = (self.to_bits() & 0x7fff_ffff_ffff_ffff) as i64;
        if self.is_sign_negative() {
            -magnitude
        } else {
            magnitude
        }
    }
    fn from_ordinal(o: i64) -> Self {
        let magnitude = f64::from_bits(o.unsigned_abs());
        if o < 0 {
            -magnitude
        } else {
            magnitude
        }
    }
}

/// Distance in ulps; 0 for two NaNs, `u64::MAX` for NaN against a number.
fn ulps<T: Lane>(a: T, b: T) -> u64 {
    match (a.to_f64().is_nan(), b.to_f64().is_nan()) {
        (true, true) => 0,
        (false, false) => a.ordinal().abs_diff(b.ordinal()),
        _ => u64::MAX,
    }
}

/// The ways every function is compiled for one float type. FMA is only used where the host
/// has it, as a kernel generator would decide with `MathOptions::for_isa`.
fn configs<T: Lane>() -> Vec<Config> {
    let host = cranelift_native::builder()
        .unwrap()
        .finish(settings::Flags::new(settings::builder()))
        .unwrap();
    let host_fma = MathOptions::for_isa(&*host).fma;
    let mut out = Vec::new();
    for ty in [T::VECTOR, T::SCALAR] {
        for fma in [true, false] {
            if fma && !host_fma {
                continue;
            }
            out.push(Config {
                ty,
                opts: MathOptions { fma },
                native: true,
            });
        }
    }
    out.push(Config {
        ty: T::VECTOR,
        opts: MathOptions { fma: false },
        native: false,
    });
    out
}

/// Runs `func` on `(xs, ys)` in every configuration and returns the outputs.
fn eval_all<T: Lane>(func: Func, xs: &[T], ys: &[T]) -> Vec<(Config, Vec<T>)> {
    // Pad to whole vectors; the padding is dropped again below.
    let n = xs.len();
    let padded = n.div_ceil(4) * 4;
    let mut x = xs.to_vec();
    let mut y = ys.to_vec();
    x.resize(padded, T::from_f64(1.0));
    y.resize(padded, T::from_f64(1.0));
    configs::<T>()
        .into_iter()
        .map(|config| {
            let kernel = Kernel::compile(func, config);
            let mut out = vec![T::default(); padded];
            kernel.run(&x, &y, &mut out);
            out.truncate(n);
            (config, out)
        })
        .collect()
}

/// Checks `func` against `reference` (evaluated in f64 and rounded to `T`) on every input and
/// asserts at most `bound` ulps in every configuration; returns the largest error seen.
fn check_sweep<T: Lane>(
    func: Func,
    xs: &[T],
    ys: &[T],
    reference: impl Fn(f64, f64) -> f64,
    bound: u64,
) -> u64 {
    let want: Vec<T> = xs
        .iter()
        .zip(ys)
        .map(|(x, y)| T::from_f64(reference(x.to_f64(), y.to_f64())))
        .collect();
    let mut overall = 0;
    for (config, got) in eval_all(func, xs, ys) {
        let (worst, at) = got
            .iter()
            .zip(&want)
            .enumerate()
            .map(|(i, (&g, &w))| (ulps(g, w), i))
            .max()
            .unwrap();
        println!(
            "{func:?} {config}: max {worst} ulp over {} points (x = {:?}, y = {:?}: got {:?}, want {:?})",
            xs.len(),
            xs[at],
            ys[at],
            got[at],
            want[at]
        );
        assert!(
            worst <= bound,
            "{func:?} {config}: {worst} ulp > {bound} at x = {:?}, y = {:?}: got {:?}, want {:?}",
            xs[at],
            ys[at],
            got[at],
            want[at]
        );
        overall = overall.max(worst);
    }
    overall
}

/// Checks `func` on special inputs: the result must have exactly the bits of the reference
/// (any NaN matches any NaN), in every configuration.
fn check_exact<T: Lane>(func: Func, xs: &[T], ys: &[T], reference: impl Fn(f64, f64) -> f64) {
    for (config, got) in eval_all(func, xs, ys) {
        for (i, &g) in got.iter().enumerate() {
            let w = T::from_f64(reference(xs[i].to_f64(), ys[i].to_f64()));
            let same = if w.to_f64().is_nan() {
                g.to_f64().is_nan()
            } else {
                g.bits() == w.bits()
            };
            assert!(
                same,
                "{func:?} {config}: x = {:?}, y = {:?}: got {:?}, want {:?}",
                xs[i], ys[i], g, w
            );
        }
    }
}

fn unary<T: Lane>(func: Func, xs: &[T], reference: impl Fn(f64) -> f64 + Copy, bound: u64) -> u64 {
    check_sweep(func, xs, xs, move |x, _| reference(x), bound)
}

fn unary_exact<T: Lane>(func: Func, xs: &[T], reference: impl Fn(f64) -> f64 + Copy) {
    check_exact(func, xs, xs, move |x, _| reference(x));
}

// ---- inputs ------------------------------------------------------------------------------------

/// `n` evenly spaced points from `lo` to `hi`.
fn linspace<T: Lane>(lo: f64, hi: f64, n: usize) -> Vec<T> {
    (0..n)
        .map(|i| T::from_f64(lo + (hi - lo) * i as f64 / (n - 1) as f64))
        .collect()
}

/// About `n` positive f32 values evenly spread over the bit patterns, so every binade from the
/// smallest subnormal to the largest finite value is covered equally.
fn positive_f32(n: u32) -> Vec<f32> {
    let step = 0x7f80_0000 / n;
    (1..n).map(|i| f32::from_bits(i * step)).collect()
}

fn positive_f64(n: u64) -> Vec<f64> {
    let step = 0x7ff0_0000_0000_0000 / n;
    (1..n).map(|i| f64::from_bits(i * step)).collect()
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (r >> 11) as f64 / (1_u64 << 53) as f64
    }

    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// `n` floats on each side of each of `centers`.
fn around<T: Lane>(centers: &[f64], n: i64) -> Vec<T> {
    let mut out = Vec::new();
    for &c in centers {
        let o = T::from_f64(c).ordinal();
        out.extend((-n..=n).map(|k| T::from_ordinal(o + k)));
    }
    out
}

fn special_f32() -> Vec<f32> {
    vec![
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1.0e-45,
        -1.0e-45,
        1.0e-40,
        -1.0e-40,
        f32::MIN_POSITIVE,
        f32::MAX,
        f32::MIN,
        1.0e30,
        -1.0e30,
    ]
}

fn special_f64() -> Vec<f64> {
    vec![
        0.0,
        -0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        5.0e-324,
        -5.0e-324,
        1.0e-310,
        -1.0e-310,
        f64::MIN_POSITIVE,
        f64::MAX,
        f64::MIN,
        1.0e300,
        -1.0e300,
    ]
}

// ---- exp ---------------------------------------------------------------------------------------

#[test]
fn exp_accuracy() {
    // Every normal result: from ln(smallest normal) up to overflow.
    let xs: Vec<f32> = linspace(-87.336_54, 89.0, 1 << 20);
    unary(Func::Exp, &xs, f64::exp, 1);
    let xs: Vec<f32> = linspace(-1.0, 1.0, 1 << 18);
    unary(Func::Exp, &xs, f64::exp, 1);
    let xs: Vec<f64> = linspace(-708.396_418_532_264_1, 710.0, 1 << 20);
    unary(Func::Exp, &xs, f64::exp, 1);
    let xs: Vec<f64> = linspace(-1.0, 1.0, 1 << 18);
    unary(Func::Exp, &xs, f64::exp, 1);
}

/// Results below the smallest normal number flush to +0 (no slow subnormal path); the
/// smallest argument with a normal result still gets it.
#[test]
fn exp_flushes_subnormal_results_to_zero() {
    let f32_edge = f32::from_bits((-87.336_54_f32).to_bits() + 1);
    let xs: Vec<f32> = vec![f32_edge, -87.5, -100.0, -103.9, -150.0, f32::NEG_INFINITY];
    unary_exact(Func::Exp, &xs, |_| 0.0);
    let xs: Vec<f32> = vec![-87.336_54];
    unary(Func::Exp, &xs, f64::exp, 1);
    let xs: Vec<f64> = vec![-708.5, -720.0, -745.0, -745.2, f64::NEG_INFINITY];
    unary_exact(Func::Exp, &xs, |_| 0.0);
    let xs: Vec<f64> = vec![-708.396_418_532_264_1];
    unary(Func::Exp, &xs, f64::exp, 1);
}

#[test]
fn exp_special_values() {
    let mut xs = special_f32();
    xs.extend([88.8, -104.0, -200.0, 89.0, 1.0e10, -1.0e10]);
    xs.extend(nans_f32());
    unary_exact(Func::Exp, &xs, f64::exp);
    let mut xs = special_f64();
    xs.extend([709.9, -746.0, -800.0, 710.0, 1.0e300, -1.0e300]);
    xs.extend(nans_f64());
    unary_exact(Func::Exp, &xs, f64::exp);
}

/// The edges of the normal, finite range: the largest argument with a finite result, the
/// next one up (+inf), and the arguments around both ends.
#[test]
fn exp_range_edges() {
    let max_finite = f32::from_bits(0x42b1_7217);
    unary(
        Func::Exp,
        &around::<f32>(&[f64::from(max_finite)], 64),
        f64::exp,
        1,
    );
    let over = f32::from_bits(max_finite.to_bits() + 1);
    unary_exact(Func::Exp, &[over], |_| f64::INFINITY);
    let min_normal = f64::from(-87.336_54_f32);
    let flushed = |x: f64| if x < min_normal { 0.0 } else { x.exp() };
    unary(Func::Exp, &around::<f32>(&[min_normal], 64), flushed, 1);
    let max_finite = 709.782_712_893_384_f64;
    unary(Func::Exp, &around::<f64>(&[max_finite], 64), f64::exp, 1);
    let over = f64::from_bits(max_finite.to_bits() + 1);
    unary_exact(Func::Exp, &[over], |_| f64::INFINITY);
}

/// Every f32 input of `exp` with a normal result and of `tanh` in `[0, 10]` (`tanh` is odd
/// exactly), through the vector kernel with the host's FMA: at most 1 ulp from the correctly
/// rounded result. About two minutes in release:
/// `cargo test --release -p adjoint-jit --test math_accuracy every_f32 -- --ignored --nocapture`.
#[test]
#[ignore]
fn every_f32_of_exp_and_tanh() {
    let config = configs::<f32>()[0];
    assert_eq!(config.ty, types::F32X4);
    /// A function, the bit patterns of its first and last input, and its reference.
    type Range = (Func, u32, u32, fn(f64) -> f64);
    let ranges: [Range; 3] = [
        (Func::Exp, 0, 0x42b1_7217, f64::exp),
        (Func::Exp, 0x8000_0000, (-87.336_54_f32).to_bits(), f64::exp),
        (Func::Tanh, 0, 10.0_f32.to_bits(), f64::tanh),
    ];
    for (func, lo, hi, reference) in ranges {
        let kernel = Kernel::compile(func, config);
        let chunk = 1_u32 << 20;
        let (mut x, mut out) = (vec![0.0_f32; chunk as usize], vec![0.0_f32; chunk as usize]);
        let mut worst = (0, 0.0_f32);
        let mut start = lo;
        loop {
            let n = (hi - start).min(chunk - 1) + 1;
            for (i, v) in x.iter_mut().enumerate() {
                *v = f32::from_bits(start + (i as u32).min(n - 1));
            }
            kernel.run(&x, &x, &mut out);
            for (&xi, &got) in x.iter().zip(&out).take(n as usize) {
                let want = reference(f64::from(xi)) as f32;
                let d = ulps(got, want);
                if d > worst.0 {
                    worst = (d, xi);
                }
            }
            if hi - start < chunk {
                break;
            }
            start += n;
        }
        println!(
            "{func:?} on [{:e}, {:e}]: max {} ulp at {:e}",
            f32::from_bits(lo),
            f32::from_bits(hi),
            worst.0,
            worst.1
        );
        assert!(worst.0 <= 1, "{func:?}: {} ulp at {:e}", worst.0, worst.1);
    }
}

/// NaNs of both signs, quiet and signalling, with payload bits everywhere (a function that
/// moves a NaN's bits around must still return a NaN).
fn nans_f32() -> Vec<f32> {
    [
        0x7fc0_0000_u32,
        0xffc0_0000,
        0x7f80_0001,
        0xff80_0001,
        0x7fc0_01ff,
        0xffff_ffff,
        0x7fa5_5a5a,
    ]
    .into_iter()
    .map(f32::from_bits)
    .collect()
}

fn nans_f64() -> Vec<f64> {
    [
        0x7ff8_0000_0000_0000_u64,
        0xfff8_0000_0000_0000,
        0x7ff0_0000_0000_0001,
        0xfff0_0000_0000_0001,
        0x7ff8_0000_0000_0fff,
        0xffff_ffff_ffff_ffff,
        0x7ff5_5a5a_5a5a_5a5a,
    ]
    .into_iter()
    .map(f64::from_bits)
    .collect()
}

// ---- log ---------------------------------------------------------------------------------------

#[test]
fn log_accuracy() {
    unary(Func::Log, &positive_f32(1 << 20), f64::ln, 1);
    let xs: Vec<f32> = linspace(0.5, 2.0, 1 << 18);
    unary(Func::Log, &xs, f64::ln, 1);
    unary(Func::Log, &positive_f64(1 << 20), f64::ln, 1);
    let xs: Vec<f64> = linspace(0.5, 2.0, 1 << 18);
    unary(Func::Log, &xs, f64::ln, 1);
}

#[test]
fn log_special_values() {
    let mut xs = special_f32();
    xs.extend([1.0, -1.0]);
    unary_exact(Func::Log, &xs, f64::ln);
    let mut xs = special_f64();
    xs.extend([1.0, -1.0]);
    unary_exact(Func::Log, &xs, f64::ln);
}

// ---- tanh and sigmoid --------------------------------------------------------------------------

#[test]
fn tanh_accuracy() {
    let xs: Vec<f32> = linspace(-10.0, 10.0, 1 << 20);
    unary(Func::Tanh, &xs, f64::tanh, 1);
    let xs: Vec<f32> = linspace(-0.7, 0.7, 1 << 18);
    unary(Func::Tanh, &xs, f64::tanh, 1);
    let xs: Vec<f64> = linspace(-20.0, 20.0, 1 << 20);
    unary(Func::Tanh, &xs, f64::tanh, 2);
    let xs: Vec<f64> = linspace(-0.7, 0.7, 1 << 18);
    unary(Func::Tanh, &xs, f64::tanh, 2);
}

#[test]
fn tanh_special_values() {
    let mut xs = special_f32();
    xs.extend([
        1.0e-20, -1.0e-20, 20.0, -20.0, 9.0, 10.0, 11.0, -10.0, 1.0e10,
    ]);
    xs.extend(nans_f32());
    unary_exact(Func::Tanh, &xs, f64::tanh);
    let mut xs = special_f64();
    xs.extend([
        1.0e-200, -1.0e-200, 40.0, -40.0, 19.0, 20.0, 21.0, -20.0, 1.0e100,
    ]);
    xs.extend(nans_f64());
    unary_exact(Func::Tanh, &xs, f64::tanh);
}

/// `1 / (1 + e^-x)`, evaluated without overflow.
fn sigmoid(x: f64) -> f64 {
    let t = (-x.abs()).exp();
    if x < 0.0 {
        t / (1.0 + t)
    } else {
        1.0 / (1.0 + t)
    }
}

#[test]
fn sigmoid_accuracy() {
    let xs: Vec<f32> = linspace(-110.0, 110.0, 1 << 20);
    unary(Func::Sigmoid, &xs, sigmoid, 2);
    let xs: Vec<f64> = linspace(-750.0, 750.0, 1 << 20);
    unary(Func::Sigmoid, &xs, sigmoid, 2);
}

#[test]
fn sigmoid_special_values() {
    let mut xs = special_f32();
    xs.extend([200.0, -200.0]);
    unary_exact(Func::Sigmoid, &xs, sigmoid);
    let mut xs = special_f64();
    xs.extend([800.0, -800.0]);
    unary_exact(Func::Sigmoid, &xs, sigmoid);
}

// ---- sin and cos -------------------------------------------------------------------------------

/// f32 inputs whose remainder modulo π/2 is smallest relative to their size for `|x| <= 1e5`
/// (found by an exhaustive search), and multiples of π/2.
const HARD_F32: [f64; 7] = [
    252.898_21,
    52_516.434,
    53_895.594,
    std::f64::consts::FRAC_PI_2,
    std::f64::consts::PI,
    3.0 * std::f64::consts::FRAC_PI_2,
    10_000.0 * std::f64::consts::PI,
];

/// f32 inputs beyond the inline reduction's range (`|x| > 1e5`, reduced exactly by
/// `rem_pio2`): the arguments of issue 11's bug 3, large round numbers, and the hardest
/// cases (see `HARD_LARGE_F32_SEARCHED`).
const HARD_LARGE_F32: [f64; 8] = [
    1.0e6,
    4_194_304.0,
    16_777_216.0,
    1.0e22,
    1.0e38,
    3.402_823_466e38,
    HARD_LARGE_F32_SEARCHED[0],
    HARD_LARGE_F32_SEARCHED[1],
];

/// The worst f32 cases for reduction beyond 1e5, found by `search_hard_large_f32_reductions`:
/// 7.729179e28, whose remainder (1.6e-9) is the smallest, and 1.2614588e38, whose remainder
/// is the smallest relative to the argument (1.8e-46).
const HARD_LARGE_F32_SEARCHED: [f64; 2] = [
    f32::from_bits(0x6f79_be45) as f64,
    f32::from_bits(0x7ebd_cda0) as f64,
];

/// Both signs of about `n` values spread evenly over the bit patterns from `lo` to the largest
/// finite value, so every binade is covered.
fn binades_f32(lo: f32, n: u32) -> Vec<f32> {
    let (a, b) = (lo.to_bits(), f32::MAX.to_bits());
    let step = (b - a) / n;
    (0..=n)
        .map(|i| f32::from_bits(a + i * step))
        .flat_map(|x| [x, -x])
        .collect()
}

fn binades_f64(lo: f64, n: u64) -> Vec<f64> {
    let (a, b) = (lo.to_bits(), f64::MAX.to_bits());
    let step = (b - a) / n;
    (0..=n)
        .map(|i| f64::from_bits(a + i * step))
        .flat_map(|x| [x, -x])
        .collect()
}

fn trig_inputs_f32() -> Vec<f32> {
    let mut xs: Vec<f32> = linspace(-1.0e5, 1.0e5, 1 << 20);
    xs.extend(linspace::<f32>(-10.0, 10.0, 1 << 18));
    xs.extend(around::<f32>(&HARD_F32, 500));
    // Beyond the inline range: every binade, the hard cases, and a range mixing both paths.
    xs.extend(binades_f32(1.0e5, 1 << 18));
    xs.extend(around::<f32>(&HARD_LARGE_F32, 100));
    xs.extend(linspace::<f32>(-3.0e5, 3.0e5, 1 << 16));
    xs
}

fn trig_inputs_f64() -> Vec<f64> {
    let mut xs: Vec<f64> = linspace(-1.0e6, 1.0e6, 1 << 20);
    xs.extend(linspace::<f64>(-10.0, 10.0, 1 << 18));
    xs.extend(around::<f64>(&HARD_F32, 500));
    xs.extend(binades_f64(1.0e6, 1 << 18));
    xs.extend(around::<f64>(&HARD_LARGE_F64, 100));
    xs.extend(linspace::<f64>(-3.0e6, 3.0e6, 1 << 16));
    xs
}

/// The f64 closest to a multiple of π/2: 6381956970095103 · 2^797, remainder 4.7e-19.
const HARDEST_F64: f64 = f64::from_bits(0x7506_ac5b_262c_a1ff);

/// f64 arguments beyond the inline range: the neighbours of [`HARDEST_F64`] (itself tested in
/// `sin_cos_of_the_hardest_f64_argument`, where libm is 8 ulp off) and large round numbers.
const HARD_LARGE_F64: [f64; 6] = [
    f64::from_bits(0x7506_ac5b_262c_a1ff + 101),
    f64::from_bits(0x7506_ac5b_262c_a1ff - 101),
    1.0e22,
    1.0e300,
    1.797_693_134_862_315_7e308,
    16_777_216.0,
];

/// Finds the f32 arguments beyond the inline range with the smallest remainder modulo π/2
/// (the most bits cancelled in the reduction) and the smallest relative to the argument,
/// over every f32 from 1e5 up: the source of `HARD_LARGE_F32_SEARCHED`. About a minute in release:
/// `cargo test --release -p adjoint-jit --test math_accuracy search_hard -- --ignored --nocapture`.
#[test]
#[ignore]
fn search_hard_large_f32_reductions() {
    let (mut smallest, mut relative) = ((f64::INFINITY, 0.0_f32), (f64::INFINITY, 0.0_f32));
    for bits in 1.0e5_f32.to_bits()..=f32::MAX.to_bits() {
        let x = f32::from_bits(bits);
        let (_, y0, y1) = rem_pio2(f64::from(x));
        let r = (y0 + y1).abs();
        if r < smallest.0 {
            smallest = (r, x);
        }
        if r / f64::from(x) < relative.0 {
            relative = (r / f64::from(x), x);
        }
    }
    let (r, x) = smallest;
    println!("smallest remainder: {x:e} ({:#x}): {r:e}", x.to_bits());
    let (r, x) = relative;
    println!("smallest relative: {x:e} ({:#x}): {r:e}", x.to_bits());
}

#[test]
fn sin_accuracy() {
    unary(Func::Sin, &trig_inputs_f32(), f64::sin, 1);
    unary(Func::Sin, &trig_inputs_f64(), f64::sin, 1);
}

#[test]
fn cos_accuracy() {
    unary(Func::Cos, &trig_inputs_f32(), f64::cos, 1);
    unary(Func::Cos, &trig_inputs_f64(), f64::cos, 1);
}

/// At the f64 closest to a multiple of π/2 the remainder is 4.6871659242546276e-19 (all
/// bits of it are needed): `cos` must be its correctly rounded value, which glibc's `cos`
/// misses by 8 ulp. The references are from mpmath at 900 digits.
#[test]
fn sin_cos_of_the_hardest_f64_argument() {
    unary_exact(Func::Cos, &[HARDEST_F64, -HARDEST_F64], |_| {
        -4.687_165_924_254_628e-19
    });
    unary_exact(Func::Sin, &[HARDEST_F64], |_| 1.0);
    unary_exact(Func::Sin, &[-HARDEST_F64], |_| -1.0);
}

#[test]
fn sin_cos_special_values() {
    // Huge finite values (f32::MAX, 1e30) are reduced exactly too: within 1 ulp.
    let (finite, other): (Vec<f32>, Vec<f32>) =
        special_f32().into_iter().partition(|x| x.is_finite());
    unary(Func::Sin, &finite, f64::sin, 1);
    unary(Func::Cos, &finite, f64::cos, 1);
    unary_exact(Func::Sin, &other, f64::sin);
    unary_exact(Func::Cos, &other, f64::cos);
    let small = [0.0_f32, -0.0, 1.0e-45, -1.0e-45, 1.0e-40, -1.0e-40];
    unary_exact(Func::Sin, &small, f64::sin);
    unary_exact(Func::Cos, &small, f64::cos);
    unary_exact(
        Func::Sin,
        &[f32::INFINITY, f32::NEG_INFINITY, f32::NAN],
        f64::sin,
    );

    let (finite, other): (Vec<f64>, Vec<f64>) =
        special_f64().into_iter().partition(|x| x.is_finite());
    unary(Func::Sin, &finite, f64::sin, 1);
    unary(Func::Cos, &finite, f64::cos, 1);
    unary_exact(Func::Sin, &other, f64::sin);
    unary_exact(Func::Cos, &other, f64::cos);
    let small = [0.0_f64, -0.0, 5.0e-324, -5.0e-324, 1.0e-310, -1.0e-310];
    unary_exact(Func::Sin, &small, f64::sin);
    unary_exact(Func::Cos, &small, f64::cos);
}

// ---- pow ---------------------------------------------------------------------------------------

/// Pairs with `|y · log2 x| <= max_log2` over a wide range of `x` and over `[0.5, 2]` (where
/// large `y` stresses the low bits of `log x`), plus negative `x` with integer `y` and small
/// operands.
fn pow_inputs<T: Lane>(n: usize, log2_x: f64, max_log2: f64) -> (Vec<T>, Vec<T>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut xs, mut ys) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let (x, y) = match i % 5 {
            0 | 1 => {
                let e = rng.uniform(-log2_x, log2_x);
                let y = rng.uniform(-1.0, 1.0) * max_log2 / e.abs().max(1.0);
                (e.exp2(), y)
            }
            2 => {
                let e = rng.uniform(-1.0, 1.0);
                let y = rng.uniform(-1.0, 1.0) * max_log2 / e.abs();
                (e.exp2(), y)
            }
            3 => {
                let x = -rng.uniform(0.0, 16.0);
                let y = rng.uniform(-20.0, 20.0).round();
                (x, y)
            }
            _ => (rng.uniform(0.0, 4.0), rng.uniform(-8.0, 8.0)),
        };
        xs.push(T::from_f64(x));
        ys.push(T::from_f64(y));
    }
    (xs, ys)
}

#[test]
fn pow_accuracy() {
    let (xs, ys) = pow_inputs::<f32>(1 << 20, 60.0, 126.0);
    check_sweep(Func::Pow, &xs, &ys, f64::powf, 1);
    let (xs, ys) = pow_inputs::<f64>(1 << 20, 1000.0, 1020.0);
    check_sweep(Func::Pow, &xs, &ys, f64::powf, 1);
    // Subnormal results.
    let (xs, ys) = pow_inputs::<f64>(1 << 16, 1000.0, 1070.0);
    let keep: Vec<usize> = (0..xs.len())
        .filter(|&i| xs[i].powf(ys[i]).abs() < f64::MIN_POSITIVE)
        .collect();
    let xs: Vec<f64> = keep.iter().map(|&i| xs[i]).collect();
    let ys: Vec<f64> = keep.iter().map(|&i| ys[i]).collect();
    check_sweep(Func::Pow, &xs, &ys, f64::powf, 1);
}

#[test]
fn pow_special_values() {
    let grid = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        2.0,
        -2.0,
        0.5,
        -0.5,
        3.0,
        -3.0,
        2.5,
        -2.5,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        1.0e-300,
        1.0e300,
        -1.0e300,
        // Odd (2^52 + 1) and even (2^53) integers where the units bit leaves the mantissa.
        4_503_599_627_370_497.0,
        -4_503_599_627_370_497.0,
        9_007_199_254_740_992.0,
    ];
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for &x in &grid {
        for &y in &grid {
            xs.push(x);
            ys.push(y);
        }
    }
    // Exactly the C99 answers where they are special (NaN, ±0, ±inf, ±1); within the bound
    // otherwise.
    let special = |v: f64| v.is_nan() || v.is_infinite() || v == 0.0 || v.abs() == 1.0;
    let (sx, sy): (Vec<f64>, Vec<f64>) = xs
        .iter()
        .zip(&ys)
        .filter(|(x, y)| special(x.powf(**y)))
        .unzip();
    check_exact(Func::Pow, &sx, &sy, f64::powf);
    let (ox, oy): (Vec<f64>, Vec<f64>) = xs
        .iter()
        .zip(&ys)
        .filter(|(x, y)| !special(x.powf(**y)))
        .unzip();
    check_sweep(Func::Pow, &ox, &oy, f64::powf, 1);

    let xs: Vec<f32> = xs.iter().map(|&v| v as f32).collect();
    let ys: Vec<f32> = ys.iter().map(|&v| v as f32).collect();
    let want = |x: &f32, y: &f32| f64::from(*x).powf(f64::from(*y)) as f32;
    let (sx, sy): (Vec<f32>, Vec<f32>) = xs
        .iter()
        .zip(&ys)
        .filter(|(x, y)| special(f64::from(want(x, y))))
        .unzip();
    check_exact(Func::Pow, &sx, &sy, f64::powf);
    let (ox, oy): (Vec<f32>, Vec<f32>) = xs
        .iter()
        .zip(&ys)
        .filter(|(x, y)| !special(f64::from(want(x, y))))
        .unzip();
    check_sweep(Func::Pow, &ox, &oy, f64::powf, 1);
}

// ---- the host routines -------------------------------------------------------------------------

/// The host routines that generated kernels call on chunks of a row (`math::host`, on the
/// selected ISA's vectors: 512-bit, 256-bit, or one `f32` at a time) return the same bits as
/// the inline `f32x4` code with FMA, over dense sweeps, range edges and special values (NaN: a
/// NaN). Run under `ADJOINT_ISA=avx2` and `generic` too for the other paths.
#[test]
fn host_routines_return_the_inline_bits() {
    if !std::arch::is_x86_feature_detected!("fma") {
        return; // the routines mirror the FMA form of the inline code
    }
    use adjoint_jit::math::host::{adjoint_exp_f32, adjoint_tanh_f32, RowFn};
    let config = Config {
        ty: types::F32X4,
        opts: MathOptions { fma: true },
        native: true,
    };
    let mut xs: Vec<f32> = linspace(-110.0, 110.0, 400_000);
    xs.extend(linspace::<f32>(-12.0, 12.0, 400_000));
    xs.extend(around::<f32>(
        &[-87.336_54, 88.722_83, 0.625, -0.625, 10.0, -10.0, 0.0],
        300,
    ));
    xs.extend(special_f32());
    xs.extend(nans_f32());
    while !xs.len().is_multiple_of(4) {
        xs.push(0.5);
    }
    let cases: [(Func, RowFn); 2] = [(Func::Exp, adjoint_exp_f32), (Func::Tanh, adjoint_tanh_f32)];
    for (func, routine) in cases {
        let mut inline = vec![0.0f32; xs.len()];
        Kernel::compile(func, config).run(&xs, &xs, &mut inline);
        // Odd lengths from odd offsets: whole vectors and masked tails.
        for (start, len) in [(0, xs.len()), (3, 37), (1, 16), (5, 15), (2, 1)] {
            let mut host = xs[start..start + len].to_vec();
            // SAFETY: `host` holds `len` floats.
            unsafe { routine(host.as_mut_ptr(), len as i64) };
            for (i, &y) in host.iter().enumerate() {
                let (x, want) = (xs[start + i], inline[start + i]);
                assert!(
                    y.to_bits() == want.to_bits() || (y.is_nan() && want.is_nan()),
                    "{func:?}({x:e}): host {y:e}, inline {want:e}"
                );
            }
        }
    }
}
