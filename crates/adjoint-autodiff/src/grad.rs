//! Reverse mode as a graph transformation: [`grad`], [`append_grad`], [`hvp`].

use crate::error::GradError;
use crate::rules::{vjp, zeros_like};
use adjoint_ir::{Builder, Graph, NodeId, Tensor};
use std::collections::{HashMap, HashSet};

/// A graph extended with derivative nodes, and which node holds the derivative for each node it
/// was taken with respect to.
#[derive(Clone, Debug)]
pub struct Gradients {
    /// The original graph with the derivative nodes appended (and declared as outputs).
    pub graph: Graph,
    /// The loss that was differentiated.
    pub loss: NodeId,
    /// `(wrt node, result node)` in the order the `wrt` nodes were given: the gradient for
    /// [`grad`], the Hessian-vector product for [`hvp`].
    pub results: Vec<(NodeId, NodeId)>,
}

impl Gradients {
    /// The result node for `wrt`, if it was asked for.
    pub fn of(&self, wrt: NodeId) -> Option<NodeId> {
        self.results
            .iter()
            .find(|(w, _)| *w == wrt)
            .map(|&(_, g)| g)
    }

    /// The result nodes, in the order the `wrt` nodes were given.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.results.iter().map(|&(_, g)| g).collect()
    }
}

/// Differentiates the scalar `loss` with respect to each node of `wrt`.
///
/// The graph is extended in place of the nodes it already has: every adjoint node is emitted
/// with a [`Builder`] continuing `graph`, so it is hash-consed with the forward nodes (the
/// backward of `exp(x)` reuses the forward `exp(x)`). Each gradient node is labelled and
/// declared as an output `<name>.grad`, where `<name>` is the `wrt` node's input or parameter
/// name, else its label, else `node<index>`. A `wrt` node the loss does not depend on gets a
/// gradient of zeros.
///
/// Errors: a graph that does not verify, a loss or `wrt` id not in the graph, a loss with more
/// than one element or of integer/bool type, a `wrt` node of integer/bool type.
///
/// ```
/// use adjoint_ir::{Builder, DType};
///
/// let b = Builder::new("square");
/// let w = b.parameter("w", DType::F64, [3]);
/// let loss = w.square().sum_all();
/// b.output("loss", loss);
/// let (loss, w) = (loss.id(), w.id());
/// let grads = adjoint_autodiff::grad(b.finish(), loss, &[w]).unwrap();
/// let dw = grads.of(w).unwrap();
/// assert_eq!(grads.graph.output("w.grad"), Some(dw));
/// assert_eq!(grads.graph.ty(dw).to_string(), "f64[3]");
/// ```
pub fn grad(graph: Graph, loss: NodeId, wrt: &[NodeId]) -> Result<Gradients, GradError> {
    let b = Builder::from_graph(graph);
    let grads = append_grad(&b, loss, wrt)?;
    let mut graph = b.finish();
    for (&w, &g) in wrt.iter().zip(&grads) {
        let name = format!("{}.grad", display_name(&graph, w));
        graph.set_output(&name, g);
    }
    Ok(Gradients {
        graph,
        loss,
        results: wrt.iter().copied().zip(grads).collect(),
    })
}

/// [`grad`] with the loss and the `wrt` nodes given by name (input, parameter, output or label,
/// as [`Graph::find`] resolves them) — what `adjoint grad FILE --loss NAME --wrt A,B` calls.
pub fn grad_named(graph: Graph, loss: &str, wrt: &[&str]) -> Result<Gradients, GradError> {
    let loss = find(&graph, "loss", loss)?;
    let wrt = wrt
        .iter()
        .map(|name| find(&graph, "wrt", name))
        .collect::<Result<Vec<_>, _>>()?;
    grad(graph, loss, &wrt)
}

/// The node called `name` ([`Graph::find`]), or an [`GradError::UnknownName`] naming its role.
pub fn find(graph: &Graph, role: &'static str, name: &str) -> Result<NodeId, GradError> {
    graph.find(name).ok_or_else(|| GradError::UnknownName {
        role,
        name: name.to_string(),
    })
}

/// Appends the gradient nodes of `loss` with respect to `wrt` to the graph `b` is building, and
/// returns one gradient node per `wrt` node (same type as it). The building block of [`grad`],
/// [`hvp`] and [`crate::training_step`]; it labels the gradients `<name>.grad` but declares no
/// outputs.
///
/// How: the nodes on a path from a `wrt` node to the loss (through float nodes only) are
/// visited in reverse topological order. The loss's adjoint is 1; each visited node sums the
/// adjoint contributions its users sent it, then applies its op's VJP rule to send
/// contributions to its operands. Nodes off those paths get no adjoint, so no work is spent on
/// them.
pub fn append_grad(b: &Builder, loss: NodeId, wrt: &[NodeId]) -> Result<Vec<NodeId>, GradError> {
    let order = {
        let graph = b.graph();
        graph.verify()?;
        check_loss(&graph, loss)?;
        for &w in wrt {
            check_wrt(&graph, w)?;
        }
        active_order(&graph, loss, wrt)
    };
    let mut incoming: HashMap<NodeId, Vec<Tensor<'_>>> = HashMap::new();
    let l = b.tensor(loss);
    incoming.insert(loss, vec![l.scalar_like(1.0).try_broadcast_to(l.shape())?]);
    let active: HashSet<NodeId> = order.iter().copied().collect();
    let mut adjoint: HashMap<NodeId, Tensor<'_>> = HashMap::new();
    for &id in &order {
        let Some(parts) = incoming.remove(&id) else {
            continue;
        };
        let g = sum(parts)?;
        adjoint.insert(id, g);
        let operands = b.graph().operands(id);
        if operands.is_empty() {
            continue;
        }
        let need: Vec<bool> = operands.iter().map(|o| active.contains(o)).collect();
        let contributions = vjp(b, id, g, &need)?;
        for ((&o, &needed), c) in operands.iter().zip(&need).zip(contributions) {
            if let (true, Some(c)) = (needed, c) {
                incoming.entry(o).or_default().push(c);
            }
        }
    }
    let mut grads = Vec::with_capacity(wrt.len());
    for &w in wrt {
        let g = match adjoint.get(&w) {
            Some(&g) => g,
            None => zeros_like(b.tensor(w))?,
        };
        let name = display_name(&b.graph(), w);
        label_if_free(b, g.id(), &format!("{name}.grad"));
        grads.push(g.id());
    }
    Ok(grads)
}

/// Appends Hessian-vector products: for each `wrt[i]`, the node `Σ_j ∂²loss/∂wrt[i]∂wrt[j] ·
/// vectors[j]`, computed as the gradient of `⟨∇loss, v⟩ = Σ_j sum(grad_j * v_j)` (reverse over
/// reverse). `vectors[j]` must have the type of `wrt[j]`. Results are labelled `<name>.hvp`.
pub fn append_hvp(
    b: &Builder,
    loss: NodeId,
    wrt: &[NodeId],
    vectors: &[NodeId],
) -> Result<Vec<NodeId>, GradError> {
    if wrt.len() != vectors.len() {
        return Err(GradError::VectorCount {
            wrt: wrt.len(),
            vectors: vectors.len(),
        });
    }
    {
        let graph = b.graph();
        for (&w, &v) in wrt.iter().zip(vectors) {
            if !graph.contains(v) {
                return Err(GradError::NotInGraph {
                    role: "vector",
                    index: v.index(),
                });
            }
            check_wrt(&graph, w)?;
            if graph.ty(w) != graph.ty(v) {
                return Err(GradError::VectorMismatch {
                    wrt: graph.describe(w),
                    wrt_ty: graph.ty(w).clone(),
                    vector_ty: Box::new(graph.ty(v).clone()),
                });
            }
        }
    }
    let grads = append_grad(b, loss, wrt)?;
    let mut dot: Option<Tensor<'_>> = None;
    for (&g, &v) in grads.iter().zip(vectors) {
        let term = b.tensor(g).try_mul(b.tensor(v))?;
        let axes: Vec<isize> = (0..term.rank() as isize).collect();
        let term = term.try_sum(&axes)?;
        dot = Some(match dot {
            Some(d) => d.try_add(term)?,
            None => term,
        });
    }
    let Some(dot) = dot else {
        return Ok(vec![]);
    };
    let products = append_grad(b, dot.id(), wrt)?;
    for (&w, &p) in wrt.iter().zip(&products) {
        let name = display_name(&b.graph(), w);
        label_if_free(b, p, &format!("{name}.hvp"));
    }
    Ok(products)
}

/// Hessian-vector products of `loss` with respect to `wrt` along `vectors` (one per `wrt` node,
/// of the same type; usually inputs fed with the direction): see [`append_hvp`]. The products
/// are declared as outputs `<name>.hvp`.
pub fn hvp(
    graph: Graph,
    loss: NodeId,
    wrt: &[NodeId],
    vectors: &[NodeId],
) -> Result<Gradients, GradError> {
    let b = Builder::from_graph(graph);
    let products = append_hvp(&b, loss, wrt, vectors)?;
    let mut graph = b.finish();
    for (&w, &p) in wrt.iter().zip(&products) {
        let name = format!("{}.hvp", display_name(&graph, w));
        graph.set_output(&name, p);
    }
    Ok(Gradients {
        graph,
        loss,
        results: wrt.iter().copied().zip(products).collect(),
    })
}

/// Sums adjoint contributions in the order they arrived.
fn sum<'b>(parts: Vec<Tensor<'b>>) -> Result<Tensor<'b>, GradError> {
    let mut it = parts.into_iter();
    let first = it
        .next()
        .expect("a visited node has at least one contribution");
    it.try_fold(first, |acc, t| acc.try_add(t).map_err(GradError::from))
}

/// The name a node's derivatives are called after: input/parameter name, label, or
/// `node<index>`.
pub(crate) fn display_name(graph: &Graph, id: NodeId) -> String {
    if let Some(name) = graph.leaf_name(id) {
        return name.to_string();
    }
    match &graph.node(id).label {
        Some(l) => l.clone(),
        None => format!("node{}", id.index()),
    }
}

/// Labels `id` unless it already has a label or is an input or parameter: a gradient node that
/// hash-consing merged with an existing node keeps that node's name.
fn label_if_free(b: &Builder, id: NodeId, label: &str) {
    let free = {
        let graph = b.graph();
        graph.node(id).label.is_none() && graph.leaf_name(id).is_none()
    };
    if free {
        b.tensor(id).named(label);
    }
}

fn check_loss(graph: &Graph, loss: NodeId) -> Result<(), GradError> {
    if !graph.contains(loss) {
        return Err(GradError::NotInGraph {
            role: "loss",
            index: loss.index(),
        });
    }
    let ty = graph.ty(loss);
    if ty.shape.numel() != 1 {
        return Err(GradError::LossNotScalar {
            loss: graph.describe(loss),
            ty: ty.clone(),
        });
    }
    if !ty.dtype.is_float() {
        return Err(GradError::LossNotFloat {
            loss: graph.describe(loss),
            ty: ty.clone(),
        });
    }
    Ok(())
}

fn check_wrt(graph: &Graph, w: NodeId) -> Result<(), GradError> {
    if !graph.contains(w) {
        return Err(GradError::NotInGraph {
            role: "wrt",
            index: w.index(),
        });
    }
    let ty = graph.ty(w);
    if !ty.dtype.is_float() {
        return Err(GradError::NotDifferentiable {
            node: graph.describe(w),
            ty: ty.clone(),
        });
    }
    Ok(())
}

/// The float nodes on a path from a `wrt` node to `loss`, in reverse topological order (the
/// loss first).
fn active_order(graph: &Graph, loss: NodeId, wrt: &[NodeId]) -> Vec<NodeId> {
    let mut needed = HashSet::new();
    let mut stack = vec![loss];
    while let Some(id) = stack.pop() {
        if needed.insert(id) {
            stack.extend(graph.operands(id));
        }
    }
    let mut reached = HashSet::new();
    let mut stack: Vec<NodeId> = wrt.to_vec();
    while let Some(id) = stack.pop() {
        if graph.ty(id).dtype.is_float() && needed.contains(&id) && reached.insert(id) {
            stack.extend(graph.users(id));
        }
    }
    let mut order: Vec<NodeId> = graph
        .topo_order()
        .into_iter()
        .filter(|id| reached.contains(id))
        .collect();
    order.reverse();
    order
}
