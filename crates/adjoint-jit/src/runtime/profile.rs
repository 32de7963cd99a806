//! Per-nest wall time of a compiled step (`Options::profile`).
//!
//! When profiling is on, the runtime calls the step's nest functions one by one instead of
//! through the generated entry point, in the same order and with the same thread split, and
//! adds each call's wall time to that nest's entry. [`Profile`]'s `Display` lists the nests
//! from the most expensive down.

use std::fmt;
use std::time::Duration;

/// The accumulated time of one nest function.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileEntry {
    /// The nest function's name (`k3_matmul_n0`: kernel 3, nest 0).
    pub name: String,
    /// Index of the kernel in the program.
    pub kernel: usize,
    /// Index of the nest in its kernel.
    pub nest: usize,
    /// Element operations of one call (loop iterations times reduction lengths).
    pub work: usize,
    /// Split over the thread pool.
    pub parallel: bool,
    /// Number of calls (one per step run).
    pub calls: u64,
    /// Total wall time of those calls.
    pub total: Duration,
}

/// Per-nest wall times accumulated over the runs since profiling started (or was reset).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    /// One entry per nest function, in execution order.
    pub entries: Vec<ProfileEntry>,
}

impl Profile {
    /// The sum of every nest's time.
    pub fn total(&self) -> Duration {
        self.entries.iter().map(|e| e.total).sum()
    }

    /// The total time of each kernel, in kernel order: `(kernel name, time)`.
    pub fn by_kernel(&self) -> Vec<(String, Duration)> {
        let mut out: Vec<(usize, String, Duration)> = Vec::new();
        for e in &self.entries {
            match out.iter_mut().find(|(k, ..)| *k == e.kernel) {
                Some(slot) => slot.2 += e.total,
                None => {
                    let name = e
                        .name
                        .rsplit_once("_n")
                        .map_or(e.name.as_str(), |(k, _)| k)
                        .to_string();
                    out.push((e.kernel, name, e.total));
                }
            }
        }
        out.into_iter().map(|(_, n, t)| (n, t)).collect()
    }
}

impl fmt::Display for Profile {
    /// The nests from the most expensive down: time per call, share of the total, work.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.total().as_secs_f64();
        let mut order: Vec<&ProfileEntry> = self.entries.iter().collect();
        order.sort_by_key(|e| std::cmp::Reverse(e.total));
        writeln!(
            f,
            "{:<28} {:>12} {:>7} {:>14} {:>9}",
            "nest", "us/call", "share", "work", "GOP/s"
        )?;
        for e in order {
            let per = if e.calls == 0 {
                0.0
            } else {
                e.total.as_secs_f64() / e.calls as f64
            };
            let share = if total > 0.0 {
                100.0 * e.total.as_secs_f64() / total
            } else {
                0.0
            };
            let rate = if per > 0.0 {
                e.work as f64 / per / 1e9
            } else {
                0.0
            };
            writeln!(
                f,
                "{:<28} {:>12.1} {:>6.1}% {:>14} {:>9.2}{}",
                e.name,
                per * 1e6,
                share,
                e.work,
                rate,
                if e.parallel { " [parallel]" } else { "" }
            )?;
        }
        Ok(())
    }
}
