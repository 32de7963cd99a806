//! Memory planning: liveness of every group output over the schedule, arena offsets by greedy
//! best fit, parameter updates in place, and a checker for any plan.
//!
//! A buffer is live from the group that writes it to the last group that reads it, both
//! included (a kernel's inputs and outputs are live together, so a group never writes over its
//! own inputs). Graph outputs, and update values that cannot be written in place, live until
//! the step returns. Buffers are placed largest first, each into the smallest gap between the
//! buffers already placed that are live at the same time (TensorFlow Lite's "greedy by size"
//! strategy), at offsets aligned to [`MemoryPlan::ALIGN`]. That is quadratic in the number of
//! buffers, so plans with more than [`GREEDY_MAX_BUFFERS`] arena buffers (chains hundreds of
//! thousands of nodes deep) are placed in lifetime order instead, best fit into a free list,
//! in O(n log n).
//!
//! An update `param ← value` is written in place ([`Placement::Parameter`]) when the group
//! writing `value` runs after every other group that reads `param`, reads `param` itself only
//! at the element it writes, in the loop that writes it, and `param` is neither a graph
//! output nor the update value of another parameter (which the runtime copies after the last
//! kernel, so it must still read the old value). "At the element it writes" is decided exactly
//! on the group's structure: every member reading `param` is elementwise, outside the anchor's
//! prologue, and reaches the group's root through elementwise members of the root's shape only
//! — so the code generator evaluates it at the root's index, in the root's loop, before the
//! store. This is the one place the decision is made; the code generator only checks it.
//! Otherwise `value` goes to the arena and lives to the end of the step: the runtime copies it
//! into the parameter after the last kernel.

use crate::schedule::{
    BufferAssignment, FusionGroup, InvalidPlan, MemoryPlan, Placement, Schedule,
};
use adjoint_ir::{Graph, NodeId, Op};
use std::collections::HashMap;

/// `x` rounded up to [`MemoryPlan::ALIGN`]; sizes near `usize::MAX` saturate (such a plan is
/// refused by whoever allocates it, never wrapped around to a small arena).
fn align(x: usize) -> usize {
    x.div_ceil(MemoryPlan::ALIGN)
        .saturating_mul(MemoryPlan::ALIGN)
}

/// Whether `value` (written by group `writer`) can be written into `param`'s storage.
fn in_place_ok(graph: &Graph, schedule: &Schedule, param: NodeId, writer: usize) -> bool {
    if graph.outputs().iter().any(|&(_, o)| o == param) {
        return false;
    }
    if graph.updates().iter().filter(|&&(p, _)| p == param).count() != 1 {
        return false;
    }
    // Another parameter's update that is `param` itself is copied by the runtime after the
    // last kernel: it must read the old value, so `param` cannot be overwritten in place.
    if graph
        .updates()
        .iter()
        .any(|&(p, value)| value == param && p != param)
    {
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
    let mut delta = vec![0i128; n + 2];
    for b in buffers.iter().filter(|b| is_arena(b)) {
        delta[b.first_group] += b.bytes as i128;
        delta[end(b) + 1] -= b.bytes as i128;
    }
    let mut live = 0i128;
    let mut lower_bound = 0usize;
    for d in &delta {
        live += d;
        lower_bound = lower_bound.max(usize::try_from(live).unwrap_or(usize::MAX));
    }
    let arena_bytes = if buffers.iter().filter(|b| is_arena(b)).count() <= GREEDY_MAX_BUFFERS {
        place_greedy_by_size(&mut buffers, n)
    } else {
        place_in_birth_order(&mut buffers, n)
    };
    MemoryPlan {
        buffers,
        arena_bytes,
        lower_bound,
    }
}

/// Above this many arena buffers, placement switches from greedy by size (quadratic: each
/// buffer looks at every placed one) to [`place_in_birth_order`] (n log n).
pub const GREEDY_MAX_BUFFERS: usize = 4096;

/// Greedy by size: largest first, each into the smallest gap between the buffers already
/// placed that are live at the same time. Returns the arena size.
fn place_greedy_by_size(buffers: &mut [BufferAssignment], n: usize) -> usize {
    let end = |b: &BufferAssignment| b.last_group.min(n);
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
                (off, off.saturating_add(o.bytes))
            })
            .collect();
        busy.sort_unstable();
        let mut best: Option<(usize, usize)> = None; // (gap size, offset)
        let mut cursor: usize = 0;
        for &(start, stop) in &busy {
            if start >= cursor.saturating_add(b.bytes) {
                let gap = start - cursor;
                if best.is_none_or(|(g, _)| gap < g) {
                    best = Some((gap, cursor));
                }
            }
            cursor = cursor.max(align(stop));
        }
        let offset = best.map_or(cursor, |(_, o)| o);
        arena_bytes = arena_bytes.max(offset.saturating_add(b.bytes));
        buffers[i].placement = Placement::Arena { offset };
        placed.push(i);
    }
    arena_bytes
}

/// Placement for plans with many buffers, in O(n log n): buffers are placed in the order their
/// lifetimes start, each into the smallest free block (best fit) of the arena, which grows at
/// its end when none fits; a buffer's block is freed (and merged with free neighbours) once
/// the groups past its last reader start. Returns the arena size.
fn place_in_birth_order(buffers: &mut [BufferAssignment], n: usize) -> usize {
    use std::cmp::Reverse;
    use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
    let end = |b: &BufferAssignment| b.last_group.min(n);
    let mut order: Vec<usize> = (0..buffers.len())
        .filter(|&i| is_arena(&buffers[i]))
        .collect();
    order.sort_by_key(|&i| (buffers[i].first_group, i));
    // Free blocks by offset (→ size) and by (size, offset), for merging and best fit.
    let mut by_offset: BTreeMap<usize, usize> = BTreeMap::new();
    let mut by_size: BTreeSet<(usize, usize)> = BTreeSet::new();
    // Live blocks by the group after which they are free: (last group, offset, size).
    let mut live: BinaryHeap<Reverse<(usize, usize, usize)>> = BinaryHeap::new();
    let mut top = 0usize;
    let mut arena_bytes = 0usize;
    for i in order {
        let first = buffers[i].first_group;
        while let Some(&Reverse((last, offset, size))) = live.peek() {
            if last >= first {
                break;
            }
            live.pop();
            free_block(&mut by_offset, &mut by_size, offset, size);
        }
        let size = align(buffers[i].bytes).max(MemoryPlan::ALIGN);
        let offset = match by_size.range((size, 0)..).next().copied() {
            Some((block, offset)) => {
                by_size.remove(&(block, offset));
                by_offset.remove(&offset);
                if block > size {
                    let rest = offset.saturating_add(size);
                    by_offset.insert(rest, block - size);
                    by_size.insert((block - size, rest));
                }
                offset
            }
            None => {
                // Grow the arena; a free block at its end becomes the start of this one.
                let start = match by_offset.last_key_value() {
                    Some((&o, &s)) if o.saturating_add(s) == top => {
                        by_offset.remove(&o);
                        by_size.remove(&(s, o));
                        o
                    }
                    _ => top,
                };
                top = start.saturating_add(size);
                start
            }
        };
        arena_bytes = arena_bytes.max(offset.saturating_add(buffers[i].bytes));
        buffers[i].placement = Placement::Arena { offset };
        live.push(Reverse((end(&buffers[i]), offset, size)));
    }
    arena_bytes
}

/// Returns the block `offset..offset + size` to the free lists, merged with free neighbours.
fn free_block(
    by_offset: &mut std::collections::BTreeMap<usize, usize>,
    by_size: &mut std::collections::BTreeSet<(usize, usize)>,
    mut offset: usize,
    mut size: usize,
) {
    if let Some((&o, &s)) = by_offset.range(..offset).next_back() {
        if o + s == offset {
            by_offset.remove(&o);
            by_size.remove(&(s, o));
            offset = o;
            size += s;
        }
    }
    if let Some(&s) = by_offset.get(&(offset + size)) {
        by_offset.remove(&(offset + size));
        by_size.remove(&(s, offset + size));
        size += s;
    }
    by_offset.insert(offset, size);
    by_size.insert((size, offset));
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
) -> Result<(), InvalidPlan> {
    schedule.check(graph)?;
    let n = schedule.groups.len();
    let mut expected: Vec<(NodeId, usize)> = Vec::new();
    for (gi, g) in schedule.groups.iter().enumerate() {
        expected.extend(g.outputs.iter().map(|&o| (o, gi)));
    }
    if plan.buffers.len() != expected.len() {
        return Err(InvalidPlan(format!(
            "{} buffers for {} group outputs",
            plan.buffers.len(),
            expected.len()
        )));
    }
    for &(v, gi) in &expected {
        let b = plan.buffer(v).ok_or_else(|| {
            InvalidPlan(format!("group output {} has no buffer", graph.describe(v)))
        })?;
        if b.first_group != gi {
            return Err(InvalidPlan(format!(
                "buffer of {} says group {} writes it, but group {gi} does",
                graph.describe(v),
                b.first_group
            )));
        }
        if b.bytes != graph.ty(v).size_bytes() {
            return Err(InvalidPlan(format!(
                "buffer of {} has {} bytes, its type {} needs {}",
                graph.describe(v),
                b.bytes,
                graph.ty(v),
                graph.ty(v).size_bytes()
            )));
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
                return Err(InvalidPlan(format!(
                    "buffer of {} is freed after group {} but group {r} reads it",
                    graph.describe(v),
                    b.last_group
                )));
            }
        }
        if graph.outputs().iter().any(|&(_, o)| o == v) && b.last_group != usize::MAX {
            return Err(InvalidPlan(format!(
                "graph output {} must live until the end",
                graph.describe(v)
            )));
        }
        match b.placement {
            Placement::Arena { offset } => {
                if offset % MemoryPlan::ALIGN != 0 {
                    return Err(InvalidPlan(format!(
                        "buffer of {} at offset {offset} is not aligned to {}",
                        graph.describe(v),
                        MemoryPlan::ALIGN
                    )));
                }
                let stop = offset.checked_add(b.bytes);
                if stop.is_none_or(|stop| stop > plan.arena_bytes) {
                    return Err(InvalidPlan(format!(
                        "buffer of {} ({} bytes at offset {offset}) ends beyond the arena of {} \
                         bytes",
                        graph.describe(v),
                        b.bytes,
                        plan.arena_bytes
                    )));
                }
                let is_update = graph.updates().iter().any(|&(_, u)| u == v);
                if is_update && b.last_group != usize::MAX {
                    return Err(InvalidPlan(format!(
                        "update value {} in the arena must live until the end",
                        graph.describe(v)
                    )));
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
        return Err(InvalidPlan(
            "two values are written into the same parameter".into(),
        ));
    }
    let arena: Vec<&BufferAssignment> = plan.buffers.iter().filter(|b| is_arena(b)).collect();
    let end = |b: &BufferAssignment| b.last_group.min(n);
    for (i, a) in arena.iter().enumerate() {
        for b in &arena[i + 1..] {
            let live_together = a.first_group <= end(b) && b.first_group <= end(a);
            let (oa, ob) = (arena_offset(a), arena_offset(b));
            let overlap = oa < ob.saturating_add(b.bytes)
                && ob < oa.saturating_add(a.bytes)
                && a.bytes > 0
                && b.bytes > 0;
            if live_together && overlap {
                return Err(InvalidPlan(format!(
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
                )));
            }
        }
    }
    if plan.lower_bound > plan.arena_bytes {
        return Err(InvalidPlan(format!(
            "lower bound {} exceeds the arena size {}",
            plan.lower_bound, plan.arena_bytes
        )));
    }
    Ok(())
}

fn check_in_place(
    graph: &Graph,
    schedule: &Schedule,
    value: NodeId,
    param: NodeId,
    writer: usize,
) -> Result<(), InvalidPlan> {
    if !matches!(graph.op(param), Op::Parameter { .. }) {
        return Err(InvalidPlan(format!(
            "{} is written in place into {}, which is not a parameter",
            graph.describe(value),
            graph.describe(param)
        )));
    }
    if graph.update_of(param) != Some(value) {
        return Err(InvalidPlan(format!(
            "{} is written into {} but is not its update",
            graph.describe(value),
            graph.describe(param)
        )));
    }
    if !in_place_ok(graph, schedule, param, writer) {
        return Err(InvalidPlan(format!(
            "{} is written in place into {} while the old value is still read (by a later \
             group, through a non-elementwise op in the writing group, or as a graph output)",
            graph.describe(value),
            graph.describe(param)
        )));
    }
    Ok(())
}
