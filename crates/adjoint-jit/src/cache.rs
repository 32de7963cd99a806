//! The compile cache: code of graphs compiled earlier in this process, keyed by the graph's
//! structure (ops, operand order, types, outputs and updates — node ids and labels do not
//! matter) and the options that change the code.
//!
//! The key is the full canonical description rather than a hash of it, so two different graphs
//! can never share code. The cache holds at most [`CAPACITY`] entries (oldest evicted first);
//! a module is freed when neither the cache nor any step holds it.

use crate::runtime::Compiled;
use crate::Options;
use adjoint_ir::{Graph, NodeId};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

/// Most compiled graphs kept.
pub const CAPACITY: usize = 8;

type Entries = Vec<(String, Arc<Compiled>)>;

fn entries() -> &'static Mutex<Entries> {
    static CACHE: OnceLock<Mutex<Entries>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(Vec::new()))
}

/// The canonical description of `graph` compiled with `options`.
pub fn key(graph: &Graph, options: &Options, threads: usize) -> String {
    let order = graph.topo_order();
    let pos: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let mut s = format!(
        "fusion={} passes={} threads={threads} verifier={} keep_all={} matmul={:?} regalloc={:?} \
         excess_precision={} block_epilogue={} host_math={} isa={}\n",
        options.fusion,
        options.passes,
        options.verifier,
        options.keep_all,
        options.matmul,
        options.register_allocator,
        options.excess_precision,
        options.block_epilogue,
        options.host_math,
        crate::gemm::selected_isa()
    );
    for &n in &order {
        let ops: Vec<usize> = graph.operands(n).iter().map(|o| pos[o]).collect();
        let _ = writeln!(s, "{:?} {ops:?} {}", graph.op(n), graph.ty(n));
    }
    for (name, id) in graph.outputs() {
        let _ = writeln!(s, "output {name:?} {}", pos[id]);
    }
    for (p, v) in graph.updates() {
        let _ = writeln!(s, "update {} {}", pos[p], pos[v]);
    }
    s
}

/// The cached code for `key`, if any.
pub(crate) fn get(key: &str) -> Option<Arc<Compiled>> {
    let e = entries().lock().unwrap_or_else(|e| e.into_inner());
    e.iter().find(|(k, _)| k == key).map(|(_, c)| Arc::clone(c))
}

/// Remembers `code` under `key`.
pub(crate) fn put(key: String, code: Arc<Compiled>) {
    let mut e = entries().lock().unwrap_or_else(|e| e.into_inner());
    if e.len() >= CAPACITY {
        e.remove(0);
    }
    e.push((key, code));
}

/// Empties the cache (modules are freed once no step uses them).
pub fn clear() {
    entries().lock().unwrap_or_else(|e| e.into_inner()).clear();
}
