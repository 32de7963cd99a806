//! Memory planning: liveness of every group output over the schedule, arena offsets by greedy
//! best fit, parameter updates in place, and a checker for any plan.
//!
//! A buffer is live from the group that writes it to the last group that reads it, both
//! included (a kernel's inputs and outputs are live together, so a group never writes over its
//! own inputs). Graph outputs, and update values that cannot be written in place, live until
//! the step returns. Buffers are placed largest first, each into the smallest gap between the
//! buffers already placed that are live at the same time (TensorFlow Lite's "greedy by size"
//! strategy), at offsets aligned to [`MemoryPlan::ALIGN`].
//!
//! An update `param ← value` is written in place ([`Placement::Parameter`]) when the group
//! writing `value` runs after every other group that reads `param`, reads `param` itself only
//! at the element it writes, in the loop that writes it, and `param` is not also a graph
//! output. "At the element it writes" is decided exactly on the group's structure: every member
//! reading `param` is elementwise, outside the anchor's prologue, and reaches the group's root
//! through elementwise members of the root's shape only — so the code generator evaluates it at
//! the root's index, in the root's loop, before the store. This is the one place the decision
//! is made; the code generator only checks it. Otherwise `value` goes to the arena and lives to
//! the end of the step: the runtime copies it into the parameter after the last kernel.

use crate::schedule::{BufferAssignment, FusionGroup, MemoryPlan, Placement, Schedule};
use adjoint_ir::{Graph, NodeId, Op};
use std::collections::HashMap;

fn align(x: usize) -> usize {
    x.div_ceil(MemoryPlan::ALIGN) * MemoryPlan::ALIGN
}

/// Whether `value` (written by group `writer`) can be written into `param`'s storage.
fn in_place_ok(graph: &Graph, schedule: &Schedule, param: NodeId, writer: usize) -> bool {
    if graph.outputs().iter().any(|&(_, o)| o == param) {
        return false;
    }
    if graph.updates().iter().filter(|&&(p, _)| p == param).count() != 1 {
        return false;
    }
    for (gi, g) in schedule.groups.iter().enumerate() {
        if !g.inputs.contains(&param) {
            continue;
        }
        if gi > writer {
            return false;
        }
        if gi == writer && !reads_only_at_store_index(graph, g, param) {
            return false;
        }
    }
    true
}

/// True when every member of `g` that reads `param` is evaluated at the index `g` stores its
/// root at, in the root's loop: an elementwise member outside the prologue whose every path to
/// the root runs through elementwise members of the root's shape.
fn reads_only_at_store_index(graph: &Graph, g: &FusionGroup, param: NodeId) -> bool {
    let Some(root) = g.root() else {
        return false;
    };
    let shape = &graph.ty(root).shape;
    let at_root_index = |n: NodeId| {
        graph.op(n).is_elementwise() && graph.ty(n).shape == *shape && !g.prologue.contains(&n)
    };
    let mut stack: Vec<NodeId> = g
        .nodes
        .iter()
        .copied()
        .filter(|&n| graph.operands(n).contains(&param))
        .collect();
    let mut seen = std::collections::HashSet::new();
    while let Some(n) = stack.pop() {
        if !seen.insert(n) {
            continue;
        }
        if !at_root_index(n) {
            return false;
        }
        if n != root {
            stack.extend(graph.users(n));
        }
    }
    true
}

/// The memory plan of `schedule` (a schedule of `graph`).
pub fn plan_memory(graph: &Graph, schedule: &Schedule) -> MemoryPlan {
    let n = schedule.groups.len();
    let outputs: Vec<NodeId> = graph.outputs().iter().map(|&(_, v)| v).collect();
    let mut last_read: HashMap<NodeId, usize> = HashMap::new();
    for (gi, g) in schedule.groups.iter().enumerate() {
        for &i in &g.inputs {
            last_read.insert(i, gi);
        }
    }
    let mut buffers = Vec::new();
    let mut claimed: Vec<NodeId> = Vec::new();
    for (gi, g) in schedule.groups.iter().enumerate() {
        for &v in &g.outputs {
            let bytes = graph.ty(v).size_bytes();
            let update_of: Vec<NodeId> = graph
                .updates()
                .iter()
                .filter(|&&(_, u)| u == v)
                .map(|&(p, _)| p)
                .collect();
            let in_place = update_of
                .first()
                .copied()
                .filter(|&p| !claimed.contains(&p) && in_place_ok(graph, schedule, p, gi));
            let lives_to_end =
                outputs.contains(&v) || (in_place.is_none() && !update_of.is_empty());
            let last = if lives_to_end {
                usize::MAX
            } else {
                last_read.get(&v).copied().unwrap_or(gi).max(gi)
            };
            let placement = match in_place {
                Some(param) => {
                    claimed.push(param);
                    Placement::Parameter { param }
                }
                None => Placement::Arena { offset: 0 },
            };
            buffers.push(BufferAssignment {
                value: v,
                placement,
                bytes,
                first_group: gi,
                last_group: last,
            });
        }
    }
    let end = |b: &BufferAssignment| b.last_group.min(n);
    // Lower bound: the most bytes of arena buffers live in any one group.
    let mut delta = vec![0isize; n + 2];
    for b in buffers.iter().filter(|b| is_arena(b)) {
        delta[b.first_group] += b.bytes as isize;
        delta[end(b) + 1] -= b.bytes as isize;
    }
    let mut live = 0isize;
    let mut lower_bound = 0usize;
    for d in &delta {
        live += d;
        lower_bound = lower_bound.max(live as usize);
    }
    // Greedy by size into the best-fitting gap.
    let mut order: Vec<usize> = (0..buffers.len())
        .filter(|&i| is_arena(&buffers[i]))
        .collect();
    order.sort_by_key(|&i| {
        (
            std::cmp::Reverse(buffers[i].bytes),
            buffers[i].first_group,
            i,
        )
    });
    let mut placed: Vec<usize> = Vec::new();
    let mut arena_bytes = 0;
    for i in order {
        let b = &buffers[i];
        let (f, l) = (b.first_group, end(b));
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .map(|&j| &buffers[j])
            .filter(|o| o.first_group <= l && f <= end(o))
            .map(|o| {
                let off = arena_offset(o);
                (off, off + o.bytes)
            })
            .collect();
        busy.sort_unstable();
        let mut best: Option<(usize, usize)> = None; // (gap size, offset)
        let mut cursor = 0;
        for &(start, stop) in &busy {
            if start >= cursor + b.bytes {
                let gap = start - cursor;
                if best.is_none_or(|(g, _)| gap < g) {
                    best = Some((gap, cursor));
                }
            }
            cursor = cursor.max(align(stop));
        }
        let offset = best.map_or(cursor, |(_, o)| o);
        arena_bytes = arena_bytes.max(offset + b.bytes);
        buffers[i].placement = Placement::Arena { offset };
        placed.push(i);
    }
    MemoryPlan {
        buffers,
        arena_bytes,
        lower_bound,
    }
}

fn is_arena(b: &BufferAssignment) -> bool {
    matches!(b.placement, Placement::Arena { .. })
}

fn arena_offset(b: &BufferAssignment) -> usize {
    match b.placement {
        Placement::Arena { offset } => offset,
        Placement::Parameter { .. } => usize::MAX,
    }
}

/// Checks that `schedule` is a valid schedule of `graph` (see [`Schedule::check`]) and that
/// `plan` is a sound memory plan for it: one buffer per group output with the right size and
/// lifetime; arena offsets aligned and inside the arena; no two buffers that are live at the
/// same time overlapping; in-place updates written only after every other reader of the
/// parameter has run, and read in the writing group only elementwise.
pub fn check_memory_plan(
    graph: &Graph,
    schedule: &Schedule,
    plan: &MemoryPlan,
) -> Result<(), String> {
    schedule.check(graph)?;
    let n = schedule.groups.len();
    let mut expected: Vec<(NodeId, usize)> = Vec::new();
    for (gi, g) in schedule.groups.iter().enumerate() {
        expected.extend(g.outputs.iter().map(|&o| (o, gi)));
    }
    if plan.buffers.len() != expected.len() {
        return Err(format!(
            "{} buffers for {} group outputs",
            plan.buffers.len(),
            expected.len()
        ));
    }
    for &(v, gi) in &expected {
        let b = plan
            .buffer(v)
            .ok_or_else(|| format!("group output {} has no buffer", graph.describe(v)))?;
        if b.first_group != gi {
            return Err(format!(
                "buffer of {} says group {} writes it, but group {gi} does",
                graph.describe(v),
                b.first_group
            ));
        }
        if b.bytes != graph.ty(v).size_bytes() {
            return Err(format!(
                "buffer of {} has {} bytes, its type {} needs {}",
                graph.describe(v),
                b.bytes,
                graph.ty(v),
                graph.ty(v).size_bytes()
            ));
        }
        let last_reader = schedule
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.inputs.contains(&v))
            .map(|(i, _)| i)
            .max();
        if let Some(r) = last_reader {
            if b.last_group < r {
                return Err(format!(
                    "buffer of {} is freed after group {} but group {r} reads it",
                    graph.describe(v),
                    b.last_group
                ));
            }
        }
        if graph.outputs().iter().any(|&(_, o)| o == v) && b.last_group != usize::MAX {
            return Err(format!(
                "graph output {} must live until the end",
                graph.describe(v)
            ));
        }
        match b.placement {
            Placement::Arena { offset } => {
                if offset % MemoryPlan::ALIGN != 0 {
                    return Err(format!(
                        "buffer of {} at offset {offset} is not aligned to {}",
                        graph.describe(v),
                        MemoryPlan::ALIGN
                    ));
                }
                if offset + b.bytes > plan.arena_bytes {
                    return Err(format!(
                        "buffer of {} ends at {} beyond the arena of {} bytes",
                        graph.describe(v),
                        offset + b.bytes,
                        plan.arena_bytes
                    ));
                }
                let is_update = graph.updates().iter().any(|&(_, u)| u == v);
                if is_update && b.last_group != usize::MAX {
                    return Err(format!(
                        "update value {} in the arena must live until the end",
                        graph.describe(v)
                    ));
                }
            }
            Placement::Parameter { param } => {
                check_in_place(graph, schedule, v, param, gi)?;
            }
        }
    }
    let mut params: Vec<NodeId> = plan
        .buffers
        .iter()
        .filter_map(|b| match b.placement {
            Placement::Parameter { param } => Some(param),
            Placement::Arena { .. } => None,
        })
        .collect();
    params.sort_unstable();
    if params.windows(2).any(|w| w[0] == w[1]) {
        return Err("two values are written into the same parameter".into());
    }
    let arena: Vec<&BufferAssignment> = plan.buffers.iter().filter(|b| is_arena(b)).collect();
    let end = |b: &BufferAssignment| b.last_group.min(n);
    for (i, a) in arena.iter().enumerate() {
        for b in &arena[i + 1..] {
            let live_together = a.first_group <= end(b) && b.first_group <= end(a);
            let (oa, ob) = (arena_offset(a), arena_offset(b));
            let overlap = oa < ob + b.bytes && ob < oa + a.bytes && a.bytes > 0 && b.bytes > 0;
            if live_together && overlap {
                return Err(format!(
                    "buffers of {} (groups {}..={}, bytes {}..{}) and {} (groups {}..={}, \
                     bytes {}..{}) are live together and overlap",
                    graph.describe(a.value),
                    a.first_group,
                    end(a),
                    oa,
                    oa + a.bytes,
                    graph.describe(b.value),
                    b.first_group,
                    end(b),
                    ob,
                    ob + b.bytes
                ));
            }
        }
    }
    if plan.lower_bound > plan.arena_bytes {
        return Err(format!(
            "lower bound {} exceeds the arena size {}",
            plan.lower_bound, plan.arena_bytes
        ));
    }
    Ok(())
}

fn check_in_place(
    graph: &Graph,
    schedule: &Schedule,
    value: NodeId,
    param: NodeId,
    writer: usize,
) -> Result<(), String> {
    if !matches!(graph.op(param), Op::Parameter { .. }) {
        return Err(format!(
            "{} is written in place into {}, which is not a parameter",
            graph.describe(value),
            graph.describe(param)
        ));
    }
    if graph.update_of(param) != Some(value) {
        return Err(format!(
            "{} is written into {} but is not its update",
            graph.describe(value),
            graph.describe(param)
        ));
    }
    if !in_place_ok(graph, schedule, param, writer) {
        return Err(format!(
            "{} is written in place into {} while the old value is still read (by a later \
             group, through a non-elementwise op in the writing group, or as a graph output)",
            graph.describe(value),
            graph.describe(param)
        ));
    }
    Ok(())
}
