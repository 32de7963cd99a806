//! The one-call planner: rematerialization, fusion and memory planning of a (usually already
//! optimized) graph, and a readable report of every decision.

use crate::budget::{plan_within_budget, BudgetReport};
use crate::fusion::{fuse, unshare_free_nodes};
use crate::listing::{node_line, value_ref};
use crate::memory::plan_memory;
use crate::recompute::recompute_cheap_outputs;
use crate::remat::{rematerialize_with, RematPolicy, RematReport};
use crate::schedule::{MemoryPlan, Placement, Schedule};
use adjoint_ir::Graph;
use std::fmt;

/// How to plan a graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanOptions {
    /// Fuse (default) or give every node its own kernel ([`Schedule::unfused`]).
    pub fuse: bool,
    /// Keep every forward value the backward reads instead of recomputing some (default false).
    pub keep_all: bool,
    /// The output that ends the forward part (default `loss`); without it there is no
    /// rematerialization.
    pub loss_output: String,
    /// The most bytes the arena may have: the planner then keeps or recomputes forward values
    /// so that the planned arena fits, adding as few FLOPs as it can ([`crate::budget`]).
    /// Whether it succeeded is in [`Plan::budget`]. `None` (default): no limit.
    pub memory_budget: Option<usize>,
}

impl Default for PlanOptions {
    fn default() -> PlanOptions {
        PlanOptions {
            fuse: true,
            keep_all: false,
            loss_output: "loss".into(),
            memory_budget: None,
        }
    }
}

/// A planned step: the graph the schedule refers to, the schedule, the memory plan and the
/// rematerialization decisions.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The graph as planned: the input graph with recomputations made explicit and, when
    /// fusing, constants and movement ops copied per user. Node ids of the schedule and memory
    /// plan refer to this graph.
    pub graph: Graph,
    /// The kernels in execution order.
    pub schedule: Schedule,
    /// Where every kernel output lives.
    pub memory: MemoryPlan,
    /// What was kept for the backward and what is recomputed (node ids of the input graph).
    pub remat: RematReport,
    /// Nodes of the input graph.
    pub nodes_before: usize,
    /// What the memory-budget search did, when [`PlanOptions::memory_budget`] was set.
    pub budget: Option<BudgetReport>,
}

/// Plans `graph`: rematerialization (unless `keep_all`; under `memory_budget`, the search of
/// [`crate::budget`]), then fusion (unless `!fuse`), then the memory plan.
///
/// ```
/// use adjoint_ir::{Builder, DType};
/// use adjoint_opt::{check_memory_plan, plan, GroupKind, PlanOptions};
///
/// let b = Builder::new("dense");
/// let x = b.input("x", DType::F32, [8, 4]);
/// let w = b.parameter("w", DType::F32, [4, 16]);
/// let bias = b.parameter("b", DType::F32, [16]);
/// b.output("h", (x.matmul(w) + bias).relu());
/// let p = plan(&b.finish(), &PlanOptions::default());
/// // matmul + bias + ReLU is one kernel writing one 8x16 f32 buffer.
/// assert_eq!(p.schedule.groups.len(), 1);
/// assert_eq!(p.schedule.groups[0].kind, GroupKind::MatMul);
/// assert_eq!(p.memory.arena_bytes, 8 * 16 * 4);
/// check_memory_plan(&p.graph, &p.schedule, &p.memory).unwrap();
/// ```
pub fn plan(graph: &Graph, options: &PlanOptions) -> Plan {
    if let Some(budget) = options.memory_budget {
        return plan_within_budget(graph, options, budget);
    }
    let policy = if options.keep_all {
        RematPolicy::KeepAll
    } else {
        RematPolicy::default()
    };
    plan_with_policy(graph, options, &policy)
}

/// Most rounds of [`recompute_cheap_outputs`] and fusion after the first fusion.
const RECOMPUTE_ROUNDS: usize = 3;

/// [`plan`] with an explicit rematerialization policy (`keep_all` and `memory_budget` are not
/// looked at).
pub fn plan_with_policy(graph: &Graph, options: &PlanOptions, policy: &RematPolicy) -> Plan {
    let (g, remat) = rematerialize_with(graph, &options.loss_output, policy);
    let (g, schedule) = if options.fuse {
        let mut g = unshare_free_nodes(&g);
        let mut s = fuse(&g);
        // Cheap values stored only for other kernels are computed again there instead; the
        // new grouping can expose more (a value whose readers changed).
        for _ in 0..RECOMPUTE_ROUNDS {
            let Some(again) = recompute_cheap_outputs(&g, &s) else {
                break;
            };
            g = unshare_free_nodes(&again);
            s = fuse(&g);
        }
        (g, s)
    } else {
        let s = Schedule::unfused(&g);
        (g, s)
    };
    let memory = plan_memory(&g, &schedule);
    Plan {
        graph: g,
        schedule,
        memory,
        remat,
        nodes_before: graph.len(),
        budget: None,
    }
}

impl Plan {
    /// The planned graph in DOT, each fusion group drawn as a cluster.
    pub fn to_dot(&self) -> String {
        let clusters: Vec<(String, Vec<adjoint_ir::NodeId>)> = self
            .schedule
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| (format!("group {i} ({:?})", g.kind), g.nodes.clone()))
            .collect();
        adjoint_ir::dot::to_dot_with_clusters(&self.graph, &clusters)
    }

    /// The kernels with their nodes, one block per group.
    pub fn groups_report(&self) -> String {
        let g = &self.graph;
        let mut s = String::new();
        for (i, grp) in self.schedule.groups.iter().enumerate() {
            let ins: Vec<String> = grp.inputs.iter().map(|&n| value_ref(g, n)).collect();
            let outs: Vec<String> = grp.outputs.iter().map(|&n| value_ref(g, n)).collect();
            s += &format!(
                "group {i} {:?}: {} node(s), reads [{}], writes [{}]\n",
                grp.kind,
                grp.nodes.len(),
                ins.join(", "),
                outs.join(", ")
            );
            for &n in &grp.nodes {
                s += &format!("    {}\n", node_line(g, n));
            }
        }
        s
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.graph;
        writeln!(
            f,
            "plan of `{}`: {} nodes in, {} nodes planned, {} kernels",
            g.name(),
            self.nodes_before,
            g.len(),
            self.schedule.groups.len()
        )?;
        writeln!(f, "\n== fusion groups ==")?;
        f.write_str(&self.groups_report())?;
        writeln!(f, "\n== rematerialization ==")?;
        match &self.remat.loss {
            None => writeln!(f, "no loss output: nothing to rematerialize")?,
            Some(loss) => {
                writeln!(
                    f,
                    "forward ends at `{loss}`; bytes kept for backward: {} (keep-all: {}); \
                     FLOPs recomputed: {}; values are those of the graph before planning",
                    self.remat.bytes_kept,
                    self.remat.bytes_kept_without_remat,
                    self.remat.recompute_flops
                )?;
                writeln!(
                    f,
                    "  {:<10} {:<8} {:>10} {:>12}  label",
                    "decision", "value", "bytes", "FLOPs"
                )?;
                for s in &self.remat.saved {
                    writeln!(
                        f,
                        "  {:<10} %{:<7} {:>10} {:>12}  {}",
                        if s.kept { "keep" } else { "recompute" },
                        s.node.index(),
                        s.bytes,
                        s.flops,
                        s.label.as_deref().unwrap_or("-")
                    )?;
                }
                let saved: std::collections::BTreeSet<_> =
                    self.remat.saved.iter().map(|s| s.node).collect();
                let also: Vec<String> = self
                    .remat
                    .recomputed
                    .iter()
                    .filter(|n| !saved.contains(n))
                    .map(|n| format!("%{}", n.index()))
                    .collect();
                if !also.is_empty() {
                    writeln!(f, "  also recomputed on the way: {}", also.join(" "))?;
                }
            }
        }
        if let Some(b) = &self.budget {
            writeln!(f, "\n== memory budget ==")?;
            writeln!(f, "{b}")?;
        }
        writeln!(f, "\n== memory plan ==")?;
        writeln!(
            f,
            "arena {} bytes, live-set lower bound {} bytes",
            self.memory.arena_bytes, self.memory.lower_bound
        )?;
        writeln!(
            f,
            "{:>6} {:>10} {:>10} {:>7} {:>7}  placement",
            "value", "bytes", "offset", "first", "last"
        )?;
        for b in &self.memory.buffers {
            let last = if b.last_group == usize::MAX {
                "end".to_string()
            } else {
                b.last_group.to_string()
            };
            let (offset, place) = match b.placement {
                Placement::Arena { offset } => (offset.to_string(), "arena".to_string()),
                Placement::Parameter { param } => (
                    "-".into(),
                    format!("in place into {}", g.leaf_name(param).unwrap_or("?")),
                ),
            };
            writeln!(
                f,
                "{:>6} {:>10} {:>10} {:>7} {:>7}  {place}",
                value_ref(g, b.value),
                b.bytes,
                offset,
                b.first_group,
                last
            )?;
        }
        Ok(())
    }
}
