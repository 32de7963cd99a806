//! Planning under a memory budget: choose what to keep for the backward and what to recompute
//! so that the planned arena fits, adding as few FLOPs as the search can find.
//!
//! Every candidate is planned for real (rematerialization, fusion, memory plan) and judged by
//! its [`MemoryPlan::arena_bytes`](crate::MemoryPlan): liveness, not a sum of saved bytes,
//! decides whether a plan fits. The candidates, cheapest first:
//!
//! 1. **The default plan** ([`RematPolicy::default`]): no FLOPs beyond the default.
//! 2. **Priced cuts.** The minimum cut of kept bytes plus price × recomputed FLOPs, with
//!    matmuls and reductions now recomputable too, at prices falling by 4× per step from
//!    [`DEFAULT_FLOP_PRICE`]. The recomputed set only grows as the price falls (a parametric
//!    minimum cut), so the first price that fits recomputes the fewest FLOPs among them. The
//!    cut sees kept bytes, not when they are live; it ends (price 0) at keeping nothing and
//!    recomputing the whole forward once in the backward, whose recomputed values are all live
//!    together again.
//! 3. **Checkpoint segments** (Chen et al., "Training deep nets with sublinear memory cost",
//!    2016). The *stream* values — those every path from an input to the loss passes through
//!    ([`stream_values`]: the residual stream of a residual network) — are walked in forward
//!    order and cut into `s` segments of about equal bytes. Only the last value of each
//!    segment is kept ([`RematPolicy::Segments`]); the segment's other stream values are
//!    recomputed once, when the backward reaches the segment, and held until their block's
//!    backward; everything else is recomputed from the nearest stream value next to the
//!    backward that reads it. So `s` checkpoints plus one segment of stream values are live,
//!    `O(√depth)` for `s ≈ √depth`. Fewer segments recompute more (a value between two
//!    checkpoints is recomputed once for the segment and again next to its block's backward),
//!    so `s` is tried from one segment per stream value down (…, 8, 6, 4, 3, 2) and the first
//!    that fits is taken.
//!
//! If nothing fits, the result says so and names the smallest arena reached.

use crate::plan::{plan_with_policy, Plan, PlanOptions};
use crate::remat::{RematPolicy, DEFAULT_FLOP_PRICE};
use adjoint_ir::{Graph, NodeId};
use std::collections::{BTreeSet, HashMap};
use std::fmt;

/// What the budget search did ([`Plan::budget`]).
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetReport {
    /// The budget in bytes of arena.
    pub budget: usize,
    /// Whether the chosen plan's arena is within the budget. When `false` the plan is the one
    /// with the smallest arena found.
    pub fits: bool,
    /// The chosen plan's arena.
    pub arena_bytes: usize,
    /// The smallest arena of every plan tried.
    pub smallest_arena: usize,
    /// Arena of the default plan (no budget).
    pub default_arena: usize,
    /// Arena when every forward value the backward reads is kept.
    pub keep_all_arena: usize,
    /// Arena when nothing but inputs and parameters is kept (the forward recomputed once in
    /// the backward).
    pub recompute_all_arena: usize,
    /// FLOPs the chosen plan recomputes.
    pub recompute_flops: u64,
    /// FLOPs the default plan recomputes.
    pub default_recompute_flops: u64,
    /// How the chosen plan was found.
    pub strategy: String,
    /// Plans made during the search.
    pub plans_tried: usize,
}

impl BudgetReport {
    /// FLOPs recomputed beyond the default plan.
    pub fn added_flops(&self) -> u64 {
        self.recompute_flops
            .saturating_sub(self.default_recompute_flops)
    }
}

impl fmt::Display for BudgetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "budget {} bytes: {} ({}); arena {} bytes",
            self.budget,
            if self.fits { "fits" } else { "does not fit" },
            self.strategy,
            self.arena_bytes
        )?;
        writeln!(
            f,
            "arena: keep-all {} bytes, default {} bytes, recompute-all {} bytes, smallest reached \
             {} bytes ({} plans tried)",
            self.keep_all_arena,
            self.default_arena,
            self.recompute_all_arena,
            self.smallest_arena,
            self.plans_tried
        )?;
        write!(
            f,
            "recomputed FLOPs: {} ({} more than the default plan)",
            self.recompute_flops,
            self.added_flops()
        )
    }
}

/// Prices of the priced cuts: [`DEFAULT_FLOP_PRICE`] / 4^k, then 0.
fn prices() -> impl Iterator<Item = f64> {
    (0..12)
        .map(|k| DEFAULT_FLOP_PRICE / 4f64.powi(k))
        .chain(std::iter::once(0.0))
}

/// Segment counts tried for checkpointing: 2, 3, 4, 6, 8, 12, 16, 24, … (about √2 apart),
/// then one segment per value (every value a checkpoint).
fn segment_counts(values: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut s = 2usize;
    while s < values {
        out.push(s);
        s = if s.is_power_of_two() {
            s + s / 2
        } else {
            s / 3 * 4
        };
    }
    if values > 0 {
        out.push(values);
    }
    out
}

/// `kept` (forward order) cut into about `segments` runs of equal bytes; the last value of
/// each run.
fn checkpoints(kept: &[(NodeId, usize)], segments: usize) -> BTreeSet<NodeId> {
    let total: usize = kept.iter().fold(0, |a, &(_, b)| a.saturating_add(b));
    let target = (total / segments.max(1)).max(1);
    let mut acc = 0usize;
    let mut out = BTreeSet::new();
    for &(v, b) in kept {
        acc = acc.saturating_add(b);
        if acc >= target {
            out.insert(v);
            acc = 0;
        }
    }
    out
}

/// The computed forward values that every path from some input to `loss` passes through (the
/// residual stream of a residual network, every layer output of a plain one), in forward
/// order, with their bytes: the candidate checkpoints and segment boundaries.
///
/// They are the post-dominators of the inputs in the forward graph: the immediate
/// post-dominator of a node is the nearest common post-dominator of its forward users
/// (computed users last, by walking up the tree built so far).
pub fn stream_values(graph: &Graph, loss: &str) -> Vec<(NodeId, usize)> {
    let Some(loss_id) = graph.output(loss) else {
        return Vec::new();
    };
    let fwd = crate::remat::forward_nodes(graph, loss_id);
    let order: Vec<NodeId> = graph
        .topo_order()
        .into_iter()
        .filter(|v| fwd.contains(v))
        .collect();
    let position: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &v)| (v, i)).collect();
    let mut ipdom: HashMap<NodeId, NodeId> = HashMap::new();
    let mut depth: HashMap<NodeId, usize> = HashMap::from([(loss_id, 0)]);
    for &v in order.iter().rev() {
        if v == loss_id {
            continue;
        }
        let mut common: Option<NodeId> = None;
        for u in graph.users(v) {
            if !depth.contains_key(&u) {
                continue; // not forward, or not an ancestor of the loss
            }
            common = Some(match common {
                None => u,
                Some(c) => {
                    let (mut a, mut b) = (c, u);
                    while a != b {
                        let (da, db) = (depth[&a], depth[&b]);
                        if da >= db {
                            a = ipdom[&a];
                        }
                        if db >= da {
                            b = ipdom[&b];
                        }
                    }
                    a
                }
            });
        }
        if let Some(c) = common {
            ipdom.insert(v, c);
            depth.insert(v, depth[&c] + 1);
        }
    }
    let mut stream: BTreeSet<NodeId> = BTreeSet::new();
    for &i in graph.inputs() {
        let mut v = i;
        while let Some(&next) = ipdom.get(&v) {
            if next == loss_id {
                break;
            }
            let op = graph.op(next);
            if !crate::fusion::is_free(op) && !matches!(op, adjoint_ir::Op::Parameter { .. }) {
                stream.insert(next);
            }
            v = next;
        }
    }
    let mut out: Vec<(NodeId, usize)> = stream
        .into_iter()
        .map(|v| (v, graph.ty(v).size_bytes()))
        .collect();
    out.sort_by_key(|&(v, _)| position[&v]);
    out
}

/// The best plan tried so far, by the rules of [`plan_within_budget`].
struct Search {
    budget: usize,
    tried: usize,
    /// Fitting plan with the fewest recomputed FLOPs (then smallest arena).
    best_fit: Option<(Plan, String)>,
    /// Plan with the smallest arena.
    smallest: Option<(Plan, String)>,
}

impl Search {
    /// Records `p`; true if it fits.
    fn consider(&mut self, p: &Plan, strategy: String) -> bool {
        self.tried += 1;
        let arena = p.memory.arena_bytes;
        let fits = arena <= self.budget;
        if fits {
            let key = (p.remat.recompute_flops, arena);
            let better = self
                .best_fit
                .as_ref()
                .is_none_or(|(b, _)| key < (b.remat.recompute_flops, b.memory.arena_bytes));
            if better {
                self.best_fit = Some((p.clone(), strategy.clone()));
            }
        }
        if self
            .smallest
            .as_ref()
            .is_none_or(|(s, _)| arena < s.memory.arena_bytes)
        {
            self.smallest = Some((p.clone(), strategy));
        }
        fits
    }
}

/// Plans `graph` so that its arena fits in `budget` bytes if the search finds a way (see the
/// module documentation); `options.memory_budget` is ignored in favour of `budget`. The
/// result's [`Plan::budget`] says whether it fits and what the extremes are.
pub fn plan_within_budget(graph: &Graph, options: &PlanOptions, budget: usize) -> Plan {
    let loss = options.loss_output.as_str();
    let default_policy = if options.keep_all {
        RematPolicy::KeepAll
    } else {
        RematPolicy::default()
    };
    let default = plan_with_policy(graph, options, &default_policy);
    let keep_all = plan_with_policy(graph, options, &RematPolicy::KeepAll);
    let recompute_all = plan_with_policy(
        graph,
        options,
        &RematPolicy::MinCut {
            flop_price: 0.0,
            recompute_anchors: true,
        },
    );
    let mut search = Search {
        budget,
        tried: 0,
        best_fit: None,
        smallest: None,
    };
    let fits_by_default = search.consider(&default, "the default plan".into());
    let searching = !fits_by_default && !options.keep_all && graph.output(loss).is_some();
    search.consider(&keep_all, "keep everything".into());
    search.consider(&recompute_all, "recompute everything".into());
    if searching {
        // Priced cuts, cheapest first; the first that fits recomputes the fewest FLOPs.
        for price in prices() {
            let p = plan_with_policy(
                graph,
                options,
                &RematPolicy::MinCut {
                    flop_price: price,
                    recompute_anchors: true,
                },
            );
            let nothing_kept = p.remat.kept.is_empty();
            if search.consider(&p, format!("minimum cut at {price:.3e} bytes per FLOP")) {
                break;
            }
            if nothing_kept {
                // Lower prices cannot recompute more than everything.
                break;
            }
        }
        if search.best_fit.is_none() {
            // Checkpoint segments along the values every path from an input passes through.
            let stream = stream_values(graph, loss);
            // Most segments first: they recompute the fewest FLOPs, so the first that fits
            // is the one to take.
            for s in segment_counts(stream.len()).into_iter().rev() {
                let points = checkpoints(&stream, s);
                let n = points.len();
                let boundaries = stream
                    .iter()
                    .map(|&(v, _)| v)
                    .filter(|v| !points.contains(v))
                    .collect();
                let policy = RematPolicy::Segments {
                    checkpoints: points,
                    boundaries,
                };
                let p = plan_with_policy(graph, options, &policy);
                if search.consider(&p, format!("{n} checkpoints ({s} segments)")) {
                    break;
                }
            }
        }
    }
    let fits = search.best_fit.is_some();
    let smallest_arena = search
        .smallest
        .as_ref()
        .map_or(default.memory.arena_bytes, |(p, _)| p.memory.arena_bytes);
    let (mut chosen, strategy) = if fits_by_default {
        (default.clone(), "the default plan".to_string())
    } else {
        search
            .best_fit
            .take()
            .or(search.smallest.take())
            .unwrap_or_else(|| (default.clone(), "the default plan".to_string()))
    };
    chosen.budget = Some(BudgetReport {
        budget,
        fits,
        arena_bytes: chosen.memory.arena_bytes,
        smallest_arena,
        default_arena: default.memory.arena_bytes,
        keep_all_arena: keep_all.memory.arena_bytes,
        recompute_all_arena: recompute_all.memory.arena_bytes,
        recompute_flops: chosen.remat.recompute_flops,
        default_recompute_flops: default.remat.recompute_flops,
        strategy,
        plans_tried: search.tried,
    });
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_counts_grow_by_about_root_two() {
        assert_eq!(segment_counts(20), [2, 3, 4, 6, 8, 12, 16, 20]);
        assert_eq!(segment_counts(2), [2]);
        assert!(segment_counts(0).is_empty());
    }

    #[test]
    fn checkpoints_split_bytes_evenly() {
        let kept: Vec<(NodeId, usize)> = (0..8).map(|i| (NodeId::new(i), 10)).collect();
        let points = checkpoints(&kept, 4);
        let ids: Vec<usize> = points.iter().map(|n| n.index()).collect();
        assert_eq!(ids, [1, 3, 5, 7]);
    }
}
