//! The PyTorch naming and layout map: which tensor of a PyTorch `state_dict` becomes which
//! Adjoint parameter, and how (transposed, a block of rows, a sum of two biases).
//!
//! Adjoint applies weights as `x @ w` (`[in, out]`), PyTorch as `x @ wᵀ` (`[out, in]`), and some
//! names differ (`weight`/`bias` of a norm are `gamma`/`beta`, attention's packed
//! `in_proj_weight` is `wq`, `wk`, `wv`). Each layer kind has a function that lists its entries
//! ([`linear`], [`layer_norm`], [`batch_norm`], [`embedding`], [`conv2d`], [`recurrent`],
//! [`attention`]); [`import`] applies a list to a `state_dict` read elsewhere (e.g. from a
//! safetensors file) and checks every result against the model's parameter shapes.
//!
//! ```
//! use adjoint_ir::{Builder, DType, Feeds, HostTensor};
//! use adjoint_nn::layers::Linear;
//! use adjoint_nn::{torch_map, Params};
//!
//! let b = Builder::new("net");
//! let mut params = Params::new(&b, 0);
//! let _fc = Linear::new(&mut params, "fc", 3, 2);
//! // PyTorch's nn.Linear(3, 2): weight [2, 3], bias [2].
//! let mut state = Feeds::new();
//! let weight = HostTensor::from_f32([2, 3], vec![1., 2., 3., 4., 5., 6.]).unwrap();
//! state.insert("fc.weight".into(), weight);
//! state.insert("fc.bias".into(), HostTensor::from_f32([2], vec![0.5, -0.5]).unwrap());
//! let map = torch_map::linear("fc", "fc", true);
//! let values = torch_map::import(&state, &map, params.initial_values()).unwrap();
//! assert_eq!(values["fc.weight"].to_f64_vec(), [1., 4., 2., 5., 3., 6.]); // [3, 2]
//! ```

use crate::layers::CellKind;
use adjoint_ir::{Feeds, HostTensor};

/// How the PyTorch tensors of an [`Entry`] become the Adjoint parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Copied as is.
    Same,
    /// A matrix, transposed (`[out, in]` → `[in, out]`).
    Transpose,
    /// Block `part` of `parts` equal blocks of rows (axis 0), transposed when it is a matrix:
    /// the query, key or value part of attention's packed `in_proj_weight` / `in_proj_bias`.
    RowBlock {
        /// Which block, from 0.
        part: usize,
        /// How many blocks.
        parts: usize,
    },
    /// The elementwise sum of the sources (an Elman RNN's `bias_ih + bias_hh`).
    Sum,
}

/// One Adjoint parameter and the PyTorch tensors it is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The Adjoint parameter's full name.
    pub adjoint: String,
    /// The PyTorch `state_dict` keys it is made of (two for [`Layout::Sum`], else one).
    pub torch: Vec<String>,
    /// How.
    pub layout: Layout,
}

fn entry(adjoint: String, torch: String, layout: Layout) -> Entry {
    Entry {
        adjoint,
        torch: vec![torch],
        layout,
    }
}

/// `nn.Linear` at `torch` ↔ [`crate::layers::Linear`] at `adjoint`: `weight` transposed,
/// `bias` when `bias`.
pub fn linear(torch: &str, adjoint: &str, bias: bool) -> Vec<Entry> {
    let mut v = vec![entry(
        format!("{adjoint}.weight"),
        format!("{torch}.weight"),
        Layout::Transpose,
    )];
    if bias {
        v.push(entry(
            format!("{adjoint}.bias"),
            format!("{torch}.bias"),
            Layout::Same,
        ));
    }
    v
}

/// `nn.LayerNorm` ↔ [`crate::layers::LayerNorm`]: `weight` → `gamma`, `bias` → `beta`.
pub fn layer_norm(torch: &str, adjoint: &str) -> Vec<Entry> {
    vec![
        entry(
            format!("{adjoint}.gamma"),
            format!("{torch}.weight"),
            Layout::Same,
        ),
        entry(
            format!("{adjoint}.beta"),
            format!("{torch}.bias"),
            Layout::Same,
        ),
    ]
}

/// `nn.BatchNorm1d/2d` ↔ [`crate::layers::BatchNorm`]: `weight` → `gamma`, `bias` → `beta`
/// (when `affine`), the running statistics by name (`num_batches_tracked` is not used).
pub fn batch_norm(torch: &str, adjoint: &str, affine: bool) -> Vec<Entry> {
    let mut v = Vec::new();
    if affine {
        v = layer_norm(torch, adjoint);
    }
    for s in ["running_mean", "running_var"] {
        v.push(entry(
            format!("{adjoint}.{s}"),
            format!("{torch}.{s}"),
            Layout::Same,
        ));
    }
    v
}

/// `nn.Embedding` ↔ [`crate::layers::Embedding`]: `weight` as is.
pub fn embedding(torch: &str, adjoint: &str) -> Vec<Entry> {
    vec![entry(
        format!("{adjoint}.weight"),
        format!("{torch}.weight"),
        Layout::Same,
    )]
}

/// `nn.Conv2d` ↔ [`crate::layers::Conv2d`]: `weight` → `kernel` (same `[O, I/g, kh, kw]`
/// layout), `bias` when `bias`.
pub fn conv2d(torch: &str, adjoint: &str, bias: bool) -> Vec<Entry> {
    let mut v = vec![entry(
        format!("{adjoint}.kernel"),
        format!("{torch}.weight"),
        Layout::Same,
    )];
    if bias {
        v.push(entry(
            format!("{adjoint}.bias"),
            format!("{torch}.bias"),
            Layout::Same,
        ));
    }
    v
}

/// `nn.RNN` / `nn.GRU` / `nn.LSTM` with `layers` layers (and both directions when
/// `bidirectional`) ↔ [`crate::layers::Recurrent`]: `weight_ih_l<k>[_reverse]` →
/// `<adjoint>.l<k>[_reverse].w_ih` transposed, likewise `w_hh`; the biases by name (`b_ih`,
/// `b_hh`), except an RNN's single `bias`, their sum. PyTorch's gate order is Adjoint's.
pub fn recurrent(
    torch: &str,
    adjoint: &str,
    kind: CellKind,
    layers: usize,
    bidirectional: bool,
) -> Vec<Entry> {
    let mut v = Vec::new();
    for k in 0..layers {
        for suffix in ["", "_reverse"].iter().take(1 + bidirectional as usize) {
            let a = format!("{adjoint}.l{k}{suffix}");
            v.extend(cell(torch, &a, kind, &format!("_l{k}{suffix}")));
        }
    }
    v
}

/// A single-layer, one-direction `nn.RNN` / `nn.GRU` / `nn.LSTM` ↔ [`crate::layers::Rnn`],
/// [`crate::layers::Gru`] or [`crate::layers::Lstm`] at `adjoint`.
pub fn recurrent_cell(torch: &str, adjoint: &str, kind: CellKind) -> Vec<Entry> {
    cell(torch, adjoint, kind, "_l0")
}

fn cell(torch: &str, a: &str, kind: CellKind, suffix: &str) -> Vec<Entry> {
    let t = |n: &str| format!("{torch}.{n}{suffix}");
    let mut v = vec![
        entry(format!("{a}.w_ih"), t("weight_ih"), Layout::Transpose),
        entry(format!("{a}.w_hh"), t("weight_hh"), Layout::Transpose),
    ];
    if kind == CellKind::Rnn {
        v.push(Entry {
            adjoint: format!("{a}.bias"),
            torch: vec![t("bias_ih"), t("bias_hh")],
            layout: Layout::Sum,
        });
    } else {
        v.push(entry(format!("{a}.b_ih"), t("bias_ih"), Layout::Same));
        v.push(entry(format!("{a}.b_hh"), t("bias_hh"), Layout::Same));
    }
    v
}

/// `nn.MultiheadAttention` (self-attention, `batch_first` or not) ↔
/// [`crate::layers::MultiHeadAttention`]: `in_proj_weight` `[3W, W]` split into `wq`, `wk`, `wv`
/// (each transposed), `out_proj.weight` → `wo` (transposed); with `bias`, `in_proj_bias` split
/// into `bq`, `bk`, `bv` and `out_proj.bias` → `bo`.
pub fn attention(torch: &str, adjoint: &str, bias: bool) -> Vec<Entry> {
    let mut v = Vec::new();
    for (part, q) in ["q", "k", "v"].into_iter().enumerate() {
        let layout = Layout::RowBlock { part, parts: 3 };
        v.push(entry(
            format!("{adjoint}.w{q}"),
            format!("{torch}.in_proj_weight"),
            layout,
        ));
        if bias {
            v.push(entry(
                format!("{adjoint}.b{q}"),
                format!("{torch}.in_proj_bias"),
                layout,
            ));
        }
    }
    v.push(entry(
        format!("{adjoint}.wo"),
        format!("{torch}.out_proj.weight"),
        Layout::Transpose,
    ));
    if bias {
        v.push(entry(
            format!("{adjoint}.bo"),
            format!("{torch}.out_proj.bias"),
            Layout::Same,
        ));
    }
    v
}

/// Why [`import`] cannot map a `state_dict` onto a model.
#[derive(Clone, Debug, PartialEq)]
pub enum ImportError {
    /// A PyTorch key an entry needs is not in the `state_dict`.
    MissingKey {
        /// The PyTorch key.
        key: String,
        /// The Adjoint parameter it was for.
        param: String,
    },
    /// An entry names a parameter the model does not have.
    UnknownParam(String),
    /// The entry's layout does not apply to the PyTorch tensors (not a matrix to transpose,
    /// rows that do not split evenly, summed tensors of different types, …).
    Layout {
        /// The Adjoint parameter.
        param: String,
        /// The PyTorch keys.
        torch: Vec<String>,
        /// Why.
        reason: String,
    },
    /// The converted value's type is not the parameter's.
    Type {
        /// The Adjoint parameter.
        param: String,
        /// The PyTorch keys.
        torch: Vec<String>,
        /// The converted value's type.
        got: Box<adjoint_ir::TensorType>,
        /// The parameter's type.
        want: Box<adjoint_ir::TensorType>,
    },
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportError::MissingKey { key, param } => {
                write!(f, "the state_dict has no `{key}` (for `{param}`)")
            }
            ImportError::UnknownParam(p) => write!(f, "the model has no parameter `{p}`"),
            ImportError::Layout {
                param,
                torch,
                reason,
            } => write!(f, "`{param}` from {torch:?}: {reason}"),
            ImportError::Type {
                param,
                torch,
                got,
                want,
            } => write!(
                f,
                "`{param}` from {torch:?} would be {got}, the model's is {want}"
            ),
        }
    }
}

impl std::error::Error for ImportError {}

/// Applies `entries` to the PyTorch tensors `state`, giving one value per Adjoint parameter,
/// each checked against the shape and dtype of its value in `expected` (the model's
/// [`crate::Params::initial_values`]). Keys of `state` that no entry uses are ignored.
///
/// Errors, naming the tensor: a missing PyTorch key, a parameter `expected` does not have, or a
/// result of another shape or dtype than expected.
pub fn import(state: &Feeds, entries: &[Entry], expected: &Feeds) -> Result<Feeds, ImportError> {
    let mut out = Feeds::new();
    for e in entries {
        let sources = e
            .torch
            .iter()
            .map(|k| {
                state.get(k).ok_or_else(|| ImportError::MissingKey {
                    key: k.clone(),
                    param: e.adjoint.clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let want = expected
            .get(&e.adjoint)
            .ok_or_else(|| ImportError::UnknownParam(e.adjoint.clone()))?;
        let value = convert(&sources, e.layout).map_err(|reason| ImportError::Layout {
            param: e.adjoint.clone(),
            torch: e.torch.clone(),
            reason,
        })?;
        if value.ty() != want.ty() {
            return Err(ImportError::Type {
                param: e.adjoint.clone(),
                torch: e.torch.clone(),
                got: Box::new(value.ty()),
                want: Box::new(want.ty()),
            });
        }
        out.insert(e.adjoint.clone(), value);
    }
    Ok(out)
}

/// Applies one layout.
fn convert(sources: &[&HostTensor], layout: Layout) -> Result<HostTensor, String> {
    let first = sources[0];
    let dims = first.shape().dims().to_vec();
    let v = first.to_f64_vec();
    let (dims, v) = match layout {
        Layout::Same => (dims, v),
        Layout::Transpose => {
            let [r, c] = dims[..] else {
                return Err(format!("expected a matrix, got {}", first.ty()));
            };
            ([c, r].to_vec(), transpose(&v, r, c))
        }
        Layout::RowBlock { part, parts } => {
            let rows = dims.first().copied().unwrap_or(0);
            if dims.is_empty() || dims.len() > 2 || !rows.is_multiple_of(parts) {
                return Err(format!(
                    "cannot split {} into {parts} row blocks",
                    first.ty()
                ));
            }
            let (block, width) = (rows / parts, v.len() / rows.max(1));
            let slice = v[part * block * width..(part + 1) * block * width].to_vec();
            if dims.len() == 2 {
                (vec![width, block], transpose(&slice, block, width))
            } else {
                (vec![block], slice)
            }
        }
        Layout::Sum => {
            if sources.iter().any(|s| s.ty() != first.ty()) {
                return Err("the summed tensors differ in type".to_string());
            }
            let mut sum = v;
            for s in &sources[1..] {
                for (a, b) in sum.iter_mut().zip(s.to_f64_vec()) {
                    *a += b;
                }
            }
            (dims, sum)
        }
    };
    HostTensor::from_f64_as(first.dtype(), dims, &v)
}

/// `[r, c]` → `[c, r]`.
fn transpose(v: &[f64], r: usize, c: usize) -> Vec<f64> {
    (0..c)
        .flat_map(|j| (0..r).map(move |i| v[i * c + j]))
        .collect()
}
