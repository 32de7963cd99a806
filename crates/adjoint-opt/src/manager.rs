//! The pass manager: runs a pipeline of passes (to a fixpoint where that applies), verifies
//! between passes in debug builds, records per-pass statistics and dumps the graph after every
//! pass.

use crate::passes::{pass_by_name, Pass, PASS_NAMES};
use crate::rewrite::RewriteError;
use adjoint_ir::Graph;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Environment variable naming a directory to dump the graph into after every pass.
pub const DUMP_ENV: &str = "ADJOINT_DUMP";

/// How to run the passes.
#[derive(Clone, Debug, PartialEq)]
pub struct PassOptions {
    /// The passes, by name ([`PASS_NAMES`]), in order; the whole list is repeated until no pass
    /// changes anything (or `max_rounds`). Default: `fold, simplify, cse, dce`.
    pub passes: Vec<String>,
    /// The most rounds of the list.
    pub max_rounds: usize,
    /// Apply the simplification rules that are not bit-exact (default true; see
    /// `docs/passes.md`).
    pub allow_inexact: bool,
    /// Run the verifier after every pass (default: in debug builds).
    pub verify: bool,
    /// Dump the graph (text and DOT) after every pass into this directory. `None` falls back
    /// to the `ADJOINT_DUMP` environment variable.
    pub dump_dir: Option<PathBuf>,
}

impl Default for PassOptions {
    fn default() -> PassOptions {
        PassOptions {
            passes: PASS_NAMES.iter().map(|s| s.to_string()).collect(),
            max_rounds: 8,
            allow_inexact: true,
            verify: cfg!(debug_assertions),
            dump_dir: None,
        }
    }
}

/// A pass name that is not one of [`PASS_NAMES`] ([`PassOptions::with_passes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownPass {
    /// The name given.
    pub name: String,
}

impl std::fmt::Display for UnknownPass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown pass `{}` (known passes: {})",
            self.name,
            PASS_NAMES.join(", ")
        )
    }
}

impl std::error::Error for UnknownPass {}

impl PassOptions {
    /// Options that run only the bit-exact rewrites.
    pub fn exact() -> PassOptions {
        PassOptions {
            allow_inexact: false,
            ..PassOptions::default()
        }
    }

    /// Options running the comma-separated pass list `list` (`"fold,cse"`); an error names an
    /// unknown pass.
    pub fn with_passes(list: &str) -> Result<PassOptions, UnknownPass> {
        let passes: Vec<String> = list
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        for p in &passes {
            if !PASS_NAMES.contains(&p.as_str()) {
                return Err(UnknownPass { name: p.clone() });
            }
        }
        Ok(PassOptions {
            passes,
            ..PassOptions::default()
        })
    }
}

/// Statistics of one pass run.
#[derive(Clone, Debug, PartialEq)]
pub struct PassStat {
    /// The pass.
    pub pass: &'static str,
    /// Which round of the pipeline (from 1).
    pub round: usize,
    /// Nodes before.
    pub nodes_before: usize,
    /// Nodes after.
    pub nodes_after: usize,
    /// Rewrites and removals (0: nothing changed).
    pub changes: usize,
    /// Rule hits, for rule-based passes.
    pub hits: Vec<(&'static str, usize)>,
    /// Wall time.
    pub time: Duration,
}

/// What a pipeline run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PassReport {
    /// One entry per pass run, in order.
    pub stats: Vec<PassStat>,
    /// Nodes of the input graph.
    pub nodes_before: usize,
    /// Nodes of the result.
    pub nodes_after: usize,
    /// Files written, when dumping.
    pub dumped: Vec<PathBuf>,
}

/// Why a pipeline failed.
#[derive(Clone, Debug, PartialEq)]
pub enum PassError {
    /// A pass produced a graph the verifier rejects (a bug in the pass).
    Verify {
        /// The pass.
        pass: String,
        /// The verifier's message.
        message: String,
    },
    /// A pass failed internally.
    Pass {
        /// The pass.
        pass: String,
        /// What went wrong.
        source: RewriteError,
    },
    /// An unknown pass name.
    UnknownPass(String),
    /// A dump file could not be written.
    Dump(String),
}

impl fmt::Display for PassError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PassError::Verify { pass, message } => {
                write!(f, "the graph after pass `{pass}` is invalid: {message}")
            }
            PassError::Pass { pass, source } => write!(f, "pass `{pass}` failed: {source}"),
            PassError::UnknownPass(p) => write!(
                f,
                "unknown pass `{p}` (known passes: {})",
                PASS_NAMES.join(", ")
            ),
            PassError::Dump(m) => write!(f, "cannot write the dump: {m}"),
        }
    }
}

impl std::error::Error for PassError {}

/// Runs a pipeline of passes.
pub struct PassManager {
    passes: Vec<Box<dyn Pass>>,
    max_rounds: usize,
    verify: bool,
    dump_dir: Option<PathBuf>,
}

impl PassManager {
    /// A manager for `options` (the dump directory falls back to `ADJOINT_DUMP`).
    pub fn new(options: &PassOptions) -> Result<PassManager, PassError> {
        let passes = options
            .passes
            .iter()
            .map(|n| {
                pass_by_name(n, options.allow_inexact)
                    .ok_or_else(|| PassError::UnknownPass(n.clone()))
            })
            .collect::<Result<_, _>>()?;
        let dump_dir = options
            .dump_dir
            .clone()
            .or_else(|| std::env::var_os(DUMP_ENV).map(PathBuf::from));
        Ok(PassManager {
            passes,
            max_rounds: options.max_rounds.max(1),
            verify: options.verify,
            dump_dir,
        })
    }

    /// A manager running the given passes once per round.
    pub fn with_passes(passes: Vec<Box<dyn Pass>>, options: &PassOptions) -> PassManager {
        PassManager {
            passes,
            ..PassManager::new(&PassOptions {
                passes: Vec::new(),
                ..options.clone()
            })
            .expect("no pass names to resolve")
        }
    }

    /// Runs the pipeline on `graph` until no pass can change anything: rounds of the pass list,
    /// where a pass is skipped when nothing changed the graph since its own last run (it would
    /// find nothing new), until a round runs no pass or `max_rounds` is reached.
    pub fn run(&self, graph: &Graph) -> Result<(Graph, PassReport), PassError> {
        let mut report = PassReport {
            nodes_before: graph.len(),
            ..PassReport::default()
        };
        let mut g = graph.clone();
        let mut dump_index = 0;
        if let Some(dir) = &self.dump_dir {
            self.dump(dir, &g, dump_index, "input", &mut report)?;
        }
        // `stale[i]`: the graph may have changed since pass `i` last ran.
        let mut stale = vec![true; self.passes.len()];
        for round in 1..=self.max_rounds {
            if !stale.contains(&true) {
                break;
            }
            for (i, pass) in self.passes.iter().enumerate() {
                if !stale[i] {
                    continue;
                }
                stale[i] = false;
                let start = Instant::now();
                let before = g.len();
                let r = pass.run(&g).map_err(|source| PassError::Pass {
                    pass: pass.name().to_string(),
                    source,
                })?;
                let time = start.elapsed();
                if self.verify {
                    r.graph.verify().map_err(|e| PassError::Verify {
                        pass: pass.name().to_string(),
                        message: e.to_string(),
                    })?;
                }
                if r.changes > 0 {
                    stale.iter_mut().for_each(|s| *s = true);
                }
                report.stats.push(PassStat {
                    pass: pass.name(),
                    round,
                    nodes_before: before,
                    nodes_after: r.graph.len(),
                    changes: r.changes,
                    hits: r.hits,
                    time,
                });
                g = r.graph;
                if let Some(dir) = &self.dump_dir {
                    dump_index += 1;
                    self.dump(dir, &g, dump_index, pass.name(), &mut report)?;
                }
            }
        }
        report.nodes_after = g.len();
        Ok((g, report))
    }

    fn dump(
        &self,
        dir: &Path,
        g: &Graph,
        index: usize,
        pass: &str,
        report: &mut PassReport,
    ) -> Result<(), PassError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| PassError::Dump(format!("{}: {e}", dir.display())))?;
        let stem = format!("{}.{index:03}.{pass}", sanitize(g.name()));
        for (ext, body) in [
            ("txt", adjoint_ir::text::print(g)),
            ("dot", adjoint_ir::dot::to_dot(g)),
        ] {
            let path = dir.join(format!("{stem}.{ext}"));
            std::fs::write(&path, body)
                .map_err(|e| PassError::Dump(format!("{}: {e}", path.display())))?;
            report.dumped.push(path);
        }
        Ok(())
    }
}

fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "graph".into()
    } else {
        s
    }
}

impl fmt::Display for PassReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<5} {:<10} {:>7} {:>7} {:>7} {:>10}",
            "round", "pass", "before", "after", "changes", "time"
        )?;
        for s in &self.stats {
            writeln!(
                f,
                "{:<5} {:<10} {:>7} {:>7} {:>7} {:>10.3?}",
                s.round, s.pass, s.nodes_before, s.nodes_after, s.changes, s.time
            )?;
            for (rule, n) in &s.hits {
                writeln!(f, "      {rule:<24} {n:>5}")?;
            }
        }
        write!(f, "nodes: {} -> {}", self.nodes_before, self.nodes_after)
    }
}
