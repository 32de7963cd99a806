//! Validation of the numbers given on the command line: thread counts, step counts and
//! tolerances. The parsers run inside clap, so a bad value is reported as
//! `invalid value 'V' for '--FLAG'` with the reason, before anything is sized from it.

/// The largest `--steps` or `--warmup` accepted: a million whole training steps is already
/// hours of work on every workload; a larger count is a typo, not a benchmark.
pub const MAX_STEPS: u64 = 1_000_000;

/// Parses `--threads`: `all` or `0` for every core, or a positive count. Counts above the
/// core count are accepted here and capped by [`resolve_threads`].
pub fn parse_threads(text: &str) -> Result<usize, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("all") {
        return Ok(0);
    }
    text.parse::<usize>().map_err(|_| {
        format!("expected a whole number of threads (0 or `all` for every core), got `{text}`")
    })
}

/// The number of threads a `--threads` value stands for, with the semantics of
/// [`adjoint::Options::thread_count`]: every core for 0, and never more than the cores. A
/// count that had to be capped is reported on standard error.
pub fn resolve_threads(requested: usize) -> usize {
    let options = adjoint::Options {
        threads: requested,
        ..adjoint::Options::default()
    };
    let threads = options.thread_count();
    if requested > threads {
        eprintln!(
            "adjoint: note: --threads {requested} is more than the {threads} core(s) of this \
             machine; using {threads}"
        );
    }
    threads
}

/// Parses `--steps`: a whole number from 1 to [`MAX_STEPS`].
pub fn parse_steps(text: &str) -> Result<usize, String> {
    parse_count(text, 1)
}

/// The most cases `adjoint fuzz` runs in one campaign.
pub const MAX_CASES: u64 = 1_000_000_000;

/// Parses `fuzz --cases`: a whole number from 1 to [`MAX_CASES`].
pub fn parse_cases(text: &str) -> Result<u64, String> {
    let range = format!("a whole number from 1 to {MAX_CASES}");
    match text.trim().parse::<u64>() {
        Ok(n) if (1..=MAX_CASES).contains(&n) => Ok(n),
        _ => Err(format!("expected {range}, got `{text}`")),
    }
}

/// Parses `--warmup`: a whole number from 0 to [`MAX_STEPS`].
pub fn parse_warmup(text: &str) -> Result<usize, String> {
    parse_count(text, 0)
}

fn parse_count(text: &str, min: u64) -> Result<usize, String> {
    let range = format!("a whole number from {min} to {MAX_STEPS}");
    let n = text
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("expected {range}, got `{text}`"))?;
    if n < min || n > MAX_STEPS {
        return Err(format!("expected {range}, got {n}"));
    }
    // Within the range the count fits in a usize on every 32- and 64-bit target.
    usize::try_from(n).map_err(|_| format!("expected {range}, got {n}"))
}

/// Parses `--tolerance`: a finite number greater than 0.
pub fn parse_tolerance(text: &str) -> Result<f64, String> {
    let t = text
        .trim()
        .parse::<f64>()
        .map_err(|_| format!("expected a number greater than 0, got `{text}`"))?;
    if !t.is_finite() || t <= 0.0 {
        return Err(format!(
            "expected a finite number greater than 0, got `{text}`"
        ));
    }
    Ok(t)
}

/// Parses `--memory-budget`: bytes (`1048576`, `64MiB`, `1.5GB`; at least 1) or a fraction
/// of the keep-everything arena (`0.5x`; greater than 0, at most
/// [`adjoint::memory_budget::MAX_KEEP_ALL_FACTOR`]).
pub fn parse_memory_budget(text: &str) -> Result<adjoint::MemoryBudget, String> {
    text.parse()
}

/// The largest `--int-bound`: random i32 feeds are drawn from `0..bound`, so the bound may
/// be one past `i32::MAX` and no more (a larger draw would wrap to a negative i32).
pub const MAX_INT_BOUND: u32 = 1 << 31;

/// Parses `--int-bound`: a whole number from 1 to [`MAX_INT_BOUND`].
pub fn parse_int_bound(text: &str) -> Result<u32, String> {
    let range = format!("a whole number from 1 to {MAX_INT_BOUND}");
    match text.trim().parse::<u64>() {
        Ok(n) if (1..=u64::from(MAX_INT_BOUND)).contains(&n) => {
            u32::try_from(n).map_err(|_| format!("expected {range}, got {n}"))
        }
        _ => Err(format!("expected {range}, got `{text}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_accept_all_zero_and_counts() {
        assert_eq!(parse_threads("all"), Ok(0));
        assert_eq!(parse_threads("0"), Ok(0));
        assert_eq!(parse_threads("3"), Ok(3));
        assert_eq!(parse_threads("100000"), Ok(100000));
        assert!(parse_threads("-1").is_err());
        assert!(parse_threads("1.5").is_err());
        assert!(parse_threads("99999999999999999999999").is_err());
    }

    #[test]
    fn resolved_threads_never_exceed_the_cores() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(resolve_threads(0), cores);
        assert_eq!(resolve_threads(1), 1);
        assert_eq!(resolve_threads(100_000), cores);
    }

    #[test]
    fn steps_are_whole_numbers_in_range() {
        assert_eq!(parse_steps("1"), Ok(1));
        assert_eq!(parse_steps("1000000"), Ok(1_000_000));
        assert!(parse_steps("0").is_err());
        assert!(parse_steps("1000001").is_err());
        assert!(parse_steps("1e12").is_err());
        assert!(parse_steps("18446744073709551615").is_err());
        assert!(parse_steps("18446744073709551616").is_err());
        assert!(parse_steps("-3").is_err());
        assert_eq!(parse_warmup("0"), Ok(0));
        assert!(parse_warmup("2000000").is_err());
    }

    #[test]
    fn int_bounds_keep_random_values_within_i32() {
        assert_eq!(parse_int_bound("1"), Ok(1));
        assert_eq!(parse_int_bound("2147483648"), Ok(1 << 31));
        for bad in ["0", "2147483649", "4294967295", "-1", "1e3"] {
            assert!(parse_int_bound(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn memory_budgets_are_bytes_or_fractions_of_keep_all() {
        assert_eq!(
            parse_memory_budget("64MiB"),
            Ok(adjoint::MemoryBudget::Bytes(64 << 20))
        );
        assert_eq!(
            parse_memory_budget("0.5x"),
            Ok(adjoint::MemoryBudget::OfKeepAll(0.5))
        );
        for bad in [
            "0",
            "-5",
            "0x",
            "-1x",
            "1e9999x",
            "3 furlongs",
            "18446744073709551616",
        ] {
            assert!(parse_memory_budget(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tolerance_is_finite_and_positive() {
        assert_eq!(parse_tolerance("1e-6"), Ok(1e-6));
        for bad in ["nan", "NaN", "inf", "-inf", "-1e-6", "0", "-0", "x"] {
            assert!(parse_tolerance(bad).is_err(), "{bad}");
        }
    }
}
