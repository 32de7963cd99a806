//! Rematerialization: for every forward value the backward pass reads, keep it or recompute it
//! from values that are kept anyway, minimizing the bytes held from forward to backward.
//!
//! # Forward and backward
//!
//! In a training-step graph with a scalar loss output, the **forward** nodes are the loss and
//! its ancestors; every other node (gradients, optimizer updates) is **backward**. A forward
//! value that a backward node reads must be held from the forward to the backward part of the
//! step, or recomputed there.
//!
//! # The cut
//!
//! As in PyTorch's AOTAutograd partitioner, this is a minimum cut. Every forward node `v`
//! becomes an edge `v_in → v_out` whose capacity is what keeping `v` costs: its bytes; zero for
//! inputs, parameters and graph outputs (held anyway); unbounded for constants, iota and
//! movement ops (index maps, never worth a buffer: keep their operand instead). Data edges
//! `u_out → v_in` and edges from the source to inputs and parameters are unbounded, and every
//! forward value with a backward reader has an unbounded edge to the sink. Nodes that must not
//! be recomputed — matmuls, reductions, gathers and scatter-adds, whose recomputation costs a
//! pass over their operands — get an unbounded edge from the source, so the cut keeps them when
//! the backward needs them. A minimum cut then keeps the cheapest set of values from which
//! everything else the backward reads can be recomputed by elementwise and movement ops, which
//! the fusion planner folds into the backward kernels that consume them. Among cuts of equal
//! bytes the cut prefers keeping an elementwise value over a matmul or reduction output, so
//! that the elementwise epilogue stays fused into the anchor's kernel.
//!
//! # Cost
//!
//! Recomputing is not free either: [`RematPolicy::MinCut`] also gives every recomputable node
//! an edge from the source whose capacity is its FLOPs ([`crate::cost`]) times a price in bytes
//! per FLOP, so the cut minimizes kept bytes plus priced recomputation. At the default price
//! ([`DEFAULT_FLOP_PRICE`]) a chain of cheap arithmetic is recomputed rather than kept, while a
//! transcendental (`tanh`, `exp`: [`crate::cost::TRANSCENDENTAL_FLOPS`] each) is kept. A
//! value that a matmul reads in the forward and another in the backward (a hidden layer's
//! activation, read again by its weight gradient) is kept like an anchor: the forward writes it
//! to memory for its matmul anyway, and a copy recomputed for the backward's matmul would be a
//! pass of its own that writes it again, not arithmetic fused into a reader (W4's GELU outputs:
//! two such passes of 160 µs each, against about 190 µs more in the kernels that then read the
//! kept values and the operands of the GELU gradient from memory; W1's step 8% faster, W3's
//! 3%). Under a memory budget ([`crate::budget`]) the price is lowered and anchors become
//! recomputable too; [`RematPolicy::Segments`] keeps an explicit set of checkpoints and
//! recomputes everything else from them, segment by segment.
//!
//! The recomputation is made explicit in the graph: backward readers of a recomputed value get
//! a fresh copy of the forward nodes between the kept values and it (copies are not merged with
//! the originals: do not run CSE after this pass). Each forward node is copied at most once,
//! where its first backward reader is emitted, so a recomputed segment is computed once, late,
//! next to the backward that reads it.

use crate::cost::recompute_flops;
use crate::fusion::is_free;
use adjoint_ir::{Graph, NodeId, Op};
use std::collections::{BTreeSet, HashMap, VecDeque};

/// One forward value the backward depends on, and what rematerialization did with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedValue {
    /// The node (of the input graph).
    pub node: NodeId,
    /// Its bytes.
    pub bytes: usize,
    /// Kept from the forward to the backward (`false`: recomputed in the backward).
    pub kept: bool,
    /// FLOPs of computing it once ([`crate::cost::recompute_flops`]).
    pub flops: u64,
    /// Its label in the input graph, if any.
    pub label: Option<String>,
}

/// What rematerialization decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RematReport {
    /// The loss output the forward part ends at (`None`: no such output, nothing to do).
    pub loss: Option<String>,
    /// Forward nodes (of the input graph) kept for the backward, with their bytes.
    pub kept: Vec<(NodeId, usize)>,
    /// Forward nodes (of the input graph) recomputed in the backward.
    pub recomputed: Vec<NodeId>,
    /// Bytes held from forward to backward with these decisions.
    pub bytes_kept: usize,
    /// Bytes held when every forward value the backward reads is kept.
    pub bytes_kept_without_remat: usize,
    /// FLOPs added by recomputation: the sum of [`crate::cost::recompute_flops`] over
    /// `recomputed`.
    pub recompute_flops: u64,
    /// Every computed forward value the backward reads (directly or through movement ops) or
    /// that is kept to recompute them from, in node order, with the decision.
    pub saved: Vec<SavedValue>,
}

/// The default price of one recomputed FLOP, in bytes kept (see [`RematPolicy::MinCut`]): at
/// 0.3 a `tanh` (16 FLOPs, 4.8 bytes) costs more to recompute than an f32 costs to keep, as it
/// does in time (a few nanoseconds against a write and a read), while a few cheap operations
/// are still recomputed inside the kernels that read them.
pub const DEFAULT_FLOP_PRICE: f64 = 0.3;

/// How [`rematerialize_with`] decides what to keep.
#[derive(Clone, Debug, PartialEq)]
pub enum RematPolicy {
    /// Keep every forward value the backward reads.
    KeepAll,
    /// A minimum cut of kept bytes plus `flop_price` × recomputed FLOPs. With
    /// `recompute_anchors` false, matmul, reduction, gather and scatter-add outputs are never
    /// recomputed (the default planner: recomputing an anchor does not fuse into its reader),
    /// nor are values that a matmul reads both in the forward and in the backward.
    MinCut {
        /// Bytes one recomputed FLOP is worth (0: recomputation is free).
        flop_price: f64,
        /// Whether anchors may be recomputed.
        recompute_anchors: bool,
    },
    /// Gradient checkpointing in segments: keep exactly the `checkpoints` (computed forward
    /// values, node ids of the input graph; movement ops and nodes outside the forward part
    /// are ignored) and recompute every other forward value the backward reads from them, the
    /// inputs and the parameters. A `boundaries` value (typically a block output between two
    /// checkpoints) is recomputed once, when the backward first needs it, and held until its
    /// last backward reader; the values computed on the way to it are not held for other
    /// readers, which recompute them from the boundary when their turn comes. So only the
    /// boundaries of one segment are live at a time, not everything in it.
    Segments {
        /// Values kept from the forward.
        checkpoints: BTreeSet<NodeId>,
        /// Values recomputed once per backward and held.
        boundaries: BTreeSet<NodeId>,
    },
}

impl Default for RematPolicy {
    /// The default planner's cut: [`DEFAULT_FLOP_PRICE`], anchors kept.
    fn default() -> RematPolicy {
        RematPolicy::MinCut {
            flop_price: DEFAULT_FLOP_PRICE,
            recompute_anchors: false,
        }
    }
}

/// Fixed-point scale of the cut's capacities: a byte kept costs `2 * CAP_SCALE` (the
/// remaining unit breaks ties toward keeping elementwise values over anchor outputs).
const CAP_SCALE: u64 = 64;

const INF: u64 = 1 << 60;

/// The nodes of the forward part: `loss` and its ancestors.
pub fn forward_nodes(graph: &Graph, loss: NodeId) -> BTreeSet<NodeId> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![loss];
    while let Some(v) = stack.pop() {
        if seen.insert(v) {
            stack.extend(graph.operands(v));
        }
    }
    seen
}

fn is_leaf_value(op: &Op) -> bool {
    matches!(op, Op::Input { .. } | Op::Parameter { .. })
}

/// True for the ops the default rematerialization never recomputes.
pub fn never_recomputed(op: &Op) -> bool {
    op.is_anchor()
}

/// Decides keep or recompute for every forward value the backward reads and returns the graph
/// with recomputations made explicit. With `keep_all`, or without an output called `loss`, the
/// graph is returned unchanged and the report gives the keep-everything numbers. Otherwise the
/// decision is the default policy ([`RematPolicy::default`]).
pub fn rematerialize(graph: &Graph, loss: &str, keep_all: bool) -> (Graph, RematReport) {
    let policy = if keep_all {
        RematPolicy::KeepAll
    } else {
        RematPolicy::default()
    };
    rematerialize_with(graph, loss, &policy)
}

/// [`rematerialize`] with an explicit policy.
pub fn rematerialize_with(graph: &Graph, loss: &str, policy: &RematPolicy) -> (Graph, RematReport) {
    let Some(loss_id) = graph.output(loss) else {
        return (graph.clone(), RematReport::default());
    };
    let fwd = forward_nodes(graph, loss_id);
    let outputs: BTreeSet<NodeId> = graph.outputs().iter().map(|&(_, v)| v).collect();
    let needed: BTreeSet<NodeId> = fwd
        .iter()
        .copied()
        .filter(|&v| graph.users(v).iter().any(|u| !fwd.contains(u)))
        .collect();
    let held_anyway = |v: NodeId| is_leaf_value(graph.op(v)) || outputs.contains(&v);
    // Without remat: every computed forward value the backward reads, directly or through
    // movement ops.
    let mut held: BTreeSet<NodeId> = BTreeSet::new();
    let mut stack: Vec<NodeId> = needed.iter().copied().collect();
    let mut seen = BTreeSet::new();
    while let Some(v) = stack.pop() {
        if !seen.insert(v) || held_anyway(v) {
            continue;
        }
        if is_free(graph.op(v)) {
            stack.extend(graph.operands(v));
        } else {
            held.insert(v);
        }
    }
    let bytes_without = held.iter().fold(0usize, |acc, &v| {
        acc.saturating_add(graph.ty(v).size_bytes())
    });
    let mut report = RematReport {
        loss: Some(loss.to_string()),
        bytes_kept_without_remat: bytes_without,
        ..RematReport::default()
    };
    let saved_value = |v: NodeId, kept: bool| SavedValue {
        node: v,
        bytes: graph.ty(v).size_bytes(),
        kept,
        flops: recompute_flops(graph, v),
        label: graph.node(v).label.clone(),
    };
    if matches!(policy, RematPolicy::KeepAll) || needed.is_empty() {
        report.kept = held
            .iter()
            .map(|&v| (v, graph.ty(v).size_bytes()))
            .collect();
        report.bytes_kept = bytes_without;
        report.saved = held.iter().map(|&v| saved_value(v, true)).collect();
        return (graph.clone(), report);
    }
    // `kept`: values held from forward to backward; `recompute`: forward values the backward
    // may read only through a copy.
    let no_boundaries = BTreeSet::new();
    let boundaries = match policy {
        RematPolicy::Segments { boundaries, .. } => boundaries,
        _ => &no_boundaries,
    };
    let (kept_set, recompute_set): (BTreeSet<NodeId>, BTreeSet<NodeId>) = match policy {
        RematPolicy::KeepAll => unreachable!("handled above"),
        RematPolicy::MinCut {
            flop_price,
            recompute_anchors,
        } => min_cut(
            graph,
            &fwd,
            &needed,
            &held_anyway,
            *flop_price,
            *recompute_anchors,
        ),
        RematPolicy::Segments { checkpoints, .. } => {
            let kept: BTreeSet<NodeId> = checkpoints
                .iter()
                .copied()
                .filter(|v| fwd.contains(v) && !is_free(graph.op(*v)) && !held_anyway(*v))
                .collect();
            let recompute = fwd
                .iter()
                .copied()
                .filter(|&v| !kept.contains(&v) && !held_anyway(v))
                .collect();
            (kept, recompute)
        }
    };
    let kept = |v: NodeId| kept_set.contains(&v);
    let recompute = |v: NodeId| recompute_set.contains(&v);
    for &v in &fwd {
        if kept(v) && !held_anyway(v) && !is_free(graph.op(v)) {
            let b = graph.ty(v).size_bytes();
            report.kept.push((v, b));
            report.bytes_kept = report.bytes_kept.saturating_add(b);
        }
    }
    // Re-emit, giving backward readers copies of recomputed forward values.
    let bound = graph.node_ids().map(|n| n.index() + 1).max().unwrap_or(0);
    let mut map: Vec<Option<NodeId>> = vec![None; bound];
    let mut out = Graph::new(graph.name());
    let emit = |out: &mut Graph, v: NodeId, operands: &[NodeId], suffix: &str| {
        let n = graph.node(v);
        let id = out.add_unchecked(n.op.clone(), operands, n.ty.clone());
        if let Some(l) = &n.label {
            out.set_label(id, &format!("{l}{suffix}"));
        }
        id
    };
    for &v in graph.inputs().iter().chain(graph.parameters()) {
        map[v.index()] = Some(emit(&mut out, v, &[], ""));
    }
    let available = |x: NodeId| kept(x) || held_anyway(x) || !recompute(x);
    let boundary = |x: NodeId| boundaries.contains(&x);
    let mut copier = Copier {
        graph,
        available: &available,
        boundary: &boundary,
        emit: &emit,
        memos: vec![HashMap::new()],
        recomputed: BTreeSet::new(),
        flops: 0,
    };
    for v in graph.topo_order() {
        if map[v.index()].is_some() {
            continue;
        }
        let backward = !fwd.contains(&v);
        let mut ops = Vec::new();
        for o in graph.operands(v) {
            let id = if backward && fwd.contains(&o) && recompute(o) && !held_anyway(o) {
                copier.copy(&mut out, &map, o)
            } else {
                map[o.index()].expect("operands first")
            };
            ops.push(id);
        }
        map[v.index()] = Some(emit(&mut out, v, &ops, ""));
    }
    let recomputed = std::mem::take(&mut copier.recomputed);
    report.recompute_flops = copier.flops;
    for (name, v) in graph.outputs() {
        out.set_output(name, map[v.index()].expect("emitted"));
    }
    for &(p, v) in graph.updates() {
        let (p, v) = (
            map[p.index()].expect("emitted"),
            map[v.index()].expect("emitted"),
        );
        out.set_update(p, v).expect("types unchanged");
    }
    report.recompute_flops = recomputed.iter().fold(0u64, |acc, &v| {
        acc.saturating_add(recompute_flops(graph, v))
    });
    let saved: BTreeSet<NodeId> = held
        .iter()
        .copied()
        .chain(report.kept.iter().map(|&(v, _)| v))
        .collect();
    report.saved = saved.iter().map(|&v| saved_value(v, kept(v))).collect();
    report.recomputed = recomputed.into_iter().collect();
    (out, report)
}

/// The minimum cut of [`RematPolicy::MinCut`]: (kept values, recomputable values).
fn min_cut(
    graph: &Graph,
    fwd: &BTreeSet<NodeId>,
    needed: &BTreeSet<NodeId>,
    held_anyway: &dyn Fn(NodeId) -> bool,
    flop_price: f64,
    recompute_anchors: bool,
) -> (BTreeSet<NodeId>, BTreeSet<NodeId>) {
    // Flow network: node 0 source, 1 sink, forward node i → 2 + 2i (in), 3 + 2i (out).
    let idx: HashMap<NodeId, usize> = fwd.iter().enumerate().map(|(i, &v)| (v, i)).collect();
    let mut net = FlowNet::new(2 + 2 * fwd.len());
    let (vin, vout) = (|i: usize| 2 + 2 * i, |i: usize| 3 + 2 * i);
    let price = if flop_price.is_finite() {
        flop_price.max(0.0)
    } else {
        f64::MAX
    };
    for (&v, &i) in &idx {
        let op = graph.op(v);
        // Twice the bytes, plus one for anchors: among cuts of equal cost, keep the value
        // after an anchor's epilogue rather than the anchor's output, so the epilogue still
        // fuses into the anchor's kernel.
        let keep_cap = if held_anyway(v) {
            0
        } else if is_free(op) {
            INF
        } else {
            (graph.ty(v).size_bytes() as u64)
                .saturating_mul(2 * CAP_SCALE)
                .saturating_add(u64::from(never_recomputed(op)))
                .min(INF)
        };
        net.add_edge(vin(i), vout(i), keep_cap);
        // The edge from the source is cut when `v` is recomputed: its priced FLOPs.
        // A collective is communication: recomputing it would repeat it on every replica.
        let collective = op.class() == adjoint_ir::OpClass::Collective;
        // A matmul operand in both parts is written to memory by the forward anyway; a
        // recomputation would be a second pass that writes it again for the backward's matmul.
        let written_twice = !recompute_anchors
            && feeds_matmul(graph, v, &|u| fwd.contains(&u))
            && feeds_matmul(graph, v, &|u| !fwd.contains(&u));
        let recompute_cap = if is_leaf_value(op)
            || collective
            || written_twice
            || (never_recomputed(op) && !recompute_anchors)
        {
            INF
        } else {
            let c = recompute_flops(graph, v) as f64 * price * (2 * CAP_SCALE) as f64;
            if c >= INF as f64 {
                INF
            } else {
                c.round() as u64
            }
        };
        if recompute_cap > 0 {
            net.add_edge(0, vin(i), recompute_cap);
        }
        for o in graph.operands(v) {
            net.add_edge(vout(idx[&o]), vin(i), INF);
        }
        if needed.contains(&v) {
            net.add_edge(vout(i), 1, INF);
        }
    }
    net.max_flow(0, 1);
    let source_side = net.source_side(0);
    let kept = fwd
        .iter()
        .copied()
        .filter(|v| {
            let i = idx[v];
            source_side[vin(i)] && !source_side[vout(i)]
        })
        .collect();
    let recompute = fwd
        .iter()
        .copied()
        .filter(|v| !source_side[vin(idx[v])])
        .collect();
    (kept, recompute)
}

/// True when a matmul that `users` accepts reads `v`, directly or through movement ops.
fn feeds_matmul(graph: &Graph, v: NodeId, users: &dyn Fn(NodeId) -> bool) -> bool {
    let mut stack = vec![v];
    while let Some(x) = stack.pop() {
        for u in graph.users(x) {
            match graph.op(u) {
                Op::MatMul if users(u) => return true,
                op if is_free(op) => stack.push(u),
                _ => {}
            }
        }
    }
    false
}

/// Emits a copy of a node of the input graph with new operands and a label suffix.
type EmitFn<'a> = dyn Fn(&mut Graph, NodeId, &[NodeId], &str) -> NodeId + 'a;

/// Makes the copies of forward values for backward readers.
struct Copier<'a> {
    graph: &'a Graph,
    /// Values the backward reads as they are: kept, held anyway, or never recomputed.
    available: &'a dyn Fn(NodeId) -> bool,
    /// Segment boundaries ([`RematPolicy::Segments`]): recomputed once, then held until their
    /// own backward; the values computed on the way to one are not shared further.
    boundary: &'a dyn Fn(NodeId) -> bool,
    emit: &'a EmitFn<'a>,
    /// `memos[0]`: copies shared by the whole backward (boundaries included); `memos[i > 0]`:
    /// copies made on the way to the boundary being recomputed at depth `i`.
    memos: Vec<HashMap<NodeId, NodeId>>,
    /// Recomputed computed (non-free) nodes of the input graph.
    recomputed: BTreeSet<NodeId>,
    /// FLOPs of every copy made.
    flops: u64,
}

impl Copier<'_> {
    /// `map`: input-graph node → its node in the output graph (forward values).
    fn resolved(&self, map: &[Option<NodeId>], v: NodeId) -> Option<NodeId> {
        if (self.available)(v) {
            return Some(
                map[v.index()].expect("forward values are emitted before backward readers"),
            );
        }
        self.memos.iter().rev().find_map(|m| m.get(&v).copied())
    }

    /// The copy of forward value `root` for backward readers: the kept (available) value
    /// itself, or a copy of the nodes between the available values and it. A node is copied
    /// once for the whole backward, except the nodes between a boundary and the values it is
    /// recomputed from, which are copied once per boundary. Iterative (an explicit stack,
    /// operands before users), so the depth of the forward chain does not reach the call
    /// stack.
    fn copy(&mut self, out: &mut Graph, map: &[Option<NodeId>], root: NodeId) -> NodeId {
        // (node, operands already pushed, memo level its operands are resolved at)
        let mut stack: Vec<(NodeId, bool, usize)> = vec![(root, false, 0)];
        while let Some((v, expanded, level)) = stack.pop() {
            if self.resolved(map, v).is_some() {
                continue;
            }
            let operands = self.graph.operands(v);
            if !expanded {
                let level = if (self.boundary)(v) {
                    self.memos.push(HashMap::new());
                    self.memos.len() - 1
                } else {
                    level
                };
                stack.push((v, true, level));
                // Reversed, so the first operand is copied first.
                for &o in operands.iter().rev() {
                    if self.resolved(map, o).is_none() {
                        stack.push((o, false, level));
                    }
                }
                continue;
            }
            let ops: Vec<NodeId> = operands
                .iter()
                .map(|&o| {
                    self.resolved(map, o)
                        .expect("operands are copied before their users")
                })
                .collect();
            let c = (self.emit)(out, v, &ops, ".remat");
            if (self.boundary)(v) {
                // Its own memo level is the top one: everything above it has finished.
                self.memos.truncate(level);
                self.memos[0].insert(v, c);
            } else {
                self.memos[level].insert(v, c);
            }
            if !is_free(self.graph.op(v)) {
                self.recomputed.insert(v);
                self.flops = self.flops.saturating_add(recompute_flops(self.graph, v));
            }
        }
        self.resolved(map, root).expect("the root was copied last")
    }
}

/// A flow network for Dinic's maximum-flow algorithm.
struct FlowNet {
    head: Vec<Vec<usize>>,
    to: Vec<usize>,
    cap: Vec<u64>,
}

impl FlowNet {
    fn new(n: usize) -> FlowNet {
        FlowNet {
            head: vec![Vec::new(); n],
            to: Vec::new(),
            cap: Vec::new(),
        }
    }

    fn add_edge(&mut self, a: usize, b: usize, c: u64) {
        self.head[a].push(self.to.len());
        self.to.push(b);
        self.cap.push(c);
        self.head[b].push(self.to.len());
        self.to.push(a);
        self.cap.push(0);
    }

    fn levels(&self, s: usize) -> Vec<usize> {
        let mut level = vec![usize::MAX; self.head.len()];
        level[s] = 0;
        let mut q = VecDeque::from([s]);
        while let Some(a) = q.pop_front() {
            for &e in &self.head[a] {
                let b = self.to[e];
                if self.cap[e] > 0 && level[b] == usize::MAX {
                    level[b] = level[a] + 1;
                    q.push_back(b);
                }
            }
        }
        level
    }

    fn max_flow(&mut self, s: usize, t: usize) -> u64 {
        let mut total = 0;
        loop {
            let level = self.levels(s);
            if level[t] == usize::MAX {
                return total;
            }
            let mut next = vec![0usize; self.head.len()];
            loop {
                let f = self.augment(s, t, INF * 4, &level, &mut next);
                if f == 0 {
                    break;
                }
                total = total.saturating_add(f);
            }
        }
    }

    /// One blocking-flow augmentation by iterative depth-first search.
    fn augment(
        &mut self,
        s: usize,
        t: usize,
        limit: u64,
        level: &[usize],
        next: &mut [usize],
    ) -> u64 {
        let mut path: Vec<usize> = Vec::new(); // edges
        let mut at = s;
        loop {
            if at == t {
                let f = path
                    .iter()
                    .map(|&e| self.cap[e])
                    .min()
                    .unwrap_or(limit)
                    .min(limit);
                for &e in &path {
                    self.cap[e] -= f;
                    self.cap[e ^ 1] += f;
                }
                return f;
            }
            let mut advanced = false;
            while next[at] < self.head[at].len() {
                let e = self.head[at][next[at]];
                let b = self.to[e];
                if self.cap[e] > 0 && level[b] == level[at] + 1 {
                    path.push(e);
                    at = b;
                    advanced = true;
                    break;
                }
                next[at] += 1;
            }
            if !advanced {
                match path.pop() {
                    Some(e) => {
                        at = self.to[e ^ 1];
                        next[at] += 1;
                    }
                    None => return 0,
                }
            }
        }
    }

    /// Nodes reachable from `s` in the residual network (the source side of a minimum cut).
    fn source_side(&self, s: usize) -> Vec<bool> {
        let level = self.levels(s);
        level.iter().map(|&l| l != usize::MAX).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dinic_finds_the_minimum_cut() {
        // s→a 3, s→b 2, a→b 1, a→t 2, b→t 3: max flow 5.
        let mut n = FlowNet::new(4);
        n.add_edge(0, 2, 3);
        n.add_edge(0, 3, 2);
        n.add_edge(2, 3, 1);
        n.add_edge(2, 1, 2);
        n.add_edge(3, 1, 3);
        assert_eq!(n.max_flow(0, 1), 5);
        let side = n.source_side(0);
        assert!(side[0] && !side[1]);
    }
}
