//! The one-call planner: rematerialization, fusion and memory planning of a (usually already
//! optimized) graph, and a readable report of every decision.

use crate::fusion::{fuse, unshare_free_nodes};
use crate::listing::{node_line, value_ref};
use crate::memory::plan_memory;
use crate::remat::{rematerialize, RematReport};
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
}

impl Default for PlanOptions {
    fn default() -> PlanOptions {
        PlanOptions {
            fuse: true,
            keep_all: false,
            loss_output: "loss".into(),
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
}

/// Plans `graph`: rematerialization (unless `keep_all`), then fusion (unless `!fuse`), then
/// the memory plan.
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
    let (g, remat) = rematerialize(graph, &options.loss_output, options.keep_all);
    let (g, schedule) = if options.fuse {
        let g = unshare_free_nodes(&g);
        let s = fuse(&g);
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
                     values are those of the graph before planning",
                    self.remat.bytes_kept, self.remat.bytes_kept_without_remat
                )?;
                for &(n, b) in &self.remat.kept {
                    writeln!(f, "  keep       %{:<6} {b:>10} bytes", n.index())?;
                }
                for &n in &self.remat.recomputed {
                    writeln!(f, "  recompute  %{}", n.index())?;
                }
            }
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
