//! Which micro-kernel the host matmul runs: chosen once per process from what the CPU reports
//! (`is_x86_feature_detected!`), overridable with `ADJOINT_ISA=avx512|avx2|generic` or
//! [`select_isa`]. An ISA the CPU lacks is never run: asking for it falls back to the best one
//! the CPU has, with a message on standard error.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction set the host matmul has a micro-kernel for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// AVX-512F: a 14×32 tile in 512-bit registers, masked edges.
    Avx512,
    /// AVX2 + FMA: a 6×16 tile in 256-bit registers.
    Avx2,
    /// Plain Rust for any CPU: a 4×8 tile the compiler vectorizes as it can.
    Generic,
}

impl Isa {
    /// Every ISA, best first.
    pub const ALL: [Isa; 3] = [Isa::Avx512, Isa::Avx2, Isa::Generic];

    /// The name `ADJOINT_ISA` takes.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Generic => "generic",
        }
    }

    /// Parses a name `ADJOINT_ISA` takes.
    pub fn parse(name: &str) -> Option<Isa> {
        Isa::ALL
            .into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(name.trim()))
    }

    /// True when this CPU can run the ISA's micro-kernel.
    pub fn supported(self) -> bool {
        match self {
            Isa::Generic => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The best ISA this CPU supports.
    pub fn detect() -> Isa {
        Isa::ALL
            .into_iter()
            .find(|i| i.supported())
            .unwrap_or(Isa::Generic)
    }

    /// Every ISA this CPU supports, best first.
    pub fn supported_all() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.supported()).collect()
    }

    fn code(self) -> u8 {
        match self {
            Isa::Avx512 => 1,
            Isa::Avx2 => 2,
            Isa::Generic => 3,
        }
    }

    fn from_code(code: u8) -> Option<Isa> {
        Isa::ALL.into_iter().find(|i| i.code() == code)
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The ISA in use (0 until first asked).
static SELECTED: AtomicU8 = AtomicU8::new(0);

/// `wanted` if the CPU supports it, else the best one it does, saying so on standard error.
fn fall_back(wanted: Isa, why: &str) -> Isa {
    if wanted.supported() {
        return wanted;
    }
    let best = Isa::detect();
    eprintln!("adjoint: {why} asks for the {wanted} matmul kernel, which this CPU cannot run; using {best}");
    best
}

/// The ISA the host matmul runs: `ADJOINT_ISA` if set (and supported), else the best the CPU
/// has; decided at the first call, changed only by [`select_isa`].
pub fn selected_isa() -> Isa {
    if let Some(isa) = Isa::from_code(SELECTED.load(Ordering::Relaxed)) {
        return isa;
    }
    let isa = match std::env::var("ADJOINT_ISA") {
        Ok(name) if !name.trim().is_empty() => match Isa::parse(&name) {
            Some(wanted) => fall_back(wanted, "ADJOINT_ISA"),
            None => {
                let best = Isa::detect();
                eprintln!(
                    "adjoint: ADJOINT_ISA={name:?} is not one of avx512, avx2, generic; using {best}"
                );
                best
            }
        },
        _ => Isa::detect(),
    };
    // Another thread may have decided first; either decision is the same one.
    let _ = SELECTED.compare_exchange(0, isa.code(), Ordering::Relaxed, Ordering::Relaxed);
    Isa::from_code(SELECTED.load(Ordering::Relaxed)).unwrap_or(isa)
}

/// Makes every later host matmul of this process run `isa` (or, if the CPU lacks it, the
/// best ISA it has, saying so on standard error); returns the ISA now in use. Meant for
/// tests and measurements that compare the paths. Each call of the host kernel reads the
/// selection once and computes whole output elements, so switching while products run only
/// changes which kernel computes which elements.
pub fn select_isa(isa: Isa) -> Isa {
    let isa = fall_back(isa, "select_isa");
    SELECTED.store(isa.code(), Ordering::Relaxed);
    isa
}
