//! [`Embedding`]: a lookup table of learned vectors indexed by integer ids.

use crate::{Initializer, Params};
use adjoint_ir::Tensor;

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
        })
    }

    /// The rows of the table at `ids` (i32).
    #[track_caller]
    pub fn forward(&self, ids: Tensor<'b>) -> Tensor<'b> {
        self.weight.gather(ids, 0)
    }
}
