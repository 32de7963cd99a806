//! A memory budget as a user gives it: bytes (`64MiB`, `1.5GB`, `1048576`) or a fraction of
//! the keep-everything arena (`0.5x`), resolved to bytes against a step graph.

use adjoint_ir::Graph;
use adjoint_opt::{optimize, plan, PassError, PassOptions, PlanOptions};
use std::fmt;
use std::str::FromStr;

/// A budget for [`adjoint_jit::Options::memory_budget`] before it is resolved to bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MemoryBudget {
    /// This many bytes.
    Bytes(usize),
    /// This fraction of the arena the step needs when every forward value the backward reads
    /// is kept (`0.5x`: half of it).
    OfKeepAll(f64),
}

/// The largest factor `Nx` accepted: a budget above the keep-everything arena changes
/// nothing, so anything past a few is a typo.
pub const MAX_KEEP_ALL_FACTOR: f64 = 1000.0;

impl MemoryBudget {
    /// The budget in bytes for `graph` (a training step as built: it is optimized and planned
    /// keeping everything to size a fraction, as `compile` would).
    pub fn bytes_for(&self, graph: &Graph) -> Result<usize, PassError> {
        match *self {
            MemoryBudget::Bytes(b) => Ok(b),
            MemoryBudget::OfKeepAll(f) => {
                let (optimized, _) = optimize(graph, &PassOptions::default())?;
                let keep = plan(
                    &optimized,
                    &PlanOptions {
                        keep_all: true,
                        ..PlanOptions::default()
                    },
                );
                // Rounded down, at least one byte.
                Ok(((keep.memory.arena_bytes as f64 * f) as usize).max(1))
            }
        }
    }
}

impl FromStr for MemoryBudget {
    type Err = String;

    /// `N` bytes, `N` with a unit (`B`, `KiB`, `MiB`, `GiB`, `KB`, `MB`, `GB`; a decimal
    /// number is allowed with a unit), or `Fx`: `F` (greater than 0, at most
    /// [`MAX_KEEP_ALL_FACTOR`]) times the keep-everything arena.
    fn from_str(text: &str) -> Result<MemoryBudget, String> {
        let t = text.trim();
        let expected = "expected bytes (e.g. 1048576, 64MiB, 1.5GB) or a fraction of the \
                        keep-everything arena (e.g. 0.5x)";
        if let Some(f) = t.strip_suffix(['x', 'X']) {
            let f: f64 = f
                .trim()
                .parse()
                .map_err(|_| format!("{expected}, got `{text}`"))?;
            if !f.is_finite() || f <= 0.0 || f > MAX_KEEP_ALL_FACTOR {
                return Err(format!(
                    "a fraction of the keep-everything arena must be greater than 0 and at \
                     most {MAX_KEEP_ALL_FACTOR}, got `{text}`"
                ));
            }
            return Ok(MemoryBudget::OfKeepAll(f));
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = (&t[..split], t[split..].trim());
        let scale: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            _ => return Err(format!("{expected}; unknown unit `{unit}` in `{text}`")),
        };
        let bytes = if unit.is_empty() || scale == 1 {
            number
                .parse::<u64>()
                .map_err(|_| format!("{expected}, got `{text}`"))?
        } else {
            let v: f64 = number
                .parse()
                .map_err(|_| format!("{expected}, got `{text}`"))?;
            let b = v * scale as f64;
            if !b.is_finite() || b >= u64::MAX as f64 {
                return Err(format!(
                    "`{text}` is more bytes than this machine can count"
                ));
            }
            b as u64
        };
        if bytes == 0 {
            return Err(format!(
                "a memory budget must be at least 1 byte, got `{text}`"
            ));
        }
        usize::try_from(bytes)
            .map(MemoryBudget::Bytes)
            .map_err(|_| format!("`{text}` is more bytes than this machine can count"))
    }
}

impl fmt::Display for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemoryBudget::Bytes(b) => write!(f, "{b} B"),
            MemoryBudget::OfKeepAll(x) => write!(f, "{x}x keep-all"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_bytes_units_and_fractions() {
        let p = |s: &str| s.parse::<MemoryBudget>();
        assert_eq!(p("1048576"), Ok(MemoryBudget::Bytes(1 << 20)));
        assert_eq!(p("64MiB"), Ok(MemoryBudget::Bytes(64 << 20)));
        assert_eq!(p("64 mib"), Ok(MemoryBudget::Bytes(64 << 20)));
        assert_eq!(p("1.5GB"), Ok(MemoryBudget::Bytes(1_500_000_000)));
        assert_eq!(p("2KiB"), Ok(MemoryBudget::Bytes(2048)));
        assert_eq!(p("0.5x"), Ok(MemoryBudget::OfKeepAll(0.5)));
        for bad in [
            "",
            "0",
            "0MiB",
            "-1",
            "-0.5x",
            "0x",
            "nanx",
            "infx",
            "1e400GB",
            "12 parsecs",
            "1.5",
            "x",
            "5000x",
            "99999999999999999999999",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }
}
