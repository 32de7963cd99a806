//! [`Embedding`]: a lookup table of learned vectors indexed by integer ids.

use crate::{Initializer, Params};
use adjoint_ir::{HostTensor, Tensor, TensorType};

/// A table `<name>.weight: [vocab, dim]`; `forward(ids)` gathers the rows of `ids` (i32 of any
/// shape), giving `ids.shape + [dim]`. Initialized from `N(0, 1)` as in PyTorch, or by
/// [`Embedding::with_init`].
///
/// ```
/// use adjoint_ir::{Builder, DType};
/// use adjoint_nn::layers::Embedding;
/// use adjoint_nn::Params;
///
/// let b = Builder::new("net");
/// let mut params = Params::new(&b, 0);
/// let emb = Embedding::new(&mut params, "tok", 100, 16);
/// let h = emb.forward(b.input("ids", DType::I32, [4, 10]));
/// assert_eq!(h.shape().dims(), &[4, 10, 16]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Embedding<'b> {
    /// The table, `[vocab, dim]`.
    pub weight: Tensor<'b>,
    /// An id whose row is zeros and gets no gradient (PyTorch's `padding_idx`).
    pub padding_idx: Option<usize>,
}

impl<'b> Embedding<'b> {
    /// A table of `vocab` vectors of `dim` values.
    #[track_caller]
    pub fn new(params: &mut Params<'b>, name: &str, vocab: usize, dim: usize) -> Embedding<'b> {
        Embedding::with_init(params, name, vocab, dim, Initializer::Normal { std: 1.0 })
    }

    /// A table initialized by `init`.
    #[track_caller]
    pub fn with_init(
        params: &mut Params<'b>,
        name: &str,
        vocab: usize,
        dim: usize,
        init: Initializer,
    ) -> Embedding<'b> {
        params.scope(name, |p| Embedding {
            weight: p.get("weight", &[vocab, dim], init),
            padding_idx: None,
        })
    }

    /// The same table with `padding_idx` (below the vocabulary size): that id looks up zeros and
    /// its row gets no gradient, as in PyTorch. Its initial row is set to zeros in `params`.
    /// (PyTorch returns the row itself, which stays zero unless overwritten; here the output for
    /// that id is zeros whatever the row holds.)
    #[track_caller]
    pub fn with_padding_idx(
        mut self,
        params: &mut Params<'b>,
        padding_idx: usize,
    ) -> Embedding<'b> {
        let s = self.weight.shape();
        let (vocab, dim) = (s.dim(0), s.dim(1));
        assert!(
            padding_idx < vocab,
            "padding_idx {padding_idx} is outside the vocabulary of {vocab}"
        );
        let name = {
            let graph = self.weight.builder().graph();
            graph.leaf_name(self.weight.id()).map(str::to_string)
        };
        if let Some(name) = name {
            if let Some(table) = params.initial_values().get(&name) {
                let mut v = table.to_f64_vec();
                v[padding_idx * dim..(padding_idx + 1) * dim].fill(0.0);
                let t = HostTensor::from_f64_as(table.dtype(), table.shape().clone(), &v)
                    .expect("same shape");
                params.set_initial(&name, t);
            }
        }
        self.padding_idx = Some(padding_idx);
        self
    }

    /// Number of rows (ids `0..vocab` are valid).
    pub fn vocab(&self) -> usize {
        self.weight.shape().dim(0)
    }

    /// Checks a batch of ids before it is fed: in the graph an id outside `0..vocab` selects
    /// no row (zeros, the `gather` semantics) where PyTorch raises an error, so data loaders
    /// call this at the boundary. Errors on a non-i32 tensor or name the first bad id and its
    /// position.
    pub fn check_ids(&self, ids: &HostTensor) -> Result<(), IdError> {
        let values = ids
            .as_i32()
            .ok_or_else(|| IdError::NotI32(Box::new(ids.ty())))?;
        let vocab = self.vocab();
        match values.iter().position(|&id| id < 0 || id as usize >= vocab) {
            None => Ok(()),
            Some(i) => Err(IdError::OutOfRange {
                id: values[i],
                position: i,
                ty: Box::new(ids.ty()),
                vocab,
            }),
        }
    }

    /// The rows of the table at `ids` (i32).
    #[track_caller]
    pub fn forward(&self, ids: Tensor<'b>) -> Tensor<'b> {
        let rows = self.weight.gather(ids, 0);
        match self.padding_idx {
            None => rows,
            Some(pad) => {
                let b = ids.builder();
                let is_pad = ids.eq(b.constant(adjoint_ir::DType::I32, [], &[pad as f64]));
                is_pad.unsqueeze(-1).select(rows.scalar_like(0.0), rows)
            }
        }
    }
}

/// A batch of ids an [`Embedding`] cannot take ([`Embedding::check_ids`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdError {
    /// The ids are not `i32`; the tensor's type.
    NotI32(Box<TensorType>),
    /// An id outside `0..vocab`.
    OutOfRange {
        /// The id.
        id: i32,
        /// Its flat (row-major) position in the batch.
        position: usize,
        /// The batch's type.
        ty: Box<TensorType>,
        /// The table's rows.
        vocab: usize,
    },
}

impl std::fmt::Display for IdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdError::NotI32(ty) => write!(f, "embedding ids must be i32, got {ty}"),
            IdError::OutOfRange {
                id,
                position,
                ty,
                vocab,
            } => write!(
                f,
                "embedding id {id} at flat position {position} of {ty} is outside 0..{vocab}"
            ),
        }
    }
}

impl std::error::Error for IdError {}
